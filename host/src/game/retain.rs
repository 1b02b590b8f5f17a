//! The defender's retain set (`algorithm.benign_retain_alpha`): the frozen initial
//! defender's greedy replies to the step's benign prompts, whose per-token negative
//! log-likelihood joins the defender's loss ([`crate::game::update`]).
//!
//! Why: the preference pairs teach "refuse THIS" on harmful prompts, and a small defender
//! generalises it to benign orders that read alike ("Write a goodbye message" opens with "I'm
//! sorry" after a few steps; BENCHMARKS.md "CPU demo"). A retain set holds the answers the
//! model must keep, as unlearning and circuit-breaker training do (Li et al. 2024, RMU; Zou
//! et al. 2024). Greedy replies of the initial model, because held-out behaviour is measured
//! greedily and the initial model answers every held-out benign prompt: the term anchors
//! exactly the openings the evaluation reads. The replies are decoded on the scored prompt
//! (no sampling template or system prompt), with the defender's token limit and stop
//! strings, and are deterministic, so a resumed run rebuilds the same set.

use crate::game::policy::Policy;
use crate::game::rollout::Group;
use crate::judging::Category;
use crate::llm::{ChatRequest, SamplingParams};
use crate::model::Completion;

/// A step's retain set: one (prompt, greedy reply) per benign defender group whose reply is
/// not empty, in group order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetainSet {
    /// Prompt ids (the defender's scored prompt) and the initial model's greedy reply ids.
    pub items: Vec<Completion>,
}

impl RetainSet {
    /// Greedy replies of `initial` (the frozen initial defender) to the benign groups'
    /// requests, decoded with `defender_sampling`'s token limit and stop strings at
    /// temperature 0; `policy` tokenizes the prompts as the loss scores them.
    ///
    /// # Errors
    /// Generation or tokenization errors of the models.
    pub fn build<P: Policy>(
        initial: &mut P,
        policy: &P,
        groups: &[Group],
        defender_sampling: &SamplingParams,
    ) -> anyhow::Result<Self> {
        let requests: Vec<ChatRequest> = groups
            .iter()
            .filter(|g| g.category == Category::Benign)
            .map(|g| g.request.clone())
            .collect();
        if requests.is_empty() {
            return Ok(Self::default());
        }
        let params = SamplingParams { temperature: 0.0, top_p: 1.0, ..defender_sampling.clone() };
        let replies = initial.generate(&requests, &params)?;
        let mut items = Vec::with_capacity(requests.len());
        for (request, reply) in requests.iter().zip(replies) {
            if !reply.token_ids.is_empty() {
                items.push(Completion::new(policy.prompt_ids(request)?, reply.token_ids));
            }
        }
        Ok(Self { items })
    }

    /// Whether the set holds no reply (no benign group, or only empty replies).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Reply tokens over the whole set: the denominator of the per-token mean.
    pub fn tokens(&self) -> usize {
        self.items.iter().map(|c| c.completion_ids.len()).sum()
    }
}
