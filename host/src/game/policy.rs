//! What the training loop needs from a player model, beyond answering chat requests: the
//! exact prompt tokens of a request, differentiable per-token log-probs of completions, its
//! weights, a deep copy, and saving in Hugging Face layout. The model engine's
//! [`crate::model::ChatModel`] implements it; the loop never sees the engine's internals.

use std::path::Path;

use anyhow::Context;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use crate::llm::{ChatRequest, Generator};
use crate::model::{LoraAdapter, LoraConfig};

/// A trainable chat policy.
pub trait Policy: Generator + Sized {
    /// Loads a model directory (Hugging Face layout).
    fn load(dir: &Path, device: Device, kind: Kind) -> anyhow::Result<Self>;

    /// Token ids of the request's full prompt (chat template, generation prompt, prefill): the
    /// context the sampled completion tokens followed.
    fn prompt_ids(&self, request: &ChatRequest) -> anyhow::Result<Vec<i64>>;

    /// Per-token log-probs `[B, C]` of each completion given its prompt, and a 0/1 float mask
    /// `[B, C]` of real tokens. Differentiable unless called under `tch::no_grad`.
    fn token_logprobs(&self, items: &[(Vec<i64>, Vec<i64>)]) -> anyhow::Result<(Tensor, Tensor)>;

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

    /// Adapter dropout on (`true`, for the optimiser's forward passes) or off.
    fn set_training(&mut self, training: bool) {
        let _ = training;
    }
}

impl Policy for crate::model::ChatModel {
    fn load(dir: &Path, device: Device, kind: Kind) -> anyhow::Result<Self> {
        crate::model::ChatModel::load(dir, device, kind)
    }

    fn prompt_ids(&self, request: &ChatRequest) -> anyhow::Result<Vec<i64>> {
        self.encode(&self.render_prompt(request)?)
    }

    fn token_logprobs(&self, items: &[(Vec<i64>, Vec<i64>)]) -> anyhow::Result<(Tensor, Tensor)> {
        let t = crate::model::ChatModel::token_logprobs(self, items)?;
        Ok((t.logprobs, t.mask))
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

    fn set_training(&mut self, training: bool) {
        if let Some(adapter) = self.lm_mut().adapter_mut() {
            adapter.set_training(training);
        }
    }
}
