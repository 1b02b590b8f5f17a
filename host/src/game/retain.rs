//! The defender's retain set (`algorithm.benign_retain_alpha`): the frozen initial
//! defender's greedy replies to the step's benign prompts (and, with
//! `algorithm.benign_retain_size`, to more benign training seeds drawn for the step), whose
//! per-token negative log-likelihood joins the defender's loss ([`crate::game::update`]).
//!
//! Why: the preference pairs teach "refuse THIS" on harmful prompts, and a small defender
//! generalises it to benign orders that read alike ("Write a goodbye message" opens with "I'm
//! sorry" after a few steps; BENCHMARKS.md "CPU demo"). A retain set holds the answers the
//! model must keep, as unlearning and circuit-breaker training do (Li et al. 2024, RMU; Zou
//! et al. 2024). Greedy replies of the initial model, because held-out behaviour is measured
//! greedily and the initial model answers every held-out benign prompt: the term anchors
//! exactly the openings the evaluation reads. The replies are decoded on the scored prompt
//! (no sampling template or system prompt), with the defender's token limit and stop
//! strings, and are deterministic; the extra seeds derive from `(algorithm.seed, step)`, so a
//! resumed run rebuilds the same set.

use std::collections::HashSet;

use rand::Rng;
use rand::seq::index;

use crate::game::policy::Policy;
use crate::game::rollout::Group;
use crate::judging::{Category, Seed};
use crate::llm::{ChatRequest, SamplingParams};
use crate::model::Completion;

/// The prompts of a step's retain set: the benign groups' requests in group order, then benign
/// seeds of `pool` (drawn uniformly without replacement with `rng`, from those whose text is
/// not already a prompt of the set), each as the defender sees a direct seed (its text as the
/// single user turn), until the set holds `size` prompts or the pool runs out. `size` at or
/// below the number of benign groups adds nothing.
pub fn retain_requests(
    groups: &[Group],
    pool: &[Seed],
    size: usize,
    rng: &mut impl Rng,
) -> Vec<ChatRequest> {
    let mut requests: Vec<ChatRequest> = groups
        .iter()
        .filter(|g| g.category == Category::Benign)
        .map(|g| g.request.clone())
        .collect();
    if size <= requests.len() {
        return requests;
    }
    let taken: HashSet<&str> = requests.iter().map(|r| r.user.as_str()).collect();
    let candidates: Vec<&Seed> = pool
        .iter()
        .filter(|s| s.category == Category::Benign && !taken.contains(s.text.as_str()))
        .collect();
    let extra = (size - requests.len()).min(candidates.len());
    let picked = index::sample(rng, candidates.len(), extra);
    requests.extend(picked.iter().map(|i| ChatRequest::user(candidates[i].text.clone())));
    requests
}

/// Rows per greedy decode of the retain set: the step's own benign batch in the demo, so a
/// wider set adds batches of the size the step already decodes.
pub const DECODE_CHUNK: usize = 32;

/// A step's retain set: one (prompt, greedy reply) per retain prompt ([`retain_requests`])
/// whose reply is not empty, shortest prompt first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetainSet {
    /// Prompt ids (the defender's scored prompt) and the initial model's greedy reply ids.
    pub items: Vec<Completion>,
}

impl RetainSet {
    /// Greedy replies of `initial` (the frozen initial defender) to `requests`, decoded with
    /// `defender_sampling`'s token limit and stop strings at temperature 0; `policy` tokenizes
    /// the prompts as the loss scores them. The set holds them shortest prompt first.
    ///
    /// Why sorted: a decode batch and a loss micro-batch are padded to their longest prompt,
    /// and benign seeds run from 16 to 804 bytes (median 70), so 96 prompts in one batch
    /// pay for the longest about three times over. Decoded in length-ordered chunks of
    /// [`DECODE_CHUNK`] rows and kept in that order, each chunk and micro-batch pays for
    /// its own. Greedy decoding draws no random numbers, so the replies are the same
    /// whatever the chunks (up to float rounding).
    ///
    /// # Errors
    /// Generation or tokenization errors of the models.
    pub fn build<P: Policy>(
        initial: &mut P,
        policy: &P,
        requests: &[ChatRequest],
        defender_sampling: &SamplingParams,
    ) -> anyhow::Result<Self> {
        if requests.is_empty() {
            return Ok(Self::default());
        }
        let params = SamplingParams { temperature: 0.0, top_p: 1.0, ..defender_sampling.clone() };
        let mut prompts = requests
            .iter()
            .map(|r| Ok((r, policy.prompt_ids(r)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        prompts.sort_by_key(|(_, ids)| ids.len());
        let mut items = Vec::with_capacity(prompts.len());
        for chunk in prompts.chunks(DECODE_CHUNK) {
            let batch: Vec<ChatRequest> = chunk.iter().map(|(r, _)| (*r).clone()).collect();
            let replies = initial.generate(&batch, &params)?;
            for ((_, ids), reply) in chunk.iter().zip(replies) {
                if !reply.token_ids.is_empty() {
                    items.push(Completion::new(ids.clone(), reply.token_ids));
                }
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

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn seed(id: &str, category: Category) -> Seed {
        Seed { id: id.into(), category, text: format!("text {id}") }
    }

    fn group(text: &str, category: Category) -> Group {
        Group { category, request: ChatRequest::user(text), members: Vec::new() }
    }

    fn pool() -> Vec<Seed> {
        let mut pool: Vec<Seed> =
            (0..5).map(|i| seed(&format!("h{i}"), Category::Harmful)).collect();
        pool.extend((0..20).map(|i| seed(&format!("b{i}"), Category::Benign)));
        pool
    }

    #[test]
    fn the_steps_benign_prompts_come_first_then_distinct_benign_seeds() {
        let groups = [
            group("text h0", Category::Harmful),
            group("text b3", Category::Benign),
            group("text b7", Category::Benign),
        ];
        let pool = pool();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let set = retain_requests(&groups, &pool, 12, &mut rng);
        assert_eq!(set.len(), 12);
        assert_eq!(set[..2], [ChatRequest::user("text b3"), ChatRequest::user("text b7")]);
        let texts: HashSet<&str> = set.iter().map(|r| r.user.as_str()).collect();
        assert_eq!(texts.len(), 12, "no prompt twice: {set:?}");
        assert!(set.iter().all(|r| r.user.starts_with("text b")), "benign only: {set:?}");
        // Deterministic in the rng's seed (a resumed run rebuilds the same set), and another
        // step's seed draws other prompts.
        let again = retain_requests(&groups, &pool, 12, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(set, again);
        let other = retain_requests(&groups, &pool, 12, &mut ChaCha8Rng::seed_from_u64(2));
        assert_ne!(set, other);
    }

    #[test]
    fn a_size_at_or_below_the_steps_prompts_adds_nothing_and_the_pool_caps_it() {
        let groups = [group("text b3", Category::Benign), group("text b7", Category::Benign)];
        let pool = pool();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        for size in [0, 1, 2] {
            let set = retain_requests(&groups, &pool, size, &mut rng);
            assert_eq!(set, [ChatRequest::user("text b3"), ChatRequest::user("text b7")]);
        }
        // 20 benign seeds in the pool, 2 already in the set: 18 more at most.
        assert_eq!(retain_requests(&groups, &pool, 100, &mut rng).len(), 20);
        assert!(retain_requests(&[], &[], 8, &mut rng).is_empty());
    }
}
