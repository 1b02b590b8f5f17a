//! The host-service budget (`advgame_host::plugin::HostBudget`): a judge that loops on
//! `host.generate` or on the rubric registry spends no guest time to speak of, so only the
//! budget stops it. Each test builds a hostile judge from WAT, checks the `budget` failure
//! and its bound, and that the next call, on a fresh instance, works.
//!
//! No timing assertions: bounds are checked by counting what the host served (a model that
//! sleeps at least 20 ms per batch can serve at most `budget / 20 ms + 1` batches before the
//! wall-clock budget refuses the next one, however slow the machine).

use crate::plugin_support::{ALLOCATOR_WAT, RubricWat, component, test_limits, write};
use advgame_host::judging::{Assessment, Comparison, FailureKind, Judge};
use advgame_host::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};
use advgame_host::plugin::{
    EngineOptions, HostBudget, JudgeOptions, JudgePlugin, Limits, PluginEngine, RubricPlugin,
    RubricRegistry,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A judge core module ([`ALLOCATOR_WAT`] at ALLOCATOR). `compare` runs COMPARE, `assess`
/// runs ASSESS; both leave a return area address. Memory: 1070 "x" (a chat's user text and a
/// judge-model output), 1072 "r" (a rubric name), 3000 a chat record (system none, user "x",
/// prefill none), 3200 one `ok(5.0)` of `result<f32, failure>`, 3300 the list (3200, 1), 2100
/// an empty list.
const JUDGE_WAT: &str = r#"
(module
  (import "advgame:plugin/host@0.1.0" "generate"
    (func $generate (param i32 i32 i32 f32 f32 i64 i32 i32 i32)))
  (import "advgame:plugin/rubric-registry@0.1.0" "parse-pointwise"
    (func $parse (param i32 i32 i32 i32 i32)))
  ALLOCATOR
  (data (i32.const 1024) "budget-judge")
  (data (i32.const 1040) "0.0.1")
  (data (i32.const 1056) "d")
  (data (i32.const 1070) "x")
  (data (i32.const 1072) "r")
  (data (i32.const 2048) "\00\04\00\00\0c\00\00\00\10\04\00\00\05\00\00\00\20\04\00\00\01\00\00\00")
  (data (i32.const 3000) "\00\00\00\00\00\00\00\00\00\00\00\00\2e\04\00\00\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00")
  (data (i32.const 3200) "\00\00\00\00\00\00\a0\40\00\00\00\00\00\00\00\00")
  (data (i32.const 3300) "\80\0c\00\00\01\00\00\00")
  (func $gen (call $generate (i32.const 3000) (i32.const 1) (i32.const 8) (f32.const 0)
    (f32.const 1) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 3100)))
  (func $registry (call $parse (i32.const 1072) (i32.const 1) (i32.const 1070) (i32.const 1)
    (i32.const 3400)))
  (func (export "advgame:plugin/judge@0.1.0#info") (result i32) (i32.const 2048))
  (func (export "advgame:plugin/judge@0.1.0#compare") (param i32 i32) (result i32) COMPARE)
  (func (export "advgame:plugin/judge@0.1.0#assess") (param i32 i32) (result i32) ASSESS)
)
"#;

/// `compare` loops on `generate` for ever; `assess` calls it once and answers 5.0.
const LOOP_ON_GENERATE: (&str, &str) =
    ("(loop $l (call $gen) (br $l)) (i32.const 2100)", "(call $gen) (i32.const 3300)");
/// `compare` loops on the rubric registry for ever; `assess` asks it once and answers 5.0.
const LOOP_ON_REGISTRY: (&str, &str) =
    ("(loop $l (call $registry) (br $l)) (i32.const 2100)", "(call $registry) (i32.const 3300)");

/// A judge model that takes at least `delay` per batch and counts the batches it served.
struct Slow {
    delay: Duration,
    batches: Arc<AtomicUsize>,
}

impl Generator for Slow {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        _: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        std::thread::sleep(self.delay);
        self.batches.fetch_add(1, Ordering::SeqCst);
        Ok(requests
            .iter()
            .map(|_| Generation {
                text: "<score>5</score>".into(),
                token_ids: vec![],
                finish: FinishReason::Stop,
                logprobs: vec![],
            })
            .collect())
    }
}

fn engine_with(budget: HostBudget) -> PluginEngine {
    let limits = Limits { host_budget: budget, ..test_limits() };
    PluginEngine::new(EngineOptions { limits, cache_dir: None }).expect("engine")
}

/// The hostile judge with a registry holding one well-behaved rubric named `r`, and a judge
/// model taking `delay` per batch (its batch counter is returned).
fn judge(
    engine: &PluginEngine,
    (compare, assess): (&str, &str),
    delay: Duration,
) -> (JudgePlugin, Arc<AtomicUsize>) {
    let dir = tempfile::tempdir().unwrap();
    let wat = JUDGE_WAT
        .replace("ALLOCATOR", ALLOCATOR_WAT)
        .replace("COMPARE", compare)
        .replace("ASSESS", assess);
    let path = write(dir.path(), "judge.wasm", &component(&wat, &[], None, "judge-plugin"));
    let rubric_path = write(dir.path(), "rubric.wasm", &RubricWat::default().build());
    let mut registry = RubricRegistry::new();
    registry.insert(Some("r"), RubricPlugin::load(engine, &rubric_path, vec![]).unwrap()).unwrap();
    let batches = Arc::new(AtomicUsize::new(0));
    let model = Slow { delay, batches: batches.clone() };
    let judge =
        JudgePlugin::load(engine, &path, registry, Some(Box::new(model)), JudgeOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
    (judge, batches)
}

fn one_comparison() -> Vec<Comparison> {
    vec![Comparison { rubric: "r".into(), context: "c".into(), a: "a".into(), b: "b".into() }]
}

fn one_assessment() -> Vec<Assessment> {
    vec![Assessment { rubric: "r".into(), context: "c".into(), response: "y".into() }]
}

/// Runs the looping `compare`, checks it failed with `budget` naming `message_has`, then
/// that `assess` works on the replacement instance. Returns the batches served by the loop.
fn loop_fails_then_recovers(
    judge: &mut JudgePlugin,
    batches: &AtomicUsize,
    message_has: &str,
) -> usize {
    let out = judge.compare(&one_comparison()).expect("a failed call is a per-item failure");
    let failure = out[0].as_ref().expect_err("the loop must be stopped");
    assert_eq!(failure.kind, FailureKind::Budget, "{failure}");
    assert!(failure.plugin.starts_with("budget-judge@0.0.1 ("), "{failure}");
    assert!(failure.message.contains(message_has), "`{message_has}` in: {failure}");
    assert_eq!(judge.failures().get(FailureKind::Budget), 1, "counted once");
    assert_eq!(judge.failures().get(FailureKind::Deadline), 0, "not a hung plugin");
    assert_eq!(judge.instances(), 2, "the instance was replaced");
    let served = batches.load(Ordering::SeqCst);

    let scores = judge.assess(&one_assessment()).expect("next call");
    assert_eq!(scores[0].as_ref().expect("the fresh instance works"), &5.0);
    assert_eq!(judge.failures().total(), 1);
    served
}

#[test]
fn a_generate_loop_against_a_slow_model_hits_the_wall_clock_budget() {
    // Deadline 300 ms of guest time; the total may be 2 deadlines = 600 ms. Calls and tokens
    // are unlimited in effect, so only the wall clock can stop the loop.
    let budget = HostBudget {
        calls_per_item: u32::MAX,
        tokens_per_item: u64::MAX / 4,
        wall_multiple: 2,
        wall_per_token: Duration::ZERO,
    };
    let engine = engine_with(budget);
    let delay = Duration::from_millis(20);
    let (mut judge, batches) = judge(&engine, LOOP_ON_GENERATE, delay);
    let served = loop_fails_then_recovers(&mut judge, &batches, "wall-clock budget");
    // Each batch took >= 20 ms and none starts after 600 ms: at most 600/20 + 1 batches.
    assert!((1..=31).contains(&served), "{served} batches");
}

#[test]
fn a_generate_loop_hits_the_call_budget() {
    let budget = HostBudget { calls_per_item: 5, ..HostBudget::default() };
    let engine = engine_with(budget);
    let (mut judge, batches) = judge(&engine, LOOP_ON_GENERATE, Duration::ZERO);
    let served = loop_fails_then_recovers(&mut judge, &batches, "call 6 of a call limited to 5");
    assert_eq!(served, 5, "exactly the budgeted calls were served");
    assert_eq!(batches.load(Ordering::SeqCst), 6, "plus the one of the recovering call");
}

#[test]
fn a_generate_loop_hits_the_token_budget() {
    // Each batch asks for 1 request x 8 tokens; 20 tokens per item allow two batches.
    let budget = HostBudget { tokens_per_item: 20, ..HostBudget::default() };
    let engine = engine_with(budget);
    let (mut judge, batches) = judge(&engine, LOOP_ON_GENERATE, Duration::ZERO);
    let served = loop_fails_then_recovers(&mut judge, &batches, "24 in this call");
    assert_eq!(served, 2);
}

#[test]
fn a_rubric_registry_loop_hits_the_call_budget() {
    // The default budget: 16 service calls for a one-item batch.
    let engine = engine_with(HostBudget::default());
    let (mut judge, batches) = judge(&engine, LOOP_ON_REGISTRY, Duration::ZERO);
    loop_fails_then_recovers(
        &mut judge,
        &batches,
        "rubric-registry.parse-pointwise would be host-service call 17 of a call limited to 16",
    );
    assert_eq!(batches.load(Ordering::SeqCst), 0, "the model was never asked");
}

#[test]
fn a_rubric_registry_loop_hits_the_wall_clock_budget() {
    let budget = HostBudget {
        calls_per_item: u32::MAX,
        tokens_per_item: 0,
        wall_multiple: 2,
        wall_per_token: Duration::ZERO,
    };
    let engine = engine_with(budget);
    let (mut judge, batches) = judge(&engine, LOOP_ON_REGISTRY, Duration::ZERO);
    loop_fails_then_recovers(&mut judge, &batches, "wall-clock budget");
}

#[test]
fn a_slow_generate_within_budget_is_not_a_hung_plugin() {
    // One batch slower than the whole 300 ms guest deadline: host time is not guest time.
    let engine = engine_with(HostBudget::default());
    let (mut judge, batches) = judge(&engine, LOOP_ON_GENERATE, Duration::from_millis(400));
    let scores = judge.assess(&one_assessment()).unwrap();
    assert_eq!(scores[0].as_ref().unwrap(), &5.0);
    assert_eq!(batches.load(Ordering::SeqCst), 1);
    assert_eq!(judge.failures().total(), 0);
}

#[test]
fn the_budget_scales_with_the_batch_and_the_failure_policy_stops_a_repeat_offender() {
    let budget = HostBudget { calls_per_item: 3, ..HostBudget::default() };
    let engine = engine_with(budget);
    let (mut judge, batches) = judge(&engine, LOOP_ON_GENERATE, Duration::ZERO);
    // Two items: 6 calls, one failure per item.
    let two = [one_comparison(), one_comparison()].concat();
    let out = judge.compare(&two).unwrap();
    assert!(out.iter().all(|r| r.as_ref().unwrap_err().kind == FailureKind::Budget));
    assert_eq!(batches.load(Ordering::SeqCst), 6);
    assert_eq!(judge.failures().get(FailureKind::Budget), 2);
    judge.compare(&one_comparison()).unwrap();
    // The third whole-call failure in a row trips the policy (3 in the test limits).
    let err = judge.compare(&one_comparison()).unwrap_err();
    assert!(format!("{err:#}").contains("failed 3 calls in a row"), "{err:#}");
}
