//! advgame-host: adversarial self-play safety training (AdvGame, arXiv 2512.20806) with
//! preference judges, rubrics and curricula as sandboxed WebAssembly components.
//!
//! Rooms (see ARCHITECTURE.md):
//! - [`llm`]: the seam between language-model backends and their users.
//! - [`plugin`]: the wasmtime host for WIT components (judges, rubrics, curricula).
//! - [`model`]: the libtorch model engine (HF Llama/Qwen2, generation, log-probs, checkpoints).
//! - [`judging`]: the judge/curriculum facade the game talks to (typed results, typed failures).
//! - [`game`]: the AdvGame rollout tree, rewards, pairs, losses and training loop.
//! - [`openai`]: the OpenAI HTTP API's wire types and a remote [`llm::Generator`] client.
//! - [`serve`]: `advgame-host serve`, an OpenAI-compatible server over the model engine.
//! - [`eval`]: `eval` and `redteam`: answering, judging, metrics, reports and plots.
//! - [`cli`]: clap commands; the only place that prints for humans.
//! - [`jsonl`]: the one reader of JSON Lines data files (seeds, judge inputs, eval sets).
//! - [`heap`]: glibc's malloc tuned for training (freed tensors go back to the kernel).

pub mod cli;
pub mod eval;
pub mod game;
pub mod heap;
pub mod jsonl;
pub mod judging;
pub mod llm;
pub mod model;
pub mod openai;
pub mod plugin;
pub mod rng;
pub mod serve;
