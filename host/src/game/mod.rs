//! The AdvGame logic (game.md): configuration, seeds, attacker-output parsing, the per-step
//! rollout tree, rewards and preference pairs, the DPO/IPO/GRPO losses, the EMA copies, the
//! optimiser and schedule, metrics, checkpoints and the training loop.
//!
//! Data flows one way: the game drives the players through [`crate::llm::Generator`] and the
//! judges/curricula through [`crate::judging`]; it never sees wasmtime types.

pub mod checkpoint;
pub mod config;
pub mod ema;
pub mod loss;
pub mod metrics;
pub mod optim;
pub mod pairs;
pub mod parse;
pub mod plugins;
pub mod policy;
pub mod prompts;
pub mod rewards;
pub mod rollout;
pub mod schedule;
pub mod seeds;
#[cfg(test)]
pub(crate) mod testkit;
pub mod trainer;
