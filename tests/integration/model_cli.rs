//! The `generate` subcommand end to end: real binary, real model folder.

use std::process::Command;

use crate::model_support::fixture;

fn advgame() -> Command {
    Command::new(env!("CARGO_BIN_EXE_advgame-host"))
}

#[test]
fn generate_prints_one_json_line_per_prompt() {
    let out = advgame()
        .args(["generate", "--model"])
        .arg(fixture("tiny-qwen2"))
        .args(["--chat", "--json", "--max-new-tokens", "5", "--prefill", "<p>", "first", "second"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    for line in lines {
        assert!(line["text"].as_str().unwrap().starts_with("<p>"));
        assert_eq!(
            line["token_ids"].as_array().unwrap().len(),
            line["logprobs"].as_array().unwrap().len()
        );
    }
}

#[test]
fn generate_reports_a_bad_model_folder_without_panicking() {
    let empty = tempfile::tempdir().unwrap();
    let out =
        advgame().args(["generate", "--model"]).arg(empty.path()).arg("hello").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read model config") && stderr.contains("config.json"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The operating system's reason is said once, not once per error in the chain.
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
}

#[test]
fn memory_plan_names_the_field_of_a_missing_model() {
    let out = advgame()
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .args(["train", "--config", "examples/quickstart.toml", "--memory-plan"])
        .args(["--set", "models.attacker=/no/such/model"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--set models.attacker=/no/such/model")
            && stderr.contains("field `models.attacker`")
            && stderr.contains("does not exist"),
        "{stderr}"
    );
}
