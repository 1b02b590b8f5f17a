//! The plan's terms: bytes per phase computed from the inputs (pure arithmetic, no files).

use anyhow::Result;

use super::inputs::PlanInputs;
use super::render::count;
use super::transient;
use super::{CPU_ALLOCATOR_FACTOR, CPU_RUNTIME_BYTES, CUDA_CONTEXT_BYTES, MemoryPlan, Phase, Term};
use crate::game::config::{Dtype, Sampler};
use crate::model::decoder::DecoderSpec;

/// Bytes of one element of the model dtype.
pub fn dtype_bytes(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F32 => 4,
        Dtype::Bf16 | Dtype::F16 => 2,
    }
}

/// Parameters of a model (tied embeddings counted once).
pub fn parameter_count(spec: &DecoderSpec) -> u64 {
    spec.parameters().iter().map(|(_, s)| s.iter().product::<i64>() as u64).sum()
}

impl MemoryPlan {
    /// Computes the plan (pure: no files, no device).
    pub fn compute(x: &PlanInputs) -> Result<Self> {
        let e = dtype_bytes(x.dtype);
        let low = e != 4;
        let mut terms = Vec::new();
        let mut add = |phase, what: String, bytes: u64, formula: String| {
            terms.push(Term { phase, what, bytes, formula })
        };
        let players = [("attacker", &x.attacker), ("defender", &x.defender)];
        let uses_ema = x.sampler == Sampler::Ema;
        let cuda = x.device.starts_with("cuda");
        if cuda {
            add(
                Phase::Resident,
                "CUDA context".into(),
                CUDA_CONTEXT_BYTES,
                "constant (PyTorch's typical CUDA context + cuBLAS workspace)".into(),
            );
        } else {
            add(
                Phase::Resident,
                "runtime (libtorch, wasmtime, plugins, tokenizers)".into(),
                CPU_RUNTIME_BYTES,
                "measured constant (BENCHMARKS.md)".into(),
            );
        }
        let shared_base = x.adapter.is_some() && x.same_base;
        if shared_base {
            let n = parameter_count(&x.attacker);
            add(
                Phase::Resident,
                "base weights (frozen, shared by both players)".into(),
                n * e,
                format!("{} params x {e} B", count(n)),
            );
        }
        for (name, spec) in players {
            let n = parameter_count(spec);
            match &x.adapter {
                None => {
                    add(
                        Phase::Resident,
                        format!("{name} weights"),
                        n * e,
                        format!("{} params x {e} B", count(n)),
                    );
                    if uses_ema {
                        add(
                            Phase::Resident,
                            format!("{name} EMA copy"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                        if low {
                            add(
                                Phase::Resident,
                                format!("{name} EMA f32 masters"),
                                n * 4,
                                format!("{} params x 4 B", count(n)),
                            );
                        }
                    }
                    let uses = x.initial_uses(name);
                    if !uses.is_empty() {
                        add(
                            Phase::Resident,
                            format!("{name} initial copy ({})", uses.join(" / ")),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                    }
                    learner_terms(&mut add, x, name, n, e);
                }
                Some(a) => {
                    if !shared_base {
                        add(
                            Phase::Resident,
                            format!("{name} base weights (frozen)"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                    }
                    let p = a.parameters(spec)?;
                    let per = format!(
                        "r {} x (in + out) over {} targets x {} layers = {} params",
                        a.r,
                        a.target_modules.len(),
                        spec.num_layers,
                        count(p)
                    );
                    add(
                        Phase::Resident,
                        format!("{name} LoRA adapter"),
                        p * e,
                        format!("{per} x {e} B"),
                    );
                    if uses_ema {
                        add(
                            Phase::Resident,
                            format!("{name} EMA adapter (f32)"),
                            p * 4,
                            format!("{} params x 4 B", count(p)),
                        );
                    }
                    // The on-policy reference is the base with the adapter off: no copy.
                    learner_terms(&mut add, x, name, p, e);
                }
            }
        }
        if let Some(j) = &x.judge {
            let n = parameter_count(j);
            add(
                Phase::Resident,
                "judge model weights".into(),
                n * e,
                format!("{} params x {e} B", count(n)),
            );
        }

        // The decode layout (CPU): a transposed copy of a model's projections and LM head,
        // made at its first generation and kept while its weights stay the same.
        if !cuda {
            for (what, bytes, formula) in decode_layouts(x, e)? {
                add(Phase::Resident, format!("decode layout: {what}"), bytes, formula);
            }
        }
        terms.push(transient::generation_term(x, e));
        terms.extend(transient::update_terms(x, e));

        // Checkpoint: `weights::save` copies one model into byte buffers, and the optimiser
        // state is serialised in memory.
        let (ckpt_n, ckpt_what) = match &x.adapter {
            None => (parameter_count(&x.defender).max(parameter_count(&x.attacker)), "full model"),
            Some(a) => (a.parameters(&x.defender)?.max(a.parameters(&x.attacker)?), "adapter"),
        };
        let opt = ckpt_n * (8 + if low { 4 } else { 0 });
        terms.push(Term {
            phase: Phase::Checkpoint,
            what: "checkpoint buffers (optimiser state of one player)".into(),
            bytes: opt.max(ckpt_n * e),
            formula: format!(
                "{} {ckpt_what} params x {} B (m, v{})",
                count(ckpt_n),
                if low { 12 } else { 8 },
                if low { ", f32 master" } else { "" }
            ),
        });
        Ok(Self {
            device: x.device.clone(),
            terms,
            lengths: x.lengths.clone(),
            transient_factor: if cuda { 1.0 } else { CPU_ALLOCATOR_FACTOR },
        })
    }
}

/// The gradients and AdamW state of `name`'s `n` trained parameters, or, for an attacker
/// that is never updated (gradients and optimiser state are made at its first backward and
/// step), one zero-byte line that says why.
fn learner_terms(
    add: &mut impl FnMut(Phase, String, u64, String),
    x: &PlanInputs,
    name: &str,
    n: u64,
    e: u64,
) {
    if name == "attacker"
        && let Some(reason) = x.attacker_idle_reason()
    {
        add(
            Phase::Resident,
            "attacker gradients, AdamW state, update: none (never updated)".into(),
            0,
            reason.into(),
        );
        return;
    }
    optimiser_terms(add, name, n, e);
}

fn optimiser_terms(add: &mut impl FnMut(Phase, String, u64, String), name: &str, n: u64, e: u64) {
    add(
        Phase::Resident,
        format!("{name} gradients"),
        n * e,
        format!("{} params x {e} B", count(n)),
    );
    add(
        Phase::Resident,
        format!("{name} AdamW m, v (f32)"),
        n * 8,
        format!("{} params x 2 x 4 B", count(n)),
    );
    if e != 4 {
        add(
            Phase::Resident,
            format!("{name} AdamW f32 master weights"),
            n * 4,
            format!("{} params x 4 B", count(n)),
        );
    }
}

/// Bytes of one decode layout of a model of shape `spec` (`model/decoder.rs`,
/// `DecodeLayout`): every projection weight transposed, and the LM head (a separate copy
/// even when it is tied to the embeddings), in the model dtype.
pub fn decode_layout_bytes(spec: &DecoderSpec, e: u64) -> u64 {
    let (h, i) = (spec.hidden_size, spec.intermediate_size);
    let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
    let per_layer = (2 * h * q + 2 * h * kv + 3 * h * i) as u64;
    (per_layer * spec.num_layers as u64 + (spec.vocab_size * h) as u64) * e
}

/// The decode layouts a CPU run holds (`DecodeLayout` lives with a model's weights, so one
/// per set of weights that generates; none for an attacker that writes nothing):
/// `(what, bytes, formula)`. LoRA players share their
/// frozen base's (one per base); in f32 they sample on merged weights made per generation
/// call (`CausalLm::sampling`, counted in the generation phase), so the base keeps only its
/// LM head's panels, and its transposed projections too when the adapter leaves some
/// untargeted. Full fine-tuning keeps one per sampling model (the EMA copies, or the
/// trained weights on-policy), plus the defender's trained weights when validation
/// generates from them while the EMA copies sample; a local judge model its own.
fn decode_layouts(x: &PlanInputs, e: u64) -> Result<Vec<(String, u64, String)>> {
    let full = |spec: &DecoderSpec, copies: u64| {
        let formula = format!(
            "{copies} x (7 projections x {} layers + LM head {} x {}) x {e} B",
            spec.num_layers, spec.vocab_size, spec.hidden_size
        );
        (copies * decode_layout_bytes(spec, e), formula)
    };
    let mut out = Vec::new();
    let mut push = |what: String, (bytes, formula): (u64, String)| out.push((what, bytes, formula));
    match &x.adapter {
        Some(a) => {
            let merged = e >= 4 && a.targets_all();
            let base = |spec: &DecoderSpec| {
                if merged {
                    let bytes = (spec.vocab_size * spec.hidden_size) as u64 * e;
                    let formula = format!(
                        "LM head {} x {} x {e} B (sampling merges the adapter into its own copy of the \
                         projections)",
                        spec.vocab_size, spec.hidden_size
                    );
                    (bytes, formula)
                } else {
                    full(spec, 1)
                }
            };
            if x.same_base {
                push("the shared frozen base".into(), base(&x.attacker));
            } else {
                if x.attacker_writes {
                    push("attacker base".into(), base(&x.attacker));
                }
                push("defender base".into(), base(&x.defender));
            }
        }
        None => {
            let sampler = if x.sampler == Sampler::Ema { "EMA copy" } else { "trained weights" };
            if x.attacker_writes {
                push(format!("attacker {sampler}"), full(&x.attacker, 1));
            }
            let validation = x.validation && x.sampler == Sampler::Ema;
            let copies = if validation { 2 } else { 1 };
            let what = if validation {
                format!("defender {sampler} + trained weights (validation)")
            } else {
                format!("defender {sampler}")
            };
            push(what, full(&x.defender, copies));
        }
    }
    if let Some(j) = &x.judge {
        push("judge model".into(), full(j, 1));
    }
    Ok(out)
}
