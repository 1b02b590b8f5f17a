//! Wiring the run config to the plugin host: resolve names to component files, load the
//! judge with its rubric registry and (optional) judge model, the curriculum, and record who
//! they are (`plugins.json` in the run directory).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::game::config::Config;
use crate::game::metrics::Metrics;
use crate::judging::{Assessment, Comparison, Failure, Judge, RunJudge, ScoredPair};
use crate::llm::{ChatRequest, Generation, Generator, SamplingParams};
use crate::plugin::{
    CurriculumPlugin, EngineOptions, HostBudget, Identity, JudgeOptions, JudgePlugin, Limits,
    LoadError, PluginEngine, RubricPlugin, RubricRegistry, WorldKind,
};

/// A generator that adds the time it spends to a shared counter (the judge model's share of
/// a step, told apart from the plugin's own time).
pub struct TimedGenerator {
    inner: Box<dyn Generator>,
    spent: Arc<Mutex<f64>>,
    /// The inner generator's own counters after its last call (e.g. a remote server's
    /// request and failure counts), for the run metrics.
    backend: Arc<Mutex<Vec<(String, f64)>>>,
}

impl std::fmt::Debug for TimedGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimedGenerator").field("spent", &self.spent).finish()
    }
}

impl TimedGenerator {
    /// Wraps `inner`; also returns the shared counter of seconds spent in its `generate`
    /// calls, which the judge reports as judge-model time.
    pub fn new(inner: Box<dyn Generator>) -> (Self, Arc<Mutex<f64>>) {
        let spent = Arc::new(Mutex::new(0.0));
        let backend = Arc::new(Mutex::new(Vec::new()));
        (Self { inner, spent: spent.clone(), backend }, spent)
    }

    /// The inner generator's counters, updated after every call.
    pub fn backend_metrics(&self) -> Arc<Mutex<Vec<(String, f64)>>> {
        self.backend.clone()
    }

    fn record(&self, started: Instant) {
        if let Ok(mut s) = self.spent.lock() {
            *s += started.elapsed().as_secs_f64();
        }
        if let Ok(mut b) = self.backend.lock() {
            *b = self.inner.metrics();
        }
    }
}

impl Generator for TimedGenerator {
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        let t = Instant::now();
        let out = self.inner.generate(requests, params);
        self.record(t);
        out
    }

    fn generate_each(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> Vec<Result<Generation, String>> {
        let t = Instant::now();
        let out = self.inner.generate_each(requests, params);
        self.record(t);
        out
    }

    fn metrics(&self) -> Vec<(String, f64)> {
        self.inner.metrics()
    }
}

/// The judge plugin as the training loop sees it.
pub struct PluginJudge {
    plugin: JudgePlugin,
    generation: Arc<Mutex<f64>>,
    /// The judge model backend's counters (`judge/remote/...` for a served judge).
    backend: Arc<Mutex<Vec<(String, f64)>>>,
}

impl std::fmt::Debug for PluginJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginJudge").field("plugin", &self.plugin).finish()
    }
}

impl Judge for PluginJudge {
    fn compare(
        &mut self,
        batch: &[Comparison],
    ) -> anyhow::Result<Vec<Result<ScoredPair, Failure>>> {
        self.plugin.compare(batch)
    }
    fn assess(&mut self, batch: &[Assessment]) -> anyhow::Result<Vec<Result<f32, Failure>>> {
        self.plugin.assess(batch)
    }
}

impl PluginJudge {
    /// `name@version (sha256 prefix)` of the judge component.
    pub fn label(&self) -> String {
        self.plugin.identity().label()
    }
}

impl RunJudge for PluginJudge {
    fn metrics(&self) -> Metrics {
        let mut m = Metrics::new();
        let a = self.plugin.agreement();
        if let Some(rate) = a.rate() {
            m.insert("judge/swap_agreement".into(), rate);
            m.insert("judge/swap_checked".into(), a.checked as f64);
        }
        m.insert("judge/plugin_instances".into(), self.plugin.instances() as f64);
        if let Ok(backend) = self.backend.lock() {
            for (name, value) in backend.iter() {
                m.insert(format!("judge/{name}"), *value);
            }
        }
        // Cumulative failures inside the sandboxes, by plugin: a rubric that traps under an
        // LLM judge reaches the game as the judge's `host` failure, but is counted here as
        // what it was.
        for (kind, n) in self.plugin.failures().nonzero() {
            m.insert(format!("plugin/judge/failures/{}", kind.as_str()), n as f64);
        }
        if let Some(registry) = self.plugin.registry() {
            for (name, rubric) in registry.iter() {
                for (kind, n) in rubric.failures().nonzero() {
                    m.insert(format!("plugin/rubric/{name}/failures/{}", kind.as_str()), n as f64);
                }
            }
        }
        m
    }

    fn generation_seconds(&self) -> f64 {
        self.generation.lock().map(|s| *s).unwrap_or(0.0)
    }
}

/// A plugin the run names that could not be loaded: its role, its name and why (the file is
/// named once, by [`LoadError::path`]). Its `Display` is one line,
/// `ROLE plugin `NAME` (PATH): PROBLEM`, or `ROLE plugin PATH: PROBLEM` when the name is the
/// role word itself (`--plugin judge=PATH`). Reached through `anyhow` with
/// `err.downcast_ref::<PluginLoadError>()`.
#[derive(Debug)]
pub struct PluginLoadError {
    /// The role the run gave the plugin.
    pub role: WorldKind,
    /// The plugin's name in the config (`plugins.judge`, a rubric name, `plugins.curriculum`).
    pub name: String,
    /// Why the file was refused.
    pub error: LoadError,
}

impl std::error::Error for PluginLoadError {}

impl std::fmt::Display for PluginLoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let label = crate::game::config::plugin_label(self.role.interface(), &self.name);
        let path = self.error.path().display();
        if self.name == self.role.interface() {
            write!(f, "{label} {path}: {}", self.error.problem())
        } else {
            write!(f, "{label} ({path}): {}", self.error.problem())
        }
    }
}

/// `error` as the load failure of the plugin `name` in `role`.
fn in_role(role: WorldKind, name: &str) -> impl FnOnce(LoadError) -> PluginLoadError {
    let name = name.to_string();
    move |error| PluginLoadError { role, name, error }
}

/// One plugin used by a run, as recorded in `plugins.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginRecord {
    /// `judge`, `curriculum` or `rubric`.
    pub role: String,
    /// The plugin's name from its `info()`.
    pub name: String,
    /// The plugin's version from its `info()`.
    pub version: String,
    /// sha256 of the component file, lowercase hex (what a lock file pins).
    pub sha256: String,
    /// The component file it was loaded from.
    pub path: String,
}

impl PluginRecord {
    fn of(role: &str, id: &Identity) -> Self {
        Self {
            role: role.into(),
            name: id.name.clone(),
            version: id.version.clone(),
            sha256: id.sha256.clone(),
            path: id.path.display().to_string(),
        }
    }
}

/// Everything the plugin side of a run needs.
#[derive(Debug)]
pub struct LoadedPlugins {
    /// The run's judge with its rubric registry and judge model.
    pub judge: PluginJudge,
    /// The run's curriculum.
    pub curriculum: CurriculumPlugin,
    /// Every plugin loaded (judge, rubrics, curriculum), for `plugins.json`.
    pub records: Vec<PluginRecord>,
}

/// The per-call limits from the config.
pub fn limits_of(config: &Config) -> Limits {
    let l = &config.plugins.limits;
    Limits {
        memory_bytes: l.memory_mb << 20,
        deadline: Duration::from_millis(l.deadline_ms),
        fuel: (l.fuel > 0).then_some(l.fuel),
        host_budget: HostBudget {
            calls_per_item: l.host_calls_per_item,
            tokens_per_item: l.generate_tokens_per_item,
            wall_multiple: l.call_wall_multiple,
            wall_per_token: Duration::from_millis(l.call_wall_ms_per_token),
        },
        max_consecutive_call_failures: config.plugins.failure_policy.max_consecutive_call_failures,
        ..Limits::default()
    }
}

/// Loads the judge (with every rubric the run names and the judge model, if any) and the
/// curriculum. Errors name the plugin and its file (wrong world, bad component...).
pub fn load(
    config: &Config,
    judge_model: Option<Box<dyn Generator>>,
) -> anyhow::Result<LoadedPlugins> {
    let mut rubric_names = config.plugins.rubric_names();
    rubric_names.extend(config.validation.harmful_rubrics.iter().cloned());
    rubric_names.extend(config.validation.benign_rubrics.iter().cloned());
    let engine = engine_of(config)?;
    let (judge, mut records) = load_judge_with(&engine, config, &rubric_names, judge_model)?;
    let p = &config.plugins;
    let curriculum_path = p.path_of("curriculum", &p.curriculum)?;
    let curriculum =
        CurriculumPlugin::load(&engine, &curriculum_path, p.settings_of(&p.curriculum))
            .map_err(in_role(WorldKind::Curriculum, &p.curriculum))?;
    records.push(PluginRecord::of("curriculum", curriculum.identity()));
    Ok(LoadedPlugins { judge, curriculum, records })
}

fn engine_of(config: &Config) -> anyhow::Result<PluginEngine> {
    let options =
        EngineOptions { limits: limits_of(config), ..EngineOptions::with_default_cache() };
    PluginEngine::new(options)
}

/// Loads only the judge `plugins.judge` with the rubrics `rubric_names` (resolved like a
/// run's: by name in the plugin folder or from `plugins.paths`) and the judge model, if any:
/// what `eval` and `redteam` need. Returns the judge and the records of every plugin loaded.
pub fn load_judge(
    config: &Config,
    rubric_names: &[String],
    judge_model: Option<Box<dyn Generator>>,
) -> anyhow::Result<(PluginJudge, Vec<PluginRecord>)> {
    load_judge_with(&engine_of(config)?, config, rubric_names, judge_model)
}

fn load_judge_with(
    engine: &PluginEngine,
    config: &Config,
    rubric_names: &[String],
    judge_model: Option<Box<dyn Generator>>,
) -> anyhow::Result<(PluginJudge, Vec<PluginRecord>)> {
    let p = &config.plugins;
    let mut records = Vec::new();
    let mut rubric_names = rubric_names.to_vec();
    rubric_names.sort();
    rubric_names.dedup();
    let mut registry = RubricRegistry::new();
    for name in &rubric_names {
        let path = p.path_of("rubric", name)?;
        let rubric = RubricPlugin::load(engine, &path, p.settings_of(name))
            .map_err(in_role(WorldKind::Rubric, name))?;
        records.push(PluginRecord::of("rubric", rubric.identity()));
        registry.insert(Some(name), rubric)?;
    }

    let judge_path = p.path_of("judge", &p.judge)?;
    let mut settings = p.settings_of(&p.judge);
    // The LLM judge reads its sampling from its settings; default them from [game].
    for (key, value) in [
        ("max-tokens", config.game.judge_max_tokens.to_string()),
        ("temperature", config.game.judge_temperature.to_string()),
    ] {
        if !settings.iter().any(|(k, _)| k == key) {
            settings.push((key.to_string(), value));
        }
    }
    let (generator, generation, backend) = match judge_model {
        Some(g) => {
            let (timed, spent) = TimedGenerator::new(g);
            let backend = timed.backend_metrics();
            (Some(Box::new(timed) as Box<dyn Generator>), spent, backend)
        }
        None => (None, Arc::new(Mutex::new(0.0)), Arc::new(Mutex::new(Vec::new()))),
    };
    let judge_options = JudgeOptions {
        config: settings,
        swap_share: config.game.swap_share,
        both_orders_share: config.game.both_orders_share,
        seed: config.algorithm.seed,
    };
    let plugin = JudgePlugin::load(engine, &judge_path, registry, generator, judge_options)
        .map_err(in_role(WorldKind::Judge, &p.judge))?;
    records.push(PluginRecord::of("judge", plugin.identity()));
    Ok((PluginJudge { plugin, generation, backend }, records))
}

/// Writes `plugins.json` (name, version, sha256, path of every plugin) into the run dir.
pub fn write_records(run_dir: &Path, records: &[PluginRecord]) -> anyhow::Result<()> {
    let path = run_dir.join("plugins.json");
    std::fs::write(&path, serde_json::to_string_pretty(records)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}
