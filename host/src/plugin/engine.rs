//! The shared wasmtime engine: configuration (epoch interruption, optional fuel), the epoch
//! ticker that drives per-call deadlines, the sandbox limits, the compiled-component cache
//! and the load-failure counters.

use super::budget::HostBudget;
use super::cache::CompileCache;
use super::state::HostState;
use crate::judging::FailureKind;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::Linker;

/// How often the engine's epoch advances. A runaway guest is stopped at most one tick after
/// its deadline, and deadline bookkeeping runs once per tick of guest execution.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Resource limits applied to every plugin instance and call.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest linear memory an instance may grow to, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, guest time only: time spent in host services
    /// (`generate`, rubric calls through the registry) is not charged, so a slow judge model
    /// never makes a plugin look hung. Host-service use is bounded by `host_budget` instead.
    pub deadline: Duration,
    /// What one call may spend in host services, and its total wall-clock time with host
    /// time included.
    pub host_budget: HostBudget,
    /// Optional fuel (roughly, wasm instructions) per call, for deterministic limits.
    pub fuel: Option<u64>,
    /// Largest string a plugin may return (prompts, rationales, outputs), in bytes.
    pub max_string_bytes: usize,
    /// Longest list a plugin may return or pass to `generate`.
    pub max_list_len: usize,
    /// Largest curriculum state, in bytes.
    pub max_state_bytes: usize,
    /// Log lines a plugin may emit per call; the rest are dropped (and counted).
    pub max_logs_per_call: u32,
    /// Consecutive calls failing as a whole (trap, deadline, memory) before the facade
    /// returns a run-stopping error instead of per-item failures.
    pub max_consecutive_call_failures: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            // Python components (componentize-py) need tens of MiB; Rust ones a few.
            memory_bytes: 256 << 20,
            deadline: Duration::from_secs(10),
            host_budget: HostBudget::default(),
            fuel: None,
            max_string_bytes: 1 << 20,
            max_list_len: 1 << 16,
            max_state_bytes: 16 << 20,
            max_logs_per_call: 64,
            max_consecutive_call_failures: 3,
        }
    }
}

/// Where compiled components are cached: `$ADVGAME_CACHE/components` by default.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ADVGAME_CACHE") {
        return Some(PathBuf::from(dir).join("components"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/advgame/components"))
}

/// Where `scripts/build-plugins.sh` puts the built-in components: `$ADVGAME_PLUGIN_DIR`,
/// else `$ADVGAME_CACHE/plugins`, else `~/.cache/advgame/plugins`.
pub fn default_plugin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ADVGAME_PLUGIN_DIR") {
        return Some(dir.into());
    }
    if let Some(dir) = std::env::var_os("ADVGAME_CACHE") {
        return Some(PathBuf::from(dir).join("plugins"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/advgame/plugins"))
}

/// Engine options fixed when the engine is built (fuel metering changes compiled code).
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Per-call and per-instance sandbox limits (deadline, fuel, memory, output sizes).
    pub limits: Limits,
    /// Compiled-component cache directory; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl EngineOptions {
    /// Default limits, cache in [`default_cache_dir`].
    pub fn with_default_cache() -> Self {
        Self { limits: Limits::default(), cache_dir: default_cache_dir() }
    }
}

struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub(crate) struct Inner {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) limits: Limits,
    pub(crate) cache: Option<CompileCache>,
    pub(crate) load_failures: Mutex<BTreeMap<&'static str, u64>>,
    /// One linker per world (host functions + deny-all WASI), built on first use.
    pub(crate) linkers: [OnceLock<Linker<HostState>>; 3],
    _ticker: Ticker,
}

/// A configured wasmtime engine shared by every plugin of a run. Cheap to clone.
#[derive(Clone)]
pub struct PluginEngine {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEngine")
            .field("limits", &self.inner.limits)
            .field("cache", &self.inner.cache.as_ref().map(|c| c.dir()))
            .finish()
    }
}

impl PluginEngine {
    /// Builds the engine: component model, epoch interruption (a ticker thread bumps the epoch
    /// every `EPOCH_TICK`), fuel metering when `limits.fuel` is set, a 1 MiB wasm stack, and
    /// the compile cache when `cache_dir` is set. Errors when wasmtime refuses the
    /// configuration or the cache folder cannot be created.
    pub fn new(options: EngineOptions) -> anyhow::Result<Self> {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(options.limits.fuel.is_some());
        config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        config.parallel_compilation(true);
        // Deep recursion must trap cleanly, well before the host thread's own stack ends.
        config.max_wasm_stack(1 << 20);
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| anyhow::anyhow!("cannot configure the wasmtime engine: {e:#}"))?;
        let cache = match &options.cache_dir {
            Some(dir) => Some(CompileCache::open(dir.clone(), &engine)?),
            None => None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            let weak = engine.weak();
            std::thread::Builder::new()
                .name("advgame-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        match weak.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                })
                .map_err(|e| anyhow::anyhow!("cannot start the epoch ticker thread: {e}"))?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                limits: options.limits,
                cache,
                load_failures: Mutex::new(BTreeMap::new()),
                linkers: Default::default(),
                _ticker: Ticker { stop },
            }),
        })
    }

    /// The limits every plugin of this engine runs under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The underlying wasmtime engine, for compiling components and building linkers.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// How many plugin files were refused, by reason (`not_wasm`, `core_module`,
    /// `version`, `imports`, ...), since this engine was built.
    pub fn load_failures(&self) -> BTreeMap<&'static str, u64> {
        self.inner.load_failures.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(crate) fn count_load_failure(&self, reason: &'static str) {
        if let Ok(mut m) = self.inner.load_failures.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }
}

/// Per-kind failure counters of one plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureCounts {
    counts: [u64; FailureKind::ALL.len()],
}

impl FailureCounts {
    /// Adds `n` failures of `kind`.
    pub fn add(&mut self, kind: FailureKind, n: u64) {
        let i = FailureKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.counts[i] += n;
    }
    /// Failures of `kind` so far.
    pub fn get(&self, kind: FailureKind) -> u64 {
        FailureKind::ALL.iter().position(|k| *k == kind).map_or(0, |i| self.counts[i])
    }
    /// Failures of every kind together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
    /// `(kind, count)` for every kind with a non-zero count.
    pub fn nonzero(&self) -> Vec<(FailureKind, u64)> {
        FailureKind::ALL.iter().map(|k| (*k, self.get(*k))).filter(|(_, n)| *n > 0).collect()
    }
}
