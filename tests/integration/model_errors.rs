//! Bad model folders give one precise error (which file, which field or tensor, what was
//! expected) and never a panic. Load errors are matched on their [`LoadError`] variant and
//! the path, field or tensor it carries; the wording is checked only where a person reads it.

use std::path::Path;

use advgame_host::llm::{ChatRequest, Generator, SamplingParams};
use advgame_host::model::{CausalLm, ChatModel, Completion, LoadError};
use tch::{Device, Kind};

use crate::model_support::{clone_dir, fixture, tokenizer_dir};

fn load_err(dir: &Path) -> String {
    format!("{}", load_error(dir))
}

/// The typed error of loading `dir` (the root cause of `ChatModel::load`'s error).
pub fn load_error(dir: &Path) -> LoadError {
    match ChatModel::load(dir, Device::Cpu, Kind::Float) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e.downcast::<LoadError>().expect("the root cause is a LoadError"),
    }
}

/// The `config.json` field a refused folder names.
pub fn refused_field(dir: &Path) -> String {
    match load_error(dir) {
        LoadError::Field { path, error } => {
            assert_eq!(path, dir.join("config.json"));
            error.field
        }
        other => panic!("expected a config.json field error, got {other:?}"),
    }
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::remove_file(&path).unwrap(); // a symlink into the fixture: replace, never write through
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
}

#[test]
fn missing_weights_are_reported() {
    let dir = clone_dir(&fixture("tiny-llama3"), &["model.safetensors"]);
    match load_error(dir.path()) {
        LoadError::Missing { path, what } => {
            assert_eq!(path, dir.path());
            assert!(what.contains("no model.safetensors or model.safetensors.index.json"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn missing_shard_is_reported() {
    let dir = clone_dir(&fixture("tiny-qwen2-sharded"), &["model-00002-of-00003.safetensors"]);
    match load_error(dir.path()) {
        LoadError::Missing { path, what } => {
            assert_eq!(path, dir.path().join("model.safetensors.index.json"));
            assert!(what.contains("model-00002-of-00003.safetensors"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncated_weights_are_reported() {
    let src = fixture("tiny-llama3");
    let dir = clone_dir(&src, &["model.safetensors"]);
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let weights = dir.path().join("model.safetensors");
    let e = load_error(dir.path());
    assert!(
        matches!(&e, LoadError::Weights { path, tensor: None, .. } if *path == weights),
        "{e:?}"
    );
    let err = e.to_string();
    assert!(err.contains("model.safetensors: truncated safetensors file"), "{err}");
    // A file cut inside its header too.
    std::fs::write(dir.path().join("model.safetensors"), &bytes[..100]).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("truncated safetensors file: header declares"), "{err}");
}

#[test]
fn wrong_shape_is_reported() {
    let dir = clone_dir(&fixture("tiny-llama3"), &[]);
    edit_config(dir.path(), |c| c["intermediate_size"] = 96.into());
    let e = load_error(dir.path());
    let want = "model.layers.0.mlp.gate_proj.weight";
    assert!(matches!(&e, LoadError::Weights { tensor: Some(t), .. } if t == want), "{e:?}");
    let err = e.to_string();
    assert!(
        err.contains("tensor `model.layers.0.mlp.gate_proj.weight` has shape [128, 64], but config.json implies [96, 64]"),
        "{err}"
    );
}

#[test]
fn unsupported_architecture_is_reported() {
    let dir = clone_dir(&fixture("tiny-llama3"), &[]);
    edit_config(dir.path(), |c| c["architectures"] = serde_json::json!(["GemmaForCausalLM"]));
    assert_eq!(refused_field(dir.path()), "architectures");
    let err = load_err(dir.path());
    assert!(err.contains("config.json"), "{err}");
    assert!(
        err.contains("architecture `GemmaForCausalLM` is not supported (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)"),
        "{err}"
    );
}

#[test]
fn unsupported_rope_scaling_is_reported() {
    let dir = clone_dir(&fixture("tiny-llama3"), &[]);
    edit_config(dir.path(), |c| c["rope_scaling"]["rope_type"] = "yarn".into());
    assert_eq!(refused_field(dir.path()), "rope_scaling.rope_type");
    let err = load_err(dir.path());
    assert!(err.contains("field `rope_scaling.rope_type`: `yarn` is not supported"), "{err}");
}

#[test]
fn tokenizer_vocab_mismatch_is_reported() {
    // The Qwen tokenizer (151k tokens) next to a model with a 49k vocabulary.
    let dir = clone_dir(&fixture("tiny-llama"), &["tokenizer.json"]);
    std::os::unix::fs::symlink(
        tokenizer_dir("qwen3").join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let e = load_error(dir.path());
    let tok = dir.path().join("tokenizer.json");
    assert!(matches!(&e, LoadError::Tokenizer { path, .. } if *path == tok), "{e:?}");
    let err = e.to_string();
    assert!(
        err.contains(
            "but config.json field `vocab_size` is 49152: tokenizer and model do not match"
        ),
        "{err}"
    );
}

#[test]
fn chat_template_syntax_error_is_reported() {
    let dir = clone_dir(&fixture("tiny-llama"), &["chat_template.jinja"]);
    std::fs::write(dir.path().join("chat_template.jinja"), "{% for m in messages %}{{ m.content }")
        .unwrap();
    // The folder still loads: raw generation and scoring (what training needs) work ...
    let mut model = ChatModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap();
    let params =
        SamplingParams { max_new_tokens: 3, temperature: 0.0, ..SamplingParams::default() };
    let rows = model.generate_ids(&[model.encode("hello").unwrap()], &params, true).unwrap();
    assert!(!rows[0].tokens.is_empty());
    let _ = model.sequence_logprobs(&[Completion::new(vec![1, 2], vec![3])]).unwrap();
    // ... and only chat rendering fails, with the compiler's error.
    let err = format!("{:#}", model.generate(&[ChatRequest::user("hi")], &params).unwrap_err());
    assert!(err.contains("chat_template.jinja: chat template does not compile"), "{err}");
    assert!(err.contains("syntax error"), "{err}");
    // The same through the CLI: raw works, --chat reports the template.
    let run = |chat: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_advgame-host"));
        cmd.args(["generate", "--max-new-tokens", "2", "--model"]).arg(dir.path());
        if chat {
            cmd.arg("--chat");
        }
        cmd.arg("hello").output().unwrap()
    };
    assert!(run(false).status.success());
    let out = run(true);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chat template does not compile"), "{stderr}");
}

#[test]
fn chat_template_render_failure_is_reported() {
    let dir = clone_dir(&fixture("tiny-llama"), &["chat_template.jinja"]);
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% if messages[0].role != 'system' %}{{ raise_exception('a system turn is required') }}{% endif %}",
    )
    .unwrap();
    let mut model = ChatModel::load(dir.path(), Device::Cpu, Kind::Float).unwrap();
    let err = model.generate(&[ChatRequest::user("hi")], &SamplingParams::default()).unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("chat template failed to render"), "{err}");
    assert!(err.contains("a system turn is required"), "{err}");
}

#[test]
fn bad_sampling_parameters_are_reported() {
    let mut model = ChatModel::load(&fixture("tiny-llama"), Device::Cpu, Kind::Float).unwrap();
    let params = SamplingParams { temperature: 0.7, top_p: 0.0, ..SamplingParams::default() };
    let err = format!("{:#}", model.generate(&[ChatRequest::user("hi")], &params).unwrap_err());
    assert!(err.contains("top_p must be in (0, 1], got 0"), "{err}");
}

#[test]
fn out_of_vocabulary_ids_are_reported() {
    let lm = CausalLm::load(&fixture("tiny-llama"), Device::Cpu, Kind::Float).unwrap();
    let err = format!(
        "{:#}",
        lm.sequence_logprobs(&[Completion::new(vec![1, 2], vec![49152])]).unwrap_err()
    );
    assert!(err.contains("token id 49152 is outside the vocabulary (size 49152)"), "{err}");
}
