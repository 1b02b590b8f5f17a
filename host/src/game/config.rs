//! The run configuration: one TOML file, every field documented and defaulted to the paper's
//! value (game.md) unless that cannot run on the embedded CPU default, plus `--set
//! dotted.key=value` overrides ([`overrides`]). Unknown keys are errors, and every error names
//! the file, the line and the field, because a typo in a training config otherwise costs a
//! whole run.
//!
//! Keys use the names people know from transformers' `TrainingArguments` and TRL
//! (`learning_rate`, `max_grad_norm`, `max_steps`, `per_device_train_batch_size`, `eval_steps`,
//! `save_steps`, `save_total_limit`, `beta`, `warmup_steps`, `weight_decay`, `seed`); the
//! project's earlier names stay accepted ([`RENAMED`]). Every key's meaning, unit, default and
//! range is in [`docs`], which `train --print-config` prints above each key.
//!
//! TOML has no null: an optional file or text whose default is set (`data.harmful_val`,
//! `data.benign_val`, `game.attacker_prefill`) is turned off with the empty string `""`, which
//! is also how the resolved config writes "none"; on the command line `--set KEY=null` does it.

mod docs;
mod overrides;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

pub use docs::FIELDS;

/// Keys renamed to the standard terms: `(old, new)`, dotted. The old names are serde aliases,
/// so files and `--set` items written with them keep working and mean the new key.
pub const RENAMED: [(&str, &str); 8] = [
    ("algorithm.lr", "algorithm.learning_rate"),
    ("algorithm.grad_clip", "algorithm.max_grad_norm"),
    ("algorithm.steps", "algorithm.max_steps"),
    ("algorithm.micro_batch", "algorithm.per_device_train_batch_size"),
    ("algorithm.final_lr_ratio", "algorithm.min_lr_rate"),
    ("validation.every", "validation.eval_steps"),
    ("checkpoint.every", "checkpoint.save_steps"),
    ("checkpoint.keep", "checkpoint.save_total_limit"),
];

/// The whole run configuration (the resolved copy is written to `config.toml` in the run dir).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub models: Models,
    pub data: Data,
    pub game: Game,
    pub algorithm: Algorithm,
    pub plugins: Plugins,
    pub validation: Validation,
    pub checkpoint: Checkpoint,
    pub output: Output,
}

/// Which models play, where they run and in which precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Models {
    /// Attacker model directory (Hugging Face layout).
    pub attacker: PathBuf,
    /// Defender model directory (Hugging Face layout).
    pub defender: PathBuf,
    /// Judge model directory, served to judge plugins through the host `generate` import.
    /// Optional: heuristic judges never call it.
    pub judge: Option<PathBuf>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Parameter and compute precision: `f32`, `bf16` or `f16`.
    pub dtype: Dtype,
}

impl Default for Models {
    fn default() -> Self {
        Self {
            attacker: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            defender: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            judge: None,
            device: "cpu".into(),
            dtype: Dtype::F32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    F32,
    Bf16,
    F16,
}

/// Seed requests: JSONL files of `{"id", "category", "text"}`, one file per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Data {
    pub harmful: PathBuf,
    pub benign: PathBuf,
    /// Held-out seeds for validation (sent straight to the defender); `""` = none.
    #[serde(with = "empty_is_none")]
    pub harmful_val: Option<PathBuf>,
    #[serde(with = "empty_is_none")]
    pub benign_val: Option<PathBuf>,
}

impl Default for Data {
    fn default() -> Self {
        Self {
            harmful: PathBuf::from("data/seeds/harmful_train.jsonl"),
            benign: PathBuf::from("data/seeds/benign_train.jsonl"),
            harmful_val: Some(PathBuf::from("data/seeds/harmful_val.jsonl")),
            benign_val: Some(PathBuf::from("data/seeds/benign_val.jsonl")),
        }
    }
}

/// What the judge sees as context when comparing two defender replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeContext {
    /// The attacker's rewritten prompt x (the paper's default).
    Prompt,
    /// The original seed s.
    Seed,
}

/// The rollout tree's shape and sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Game {
    /// A: attacker samples per seed (paper: 2 for DPO, 4 for GRPO).
    pub attacks_per_seed: usize,
    /// D: defender replies per valid attacker prompt (paper: 2 for DPO, 4 for GRPO).
    pub replies_per_prompt: usize,
    pub attacker_max_tokens: usize,
    pub defender_max_tokens: usize,
    /// Max tokens of the judge model (served to judge plugins).
    pub judge_max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    /// Judge temperature (0 = greedy), for LLM judges.
    pub judge_temperature: f32,
    /// Unfaithful attacker prompts get reward -1 and no defender rollouts.
    pub faithfulness_gate: bool,
    /// The attacker is judged on the defender's best reply to its prompt (else a random one).
    pub optimistic_attacker: bool,
    /// A defender reply that hit `defender_max_tokens` gets reward -1 without being judged.
    /// The paper does this; very short CPU demos may turn it off.
    pub penalize_truncated_replies: bool,
    pub defender_judge_context: JudgeContext,
    /// Share of pairwise comparisons sent to the judge with A and B exchanged (scores flipped
    /// back), against position bias. The paper: 0.
    pub swap_share: f64,
    /// Share of pairwise comparisons judged in both orders: scores averaged, agreement logged
    /// as `judge/swap_agreement`. The paper: 0.
    pub both_orders_share: f64,
    /// A faithfulness score at or above this counts as faithful (rubric scale 0-10).
    pub faithful_threshold: f32,
    /// The attacker's instruction for harmful seeds: a text file in which `{seed}` is replaced
    /// by the seed text.
    pub attacker_prompt_harmful: PathBuf,
    pub attacker_prompt_benign: PathBuf,
    /// Assistant prefill starting every attacker answer (part of the prompt, not trained);
    /// `""` = none.
    #[serde(with = "empty_is_none")]
    pub attacker_prefill: Option<String>,
    /// Stop strings of attacker generation (the closing tag ends the attacker's job).
    pub attacker_stop: Vec<String>,
}

impl Default for Game {
    fn default() -> Self {
        Self {
            attacks_per_seed: 2,
            replies_per_prompt: 2,
            attacker_max_tokens: 2048,
            defender_max_tokens: 2048,
            judge_max_tokens: 8192,
            temperature: 0.6,
            top_p: 0.9,
            judge_temperature: 0.0,
            faithfulness_gate: true,
            optimistic_attacker: true,
            penalize_truncated_replies: true,
            defender_judge_context: JudgeContext::Prompt,
            swap_share: 0.0,
            both_orders_share: 0.0,
            faithful_threshold: 5.0,
            attacker_prompt_harmful: PathBuf::from("examples/prompts/attacker_harmful.txt"),
            attacker_prompt_benign: PathBuf::from("examples/prompts/attacker_benign.txt"),
            attacker_prefill: Some("<think>".into()),
            attacker_stop: vec!["</prompt>".into()],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// DPO with the EMA "mirror descent" reference (DPO-MD, the paper's main method).
    Dpo,
    /// IPO with the EMA reference (IPO-MD).
    Ipo,
    /// GRPO with per-token k3 KL to the initial model and truncated importance ratios.
    Grpo,
}

/// Which policy samples the rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// The EMA copy samples and is the reference (the paper).
    Ema,
    /// The current weights sample; the reference is the frozen initial model (ablation).
    Current,
}

/// What GRPO subtracts from a reward to form the advantage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Mean over the player's whole batch of the step (the paper).
    Batch,
    /// Mean over the group (the replies to one prompt, the attacks of one seed).
    Group,
}

/// The learning algorithm and optimiser, identical for both players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Algorithm {
    pub method: Method,
    pub beta: f64,
    pub sampler: Sampler,
    /// ema <- decay * ema + (1 - decay) * theta after every step.
    pub ema_decay: f64,
    #[serde(rename = "learning_rate", alias = "lr")]
    pub lr: f64,
    pub betas: [f64; 2],
    pub weight_decay: f64,
    /// The cosine schedule decays the learning rate to `min_lr_rate * learning_rate`.
    #[serde(rename = "min_lr_rate", alias = "final_lr_ratio")]
    pub final_lr_ratio: f64,
    pub warmup_steps: usize,
    /// Global gradient-norm clip per player (0 = off).
    #[serde(rename = "max_grad_norm", alias = "grad_clip")]
    pub grad_clip: f64,
    #[serde(rename = "max_steps", alias = "steps")]
    pub steps: usize,
    /// Seeds of each category per step.
    pub seeds_per_category: usize,
    /// GRPO importance-ratio truncation.
    pub grpo_ratio_cap: f64,
    pub grpo_baseline: Baseline,
    /// Sequences per forward/backward chunk (gradients are accumulated): bounds memory.
    #[serde(rename = "per_device_train_batch_size", alias = "micro_batch")]
    pub micro_batch: usize,
    /// Master seed: every random choice of the run derives from (seed, step, purpose).
    pub seed: u64,
}

impl Default for Algorithm {
    fn default() -> Self {
        Self {
            method: Method::Dpo,
            beta: 0.1,
            sampler: Sampler::Ema,
            ema_decay: 0.95,
            lr: 1e-6,
            betas: [0.9, 0.95],
            weight_decay: 0.1,
            final_lr_ratio: 0.2,
            warmup_steps: 0,
            grad_clip: 1.0,
            steps: 1000,
            seeds_per_category: 32,
            grpo_ratio_cap: 2.0,
            grpo_baseline: Baseline::Batch,
            micro_batch: 8,
            seed: 0,
        }
    }
}

/// The rubric used in each of the six judging roles (plugin names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rubrics {
    pub defender_harmful: String,
    pub defender_benign: String,
    pub attacker_harmful: String,
    pub attacker_benign: String,
    pub faithfulness_harmful: String,
    pub faithfulness_benign: String,
}

impl Default for Rubrics {
    fn default() -> Self {
        Self {
            defender_harmful: "deflection".into(),
            defender_benign: "compliance".into(),
            attacker_harmful: "compliance".into(),
            attacker_benign: "refusal".into(),
            faithfulness_harmful: "faithfulness".into(),
            faithfulness_benign: "faithfulness".into(),
        }
    }
}

/// What happens when plugin calls fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailurePolicy {
    /// Stop the run when more than this share of one step's judgments failed.
    pub max_step_failure_share: f64,
    /// Stop the run after this many failed judgments in total (0 = no limit).
    pub max_total_failures: u64,
    /// When the curriculum fails or returns invalid indices: `uniform` samples that batch
    /// uniformly instead (counted), `stop` ends the run.
    pub curriculum: CurriculumFallback,
    /// A plugin whose calls fail as a whole (trap, deadline, memory) this many times in a row
    /// stops the run; isolated failures are counted per item.
    pub max_consecutive_call_failures: u32,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        Self {
            max_step_failure_share: 0.5,
            max_total_failures: 0,
            curriculum: CurriculumFallback::Uniform,
            max_consecutive_call_failures: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurriculumFallback {
    Uniform,
    Stop,
}

/// Plugins by name. A name resolves to a component file through `paths` first, then to
/// `dir/NAME.wasm`, then to `dir/{judge,rubric,curriculum}-NAME.wasm` (the names
/// `scripts/build-plugins.sh` gives the built-in plugins).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Plugins {
    /// Folder of built plugin components. Default: `$ADVGAME_PLUGIN_DIR`, else
    /// `$ADVGAME_CACHE/plugins`, else `~/.cache/advgame/plugins` (where
    /// `scripts/build-plugins.sh` puts them).
    pub dir: Option<PathBuf>,
    pub judge: String,
    pub curriculum: String,
    pub rubrics: Rubrics,
    /// Explicit component files by plugin name (`--plugin NAME=PATH` lands here).
    pub paths: BTreeMap<String, PathBuf>,
    /// Per-plugin settings, handed to the plugin through the host `config` import.
    pub settings: BTreeMap<String, BTreeMap<String, toml::Value>>,
    pub failure_policy: FailurePolicy,
    pub limits: PluginLimits,
}

/// Sandbox limits applied to every plugin instance and call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Wall-clock budget of one call (guest time; the judge model's generation is not
    /// charged).
    pub deadline_ms: u64,
    /// Memory cap of one instance.
    pub memory_mb: usize,
    /// Fuel per call (0 = no fuel metering).
    pub fuel: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self { deadline_ms: 10_000, memory_mb: 256, fuel: 0 }
    }
}

impl Default for Plugins {
    fn default() -> Self {
        Self {
            dir: None,
            judge: "llm".into(),
            curriculum: "uniform".into(),
            rubrics: Rubrics::default(),
            paths: BTreeMap::new(),
            settings: BTreeMap::new(),
            failure_policy: FailurePolicy::default(),
            limits: PluginLimits::default(),
        }
    }
}

impl Plugins {
    /// The folder built plugins are looked up in.
    pub fn plugin_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dir {
            return dir.clone();
        }
        if let Some(dir) = std::env::var_os("ADVGAME_PLUGIN_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(cache) = std::env::var_os("ADVGAME_CACHE") {
            return PathBuf::from(cache).join("plugins");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
        home.join(".cache/advgame/plugins")
    }

    /// The component file of the named plugin of the given kind (`judge`, `rubric`,
    /// `curriculum`), or an error naming every place looked at.
    pub fn path_of(&self, kind: &str, name: &str) -> anyhow::Result<PathBuf> {
        if let Some(p) = self.paths.get(name) {
            if p.is_file() {
                return Ok(p.clone());
            }
            bail!("plugin `{name}`: {} (from plugins.paths / --plugin) is not a file", p.display());
        }
        let dir = self.plugin_dir();
        let candidates =
            [dir.join(format!("{name}.wasm")), dir.join(format!("{kind}-{name}.wasm"))];
        candidates.iter().find(|p| p.is_file()).cloned().ok_or_else(|| {
            anyhow!(
                "{kind} plugin `{name}`: none of {} exists (build the built-in plugins with \
                 scripts/build-plugins.sh, or pass --plugin {name}=PATH)",
                candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Every distinct rubric name, in a stable order.
    pub fn rubric_names(&self) -> Vec<String> {
        let r = &self.rubrics;
        let mut names: Vec<String> = [
            &r.defender_harmful,
            &r.defender_benign,
            &r.attacker_harmful,
            &r.attacker_benign,
            &r.faithfulness_harmful,
            &r.faithfulness_benign,
        ]
        .into_iter()
        .cloned()
        .collect();
        names.sort();
        names.dedup();
        names
    }

    /// A plugin's settings rendered as strings (the WIT `config` import is string -> string).
    pub fn settings_of(&self, name: &str) -> Vec<(String, String)> {
        self.settings
            .get(name)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let s = match v {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (k.clone(), s)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Validation: the defender alone on held-out seeds, scored pointwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Validation {
    /// Validate every N steps (0 = never); also before the first step and after the last.
    #[serde(rename = "eval_steps", alias = "every")]
    pub every: usize,
    /// At most this many seeds per category (0 = all).
    pub max_seeds: usize,
    /// A pointwise score at or above this counts as a hit for the rate metrics.
    pub threshold: f32,
    /// Defender sampling temperature for validation (0 = greedy, reproducible).
    pub temperature: f32,
    /// Rubrics scored on harmful seeds (rates `val/harmful/<rubric>_rate`).
    pub harmful_rubrics: Vec<String>,
    /// Rubrics scored on benign seeds.
    pub benign_rubrics: Vec<String>,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            every: 25,
            max_seeds: 0,
            threshold: 5.0,
            temperature: 0.0,
            harmful_rubrics: vec!["deflection".into(), "refusal".into()],
            benign_rubrics: vec!["compliance".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Checkpoint {
    /// Checkpoint every N steps (0 = only at the end).
    #[serde(rename = "save_steps", alias = "every")]
    pub every: usize,
    /// Keep the newest N checkpoints (0 = all).
    #[serde(rename = "save_total_limit", alias = "keep")]
    pub keep: usize,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self { every: 50, keep: 2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Output {
    /// Parent folder of run directories.
    pub dir: PathBuf,
    /// Run name; the run directory is `dir/NAME-NNN`, the first unused number.
    pub name: String,
}

impl Default for Output {
    fn default() -> Self {
        Self { dir: PathBuf::from("runs"), name: "advgame".into() }
    }
}

impl Config {
    /// Reads `path`, applies `overrides` (`dotted.key=value`, value in TOML syntax or a bare
    /// string), and validates the result.
    pub fn load(path: &Path, overrides: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parses config text; `origin` names the source in errors. `overrides` are `--set`
    /// items (see [`overrides`]: TOML values, bare strings, `null` to unset).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> anyhow::Result<Self> {
        // First pass straight from the text, so errors carry the line and the field path.
        let config: Config = from_toml_text(text).map_err(|e| {
            let renamed = RENAMED.iter().find(|(_, new)| {
                let leaf = new.rsplit_once('.').map_or(*new, |(_, l)| l);
                e.inner.message().contains(&format!("duplicate field `{leaf}`"))
            });
            match renamed {
                Some((old, new)) => {
                    anyhow!("{origin}: {e}\n(`{old}` is the old name of `{new}`: keep one)")
                }
                None => anyhow!("{origin}: {e}"),
            }
        })?;
        let config = if overrides.is_empty() {
            config
        } else {
            let overrides: Vec<overrides::Override> = overrides
                .iter()
                .map(|o| overrides::Override::parse(o))
                .collect::<Result<_, _>>()?;
            let mut value: toml::Value =
                toml::from_str(text).map_err(|e| anyhow!("{origin}: {e}"))?;
            overrides::canonical_tree(&mut value);
            for o in &overrides {
                o.apply(&mut value)?;
            }
            let text = toml::to_string(&value)?;
            let config =
                from_toml_text(&text).map_err(|e| overrides::explain(origin, &overrides, &e))?;
            overrides::unset(config, origin, &overrides)?
        };
        config.check().map_err(|e| anyhow!("{origin}: {e}"))?;
        Ok(config)
    }

    /// Semantic checks serde cannot express (ranges, consistency).
    pub fn check(&self) -> anyhow::Result<()> {
        let g = &self.game;
        let a = &self.algorithm;
        let mut problems = Vec::new();
        let mut need = |ok: bool, field: &str, what: &str| {
            if !ok {
                problems.push(format!("field `{field}`: {what}"));
            }
        };
        need(g.attacks_per_seed >= 1, "game.attacks_per_seed", "must be at least 1");
        need(g.replies_per_prompt >= 1, "game.replies_per_prompt", "must be at least 1");
        need(g.attacker_max_tokens >= 1, "game.attacker_max_tokens", "must be at least 1");
        need(g.defender_max_tokens >= 1, "game.defender_max_tokens", "must be at least 1");
        need(g.temperature >= 0.0, "game.temperature", "must be >= 0");
        need(g.top_p > 0.0 && g.top_p <= 1.0, "game.top_p", "must be in (0, 1]");
        need((0.0..=1.0).contains(&g.swap_share), "game.swap_share", "must be in [0, 1]");
        need(
            (0.0..=1.0).contains(&g.both_orders_share),
            "game.both_orders_share",
            "must be in [0, 1]",
        );
        need(a.beta > 0.0, "algorithm.beta", "must be > 0");
        need((0.0..=1.0).contains(&a.ema_decay), "algorithm.ema_decay", "must be in [0, 1]");
        need(a.lr >= 0.0, "algorithm.learning_rate", "must be >= 0");
        need(
            a.betas.iter().all(|b| (0.0..1.0).contains(b)),
            "algorithm.betas",
            "both must be in [0, 1)",
        );
        need((0.0..=1.0).contains(&a.final_lr_ratio), "algorithm.min_lr_rate", "must be in [0, 1]");
        need(a.grad_clip >= 0.0, "algorithm.max_grad_norm", "must be >= 0");
        need(a.seeds_per_category >= 1, "algorithm.seeds_per_category", "must be at least 1");
        need(a.grpo_ratio_cap >= 1.0, "algorithm.grpo_ratio_cap", "must be >= 1");
        need(a.micro_batch >= 1, "algorithm.per_device_train_batch_size", "must be at least 1");
        let fp = &self.plugins.failure_policy;
        need(
            (0.0..=1.0).contains(&fp.max_step_failure_share),
            "plugins.failure_policy.max_step_failure_share",
            "must be in [0, 1]",
        );
        need(
            self.models.device == "cpu"
                || self.models.device == "cuda"
                || self
                    .models
                    .device
                    .strip_prefix("cuda:")
                    .is_some_and(|n| n.parse::<usize>().is_ok()),
            "models.device",
            "expected `cpu`, `cuda` or `cuda:N`",
        );
        if problems.is_empty() { Ok(()) } else { bail!("{}", problems.join("; ")) }
    }

    /// Checks that every file and folder the run reads exists, naming the field otherwise.
    pub fn check_files(&self) -> anyhow::Result<()> {
        let mut entries: Vec<(&str, &Path)> = vec![
            ("models.attacker", &self.models.attacker),
            ("models.defender", &self.models.defender),
            ("data.harmful", &self.data.harmful),
            ("data.benign", &self.data.benign),
            ("game.attacker_prompt_harmful", &self.game.attacker_prompt_harmful),
            ("game.attacker_prompt_benign", &self.game.attacker_prompt_benign),
        ];
        if let Some(p) = &self.models.judge {
            entries.push(("models.judge", p));
        }
        if let Some(p) = &self.data.harmful_val {
            entries.push(("data.harmful_val", p));
        }
        if let Some(p) = &self.data.benign_val {
            entries.push(("data.benign_val", p));
        }
        for (field, path) in entries {
            if !path.exists() {
                let cwd = std::env::current_dir().map(|d| d.display().to_string());
                bail!(
                    "field `{field}`: {} does not exist (relative paths are resolved against \
                     the working directory {})",
                    path.display(),
                    cwd.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// The resolved configuration as TOML (written into the run directory).
    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// The resolved configuration as TOML with every key's documentation (meaning, unit,
    /// default, range: [`FIELDS`]) in a comment above it: what `train --print-config` prints.
    /// It parses back to the same configuration.
    pub fn to_documented_toml(&self) -> anyhow::Result<String> {
        docs::render(self)
    }
}

/// A config error: the toml message (with line and snippet) plus the serde field path.
#[derive(Debug)]
struct ConfigError {
    path: String,
    inner: toml::de::Error,
}

impl ConfigError {
    fn message_only(&self) -> String {
        format!("field `{}`: {}", self.path, self.inner.message())
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = String::new();
        if self.path.is_empty() || self.path == "." {
            write!(out, "{}", self.inner)?;
        } else {
            write!(out, "field `{}`: {}", self.path, self.inner)?;
        }
        write!(f, "{}", out.trim_end())
    }
}

fn from_toml_text(text: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|inner| ConfigError { path: String::new(), inner })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError { path, inner: e.into_inner() }
    })
}

/// `Option<T>` of a field whose default is set: TOML has no null, so the empty string spells
/// "none", in files and in the resolved config (which therefore round-trips); JSON null (an
/// unset through `--set KEY=null`) is none too.
mod empty_is_none {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, T: From<String>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        let v: Option<String> = Option::deserialize(d)?;
        Ok(v.filter(|s| !s.is_empty()).map(T::from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_paper_defaults() {
        let c = Config::parse("", "t.toml", &[]).unwrap();
        assert_eq!(c.algorithm.lr, 1e-6);
        assert_eq!(c.algorithm.betas, [0.9, 0.95]);
        assert_eq!(c.algorithm.weight_decay, 0.1);
        assert_eq!(c.algorithm.final_lr_ratio, 0.2);
        assert_eq!(c.algorithm.ema_decay, 0.95);
        assert_eq!(c.algorithm.beta, 0.1);
        assert_eq!(c.algorithm.steps, 1000);
        assert_eq!(c.algorithm.seeds_per_category, 32);
        assert_eq!(c.game.temperature, 0.6);
        assert_eq!(c.game.top_p, 0.9);
        assert_eq!(c.game.attacker_max_tokens, 2048);
        assert_eq!(c.game.judge_max_tokens, 8192);
        assert_eq!(c.validation.every, 25);
        assert_eq!(c.checkpoint.every, 50);
        assert_eq!(c.plugins.rubrics.defender_harmful, "deflection");
        assert_eq!(c.plugins.rubrics.attacker_benign, "refusal");
    }

    #[test]
    fn unknown_key_names_line_and_field() {
        let text = "[game]\nattacks_per_seed = 4\nattack_per_seed = 2\n";
        let err = Config::parse(text, "run.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("run.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("attack_per_seed"), "{err}");
    }

    #[test]
    fn wrong_type_names_line_and_field() {
        let text = "[algorithm]\nmethod = \"dpo\"\nlr = \"fast\"\n";
        let err = Config::parse(text, "run.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("algorithm.lr"), "{err}");
    }

    #[test]
    fn overrides_apply_before_deserialising() {
        let c = Config::parse(
            "[algorithm]\nmethod = \"dpo\"\n",
            "t.toml",
            &[
                "algorithm.method=grpo".into(),
                "game.attacks_per_seed=4".into(),
                "algorithm.betas=[0.8, 0.9]".into(),
                "plugins.paths.judge=/tmp/j.wasm".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.algorithm.method, Method::Grpo);
        assert_eq!(c.game.attacks_per_seed, 4);
        assert_eq!(c.algorithm.betas, [0.8, 0.9]);
        assert_eq!(c.plugins.paths["judge"], PathBuf::from("/tmp/j.wasm"));
    }

    #[test]
    fn bad_override_names_the_field() {
        let err =
            Config::parse("", "t.toml", &["game.temperature=hot".into()]).unwrap_err().to_string();
        assert!(err.contains("game.temperature"), "{err}");
        let err = Config::parse("", "t.toml", &["game.nope=1".into()]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        assert!(Config::parse("", "t.toml", &["novalue".into()]).is_err());
    }

    #[test]
    fn range_checks_name_the_field() {
        let err = Config::parse("[game]\ntop_p = 1.5\n", "t.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("game.top_p"), "{err}");
        let err =
            Config::parse("[models]\ndevice = \"tpu\"\n", "t.toml", &[]).unwrap_err().to_string();
        assert!(err.contains("models.device"), "{err}");
    }

    #[test]
    fn missing_file_names_the_field() {
        let c =
            Config::parse("[data]\nharmful = \"/nonexistent/h.jsonl\"\n", "t.toml", &[]).unwrap();
        let err = c.check_files().unwrap_err().to_string();
        assert!(err.contains("models.attacker") || err.contains("data.harmful"), "{err}");
    }

    #[test]
    fn shipped_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for name in ["quickstart.toml", "llm-judge.toml"] {
            let c = Config::load(&root.join("examples").join(name), &[]).unwrap();
            assert_eq!(c.models.device, "cpu", "{name}");
        }
        let q = Config::load(&root.join("examples/quickstart.toml"), &[]).unwrap();
        assert_eq!(q.plugins.judge, "refusal-heuristic");
        // Everything the quickstart does not set keeps the paper's value.
        assert_eq!(q.algorithm.ema_decay, 0.95);
        assert_eq!(q.algorithm.beta, 0.1);
        let l = Config::load(&root.join("examples/llm-judge.toml"), &[]).unwrap();
        assert_eq!(l.plugins.judge, "llm");
        assert!(l.models.judge.is_some());
    }

    #[test]
    fn plugin_names_resolve_to_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rubric-refusal.wasm"), b"x").unwrap();
        std::fs::write(dir.path().join("mine.wasm"), b"x").unwrap();
        let mut p = Plugins { dir: Some(dir.path().into()), ..Plugins::default() };
        assert_eq!(p.path_of("rubric", "refusal").unwrap(), dir.path().join("rubric-refusal.wasm"));
        assert_eq!(p.path_of("judge", "mine").unwrap(), dir.path().join("mine.wasm"));
        let err = p.path_of("judge", "llm").unwrap_err().to_string();
        assert!(err.contains("judge-llm.wasm") && err.contains("--plugin llm=PATH"), "{err}");
        p.paths.insert("llm".into(), dir.path().join("nope.wasm"));
        assert!(p.path_of("judge", "llm").unwrap_err().to_string().contains("not a file"));
    }

    #[test]
    fn resolved_config_round_trips() {
        let mut c = Config::default();
        c.plugins.settings.insert(
            "heuristic".into(),
            BTreeMap::from([("min_len".into(), toml::Value::Integer(3))]),
        );
        let text = c.to_toml().unwrap();
        let back = Config::parse(&text, "resolved", &[]).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.plugins.settings_of("heuristic"), vec![("min_len".into(), "3".into())]);
        assert_eq!(
            c.plugins.rubric_names(),
            vec!["compliance", "deflection", "faithfulness", "refusal"]
        );
    }

    /// Case 14: `--set KEY=null` / `none` unsets an optional field, and the resolved config
    /// (what `--print-config` shows and the run directory keeps) says so and round-trips.
    #[test]
    fn case_14_null_unsets_optional_fields() {
        for word in ["null", "none", "None", "NULL"] {
            let c = Config::parse(
                "",
                "t.toml",
                &[format!("game.attacker_prefill={word}"), format!("data.harmful_val={word}")],
            )
            .unwrap();
            assert_eq!(c.game.attacker_prefill, None, "{word}");
            assert_eq!(c.data.harmful_val, None, "{word}");
            assert!(c.data.benign_val.is_some());
            let printed = c.to_documented_toml().unwrap();
            assert!(printed.contains("\nattacker_prefill = \"\"\n"), "{printed}");
            assert!(printed.contains("\nharmful_val = \"\"\n"), "{printed}");
            assert_eq!(Config::parse(&c.to_toml().unwrap(), "resolved", &[]).unwrap(), c);
        }
        // An optional field whose default is unset, and the empty string in a file.
        let c = Config::parse("[plugins]\ndir = \"/p\"\n", "t.toml", &["plugins.dir=null".into()]);
        assert_eq!(c.unwrap().plugins.dir, None);
        let c = Config::parse("[data]\nbenign_val = \"\"\n", "t.toml", &[]).unwrap();
        assert_eq!(c.data.benign_val, None);
        // The last override of a key wins, null or not.
        let c = Config::parse(
            "",
            "t.toml",
            &["game.attacker_prefill=null".into(), "game.attacker_prefill=\"<x>\"".into()],
        )
        .unwrap();
        assert_eq!(c.game.attacker_prefill.as_deref(), Some("<x>"));
        // The literal words need quotes.
        let c = Config::parse("", "t.toml", &["game.attacker_prefill=\"null\"".into()]).unwrap();
        assert_eq!(c.game.attacker_prefill.as_deref(), Some("null"));
        // Map entries are removed.
        let c = Config::parse(
            "[plugins.paths]\nmine = \"/tmp/m.wasm\"\nother = \"/tmp/o.wasm\"\n",
            "t.toml",
            &["plugins.paths.mine=null".into()],
        )
        .unwrap();
        assert_eq!(c.plugins.paths.keys().collect::<Vec<_>>(), ["other"]);
    }

    #[test]
    fn null_on_a_required_field_or_a_typo_is_an_error_naming_it() {
        let err =
            Config::parse("", "t.toml", &["output.name=none".into()]).unwrap_err().to_string();
        assert!(
            err.starts_with("t.toml: field `output.name` cannot be unset: it is not optional"),
            "{err}"
        );
        assert!(err.contains("--set 'output.name=\"none\"'"), "{err}");
        let err =
            Config::parse("", "t.toml", &["algorithm.steps=null".into()]).unwrap_err().to_string();
        assert!(err.contains("`algorithm.max_steps` cannot be unset"), "{err}");
        let err = Config::parse("", "t.toml", &["game.attacker_prefil=null".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("attacker_prefil"), "{err}");
        let err = Config::parse("", "t.toml", &["game.attacker_prefill=".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no value") && err.contains("game.attacker_prefill=null"), "{err}");
    }

    /// Case 14's control: a bare number for a text field is refused, naming the field and the
    /// quoting fix; the quoted value is accepted.
    #[test]
    fn case_14_a_bare_number_for_a_text_field_names_the_quoting_fix() {
        let err =
            Config::parse("", "q.toml", &["output.name=2024".into()]).unwrap_err().to_string();
        assert_eq!(
            err,
            "q.toml: field `output.name`: invalid type: integer `2024`, expected a string (from \
             --set output.name=2024); to pass it as text, quote it: --set 'output.name=\"2024\"'"
        );
        let err =
            Config::parse("", "q.toml", &["data.harmful=true".into()]).unwrap_err().to_string();
        assert!(
            err.contains("field `data.harmful`") && err.contains("'data.harmful=\"true\"'"),
            "{err}"
        );
        let c = Config::parse("", "q.toml", &["output.name=\"2024\"".into()]).unwrap();
        assert_eq!(c.output.name, "2024");
        // Not text-typed: no quoting advice.
        let err =
            Config::parse("", "q.toml", &["algorithm.seed=x".into()]).unwrap_err().to_string();
        assert!(err.contains("field `algorithm.seed`") && !err.contains("quote"), "{err}");
    }

    /// Issue 7: the standard names, with the old ones as aliases in files and in `--set`.
    #[test]
    fn old_key_names_mean_the_new_keys() {
        let old = "[algorithm]\nlr = 0.5\ngrad_clip = 2.0\nsteps = 7\nmicro_batch = 3\n\
                   final_lr_ratio = 0.5\n[validation]\nevery = 4\n[checkpoint]\nevery = 9\nkeep = 5\n";
        let new = "[algorithm]\nlearning_rate = 0.5\nmax_grad_norm = 2.0\nmax_steps = 7\n\
                   per_device_train_batch_size = 3\nmin_lr_rate = 0.5\n[validation]\neval_steps = 4\n\
                   [checkpoint]\nsave_steps = 9\nsave_total_limit = 5\n";
        let a = Config::parse(old, "old.toml", &[]).unwrap();
        let b = Config::parse(new, "new.toml", &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.algorithm.lr, a.algorithm.steps, a.checkpoint.keep), (0.5, 7, 5));
        // Either name overrides either spelling in the file.
        for (file, set) in
            [(old, "algorithm.max_steps=1"), (new, "algorithm.steps=1"), (old, "algorithm.steps=1")]
        {
            let c = Config::parse(file, "t.toml", &[set.into()]).unwrap();
            assert_eq!(c.algorithm.steps, 1, "{set}");
        }
        let c = Config::parse(
            old,
            "t.toml",
            &["checkpoint.keep=0".into(), "validation.every=0".into()],
        )
        .unwrap();
        assert_eq!((c.checkpoint.keep, c.validation.every), (0, 0));
        // Both names in one file is one field given twice.
        let err = Config::parse("[algorithm]\nlr = 1.0\nlearning_rate = 2.0\n", "t.toml", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("duplicate field `learning_rate`"), "{err}");
        assert!(
            err.contains("`algorithm.lr` is the old name of `algorithm.learning_rate`"),
            "{err}"
        );
        // The resolved config writes the new names.
        let text = a.to_toml().unwrap();
        for (_, new) in RENAMED {
            let leaf = new.rsplit_once('.').unwrap().1;
            assert!(text.contains(&format!("\n{leaf} = ")), "{leaf}: {text}");
        }
        // A wrong type under an old name still names what the user typed.
        let err = Config::parse("", "t.toml", &["algorithm.steps=\"many\"".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("algorithm.steps") && err.contains("algorithm.max_steps"), "{err}");
    }
}
