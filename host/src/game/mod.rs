//! The AdvGame logic (game.md): configuration, seeds, attacker-output parsing, the per-step
//! rollout tree, rewards and preference pairs, the DPO/IPO/GRPO losses, the EMA copies, the
//! optimiser and schedule, metrics, checkpoints and the training loop.
//!
//! Data flows one way: the game drives the players through [`crate::llm::Generator`] and the
//! judges/curricula through [`crate::judging`]; it never sees wasmtime types. The loop needs
//! one more thing from a player than the chat seam gives, differentiable log-probs and its
//! weights: that is [`policy::Policy`], implemented by [`crate::model::ChatModel`] (and by a
//! one-logit-per-answer toy in the unit tests, so the loop is tested without a model).
//!
//! Decisions worth knowing:
//! - One step = one batched call per phase ([`rollout`]): attacker generation, faithfulness
//!   assessment, defender generation, defender comparisons, attacker comparisons.
//! - A failed judgment is never a silent score: the member gets no reward and drops out of
//!   pair selection; failures are counted by kind and the config's failure policy decides
//!   when the run stops ([`failures`]).
//! - Randomness of step t derives from `(algorithm.seed, t, purpose)`, so the checkpoint's
//!   RNG state is just the step, and a resumed run replays the uninterrupted one exactly.
//! - AdamW is ours ([`optim`]) because tch's optimiser state cannot be saved; it keeps f32
//!   master weights for bf16 parameters.
//! - A/B position handling (swap, both orders, agreement) lives in the judge host
//!   ([`crate::plugin::JudgeOptions`]); the config's `game.swap_share` and
//!   `game.both_orders_share` feed it.

pub mod checkpoint;
pub mod config;
pub mod ema;
pub mod failures;
pub mod lora;
pub mod loss;
pub mod memory_plan;
pub mod metrics;
pub mod optim;
pub mod pairs;
pub mod parse;
pub mod player;
pub mod plugins;
pub mod policy;
pub mod prompts;
pub mod retain;
pub mod rewards;
pub mod rng;
pub mod rollout;
pub mod run;
pub mod run_dir;
pub mod schedule;
pub mod seeds;
#[cfg(test)]
pub(crate) mod testkit;
pub mod trainer;
pub mod update;
pub mod validate;
