//! Activation (gradient) checkpointing per decoder layer, transformers'
//! `gradient_checkpointing`: the forward pass keeps only each layer's input, and the
//! backward pass recomputes one layer at a time.
//!
//! tch has no custom autograd functions, so the backward pass is driven by hand:
//! 1. forward: the layer stack runs without autograd, keeping each layer's input
//!    `[B, T, hidden]`; the last layer's output becomes a leaf that requires grad, and the
//!    final norm and LM head run with autograd from it;
//! 2. the caller backpropagates its loss as usual, which fills the head's and final norm's
//!    parameter gradients and the leaf's gradient `dL/dx_L`;
//! 3. [`CausalLm::finish_backward`] walks the layers from the last to the first: layer `l`
//!    is recomputed with autograd from its kept input (made a leaf), and
//!    `sum(out_l * dL/dout_l)` is backpropagated, which accumulates exactly the layer's
//!    parameter gradients and yields `dL/dx_l` for the layer below; the embeddings last.
//!
//! Adapter dropout: the forward pass's [`DropoutKey`] is kept on the tape, and the layer walk
//! recomputes each layer with it, so the recomputed layers apply the masks the loss was
//! computed with (masks are a function of the key, `model::dropout`; nothing global is drawn).
//!
//! Memory: `L x B x T x hidden` kept inputs plus one layer's activations, instead of all
//! `L` layers' (`game::memory_plan` has both formulas). Compute: one extra forward pass of
//! the layer stack. The gradients equal the plain backward pass's (same operations, same
//! order within a layer; a test checks <= 1e-5 in f32).

use std::sync::Mutex;

use tch::{Kind, Tensor};

use crate::model::causal_lm::CausalLm;
use crate::model::dropout::DropoutKey;
use crate::model::lora::{AdapterPass, LoraAdapter};

/// What one checkpointed forward pass kept for its backward pass.
#[derive(Debug)]
struct Tape {
    input_ids: Tensor,
    positions: Tensor,
    mask: Tensor,
    /// The forward pass's adapter dropout key: the recomputation applies the same masks.
    dropout: Option<DropoutKey>,
    /// Input of each layer (layer 0: the embeddings), without autograd history.
    inputs: Vec<Tensor>,
    /// The last layer's output as a leaf: its gradient is where the layer walk starts.
    leaf: Tensor,
}

/// Checkpointing state of a model: the tapes of forward passes whose backward pass has not
/// been finished yet (one per `token_logprobs` call with gradients).
#[derive(Debug, Default)]
pub struct Checkpointing {
    tapes: Mutex<Vec<Tape>>,
}

/// True when autograd records operations here (not inside `tch::no_grad`).
pub fn grad_enabled() -> bool {
    let probe = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    (&probe * 1.0).requires_grad()
}

impl CausalLm {
    /// Turns activation checkpointing per decoder layer on or off (off by default; a
    /// [`CausalLm::try_clone`] copy starts off). With it on, every forward pass with
    /// gradients must be followed by the caller's `backward()` and then
    /// [`CausalLm::finish_backward`].
    pub fn set_gradient_checkpointing(&mut self, on: bool) {
        self.checkpointing = on.then(Checkpointing::default);
    }

    /// Whether activation checkpointing is on.
    pub fn gradient_checkpointing(&self) -> bool {
        self.checkpointing.is_some()
    }

    /// Final-norm hidden states with checkpointing: see the module docs. `positions` and
    /// `mask` as for `Decoder::hidden_states`.
    pub(crate) fn hidden_states_checkpointed(
        &self,
        state: &Checkpointing,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: &Tensor,
    ) -> Tensor {
        let decoder = self.decoder();
        let n = decoder.num_layers();
        let mut inputs = Vec::with_capacity(n);
        let adapter = self.adapter().map(LoraAdapter::pass);
        let last = tch::no_grad(|| {
            let mut xs = decoder.embed(input_ids);
            for l in 0..n {
                let next = decoder.forward_layers(
                    input_ids,
                    Some(xs.shallow_clone()),
                    positions,
                    Some(mask),
                    None,
                    adapter,
                    l..l + 1,
                    false,
                );
                inputs.push(xs);
                xs = next;
            }
            xs
        });
        let leaf = last.set_requires_grad(true);
        let hidden = decoder.final_norm(&leaf);
        let tape = Tape {
            input_ids: input_ids.shallow_clone(),
            positions: positions.shallow_clone(),
            mask: mask.shallow_clone(),
            dropout: adapter.and_then(|a| a.dropout),
            inputs,
            leaf,
        };
        state.tapes.lock().expect("checkpoint tapes").push(tape);
        hidden
    }

    /// Completes the backward pass through the layers of every checkpointed forward pass
    /// since the last call (newest first), accumulating the parameter gradients the plain
    /// backward pass would have. Call it after `loss.backward()`; a no-op without
    /// checkpointing. A forward pass whose output did not reach the loss is dropped.
    pub fn finish_backward(&self) {
        let Some(state) = &self.checkpointing else { return };
        let tapes = std::mem::take(&mut *state.tapes.lock().expect("checkpoint tapes"));
        let decoder = self.decoder();
        for tape in tapes.into_iter().rev() {
            let mut grad = tape.leaf.grad();
            if !grad.defined() {
                continue;
            }
            // The same masks as the forward pass: its key, not a new call of the phase.
            let adapter =
                self.adapter().map(|adapter| AdapterPass { adapter, dropout: tape.dropout });
            for (l, input) in tape.inputs.into_iter().enumerate().rev() {
                let x = input.set_requires_grad(true);
                let out = decoder.forward_layers(
                    &tape.input_ids,
                    Some(x.shallow_clone()),
                    &tape.positions,
                    Some(&tape.mask),
                    None,
                    adapter,
                    l..l + 1,
                    false,
                );
                (out * &grad).sum(Kind::Float).backward();
                grad = x.grad();
            }
            let embedded = decoder.embed(&tape.input_ids);
            if embedded.requires_grad() {
                (embedded * &grad).sum(Kind::Float).backward();
            }
        }
    }
}
