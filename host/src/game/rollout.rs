//! One step's rollout trees (game.md, "One step"): attacker samples, strict parsing, the
//! faithfulness gate, defender samples, pairwise defender judging, optimistic selection,
//! pairwise attacker judging against the seed, and -1 patching.
//!
//! This file holds the records a rollout produces (`rollouts.jsonl`: a [`SeedTree`] per seed,
//! its [`Attack`]s, their [`Reply`]s and the [`JudgmentRecord`]s among them); `play` plays a
//! step ([`rollout`], one batched call per phase) and `groups` turns the trees into the
//! [`Group`]s the losses train on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::game::parse::Rewrite;
use crate::game::rewards::Slot;
use crate::judging::{Failure, Seed};
use crate::llm::{ChatRequest, FinishReason};

mod groups;
mod play;

pub use groups::{Group, Member};
pub use play::{RolloutSettings, direct_seeds, rollout};

/// One pairwise judgment in a tree, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgmentRecord {
    /// Index of the member in slot A (a reply of the attack, or an attack of the seed).
    pub a: usize,
    /// Index of the member in slot B; equal to `a` for a lone judged member paired with itself.
    pub b: usize,
    /// Scores of (a, b); `None` when the judgment failed.
    pub scores: Option<(f32, f32)>,
    /// Why the judgment failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// The best-vs-worst pair of a group (game.md, "Learning"): indices of the chosen and the
/// rejected member, as [`crate::game::pairs::select_pair`] picks them from the final rewards
/// (chosen = the first highest, rejected = the last lowest; none when every reward ties).
/// DPO and IPO train on exactly this pair (an update skips it if either completion is empty);
/// GRPO uses every member instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairRecord {
    /// Index of the chosen member.
    pub chosen: usize,
    /// Index of the rejected member.
    pub rejected: usize,
}

impl PairRecord {
    /// The pair of a group with these rewards, or `None` when nothing can be preferred.
    pub fn of(rewards: &[Option<f32>]) -> Option<Self> {
        crate::game::pairs::select_pair(rewards).map(|(chosen, rejected)| Self { chosen, rejected })
    }
}

/// What the sampler returned for a completion besides its text: what the losses train on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampled {
    /// The sampled token ids (prefill excluded; prompt not included).
    pub token_ids: Vec<i64>,
    /// Sampler log-probability of each token of `token_ids`, same length.
    pub logprobs: Vec<f32>,
}

/// One defender reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The decoded reply.
    pub text: String,
    /// `length` when the reply hit the defender's token limit (truncated).
    pub finish: FinishReason,
    /// Sampled under the context-distillation instruction (`game.defender_sampling_*`), not
    /// on the bare prompt it is scored on; written to `rollouts.jsonl` only when true.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub told: bool,
    /// The sampled token ids and their log-probs (not written to `rollouts.jsonl`).
    #[serde(skip)]
    pub sample: Sampled,
    /// Whether the reply was judged, penalised (-1) or left out.
    pub slot: Slot,
    /// The defender reward: mean of its pairwise scores (0-10), -1 when penalised, `None`
    /// when every judgment of it failed.
    pub reward: Option<f32>,
}

/// One attacker sample and everything that hangs off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    /// The attacker's raw output, prefill included.
    pub output: String,
    /// `length` when the output hit the attacker's token limit (then it is invalid).
    pub finish: FinishReason,
    /// The sampled token ids, think part included, and their log-probs (not written to
    /// `rollouts.jsonl`).
    #[serde(skip)]
    pub sample: Sampled,
    /// The parsed prompt x (or why none) and its faithfulness verdict.
    #[serde(flatten)]
    pub rewrite: Rewrite,
    /// The defender's replies to the parsed prompt (empty for an invalid prompt).
    pub replies: Vec<Reply>,
    /// The defender judge's pairwise judgments among `replies` (indices into `replies`).
    pub judgments: Vec<JudgmentRecord>,
    /// The reply the attacker is judged on (y*).
    pub best_reply: Option<usize>,
    /// The defender's training pair among `replies` (indices into `replies`), when the
    /// rewards prefer one reply to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairRecord>,
    /// Whether the attack was judged, penalised (-1: unparsable, truncated or unfaithful) or
    /// left out.
    pub slot: Slot,
    /// The attacker reward: mean of its pairwise scores (0-10), -1 when penalised, `None`
    /// when every judgment of it failed.
    pub reward: Option<f32>,
}

/// The rollout tree of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedTree {
    /// The seed the tree grew from.
    pub seed: Seed,
    /// The attacker's A samples for the seed.
    pub attacks: Vec<Attack>,
    /// The attacker judge's pairwise judgments among `attacks` (indices into `attacks`), with
    /// the seed as context.
    pub judgments: Vec<JudgmentRecord>,
    /// The attacker's request (rebuilt from the config; not written to `rollouts.jsonl`).
    #[serde(skip)]
    pub request: ChatRequest,
    /// The defender answered the seed as written (`game.direct_seed_share`): one attack whose
    /// prompt is the seed, not generated, never judged or trained as the attacker's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
    /// The attacker's training pair among `attacks` (indices into `attacks`), when the
    /// rewards prefer one attack to another (never for a direct seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<PairRecord>,
}

/// Counters and timings of one rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutStats {
    /// Failed judgments by kind name (faithfulness, defender and attacker judging together).
    pub failures: BTreeMap<&'static str, u64>,
    /// Judgments requested (pointwise and pairwise).
    pub judgments: u64,
    /// Judgments that failed (pointwise and pairwise).
    pub judgments_failed: u64,
    /// Seconds in attacker generation.
    pub time_attacker_generation: f64,
    /// Seconds in defender generation.
    pub time_defender_generation: f64,
    /// Seconds in judging (faithfulness, defender and attacker judgments).
    pub time_judge: f64,
}

/// One step's rollout: a tree per seed, and its counters.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRollout {
    /// One tree per seed of the step, in the order the seeds were given.
    pub trees: Vec<SeedTree>,
    /// Counters and timings of the step.
    pub stats: RolloutStats,
}

#[cfg(test)]
pub(crate) mod tests;
