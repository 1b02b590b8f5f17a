//! Generation behaviour beyond greedy parity: seeded sampling, stop strings, prefill.

use advgame_host::llm::{ChatRequest, FinishReason, Generator, SamplingParams};
use advgame_host::model::{ChatModel, Completion, LoadError};
use tch::{Device, Kind};

use crate::model_support::fixture;

fn model() -> ChatModel {
    ChatModel::load(&fixture("tiny-qwen2"), Device::Cpu, Kind::Float).unwrap()
}

fn requests() -> Vec<ChatRequest> {
    vec![
        ChatRequest::user("Tell me a story."),
        ChatRequest {
            system: Some("Be brief.".into()),
            user: "Hi".into(),
            prefill: Some("<answer>".into()),
        },
    ]
}

#[test]
fn seeded_sampling_is_reproducible_and_seed_dependent() {
    let mut m = model();
    let params =
        SamplingParams { max_new_tokens: 12, temperature: 1.0, top_p: 0.95, seed: 7, stop: vec![] };
    let a = m.generate(&requests(), &params).unwrap();
    let b = m.generate(&requests(), &params).unwrap();
    assert_eq!(a, b, "same seed must give the same samples");
    let c = m.generate(&requests(), &SamplingParams { seed: 8, ..params.clone() }).unwrap();
    assert_ne!(a, c, "another seed should give other samples");
    for g in &a {
        assert_eq!(g.token_ids.len(), g.logprobs.len());
        assert!(g.finish == FinishReason::Stop || g.token_ids.len() == 12);
    }
    assert!(a[1].text.starts_with("<answer>"), "text starts with the prefill: {:?}", a[1].text);
}

#[test]
fn stop_string_cuts_text_and_finishes_with_stop() {
    let mut m = model();
    let greedy =
        SamplingParams { max_new_tokens: 16, temperature: 0.0, ..SamplingParams::default() };
    let full = m.generate(&requests()[..1], &greedy).unwrap().remove(0);
    assert!(full.text.chars().count() > 4, "need some text: {:?}", full.text);
    // Stop at a piece of text that appears after the first few characters.
    let cut: String = full.text.chars().skip(3).take(2).collect();
    let first = full.text.find(&cut).unwrap();
    let params = SamplingParams { stop: vec![cut.clone()], ..greedy };
    let stopped = m.generate(&requests()[..1], &params).unwrap().remove(0);
    assert_eq!(stopped.finish, FinishReason::Stop);
    assert_eq!(
        stopped.text,
        full.text[..first],
        "text must end right before the stop string {cut:?}"
    );
    assert!(stopped.token_ids.len() <= full.token_ids.len());
    assert_eq!(stopped.token_ids[..], full.token_ids[..stopped.token_ids.len()]);
}

#[test]
fn greedy_rows_do_not_depend_on_batch_padding() {
    let mut m = model();
    let params =
        SamplingParams { max_new_tokens: 8, temperature: 0.0, ..SamplingParams::default() };
    let batch = m.generate(&requests(), &params).unwrap();
    for (i, req) in requests().iter().enumerate() {
        let alone = m.generate(std::slice::from_ref(req), &params).unwrap().remove(0);
        assert_eq!(alone.token_ids, batch[i].token_ids, "row {i} differs between batch and alone");
    }
}

#[test]
fn bf16_weights_run_the_same_code_path_as_cuda() {
    // CUDA runs in bf16; on the CPU the same path must work and stay close to f32.
    let dir = fixture("tiny-qwen2");
    let f32_model = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let mut bf16_model = ChatModel::load(&dir, Device::Cpu, Kind::BFloat16).unwrap();
    let ids = tch::Tensor::from_slice(&[5i64, 900, 77, 1234, 42, 8]).view([1, 6]);
    let mask = ids.ones_like();
    let (a, b) = tch::no_grad(|| {
        (f32_model.lm().forward(&ids, &mask), bf16_model.lm().forward(&ids, &mask))
    });
    assert_eq!(b.kind(), Kind::BFloat16);
    let scale = a.abs().max().double_value(&[]);
    let diff = (a - b.to_kind(Kind::Float)).abs().max().double_value(&[]);
    assert!(diff / scale < 0.05, "bf16 logits too far from f32: {diff} (scale {scale})");
    let params =
        SamplingParams { max_new_tokens: 6, temperature: 0.7, ..SamplingParams::default() };
    let out = bf16_model.generate(&requests(), &params).unwrap();
    assert!(out.iter().all(|g| g.logprobs.iter().all(|l| l.is_finite() && *l <= 0.0)));
    let lp = bf16_model.sequence_logprobs(&[Completion::new(vec![1, 2, 3], vec![4, 5])]).unwrap();
    assert_eq!(lp.kind(), Kind::Float);
}

/// The case fixtures' tiny Llama (greedy raw continuation of "hello world" is
/// `[92, 153, 262, 319, 305, 319, 189, 110, 254, 319, 78, 253]`, checked against transformers
/// in `model_cases`), with its generation_config.json / config.json edited.
fn tiny_case_model(
    gen_config: Option<serde_json::Value>,
    config_edit: impl FnOnce(&mut serde_json::Value),
) -> tempfile::TempDir {
    let src = crate::model_cases::case_dir("01-template-generation-tag").join("model");
    let dir = crate::model_support::clone_dir(&src, &["generation_config.json", "config.json"]);
    if let Some(g) = gen_config {
        std::fs::write(dir.path().join("generation_config.json"), g.to_string()).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    config_edit(&mut config);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    dir
}

fn raw_greedy(dir: &std::path::Path) -> Vec<i64> {
    let m = ChatModel::load(dir, Device::Cpu, Kind::Float).unwrap();
    let params =
        SamplingParams { max_new_tokens: 12, temperature: 0.0, ..SamplingParams::default() };
    let rows = m.generate_ids(&[m.encode("hello world").unwrap()], &params, true).unwrap();
    rows[0].tokens.clone()
}

#[test]
fn every_eos_token_id_of_a_list_stops_generation() {
    let full = [92, 153, 262, 319, 305, 319, 189, 110, 254, 319, 78, 253];
    // generation_config.json lists two ids: the second one stops the row where it appears.
    let dir = tiny_case_model(Some(serde_json::json!({"eos_token_id": [2, 305]})), |_| {});
    assert_eq!(raw_greedy(dir.path()), full[..5]);
    // config.json's list counts too when there is no generation_config.json.
    let dir = tiny_case_model(None, |c| c["eos_token_id"] = serde_json::json!([189, 2]));
    assert_eq!(raw_greedy(dir.path()), full[..7]);
    // Neither file: all 12 tokens (the tokenizer's eos <|im_end|> = 2 never comes).
    let dir = tiny_case_model(Some(serde_json::json!({"eos_token_id": null})), |c| {
        c["eos_token_id"] = serde_json::Value::Null
    });
    assert_eq!(raw_greedy(dir.path()), full);
}

#[test]
fn unset_pad_ids_fall_back_to_eos_and_bad_ones_name_the_field() {
    for (gen_pad, config_pad) in [(serde_json::json!(null), -1), (serde_json::json!(-1), -1)] {
        let dir = tiny_case_model(
            Some(serde_json::json!({"eos_token_id": 2, "pad_token_id": gen_pad})),
            |c| c["pad_token_id"] = config_pad.into(),
        );
        let m = ChatModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap();
        assert_eq!(m.pad_token_id(), 2);
    }
    // A bad pad id in generation_config.json is a field error naming that file; the message
    // says what was wrong with the value.
    let pad_error = |pad: serde_json::Value| {
        let dir = tiny_case_model(Some(serde_json::json!({ "pad_token_id": pad })), |_| {});
        let err = ChatModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap_err();
        assert!(
            matches!(
                LoadError::of(&err),
                Some(LoadError::Field { path, error })
                    if path.ends_with("generation_config.json") && error.field == "pad_token_id"
            ),
            "{err:#}"
        );
        format!("{err:#}")
    };
    let err = pad_error(serde_json::json!("x"));
    assert!(
        err.contains("generation_config.json: field `pad_token_id`: expected a token id"),
        "{err}"
    );
    let err = pad_error(serde_json::json!(999));
    assert!(err.contains("generation_config.json: field `pad_token_id`: 999 is outside"), "{err}");
}

/// Rows that repeat a prompt share one prefill (`model::generate`): each row must still
/// decode from its own prompt's cache (greedy rows equal the row alone; sampled rows' log-probs
/// equal a full forward pass over that row's prompt), and repeated rows draw their own samples.
#[test]
fn repeated_prompts_share_a_prefill_and_decode_as_their_own_rows() {
    let mut m = model();
    let (a, b) = (requests()[0].clone(), requests()[1].clone());
    let batch = vec![a.clone(), b.clone(), a.clone(), a.clone(), b.clone()];
    let greedy =
        SamplingParams { max_new_tokens: 8, temperature: 0.0, ..SamplingParams::default() };
    let rows = m.generate(&batch, &greedy).unwrap();
    for (req, row) in batch.iter().zip(&rows) {
        let alone = m.generate(std::slice::from_ref(req), &greedy).unwrap().remove(0);
        assert_eq!(alone.token_ids, row.token_ids);
    }
    let sampled = SamplingParams { temperature: 1.0, seed: 3, max_new_tokens: 10, ..greedy };
    let rows = m.generate(&batch, &sampled).unwrap();
    assert!(
        rows[0].token_ids != rows[2].token_ids || rows[2].token_ids != rows[3].token_ids,
        "three samples of one prompt should not all be the same"
    );
    for (req, row) in batch.iter().zip(&rows) {
        let prompt = m.encode(&m.render_prompt(req).unwrap()).unwrap();
        let want = teacher_forced_logprobs(&m, &prompt, &row.token_ids);
        for (x, y) in row.logprobs.iter().zip(&want) {
            assert!((x - y).abs() < 1e-4, "{:?} vs {want:?}", row.logprobs);
        }
    }
}

/// Log-probs of `tokens` after `prompt` by one full forward pass (the training path).
fn teacher_forced_logprobs(m: &ChatModel, prompt: &[i64], tokens: &[i64]) -> Vec<f32> {
    let ids: Vec<i64> = prompt.iter().chain(tokens).copied().collect();
    let n = ids.len() as i64;
    let input = tch::Tensor::from_slice(&ids).view([1, n]);
    let mask = tch::Tensor::ones([1, n], (Kind::Int64, Device::Cpu));
    let lp = tch::no_grad(|| m.lm().forward(&input, &mask).log_softmax(-1, Kind::Float));
    (0..tokens.len())
        .map(|i| {
            let pos = prompt.len() as i64 + i as i64 - 1;
            lp.get(0).get(pos).double_value(&[tokens[i]]) as f32
        })
        .collect()
}

/// Decode steps project with transposed copies of the weights (CPU); the copies must give
/// the model's own log-probs, and follow in-place weight updates (an optimizer step) made
/// between two generations instead of decoding with stale weights.
#[test]
fn the_decode_layout_matches_the_forward_pass_and_follows_weight_updates() {
    let m = model();
    let prompts: Vec<Vec<i64>> =
        requests().iter().map(|r| m.encode(&m.render_prompt(r).unwrap()).unwrap()).collect();
    let params =
        SamplingParams { max_new_tokens: 6, temperature: 0.0, ..SamplingParams::default() };
    let check = |m: &ChatModel| {
        let rows = m.generate_ids(&prompts, &params, false).unwrap();
        for (prompt, row) in prompts.iter().zip(&rows) {
            let want = teacher_forced_logprobs(m, prompt, &row.tokens);
            for (a, b) in row.logprobs.iter().zip(&want) {
                assert!((a - b).abs() < 1e-4, "decode {:?} vs forward {want:?}", row.logprobs);
            }
        }
        rows
    };
    let before = check(&m);
    // An in-place update of every weight, as an optimizer step makes.
    tch::no_grad(|| {
        for (name, mut v) in m.lm().var_store().variables() {
            if name.ends_with("proj.weight") {
                let _ = v.g_mul_scalar_(-1.5);
            }
        }
    });
    let after = check(&m);
    assert_ne!(
        before.iter().map(|r| &r.logprobs).collect::<Vec<_>>(),
        after.iter().map(|r| &r.logprobs).collect::<Vec<_>>(),
        "the update changed nothing: the test proves nothing"
    );
}
