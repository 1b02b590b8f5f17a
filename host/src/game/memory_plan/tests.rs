//! Tests of the plan's terms on published model shapes.

use super::*;
use crate::game::config::{Dtype, Method, Sampler, UpdateOrder};
use crate::model::decoder::DecoderSpec;
use crate::model::decoder::RopeKind;

/// SmolLM2-135M-Instruct's shapes (its config.json).
fn smollm2() -> DecoderSpec {
    DecoderSpec {
        vocab_size: 49152,
        hidden_size: 576,
        intermediate_size: 1536,
        num_layers: 30,
        num_heads: 9,
        num_kv_heads: 3,
        head_dim: 64,
        rms_norm_eps: 1e-5,
        rope_theta: 1e5,
        rope: RopeKind::Default,
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        tie_word_embeddings: true,
        layer_windows: vec![None; 30],
    }
}

/// Qwen2.5-7B-Instruct's shapes.
fn qwen7b() -> DecoderSpec {
    DecoderSpec {
        vocab_size: 152064,
        hidden_size: 3584,
        intermediate_size: 18944,
        num_layers: 28,
        num_heads: 28,
        num_kv_heads: 4,
        head_dim: 128,
        qkv_bias: true,
        tie_word_embeddings: false,
        layer_windows: vec![None; 28],
        ..smollm2()
    }
}

fn inputs(spec: DecoderSpec, dtype: Dtype) -> PlanInputs {
    PlanInputs {
        device: "cpu".into(),
        dtype,
        attacker: spec.clone(),
        defender: spec,
        same_base: true,
        judge: None,
        method: Method::Dpo,
        sampler: Sampler::Ema,
        retain: false,
        attacker_writes: true,
        attacker_learns: true,
        adapter: None,
        gradient_checkpointing: false,
        update_order: UpdateOrder::Pooled,
        validation: false,
        micro_batch: 8,
        seeds_per_category: 3,
        benign_seeds: 3,
        attacks_per_seed: 2,
        replies_per_prompt: 2,
        defender_prompt_variants: 1,
        judge_max_tokens: 512,
        lengths: Lengths {
            attacker_prompt: 150,
            defender_prompt: 78,
            attacker_completion: 48,
            defender_completion: 40,
            source: "test".into(),
        },
    }
}

fn term(plan: &MemoryPlan, what: &str) -> Option<u64> {
    plan.terms.iter().find(|t| t.what == what).map(|t| t.bytes)
}

#[test]
fn counts_match_the_published_sizes() {
    // SmolLM2-135M: 134,515,008 parameters (tied head); Qwen2.5-7B: 7,615,616,512.
    assert_eq!(parameter_count(&smollm2()), 134_515_008);
    assert_eq!(parameter_count(&qwen7b()), 7_615_616_512);
    // PEFT's print_trainable_parameters for r = 16 on all seven projections of
    // Qwen2.5-7B: 40,370,176.
    let all = AdapterPlan {
        r: 16,
        target_modules: AdapterPlan::ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
    };
    assert_eq!(all.parameters(&qwen7b()).unwrap(), 40_370_176);
    let qv = AdapterPlan { r: 8, target_modules: vec!["q_proj".into(), "v_proj".into()] };
    assert_eq!(qv.parameters(&smollm2()).unwrap(), 30 * 8 * ((576 + 576) + (576 + 192)));
    let bad = AdapterPlan { r: 8, target_modules: vec!["lm_head".into()] };
    assert!(bad.parameters(&smollm2()).unwrap_err().to_string().contains("lm_head"));
    // 8h + 4eh + e(5q + 4kv + 4i) + 4nh with e = 4.
    assert_eq!(layer_activation_bytes(&smollm2(), 4, None), 53_028);
}

#[test]
fn full_fine_tuning_terms_follow_the_dtype_and_method() {
    let n = parameter_count(&smollm2());
    let f32_plan = MemoryPlan::compute(&inputs(smollm2(), Dtype::F32)).unwrap();
    assert_eq!(term(&f32_plan, "defender weights"), Some(4 * n));
    assert_eq!(term(&f32_plan, "defender EMA copy"), Some(4 * n));
    assert_eq!(term(&f32_plan, "defender AdamW m, v (f32)"), Some(8 * n));
    assert_eq!(term(&f32_plan, "defender EMA f32 masters"), None);
    assert_eq!(term(&f32_plan, "defender AdamW f32 master weights"), None);
    assert!(f32_plan.terms.iter().all(|t| !t.what.contains("initial copy")));
    // bf16: half-size weights, plus the f32 EMA and optimiser masters.
    let bf16 = MemoryPlan::compute(&inputs(smollm2(), Dtype::Bf16)).unwrap();
    assert_eq!(term(&bf16, "defender weights"), Some(2 * n));
    assert_eq!(term(&bf16, "defender EMA f32 masters"), Some(4 * n));
    assert_eq!(term(&bf16, "defender AdamW f32 master weights"), Some(4 * n));
    // GRPO keeps the initial model as KL anchor.
    let mut grpo = inputs(smollm2(), Dtype::F32);
    grpo.method = Method::Grpo;
    let grpo = MemoryPlan::compute(&grpo).unwrap();
    assert_eq!(term(&grpo, "attacker initial copy (KL anchor)"), Some(4 * n));
    // A retain set keeps the defender's initial model only.
    let mut retain = inputs(smollm2(), Dtype::F32);
    retain.retain = true;
    let retain = MemoryPlan::compute(&retain).unwrap();
    assert_eq!(term(&retain, "defender initial copy (retain set)"), Some(4 * n));
    assert!(retain.terms.iter().all(|t| !t.what.starts_with("attacker initial copy")));
    // The term says every use: on-policy GRPO with a retain set.
    let mut all = inputs(smollm2(), Dtype::F32);
    (all.method, all.sampler, all.retain) = (Method::Grpo, Sampler::Current, true);
    let all = MemoryPlan::compute(&all).unwrap();
    let both = "defender initial copy (KL anchor / reference / retain set)";
    assert_eq!(term(&all, both), Some(4 * n));
    assert_eq!(term(&all, "attacker initial copy (KL anchor / reference)"), Some(4 * n));
    // The quickstart's plan is dominated by the attacker's micro-batch: 6 pairs (one per
    // seed) of 150 + 48 tokens.
    let act = term(&f32_plan, "attacker activations saved for backward (decoder layers)");
    assert_eq!(act, Some(12 * 198 * 30 * 53_028));
    assert_eq!(f32_plan.largest_phase().0, Phase::Update);
}

/// An attacker that is never updated (one rewrite per seed under DPO) holds no gradients,
/// optimiser state or update; one that writes nothing (every seed straight to the defender)
/// has no generation batch or decode layout either. The plan says why in a zero-byte line.
#[test]
fn an_attacker_that_never_learns_costs_no_update() {
    let n = parameter_count(&smollm2());
    let full = MemoryPlan::compute(&inputs(smollm2(), Dtype::F32)).unwrap();
    let mut one = inputs(smollm2(), Dtype::F32);
    (one.attacks_per_seed, one.attacker_learns) = (1, false);
    let one = MemoryPlan::compute(&one).unwrap();
    let idle = "attacker gradients, AdamW state, update: none (never updated)";
    assert_eq!(term(&full, idle), None);
    assert_eq!(term(&one, idle), Some(0));
    assert!(one.terms.iter().any(|t| t.what == idle && t.formula.contains("attacks_per_seed")));
    assert_eq!(term(&one, "attacker gradients"), None);
    assert_eq!(term(&one, "attacker AdamW m, v (f32)"), None);
    assert_eq!(term(&one, "defender AdamW m, v (f32)"), Some(8 * n));
    assert!(one.terms.iter().all(|t| t.phase != Phase::Update || t.what.starts_with("defender")));
    assert_eq!(full.resident() - one.resident(), 4 * n + 8 * n);
    assert!(one.terms.iter().any(|t| t.what == "decode layout: attacker EMA copy"));

    let mut none = inputs(smollm2(), Dtype::F32);
    (none.attacks_per_seed, none.attacker_writes, none.attacker_learns) = (1, false, false);
    let none = MemoryPlan::compute(&none).unwrap();
    assert!(none.terms.iter().any(|t| t.what == idle && t.formula.contains("direct_seed_share")));
    assert!(none.terms.iter().all(|t| !t.what.starts_with("decode layout: attacker")));
    assert!(none.terms.iter().all(|t| !t.what.starts_with("attacker generation")));
    assert!(none.peak() < one.peak() && one.peak() < full.peak());
}

#[test]
fn lora_shares_one_base_and_keeps_f32_ema_adapters() {
    let mut x = inputs(qwen7b(), Dtype::Bf16);
    x.device = "cuda".into();
    x.adapter = Some(AdapterPlan {
        r: 16,
        target_modules: AdapterPlan::ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
    });
    let plan = MemoryPlan::compute(&x).unwrap();
    let n = parameter_count(&qwen7b());
    let p = 40_370_176;
    assert_eq!(term(&plan, "base weights (frozen, shared by both players)"), Some(2 * n));
    assert_eq!(term(&plan, "attacker base weights (frozen)"), None);
    assert_eq!(term(&plan, "defender LoRA adapter"), Some(2 * p));
    assert_eq!(term(&plan, "defender EMA adapter (f32)"), Some(4 * p));
    assert_eq!(term(&plan, "defender AdamW f32 master weights"), Some(4 * p));
    assert_eq!(term(&plan, "CUDA context"), Some(CUDA_CONTEXT_BYTES));
    // Two different bases: each player holds its own frozen copy.
    x.same_base = false;
    let two = MemoryPlan::compute(&x).unwrap();
    assert_eq!(term(&two, "attacker base weights (frozen)"), Some(2 * n));
    assert_eq!(two.resident(), plan.resident() + 2 * n);
    // The on-policy variant needs no initial copy: the base with the adapter off.
    x.sampler = Sampler::Current;
    let on_policy = MemoryPlan::compute(&x).unwrap();
    assert!(on_policy.terms.iter().all(|t| !t.what.contains("initial copy")));
}

#[test]
fn checkpointing_lowers_activation_memory() {
    let mut x = inputs(smollm2(), Dtype::F32);
    let without = MemoryPlan::compute(&x).unwrap();
    x.gradient_checkpointing = true;
    let with = MemoryPlan::compute(&x).unwrap();
    assert!(with.phase(Phase::Update) * 3 < without.phase(Phase::Update), "{with:?}");
    assert_eq!(
        term(&with, "attacker layer inputs kept (gradient checkpointing)"),
        Some(12 * 198 * 30 * 576 * 4)
    );
    assert!(with.peak() < without.peak());
}

#[test]
fn render_warns_when_it_does_not_fit() {
    let plan = MemoryPlan::compute(&inputs(smollm2(), Dtype::F32)).unwrap();
    let small = Capacity { bytes: 1 << 30, source: "--device-memory".into() };
    let text = plan.render(Some(&small));
    assert!(text.contains("WARNING") && text.contains("will not fit"), "{text}");
    let big = Capacity { bytes: 64 << 30, source: "--device-memory".into() };
    let text = plan.render(Some(&big));
    assert!(!text.contains("WARNING") && text.contains("fits:"), "{text}");
    assert!(text.contains("attacker AdamW m, v (f32)") && text.contains("peak = "));
    assert_eq!(device_capacity("cuda:0", Some(80.0)).unwrap().bytes, 80 << 30);
    assert!(device_capacity("cpu", None).is_some_and(|c| c.bytes > 0));
}

#[test]
fn cpu_plans_count_the_decode_layouts_held() {
    // SmolLM2-135M: 30 x (2 x 576 x 576 + 2 x 576 x 192 + 3 x 576 x 1536) + 49152 x 576
    // parameters transposed (538 MB in f32).
    assert_eq!(decode_layout_bytes(&smollm2(), 4), 4 * (30 * 3_538_944 + 49152 * 576));
    let layout = |plan: &MemoryPlan| -> u64 {
        plan.terms.iter().filter(|t| t.what.starts_with("decode layout")).map(|t| t.bytes).sum()
    };
    let one = decode_layout_bytes(&smollm2(), 4);
    // Full fine-tuning: each EMA copy samples; validation decodes from the defender's
    // trained weights too.
    let mut x = inputs(smollm2(), Dtype::F32);
    assert_eq!(layout(&MemoryPlan::compute(&x).unwrap()), 2 * one);
    x.validation = true;
    assert_eq!(layout(&MemoryPlan::compute(&x).unwrap()), 3 * one);
    // LoRA players on one base: one layout, shared.
    x.adapter = Some(AdapterPlan { r: 16, target_modules: vec!["q_proj".into()] });
    assert_eq!(layout(&MemoryPlan::compute(&x).unwrap()), one);
    // All projections targeted: sampling merges them into its own copy, made per generation
    // call, so the base keeps only its LM head's panels and the generation phase holds the
    // merged projections.
    let q_only = MemoryPlan::compute(&x).unwrap();
    let all = AdapterPlan::ALL_TARGETS.iter().map(|t| t.to_string()).collect();
    x.adapter = Some(AdapterPlan { r: 16, target_modules: all });
    let plan = MemoryPlan::compute(&x).unwrap();
    assert_eq!(layout(&plan), 4 * 49152 * 576);
    let generation = |plan: &MemoryPlan| {
        plan.terms.iter().find(|t| t.phase == Phase::Generation).map(|t| t.bytes).unwrap()
    };
    let q = 4 * 30 * 576 * 576;
    assert_eq!(generation(&plan), generation(&q_only) - q + 4 * 30 * 3_538_944);
    // None on CUDA.
    x.device = "cuda".into();
    assert_eq!(layout(&MemoryPlan::compute(&x).unwrap()), 0);
}

#[test]
fn per_category_updates_plan_one_category_per_micro_batch() {
    let mut x = inputs(smollm2(), Dtype::F32);
    x.update_order = UpdateOrder::PerCategory;
    let plan = MemoryPlan::compute(&x).unwrap();
    // 3 harmful seeds: 3 attacker pairs (6 rows x 198 tokens); the defender's 6 pairs of
    // 12 rows x 118 tokens = 1416 tokens are the larger batch.
    let act = term(&plan, "defender activations saved for backward (decoder layers)");
    assert_eq!(act, Some(12 * 118 * 30 * 53_028));
    assert!(term(&plan, "attacker activations saved for backward (decoder layers)").is_none());
}

/// Rows that repeat a prompt share its prefill (`model::generate`): the KV cache holds every
/// reply's row, the prefill's mask and MLP only the distinct prompts (a defender group's
/// instructed and bare prompt, the attacker's one prompt per seed).
#[test]
fn generation_prefills_distinct_prompts_only() {
    let mut x = inputs(smollm2(), Dtype::F32);
    (x.replies_per_prompt, x.attacker_writes, x.attacker_learns) = (8, false, false);
    let term = |x: &PlanInputs| super::transient::generation_term(x, 4);
    let one = term(&x);
    assert!(one.what.starts_with("defender"), "{one:?}");
    // 6 seeds x 2 attacks x 8 replies in the cache; 12 distinct prompts in the prefill.
    assert!(one.formula.contains("x 96 rows x (78 + 40)"), "{}", one.formula);
    assert!(
        one.formula.contains("prefill (distinct prompts) mask 12 x 4 x 78^2"),
        "{}",
        one.formula
    );
    x.defender_prompt_variants = 2;
    let two = term(&x);
    assert!(two.formula.contains("mask 24 x 4 x 78^2"), "{}", two.formula);
    let per_prompt = 4 * 78 * 78 + 78 * (3 * 1536 + 2 * 576) * 4;
    assert_eq!(two.bytes - one.bytes, 12 * per_prompt);
}
