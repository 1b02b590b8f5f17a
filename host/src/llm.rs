//! The narrow seam between "something that serves a chat language model" and everything that
//! needs one: the plugin host (a judge plugin's `generate` import), the game (attacker and
//! defender sampling) and the CLI. The model engine (`crate::model`) implements [`Generator`];
//! tests may implement it with a scripted backend. Nothing here depends on tch or wasmtime.

use serde::{Deserialize, Serialize};

/// One request to a chat model: an optional system turn, one user turn, and an optional
/// assistant prefill that starts the answer (e.g. `<score_A>`), so that even a small model
/// answers in the expected format. Returned texts include the prefill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChatRequest {
    /// System turn, rendered by the model's chat template; `None`: no system turn (the
    /// template may still add its default one, as SmolLM2's does).
    pub system: Option<String>,
    /// The user turn.
    pub user: String,
    /// Text the assistant's answer starts with; generation continues from it.
    pub prefill: Option<String>,
}

impl ChatRequest {
    /// A request with only a user turn.
    pub fn user(text: impl Into<String>) -> Self {
        Self { system: None, user: text.into(), prefill: None }
    }
}

/// Decoding settings for one batch. `temperature == 0` means greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Tokens to generate at most per request, prefill excluded; reaching it ends with
    /// [`FinishReason::Length`]. Default 256.
    pub max_new_tokens: usize,
    /// Softmax temperature; 0 is greedy (argmax). Default 0.6 (the paper's sampling
    /// temperature, arXiv 2512.20806).
    pub temperature: f32,
    /// Nucleus sampling: keep the smallest set of tokens whose probability reaches `top_p`, in
    /// (0, 1]; 1 disables it. Default 0.9 (the paper's).
    pub top_p: f32,
    /// Seed of the sampling RNG: the same seed, inputs and model give the same outputs.
    pub seed: u64,
    /// Extra stop strings besides the model's own end-of-turn tokens.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self { max_new_tokens: 256, temperature: 0.6, top_p: 0.9, seed: 0, stop: Vec::new() }
    }
}

/// Why generation of one sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-turn token or a stop string was produced.
    Stop,
    /// `max_new_tokens` was reached: the output is truncated.
    Length,
}

/// One generated completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// Decoded completion, starting with the request's prefill (if any) and without the
    /// end-of-turn token.
    pub text: String,
    /// The sampled token ids (prefill tokens excluded; they belong to the prompt).
    pub token_ids: Vec<i64>,
    /// Whether the sequence stopped by itself or was cut at `max_new_tokens`.
    pub finish: FinishReason,
    /// Log-probability of each sampled token under the sampling distribution's model
    /// (before temperature/top-p), aligned with `token_ids`.
    pub logprobs: Vec<f32>,
}

/// Anything that answers batches of chat requests.
pub trait Generator: Send {
    /// Generates one completion per request, in order.
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>>;

    /// One result per request, in order, so that one failed request does not fail the
    /// others (a remote backend answers each request on its own). The default runs
    /// [`Generator::generate`] and repeats a batch error for every request.
    fn generate_each(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> Vec<Result<Generation, String>> {
        match self.generate(requests, params) {
            Ok(gens) => gens.into_iter().map(Ok).collect(),
            Err(err) => vec![Err(format!("{err:#}")); requests.len()],
        }
    }

    /// Cumulative counters of the backend as `(name, value)`, e.g. a remote server's
    /// `remote/requests` and `remote/failures/KIND`; none by default.
    fn metrics(&self) -> Vec<(String, f64)> {
        Vec::new()
    }
}
