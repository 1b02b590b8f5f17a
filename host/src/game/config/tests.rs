//! The configuration's tests: defaults, key names old and new, overrides, errors naming
//! file, line and field, plugin-name resolution and round trips.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

#[test]
fn empty_file_gives_paper_defaults() {
    let c = Config::parse("", "t.toml", &[]).unwrap();
    assert_eq!(c.algorithm.lr, 1e-6);
    assert_eq!((c.algorithm.adam_beta1, c.algorithm.adam_beta2), (0.9, 0.95));
    assert_eq!(c.algorithm.weight_decay, 0.1);
    assert_eq!(c.algorithm.final_lr_ratio, 0.2);
    assert_eq!(c.algorithm.ema_decay, 0.95);
    assert_eq!(c.algorithm.beta, 0.1);
    assert_eq!(c.algorithm.steps, 1000);
    assert_eq!(c.algorithm.seeds_per_category, 32);
    assert_eq!(c.game.temperature, 0.6);
    assert_eq!(c.game.top_p, 0.9);
    assert_eq!(c.game.attacker_max_tokens, 2048);
    assert_eq!(c.game.judge_max_tokens, 8192);
    assert_eq!(c.validation.every, 25);
    assert_eq!(c.checkpoint.every, 50);
    assert_eq!(c.plugins.rubrics.defender_harmful, "deflection");
    assert_eq!(c.plugins.rubrics.attacker_benign, "refusal");
}

#[test]
fn unknown_key_names_line_and_field() {
    let text = "[game]\nattacks_per_seed = 4\nattack_per_seed = 2\n";
    let err = Config::parse(text, "run.toml", &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError {
                kind: ConfigErrorKind::UnknownKey,
                file: Some(file),
                line: Some(3),
                column: Some(1),
                ..
            } if file == "run.toml"
        ),
        "{err:?}"
    );
    assert!(err.message.contains("attack_per_seed"), "{err}");
    assert_eq!(err.to_string().lines().count(), 1, "one line: {err}");
    assert!(err.to_string().starts_with("run.toml:3:1: "), "{err}");
}

/// Every unknown key of a file in one message, each with its line, in file order.
#[test]
fn every_unknown_key_is_reported_at_once() {
    let text = "[algorithm]\nlerning_rate = 1e-4\nseed = 3\nsede = 4\n\n[game]\ntemprature = 0.7\nreplies = 3\n";
    let err = Config::parse(text, "run.toml", &[]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey, "{err:?}");
    assert_eq!((err.line, err.field.as_deref()), (Some(2), Some("algorithm.lerning_rate")));
    let found: Vec<_> = err.more.iter().map(|m| (m.line, m.field.as_deref())).collect();
    assert_eq!(
        found,
        [
            (Some(4), Some("algorithm.sede")),
            (Some(7), Some("game.temprature")),
            (Some(8), Some("game.replies"))
        ],
        "{err}"
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.ends_with(
            "; line 4, column 1: field `algorithm.sede`: unknown field `sede` (did you mean \
             `seed`?); line 7, column 1: field `game.temprature`: unknown field `temprature` (did \
             you mean `temperature`?); line 8, column 1: field `game.replies`: unknown field `replies` (did you mean \
             `replies_per_prompt`?)"
        ),
        "{text}"
    );
    // One unknown key: nothing more.
    let err = Config::parse("[game]\ntemprature = 0.7\n", "run.toml", &[]).unwrap_err();
    assert!(err.more.is_empty(), "{err}"); // A misspelt table: its keys are its own, not the table above's, and are not reported
    // again; the keys after it (in the next table) still are.
    let text = "[plugins]\njudge = \"x\"\n\n[validaton]\neval_steps = 2\nmax_new_tokens = 8\n\n[game]\ntemprature = 0.7\n";
    let err = Config::parse(text, "run.toml", &[]).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (Some(4), Some("validaton")), "{err}");
    let found: Vec<_> = err.more.iter().map(|m| (m.line, m.field.as_deref())).collect();
    assert_eq!(found, [(Some(9), Some("game.temprature"))], "{err}");
    assert!(err.to_string().contains("did you mean `validation`?"), "{err}");
}

#[test]
fn wrong_type_names_line_and_field() {
    let text = "[algorithm]\nmethod = \"dpo\"\nlr = \"fast\"\n";
    let err = Config::parse(text, "run.toml", &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError { kind: ConfigErrorKind::WrongType, line: Some(3), field: Some(f), .. }
                if f == "algorithm.lr"
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string().lines().count(), 1, "one line: {err}");
}

#[test]
fn syntax_errors_and_unreadable_files_are_typed() {
    let err = Config::parse("[game\ntop_p = 0.5\n", "run.toml", &[]).unwrap_err();
    assert!(
        matches!(err, ConfigError { kind: ConfigErrorKind::Syntax, line: Some(1), .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string().lines().count(), 1, "one line: {err}");
    // A key with no value, or bare text, in toml's words is "string values must be quoted".
    for (text, shown) in [
        (
            "[algorithm]\nlearning_rate = \n",
            "run.toml:2:17: field `algorithm.learning_rate`: no value after `=`",
        ),
        (
            "[algorithm]\nlearning_rate =   # later\n",
            "run.toml:2:19: field `algorithm.learning_rate`: no value after `=`",
        ),
        (
            "[algorithm]\nlearning_rate = 1e-5 garbage\n",
            "run.toml:2:17: field `algorithm.learning_rate`: `1e-5 garbage` is not a TOML value: \
             after the number 1e-5 comes more text",
        ),
        (
            "[game]\ntop_p = .5\n",
            "run.toml:2:9: field `game.top_p`: `.5` is not a TOML number: write 0.5 (TOML \
             wants a digit on each side of the point)",
        ),
        (
            "[game]\ntop_p = 1.\n",
            "run.toml:2:11: field `game.top_p`: `1.` is not a TOML number: write 1.0",
        ),
        (
            "[output]\nname = my-run\n",
            "run.toml:2:8: field `output.name`: `my-run` is not a TOML value: text goes in \
             quotes, \"my-run\"",
        ),
    ] {
        let err = Config::parse(text, "run.toml", &[]).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::Syntax, "{err:?}");
        assert!(err.to_string().starts_with(shown), "{text:?}: {err}");
    }
    let err = Config::load(Path::new("/nonexistent/run.toml"), &[]).unwrap_err();
    assert!(
        matches!(&err, ConfigError { kind: ConfigErrorKind::Read, file: Some(f), .. }
            if f == "/nonexistent/run.toml"),
        "{err:?}"
    );
}

#[test]
fn overrides_apply_before_deserialising() {
    let c = Config::parse(
        "[algorithm]\nmethod = \"dpo\"\n",
        "t.toml",
        &[
            "algorithm.method=grpo".into(),
            "game.attacks_per_seed=4".into(),
            "algorithm.betas=[0.8, 0.9]".into(),
            "plugins.paths.judge=/tmp/j.wasm".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.algorithm.method, Method::Grpo);
    assert_eq!(c.game.attacks_per_seed, 4);
    assert_eq!((c.algorithm.adam_beta1, c.algorithm.adam_beta2), (0.8, 0.9));
    assert_eq!(c.plugins.paths["judge"], PathBuf::from("/tmp/j.wasm"));
}

#[test]
fn bad_override_names_the_field() {
    let err = Config::parse("", "t.toml", &["game.temperature=hot".into()]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError { kind: ConfigErrorKind::WrongType, field: Some(f), set: Some(s), .. }
                if f == "game.temperature" && s == "game.temperature=hot"
        ),
        "{err:?}"
    );
    // `.5` is a number to people and to Rust, not to TOML: said so, not read as the text.
    let err = Config::parse("", "t.toml", &["game.top_p=.5".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    assert_eq!(err.field.as_deref(), Some("game.top_p"), "{err:?}");
    assert!(
        err.to_string().contains(
            "`.5` is not a TOML number: write 0.5 (TOML wants a digit on each side of the \
             point); as text: --set 'game.top_p=\".5\"'"
        ),
        "{err}"
    );
    // In a list, the number is named, not the list taken for text.
    let err = Config::parse("", "t.toml", &["game.attacker_stop=[\"a\", 1.]".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.attacker_stop"), "{err:?}");
    assert!(err.to_string().contains("`1.` is not a TOML number: write 1.0"), "{err}");
    let err = Config::parse("", "t.toml", &["game.attacker_stop=[\"a\"".into()]).unwrap_err();
    assert!(err.to_string().contains("opens a TOML list but is not one"), "{err}");
    let c = Config::parse("", "t.toml", &["output.name=Infinity".into()]).unwrap();
    assert_eq!(c.output.name, "Infinity");
    let err = Config::parse("", "t.toml", &["game.nope=1".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey, "{err:?}");
    assert!(err.to_string().contains("nope"), "{err}");
    let err = Config::parse("", "t.toml", &["novalue".into()]).unwrap_err();
    assert!(
        matches!(&err, ConfigError { kind: ConfigErrorKind::BadOverride, set: Some(s), .. }
            if s == "novalue"),
        "{err:?}"
    );
    let err =
        Config::parse("[game]\ntop_p = 0.5\n", "t.toml", &["game.top_p.x=1".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    let err = Config::parse("", "t.toml", &["game.top_p.x=1".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::WrongType, "{err:?}");
    assert_eq!(err.set.as_deref(), Some("game.top_p.x=1"), "{err:?}");
}

#[test]
fn range_checks_name_the_field() {
    let err = Config::parse("[game]\ntop_p = 1.5\n", "t.toml", &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError { kind: ConfigErrorKind::OutOfRange, line: Some(2), field: Some(f), .. }
                if f == "game.top_p"
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "t.toml:2:9: field `game.top_p`: must be in (0, 1], found the number 1.5"
    );
    // Every out-of-range field is reported, the first one typed; an old key name is found
    // at its line; a value from `--set` names the item instead of a line.
    let err =
        Config::parse("[algorithm]\nlr = -1.0\n", "t.toml", &["game.top_p=2".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.top_p"), "{err:?}");
    assert_eq!((err.line, err.set.as_deref()), (None, Some("game.top_p=2")), "{err:?}");
    assert!(
        matches!(&err.more[..], [ConfigError { kind: ConfigErrorKind::OutOfRange, field: Some(f), .. }]
            if f == "algorithm.learning_rate"),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "--set game.top_p=2 (over t.toml): field `game.top_p`: must be in (0, 1], found the \
             number 2;"
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains(
            "; field `algorithm.learning_rate`: must be finite and >= 0, found the number -1"
        ),
        "{err}"
    );
    // An f32 field's value reads as written.
    let err = Config::parse("[game]\ntop_p = 1.1\n", "t.toml", &[]).unwrap_err();
    assert!(err.to_string().ends_with("found the number 1.1"), "{err}");
    // RPO's NLL term belongs to the preference losses only.
    let err = Config::parse("[algorithm]\nmethod = \"grpo\"\nrpo_alpha = 1.0\n", "t.toml", &[])
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.rpo_alpha"), "{err:?}");
    assert!(err.to_string().starts_with("t.toml:3:"), "{err}");
    assert!(Config::parse("[algorithm]\nrpo_alpha = 1.0\n", "t.toml", &[]).is_ok());
    // When the method comes from --set, the file's rpo_alpha line is not the whole story.
    let err = Config::parse(
        "[algorithm]\nrpo_alpha = 1.0\n",
        "t.toml",
        &["algorithm.method=grpo".into()],
    )
    .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.rpo_alpha"), "{err:?}");
    assert!(err.to_string().starts_with("t.toml:2:"), "{err}");
    assert!(
        err.to_string().contains("(`algorithm.method` from --set algorithm.method=grpo)"),
        "{err}"
    );
    // So is the counterfactual benign rejected reply, which must say something.
    let text = "[algorithm]\nmethod = \"grpo\"\nbenign_rejected_refusal = \"No.\"\n";
    let err = Config::parse(text, "t.toml", &[]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.benign_rejected_refusal"), "{err:?}");
    assert!(err.to_string().starts_with("t.toml:3:"), "{err}");
    let err =
        Config::parse("[algorithm]\nbenign_rejected_refusal = \" \"\n", "t.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("must be a non-empty text"), "{err}");
    let ok = Config::parse("[algorithm]\nbenign_rejected_refusal = \"No.\"\n", "t.toml", &[]);
    assert_eq!(ok.unwrap().algorithm.benign_rejected_refusal.as_deref(), Some("No."));
    // Infinite strengths and rates are refused, not trained with.
    // The retain weight is a weight: finite and >= 0; with it the defender keeps its initial
    // model (the attacker does not).
    let err = Config::parse("[algorithm]\nbenign_retain_alpha = -1\n", "t.toml", &[]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.benign_retain_alpha"), "{err:?}");
    assert!(err.to_string().contains("must be finite and >= 0"), "{err}");
    let ok = Config::parse("[algorithm]\nbenign_retain_alpha = 0.5\n", "t.toml", &[]).unwrap();
    assert!(ok.algorithm.keeps_initial("defender") && !ok.algorithm.keeps_initial("attacker"));
    for key in [
        "beta",
        "rpo_alpha",
        "benign_retain_alpha",
        "learning_rate",
        "adam_epsilon",
        "grpo_ratio_cap",
    ] {
        let err = Config::parse(&format!("[algorithm]\n{key} = inf\n"), "t.toml", &[]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some(format!("algorithm.{key}").as_str()), "{err:?}");
        assert!(err.to_string().contains("must be finite"), "{err}");
    }
    let err = Config::parse("[models]\ndevice = \"tpu\"\n", "t.toml", &[]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError { kind: ConfigErrorKind::InvalidValue, line: Some(2), field: Some(f), .. }
                if f == "models.device"
        ),
        "{err:?}"
    );
}

#[test]
fn missing_file_names_the_field() {
    let c = Config::parse("[data]\nharmful = \"/nonexistent/h.jsonl\"\n", "t.toml", &[]).unwrap();
    let err = c.check_files().unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::MissingFile, "{err:?}");
    let field = err.field.as_deref();
    assert!(field == Some("models.attacker") || field == Some("data.harmful"), "{err:?}");
    // The caller that knows the file places the error in it, at the field's line.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.toml");
    std::fs::write(&file, "[data]\n\nbenign = \"/nonexistent/b.jsonl\"\n").unwrap();
    let c = Config::load(&file, &[]).unwrap();
    let c = Config {
        models: Models { attacker: file.clone(), defender: file.clone(), ..c.models },
        ..c
    };
    let c = Config { data: Data { harmful: file.clone(), ..c.data }, ..c };
    let err = c.check_files().unwrap_err().placed_in(&file, &[]);
    assert!(
        matches!(&err, ConfigError { kind: ConfigErrorKind::MissingFile, line: Some(3), field: Some(f), file: Some(p), .. }
            if f == "data.benign" && p == &file.display().to_string()),
        "{err:?}"
    );
    let set = vec!["data.benign=/nonexistent/c.jsonl".to_string()];
    let c = Config { data: Data { benign: "/nonexistent/c.jsonl".into(), ..c.data }, ..c };
    let err = c.check_files().unwrap_err().placed_in(&file, &set);
    assert_eq!((err.line, err.set.as_deref()), (None, Some(set[0].as_str())), "{err:?}");
    // The message points at the override, not at the file that does not hold the value.
    let shown = err.to_string();
    assert!(shown.starts_with("--set data.benign=/nonexistent/c.jsonl (over "), "{shown}");
}

/// A folder `name` under `root` holding a tiny Llama's `config.json` (no weights).
fn model_dir(root: &Path, name: &str) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "vocab_size": 257, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 128
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir
}

/// A model field must name a loadable Hugging Face folder: a file, a folder without
/// config.json, a PEFT adapter folder or an unsupported architecture is the field's error
/// before any weight loads, in words that say what to give instead.
#[test]
fn a_model_folder_is_checked_before_anything_loads() {
    let dir = tempfile::tempdir().unwrap();
    let model = model_dir(dir.path(), "model");
    let file = dir.path().join("data.jsonl");
    std::fs::write(&file, "{}\n").unwrap();
    let prompt = dir.path().join("prompt.txt");
    std::fs::write(&prompt, "Rewrite: {seed}").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let adapter = dir.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    std::fs::write(adapter.join("adapter_config.json"), "{}").unwrap();
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("config.json"), r#"{"architectures": ["BertModel"]}"#).unwrap();
    let weights = model.join("model.safetensors");
    std::fs::write(&weights, b"").unwrap();
    let check = |defender: &Path| {
        let c = Config::parse("", "t.toml", &[]).unwrap();
        let models = Models { attacker: model.clone(), defender: defender.into(), ..c.models };
        let data = Data {
            harmful: file.clone(),
            benign: file.clone(),
            harmful_val: None,
            benign_val: None,
        };
        let c = Config { models, data, ..c };
        let c = Config {
            game: crate::game::config::Game {
                attacker_prompt_harmful: prompt.clone(),
                attacker_prompt_benign: prompt.clone(),
                ..c.game
            },
            ..c
        };
        c.check_files().and_then(|()| c.check_model_folders())
    };
    for (defender, words) in [
        (&weights, "model.safetensors: is a file; expected a Hugging Face model folder"),
        (&empty, "empty: has no config.json; expected a Hugging Face model folder"),
        (
            &adapter,
            "adapter is a PEFT adapter folder (adapter_config.json, no config.json): \
                    give its base model here and the adapter as models.lora.defender_adapter",
        ),
        (&other, "BertModel"),
    ] {
        let err = check(defender).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::InvalidValue, "{err:?}");
        assert_eq!(err.field.as_deref(), Some("models.defender"), "{err:?}");
        assert!(err.to_string().contains(words), "{err}");
    }
    check(&model).unwrap();
}

#[test]
fn shipped_examples_parse() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["quickstart.toml", "llm-judge.toml"] {
        let c = Config::load(&root.join("examples").join(name), &[]).unwrap();
        assert_eq!(c.models.device, tch::Device::Cpu, "{name}");
    }
    let q = Config::load(&root.join("examples/quickstart.toml"), &[]).unwrap();
    assert_eq!(q.plugins.judge, "refusal-heuristic");
    // Everything the quickstart does not set keeps the paper's value.
    assert_eq!(q.algorithm.ema_decay, 0.95);
    assert_eq!(q.algorithm.beta, 0.1);
    let l = Config::load(&root.join("examples/llm-judge.toml"), &[]).unwrap();
    assert_eq!(l.plugins.judge, "llm");
    assert!(l.models.judge.is_some());
}

/// The examples use the new key names; written with the old ones they are the same run
/// (so the quickstart's metrics for a seed did not change with the renaming).
#[test]
fn shipped_examples_mean_the_same_under_their_old_key_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["quickstart.toml", "llm-judge.toml"] {
        let text = std::fs::read_to_string(root.join("examples").join(name)).unwrap();
        let mut old_text = String::new();
        let mut renamed = 0;
        for line in text.lines() {
            let old = RENAMED.iter().find_map(|(old, new)| {
                let (old, new) = (old.rsplit_once('.')?.1, new.rsplit_once('.')?.1);
                line.strip_prefix(new)?.strip_prefix(" =").map(|rest| format!("{old} ={rest}"))
            });
            renamed += usize::from(old.is_some());
            old_text.push_str(&old.unwrap_or_else(|| line.to_string()));
            old_text.push('\n');
        }
        assert!(renamed >= 4, "{name}: the example uses the new names");
        let new = Config::parse(&text, name, &[]).unwrap();
        assert_eq!(Config::parse(&old_text, name, &[]).unwrap(), new, "{name}");
    }
}

#[test]
fn plugin_names_resolve_to_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rubric-refusal.wasm"), b"x").unwrap();
    std::fs::write(dir.path().join("mine.wasm"), b"x").unwrap();
    let mut p = Plugins { dir: Some(dir.path().into()), ..Plugins::default() };
    assert_eq!(p.path_of("rubric", "refusal").unwrap(), dir.path().join("rubric-refusal.wasm"));
    assert_eq!(p.path_of("judge", "mine").unwrap(), dir.path().join("mine.wasm"));
    let err = p.path_of("judge", "llm").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::MissingFile, "{err:?}");
    assert_eq!(err.field.as_deref(), Some("plugins.judge"), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("judge-llm.wasm") && err.contains("--plugin llm=PATH"), "{err}");
    // What is built there, and the closest name.
    std::fs::write(dir.path().join("curriculum-lookalike.wasm"), b"x").unwrap();
    std::fs::write(dir.path().join("curriculum-uniform.wasm"), b"x").unwrap();
    let err = p.path_of("curriculum", "lookalke").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("plugins.curriculum"), "{err:?}");
    assert!(
        err.message.contains(
            "built curriculum plugins there: lookalike, uniform (did you mean `lookalike`?)"
        ),
        "{err}"
    );
    let err = p.path_of("rubric", "nothing-like-it").unwrap_err();
    assert_eq!(err.field.as_deref(), Some("plugins.dir"), "{err:?}");
    assert!(err.message.contains("built rubric plugins there: refusal ("), "{err}");
    p.paths.insert("llm".into(), dir.path().join("nope.wasm"));
    let err = p.path_of("judge", "llm").unwrap_err();
    assert!(
        matches!(&err, ConfigError { kind: ConfigErrorKind::MissingFile, field: Some(f), .. }
            if f == "plugins.paths.llm"),
        "{err:?}"
    );
    assert!(err.to_string().contains("not a file"), "{err}");
}

#[test]
fn resolved_config_round_trips() {
    let mut c = Config::default();
    c.plugins
        .settings
        .insert("heuristic".into(), BTreeMap::from([("min_len".into(), toml::Value::Integer(3))]));
    let text = c.to_toml().unwrap();
    let back = Config::parse(&text, "resolved", &[]).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.plugins.settings_of("heuristic"), vec![("min_len".into(), "3".into())]);
    assert_eq!(
        c.plugins.rubric_names(),
        vec!["compliance", "deflection", "faithfulness", "refusal"]
    );
}

/// Case 14: `--set KEY=null` / `none` unsets an optional field, and the resolved config
/// (what `--print-config` shows and the run directory keeps) says so and round-trips.
#[test]
fn case_14_null_unsets_optional_fields() {
    for word in ["null", "none", "None", "NULL"] {
        let c = Config::parse(
            "",
            "t.toml",
            &[format!("game.attacker_prefill={word}"), format!("data.harmful_val={word}")],
        )
        .unwrap();
        assert_eq!(c.game.attacker_prefill, None, "{word}");
        assert_eq!(c.data.harmful_val, None, "{word}");
        assert!(c.data.benign_val.is_some());
        let printed = c.to_documented_toml().unwrap();
        assert!(printed.contains("\nattacker_prefill = \"\"\n"), "{printed}");
        assert!(printed.contains("\nharmful_val = \"\"\n"), "{printed}");
        assert_eq!(Config::parse(&c.to_toml().unwrap(), "resolved", &[]).unwrap(), c);
    }
    // An optional field whose default is unset, and the empty string in a file.
    let c = Config::parse("[plugins]\ndir = \"/p\"\n", "t.toml", &["plugins.dir=null".into()]);
    assert_eq!(c.unwrap().plugins.dir, None);
    let c = Config::parse("[data]\nbenign_val = \"\"\n", "t.toml", &[]).unwrap();
    assert_eq!(c.data.benign_val, None);
    // The last override of a key wins, null or not.
    let c = Config::parse(
        "",
        "t.toml",
        &["game.attacker_prefill=null".into(), "game.attacker_prefill=\"<x>\"".into()],
    )
    .unwrap();
    assert_eq!(c.game.attacker_prefill.as_deref(), Some("<x>"));
    // The literal words need quotes.
    let c = Config::parse("", "t.toml", &["game.attacker_prefill=\"null\"".into()]).unwrap();
    assert_eq!(c.game.attacker_prefill.as_deref(), Some("null"));
    // Map entries are removed.
    let c = Config::parse(
        "[plugins.paths]\nmine = \"/tmp/m.wasm\"\nother = \"/tmp/o.wasm\"\n",
        "t.toml",
        &["plugins.paths.mine=null".into()],
    )
    .unwrap();
    assert_eq!(c.plugins.paths.keys().collect::<Vec<_>>(), ["other"]);
}

/// `none` is a value of `models.adapter` (full fine-tuning), so `--set models.adapter=none`
/// sets it instead of refusing an unset; a field that cannot take the word keeps the error.
#[test]
fn none_sets_a_field_that_takes_it_as_a_value() {
    let lora = "[models]\nadapter = \"lora\"\n";
    for word in ["none", "null"] {
        let sets = [format!("models.adapter={word}")];
        let c = Config::parse(lora, "t.toml", &sets);
        if word == "none" {
            let c = c.unwrap();
            let back = Config::parse("[models]\nadapter = \"none\"\n", "t.toml", &[]).unwrap();
            assert_eq!(c.models.adapter, back.models.adapter);
        } else {
            // `null` is no adapter value: the unset is refused as before.
            let err = c.unwrap_err().to_string();
            assert!(
                err.contains("field `models.adapter`") && err.contains("cannot be unset"),
                "{err}"
            );
        }
    }
    // A field of named values refuses both readings, and says what it takes in its words
    // (not serde's "string or map").
    let err = Config::parse("", "t.toml", &["algorithm.method=none".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::NotOptional, "{err:?}");
    assert_eq!(
        err.to_string(),
        "--set algorithm.method=none (over t.toml): field `algorithm.method`: cannot be unset \
         (it is not optional), and `none` is not one of its values: expected one of `dpo`, \
         `ipo`, `grpo`"
    );
    assert_eq!(err.expected.as_deref(), Some("one of `dpo`, `ipo`, `grpo`"));
}

#[test]
fn null_on_a_required_field_or_a_typo_is_an_error_naming_it() {
    let not_optional = |err: &ConfigError, field: &str| {
        matches!(
            err,
            ConfigError { kind: ConfigErrorKind::NotOptional, file: Some(file), field: Some(f), .. }
                if file == "t.toml" && f == field
        )
    };
    let err = Config::parse("", "t.toml", &["output.name=none".into()]).unwrap_err();
    assert!(not_optional(&err, "output.name"), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("--set output.name=none (over t.toml): field `output.name`: cannot be unset: it is not optional"),
        "{err}"
    );
    assert!(err.to_string().contains("--set 'output.name=\"none\"'"), "{err}");
    let err = Config::parse("", "t.toml", &["algorithm.steps=null".into()]).unwrap_err();
    assert!(not_optional(&err, "algorithm.max_steps"), "{err:?}");
    let err = Config::parse("", "t.toml", &["game.attacker_prefil=null".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey, "{err:?}");
    assert!(err.to_string().contains("attacker_prefil"), "{err}");
    let err = Config::parse("", "t.toml", &["game.attacker_prefill=".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    let err = err.to_string();
    assert!(err.contains("no value") && err.contains("game.attacker_prefill=null"), "{err}");
    // The item is named even though its fix (`KEY=null`) contains its text.
    assert!(err.starts_with("--set game.attacker_prefill= (over t.toml): "), "{err}");
    // A field that is not optional says so instead of suggesting `null`.
    let err = Config::parse("", "t.toml", &["data.harmful=".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    assert_eq!(err.set.as_deref(), Some("data.harmful="), "{err:?}");
    assert_eq!(err.field.as_deref(), Some("data.harmful"), "{err:?}");
    let text = err.to_string();
    assert!(
        text.ends_with(
            "no value, and the field is not optional: give it a path (a string in quotes)"
        ),
        "{text}"
    );
    assert!(!text.contains("=null"), "{text}");
    // A typo in the key is the problem to report.
    let err = Config::parse("", "t.toml", &["data.harmfull=".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey, "{err:?}");
    assert_eq!(err.set.as_deref(), Some("data.harmfull="), "{err:?}");
    assert!(err.to_string().contains("did you mean `harmful`?"), "{err}");
    // What the field takes is data on the error, not only words in the message.
    let err = Config::parse("", "t.toml", &["data.harmful=null".into()]).unwrap_err();
    assert_eq!(err.expected.as_deref(), Some("a path (a string in quotes)"), "{err:?}");
    // The old pair `algorithm.betas` says what it takes too, and names the item and file.
    let err = Config::parse("", "t.toml", &["algorithm.betas=".into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--set algorithm.betas= (over t.toml): field `algorithm.betas`: no value, and the \
         field is not optional: give it two numbers in [0, 1), [adam_beta1, adam_beta2]"
    );
}

/// A bad shared temperature is one problem, not also each player's (which inherit it).
#[test]
fn a_bad_shared_temperature_is_reported_once() {
    let err = Config::parse("", "t.toml", &["game.temperature=-0.5".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.temperature"), "{err}");
    assert!(err.more.is_empty(), "{err}");
    let err = Config::parse("", "t.toml", &["game.defender_temperature=-1".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.defender_temperature"), "{err}");
}

/// A value out of range that came as the old pair `betas` is placed at that pair: the
/// `--set` item that gave it, or its line in the file.
#[test]
fn the_old_beta_pair_is_named_where_it_was_given() {
    let err = Config::parse("", "t.toml", &["algorithm.betas=[0.9, 1.5]".into()]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.adam_beta2"), "{err:?}");
    assert_eq!(err.set.as_deref(), Some("algorithm.betas=[0.9, 1.5]"), "{err}");
    assert!(err.to_string().starts_with("--set algorithm.betas=[0.9, 1.5] (over t.toml)"), "{err}");
    let err =
        Config::parse("[algorithm]\nseed = 1\nbetas = [0.9, 1.5]\n", "t.toml", &[]).unwrap_err();
    assert_eq!((err.line, err.set.as_deref()), (Some(3), None), "{err}");
}

/// Every `--set` item with an unknown key in one message, in command-line order, as for the
/// file's keys; an item with a known key in between changes nothing.
#[test]
fn every_unknown_set_key_is_reported_at_once() {
    let items: Vec<String> = [
        "game.tempreature=1",
        "algorithm.learning_rate=1e-5",
        "algorithm.lerning_rate=2",
        "models.lora.rr=3",
        "data.harmfull=null",
    ]
    .map(String::from)
    .to_vec();
    let err = Config::parse("", "t.toml", &items).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::UnknownKey, "{err:?}");
    assert_eq!(err.set.as_deref(), Some("game.tempreature=1"), "{err:?}");
    let more: Vec<_> = err.more.iter().map(|m| (m.set.as_deref(), m.field.as_deref())).collect();
    assert_eq!(
        more,
        [
            (Some("algorithm.lerning_rate=2"), Some("algorithm.lerning_rate")),
            (Some("models.lora.rr=3"), Some("models.lora.rr")),
            (Some("data.harmfull=null"), Some("data.harmfull")),
        ],
        "{err}"
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(
            "; --set algorithm.lerning_rate=2: field `algorithm.lerning_rate`: unknown field \
             `lerning_rate` (did you mean `learning_rate`?); --set models.lora.rr=3: field `models.lora.rr`: unknown field `rr` \
             (did you mean `r`?); --set data.harmfull=null: field `data.harmfull`"
        ),
        "{text}"
    );
    // One unknown key: nothing more; another kind of error is reported as it is.
    let err = Config::parse("", "t.toml", &items[..2]).unwrap_err();
    assert!(err.more.is_empty(), "{err}");
    let err = Config::parse("", "t.toml", &["algorithm.learning_rate=x".into()]).unwrap_err();
    assert!(err.more.is_empty() && err.kind != ConfigErrorKind::UnknownKey, "{err:?}");
}

/// Unknown keys of the file and of the `--set` items in one message: the file's first (in
/// file order, with their line and column), then the items' (in command-line order).
#[test]
fn unknown_keys_of_the_file_and_of_set_items_are_reported_together() {
    let text = "[algorithm]\nsede = 4\n\n[game]\n  temprature = 0.7\n";
    let items: Vec<String> =
        ["algorithm.seed=1", "models.lora.rr=3", "game.replies=2"].map(String::from).to_vec();
    let err = Config::parse(text, "run.toml", &items).unwrap_err();
    assert_eq!((err.line, err.field.as_deref()), (Some(2), Some("algorithm.sede")), "{err}");
    let more: Vec<_> =
        err.more.iter().map(|m| (m.line, m.set.as_deref(), m.field.as_deref())).collect();
    assert_eq!(
        more,
        [
            (Some(5), None, Some("game.temprature")),
            (None, Some("models.lora.rr=3"), Some("models.lora.rr")),
            (None, Some("game.replies=2"), Some("game.replies")),
        ],
        "{err}"
    );
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("run.toml:2:1: field `algorithm.sede`"), "{text}");
    assert!(
        text.contains(
            "; line 5, column 3: field `game.temprature`: unknown field `temprature` (did you mean \
             `temperature`?); --set models.lora.rr=3: field `models.lora.rr`: unknown field `rr` \
             (did you mean `r`?); --set game.replies=2: field `game.replies`"
        ),
        "{text}"
    );
    // The file's only: the items are all known.
    let err = Config::parse(text_of_one_typo(), "run.toml", &items[..1]).unwrap_err();
    assert!(err.more.is_empty(), "{err}");
}

fn text_of_one_typo() -> &'static str {
    "[game]\ntemprature = 0.7\n"
}

/// Case 14's control: a bare number for a text field is refused, naming the field and the
/// quoting fix; the quoted value is accepted.
#[test]
fn case_14_a_bare_number_for_a_text_field_names_the_quoting_fix() {
    let err = Config::parse("", "q.toml", &["output.name=2024".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::WrongType, "{err:?}");
    assert_eq!(err.set.as_deref(), Some("output.name=2024"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "--set output.name=2024 (over q.toml): field `output.name`: expected a string in \
         quotes, found the whole number 2024; to pass it as text, quote it: --set \
         'output.name=\"2024\"'"
    );
    let err = Config::parse("", "q.toml", &["data.harmful=true".into()]).unwrap_err().to_string();
    assert!(
        err.contains("field `data.harmful`") && err.contains("'data.harmful=\"true\"'"),
        "{err}"
    );
    let c = Config::parse("", "q.toml", &["output.name=\"2024\"".into()]).unwrap();
    assert_eq!(c.output.name, "2024");
    // Not text-typed: no quoting advice.
    let err = Config::parse("", "q.toml", &["algorithm.seed=x".into()]).unwrap_err().to_string();
    assert!(err.contains("field `algorithm.seed`") && !err.contains("quote"), "{err}");
}

/// Case 14's kind: text that opens with a quote but is not one TOML string (`'I'm sorry'`, a
/// quote left open) is refused, naming the double-quote fix, instead of becoming a string
/// with the quotes in it; double quotes and bare text both give the text itself.
#[test]
fn a_quoted_set_value_that_is_not_toml_is_refused_not_kept_with_its_quotes() {
    let key = "game.attacker_prefill";
    for raw in ["'I'm sorry, but I can't help.'", "\"I'm sorry", "'open"] {
        let item = format!("{key}={raw}");
        let err = Config::parse("", "q.toml", std::slice::from_ref(&item)).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&item) && msg.contains("opens with a quote") && msg.contains("double"),
            "{msg}"
        );
    }
    for raw in ["\"I'm sorry, but I can't help.\"", "I'm sorry, but I can't help."] {
        let c = Config::parse("", "q.toml", &[format!("{key}={raw}")]).unwrap();
        assert_eq!(c.game.attacker_prefill.as_deref(), Some("I'm sorry, but I can't help."));
    }
    // A single-quoted TOML literal without an apostrophe is still one string.
    let c = Config::parse("", "q.toml", &[format!("{key}='fine'")]).unwrap();
    assert_eq!(c.game.attacker_prefill.as_deref(), Some("fine"));
}

/// Issue 7: the standard names, with the old ones as aliases in files and in `--set`.
#[test]
fn old_key_names_mean_the_new_keys() {
    let old = "[algorithm]\nlr = 0.5\ngrad_clip = 2.0\nsteps = 7\nmicro_batch = 3\n\
               final_lr_ratio = 0.5\n[validation]\nevery = 4\n[checkpoint]\nevery = 9\nkeep = 5\n";
    let new = "[algorithm]\nlearning_rate = 0.5\nmax_grad_norm = 2.0\nmax_steps = 7\n\
               per_device_train_batch_size = 3\nmin_lr_rate = 0.5\n[validation]\neval_steps = 4\n\
               [checkpoint]\nsave_steps = 9\nsave_total_limit = 5\n";
    let a = Config::parse(old, "old.toml", &[]).unwrap();
    let b = Config::parse(new, "new.toml", &[]).unwrap();
    assert_eq!(a, b);
    assert_eq!((a.algorithm.lr, a.algorithm.steps, a.checkpoint.keep), (0.5, 7, 5));
    // Either name overrides either spelling in the file.
    for (file, set) in
        [(old, "algorithm.max_steps=1"), (new, "algorithm.steps=1"), (old, "algorithm.steps=1")]
    {
        let c = Config::parse(file, "t.toml", &[set.into()]).unwrap();
        assert_eq!(c.algorithm.steps, 1, "{set}");
    }
    let c =
        Config::parse(old, "t.toml", &["checkpoint.keep=0".into(), "validation.every=0".into()])
            .unwrap();
    assert_eq!((c.checkpoint.keep, c.validation.every), (0, 0));
    // Both names in one file is one field given twice.
    let err =
        Config::parse("[algorithm]\nlr = 1.0\nlearning_rate = 2.0\n", "t.toml", &[]).unwrap_err();
    assert_eq!((err.kind, err.line), (ConfigErrorKind::DuplicateKey, Some(3)), "{err:?}");
    assert_eq!(err.field.as_deref(), Some("algorithm.learning_rate"), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("duplicate field `learning_rate`"), "{err}");
    assert!(err.contains("`algorithm.lr` is the old name of `algorithm.learning_rate`"), "{err}");
    // The resolved config writes the new names.
    let text = a.to_toml().unwrap();
    for (_, new) in RENAMED {
        let leaf = new.rsplit_once('.').unwrap().1;
        assert!(text.contains(&format!("\n{leaf} = ")), "{leaf}: {text}");
    }
    // A wrong type under an old name still names what the user typed.
    let err = Config::parse("", "t.toml", &["algorithm.steps=\"many\"".into()]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError { kind: ConfigErrorKind::WrongType, field: Some(f), set: Some(s), .. }
                if f == "algorithm.max_steps" && s == "algorithm.steps=\"many\""
        ),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(err.contains("algorithm.steps") && err.contains("algorithm.max_steps"), "{err}");
}

/// Issue 7: transformers' `adam_beta1` / `adam_beta2`; the old pair `betas` still means them,
/// in files and in `--set`, and giving both spellings from one source is an error.
#[test]
fn old_betas_pair_means_adam_beta1_and_adam_beta2() {
    let old = Config::parse("[algorithm]\nbetas = [0.8, 0.99]\n", "old.toml", &[]).unwrap();
    let new_text = "[algorithm]\nadam_beta1 = 0.8\nadam_beta2 = 0.99\n";
    let new = Config::parse(new_text, "new.toml", &[]).unwrap();
    assert_eq!(old, new);
    assert_eq!((old.algorithm.adam_beta1, old.algorithm.adam_beta2), (0.8, 0.99));
    assert_eq!(old.algorithm.adam_epsilon, 1e-8);
    let text = old.to_toml().unwrap();
    assert!(text.contains("\nadam_beta1 = 0.8\n") && !text.contains("betas"), "{text}");
    // A `--set` of a new key replaces one half of the file's old pair, and the reverse.
    let c = Config::parse(
        "[algorithm]\nbetas = [0.8, 0.99]\n",
        "t.toml",
        &["algorithm.adam_beta2=0.9".into()],
    )
    .unwrap();
    assert_eq!((c.algorithm.adam_beta1, c.algorithm.adam_beta2), (0.8, 0.9));
    let c = Config::parse(new_text, "t.toml", &["algorithm.betas=[0.7, 0.9]".into()]).unwrap();
    assert_eq!((c.algorithm.adam_beta1, c.algorithm.adam_beta2), (0.7, 0.9));
    // Both spellings from one source.
    let both = "[algorithm]\nbetas = [0.8, 0.99]\nadam_beta1 = 0.7\n";
    let err = Config::parse(both, "both.toml", &[]).unwrap_err().to_string();
    assert!(err.contains("both.toml") && err.contains("field `algorithm.betas`"), "{err}");
    assert!(err.contains("keep one spelling"), "{err}");
    let sets = ["algorithm.betas=[0.8, 0.9]".into(), "algorithm.adam_beta1=0.7".into()];
    let err = Config::parse("", "t.toml", &sets).unwrap_err().to_string();
    assert!(err.contains("field `algorithm.betas`"), "{err}");
    let err =
        Config::parse("", "t.toml", &["algorithm.betas=null".into()]).unwrap_err().to_string();
    assert!(err.contains("cannot be unset"), "{err}");
    // Wrong shapes and ranges name the field.
    let err = Config::parse("[algorithm]\nbetas = [0.8]\n", "t.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("algorithm.betas"), "{err}");
    let err = Config::parse("[algorithm]\nbetas = [0.8, 1.5]\n", "t.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("algorithm.adam_beta2"), "{err}");
    let err = Config::parse("", "t.toml", &["algorithm.adam_epsilon=0".into()]).unwrap_err();
    assert!(err.to_string().contains("algorithm.adam_epsilon"), "{err}");
}

/// A value of the wrong type reads in the project's words (what the field takes, with its
/// documented range or its accepted values, and what was found), never serde's (`expected
/// usize`), the same from a file (with its line) and from a `--set` item (naming the item).
#[test]
fn wrong_types_say_what_the_field_takes_and_what_was_found() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (section, key = value, field, message)
        (
            "algorithm",
            "seeds_per_category = \"eight\"",
            "algorithm.seeds_per_category",
            "expected a whole number >= 1, found the string \"eight\"",
        ),
        (
            "algorithm",
            "learning_rate = \"fast\"",
            "algorithm.learning_rate",
            "expected a number >= 0, found the string \"fast\"",
        ),
        (
            "algorithm",
            "seed = -3",
            "algorithm.seed",
            "expected a whole number >= 0, found the whole number -3",
        ),
        (
            "models.lora",
            "r = 1.5",
            "models.lora.r",
            "expected a whole number >= 1, found the number 1.5",
        ),
        ("game", "top_p = [1]", "game.top_p", "expected a number in (0, 1], found a list"),
        (
            "game",
            "faithfulness_gate = \"yes\"",
            "game.faithfulness_gate",
            "expected true or false, found the string \"yes\"",
        ),
        (
            "output",
            "name = true",
            "output.name",
            "expected a string in quotes, found the boolean true",
        ),
        (
            "data",
            "harmful = 3",
            "data.harmful",
            "expected a path (a string in quotes), found the whole number 3",
        ),
        (
            "game",
            "attacker_stop = \"x\"",
            "game.attacker_stop",
            "expected a list in brackets, e.g. [\"a\", \"b\"], found the string \"x\"",
        ),
        (
            "validation",
            "harmful_rubrics = [1]",
            "validation.harmful_rubrics[0]",
            "expected a string in quotes, found the whole number 1",
        ),
        (
            "algorithm",
            "method = \"fast\"",
            "algorithm.method",
            "expected one of `dpo`, `ipo`, `grpo`, found the string \"fast\"",
        ),
        (
            "algorithm",
            "method = 3",
            "algorithm.method",
            "expected one of `dpo`, `ipo`, `grpo` (a string in quotes), found the whole number 3",
        ),
        (
            "models",
            "adapter = \"x\"",
            "models.adapter",
            "expected `none` or `lora`, found the string \"x\"",
        ),
        (
            "models",
            "device = 0",
            "models.device",
            "expected `cpu`, `cuda` or `cuda:N` (a string in quotes), found the whole number 0",
        ),
        (
            "plugins",
            "limits = 3",
            "plugins.limits",
            "expected a table ([section] or { key = value }), found the whole number 3",
        ),
    ];
    for (section, entry, field, message) in cases {
        let text = format!("[{section}]\n{entry}\n");
        let err = Config::parse(&text, "x.toml", &[]).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("x.toml:2:"), "the file and the line: {shown}");
        assert!(shown.ends_with(&format!(": field `{field}`: {message}")), "{shown}");
        assert!(
            matches!(err.kind, ConfigErrorKind::WrongType | ConfigErrorKind::InvalidValue),
            "{err:?}"
        );
        let item = format!("{section}.{}", entry.replace(" = ", "="));
        let err = Config::parse("", "x.toml", std::slice::from_ref(&item)).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("--set {item} (over x.toml): field `{field}`: {message}")),
            "{shown}"
        );
        assert_eq!(err.set.as_deref(), Some(item.as_str()), "{err:?}");
    }
    // `null` is not TOML: the file is told how to unset, `--set` refuses a field that is not
    // optional in the same words.
    let err = Config::parse("[algorithm]\nmax_steps = null\n", "x.toml", &[]).unwrap_err();
    let shown = "x.toml:2:13: field `algorithm.max_steps`: `null` is not a TOML value";
    assert!(err.to_string().starts_with(shown), "{err}");
    let err = Config::parse("", "x.toml", &["algorithm.max_steps=null".into()]).unwrap_err();
    assert!(err.to_string().ends_with("(it takes a whole number >= 0)"), "{err}");
    assert!(!err.to_string().contains("quote"), "no text hint for a number: {err}");
    // A whole number beyond TOML's: refused as such, not taken for text.
    let err = Config::parse("", "x.toml", &["game.attacks_per_seed=99999999999999999999".into()])
        .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    assert!(err.to_string().contains("beyond TOML's whole numbers"), "{err}");
    // So is a decimal number beyond f64.
    let err = Config::parse("", "x.toml", &["algorithm.rpo_alpha=1e400".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::BadOverride, "{err:?}");
    assert!(err.to_string().contains("beyond TOML's floating-point numbers"), "{err}");
    assert!(!err.to_string().contains("string"), "{err}");
    // No message of this kind keeps serde's type names.
    for serde_word in ["usize", "u64", "f64", "f32", "i64", "a sequence", "invalid type"] {
        for (section, entry, ..) in cases {
            let err = Config::parse(&format!("[{section}]\n{entry}\n"), "x.toml", &[]).unwrap_err();
            assert!(!err.to_string().contains(serde_word), "{err}");
        }
    }
}

/// `game.defender_sampling_categories` takes each category at most once, and at least one;
/// `game.defender_sampling_share` is a fraction.
#[test]
fn defender_sampling_categories_and_share_are_checked() {
    for (item, words) in [
        (r#"game.defender_sampling_categories=["harmful", "harmful"]"#, "at most once"),
        ("game.defender_sampling_categories=[]", "must name harmful and/or benign"),
        ("game.defender_sampling_share=1.5", "must be in [0, 1]"),
    ] {
        let err = Config::parse("", "x.toml", &[item.into()]).unwrap_err();
        assert_eq!(err.kind, ConfigErrorKind::OutOfRange, "{err:?}");
        assert!(err.to_string().contains(words), "{item}: {err}");
    }
    // A benign template that benign seeds would never be sampled under is refused.
    let items = [
        r#"game.defender_sampling_categories=["harmful"]"#.to_string(),
        "game.defender_sampling_prompt_template_benign='b.txt'".to_string(),
    ];
    let err = Config::parse("", "x.toml", &items).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::OutOfRange, "{err:?}");
    let words = "field `game.defender_sampling_prompt_template_benign`: is used only when";
    assert!(err.to_string().contains(words), "{err}");
    let ok = Config::parse(
        "",
        "x.toml",
        &[
            r#"game.defender_sampling_categories=["benign"]"#.into(),
            "game.defender_sampling_share=0.5".into(),
        ],
    )
    .unwrap();
    assert_eq!(ok.game.defender_sampling_categories, vec![crate::judging::Category::Benign]);
}

#[test]
fn prompt_files_without_their_slot_or_empty_paths_are_refused_before_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let put = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let any = put("any.txt", "x");
    let seed_ok = put("attack.txt", "Rewrite: {seed}");
    let no_prompt = put("tpl.txt", "Refuse if harmful: {request}");
    let blank = put("system.txt", " \n");
    let model = model_dir(dir.path(), "model").display().to_string();
    let base = format!(
        "[models]\nattacker = \"{model}\"\ndefender = \"{model}\"\n[data]\nharmful = \"{any}\"\n\
         benign = \"{any}\"\nharmful_val = \"{any}\"\nbenign_val = \"{any}\"\n\
         [game]\nattacker_prompt_harmful = \"{seed_ok}\"\n\
         attacker_prompt_benign = \"{seed_ok}\"\n"
    );
    let check = |extra: &str| {
        Config::parse(&format!("{base}{extra}"), "t.toml", &[]).unwrap().check_files()
    };
    check("").unwrap();
    let err = check(&format!("defender_sampling_prompt_template = \"{no_prompt}\"\n")).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::InvalidValue, "{err:?}");
    assert_eq!(err.field.as_deref(), Some("game.defender_sampling_prompt_template"));
    assert!(err.to_string().contains("tpl.txt has no {prompt} placeholder"), "{err}");
    let err =
        check(&format!("defender_sampling_prompt_template_benign = \"{any}\"\n")).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.defender_sampling_prompt_template_benign"));
    let err = check(&format!("defender_sampling_system_prompt = \"{blank}\"\n")).unwrap_err();
    assert!(err.to_string().contains("system.txt is empty"), "{err}");
    let err = check("defender_sampling_prompt_template = \"\"\n").unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::InvalidValue, "{err:?}");
    assert!(err.to_string().contains("is an empty path"), "{err}");
    let attack_without_slot = base.replace(&seed_ok, &any);
    let err =
        Config::parse(&attack_without_slot, "t.toml", &[]).unwrap().check_files().unwrap_err();
    assert_eq!(err.field.as_deref(), Some("game.attacker_prompt_harmful"));
    assert!(err.to_string().contains("has no {seed} placeholder"), "{err}");
}

/// An enum inside a list (`defender_sampling_categories = [1]`) gets the same words as an
/// enum field, not toml's "wanted string or table".
#[test]
fn a_wrong_value_in_a_list_of_enums_names_the_accepted_values() {
    let err =
        Config::parse("[game]\ndefender_sampling_categories = [\"harmful\", 2]\n", "x.toml", &[])
            .unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::WrongType, "{err:?}");
    assert_eq!(err.field.as_deref(), Some("game.defender_sampling_categories[1]"));
    assert_eq!(
        err.message,
        "expected `harmful` or `benign` (a string in quotes), found the whole number 2"
    );
    let set = ["game.defender_sampling_categories=[1]".to_string()];
    let err = Config::parse("", "x.toml", &set).unwrap_err();
    assert!(err.to_string().contains("expected `harmful` or `benign`"), "{err}");
}

#[test]
fn an_empty_plugin_name_is_refused_at_parse_time() {
    let err = Config::parse("", "x.toml", &["plugins.curriculum=\"\"".into()]).unwrap_err();
    assert_eq!(err.kind, ConfigErrorKind::OutOfRange, "{err:?}");
    assert_eq!(err.field.as_deref(), Some("plugins.curriculum"));
    assert!(err.to_string().contains("must name a plugin"), "{err}");
}

#[test]
fn a_retain_size_without_the_retain_weight_is_an_error_naming_both() {
    let text = "[algorithm]\nbenign_retain_size = 96\n";
    let err = Config::parse(text, "t.toml", &[]).unwrap_err();
    assert_eq!(err.field.as_deref(), Some("algorithm.benign_retain_size"), "{err:?}");
    assert!(err.to_string().contains("algorithm.benign_retain_alpha"), "{err}");
    let ok = Config::parse(
        "[algorithm]\nbenign_retain_alpha = 1.0\nbenign_retain_size = 96\n",
        "t.toml",
        &[],
    );
    assert_eq!(ok.unwrap().algorithm.benign_retain_size, 96);
}
