//! The libtorch model engine: Hugging Face Llama, Mistral, Qwen2 and Qwen3 checkpoints on
//! tch, batched KV-cache generation, differentiable completion log-probs, and HF-layout
//! checkpoints.
//!
//! - [`config`]: `config.json` structs per architecture family, with transformers' defaults;
//!   [`rope`]: the RoPE fields of every transformers version (v4 `rope_scaling`, v5
//!   `rope_parameters`).
//! - [`decoder`]: the transformer shared by the families; [`llama`], [`mistral`], [`qwen2`]
//!   and [`qwen3`] map their configs onto it.
//! - [`error`]: [`LoadError`], the typed load errors (each names its file, and the field).
//! - [`weights`]: safetensors reading (single file or sharded) and writing.
//! - [`causal_lm`]: [`CausalLm`], weights in a `VarStore`, forward, clone, save; a view of a
//!   shared frozen base plus an optional [`lora`] adapter (PEFT layout, merge for export).
//! - [`checkpointing`]: activation checkpointing per decoder layer.
//! - [`generate`]: batched decoding over token ids; [`scoring`]: completion log-probs.
//! - [`template`]: chat templates; [`chat`]: [`ChatModel`], the [`crate::llm::Generator`].

pub mod causal_lm;
pub mod chat;
pub mod checkpointing;
pub mod config;
pub mod decoder;
pub mod dropout;
pub mod error;
pub mod generate;
pub mod llama;
pub mod lora;
pub mod mistral;
pub mod qwen2;
pub mod qwen3;
pub mod rope;
pub mod scoring;
pub mod template;
#[cfg(test)]
mod testkit;
pub mod weights;

pub use causal_lm::{CausalLm, default_kind, device_name, parse_device};
pub use chat::ChatModel;
pub use config::ModelConfig;
pub use dropout::{DropoutKey, DropoutSeed};
pub use error::{FieldError, LoadError};
pub use lora::{AdapterPass, LoraAdapter, LoraConfig};
pub use scoring::{Completion, TokenLogprobs};
pub use template::{ChatTemplate, Message};
