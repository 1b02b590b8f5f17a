//! The plan's terms: bytes per phase computed from the inputs (pure arithmetic, no files).

use anyhow::Result;

use super::inputs::{AdapterPlan, PlanInputs};
use super::render::{count, gib};
use super::{CPU_ALLOCATOR_FACTOR, CPU_RUNTIME_BYTES, CUDA_CONTEXT_BYTES, MemoryPlan, Phase, Term};
use crate::game::config::{Dtype, Method, Sampler};
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

/// Bytes autograd keeps per token of one decoder layer for backward, with `e` the bytes of
/// the model dtype (h = hidden, q = heads x head_dim, kv = kv heads x head_dim,
/// i = intermediate, nh = heads), counted from `Decoder::hidden_states`:
/// - two RMSNorms, each: its f32 input (4h), the normalised value (e h) and its output
///   (e h), which the projections read;
/// - queries: projection output, its `roll` and the rotated result (3 e q); keys the same
///   (3 e kv); values (e kv);
/// - attention: its output (e q) and f32 log-sum-exp (4 nh), then the re-laid-out copy the
///   output projection reads (e q);
/// - MLP: gate output, its SiLU, up output and their product (4 e i);
/// - Qwen3's per-head q/k norms add their f32 input and two outputs ((4 + 2e)(q + kv));
/// - LoRA adds the rank-r output of each adapter's `A` (e r per target).
///
/// So `8h + 4 e h + e (5q + 4kv + 4i) + 4 nh` without q/k norms or adapters: 53 KB per
/// token per layer for SmolLM2-135M in f32.
pub fn layer_activation_bytes(spec: &DecoderSpec, e: u64, adapter: Option<&AdapterPlan>) -> u64 {
    let e = e as i64;
    let (h, i, nh) = (spec.hidden_size, spec.intermediate_size, spec.num_heads);
    let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
    let mut bytes = 8 * h + 4 * e * h + e * (5 * q + 4 * kv + 4 * i) + 4 * nh;
    if spec.qk_norm {
        bytes += (4 + 2 * e) * (q + kv);
    }
    if let Some(a) = adapter {
        bytes += e * a.ranks_per_layer();
    }
    bytes as u64
}

/// Training rows of one player's largest micro-batch and its padded width.
struct Batch {
    rows: u64,
    prompt: u64,
    completion: u64,
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
        let needs_initial = x.method == Method::Grpo || x.sampler == Sampler::Current;
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
                    if needs_initial {
                        add(
                            Phase::Resident,
                            format!("{name} initial copy (reference / KL anchor)"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                    }
                    optimiser_terms(&mut add, name, n, e);
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
                    optimiser_terms(&mut add, name, p, e);
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

        // Generation: the attacker, then the defender, then (LLM judges) the judge; each
        // decodes its whole phase in one batch.
        let seeds = 2 * x.seeds_per_category as u64;
        let (a_rows, d_rows) = (
            seeds * x.attacks_per_seed as u64,
            seeds * (x.attacks_per_seed * x.replies_per_prompt) as u64,
        );
        let l = &x.lengths;
        let mut gens = vec![
            (
                "attacker",
                &x.attacker,
                a_rows,
                l.attacker_prompt as u64,
                l.attacker_completion as u64,
            ),
            (
                "defender",
                &x.defender,
                d_rows,
                l.defender_prompt as u64,
                l.defender_completion as u64,
            ),
        ];
        if let Some(j) = &x.judge {
            // One comparison per defender group: the rubric (~512 tokens), the context and
            // two replies.
            let prompt = 512 + l.attacker_completion as u64 + 2 * l.defender_completion as u64;
            gens.push((
                "judge",
                j,
                seeds * x.attacks_per_seed as u64,
                prompt,
                x.judge_max_tokens as u64,
            ));
        }
        let (gname, gbytes, gformula) = gens
            .iter()
            .map(|(name, spec, rows, p, c)| {
                let kv = (spec.num_kv_heads * spec.head_dim) as u64;
                let layers = spec.num_layers as u64;
                let cache = 2 * layers * rows * (p + c) * kv * e;
                let rep = (spec.num_heads / spec.num_kv_heads) as u64;
                let mask = rows * (rep + 1) * p * p;
                let mlp = rows * p * (3 * spec.intermediate_size as u64 + 2 * spec.hidden_size as u64) * e;
                let formula = format!(
                    "KV cache 2 x {layers} layers x {rows} rows x ({p} + {c}) positions x {kv} x {e} B = {}; \
                     prefill mask {rows} x {} x {p}^2 x 1 B = {}; prefill MLP {rows} x {p} x (3 i + 2 h) x {e} B = {}",
                    gib(cache),
                    rep + 1,
                    gib(mask),
                    gib(mlp)
                );
                (*name, cache + mask + mlp, formula)
            })
            .max_by_key(|g| g.1)
            .expect("two players");
        add(Phase::Generation, format!("{gname} generation (largest batch)"), gbytes, gformula);

        // Update: the larger of the two players' micro-batches.
        let batches = [
            (
                "attacker",
                &x.attacker,
                self_batch(
                    x,
                    seeds,
                    seeds * x.attacks_per_seed as u64,
                    l.attacker_prompt,
                    l.attacker_completion,
                ),
            ),
            (
                "defender",
                &x.defender,
                self_batch(
                    x,
                    seeds * x.attacks_per_seed as u64,
                    d_rows,
                    l.defender_prompt,
                    l.defender_completion,
                ),
            ),
        ];
        let updates: Vec<(u64, Vec<Term>)> = batches
            .iter()
            .map(|(name, spec, b)| {
                let terms = update_terms(name, spec, b, e, x);
                (terms.iter().map(|t| t.bytes).sum::<u64>(), terms)
            })
            .collect();
        let (_, upd) = updates.into_iter().max_by_key(|u| u.0).expect("two players");
        terms.extend(upd);

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

/// The training micro-batch of one player: `groups` preference groups (DPO/IPO: one pair
/// each, two rows per pair) or `samples` GRPO samples, capped by the micro-batch.
fn self_batch(
    x: &PlanInputs,
    groups: u64,
    samples: u64,
    prompt: usize,
    completion: usize,
) -> Batch {
    let micro = x.micro_batch as u64;
    let rows = match x.method {
        Method::Dpo | Method::Ipo => 2 * micro.min(groups),
        Method::Grpo => micro.min(samples),
    };
    Batch { rows, prompt: prompt as u64, completion: completion as u64 }
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

/// The update-phase terms of one player's largest micro-batch.
fn update_terms(name: &str, spec: &DecoderSpec, b: &Batch, e: u64, x: &PlanInputs) -> Vec<Term> {
    let tokens = b.rows * (b.prompt + b.completion);
    let per_layer = layer_activation_bytes(spec, e, x.adapter.as_ref());
    let layers = spec.num_layers as u64;
    let h = spec.hidden_size as u64;
    let v = spec.vocab_size as u64;
    let head_tokens = b.rows * b.completion;
    let shape =
        format!("{} rows x ({} + {}) tokens = {tokens} tokens", b.rows, b.prompt, b.completion);
    let mut out = Vec::new();
    if x.gradient_checkpointing {
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} layer inputs kept (gradient checkpointing)"),
            bytes: tokens * layers * h * e,
            formula: format!("{shape} x {layers} layers x hidden {h} x {e} B"),
        });
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} activations of the layer being recomputed"),
            bytes: tokens * per_layer,
            formula: format!("{shape} x {per_layer} B per token and layer"),
        });
    } else {
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} activations saved for backward (decoder layers)"),
            bytes: tokens * layers * per_layer,
            formula: format!("{shape} x {layers} layers x {per_layer} B per token and layer"),
        });
    }
    out.push(Term {
        phase: Phase::Update,
        what: format!("{name} final norm and f32 LM-head logits"),
        bytes: tokens * (4 + 2 * e) * h + head_tokens * v * 4,
        formula: format!(
            "{tokens} tokens x (4 + 2 x {e}) B x {h} + {} rows x {} completion tokens x vocab {v} x 4 B",
            b.rows, b.completion
        ),
    });
    // Backward starts at the head: log-softmax and gather gradients over the logits (three
    // f32 [rows, C, vocab] temporaries), then one layer's worth of activation gradients.
    let head_tmp = head_tokens * v * 12;
    let layer_tmp = tokens * per_layer;
    out.push(Term {
        phase: Phase::Update,
        what: format!("{name} backward temporaries"),
        bytes: head_tmp.max(layer_tmp),
        formula: format!(
            "max(3 x f32 logits {}, one layer's activation gradients {})",
            gib(head_tmp),
            gib(layer_tmp)
        ),
    });
    out
}
