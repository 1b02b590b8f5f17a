//! Data files and config overrides through the real binary, with the bug-report cases' own
//! inputs (`tests/fixtures/cases/`): a seed-id collision is refused before any model loads,
//! `judge --input` reads a file with a byte-order mark, and `--set KEY=null` unsets.

use std::path::{Path, PathBuf};

use crate::model_support::repo_root;
use crate::plugin_support::{builtin, host, text};

fn case(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures/cases").join(name)
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Case 09: the quickstart config with the case's seed files. The model folders are empty
/// directories, so the run could not get past loading a model: the refusal must come first.
#[test]
fn case_09_colliding_seed_ids_are_refused_before_any_model_loads() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("not-a-model");
    std::fs::create_dir(&empty).unwrap();
    let d = case("09-seeds-id-collision-across-files");
    let (h, b) = (arg(&d.join("harmful.jsonl")), arg(&d.join("benign.jsonl")));
    let e = arg(&empty);
    let sets = [
        format!("models.attacker={e}"),
        format!("models.defender={e}"),
        format!("models.judge={e}"),
        format!("data.harmful={h}"),
        format!("data.benign={b}"),
        format!("data.harmful_val={h}"),
        format!("data.benign_val={b}"),
        "plugins.curriculum=adaptive".into(),
        "algorithm.steps=2".into(),
        format!("output.dir={}", arg(dir.path())),
    ];
    let mut args = vec!["train", "--config", "examples/quickstart.toml"];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let o = host(&args);
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains(&format!(
            "duplicate seed id \"1\": it is in both data.harmful ({h}:1) and data.benign ({b}:1)"
        )),
        "{t}"
    );
    assert!(!t.contains("config.json"), "no model was opened: {t}");
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 1, "no run directory was made");
}

/// Case 08: `judge --input` with a byte-order mark judges its one comparison.
#[test]
fn case_08_judge_input_with_a_byte_order_mark() {
    let input = case("08-seeds-bom-and-numeric-id").join("judge_input_bom.jsonl");
    let judge = builtin("judge-refusal-heuristic");
    let o = host(&["judge", "--judge", &arg(&judge), "--input", &arg(&input)]);
    assert!(o.status.success(), "{}", text(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((out["line"].as_u64(), out["id"].as_str()), (Some(1), Some("r1")), "{out}");
    // The refusal is slot A: the refusal rubric prefers it.
    assert!(out["a"].as_f64().unwrap() > out["b"].as_f64().unwrap(), "{out}");
}

/// Case 14: the commands of the case's CASE.md.
#[test]
fn case_14_set_null_through_print_config() {
    let print = |set: &str| {
        host(&["train", "--config", "examples/quickstart.toml", "--set", set, "--print-config"])
    };
    let o = print("game.attacker_prefill=null");
    assert!(o.status.success(), "{}", text(&o));
    let t = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(t.contains("\nattacker_prefill = \"\"\n"), "{t}");
    assert!(t.contains("\"\" = none"), "the doc comment says how none is written: {t}");
    let o = print("data.harmful_val=none");
    assert!(String::from_utf8_lossy(&o.stdout).contains("\nharmful_val = \"\"\n"), "{}", text(&o));
    let o = print("output.name=2024");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("field `output.name`")
            && text(&o).contains("--set 'output.name=\"2024\"'"),
        "{}",
        text(&o)
    );
}
