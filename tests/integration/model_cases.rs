//! The model cases of `tests/fixtures/cases/` (copies of failing inputs from public bug
//! reports; each folder's CASE.md names the source): every expected value that transformers
//! 4.57.6 produced (expected.json) is checked here through the command the case names, with
//! the real binary, plus the chat renderings through the library.

use std::path::{Path, PathBuf};
use std::process::Command;

use advgame_host::model::{ChatModel, Message};
use tch::{Device, Kind};

use crate::model_support::repo_root;

pub fn case_dir(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/cases").join(name)
}

fn expected(case: &str) -> serde_json::Value {
    let path = case_dir(case).join("expected.json");
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    serde_json::from_value(v["token_ids"].clone()).expect("token_ids")
}

/// `advgame-host generate --model DIR [--chat] --json --max-new-tokens 12 PROMPT`, as each
/// CASE.md runs it; returns the printed `token_ids`.
pub fn generate_cli(dir: &Path, chat: bool, prompt: &str) -> Vec<i64> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_advgame-host"));
    cmd.args(["generate", "--model"]).arg(dir);
    if chat {
        cmd.arg("--chat");
    }
    let out = cmd.args(["--json", "--max-new-tokens", "12", prompt]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "generate {} failed: {stderr}", dir.display());
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
    ids(&line)
}

fn two_turns() -> Vec<Message> {
    vec![
        Message::new("system", "Be terse."),
        Message::new("user", "hi"),
        Message::new("assistant", "Hello."),
        Message::new("user", "Bye"),
    ]
}

/// The one-turn and four-turn renderings (with generation prompt) equal transformers'.
fn check_renders(dir: &Path, want: &serde_json::Value) {
    let model = ChatModel::load(dir, Device::Cpu, Kind::Float).unwrap();
    let one = model.render_messages(&[Message::new("user", "hi")], true).unwrap();
    assert_eq!(one, want["render_one_user_turn"].as_str().unwrap(), "{}", dir.display());
    let two = model.render_messages(&two_turns(), true).unwrap();
    assert_eq!(two, want["render_two_turns"].as_str().unwrap(), "{}", dir.display());
}

#[test]
fn case01_generation_block_renders_its_body() {
    let case = "01-template-generation-tag";
    let want = expected(case);
    let dir = case_dir(case).join("model");
    check_renders(&dir, &want);
    assert_eq!(generate_cli(&dir, false, "hello world"), ids(&want["generate_raw_hello_world"]));
    assert_eq!(generate_cli(&dir, true, "hi"), ids(&want["generate_chat_hi"]));
}

#[test]
fn case03_crlf_templates_render_like_jinja2() {
    let case = "03-template-crlf-newlines";
    let want = expected(case);
    for variant in ["jinja-file", "config-field"] {
        let dir = case_dir(case).join(format!("model-{variant}"));
        check_renders(&dir, &want[variant]);
        assert_eq!(
            generate_cli(&dir, true, "hi"),
            ids(&want[variant]["generate_chat_hi"]),
            "{variant}"
        );
    }
}

#[test]
fn case04_rope_scaling_with_type_and_rope_type() {
    let case = "04-config-rope-type-and-rope_type";
    let want = expected(case);
    let both = generate_cli(&case_dir(case).join("model"), false, "hello world");
    assert_eq!(both, ids(&want["generate_raw_hello_world"]));
    let control = generate_cli(&case_dir(case).join("model-rope_type-only"), false, "hello world");
    assert_eq!(control, ids(&want["control_rope_type_only"]));
    assert_ne!(both, ids(&want["no_scaling_for_comparison"]), "scaling must change the output");
}

#[test]
fn case05_v5_rope_parameters_carry_the_base() {
    let case = "05-config-v5-rope-parameters";
    let want = expected(case);
    let dir = case_dir(case).join("model");
    assert_eq!(generate_cli(&dir, false, "hello world"), ids(&want["generate_raw_hello_world"]));
    let poem = "Write a short poem about autumn leaves falling in the park.";
    assert_eq!(generate_cli(&dir, true, poem), ids(&want["generate_chat_long"]));
}

#[test]
fn case06_qwen2_explicit_head_dim() {
    let case = "06-config-qwen2-explicit-head-dim";
    let want = expected(case);
    let dir = case_dir(case).join("model");
    assert_eq!(generate_cli(&dir, false, "hello world"), ids(&want["generate_raw_hello_world"]));
}

#[test]
fn case07_negative_pad_token_id_is_unset() {
    let case = "07-config-pad-token-id-negative";
    let want = expected(case);
    let dir = case_dir(case).join("model");
    let model = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    assert_eq!(model.pad_token_id(), 2, "pads with the end-of-sequence id");
    assert_eq!(generate_cli(&dir, false, "hello world"), ids(&want["generate_raw_hello_world"]));
    assert_eq!(generate_cli(&dir, true, "hi"), ids(&want["generate_chat_hi"]));
}
