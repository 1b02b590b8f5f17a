//! The example judge written in Python (examples/python-judge, componentize-py) through the
//! same host and facade as the Rust plugins: the contract is language-neutral. Its WASI
//! imports are served by the deny-all context.

use crate::plugin_support::{Scripted, builtin, test_limits};
use advgame_host::judging::{Comparison, FailureKind, Judge};
use advgame_host::plugin::{
    EngineOptions, JudgeOptions, JudgePlugin, PluginEngine, default_cache_dir,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[test]
fn python_judge_runs_under_the_same_contract() {
    // Compiling the ~18 MB component takes seconds: use the shared compile cache.
    let limits = advgame_host::plugin::Limits {
        memory_bytes: 256 << 20,
        deadline: std::time::Duration::from_secs(20),
        ..test_limits()
    };
    let engine =
        PluginEngine::new(EngineOptions { limits, cache_dir: default_cache_dir() }).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    // Alternates two answers, so the three samples of an item average to a fraction.
    let model = Scripted::new(move |req| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        if req.user.contains("UNPARSABLE") {
            "whatever".into()
        } else if n.is_multiple_of(2) {
            "6</score_A> <score_B>3</score_B>".into()
        } else {
            "9</score_A> <score_B>0</score_B>".into()
        }
    });
    let batches = model.batches.clone();
    let registry = crate::plugin_builtin::registry(&engine);
    let path = builtin("example-python-judge");
    let mut judge =
        JudgePlugin::load(&engine, &path, registry, Some(Box::new(model)), JudgeOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    let id = judge.identity();
    assert_eq!(id.name, "python-self-consistency");
    assert!(id.imports.iter().any(|i| i.starts_with("wasi:")), "componentize-py imports WASI");

    let c = |rubric: &str, a: &str| Comparison {
        rubric: rubric.into(),
        context: "q".into(),
        a: a.into(),
        b: "b".into(),
    };
    let out =
        judge.compare(&[c("compliance", "a"), c("refusal", "UNPARSABLE"), c("nope", "a")]).unwrap();
    assert_eq!(*batches.lock().unwrap(), 1, "all samples in one generate batch");
    assert_eq!(calls.load(Ordering::SeqCst), 6, "3 samples x 2 renderable items");
    let p = out[0].as_ref().unwrap();
    assert_eq!((p.a, p.b), (7.0, 2.0), "mean of 6, 9, 6 and 3, 0, 3");
    assert_eq!(out[1].as_ref().unwrap_err().kind, FailureKind::Parse);
    assert_eq!(out[2].as_ref().unwrap_err().kind, FailureKind::Invalid);
}
