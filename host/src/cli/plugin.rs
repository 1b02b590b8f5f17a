//! `advgame-host plugin inspect|check|bench|new`: look at, validate, time and scaffold
//! plugin components.

use crate::game::plugins::PluginLoadError;
use crate::judging::{Assessment, Category, Comparison, Curriculum, Judge, Seed};
use crate::plugin::conformance;
use crate::plugin::probe::FormatProbe;
use crate::plugin::{
    CurriculumPlugin, EngineOptions, HostBudget, JudgeOptions, JudgePlugin, Limits, PluginEngine,
    RubricPlugin, RubricRegistry, WorldKind, default_cache_dir, default_plugin_dir, inspect,
};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `advgame-host plugin ...` subcommands.
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Show a component's world, name, version, sha256, imports and exports.
    Inspect {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Conformance run: sample inputs, determinism, ranges, limits. Exits non-zero on failure.
    Check {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Sandbox limits, plugin config and rubrics.
        #[command(flatten)]
        setup: Setup,
    },
    /// Time the plugin's calls (and instantiation) on synthetic inputs.
    Bench {
        /// The component file (`.wasm`).
        file: PathBuf,
        /// Timed repetitions per measurement.
        #[arg(long, default_value_t = 200)]
        iters: u32,
        /// Sandbox limits, plugin config and rubrics.
        #[command(flatten)]
        setup: Setup,
    },
    /// Scaffold a new plugin that builds and passes `check`.
    New(super::plugin_new::NewArgs),
}

/// Sandbox limits, plugin config and rubrics shared by the plugin commands.
#[derive(Debug, Clone, Args)]
pub struct Setup {
    /// Rubric for judges, as NAME=FILE (repeatable). Default: the built-in rubrics in
    /// $ADVGAME_PLUGIN_DIR, when present.
    #[arg(long = "rubric", value_name = "NAME=FILE")]
    pub rubrics: Vec<String>,
    /// Setting passed to the plugin's host.config(), as KEY=VALUE (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub config: Vec<String>,
    /// Per-call deadline in milliseconds (guest time).
    #[arg(long, default_value_t = 10_000)]
    pub deadline_ms: u64,
    /// Per-instance memory cap in MiB.
    #[arg(long, default_value_t = 256)]
    pub memory_mib: usize,
    /// Fuel per call (deterministic instruction budget); off by default.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Host-service budget: `generate` and rubric-registry calls per item of a call's batch.
    #[arg(long, default_value_t = 16)]
    pub host_calls_per_item: u32,
    /// Host-service budget: tokens a call may request from `generate`, per item.
    #[arg(long, default_value_t = 32_768)]
    pub generate_tokens_per_item: u64,
    /// Total wall-clock time of one call, host time included, in multiples of --deadline-ms
    /// (plus --call-wall-ms-per-token per requested token).
    #[arg(long, default_value_t = 10)]
    pub call_wall_multiple: u32,
    /// Wall-clock allowance per token a call requests from `generate`, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub call_wall_ms_per_token: u64,
    /// Do not read or write the compiled-component cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl Setup {
    /// A plugin engine with these limits and the compile cache (unless `--no-cache`).
    pub fn engine(&self) -> anyhow::Result<PluginEngine> {
        let limits = Limits {
            deadline: Duration::from_millis(self.deadline_ms),
            memory_bytes: self.memory_mib << 20,
            fuel: self.fuel,
            host_budget: HostBudget {
                calls_per_item: self.host_calls_per_item,
                tokens_per_item: self.generate_tokens_per_item,
                wall_multiple: self.call_wall_multiple,
                wall_per_token: Duration::from_millis(self.call_wall_ms_per_token),
            },
            ..Limits::default()
        };
        let cache_dir = if self.no_cache { None } else { default_cache_dir() };
        PluginEngine::new(EngineOptions { limits, cache_dir })
    }

    /// The `--config` pairs, in order; an entry without `=` or with an empty key is an error
    /// naming it.
    pub fn config(&self) -> anyhow::Result<Vec<(String, String)>> {
        self.config.iter().map(|kv| split_pair(kv, "--config", "KEY=VALUE")).collect()
    }

    /// The rubrics named with `--rubric`, or the built-in ones when none are named.
    pub fn registry(&self, engine: &PluginEngine) -> anyhow::Result<RubricRegistry> {
        let mut registry = RubricRegistry::new();
        if self.rubrics.is_empty() {
            if let Some(dir) = default_plugin_dir() {
                for name in ["compliance", "deflection", "refusal", "faithfulness"] {
                    let path = dir.join(format!("rubric-{name}.wasm"));
                    if path.is_file() {
                        registry.insert(None, RubricPlugin::load(engine, &path, vec![])?)?;
                    }
                }
            }
            return Ok(registry);
        }
        for spec in &self.rubrics {
            let (name, file) = split_pair(spec, "--rubric", "NAME=FILE")?;
            let rubric = RubricPlugin::load(engine, Path::new(&file), vec![]).map_err(|error| {
                PluginLoadError { role: WorldKind::Rubric, name: name.clone(), error }
            })?;
            registry.insert(Some(&name), rubric)?;
        }
        Ok(registry)
    }
}

/// Splits `KEY=VALUE`, naming the option and the expected form on error.
pub fn split_pair(s: &str, option: &str, form: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => anyhow::bail!("{option} `{s}`: expected {form}"),
    }
}

/// Runs one `plugin` subcommand; prints for humans, errors when a check fails.
pub fn run(cmd: PluginCommand) -> anyhow::Result<()> {
    match cmd {
        PluginCommand::Inspect { file, json } => run_inspect(&file, json),
        PluginCommand::Check { file, setup } => run_check(&file, &setup),
        PluginCommand::Bench { file, iters, setup } => run_bench(&file, iters, &setup),
        PluginCommand::New(args) => super::plugin_new::run(args),
    }
}

fn run_inspect(file: &Path, json: bool) -> anyhow::Result<()> {
    let engine = PluginEngine::new(EngineOptions::with_default_cache())?;
    let mut id = inspect(&engine, file)?;
    let mut range = None;
    // Instantiate once to learn what the plugin says about itself.
    match id.world {
        WorldKind::Rubric => {
            let r = RubricPlugin::load(&engine, file, vec![])?;
            range = Some(r.range());
            id = r.identity().clone();
        }
        WorldKind::Judge => {
            id = JudgePlugin::load(
                &engine,
                file,
                RubricRegistry::new(),
                None,
                JudgeOptions::default(),
            )?
            .identity()
            .clone()
        }
        WorldKind::Curriculum => {
            id = CurriculumPlugin::load(&engine, file, vec![])?.identity().clone()
        }
    }
    if json {
        let mut v = serde_json::to_value(&id)?;
        if let Some((min, max)) = range {
            v["range"] = serde_json::json!([min, max]);
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("file:        {}", id.path.display());
    println!("world:       {} (advgame:plugin@{})", id.world, id.package_version);
    println!("name:        {}", id.name);
    println!("version:     {}", id.version);
    println!("description: {}", id.description);
    println!("sha256:      {}", id.sha256);
    if let Some((min, max)) = range {
        println!("range:       [{min}, {max}]");
    }
    println!(
        "imports:     {}",
        if id.imports.is_empty() { "(none)".into() } else { id.imports.join("\n             ") }
    );
    println!("exports:     {}", id.exports.join("\n             "));
    Ok(())
}

fn run_check(file: &Path, setup: &Setup) -> anyhow::Result<()> {
    let engine = setup.engine()?;
    let config = setup.config()?;
    let mut registry_error = None;
    let report = conformance::check(&engine, file, config, || {
        setup.registry(&engine).unwrap_or_else(|e| {
            registry_error = Some(e);
            RubricRegistry::new()
        })
    });
    if let Some(e) = registry_error {
        return Err(e.context("loading the rubrics for the judge"));
    }
    if let Some(id) = &report.identity {
        println!("{} {} ({}), sha256 {}", id.world, id.label(), id.path.display(), id.sha256);
    }
    for c in &report.checks {
        println!("{} {}: {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
    }
    let failed = report.checks.iter().filter(|c| !c.passed).count();
    if failed > 0 {
        anyhow::bail!("{}: {failed} of {} checks failed", file.display(), report.checks.len());
    }
    println!("OK: {} checks passed", report.checks.len());
    Ok(())
}

/// Mean time per iteration of `f`, after one warm-up call.
fn time(iters: u32, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed() / iters.max(1)
}

fn run_bench(file: &Path, iters: u32, setup: &Setup) -> anyhow::Result<()> {
    let engine = setup.engine()?;
    let config = setup.config()?;
    let id = inspect(&engine, file)?;
    println!("{} {} ({iters} iterations each)", id.world, file.display());
    let response = "word ".repeat(400); // ~2 KB
    match id.world {
        WorldKind::Rubric => {
            let load = Instant::now();
            let mut r = RubricPlugin::load(&engine, file, config.clone())?;
            println!("load+instantiate+info: {:?}", load.elapsed());
            let t = time(iters, || drop(RubricPlugin::load(&engine, file, config.clone())));
            println!("load (cached) + instantiate + info + range: {t:?}");
            let t = time(iters, || drop(r.pairwise_prompt("context", &response, &response)));
            println!("pairwise-prompt (2 KB responses): {t:?}");
            let t =
                time(iters, || drop(r.parse_pairwise("<score_A>7</score_A> <score_B>3</score_B>")));
            println!("parse-pairwise: {t:?}");
        }
        WorldKind::Judge => {
            let registry = setup.registry(&engine)?;
            let names = registry.names();
            let rubric = names.first().cloned().unwrap_or_else(|| "compliance".into());
            let mut j = JudgePlugin::load(
                &engine,
                file,
                registry,
                Some(Box::new(FormatProbe::default())),
                JudgeOptions { config, ..Default::default() },
            )?;
            let batch: Vec<Comparison> = (0..64)
                .map(|i| Comparison {
                    rubric: rubric.clone(),
                    context: format!("request {i}"),
                    a: response.clone(),
                    b: response.clone(),
                })
                .collect();
            let t = time(iters.div_ceil(8), || drop(j.compare(&batch)));
            println!(
                "compare 64 x 2 KB via rubric `{rubric}` (probe model): {t:?} per batch, {:?} per judgment",
                t / 64
            );
            let one: Vec<Assessment> =
                vec![Assessment { rubric, context: "c".into(), response: "r".into() }];
            let t = time(iters, || drop(j.assess(&one)));
            println!("assess 1 item: {t:?}");
        }
        WorldKind::Curriculum => {
            let mut c = CurriculumPlugin::load(&engine, file, config)?;
            let seeds: Vec<Seed> = (0..1000)
                .map(|i| Seed {
                    id: i.to_string(),
                    category: if i % 2 == 0 { Category::Harmful } else { Category::Benign },
                    text: "s".into(),
                })
                .collect();
            c.init(&seeds, 0)?;
            let t = time(iters, || drop(c.next_batch(Category::Harmful, 32)));
            println!("next-batch 32 (with state snapshot): {t:?}");
        }
    }
    Ok(())
}
