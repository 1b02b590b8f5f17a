//! The facade the game uses to reach judges and curricula, whatever implements them (in
//! practice: WebAssembly components through [`crate::plugin`]). Typed inputs, typed per-item
//! results, typed failures; no wasmtime types cross this line.

use serde::{Deserialize, Serialize};

/// A seed request's category: the attacker's goal and every rubric depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Harmful,
    Benign,
}

/// One seed request (a JSONL line `{"id", "category", "text"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub id: String,
    pub category: Category,
    pub text: String,
}

/// Compare two responses under the named rubric, given a context (prompt or seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub rubric: String,
    pub context: String,
    pub a: String,
    pub b: String,
}

/// Scores of both sides of a comparison on the rubric's 0-10 scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    pub a: f32,
    pub b: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

/// Score one response under the named rubric, given a context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    pub rubric: String,
    pub context: String,
    pub response: String,
}

/// Why one judgment (or plugin call) produced no usable result. Every kind is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The guest trapped (`unreachable`, stack overflow, out-of-bounds...).
    Trap,
    /// The per-call deadline (guest time) or fuel ran out.
    Deadline,
    /// The call overspent its host-service budget: too many `generate` / rubric-registry
    /// calls, too many tokens requested from `generate`, or too much total wall-clock time
    /// (host time included). See `crate::plugin::HostBudget`.
    Budget,
    /// The instance hit its memory cap.
    Memory,
    /// A returned string or list exceeded the host's size caps.
    Oversize,
    /// The guest returned something the contract forbids (NaN, out-of-range score, wrong
    /// number of results...).
    InvalidOutput,
    /// The plugin reported that the judge model's output could not be parsed.
    Parse,
    /// The plugin reported a refusal by the judge model.
    Refused,
    /// The plugin reported invalid input.
    Invalid,
    /// The plugin reported a failure of a host service (e.g. generation).
    Host,
}

impl FailureKind {
    pub const ALL: [FailureKind; 10] = [
        Self::Trap,
        Self::Deadline,
        Self::Budget,
        Self::Memory,
        Self::Oversize,
        Self::InvalidOutput,
        Self::Parse,
        Self::Refused,
        Self::Invalid,
        Self::Host,
    ];

    /// Stable snake_case name, used in metric names (`judge/failures/<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trap => "trap",
            Self::Deadline => "deadline",
            Self::Budget => "budget",
            Self::Memory => "memory",
            Self::Oversize => "oversize",
            Self::InvalidOutput => "invalid_output",
            Self::Parse => "parse",
            Self::Refused => "refused",
            Self::Invalid => "invalid",
            Self::Host => "host",
        }
    }
}

/// A typed failure, naming the plugin that produced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("plugin {plugin}: {} failure: {message}", kind.as_str())]
pub struct Failure {
    pub kind: FailureKind,
    /// `name@version (sha256 prefix)` of the plugin.
    pub plugin: String,
    pub message: String,
}

/// A preference judge. The outer `Result` is for errors that stop the run (the failure
/// policy tripped, the host is broken); per-item failures are the inner results.
pub trait Judge {
    fn compare(&mut self, batch: &[Comparison])
    -> anyhow::Result<Vec<Result<ScoredPair, Failure>>>;
    fn assess(&mut self, batch: &[Assessment]) -> anyhow::Result<Vec<Result<f32, Failure>>>;
}

/// A judge as the training loop uses it: judgments plus whatever run metrics its host keeps
/// (cumulative failure counts, order agreement, judge-model time).
pub trait RunJudge: Judge {
    /// Metrics to merge into each step's line, by metric name (cumulative values are fine).
    fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        std::collections::BTreeMap::new()
    }
    /// Seconds spent in the judge model's generation so far (0 for heuristic judges).
    fn generation_seconds(&self) -> f64 {
        0.0
    }
}

/// What happened to one seed in one step, fed back to the curriculum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub seed_id: String,
    pub attacker_reward: f32,
    pub defender_reward: f32,
    pub faithful: bool,
}

/// Chooses which seeds the attacker sees next. Stateful; its state is checkpointed.
///
/// Every call answers `Result<_, Failure>`, one typed failure per call as [`Judge`] has per
/// item: the game counts a failure by its [`FailureKind`] (`curriculum/failures/<kind>`) and
/// lets `plugins.failure_policy.curriculum` decide whether the run goes on
/// (`crate::game::failures`). No strings cross this seam.
pub trait Curriculum {
    /// Starts the curriculum on the run's training seeds (harmful then benign) with the
    /// run's RNG seed.
    fn init(&mut self, seeds: &[Seed], rng_seed: u64) -> Result<(), Failure>;
    /// `size` indices into the `seeds` given to `init`, all of `category` (the caller checks
    /// this again and treats a wrong answer as [`FailureKind::InvalidOutput`]).
    fn next_batch(&mut self, category: Category, size: u32) -> Result<Vec<u32>, Failure>;
    /// What happened to the seeds of the last step, one [`Outcome`] per seed.
    fn observe(&mut self, outcomes: &[Outcome]) -> Result<(), Failure>;
    /// The curriculum's state as bytes (stored hex-encoded in checkpoints).
    fn save_state(&mut self) -> Result<Vec<u8>, Failure>;
    /// Restores a state from [`Curriculum::save_state`]; called after `init` on resume.
    fn load_state(&mut self, state: &[u8]) -> Result<(), Failure>;
    /// The name failures are attributed to ([`Failure::plugin`]): for a plugin, its
    /// `name@version (sha256 prefix)`.
    fn label(&self) -> String {
        "curriculum".into()
    }
}
