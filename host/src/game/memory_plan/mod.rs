//! `train --memory-plan`: the memory a run configuration will take on its device, computed
//! before any weights load (only `config.json` of each model, the tokenizer and the prompt
//! files are read), with a warning when it will not fit.
//!
//! The plan is a sum of named terms, each with the formula that produced it, grouped by
//! phase: what stays **resident** for the whole run (weights, EMA copies and their f32
//! masters, initial copies, optimiser state, gradients, the local judge), and the transient
//! peak of each phase that comes and goes (**generation**: KV cache and prefill; **update**:
//! activations kept for backward, LM-head logits, backward temporaries; **checkpoint**:
//! serialisation buffers). The two players update one after the other, so the update phase
//! counts the larger player's micro-batch, not both. Peak = resident + the largest phase.
//!
//! Where the numbers come from:
//! - Parameter counts: [`DecoderSpec::parameters`] (the same list the loader registers).
//! - Activations: counted from the operations of `model/decoder.rs` and `model/scoring.rs`,
//!   tensor by tensor, as the ones autograd saves for backward ([`layer_activation_bytes`]
//!   lists them). Attention is the fused kernel (libtorch's CPU flash attention, CUDA's
//!   memory-efficient attention with a mask), which saves its output and a log-sum-exp, not
//!   the `T x T` probabilities.
//! - Worst-case lengths: every completion at its `max_tokens`, prompts as long as the
//!   longest seed rendered through the attacker instruction and the chat template (tokenised
//!   with the model's tokenizer when the folder has one, else ~4 bytes per token), the
//!   defender's prompt as long as the attacker's longest completion, micro-batches full.
//! - Runtime constants ([`CPU_RUNTIME_BYTES`], [`CPU_ALLOCATOR_FACTOR`],
//!   [`CUDA_CONTEXT_BYTES`]): measured, see their docs and BENCHMARKS.md.

mod estimate;
mod inputs;
pub mod probe;
mod render;
#[cfg(test)]
mod tests;
mod transient;

pub use estimate::{decode_layout_bytes, dtype_bytes, parameter_count};
pub use inputs::{AdapterPlan, Lengths, PlanInputs};
pub use render::{device_capacity, gib};
pub use transient::layer_activation_bytes;

const GIB: f64 = (1u64 << 30) as f64;

/// Resident memory of the process before any model loads on CPU: libtorch's and wasmtime's
/// code and data, the compiled plugins, the tokenizers. Measured: `VmHWM` 566 MiB of
/// `advgame-host train` on the quickstart config with both players swapped for the 2-layer
/// `tiny-llama` fixture and `max_steps = 0` (plugins loaded, four 13 MB model copies), i.e.
/// ~500 MiB without the models (BENCHMARKS.md, "Memory plan").
pub const CPU_RUNTIME_BYTES: u64 = 500 << 20;

/// What the C heap adds on CPU over the bytes the tensors of a transient phase hold: 1, as
/// measured with the fixed mmap threshold `train` sets ([`crate::heap`]), under which freed
/// tensors leave the resident set at once. Measured with `ADVGAME_MEMORY_PROBE` on the LoRA
/// quickstart with checkpointing (BENCHMARKS.md, "Memory plan"): the defender's 4-row
/// micro-batch rose 143 MiB over the RSS before it against 145 MB by the formulas (0.99x),
/// the attacker's 6-row one 234 MiB against ~310 MB (0.75x). Under glibc's default dynamic
/// threshold (`ADVGAME_HEAP=default`) the same backward pass kept ~530 MiB of freed blocks
/// (about 3x): the factor 1.2 this constant had then was calibrated on runs without
/// checkpointing, where the retained blocks are a smaller share.
pub const CPU_ALLOCATOR_FACTOR: f64 = 1.0;

/// A CUDA context with cuBLAS/cuDNN workspaces and kernels loaded: ~0.5-1 GiB on recent
/// GPUs by PyTorch's own guidance ("CUDA context ... typically 300 MB - 1 GB", PyTorch CUDA
/// semantics notes); the plan takes 1 GiB. Not measured here (no GPU in the build machine).
pub const CUDA_CONTEXT_BYTES: u64 = 1 << 30;

/// When a term's memory is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// For the whole run.
    Resident,
    /// While the players generate the step's rollouts.
    Generation,
    /// While one player computes its loss and gradients.
    Update,
    /// While a checkpoint is written.
    Checkpoint,
}

impl Phase {
    pub(super) fn label(self) -> &'static str {
        match self {
            Phase::Resident => "resident",
            Phase::Generation => "generation",
            Phase::Update => "update",
            Phase::Checkpoint => "checkpoint",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// When the memory is held.
    pub phase: Phase,
    /// What it is.
    pub what: String,
    /// Bytes.
    pub bytes: u64,
    /// How `bytes` was computed.
    pub formula: String,
}

/// The device's memory, and where the number came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Bytes available to the run.
    pub bytes: u64,
    /// `MemAvailable`, `nvidia-smi`, or `--device-memory`.
    pub source: String,
}

/// The computed plan.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// `models.device`.
    pub device: String,
    /// Every term, resident first.
    pub terms: Vec<Term>,
    /// Token lengths the plan assumed.
    pub lengths: Lengths,
    /// Factor applied to the transient phases (allocator overhead; 1 on CUDA).
    pub transient_factor: f64,
}

impl MemoryPlan {
    /// Bytes held for the whole run.
    pub fn resident(&self) -> u64 {
        self.phase(Phase::Resident)
    }

    /// Bytes of one phase's terms (before the allocator factor).
    pub fn phase(&self, phase: Phase) -> u64 {
        self.terms.iter().filter(|t| t.phase == phase).map(|t| t.bytes).sum()
    }

    /// The phase with the largest transient memory and its bytes (allocator factor applied).
    pub fn largest_phase(&self) -> (Phase, u64) {
        [Phase::Generation, Phase::Update, Phase::Checkpoint]
            .into_iter()
            .map(|p| (p, (self.phase(p) as f64 * self.transient_factor) as u64))
            .max_by_key(|p| p.1)
            .expect("three phases")
    }

    /// Planned peak: resident + the largest phase.
    pub fn peak(&self) -> u64 {
        self.resident() + self.largest_phase().1
    }
}
