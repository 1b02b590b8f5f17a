//! Shared helpers for the plugin tests: an engine with a private cache, a scripted judge
//! model, the built-in plugin files, and hostile components built from WAT text.

use advgame_host::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};
use advgame_host::plugin::{EngineOptions, Limits, PluginEngine};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The repository's `wit/` directory.
pub fn wit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
}

/// Limits small enough to make hostile plugins fail fast.
pub fn test_limits() -> Limits {
    Limits {
        memory_bytes: 16 << 20,
        deadline: Duration::from_millis(300),
        max_string_bytes: 256 << 10,
        ..Limits::default()
    }
}

/// An engine with test limits and no compile cache (fixtures are rebuilt every run).
pub fn engine() -> PluginEngine {
    PluginEngine::new(EngineOptions { limits: test_limits(), cache_dir: None }).expect("engine")
}

/// Runs the `advgame-host` binary with `args` in the repository root (so the repo's relative
/// paths, `examples/...`, resolve), capturing its output.
pub fn host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_advgame-host"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Standard output then standard error of a finished command, for assertion messages.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The built-in heuristic judge (`judge-refusal-heuristic`), no rubrics, default options.
pub fn heuristic_judge() -> advgame_host::plugin::JudgePlugin {
    advgame_host::plugin::JudgePlugin::load(
        &engine(),
        &builtin("judge-refusal-heuristic"),
        advgame_host::plugin::RubricRegistry::new(),
        None,
        advgame_host::plugin::JudgeOptions::default(),
    )
    .unwrap()
}

/// `advgame-host judge` with the built-in heuristic judge over `input`, results to `output`.
pub fn judge_with_heuristic(input: &Path, output: &Path) -> Output {
    let judge = builtin("judge-refusal-heuristic");
    host(&[
        "judge",
        "--judge",
        judge.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
    ])
}

/// Where `scripts/build-plugins.sh` put the built-in components.
pub fn plugin_dir() -> PathBuf {
    advgame_host::plugin::default_plugin_dir().expect("HOME or ADVGAME_CACHE must be set")
}

/// A built-in plugin file; panics with the command to run when it is missing.
pub fn builtin(name: &str) -> PathBuf {
    let path = plugin_dir().join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "built-in plugin {} is missing: run scripts/build-plugins.sh first (or set \
         ADVGAME_PLUGIN_DIR to where it put the components)",
        path.display()
    );
    path
}

/// A judge model that answers from a function of the request, and records what it saw.
pub struct Scripted {
    pub answer: Box<dyn FnMut(&ChatRequest) -> String + Send>,
    pub seen: Arc<Mutex<Vec<ChatRequest>>>,
    pub batches: Arc<Mutex<usize>>,
}

impl Scripted {
    pub fn new(answer: impl FnMut(&ChatRequest) -> String + Send + 'static) -> Self {
        Self { answer: Box::new(answer), seen: Arc::default(), batches: Arc::default() }
    }
}

impl Generator for Scripted {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        _params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        *self.batches.lock().unwrap() += 1;
        self.seen.lock().unwrap().extend(requests.iter().cloned());
        Ok(requests
            .iter()
            .map(|r| {
                let body = (self.answer)(r);
                let text = format!("{}{body}", r.prefill.clone().unwrap_or_default());
                Generation { text, token_ids: vec![], finish: FinishReason::Stop, logprobs: vec![] }
            })
            .collect())
    }
}

/// Encodes a core module written in WAT into a component of `world`. `extra_wit` adds
/// packages (pushed before the world is selected); `world` may live in one of them.
pub fn component(wat: &str, extra_wit: &[&str], package: Option<&str>, world: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (ours, _) = resolve.push_dir(wit_dir()).expect("our wit parses");
    let mut main = ours;
    for (i, text) in extra_wit.iter().enumerate() {
        let id = resolve.push_str(format!("extra{i}.wit"), text).expect("extra wit parses");
        if package.is_some_and(|p| text.contains(&format!("package {p}"))) {
            main = id;
        }
    }
    let world = resolve.select_world(&[main], Some(world)).expect("world exists");
    let mut module = wat::parse_str(wat).expect("wat parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// Writes bytes to a fresh file in `dir`.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// The memory (one page) and the bump `cabi_realloc` (8-byte aligned, heap from 32 KiB,
/// growing 16 pages when full) of the hand-written judge core modules: spliced where their
/// WAT says `ALLOCATOR`.
pub const ALLOCATOR_WAT: &str = r#"(memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 32768))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $p) (local.get 3)) (i32.const 7)) (i32.const -8)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))))
    (local.get $p))"#;

/// A rubric core module (canonical ABI by hand). `parse-pointwise` runs `BODY` (which must
/// leave the return-area address 2176 on the stack after writing a `result<f32, failure>`
/// there), `pointwise-prompt` runs `PROMPT` (leaving a `chat` address), `IMPORTS` and
/// `EXTRA` add imports and functions. Everything else behaves: info = hostile@0.0.1,
/// range = [0, 10], pairwise-prompt = "x", parse-pairwise = ok((1, 2)).
pub const RUBRIC_WAT: &str = r#"
(module
  IMPORTS
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
        (i32.xor (i32.sub (local.get 2) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.add
                  (i32.shr_u
                    (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
                    (i32.const 16))
                  (i32.const 1)))
              (i32.const -1))
          (then unreachable))))
    (local.get $p))
  (data (i32.const 1024) "hostile")
  (data (i32.const 1040) "0.0.1")
  (data (i32.const 1056) "a hostile test rubric")
  (data (i32.const 1080) "x")
  ;; info: three (ptr, len) strings
  (data (i32.const 2048) "\00\04\00\00\07\00\00\00\10\04\00\00\05\00\00\00\20\04\00\00\15\00\00\00")
  ;; range: 0.0, 10.0
  (data (i32.const 2080) "\00\00\00\00\00\00\20\41")
  ;; chat: system none, user "x", prefill none
  (data (i32.const 2096) "\00\00\00\00\00\00\00\00\00\00\00\00\38\04\00\00\01\00\00\00")
  ;; ok((1.0, 2.0))
  (data (i32.const 2144) "\00\00\00\00\00\00\80\3f\00\00\00\40")
  (func (export "advgame:plugin/rubric@VERSION#info") (result i32) (i32.const 2048))
  (func (export "advgame:plugin/rubric@VERSION#range") (result i32) (i32.const 2080))
  (func (export "advgame:plugin/rubric@VERSION#pairwise-prompt")
    (param i32 i32 i32 i32 i32 i32) (result i32) (i32.const 2096))
  (func (export "advgame:plugin/rubric@VERSION#parse-pairwise")
    (param i32 i32) (result i32) (i32.const 2144))
  (func (export "advgame:plugin/rubric@VERSION#pointwise-prompt")
    (param i32 i32 i32 i32) (result i32) PROMPT)
  (func (export "advgame:plugin/rubric@VERSION#parse-pointwise")
    (param i32 i32) (result i32) BODY)
  EXTRA
)
"#;

/// `parse-pointwise` body returning `ok(x)`, `x` a WAT f32 literal (`5.0`, `nan`, `inf`).
pub fn ok_score(x: &str) -> String {
    format!(
        "(i32.store8 (i32.const 2176) (i32.const 0)) (f32.store (i32.const 2180) (f32.const {x})) (i32.const 2176)"
    )
}

/// A hostile rubric's WAT.
pub struct RubricWat<'a> {
    pub body: &'a str,
    pub prompt: &'a str,
    pub imports: &'a str,
    pub extra: &'a str,
    pub version: &'a str,
}

impl Default for RubricWat<'_> {
    fn default() -> Self {
        Self { body: "", prompt: "(i32.const 2096)", imports: "", extra: "", version: "0.1.0" }
    }
}

impl RubricWat<'_> {
    pub fn render(&self) -> String {
        let default_body = ok_score("5.0");
        let body = if self.body.is_empty() { default_body.as_str() } else { self.body };
        RUBRIC_WAT
            .replace("IMPORTS", self.imports)
            .replace("EXTRA", self.extra)
            .replace("BODY", body)
            .replace("PROMPT", self.prompt)
            .replace("VERSION", self.version)
    }

    /// The component for the standard `rubric-plugin` world.
    pub fn build(&self) -> Vec<u8> {
        component(&self.render(), &[], None, "rubric-plugin")
    }
}
