//! Generation behaviour beyond greedy parity: seeded sampling, stop strings, prefill.

use advgame_host::llm::{ChatRequest, FinishReason, Generator, SamplingParams};
use advgame_host::model::ChatModel;
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
