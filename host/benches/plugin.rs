//! Plugin-host costs, side by side in one run:
//! - a raw no-op component call (a WAT rubric, through the full sandbox call discipline);
//! - the full per-judgment cost of a batch of 64 pairwise comparisons with 2 KB responses
//!   through judge -> registry -> rubric (generation excluded: a format probe answers);
//! - instantiation of Rust and Python plugins (fresh store + instance from `InstancePre`).
//!
//! Run: `scripts/build-plugins.sh && cargo bench --bench plugin` (release). Each line is
//! the best of 5 rounds (mean per operation within a round); `ADVGAME_BENCH_ITERS` sets the
//! operations per round.

#[expect(dead_code, reason = "the bench uses only some of the integration tests' plugin helpers")]
#[path = "../../tests/integration/plugin_support.rs"]
mod support;

use advgame_host::judging::{Comparison, Judge};
use advgame_host::plugin::probe::FormatProbe;
use advgame_host::plugin::{
    EngineOptions, JudgeOptions, JudgePlugin, Limits, PluginEngine, RubricPlugin, RubricRegistry,
    default_cache_dir,
};
use std::time::{Duration, Instant};

/// Best-of-5 mean time per operation; `f` performs `ops` operations per call.
fn measure(rounds_of: u32, ops: u32, mut f: impl FnMut()) -> Duration {
    f(); // warm-up
    (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds_of {
                f();
            }
            t.elapsed() / (rounds_of * ops)
        })
        .min()
        .unwrap_or_default()
}

fn row(name: &str, d: Duration, note: &str) {
    println!("{name:<58} {:>12.2} µs   {note}", d.as_secs_f64() * 1e6);
}

fn registry(engine: &PluginEngine) -> RubricRegistry {
    let mut r = RubricRegistry::new();
    for name in ["compliance", "deflection", "refusal", "faithfulness"] {
        let rubric =
            RubricPlugin::load(engine, &support::builtin(&format!("rubric-{name}")), vec![])
                .unwrap_or_else(|e| panic!("{e}"));
        r.insert(None, rubric).unwrap();
    }
    r
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let iters: u32 =
        std::env::var("ADVGAME_BENCH_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let engine = PluginEngine::new(EngineOptions {
        limits: Limits::default(),
        cache_dir: default_cache_dir(),
    })
    .expect("engine");
    let response = "The quick brown fox jumps over the lazy dog. ".repeat(46); // ~2 KB
    assert!((2000..2200).contains(&response.len()));
    let batch: Vec<Comparison> = (0..64)
        .map(|i| Comparison {
            rubric: ["compliance", "deflection", "refusal", "faithfulness"][i % 4].into(),
            context: format!("Request number {i}: explain something useful."),
            a: response.clone(),
            b: response.clone(),
        })
        .collect();
    println!(
        "advgame-host plugin bench ({} build, {iters} ops per round, best of 5)",
        if cfg!(debug_assertions) { "debug" } else { "release" }
    );
    println!("{:<58} {:>15}", "measurement", "per op");

    let dir = std::env::temp_dir().join(format!("advgame-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let noop = support::write(&dir, "noop.wasm", &support::RubricWat::default().build());
    let mut raw = RubricPlugin::load(&engine, &noop, vec![]).unwrap();
    row(
        "raw no-op call (WAT rubric parse-pointwise)",
        measure(iters, 1, || {
            raw.parse_pointwise("").unwrap();
        }),
        "sandboxed: deadline + checks",
    );

    let mut rubric =
        RubricPlugin::load(&engine, &support::builtin("rubric-refusal"), vec![]).unwrap();
    row(
        "Rust rubric parse-pairwise",
        measure(iters, 1, || {
            rubric.parse_pairwise("<score_A>7</score_A> <score_B>3</score_B>").unwrap();
        }),
        "",
    );
    row(
        "Rust rubric pairwise-prompt (2 KB + 2 KB)",
        measure(iters, 1, || {
            rubric.pairwise_prompt("context", &response, &response).unwrap();
        }),
        "",
    );

    let mut llm = JudgePlugin::load(
        &engine,
        &support::builtin("judge-llm"),
        registry(&engine),
        Some(Box::new(FormatProbe::default())),
        JudgeOptions::default(),
    )
    .unwrap();
    let per_batch = (iters / 64).max(5);
    row(
        "judge llm: 64 x 2 KB pairwise, per judgment",
        measure(per_batch, 64, || {
            for r in llm.compare(&batch).unwrap() {
                r.unwrap();
            }
        }),
        "judge -> registry -> rubric, probe model",
    );
    let mut heur = JudgePlugin::load(
        &engine,
        &support::builtin("judge-refusal-heuristic"),
        RubricRegistry::new(),
        None,
        JudgeOptions::default(),
    )
    .unwrap();
    row(
        "judge refusal-heuristic: 64 x 2 KB pairwise, per judgment",
        measure(per_batch, 64, || {
            for r in heur.compare(&batch).unwrap() {
                r.unwrap();
            }
        }),
        "no LLM",
    );

    row(
        "instantiate Rust rubric (store + instance)",
        measure(iters, 1, || rubric.restart().unwrap()),
        "from InstancePre",
    );
    row(
        "instantiate Rust judge (store + instance)",
        measure(iters, 1, || llm.restart().unwrap()),
        "from InstancePre",
    );
    row(
        "instantiate WAT no-op rubric",
        measure(iters, 1, || raw.restart().unwrap()),
        "from InstancePre",
    );

    let python = support::plugin_dir().join("example-python-judge.wasm");
    if python.is_file() {
        let t = Instant::now();
        let mut py = JudgePlugin::load(
            &engine,
            &python,
            registry(&engine),
            Some(Box::new(FormatProbe::default())),
            JudgeOptions::default(),
        )
        .unwrap();
        row(
            "load Python judge (cache, link, instantiate, info)",
            t.elapsed(),
            "first load in this process",
        );
        let small = (iters / 100).max(5);
        row(
            "Python judge: 64 x 2 KB pairwise, per judgment",
            measure(small / 5 + 1, 64, || {
                for r in py.compare(&batch).unwrap() {
                    r.unwrap();
                }
            }),
            "3 samples per item (self-consistency)",
        );
        row(
            "instantiate Python judge",
            measure(small, 1, || py.restart().unwrap()),
            "from InstancePre",
        );
    } else {
        println!("(no {} : run scripts/build-plugins.sh for the Python rows)", python.display());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
