//! The transient phases: what a generation batch and a training micro-batch hold on top of
//! the resident memory while they run (KV cache and prefill; saved activations, LM-head
//! logits, backward and reference-forward temporaries).

use super::inputs::{AdapterPlan, PlanInputs};
use super::render::gib;
use super::{Phase, Term};
use crate::game::config::{Method, UpdateOrder};
use crate::model::causal_lm::MERGED_FORWARD_MIN_TOKENS;
use crate::model::decoder::DecoderSpec;
use crate::model::scoring::LOGIT_CHUNK_ELEMENTS;

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
/// token per layer for SmolLM2-135M in f32. Measured with `ADVGAME_MEMORY_PROBE` on the LoRA
/// quickstart (r = 16, no checkpointing): the attacker's 6-row policy forward (1188 tokens x
/// 30 layers) added 1710 MiB, i.e. 50 KB per token and layer against 53.5 KB here (-6%).
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

/// The generation phase: the largest of the attacker's (when it writes), the defender's and
/// (local LLM judge) the judge's batch, each decoding its whole phase at once: KV cache, the prefill's
/// boolean mask and its MLP intermediates.
pub(super) fn generation_term(x: &PlanInputs, e: u64) -> Term {
    let seeds = (x.seeds_per_category + x.benign_seeds) as u64;
    let (a_rows, d_rows) = (
        seeds * x.attacks_per_seed as u64,
        seeds * (x.attacks_per_seed * x.replies_per_prompt) as u64,
    );
    let l = &x.lengths;
    let (ap, ac) = (l.attacker_prompt as u64, l.attacker_completion as u64);
    let (dp, dc) = (l.defender_prompt as u64, l.defender_completion as u64);
    // Rows that repeat a prompt share its prefill (`model::generate`'s `SharedPrefill`): the
    // prefill runs on the distinct prompts, the KV cache holds every row. The attacker's A
    // rewrites of a seed share one; a defender group's D replies share one per variant (the
    // instructed and the bare prompt).
    let d_prefill = seeds * (x.attacks_per_seed * x.defender_prompt_variants) as u64;
    let mut gens = vec![("defender", &x.defender, d_rows, d_prefill.min(d_rows), dp, dc)];
    if x.attacker_writes {
        gens.push(("attacker", &x.attacker, a_rows, seeds, ap, ac));
    }
    if let Some(j) = &x.judge {
        // One comparison per defender group: the rubric (~512 tokens), the context and two
        // replies.
        let prompt = 512 + ac + 2 * dc;
        let rows = seeds * x.attacks_per_seed as u64;
        gens.push(("judge", j, rows, rows, prompt, x.judge_max_tokens as u64));
    }
    let (name, bytes, formula) = gens
        .iter()
        .map(|(name, spec, rows, prefill, p, c)| {
            let kv = (spec.num_kv_heads * spec.head_dim) as u64;
            let layers = spec.num_layers as u64;
            let cache = 2 * layers * rows * (p + c) * kv * e;
            let rep = (spec.num_heads / spec.num_kv_heads) as u64;
            let mask = prefill * (rep + 1) * p * p;
            let (i, h) = (spec.intermediate_size as u64, spec.hidden_size as u64);
            let mlp = prefill * p * (3 * i + 2 * h) * e;
            // LoRA players in f32 sample on a merged copy of the targeted projections
            // (`CausalLm::sampling`), made for the call and freed after it.
            let merged = match (&x.adapter, *name) {
                (Some(a), "attacker" | "defender") if e >= 4 => {
                    a.targeted_weights(spec).unwrap_or(0) * e
                }
                _ => 0,
            };
            let merged_formula = if merged > 0 {
                format!("; merged LoRA projections {} x {e} B = {}", merged / e, gib(merged))
            } else {
                String::new()
            };
            let formula = format!(
                "KV cache 2 x {layers} layers x {rows} rows x ({p} + {c}) positions x {kv} x {e} B \
                 = {}; prefill (distinct prompts) mask {prefill} x {} x {p}^2 x 1 B = {}; MLP \
                 {prefill} x {p} x (3 i + 2 h) x {e} B = {}",
                gib(cache),
                rep + 1,
                gib(mask),
                gib(mlp)
            ) + &merged_formula;
            (*name, cache + mask + mlp + merged, formula)
        })
        .max_by_key(|g| g.1)
        .expect("the defender generates");
    Term {
        phase: Phase::Generation,
        what: format!("{name} generation (largest batch)"),
        bytes,
        formula,
    }
}

/// The update phase: the terms of the player whose largest micro-batch needs the most (the
/// players update one after the other; an attacker that never learns has none). Under
/// `update_order = "per_category"` an update sees one category's groups (the larger
/// category's seeds), under `"pooled"` both categories'.
pub(super) fn update_terms(x: &PlanInputs, e: u64) -> Vec<Term> {
    let seeds = match x.update_order {
        UpdateOrder::PerCategory => x.seeds_per_category.max(x.benign_seeds) as u64,
        UpdateOrder::Pooled => (x.seeds_per_category + x.benign_seeds) as u64,
    };
    let (a, d) = (x.attacks_per_seed as u64, x.replies_per_prompt as u64);
    let l = &x.lengths;
    let batch = |groups: u64, samples: u64, prompt: usize, completion: usize| {
        let micro = x.micro_batch as u64;
        let rows = match x.method {
            // One pair per group, two rows per pair.
            Method::Dpo | Method::Ipo => 2 * micro.min(groups),
            Method::Grpo => micro.min(samples),
        };
        Batch { rows, prompt: prompt as u64, completion: completion as u64 }
    };
    let players = [
        (
            "attacker",
            &x.attacker,
            batch(seeds, seeds * a, l.attacker_prompt, l.attacker_completion),
        ),
        (
            "defender",
            &x.defender,
            batch(seeds * a, seeds * a * d, l.defender_prompt, l.defender_completion),
        ),
    ];
    players
        .iter()
        .filter(|(name, _, _)| *name == "defender" || x.attacker_learns)
        .map(|(name, spec, b)| player_update_terms(name, spec, b, e, x))
        .max_by_key(|terms| terms.iter().map(|t| t.bytes).sum::<u64>())
        .expect("the defender updates")
}

/// The update-phase terms of one player's micro-batch `b`.
fn player_update_terms(
    name: &str,
    spec: &DecoderSpec,
    b: &Batch,
    e: u64,
    x: &PlanInputs,
) -> Vec<Term> {
    let tokens = b.rows * (b.prompt + b.completion);
    let per_layer = layer_activation_bytes(spec, e, x.adapter.as_ref());
    let layers = spec.num_layers as u64;
    let h = spec.hidden_size as u64;
    let v = spec.vocab_size as u64;
    let head_tokens = b.rows * b.completion;
    let shape =
        format!("{} rows x ({} + {}) tokens = {tokens} tokens", b.rows, b.prompt, b.completion);
    let term = |what: String, bytes: u64, formula: String| Term {
        phase: Phase::Update,
        what: format!("{name} {what}"),
        bytes,
        formula,
    };
    let mut out = Vec::new();
    if x.gradient_checkpointing {
        out.push(term(
            "layer inputs kept (gradient checkpointing)".into(),
            tokens * layers * h * e,
            format!("{shape} x {layers} layers x hidden {h} x {e} B"),
        ));
        out.push(term(
            "activations of the layer being recomputed".into(),
            tokens * per_layer,
            format!("{shape} x {per_layer} B per token and layer"),
        ));
    } else {
        out.push(term(
            "activations saved for backward (decoder layers)".into(),
            tokens * layers * per_layer,
            format!("{shape} x {layers} layers x {per_layer} B per token and layer"),
        ));
    }
    out.push(term(
        "final norm and f32 LM-head logits".into(),
        tokens * (4 + 2 * e) * h + head_tokens * v * 4,
        format!(
            "{tokens} tokens x (4 + 2 x {e}) B x {h} + {} rows x {} completion tokens x vocab \
             {v} x 4 B (kept for the log-sum-exp's backward)",
            b.rows, b.completion
        ),
    ));
    // The head runs a chunk of rows at a time (`model::scoring`): its temporaries (logits,
    // exp, the gather's scattered gradient) exist for one chunk. Backward holds three of
    // them, or one layer's activation gradients; the no-grad reference forward before it
    // holds one layer's activations and one chunk of logits.
    let chunk_rows =
        (LOGIT_CHUNK_ELEMENTS as u64 / (b.completion * v).max(1)).clamp(1, b.rows.max(1));
    let chunk = chunk_rows * b.completion * v * 4;
    let layer_tmp = tokens * per_layer;
    // A LoRA reference forward of this many tokens in f32 runs on a merged copy of the
    // targeted projections, made for it and freed after it (`CausalLm::hidden_states`).
    let merged = match &x.adapter {
        Some(a)
            if e >= 4
                && matches!(x.method, Method::Dpo | Method::Ipo)
                && tokens >= MERGED_FORWARD_MIN_TOKENS as u64 =>
        {
            a.targeted_weights(spec).unwrap_or(0) * e
        }
        _ => 0,
    };
    let merged_formula = if merged > 0 {
        format!(" + merged LoRA projections {}", gib(merged))
    } else {
        String::new()
    };
    let (bytes, formula) = [
        (3 * chunk, format!("3 x f32 logits of a {chunk_rows}-row chunk {}", gib(3 * chunk))),
        (layer_tmp, format!("one layer's activation gradients {}", gib(layer_tmp))),
        (
            layer_tmp + chunk + merged,
            format!(
                "reference forward: one layer {} + one chunk of logits{merged_formula}",
                gib(layer_tmp)
            ),
        ),
    ]
    .into_iter()
    .max_by_key(|t| t.0)
    .expect("three candidates");
    out.push(term(
        "backward or reference-forward temporaries".into(),
        bytes,
        format!("max: {formula}"),
    ));
    out
}
