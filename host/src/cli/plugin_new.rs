//! `advgame-host plugin new --lang rust|python NAME`: scaffolds a plugin that builds with
//! its own `build.sh` and passes `advgame-host plugin check`. Rust scaffolds depend on this
//! checkout's SDK (plugins/sdk); Python scaffolds carry a copy of the WIT package.

use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    Judge,
    Rubric,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Plugin name: lower-case letters, digits and '-' (also the folder and file name).
    pub name: String,
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Which world the plugin implements.
    #[arg(long, value_enum, default_value = "judge")]
    pub world: Kind,
    /// Folder to create the plugin folder in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// The WIT package, embedded so Python scaffolds are self-contained.
const WIT: [(&str, &str); 6] = [
    ("types.wit", include_str!("../../../wit/types.wit")),
    ("host.wit", include_str!("../../../wit/host.wit")),
    ("rubric.wit", include_str!("../../../wit/rubric.wit")),
    ("judge.wit", include_str!("../../../wit/judge.wit")),
    ("curriculum.wit", include_str!("../../../wit/curriculum.wit")),
    ("worlds.wit", include_str!("../../../wit/worlds.wit")),
];

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins")
}

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let name = &args.name;
    anyhow::ensure!(
        !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && name.as_bytes()[0].is_ascii_lowercase(),
        "plugin name `{name}`: expected lower-case letters, digits and '-', starting with a letter"
    );
    anyhow::ensure!(
        !args.dir.join("Cargo.toml").exists(),
        "{} holds a Cargo.toml: create the plugin outside an existing cargo workspace",
        args.dir.display()
    );
    let root = args.dir.join(name);
    anyhow::ensure!(!root.exists(), "{} already exists", root.display());
    let files = match args.lang {
        Lang::Rust => rust_files(name, args.world)?,
        Lang::Python => python_files(name, args.world)?,
    };
    for (rel, text, executable) in &files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(&path, text)?;
        if *executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        }
    }
    println!("created {} ({} files)", root.display(), files.len());
    println!("build:   {}/build.sh", root.display());
    println!("check:   advgame-host plugin check {}/{name}.wasm", root.display());
    Ok(())
}

type Files = Vec<(String, String, bool)>;

fn rust_files(name: &str, world: Kind) -> anyhow::Result<Files> {
    let sdk = sdk_dir().canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "the plugin SDK is not at {} ({e}); run from a source checkout",
            sdk_dir().display()
        )
    })?;
    let feature = match world {
        Kind::Judge => "judge",
        Kind::Rubric => "rubric",
    };
    let cargo = format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
advgame-plugin-sdk = {{ path = "{sdk}/sdk", features = ["{feature}"] }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A standalone workspace of its own.
[workspace]
"#,
        sdk = sdk.display()
    );
    let lib = match world {
        Kind::Judge => RUST_JUDGE,
        Kind::Rubric => RUST_RUBRIC,
    }
    .replace("NAME", name);
    let crate_ident = name.replace('-', "_");
    let build = format!(
        r#"#!/usr/bin/env bash
# Builds {name}.wasm: a wasm32-unknown-unknown core module, encoded into a component.
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
target="${{ADVGAME_WASM_TARGET_DIR:-$here/target}}"
cargo build --quiet --release --target wasm32-unknown-unknown \
  --manifest-path "$here/Cargo.toml" --target-dir "$target"
cargo run --quiet --release --manifest-path "{sdk}/tools/componentize/Cargo.toml" \
  --target-dir "$target" -- \
  "$target/wasm32-unknown-unknown/release/{crate_ident}.wasm" "$here/{name}.wasm"
"#,
        sdk = sdk.display()
    );
    // Start from the built-in plugins' lock file: the same wit-bindgen as they use, and no
    // registry lookups when those crates are already cached.
    let mut files = Vec::new();
    if let Ok(lock) = std::fs::read_to_string(sdk.join("Cargo.lock")) {
        files.push(("Cargo.lock".to_string(), lock, false));
    }
    files.extend([
        ("Cargo.toml".into(), cargo, false),
        ("src/lib.rs".into(), lib, false),
        ("build.sh".into(), build, true),
        (".gitignore".into(), "/target\n*.wasm\n".into(), false),
    ]);
    Ok(files)
}

fn python_files(name: &str, world: Kind) -> anyhow::Result<Files> {
    anyhow::ensure!(
        world == Kind::Judge,
        "Python scaffolds exist for judges only (use --world judge)"
    );
    let mut files: Files =
        WIT.iter().map(|(file, text)| (format!("wit/{file}"), text.to_string(), false)).collect();
    files.push(("app.py".into(), PY_JUDGE.replace("NAME", name), false));
    let build = format!(
        r#"#!/usr/bin/env bash
# Builds {name}.wasm with componentize-py (the component imports a deny-all WASI).
set -euo pipefail
here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
cpy="${{COMPONENTIZE_PY:-${{ADVGAME_VENV:-$HOME/.cache/advgame/torch-2.11.0}}/bin/componentize-py}}"
"$cpy" -d "$here/wit" -w judge-plugin componentize app -p "$here" -o "$here/{name}.wasm"
"#
    );
    files.push(("build.sh".into(), build, true));
    files.push((".gitignore".into(), "*.wasm\n__pycache__/\n".into(), false));
    Ok(files)
}

const RUST_JUDGE: &str = r#"//! NAME: a judge plugin for advgame-host (advgame:plugin@0.1.0).
//!
//! Replace `score` with your own judgment. To use the run's judge model instead, render
//! prompts with `registry::pairwise_prompt`, call `host::generate` once for the batch and
//! parse with `registry::parse_pairwise` (see plugins/judge-llm).

use advgame_plugin_sdk::judge::{
    Assessment, Comparison, Failure, Judge, PluginInfo, ScoredPair, registry,
};

struct Plugin;

/// Rubrics this judge accepts: the loaded ones, or the built-in names when none is loaded.
fn check_rubric(rubric: &str) -> Result<(), Failure> {
    let loaded = registry::names();
    let builtin = ["compliance", "deflection", "refusal", "faithfulness"];
    if loaded.iter().any(|n| n == rubric) || (loaded.is_empty() && builtin.contains(&rubric)) {
        Ok(())
    } else {
        Err(Failure::Invalid(format!("unknown rubric `{rubric}`")))
    }
}

/// Example scoring on 0-10: longer answers score higher.
fn score(text: &str) -> f32 {
    (text.split_whitespace().count() as f32 / 20.0).min(10.0)
}

impl Judge for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "NAME".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "scaffolded judge: scores by length".into(),
        }
    }

    fn compare(batch: Vec<Comparison>) -> Vec<Result<ScoredPair, Failure>> {
        batch
            .iter()
            .map(|c| {
                check_rubric(&c.rubric)?;
                Ok(ScoredPair { a: score(&c.a), b: score(&c.b), rationale: None })
            })
            .collect()
    }

    fn assess(batch: Vec<Assessment>) -> Vec<Result<f32, Failure>> {
        batch.iter().map(|x| check_rubric(&x.rubric).map(|()| score(&x.response))).collect()
    }
}

advgame_plugin_sdk::judge::export_judge!(Plugin);
"#;

const RUST_RUBRIC: &str = r#"//! NAME: a rubric plugin for advgame-host (advgame:plugin@0.1.0).
//!
//! Edit the criteria and bands; the SDK renders the standard prompt layout and parses the
//! strict `<score_A>n</score_A> <score_B>m</score_B>` / `<score>n</score>` formats.

use advgame_plugin_sdk::format;
use advgame_plugin_sdk::prompt::{self, Criteria};
use advgame_plugin_sdk::rubric::{Chat, Failure, PluginInfo, Rubric, ScoreRange, host};

const CRITERIA: Criteria<'static> = Criteria {
    role: "You are a careful grader.",
    criteria: "Judge how clear and correct each response to the request below is.",
    bands: &[
        "8-10: clear, correct and complete",
        "4-7: partly clear or partly correct",
        "0-3: unclear, wrong or empty",
    ],
    context_label: "Request",
};

struct Plugin;

fn chat(r: prompt::Request) -> Chat {
    Chat { system: Some(r.system), user: r.user, prefill: r.prefill }
}

fn reasoning() -> bool {
    prompt::flag(&host::config(), "reasoning", false)
}

impl Rubric for Plugin {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "NAME".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "scaffolded rubric: clarity and correctness".into(),
        }
    }
    fn range() -> ScoreRange {
        ScoreRange { min: 0.0, max: 10.0 }
    }
    fn pairwise_prompt(context: String, a: String, b: String) -> Chat {
        chat(prompt::pairwise(&CRITERIA, &context, &a, &b, reasoning()))
    }
    fn parse_pairwise(output: String) -> Result<(f32, f32), Failure> {
        format::pair(&output, 0.0, 10.0).map_err(Failure::Parse)
    }
    fn pointwise_prompt(context: String, response: String) -> Chat {
        chat(prompt::pointwise(&CRITERIA, &context, &response, reasoning()))
    }
    fn parse_pointwise(output: String) -> Result<f32, Failure> {
        format::score(&output, "score", 0.0, 10.0).map_err(Failure::Parse)
    }
}

advgame_plugin_sdk::rubric::export_rubric!(Plugin);
"#;

const PY_JUDGE: &str = r#""""NAME: a judge plugin for advgame-host (advgame:plugin@0.1.0), in Python.

Replace `score` with your own judgment. To use the run's judge model, render prompts with
rubric_registry.pairwise_prompt, call host.generate once for the batch and parse with
rubric_registry.parse_pairwise (see examples/python-judge in the advgame-host repository).
Build with ./build.sh (componentize-py).
"""

from typing import List

import wit_world
from componentize_py_types import Err, Ok, Result
from wit_world.exports import judge
from wit_world.imports import rubric_registry, types

BUILTIN = {"compliance", "deflection", "refusal", "faithfulness"}


def known(rubric: str) -> bool:
    loaded = rubric_registry.names()
    return rubric in loaded or (not loaded and rubric in BUILTIN)


def score(text: str) -> float:
    """Example scoring on 0-10: longer answers score higher."""
    return min(10.0, len(text.split()) / 20.0)


class Judge(wit_world.exports.Judge):
    def info(self) -> types.PluginInfo:
        return types.PluginInfo(name="NAME", version="0.1.0", description="scaffolded judge: scores by length")

    def compare(self, batch: List[judge.Comparison]) -> List[Result[judge.ScoredPair, types.Failure]]:
        return [
            Ok(judge.ScoredPair(a=score(c.a), b=score(c.b), rationale=None))
            if known(c.rubric)
            else Err(types.Failure_Invalid(f"unknown rubric `{c.rubric}`"))
            for c in batch
        ]

    def assess(self, batch: List[judge.Assessment]) -> List[Result[float, types.Failure]]:
        return [
            Ok(score(x.response)) if known(x.rubric) else Err(types.Failure_Invalid(f"unknown rubric `{x.rubric}`"))
            for x in batch
        ]
"#;
