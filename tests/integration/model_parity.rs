//! Parity of the libtorch engine with transformers: logits, log-probs, checkpoints and
//! greedy generation.

use advgame_host::llm::{ChatRequest, FinishReason, Generator, SamplingParams};
use advgame_host::model::{CausalLm, ChatModel, Completion};
use tch::{Device, Kind, Tensor};

use crate::model_support::{fixture, reference_json, reference_logits, smollm2, token_ids};

/// A batch of two rows: one full, one left-padded by 5.
fn padded_batch(vocab: i64, len: usize) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let full = token_ids(1, len, vocab);
    let mut short = token_ids(2, len - 5, vocab);
    short.splice(0..0, std::iter::repeat_n(0, 5));
    let mask_short: Vec<i64> = (0..len).map(|i| i64::from(i >= 5)).collect();
    (vec![full, short], vec![vec![1; len], mask_short])
}

fn to_tensor(rows: &[Vec<i64>]) -> Tensor {
    let flat: Vec<i64> = rows.concat();
    Tensor::from_slice(&flat).view([rows.len() as i64, -1])
}

/// Max |ours - transformers| over the real (unpadded) positions.
fn max_logit_diff(model_dir: &std::path::Path, lm: &CausalLm, len: usize) -> f64 {
    let work = tempfile::tempdir().unwrap();
    let (ids, mask) = padded_batch(lm.spec().vocab_size, len);
    let ours = tch::no_grad(|| lm.forward(&to_tensor(&ids), &to_tensor(&mask)));
    let theirs = reference_logits(work.path(), model_dir, &ids, &mask);
    assert_eq!(ours.size(), theirs.size());
    let valid = to_tensor(&mask).to_kind(Kind::Float).unsqueeze(-1);
    let diff = ((ours - theirs).abs() * valid).max().double_value(&[]);
    assert!(diff.is_finite(), "non-finite logits");
    diff
}

fn check_logits(name: &str) {
    let dir = fixture(name);
    let lm = CausalLm::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let diff = max_logit_diff(&dir, &lm, 24);
    assert!(diff <= 1e-4, "{name}: max |logit diff| = {diff:e} > 1e-4");
}

#[test]
fn tiny_llama_logits_match_transformers() {
    check_logits("tiny-llama");
}

#[test]
fn tiny_qwen2_logits_match_transformers() {
    check_logits("tiny-qwen2");
}

#[test]
fn tiny_llama3_rope_scaling_logits_match_transformers() {
    check_logits("tiny-llama3");
}

#[test]
fn tiny_qwen3_logits_match_transformers() {
    check_logits("tiny-qwen3");
}

#[test]
fn tiny_mistral_sliding_window_logits_match_transformers() {
    // sliding_window 8 < 24 positions: the window shapes most of these logits.
    check_logits("tiny-mistral");
}

#[test]
fn tiny_llama_explicit_head_dim_logits_match_transformers() {
    check_logits("tiny-llama-head-dim");
}

#[test]
fn sharded_checkpoint_loads_and_matches() {
    check_logits("tiny-qwen2-sharded");
}

#[test]
fn logprob_sums_match_transformers_and_have_gradients() {
    let dir = fixture("tiny-qwen2");
    let model = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let vocab = model.lm().spec().vocab_size;
    let items = vec![
        Completion::new(token_ids(10, 7, vocab), token_ids(11, 5, vocab)),
        Completion::new(token_ids(12, 3, vocab), token_ids(13, 9, vocab)),
        Completion::new(token_ids(14, 11, vocab), token_ids(15, 1, vocab)),
    ];
    let sums = model.sequence_logprobs(&items).unwrap();
    assert_eq!(sums.size(), vec![3]);
    let per_token = model.token_logprobs(&items).unwrap();
    assert_eq!(per_token.mask.sum(Kind::Float).double_value(&[]), 15.0);
    let work = tempfile::tempdir().unwrap();
    // The reference script reads `[prompt_ids, completion_ids]` pairs.
    let pairs: Vec<_> = items.iter().map(|x| (&x.prompt_ids, &x.completion_ids)).collect();
    let theirs =
        reference_json(work.path(), "logprobs", &dir, &serde_json::to_value(&pairs).unwrap(), &[]);
    for (i, item) in theirs.as_array().unwrap().iter().enumerate() {
        let want = item["sum"].as_f64().unwrap();
        let got = sums.double_value(&[i as i64]);
        assert!((got - want).abs() <= 1e-3, "item {i}: sum {got} vs transformers {want}");
        for (j, t) in item["tokens"].as_array().unwrap().iter().enumerate() {
            let got = per_token.logprobs.double_value(&[i as i64, j as i64]);
            let want = t.as_f64().unwrap();
            assert!((got - want).abs() <= 1e-4, "item {i} token {j}: {got} vs {want}");
        }
    }
    // Differentiable: the loss reaches the embedding and the first layer.
    sums.sum(Kind::Float).backward();
    let vars = model.lm().var_store().variables();
    for name in
        ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.bias", "lm_head.weight"]
    {
        let grad = vars[name].grad();
        assert!(grad.defined(), "{name} has no gradient");
        assert!(grad.abs().sum(Kind::Float).double_value(&[]) > 0.0, "{name} gradient is zero");
    }
}

#[test]
fn saved_checkpoint_loads_in_transformers_with_same_logits() {
    let dir = fixture("tiny-qwen2");
    let model = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    // Change the weights so the test sees our tensors, not a copy of the fixture.
    tch::no_grad(|| {
        for (name, mut var) in model.lm().var_store().variables() {
            if name.ends_with("norm.weight") {
                let _ = var.g_mul_scalar_(1.5);
            }
        }
    });
    let out = tempfile::tempdir().unwrap();
    model.save_pretrained(out.path()).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json", "generation_config.json"] {
        assert!(out.path().join(file).is_file(), "{file} not written");
    }
    let diff = max_logit_diff(out.path(), model.lm(), 16);
    assert!(diff <= 1e-4, "saved checkpoint: max |logit diff| = {diff:e}");
    let reloaded = CausalLm::load(out.path(), Device::Cpu, Kind::Float).unwrap();
    let ids = Tensor::from_slice(&token_ids(3, 12, 1000)).view([1, 12]);
    let mask = ids.ones_like();
    let (a, b) = tch::no_grad(|| (model.lm().forward(&ids, &mask), reloaded.forward(&ids, &mask)));
    assert_eq!((a - b).abs().max().double_value(&[]), 0.0, "reloaded checkpoint differs");
}

#[test]
fn try_clone_shares_no_storage() {
    let lm = CausalLm::load(&fixture("tiny-llama"), Device::Cpu, Kind::Float).unwrap();
    let copy = lm.try_clone().unwrap();
    let (orig, cloned) = (lm.var_store().variables(), copy.var_store().variables());
    assert_eq!(orig.len(), cloned.len());
    for (name, t) in &orig {
        assert_ne!(t.data_ptr(), cloned[name].data_ptr(), "{name} shares storage");
    }
    let name = "model.layers.1.mlp.down_proj.weight";
    tch::no_grad(|| {
        let _ = orig[name].shallow_clone().fill_(0.0);
    });
    assert!(
        cloned[name].abs().sum(Kind::Float).double_value(&[]) > 0.0,
        "clone changed with the original"
    );
}

fn chat_prompts() -> Vec<ChatRequest> {
    vec![
        ChatRequest::user("What is the capital of France?"),
        ChatRequest::user("Write a haiku about autumn leaves."),
        ChatRequest {
            system: Some("You are a concise assistant.".into()),
            user: "Explain photosynthesis in one sentence.".into(),
            prefill: None,
        },
        ChatRequest::user("List three prime numbers."),
        ChatRequest {
            system: None,
            user: "How do I boil an egg?".into(),
            prefill: Some("Step 1:".into()),
        },
    ]
}

#[test]
fn smollm2_greedy_generation_matches_transformers() {
    check_greedy(&smollm2());
}

#[test]
fn tiny_qwen3_greedy_generation_matches_transformers() {
    check_greedy(&fixture("tiny-qwen3"));
}

#[test]
fn tiny_mistral_greedy_generation_past_the_window_matches_transformers() {
    check_greedy(&fixture("tiny-mistral"));
}

/// Batched greedy chat generation (32 new tokens, left-padded prompts) gives exactly
/// transformers' prompts, prompt ids and new ids.
fn check_greedy(dir: &std::path::Path) {
    let dir = dir.to_path_buf();
    let mut model = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let requests = chat_prompts();
    let params =
        SamplingParams { max_new_tokens: 32, temperature: 0.0, ..SamplingParams::default() };
    let ours = model.generate(&requests, &params).unwrap();
    let work = tempfile::tempdir().unwrap();
    let input = serde_json::to_value(&requests).unwrap();
    let theirs = reference_json(work.path(), "generate", &dir, &input, &["--max-new-tokens", "32"]);
    for (i, (generated, want)) in ours.iter().zip(theirs.as_array().unwrap()).enumerate() {
        let prompt = model.render_prompt(&requests[i]).unwrap();
        assert_eq!(prompt, want["prompt"].as_str().unwrap(), "prompt {i} text");
        let want_prompt: Vec<i64> = serde_json::from_value(want["prompt_ids"].clone()).unwrap();
        assert_eq!(model.encode(&prompt).unwrap(), want_prompt, "prompt {i} token ids");
        let want_ids: Vec<i64> = serde_json::from_value(want["new_ids"].clone()).unwrap();
        assert_eq!(
            generated.token_ids, want_ids,
            "request {i}: generated tokens differ ({:?})",
            generated.text
        );
        assert_eq!(generated.logprobs.len(), generated.token_ids.len());
        assert!(generated.logprobs.iter().all(|lp| *lp <= 0.0 && lp.is_finite()));
        let stopped = want_ids.last().is_some_and(|t| model.stop_token_ids().contains(t));
        assert_eq!(
            generated.finish,
            if stopped { FinishReason::Stop } else { FinishReason::Length }
        );
        if let Some(prefill) = &requests[i].prefill {
            assert!(
                generated.text.starts_with(prefill.as_str()),
                "text must start with the prefill"
            );
        }
    }
}
