//! Hostile plugins, each built here from WAT text: the host stays up, the error names the
//! plugin and the failure kind, the plugin's counter moves, and the next call (on a fresh
//! instance where the old one trapped) works.

use crate::plugin_support::{ALLOCATOR_WAT, RubricWat, component, engine, ok_score, write};
use advgame_host::judging::FailureKind;
use advgame_host::plugin::{LoadError, PluginEngine, RubricPlugin};

/// Loads a hostile rubric whose `parse-pointwise` misbehaves, checks the failure, then
/// checks that the plugin keeps working.
fn call_fails(body: &str, extra: &str, kind: FailureKind, message_has: &str) {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let wasm = RubricWat { body, extra, ..RubricWat::default() }.build();
    let path = write(dir.path(), "hostile.wasm", &wasm);
    let mut rubric = RubricPlugin::load(&engine, &path, vec![]).expect("hostile rubric loads");
    assert_eq!(rubric.name(), "hostile");
    assert_eq!(rubric.failures().get(kind), 0);

    let failure = rubric.parse_pointwise("anything").expect_err("the hostile call must fail");
    assert_eq!(failure.kind, kind, "{failure}");
    assert!(failure.plugin.starts_with("hostile@0.0.1 ("), "names the plugin: {failure}");
    assert!(failure.to_string().contains(kind.as_str()), "names the kind: {failure}");
    assert!(failure.message.contains(message_has), "`{message_has}` in: {failure}");
    assert_eq!(rubric.failures().get(kind), 1, "counter moved");

    // The host is fine and the plugin answers again (a trapped instance was replaced).
    let trapped = matches!(kind, FailureKind::Trap | FailureKind::Deadline | FailureKind::Memory);
    assert_eq!(rubric.instances(), if trapped { 2 } else { 1 });
    assert_eq!(rubric.parse_pairwise("whatever").expect("next call works"), (1.0, 2.0));
    assert!(rubric.pairwise_prompt("c", "a", "b").is_ok());
}

#[test]
fn infinite_loop_hits_the_deadline() {
    call_fails("(loop $l (br $l)) (i32.const 2176)", "", FailureKind::Deadline, "deadline");
}

#[test]
fn memory_bomb_hits_the_cap() {
    call_fails(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1)))) (i32.const 2176)",
        "",
        FailureKind::Memory,
        "memory cap",
    );
}

#[test]
fn deep_recursion_traps() {
    call_fails(
        "(drop (call $rec (i32.const 0))) (i32.const 2176)",
        "(func $rec (param i32) (result i32) \
           (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))",
        FailureKind::Trap,
        "stack",
    );
}

#[test]
fn unreachable_traps() {
    call_fails("unreachable", "", FailureKind::Trap, "unreachable");
}

#[test]
fn nan_score_is_invalid_output() {
    call_fails(&ok_score("nan"), "", FailureKind::InvalidOutput, "NaN");
}

#[test]
fn infinite_score_is_invalid_output() {
    call_fails(&ok_score("inf"), "", FailureKind::InvalidOutput, "inf");
}

#[test]
fn out_of_range_score_is_invalid_output() {
    call_fails(&ok_score("11.0"), "", FailureKind::InvalidOutput, "outside");
}

#[test]
fn oversized_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    // pointwise-prompt returns a chat whose user text is 1 MiB of NULs (valid UTF-8).
    let prompt = "(drop (memory.grow (i32.const 24))) \
                  (i32.store (i32.const 2220) (i32.const 131072)) \
                  (i32.store (i32.const 2224) (i32.const 1048576)) \
                  (i32.const 2208)";
    let wasm = RubricWat { prompt, ..RubricWat::default() }.build();
    let path = write(dir.path(), "big.wasm", &wasm);
    let mut rubric = RubricPlugin::load(&engine, &path, vec![]).unwrap();
    let failure = rubric.pointwise_prompt("c", "r").expect_err("oversized");
    assert_eq!(failure.kind, FailureKind::Oversize, "{failure}");
    assert!(failure.plugin.starts_with("hostile@"), "{failure}");
    assert_eq!(rubric.failures().get(FailureKind::Oversize), 1);
    assert_eq!(rubric.parse_pointwise("x").unwrap(), 5.0);
}

/// A refused file: the error names the file and the reason, the engine's counter moves,
/// and a good plugin still loads and works afterwards.
fn load_refused(engine: &PluginEngine, file: &str, bytes: &[u8], reason: &str, message_has: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), file, bytes);
    let before = engine.load_failures().get(reason).copied().unwrap_or(0);
    let err = RubricPlugin::load(engine, &path, vec![]).expect_err("must be refused");
    assert_eq!(err.reason(), reason, "{err}");
    let text = err.to_string();
    assert!(text.contains(file), "names the file: {text}");
    assert!(text.contains(message_has), "`{message_has}` in: {text}");
    assert_eq!(engine.load_failures().get(reason).copied().unwrap_or(0), before + 1);

    let good = write(dir.path(), "good.wasm", &RubricWat::default().build());
    let mut rubric = RubricPlugin::load(engine, &good, vec![]).expect("a good plugin loads after");
    assert_eq!(rubric.parse_pointwise("x").unwrap(), 5.0);
}

#[test]
fn wrong_package_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Our WIT, renumbered to 0.2.0, in a directory of its own.
    for entry in std::fs::read_dir(crate::plugin_support::wit_dir()).unwrap() {
        let entry = entry.unwrap();
        let text = std::fs::read_to_string(entry.path()).unwrap().replace("@0.1.0", "@0.2.0");
        std::fs::write(dir.path().join(entry.file_name()), text).unwrap();
    }
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(dir.path()).unwrap();
    let world = resolve.select_world(&[pkg], Some("rubric-plugin")).unwrap();
    let mut module =
        wat::parse_str(RubricWat { version: "0.2.0", ..Default::default() }.render()).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    let wasm =
        wit_component::ComponentEncoder::default().module(&module).unwrap().encode().unwrap();
    let err_text = "advgame:plugin/rubric@0.2.0";
    load_refused(&engine(), "v2.wasm", &wasm, "version", err_text);
}

/// The slice of `wasi:filesystem` the test imports (types match the real interface).
const WASI_FS: &str = r#"
package wasi:filesystem@0.2.0;
interface types { resource descriptor; }
interface preopens {
  use types.{descriptor};
  get-directories: func() -> list<tuple<descriptor, string>>;
}
"#;

#[test]
fn wasi_filesystem_import_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let world = r#"
package test:hostile;
world fs-rubric {
  import wasi:filesystem/preopens@0.2.0;
  include advgame:plugin/rubric-plugin@0.1.0;
}
"#;
    // parse-pointwise asks for the preopened directories and returns how many it got.
    let wat = RubricWat {
        imports: r#"(import "wasi:filesystem/preopens@0.2.0" "get-directories" (func $dirs (param i32)))"#,
        body: "(call $dirs (i32.const 3000)) \
               (i32.store8 (i32.const 2176) (i32.const 0)) \
               (f32.store (i32.const 2180) (f32.convert_i32_u (i32.load (i32.const 3004)))) \
               (i32.const 2176)",
        ..RubricWat::default()
    }
    .render();
    let wasm = component(&wat, &[WASI_FS, world], Some("test:hostile"), "fs-rubric");
    let path = write(dir.path(), "fs.wasm", &wasm);
    let mut rubric =
        RubricPlugin::load(&engine, &path, vec![]).expect("links against deny-all WASI");
    assert!(rubric.identity().imports.iter().any(|i| i.starts_with("wasi:filesystem/preopens")));
    assert_eq!(rubric.parse_pointwise("x").unwrap(), 0.0, "no directory is preopened");
    assert_eq!(rubric.failures().total(), 0);
}

#[test]
fn unknown_import_is_a_link_error_naming_it() {
    let evil = r#"
package evil:net;
interface socket { connect: func(host: string) -> u32; }
world evil-rubric {
  import socket;
  include advgame:plugin/rubric-plugin@0.1.0;
}
"#;
    let wat = RubricWat {
        imports: r#"(import "evil:net/socket" "connect" (func $connect (param i32 i32) (result i32)))"#,
        ..RubricWat::default()
    }
    .render();
    let wasm = component(&wat, &[evil], Some("evil:net"), "evil-rubric");
    load_refused(&engine(), "evil.wasm", &wasm, "imports", "evil:net/socket");
}

#[test]
fn core_module_is_refused() {
    let core = wat::parse_str(RubricWat::default().render()).unwrap();
    load_refused(&engine(), "core.wasm", &core, "core_module", "core WebAssembly module");
}

#[test]
fn random_bytes_are_refused() {
    let mut x: u32 = 0x1234_5678;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    load_refused(&engine(), "noise.wasm", &bytes, "not_wasm", "not a WebAssembly file");
    // A valid header with garbage after it is caught by the compiler, not by a crash.
    let mut fake = b"\0asm\x0d\0\x01\0".to_vec();
    fake.extend_from_slice(&bytes);
    load_refused(&engine(), "garbage.wasm", &fake, "compile", "invalid component");
}

#[test]
fn a_rubric_is_not_a_judge() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let path = write(dir.path(), "rubric.wasm", &RubricWat::default().build());
    let err = advgame_host::plugin::JudgePlugin::load(
        &engine,
        &path,
        Default::default(),
        None,
        Default::default(),
    )
    .expect_err("wrong world");
    assert!(matches!(err, LoadError::WrongWorld { .. }), "{err}");
}

#[test]
fn fuel_stops_a_loop_deterministically() {
    use advgame_host::plugin::{EngineOptions, Limits};
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits { fuel: Some(1_000_000), ..crate::plugin_support::test_limits() };
    let engine = PluginEngine::new(EngineOptions { limits, cache_dir: None }).unwrap();
    let wasm =
        RubricWat { body: "(loop $l (br $l)) (i32.const 2176)", ..RubricWat::default() }.build();
    let path = write(dir.path(), "spin.wasm", &wasm);
    let mut rubric = RubricPlugin::load(&engine, &path, vec![]).unwrap();
    let failure = rubric.parse_pointwise("x").unwrap_err();
    assert_eq!(failure.kind, FailureKind::Deadline, "{failure}");
    assert!(failure.message.contains("fuel"), "{failure}");
    assert_eq!(rubric.parse_pairwise("x").unwrap(), (1.0, 2.0));
}

#[test]
fn a_pinned_sha256_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let path = write(dir.path(), "pinned.wasm", &RubricWat::default().build());
    let sha = advgame_host::plugin::file_sha256(&path).unwrap();
    advgame_host::plugin::verify_pin(&engine, &path, &sha.to_uppercase()).expect("same hash");
    let err = advgame_host::plugin::verify_pin(&engine, &path, &"0".repeat(64)).unwrap_err();
    assert_eq!(err.reason(), "pin_mismatch");
    assert!(err.to_string().contains(&sha) && err.to_string().contains("pinned.wasm"), "{err}");
    assert_eq!(engine.load_failures().get("pin_mismatch"), Some(&1));
}

/// A judge core module ([`ALLOCATOR_WAT`] at ALLOCATOR): `info` = hostile-judge@0.0.1,
/// `compare` and `assess` run `BODY` (which leaves a return-area address; 2100 holds an empty
/// list).
const JUDGE_WAT: &str = r#"
(module
  ALLOCATOR
  (data (i32.const 1024) "hostile-judge")
  (data (i32.const 1040) "0.0.1")
  (data (i32.const 1056) "d")
  (data (i32.const 2048) "\00\04\00\00\0d\00\00\00\10\04\00\00\05\00\00\00\20\04\00\00\01\00\00\00")
  (func (export "advgame:plugin/judge@0.1.0#info") (result i32) (i32.const 2048))
  (func (export "advgame:plugin/judge@0.1.0#compare") (param i32 i32) (result i32) BODY)
  (func (export "advgame:plugin/judge@0.1.0#assess") (param i32 i32) (result i32) BODY)
)
"#;

fn hostile_judge(body: &str) -> advgame_host::plugin::JudgePlugin {
    let dir = tempfile::tempdir().unwrap();
    let wasm = component(
        &JUDGE_WAT.replace("ALLOCATOR", ALLOCATOR_WAT).replace("BODY", body),
        &[],
        None,
        "judge-plugin",
    );
    let path = write(dir.path(), "judge.wasm", &wasm);
    advgame_host::plugin::JudgePlugin::load(
        &engine(),
        &path,
        Default::default(),
        None,
        Default::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn items(n: usize) -> Vec<advgame_host::judging::Comparison> {
    (0..n)
        .map(|i| advgame_host::judging::Comparison {
            rubric: "refusal".into(),
            context: format!("c{i}"),
            a: "a".into(),
            b: "b".into(),
        })
        .collect()
}

#[test]
fn a_trapping_judge_fails_per_item_then_stops_the_run() {
    use advgame_host::judging::Judge;
    let mut judge = hostile_judge("unreachable");
    for call in 1..=2u64 {
        let out = judge.compare(&items(2)).expect("a failed call is per-item failures");
        for r in &out {
            let f = r.as_ref().unwrap_err();
            assert_eq!(f.kind, FailureKind::Trap);
            assert!(f.plugin.starts_with("hostile-judge@0.0.1"), "{f}");
        }
        assert_eq!(judge.failures().get(FailureKind::Trap), 2 * call);
        assert_eq!(judge.instances(), 1 + call, "a fresh instance after each trap");
    }
    // The third failed call in a row trips the failure policy: a run-stopping error.
    let err = judge.compare(&items(2)).unwrap_err();
    assert!(format!("{err:#}").contains("failed 3 calls in a row"), "{err:#}");
}

#[test]
fn a_judge_returning_the_wrong_count_is_invalid_output() {
    use advgame_host::judging::Judge;
    // compare/assess return an empty list whatever the batch.
    let mut judge = hostile_judge("(i32.const 2100)");
    let out = judge.compare(&items(3)).unwrap();
    assert_eq!(out.len(), 3);
    for r in out {
        let f = r.unwrap_err();
        assert_eq!(f.kind, FailureKind::InvalidOutput);
        assert!(f.message.contains("0 results for 3 items"), "{f}");
    }
    assert_eq!(judge.failures().get(FailureKind::InvalidOutput), 3);
    assert!(judge.compare(&[]).unwrap().is_empty());
}

/// Slices of `wasi:clocks` and `wasi:random` (types match the real interfaces).
const WASI_CLOCK: &str = r#"
package wasi:clocks@0.2.0;
interface wall-clock {
  record datetime { seconds: u64, nanoseconds: u32 }
  now: func() -> datetime;
}
"#;
const WASI_RANDOM: &str = r#"
package wasi:random@0.2.0;
interface random { get-random-u64: func() -> u64; }
"#;

#[test]
fn wasi_clock_is_frozen_and_random_is_seeded() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine();
    let world = r#"
package test:det;
world det-rubric {
  import wasi:clocks/wall-clock@0.2.0;
  import wasi:random/random@0.2.0;
  include advgame:plugin/rubric-plugin@0.1.0;
}
"#;
    // parse-pointwise returns seconds + nanoseconds of the wall clock + (random u64 mod 10):
    // in range only if the clock reads 0, and the same on every fresh instance only if the
    // random source is seeded.
    let wat = RubricWat {
        imports: r#"(import "wasi:clocks/wall-clock@0.2.0" "now" (func $now (param i32)))
                    (import "wasi:random/random@0.2.0" "get-random-u64" (func $rand (result i64)))"#,
        body: "(call $now (i32.const 3000)) \
               (i32.store8 (i32.const 2176) (i32.const 0)) \
               (f32.store (i32.const 2180) (f32.add (f32.add \
                 (f32.convert_i64_u (i64.load (i32.const 3000))) \
                 (f32.convert_i32_u (i32.load (i32.const 3008)))) \
                 (f32.convert_i64_u (i64.rem_u (call $rand) (i64.const 10))))) \
               (i32.const 2176)",
        ..RubricWat::default()
    }
    .render();
    let wasm = component(&wat, &[WASI_CLOCK, WASI_RANDOM, world], Some("test:det"), "det-rubric");
    let path = write(dir.path(), "det.wasm", &wasm);
    let mut rubric =
        RubricPlugin::load(&engine, &path, vec![]).expect("links against deny-all WASI");
    let first = rubric.parse_pointwise("x").expect("the clock reads 0: the score is in range");
    rubric.restart().unwrap();
    assert_eq!(rubric.parse_pointwise("x").unwrap(), first, "a fresh instance draws the same");
    let mut again = RubricPlugin::load(&crate::plugin_support::engine(), &path, vec![]).unwrap();
    assert_eq!(again.parse_pointwise("x").unwrap(), first, "so does another engine");
    assert_eq!(rubric.failures().total(), 0);
}
