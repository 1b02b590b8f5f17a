//! A stand-in judge model for conformance checks and benchmarks: it answers every request
//! in the format the request asks for (read from the prefill or the instructions), with
//! fixed scores. Not a judge: it never reads the responses.

use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};

/// A [`Generator`] that answers every request in the format it asks for with fixed scores
/// (7 for A, 3 for B, "yes" for faithfulness), so a judge plugin's parsing can be checked
/// without a real judge model.
#[derive(Debug, Default, Clone)]
pub struct FormatProbe {
    /// Requests answered so far.
    pub answered: usize,
}

impl FormatProbe {
    /// The answer body (after the prefill) for one request.
    pub fn answer(request: &ChatRequest) -> String {
        let prefill = request.prefill.as_deref().unwrap_or("");
        let body = match prefill {
            "<score_A>" => "7</score_A> <score_B>3</score_B>",
            "<score>" => "7</score>",
            "<faithful>" => "yes</faithful>",
            _ if request.user.contains("<faithful>") => "<faithful>yes</faithful>",
            _ if request.user.contains("<score_A>") => "<score_A>7</score_A> <score_B>3</score_B>",
            _ => "<score>7</score>",
        };
        format!("{prefill}{body}")
    }
}

impl Generator for FormatProbe {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        _params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        self.answered += requests.len();
        Ok(requests
            .iter()
            .map(|r| Generation {
                text: Self::answer(r),
                token_ids: Vec::new(),
                finish: FinishReason::Stop,
                logprobs: Vec::new(),
            })
            .collect())
    }
}
