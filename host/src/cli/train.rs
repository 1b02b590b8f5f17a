//! `advgame-host train`: play the AdvGame from a config file, with plugins replaceable from
//! the command line, a progress bar on a terminal (plain log lines otherwise), and a closing
//! summary that says where the trained defender is.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;

use super::plugin_arg::{PluginPath, UsedPlugins, check_used};
use crate::game::config::Config;
use crate::game::memory_plan::{AdapterPlan, MemoryPlan, PlanInputs, device_capacity, gib};
use crate::game::metrics::Metrics;
use crate::game::plugins;
use crate::game::run;
use crate::game::run_dir;
use crate::game::seeds::RunSeeds;
use crate::game::trainer::{StepReport, Summary, Trainer};
use crate::llm::Generator;
use crate::model::ChatModel;

/// Arguments of `advgame-host train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The run configuration (TOML). Not with --resume: a resumed run (and --print-config or
    /// --memory-plan with --resume) uses the run's own copy, RUN_DIR/config.toml, so that a
    /// file edited since cannot silently change it.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["resume", "print_config"],
        conflicts_with = "resume"
    )]
    pub config: Option<PathBuf>,
    /// Print the resolved configuration (every key, defaults filled in, each documented with
    /// its meaning, unit, default and range) and exit; without --config it prints the
    /// defaults, which are the paper's values.
    #[arg(long)]
    pub print_config: bool,
    /// Use this component file for the plugin NAME (a judge, rubric or curriculum name; the
    /// words `judge` and `curriculum` replace whichever plugin has that role; a NAME the run
    /// does not use is refused). Repeatable.
    #[arg(long = "plugin", value_name = "NAME=PATH")]
    pub plugins: Vec<PluginPath>,
    /// Override one config value, e.g. `--set algorithm.max_steps=3`; the value is TOML or a
    /// bare string; `KEY=null` unsets an optional field; quote text that looks like a number
    /// (`--set 'output.name="2024"'`). Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// cpu, cuda or cuda:N (shortcut for --set models.device=...).
    #[arg(long)]
    pub device: Option<String>,
    /// Continue the run in RUN_DIR from its newest complete checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Print the memory the run will take on its device (weights, EMA copies, optimiser
    /// state, activations, KV cache, per phase) and exit, loading no weights; warns when it
    /// will not fit. See `game::memory_plan`.
    #[arg(long)]
    pub memory_plan: bool,
    /// Device memory in GiB that the memory plan is checked against, by --memory-plan and by
    /// the warning `train` gives before loading when the run will not fit (default:
    /// MemAvailable on CPU, nvidia-smi's total on CUDA).
    #[arg(long, value_name = "GIB", value_parser = positive_gib)]
    pub device_memory: Option<f64>,
    /// Plan LoRA players of this rank (PEFT's `r`) with --memory-plan, as a what-if on top
    /// of the config.
    #[arg(long, value_name = "R", requires = "memory_plan")]
    pub plan_lora_r: Option<i64>,
    /// The adapted projections for --plan-lora-r (comma-separated leaf names, PEFT's
    /// `target_modules`); default: every attention and MLP projection.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', requires = "plan_lora_r")]
    pub plan_target_modules: Vec<String>,
    /// Plan with activation checkpointing per decoder layer (as
    /// `algorithm.gradient_checkpointing = true` would), as a what-if.
    #[arg(long, requires = "memory_plan")]
    pub plan_gradient_checkpointing: bool,
}

/// `--device-memory`: a finite number of GiB above 0.
fn positive_gib(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(g) if g.is_finite() && g > 0.0 => Ok(g),
        _ => Err(format!("expected a number of GiB above 0, found `{text}`")),
    }
}

/// `--plugin NAME=PATH` and `--device` as config overrides.
fn overrides(args: &TrainArgs) -> Vec<String> {
    let mut out = Vec::new();
    for plugin in &args.plugins {
        out.push(plugin.config_override());
        let name = &plugin.name;
        if name == "judge" || name == "curriculum" {
            out.push(format!("plugins.{name}=\"{name}\""));
        }
    }
    if let Some(device) = &args.device {
        out.push(format!("models.device=\"{device}\""));
    }
    out.extend(args.set.iter().cloned());
    out
}

fn fmt(m: &Metrics, key: &str) -> String {
    m.get(key).map_or("-".into(), |v| format!("{v:.2}"))
}

fn step_line(r: &StepReport<'_>) -> String {
    let m = r.metrics;
    if r.step == 0 {
        let mut parts: Vec<String> = m
            .iter()
            .filter(|(k, _)| k.starts_with("val/"))
            .map(|(k, v)| format!("{k}={v:.2}"))
            .collect();
        parts.sort();
        return format!("step 0/{} (before training) {}", r.total, parts.join(" "));
    }
    format!(
        "step {}/{} attacker/reward={} defender/reward={} faithful={} parse_fail={} \
         loss a={} d={} pairs a={} d={} step={}s",
        r.step,
        r.total,
        fmt(m, "attacker/reward/mean"),
        fmt(m, "defender/reward/mean"),
        fmt(m, "faithful_rate"),
        fmt(m, "attacker/parse_failure_rate"),
        fmt(m, "attacker/loss"),
        fmt(m, "defender/loss"),
        fmt(m, "attacker/pairs"),
        fmt(m, "defender/pairs"),
        fmt(m, "time/step"),
    )
}

fn print_summary(s: &Summary) {
    println!("\nrun finished: {} steps in {:.0}s", s.steps, s.seconds);
    println!("run directory: {}", s.run_dir.display());
    if let (Some(first), Some(last)) = (&s.first, &s.last) {
        let keys: Vec<&String> =
            last.keys().filter(|k| k.starts_with("val/") && k.ends_with("_rate")).collect();
        for k in keys {
            println!("  {k}: {} -> {}", fmt(first, k), fmt(last, k));
        }
        for k in ["attacker/reward/mean", "defender/reward/mean", "faithful_rate"] {
            println!("  {k} (last step): {}", fmt(last, k));
        }
    }
    if let Some(ckpt) = &s.last_checkpoint {
        println!(
            "trained defender ({}): {}",
            layout(&ckpt.join("defender")),
            ckpt.join("defender").display()
        );
        let attacker = ckpt.join("attacker");
        if s.attacker_updates == 0 {
            println!("attacker (never updated: it formed no pairs): {}", attacker.display());
        } else {
            println!("trained attacker: {}", attacker.display());
        }
    }
    println!("metrics: {}", s.run_dir.join("metrics.jsonl").display());
}

/// `--memory-plan`: reads only config.json, tokenizers and prompt files.
fn print_memory_plan(args: &TrainArgs, config: &Config) -> anyhow::Result<()> {
    let plan = memory_plan(args, config)?;
    let capacity =
        device_capacity(&crate::model::device_name(config.models.device), args.device_memory);
    print!("{}", plan.render(capacity.as_ref()));
    Ok(())
}

/// Before any weight loads: the run's memory plan against what its device offers now. When
/// the peak does not fit, a warning says so and how to see the terms; the run goes on (the
/// plan is an estimate, and memory may be freed meanwhile), but a user who sees the warning
/// and is then killed for memory knows why. A plan that cannot be made (an architecture it
/// does not know) is skipped with a debug line.
fn warn_if_memory_short(args: &TrainArgs, config: &Config) {
    let plan = match memory_plan(args, config) {
        Ok(plan) => plan,
        Err(e) => {
            tracing::debug!("no memory plan: {e:#}");
            return;
        }
    };
    let device = crate::model::device_name(config.models.device);
    if let Some(c) = device_capacity(&device, args.device_memory)
        && plan.peak() > c.bytes
    {
        tracing::warn!(
            "the memory plan needs {} on {device} but {} is available ({}): the \
             run may be killed for memory (the newest checkpoint is what survives; \
             checkpoint.save_steps sets how often one is written). `train --memory-plan` with \
             the same arguments lists the terms",
            gib(plan.peak()),
            gib(c.bytes),
            c.source
        );
    }
}

/// The memory plan of `config` with `--memory-plan`'s what-if flags applied.
fn memory_plan(args: &TrainArgs, config: &Config) -> anyhow::Result<MemoryPlan> {
    // The what-if flags win; else the config's own LoRA settings (`models.adapter = "lora"`).
    let lora = &config.models.lora;
    let adapter = match (args.plan_lora_r, config.models.adapter) {
        (Some(r), _) => Some(AdapterPlan {
            r,
            target_modules: if args.plan_target_modules.is_empty() {
                AdapterPlan::ALL_TARGETS.iter().map(|s| s.to_string()).collect()
            } else {
                args.plan_target_modules.clone()
            },
        }),
        (None, crate::game::config::Adapter::Lora) => {
            Some(AdapterPlan { r: lora.r, target_modules: lora.target_modules.clone() })
        }
        (None, crate::game::config::Adapter::None) => None,
    };
    let checkpointing = config.algorithm.gradient_checkpointing || args.plan_gradient_checkpointing;
    let inputs = PlanInputs::from_config(config, adapter, checkpointing)?;
    MemoryPlan::compute(&inputs)
}

/// Refuses a `--plugin NAME=PATH` whose NAME no plugin of the run has
/// ([`super::plugin_arg::check_used`]).
fn check_plugin_flags(flags: &[PluginPath], config: &Config) -> anyhow::Result<()> {
    let p = &config.plugins;
    let mut rubrics = p.rubric_names();
    rubrics.extend(config.validation.harmful_rubrics.iter().cloned());
    rubrics.extend(config.validation.benign_rubrics.iter().cloned());
    let used =
        UsedPlugins { judge: p.judge.clone(), curriculum: Some(p.curriculum.clone()), rubrics };
    let hint = "--plugin judge=PATH or --plugin curriculum=PATH replaces the judge or the \
                curriculum whatever its name";
    check_used(flags, &used, hint)
}

/// Whether the run in `dir` has already reached `algorithm.max_steps` (of `config`, the run's
/// own with any `--set`): then it says so, naming its last checkpoint, and nothing is loaded.
/// A run with no complete checkpoint cannot be resumed: that is an error, raised here before
/// any model loads.
fn already_complete(dir: &std::path::Path, config: &Config) -> anyhow::Result<bool> {
    let Some((step, last)) = crate::game::checkpoint::list(dir)?.pop() else {
        return Err(anyhow::anyhow!(
            "{}: no complete checkpoint to resume from (the run stopped before its first); \
             start it again with --config {}",
            dir.display(),
            dir.join("config.toml").display()
        ));
    };
    let max_steps = config.algorithm.steps as u64;
    if step < max_steps {
        return Ok(false);
    }
    println!(
        "run {} is already complete: step {step} of {max_steps} (algorithm.max_steps); nothing \
         to do",
        dir.display()
    );
    println!("last checkpoint: {}", last.display());
    println!(
        "trained defender ({}): {}",
        layout(&last.join("defender")),
        last.join("defender").display()
    );
    Ok(true)
}

/// Runs `train`: `--print-config` and `--memory-plan` print and exit; otherwise starts (or
/// resumes) the run, shows progress, and prints where the trained defender was saved.
pub fn run(args: TrainArgs) -> anyhow::Result<()> {
    let overrides = overrides(&args);
    if args.print_config {
        let file = match (&args.config, &args.resume) {
            (Some(file), _) => Some(file.clone()),
            (None, Some(dir)) => Some(run_dir::run_config(dir)?),
            (None, None) => None,
        };
        let config = match &file {
            Some(file) => Config::load(file, &overrides)?,
            None => Config::parse("", "defaults", &overrides)?,
        };
        check_plugin_flags(&args.plugins, &config)?;
        // What `train` would refuse is refused here, at the same place: a misspelt plugin
        // name or a wrong model folder is not printed as if it would run. (The defaults alone
        // name the repository's paths, which need not exist where they are printed.)
        if let Some(file) = &file {
            config.check_files().map_err(|e| e.placed_in(file, &overrides))?;
            config.check_model_folders().map_err(|e| e.placed_in(file, &overrides))?;
        }
        let origin = file.unwrap_or_else(|| "defaults".into());
        config.check_plugin_files().map_err(|e| e.placed_in(&origin, &overrides))?;
        print!("{}", config.to_documented_toml()?);
        return Ok(());
    }
    if args.memory_plan {
        let file = match (&args.config, &args.resume) {
            (Some(file), _) => file.clone(),
            (None, Some(dir)) => run_dir::run_config(dir)?,
            (None, None) => bail!("--memory-plan needs --config or --resume"),
        };
        let config = Config::load(&file, &overrides)?;
        check_plugin_flags(&args.plugins, &config)?;
        // The plan reads the models' config.json: a missing model folder is the config's
        // field, placed as `train` places it.
        config.check_files().map_err(|e| e.placed_in(&file, &overrides))?;
        config.check_model_folders().map_err(|e| e.placed_in(&file, &overrides))?;
        config.check_plugin_files().map_err(|e| e.placed_in(&file, &overrides))?;
        return print_memory_plan(&args, &config);
    }
    // Before anything loads: freed training tensors go back to the kernel (`heap`).
    crate::heap::configure();
    let (config_file, run_dir) = match &args.resume {
        Some(dir) => (run_dir::run_config(dir)?, Some(dir.clone())),
        None => (args.config.clone().expect("clap requires it"), None),
    };
    let config = Config::load(&config_file, &overrides)?;
    check_plugin_flags(&args.plugins, &config)?;
    if let Some(dir) = &run_dir
        && already_complete(dir, &config)?
    {
        return Ok(());
    }
    config.check_files().map_err(|e| e.placed_in(&config_file, &overrides))?;
    // Seed files are read (and read again by the trainer) before any model loads, so a bad
    // line or a colliding id costs no model load.
    RunSeeds::load(&config.data)?;
    config.check_model_folders().map_err(|e| e.placed_in(&config_file, &overrides))?;
    warn_if_memory_short(&args, &config);
    let device = config.models.device;
    let kind = config.models.dtype.kind();
    let judge_model: Option<Box<dyn Generator>> = match &config.models.judge {
        Some(judge) => Some(judge.open(device, kind).context("opening the judge model")?),
        None => None,
    };
    // A plugin file named in the config (or by a `--set`) is placed there.
    let loaded =
        plugins::load(&config, judge_model).map_err(|e| match e
            .downcast::<crate::game::config::ConfigError>()
        {
            Ok(e) => e.placed_in(&config_file, &overrides).into(),
            Err(e) => e,
        })?;
    for p in &loaded.records {
        eprintln!("plugin {} {}@{} sha256 {}", p.role, p.name, p.version, &p.sha256[..16]);
    }
    let mut trainer: Trainer<ChatModel> = match &run_dir {
        Some(dir) => run::resume(dir, config, loaded)?,
        None => run::start(config, loaded)?,
    };
    eprintln!("run directory: {}", trainer.run_dir.display());
    if run_dir.is_some() {
        eprintln!("resuming after step {}", trainer.step());
    }

    let total = trainer.config.algorithm.steps as u64;
    let summary = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::default_bar()
                .template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_position(trainer.step());
        let _shown = super::stderr::show(&bar);
        let result = trainer.run(&mut |r| {
            bar.set_position(r.step);
            bar.set_message(format!(
                "atk {} def {} faithful {} loss d {}",
                fmt(r.metrics, "attacker/reward/mean"),
                fmt(r.metrics, "defender/reward/mean"),
                fmt(r.metrics, "faithful_rate"),
                fmt(r.metrics, "defender/loss")
            ));
            bar.println(step_line(&r));
        });
        bar.finish();
        result?
    } else {
        trainer.run(&mut |r| eprintln!("{}", step_line(&r)))?
    };
    print_summary(&summary);
    Ok(())
}

/// How a checkpoint's player folder is laid out, for the closing lines: a LoRA player is a
/// PEFT adapter folder (`adapter_config.json`), a fully fine-tuned one a Hugging Face model.
fn layout(dir: &std::path::Path) -> &'static str {
    if crate::model::lora::is_adapter_dir(dir) {
        "PEFT adapter on its base; `export --adapter` merges it"
    } else {
        "Hugging Face layout"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(plugins: &[&str], set: &[&str]) -> TrainArgs {
        TrainArgs {
            config: Some("x.toml".into()),
            print_config: false,
            plugins: plugins.iter().map(|s| s.parse().unwrap()).collect(),
            set: set.iter().map(|s| s.to_string()).collect(),
            device: Some("cuda:1".into()),
            resume: None,
            memory_plan: false,
            device_memory: None,
            plan_lora_r: None,
            plan_target_modules: Vec::new(),
            plan_gradient_checkpointing: false,
        }
    }

    #[test]
    fn device_memory_is_a_positive_number_of_gib() {
        use clap::Parser;
        let parse = |gib: &str| {
            let flag = format!("--device-memory={gib}");
            let argv = ["advgame-host", "train", "--config", "x.toml", &flag];
            crate::cli::Cli::try_parse_from(argv).map_err(|e| e.to_string())
        };
        assert!(parse("0.5").is_ok());
        for bad in ["0", "-3", "nan", "inf", "lots"] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("--device-memory") && err.contains("above 0"), "{bad}: {err}");
        }
    }

    #[test]
    fn plugin_flags_become_config_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my judge.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        let o = overrides(&args(&[&format!("judge={}", file.display())], &["algorithm.steps=2"]));
        let config = Config::parse("", "t.toml", &o).unwrap();
        assert_eq!(config.plugins.judge, "judge");
        assert_eq!(config.plugins.path_of("judge", "judge").unwrap(), file);
        assert_eq!(config.models.device, tch::Device::Cuda(1));
        assert_eq!(config.algorithm.steps, 2);
        let o = overrides(&args(&[&format!("deflection={}", file.display())], &[]));
        let config = Config::parse("", "t.toml", &o).unwrap();
        assert_eq!(config.plugins.path_of("rubric", "deflection").unwrap(), file);
        assert_eq!(config.plugins.judge, "llm", "a rubric name does not change the judge");
    }

    #[test]
    fn a_plugin_flag_the_run_does_not_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("j.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        let flags = |items: &[&str]| -> Vec<PluginPath> {
            items.iter().map(|i| format!("{i}={}", file.display()).parse().unwrap()).collect()
        };
        let used = flags(&["judge", "curriculum", "refusal", "deflection"]);
        let config = Config::parse("", "t.toml", &overrides(&args_with(&used))).unwrap();
        check_plugin_flags(&used, &config).unwrap();
        // The default judge is `llm`: a flag for another judge's name would be ignored.
        let config = Config::parse("", "t.toml", &[]).unwrap();
        let err = check_plugin_flags(&flags(&["refusal-heuristic"]), &config).unwrap_err();
        let err = err.to_string();
        assert!(
            err.contains("no plugin here is named `refusal-heuristic` (judge `llm`, curriculum"),
            "{err}"
        );
        assert!(err.contains("--plugin judge=PATH"), "{err}");
        check_plugin_flags(&flags(&["llm", "uniform", "compliance"]), &config).unwrap();
    }

    fn args_with(plugins: &[PluginPath]) -> TrainArgs {
        TrainArgs { plugins: plugins.to_vec(), device: None, ..args(&[], &[]) }
    }

    #[test]
    fn bad_plugin_flags_are_precise_errors() {
        use clap::Parser;
        // Every command that takes `--plugin` refuses a bad item the same way, at parse time.
        let commands: [&[&str]; 3] = [
            &["train", "--config", "x.toml"],
            &["eval", "--target", "m", "--data", "d", "--judge", "j", "--out", "o"],
            &["redteam", "--attacker", "a", "--target", "m", "--seeds", "s", "--judge", "j"],
        ];
        for command in commands {
            for (item, expected) in [
                ("judge", &["NAME=PATH"][..]),
                ("judge=/nonexistent/j.wasm", &["/nonexistent/j.wasm", "not a file"]),
                ("a b=/tmp", &["NAME must be"]),
            ] {
                let flag = ["--plugin", item];
                let argv = ["advgame-host"].iter().chain(command).chain(&flag);
                let err = crate::cli::Cli::try_parse_from(argv).unwrap_err().to_string();
                for e in expected {
                    assert!(err.contains(e) && err.contains("--plugin"), "{command:?}: {err}");
                }
            }
        }
    }

    /// A resumed run keeps its own configuration: a `--config` beside `--resume` is refused
    /// at parse time instead of being silently ignored (or read only by --print-config).
    #[test]
    fn config_and_resume_conflict() {
        use clap::Parser;
        let argv = ["advgame-host", "train", "--config", "x.toml", "--resume", "runs/x-001"];
        let err = crate::cli::Cli::try_parse_from(argv).unwrap_err().to_string();
        assert!(err.contains("--config") && err.contains("--resume"), "{err}");
        let argv = ["advgame-host", "train", "--resume", "runs/x-001", "--set", "a.b=1"];
        assert!(crate::cli::Cli::try_parse_from(argv).is_ok());
    }
}
