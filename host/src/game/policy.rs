//! What the training loop needs from a player model, beyond answering chat requests: the
//! exact prompt tokens of a request, differentiable per-token log-probs of completions, its
//! weights, a deep copy, and saving in Hugging Face layout. The model engine's
//! [`crate::model::ChatModel`] implements it; the loop never sees the engine's internals.
//!
//! # Padding and alignment contract of [`Policy::token_logprobs`]
//!
//! A batch of `B` [`Completion`]s of different lengths comes back as two `[B, C]` f32
//! tensors, `C` the longest completion (in tokens) of the batch:
//! - **Rows** follow the input order: row `b` is `items[b]`.
//! - **Columns are completion-aligned**: column `j` is completion token `j` (the log-prob of
//!   `completion_ids[j]` given the prompt and `completion_ids[..j]`), whatever the prompt's
//!   length. Prompts never appear in the output; how an engine pads them inside its forward
//!   pass (the model engine left-pads them, attention-masked, positions counted from the
//!   first real token) is invisible.
//! - **Right padding**: a row shorter than `C` is padded on the right; its padding entries in
//!   `logprobs` are exactly `0.0`.
//! - **The mask** is `1.0` at `[b, j]` when `j < items[b].completion_ids.len()` (a real token)
//!   and `0.0` otherwise, so `(logprobs * mask).sum(1)` and `logprobs.sum(1)` are both the
//!   sequence log-prob, and `mask.sum(1)` is each completion's length.
//! - **Rows are independent**: a row's values equal those of the same completion scored
//!   alone (up to floating-point reduction order), so micro-batching never changes a loss.
//! - An empty batch or one whose completions are all empty gives `[B, 0]` tensors.
//!
//! `tests/integration/model_scoring.rs` checks this contract on the tiny fixture models.

use std::path::Path;

use anyhow::Context;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::llm::{ChatRequest, Generator};
use crate::model::{Completion, DropoutSeed, LoraAdapter, LoraConfig, TokenLogprobs};

/// A trainable chat policy.
pub trait Policy: Generator + Sized {
    /// Loads a model directory (Hugging Face layout).
    fn load(dir: &Path, device: Device, kind: Kind) -> anyhow::Result<Self>;

    /// Token ids of the request's full prompt (chat template, generation prompt, prefill): the
    /// context the sampled completion tokens followed.
    fn prompt_ids(&self, request: &ChatRequest) -> anyhow::Result<Vec<i64>>;

    /// Token ids of `text` as a completion (no special tokens added): how a reply the model
    /// did not sample, such as `algorithm.benign_rejected_refusal`, enters the loss.
    fn completion_ids(&self, text: &str) -> anyhow::Result<Vec<i64>> {
        let _ = text;
        anyhow::bail!("this policy type cannot tokenize a completion")
    }

    /// Per-token log-probs `[B, C]` (f32) of each completion given its prompt, and a 0/1 f32
    /// mask `[B, C]` of real tokens, laid out as the
    /// [module's contract](crate::game::policy#padding-and-alignment-contract-of-policytoken_logprobs)
    /// says: rows in input order, columns completion-aligned, right-padded with `0.0`.
    /// Differentiable unless called under `tch::no_grad`.
    ///
    /// # Errors
    /// An empty prompt or a token id outside the vocabulary (engines say which item).
    fn token_logprobs(&self, items: &[Completion]) -> anyhow::Result<TokenLogprobs>;

    /// The trainable weights (the optimiser's parameters, the EMA's source).
    fn var_store(&self) -> &VarStore;

    /// Backpropagates `loss` (a scalar built from [`Policy::token_logprobs`] outputs) into
    /// the weights' gradients. Models with activation checkpointing finish the pass through
    /// the layers they recomputed here.
    fn backward(&self, loss: &Tensor) -> anyhow::Result<()> {
        loss.backward();
        Ok(())
    }

    /// Turns activation checkpointing per decoder layer on or off (a no-op for policies
    /// without layers).
    fn set_gradient_checkpointing(&mut self, _on: bool) {}

    /// A deep copy sharing no tensor storage.
    fn try_clone(&self) -> anyhow::Result<Self>;

    /// Saves the weights in Hugging Face layout (an adapter player: its adapter, PEFT layout).
    fn save_pretrained(&self, dir: &Path) -> anyhow::Result<()>;

    /// A LoRA player on this model's (now frozen) base: a fresh adapter initialised as PEFT
    /// does (`B = 0`, so it starts as the base model), its `A` drawn from `seed`. The
    /// default refuses: only engines with adapters implement it.
    fn with_new_adapter(&self, config: &LoraConfig, seed: u64) -> anyhow::Result<Self> {
        let _ = (config, seed);
        anyhow::bail!("this policy type has no LoRA adapters")
    }

    /// A LoRA player on this model's base from a PEFT adapter folder, its matrices in `kind`.
    fn load_adapter(&self, dir: &Path, kind: Kind) -> anyhow::Result<Self> {
        let _ = (dir, kind);
        anyhow::bail!("this policy type has no LoRA adapters")
    }

    /// The same base with a deep copy of this player's adapter in `kind` (f32 for an EMA
    /// copy, whatever the model dtype). Errors when there is no adapter.
    fn adapter_copy(&self, kind: Kind) -> anyhow::Result<Self> {
        let _ = kind;
        anyhow::bail!("this policy type has no LoRA adapters")
    }

    /// The same base with adapters off (the frozen base model).
    fn without_adapter(&self) -> anyhow::Result<Self> {
        anyhow::bail!("this policy type has no LoRA adapters")
    }

    /// Adapter dropout on, its masks keyed by `seed` (`Some`, for the optimiser's forward
    /// passes: see `model::dropout`), or off (`None`). Each call starts a new phase whose
    /// forward passes are counted from 0, so the same seed replays the same masks.
    fn set_training(&mut self, seed: Option<DropoutSeed>) {
        let _ = seed;
    }
}

impl Policy for crate::model::ChatModel {
    fn load(dir: &Path, device: Device, kind: Kind) -> anyhow::Result<Self> {
        crate::model::ChatModel::load(dir, device, kind)
    }

    fn prompt_ids(&self, request: &ChatRequest) -> anyhow::Result<Vec<i64>> {
        self.encode(&self.render_prompt(request)?)
    }

    fn completion_ids(&self, text: &str) -> anyhow::Result<Vec<i64>> {
        self.encode(text)
    }

    fn token_logprobs(&self, items: &[Completion]) -> anyhow::Result<TokenLogprobs> {
        crate::model::ChatModel::token_logprobs(self, items)
    }

    fn var_store(&self) -> &VarStore {
        self.lm().var_store()
    }

    fn backward(&self, loss: &Tensor) -> anyhow::Result<()> {
        loss.backward();
        self.lm().finish_backward();
        Ok(())
    }

    fn set_gradient_checkpointing(&mut self, on: bool) {
        self.lm_mut().set_gradient_checkpointing(on);
    }

    fn try_clone(&self) -> anyhow::Result<Self> {
        crate::model::ChatModel::try_clone(self)
    }

    fn save_pretrained(&self, dir: &Path) -> anyhow::Result<()> {
        crate::model::ChatModel::save_pretrained(self, dir)
    }

    fn with_new_adapter(&self, config: &LoraConfig, seed: u64) -> anyhow::Result<Self> {
        let lm = self.lm();
        let adapter = LoraAdapter::new(lm.spec(), config, lm.device(), lm.kind(), seed)?;
        self.with_adapter(adapter)
    }

    fn load_adapter(&self, dir: &Path, kind: Kind) -> anyhow::Result<Self> {
        crate::model::ChatModel::load_adapter(self, dir, Some(kind))
            .with_context(|| format!("loading the adapter {}", dir.display()))
    }

    fn adapter_copy(&self, kind: Kind) -> anyhow::Result<Self> {
        crate::model::ChatModel::adapter_copy(self, kind)
    }

    fn without_adapter(&self) -> anyhow::Result<Self> {
        crate::model::ChatModel::without_adapter(self)
    }

    fn set_training(&mut self, seed: Option<DropoutSeed>) {
        if let Some(adapter) = self.lm_mut().adapter_mut() {
            adapter.set_training(seed);
        }
    }
}
