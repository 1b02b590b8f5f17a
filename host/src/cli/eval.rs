//! `advgame-host eval --target T [--target T2 ...] --data FILE [--data FILE ...] --judge J
//! --out DIR`: every target answers every prompt, the judge scores every answer (refusal and
//! compliance), and the report (`report.json`, `report.md`, PNG plots) compares the targets.
//! Rerunning the same command resumes from `OUT/responses.jsonl`.
//!
//! The shared pieces (`DataArgs`, `JudgeSetup`, target specs) are used by `redteam` too.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};

use super::plugin_arg::{PluginPath, UsedPlugins, check_used};
use crate::eval::dataset::{self, EvalItem, FieldMap};
use crate::eval::report::{self, ReportContext, ReportOptions};
use crate::eval::responses::{ResponseLog, ResponseRecord};
use crate::eval::run::{self, EvalRubrics, EvalSettings, Progress, Target};
use crate::eval::{plot, stats::Rate};
use crate::game::config::Config;
use crate::game::plugins::{self, PluginJudge, PluginRecord};
use crate::game::prompts;
use crate::judging::Category;
use crate::llm::{Generator, SamplingParams};
use crate::model::ChatModel;

/// How data files map onto prompts and harmful/benign labels.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Column/field holding the prompt (default: `text`, as in seed files).
    #[arg(long, default_value = "text")]
    pub prompt_field: String,
    /// Column/field holding the label (default: `category`, as in seed files).
    #[arg(long, default_value = "category")]
    pub label_field: String,
    /// Column/field holding a unique id (default `id`; rows without one get `<file>:<line>`).
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Column/field to break results down by (e.g. a harm sub-category).
    #[arg(long)]
    pub group_field: Option<String>,
    /// Label value meaning harmful, e.g. `unsafe` (repeatable; case-insensitive).
    #[arg(long = "harmful-label", value_name = "VALUE")]
    pub harmful_labels: Vec<String>,
    /// Label value meaning benign, e.g. `safe` (repeatable; case-insensitive).
    #[arg(long = "benign-label", value_name = "VALUE")]
    pub benign_labels: Vec<String>,
    /// Label mapping as VALUE=harmful|benign (repeatable), e.g. `--label-map 1=harmful`.
    #[arg(long = "label-map", value_name = "VALUE=CATEGORY")]
    pub label_map: Vec<String>,
    /// Skip CSV lines starting with this character (e.g. `#`).
    #[arg(long)]
    pub csv_comment: Option<char>,
    /// Use at most N prompts per category (the first ones, in file order; 0 = all).
    #[arg(long, default_value_t = 0)]
    pub max_per_category: usize,
}

impl DataArgs {
    /// The field mapping these flags describe; errors on a non-ASCII `--csv-comment`, an
    /// empty label value, a `--label-map` that is not `VALUE=harmful|benign`, or a label
    /// mapped to both categories.
    pub fn field_map(&self) -> anyhow::Result<FieldMap> {
        let csv_comment = match self.csv_comment {
            None => None,
            Some(c) if c.is_ascii() => Some(c as u8),
            Some(c) => bail!("--csv-comment `{c}`: expected one ASCII character"),
        };
        let mut map = FieldMap {
            prompt_field: self.prompt_field.clone(),
            label_field: self.label_field.clone(),
            id_field: Some(self.id_field.clone()),
            group_field: self.group_field.clone(),
            csv_comment,
            ..FieldMap::default()
        };
        map.set_labels(&self.harmful_labels, &self.benign_labels, &self.label_map)?;
        Ok(map)
    }

    /// Reads every file and keeps the first `max_per_category` items of each category.
    pub fn load(&self, files: &[PathBuf]) -> anyhow::Result<Vec<EvalItem>> {
        let items = dataset::load_all(files, &self.field_map()?)?;
        Ok(first_per_category(items, self.max_per_category))
    }
}

fn first_per_category(items: Vec<EvalItem>, max: usize) -> Vec<EvalItem> {
    if max == 0 {
        return items;
    }
    let (mut h, mut b) = (0, 0);
    items
        .into_iter()
        .filter(|it| {
            let n = match it.category {
                Category::Harmful => &mut h,
                Category::Benign => &mut b,
            };
            *n += 1;
            *n <= max
        })
        .collect()
}

/// The judge plugin, its rubrics and settings, and the judge model.
#[derive(Debug, Clone, Args)]
pub struct JudgeSetup {
    /// Judge plugin: a built-in name (`refusal-heuristic`, `llm`) or a component file.
    #[arg(long)]
    pub judge: String,
    /// Judge model folder serving the plugin's `host.generate` (for the `llm` judge).
    #[arg(long, value_name = "DIR")]
    pub judge_model: Option<PathBuf>,
    /// A run config (TOML) for plugin settings, limits, rubric names and, for `redteam`, the
    /// attacker's instruction and prefill. Default: the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one config value, e.g. `--set game.judge_max_tokens=64`. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Use this component file for the plugin NAME (e.g. a rubric). Repeatable.
    #[arg(long = "plugin", value_name = "NAME=PATH")]
    pub plugins: Vec<PluginPath>,
    /// Device for local models: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// The output folder and how the target answers in batches, shared by `eval` and `redteam`.
#[derive(Debug, Clone, Args)]
pub struct RunFlags {
    /// Output folder, created if missing (`eval` resumes the answers already in it).
    #[arg(long)]
    pub out: PathBuf,
    /// Prompts per generation call.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// New tokens per answer of the target at most.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
}

impl JudgeSetup {
    /// The run config with the judge, `--plugin` and `--set` applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut overrides = Vec::new();
        let quoted = |s: &str| toml::Value::String(s.to_string()).to_string();
        overrides.extend(self.plugins.iter().map(PluginPath::config_override));
        if Path::new(&self.judge).is_file() {
            overrides.push(format!("plugins.paths.judge={}", quoted(&self.judge)));
            overrides.push("plugins.judge=\"judge\"".into());
        } else {
            overrides.push(format!("plugins.judge={}", quoted(&self.judge)));
        }
        overrides.push(format!("models.device={}", quoted(&self.device)));
        overrides.extend(self.set.iter().cloned());
        Ok(match &self.config {
            Some(file) => Config::load(file, &overrides)?,
            None => Config::parse("", "defaults", &overrides)?,
        })
    }

    /// Loads the judge with `rubrics` (and the judge model, if any).
    pub fn load(
        &self,
        config: &Config,
        rubrics: &[String],
    ) -> anyhow::Result<(PluginJudge, Vec<PluginRecord>)> {
        let used = UsedPlugins {
            judge: config.plugins.judge.clone(),
            curriculum: None,
            rubrics: rubrics.to_vec(),
        };
        check_used(&self.plugins, &used, "--judge takes the judge")?;
        // `--judge-model DIR` wins over the config's `models.judge` (a folder or a server).
        let model = self
            .judge_model
            .clone()
            .map(crate::openai::ModelRef::Local)
            .or_else(|| config.models.judge.clone());
        let judge_model = match model {
            Some(model) => {
                let device = config.models.device;
                let kind = crate::model::default_kind(device);
                Some(model.open(device, kind).context("opening the judge model")?)
            }
            None => None,
        };
        plugins::load_judge(config, rubrics, judge_model)
    }
}

/// A parsed `--target [NAME=]SOURCE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetSpec {
    /// Short unique name used in files, tables and plots.
    pub name: String,
    /// The model folder or server URL as given.
    pub source: String,
}

/// Parses target specs and gives each a unique short name: `NAME=` when given, else the
/// folder name, widened with parent folders until the names differ.
pub fn target_specs(values: &[String]) -> anyhow::Result<Vec<TargetSpec>> {
    let mut named: Vec<(Option<String>, String)> = Vec::new();
    for v in values {
        let explicit = v.split_once('=').filter(|(n, _)| {
            !n.is_empty()
                && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !Path::new(v).exists()
        });
        match explicit {
            Some((n, s)) => named.push((Some(n.to_string()), s.to_string())),
            None => named.push((None, v.clone())),
        }
    }
    let auto = |source: &str, depth: usize| -> String {
        let parts: Vec<&str> =
            source.trim_end_matches('/').split('/').filter(|p| !p.is_empty()).collect();
        let start = parts.len().saturating_sub(depth);
        parts[start..].join("/")
    };
    let mut depth = 1;
    loop {
        let names: Vec<String> =
            named.iter().map(|(n, s)| n.clone().unwrap_or_else(|| auto(s, depth))).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        if sorted.len() == names.len() {
            return Ok(named
                .into_iter()
                .zip(names)
                .map(|((_, source), name)| TargetSpec { name, source })
                .collect());
        }
        if depth > 16 {
            bail!("two --target values have the same name: give them names as NAME=PATH");
        }
        depth += 1;
    }
}

/// A target's loader. Local model folders load on `device`; OpenAI-compatible URLs are where
/// a remote `Generator` plugs in.
pub fn target_of(spec: &TargetSpec, device: &str) -> anyhow::Result<Target> {
    let source = spec.source.clone();
    if source.starts_with("http://") || source.starts_with("https://") {
        // An OpenAI-compatible server: `URL` (the first model it lists) or `URL#MODEL-ID`;
        // the bearer token, if any, from the variable named by ADVGAME_TARGET_API_KEY_ENV.
        let (url, model) = match source.split_once('#') {
            Some((url, model)) => (url, Some(model.to_string())),
            None => (source.as_str(), None),
        };
        let mut remote = crate::openai::RemoteModel::at(url);
        remote.model = model;
        remote.api_key_env = std::env::var("ADVGAME_TARGET_API_KEY_ENV").ok();
        remote.validate("--target")?;
        return Ok(Target {
            name: spec.name.clone(),
            source: source.clone(),
            load: Box::new(move || {
                Ok(Box::new(crate::openai::RemoteGenerator::open(&remote)?) as Box<dyn Generator>)
            }),
        });
    }
    let dir = PathBuf::from(&source);
    // Every target is checked here, before any generates: a wrong folder costs no work.
    crate::model::chat::check_loadable(&dir).context("--target")?;
    let device = crate::model::parse_device(device)?;
    Ok(Target {
        name: spec.name.clone(),
        source: source.clone(),
        load: Box::new(move || {
            let kind = crate::model::default_kind(device);
            Ok(Box::new(ChatModel::load(&dir, device, kind)?) as Box<dyn Generator>)
        }),
    })
}

/// Arguments of `advgame-host eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// A model to evaluate: a Hugging Face folder, or an OpenAI-compatible server `URL` /
    /// `URL#MODEL-ID` (e.g. `http://127.0.0.1:8011/v1`; bearer token from the variable named
    /// by `ADVGAME_TARGET_API_KEY_ENV`), optionally named as NAME=PATH. Repeatable; the
    /// first is the baseline of the before/after comparison.
    #[arg(long = "target", required = true, value_name = "[NAME=]PATH")]
    pub targets: Vec<String>,
    /// A data file: seed JSONL, or JSONL/CSV/TSV mapped with the field flags. Repeatable.
    #[arg(long = "data", required = true, value_name = "FILE")]
    pub data: Vec<PathBuf>,
    /// How the columns of the data files map onto prompts and labels.
    #[command(flatten)]
    pub fields: DataArgs,
    /// The judge, its rubrics and the plugin limits.
    #[command(flatten)]
    pub judge: JudgeSetup,
    /// The output folder, batch size and answer length.
    #[command(flatten)]
    pub run: RunFlags,
    /// 0 = greedy (the default).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 (the default) disables it.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Seed of sampling (when temperature > 0) and of the bootstrap.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A rubric score at or above this counts as a hit (0-10 scale).
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f32,
    /// Bootstrap resamples per 95% interval.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Example answers per target and category in report.md.
    #[arg(long, default_value_t = 3)]
    pub examples: usize,
    /// A text file whose content is the system turn of every request (trailing white space
    /// trimmed), e.g. a safety prompt for context distillation
    /// (`game.defender_sampling_system_prompt`). Default: none, as the defender is asked in
    /// the game.
    #[arg(long, value_name = "FILE")]
    pub system_prompt: Option<PathBuf>,
    /// A text file with one `{prompt}` slot: every request's user turn is this text with the
    /// prompt in the slot (as `game.defender_sampling_prompt_template` samples the defender);
    /// the judge still reads the bare prompt. Default: the prompt as it is.
    #[arg(long, value_name = "FILE")]
    pub prompt_template: Option<PathBuf>,
    /// Name of the refusal rubric (high score = the answer refuses).
    #[arg(long, default_value = "refusal")]
    pub refusal_rubric: String,
    /// Name of the compliance rubric (high score = the answer does what was asked).
    #[arg(long, default_value = "compliance")]
    pub compliance_rubric: String,
}

/// What `eval.json` pins for a resumed eval: answers made under other settings would mix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pinned {
    sampling: SamplingParams,
    rubrics: EvalRubrics,
    judge: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_template: Option<String>,
}

fn check_pinned(out: &Path, now: &Pinned) -> anyhow::Result<()> {
    let path = out.join("eval.json");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let before: Pinned = serde_json::from_str(&text)
            .with_context(|| format!("{}: not an eval settings file", path.display()))?;
        if &before != now {
            bail!(
                "{} was written with other settings ({}), now ({}); answers would mix: use \
                 another --out, or the same settings to resume",
                out.display(),
                serde_json::to_string(&before)?,
                serde_json::to_string(now)?
            );
        }
    }
    std::fs::write(&path, serde_json::to_string_pretty(now)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Records of the current targets and prompts only.
fn relevant(
    records: &[ResponseRecord],
    targets: &[TargetSpec],
    items: &[EvalItem],
) -> Vec<ResponseRecord> {
    let ids: std::collections::HashSet<&str> = items.iter().map(|i| i.id.as_str()).collect();
    records
        .iter()
        .filter(|r| ids.contains(r.id.as_str()) && targets.iter().any(|t| t.name == r.target))
        .cloned()
        .collect()
}

fn pct(r: &Rate) -> String {
    match (r.rate, r.ci95) {
        (Some(x), Some([lo, hi])) => {
            format!("{:5.1}% [{:.1}, {:.1}]", 100.0 * x, 100.0 * lo, 100.0 * hi)
        }
        _ => "-".into(),
    }
}

/// Runs `eval`: answers, judges, writes `responses.jsonl`, `report.json`, `report.md` and
/// plots under `--out`, and prints the headline table. An existing `--out` is resumed.
pub fn run(args: EvalArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.run.batch_size > 0, "--batch-size must be at least 1");
    anyhow::ensure!(args.run.max_new_tokens > 0, "--max-new-tokens must be at least 1");
    let items = args.fields.load(&args.data)?;
    let specs = target_specs(&args.targets)?;
    let targets: Vec<Target> =
        specs.iter().map(|s| target_of(s, &args.judge.device)).collect::<anyhow::Result<_>>()?;
    let rubrics = EvalRubrics {
        refusal: args.refusal_rubric.clone(),
        compliance: args.compliance_rubric.clone(),
    };
    let system_prompt = (args.system_prompt.as_deref())
        .map(|p| prompts::read_system_prompt(p, "--system-prompt"))
        .transpose()?;
    let prompt_template = (args.prompt_template.as_deref())
        .map(|p| prompts::read_prompt_template(p, "--prompt-template"))
        .transpose()?;
    let config = args.judge.config()?;
    let (mut judge, records) = args.judge.load(&config, &rubrics.names())?;
    let sampling = SamplingParams {
        max_new_tokens: args.run.max_new_tokens,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        stop: Vec::new(),
    };
    std::fs::create_dir_all(&args.run.out)
        .with_context(|| format!("cannot create {}", args.run.out.display()))?;
    check_pinned(
        &args.run.out,
        &Pinned {
            sampling: sampling.clone(),
            rubrics: rubrics.clone(),
            judge: judge.label(),
            system_prompt: system_prompt.clone(),
            prompt_template: prompt_template.clone(),
        },
    )?;
    plugins::write_records(&args.run.out, &records)?;
    let (h, b) = items.iter().fold((0, 0), |(h, b), i| match i.category {
        Category::Harmful => (h + 1, b),
        Category::Benign => (h, b + 1),
    });
    eprintln!(
        "eval: {} target{} x {} prompts ({h} harmful, {b} benign); judge {}; out {}",
        specs.len(),
        if specs.len() == 1 { "" } else { "s" },
        items.len(),
        judge.label(),
        args.run.out.display()
    );
    let mut log = ResponseLog::open(&args.run.out.join("responses.jsonl"))?;
    let settings = EvalSettings {
        sampling: sampling.clone(),
        batch_size: args.run.batch_size,
        rubrics: rubrics.clone(),
        system_prompt,
        prompt_template,
    };
    let mut progress = super::PhaseProgress::new();
    let counts = run::run(targets, &items, &mut judge, &settings, &mut log, &mut |p| match p {
        Progress::Target { name, todo, total } => {
            progress.finish();
            if todo < total {
                eprintln!("target {name}: {} of {total} already answered (resuming)", total - todo);
            }
            if todo > 0 {
                let line = format!("target {name}: answering {todo} prompts");
                progress.start(&name, todo as u64, &line);
            }
        }
        Progress::Answered { n } => progress.inc(n as u64),
    })?;
    progress.finish();
    let records = relevant(log.records(), &specs, &items);
    let context = ReportContext {
        data: args.data.iter().map(|p| p.display().to_string()).collect(),
        judge: judge.label(),
        rubrics,
        sampling,
        targets: specs.iter().map(|s| (s.name.clone(), s.source.clone())).collect(),
    };
    let options = ReportOptions {
        threshold: args.threshold,
        resamples: args.bootstrap,
        seed: args.seed,
        examples: args.examples,
    };
    let report = report::build(context, &items, &records, options);
    let plots = match plot::write_plots(&args.run.out, &report) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("plots skipped: {e:#}");
            Vec::new()
        }
    };
    report::write(&args.run.out, &report, &records, &plots)?;

    let failures: usize = counts.judge_failures.values().sum();
    println!(
        "answered {} prompts this run ({} resumed); {failures} judge failures{}",
        counts.answered,
        counts.resumed,
        if failures > 0 { format!(" {:?}", counts.judge_failures) } else { String::new() }
    );
    println!("{:<24} {:>26} {:>26}", "target", "harmful ASR", "benign compliance");
    for t in &report.targets {
        println!("{:<24} {:>26} {:>26}", t.name, pct(&t.harmful_asr), pct(&t.benign_compliance));
    }
    for d in report.comparisons.iter().filter(|d| d.metric != "harmful_refusal_rate") {
        println!(
            "{} vs {}: {} {} (McNemar p = {:.4})",
            d.target,
            d.baseline,
            d.metric,
            d.delta.map_or("-".into(), |x| format!("{:+.1} pts", 100.0 * x)),
            d.mcnemar.p_value
        );
    }
    println!("report: {}", args.run.out.join("report.md").display());
    println!("report (JSON): {}", args.run.out.join("report.json").display());
    for p in &plots {
        println!("plot: {}", args.run.out.join(p).display());
    }
    println!("responses: {}", log.path().display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_short_and_unique() {
        let specs = target_specs(&[
            "data/models/SmolLM2-135M-Instruct".into(),
            "runs/q-001/checkpoints/step-000010/defender".into(),
        ])
        .unwrap();
        assert_eq!(specs[0].name, "SmolLM2-135M-Instruct");
        assert_eq!(specs[1].name, "defender");
        let specs = target_specs(&["a/x/defender".into(), "b/x/defender/".into()]).unwrap();
        assert_eq!(specs[0].name, "a/x/defender");
        assert_eq!(specs[1].name, "b/x/defender");
        let specs = target_specs(&["base=/m/one".into(), "trained=/m/two".into()]).unwrap();
        assert_eq!((specs[0].name.as_str(), specs[1].source.as_str()), ("base", "/m/two"));
        assert!(target_specs(&["/m/x".into(), "/m/x".into()]).is_err());
    }

    #[test]
    fn first_n_per_category() {
        let it =
            |id: &str, c| EvalItem { id: id.into(), category: c, group: None, prompt: "p".into() };
        let items = vec![
            it("h1", Category::Harmful),
            it("b1", Category::Benign),
            it("h2", Category::Harmful),
            it("b2", Category::Benign),
            it("h3", Category::Harmful),
        ];
        let kept: Vec<String> = first_per_category(items, 2).into_iter().map(|i| i.id).collect();
        assert_eq!(kept, vec!["h1", "b1", "h2", "b2"]);
    }

    #[test]
    fn remote_targets_open_lazily_and_missing_folders_are_precise_errors() {
        let spec = |s: &str| TargetSpec { name: "t".into(), source: s.into() };
        // A URL is accepted up front; connecting happens when the target is loaded.
        assert!(target_of(&spec("https://example.invalid/v1#m"), "cpu").is_ok());
        let err = format!("{:#}", target_of(&spec("/nonexistent/model"), "cpu").unwrap_err());
        assert!(err.starts_with("--target: /nonexistent/model: no such folder; expected"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            target_of(&spec(&empty.path().display().to_string()), "cpu").unwrap_err()
        );
        assert!(err.contains("has no config.json; expected a Hugging Face model folder"), "{err}");
    }
}
