//! The facade the game uses to reach judges and curricula, whatever implements them (in
//! practice: WebAssembly components through [`crate::plugin`]). Typed inputs, typed per-item
//! results, typed failures; no wasmtime types cross this line.

use serde::{Deserialize, Serialize};

/// A seed request's category: the attacker's goal and every rubric depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// A harmful request: the attacker tries to get a useful answer while keeping the harmful
    /// intent; the defender should deflect (paper's "deflection" rubric).
    Harmful,
    /// A benign request: the attacker tries to provoke a refusal (probing over-refusal); the
    /// defender should comply.
    Benign,
}

/// One seed request (a JSONL line `{"id", "category", "text"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    /// Unique id within the seed file; curricula and checkpoints refer to seeds by it.
    pub id: String,
    /// Harmful or benign (`"harmful"` / `"benign"` in JSON).
    pub category: Category,
    /// The request itself, as a user would write it.
    pub text: String,
}

/// Compare two responses under the named rubric, given a context (prompt or seed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// Name of the rubric to judge under, as its plugin's `info().name` (e.g. `deflection`,
    /// `compliance`, `refusal`).
    pub rubric: String,
    /// What the judge sees as the request: the attacker's prompt `x` (defender judging) or the
    /// seed `s` (attacker judging), per arXiv 2512.20806's rollout tree.
    pub context: String,
    /// The response shown in slot A.
    pub a: String,
    /// The response shown in slot B.
    pub b: String,
}

/// Scores of both sides of a comparison on the rubric's 0-10 scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    /// Score of response A, 0 to 10 (checked finite and in range by the host).
    pub a: f32,
    /// Score of response B, 0 to 10.
    pub b: f32,
    /// The judge's reasoning, when it gives one (capped in size by the host; logged, never
    /// scored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
}

/// Score one response under the named rubric, given a context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// Name of the rubric to judge under (e.g. `faithfulness-harmful`).
    pub rubric: String,
    /// What the response answers or rewrites: the seed for a faithfulness check.
    pub context: String,
    /// The text to score.
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
    /// Every kind, in the order metrics list them.
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
    /// Which of the counted kinds this is.
    pub kind: FailureKind,
    /// `name@version (sha256 prefix)` of the plugin.
    pub plugin: String,
    /// What went wrong, for logs (plugin-reported text or the host's description of a trap,
    /// deadline or cap).
    pub message: String,
}

/// A preference judge. The outer `Result` is for errors that stop the run (the failure
/// policy tripped, the host is broken); per-item failures are the inner results.
pub trait Judge {
    /// Scores each comparison: one result per input, in order. `Err` of the outer result
    /// stops the run.
    fn compare(&mut self, batch: &[Comparison])
    -> anyhow::Result<Vec<Result<ScoredPair, Failure>>>;
    /// Scores each response pointwise on the rubric's 0-10 scale: one result per input, in
    /// order.
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
    /// The seed's id ([`Seed::id`]).
    pub seed_id: String,
    /// Mean attacker reward over the seed's attacks this step: -1 for unparsable or
    /// unfaithful prompts, otherwise the 0-10 judge scale; 0 when none was defined.
    pub attacker_reward: f32,
    /// Mean defender reward over all replies to the seed's attacks this step (0-10 scale, -1
    /// for truncated or unparsable replies); 0 when none was defined.
    pub defender_reward: f32,
    /// Whether at least one of the attacker's prompts for this seed was judged faithful.
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
