//! `[plugins]`: plugin names and files, per-plugin settings, the failure policy and the
//! sandbox limits; plus the one place a plugin name resolves to a component file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ConfigError, ConfigErrorKind};

/// The rubric used in each of the six judging roles (plugin names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rubrics {
    /// Compares defender replies to harmful seeds.
    pub defender_harmful: String,
    /// Compares defender replies to benign seeds.
    pub defender_benign: String,
    /// Compares the best replies across attacks on a harmful seed.
    pub attacker_harmful: String,
    /// Compares the best replies across attacks on a benign seed.
    pub attacker_benign: String,
    /// Scores attacker prompts of harmful seeds for faithfulness.
    pub faithfulness_harmful: String,
    /// Scores attacker prompts of benign seeds for faithfulness.
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

/// What to do when the curriculum fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CurriculumFallback {
    /// Sample that batch uniformly instead (counted).
    Uniform,
    /// End the run.
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
    /// Judge plugin name.
    pub judge: String,
    /// Curriculum plugin name.
    pub curriculum: String,
    /// The rubric of each judging role.
    pub rubrics: Rubrics,
    /// Explicit component files by plugin name (`--plugin NAME=PATH` lands here).
    pub paths: BTreeMap<String, PathBuf>,
    /// Per-plugin settings, handed to the plugin through the host `config` import.
    pub settings: BTreeMap<String, BTreeMap<String, toml::Value>>,
    /// What happens when plugin calls fail.
    pub failure_policy: FailurePolicy,
    /// Sandbox limits of every plugin instance and call.
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
    /// Host-service budget of one call (`crate::plugin::HostBudget`): `generate` and
    /// rubric-registry calls per item of the batch.
    pub host_calls_per_item: u32,
    /// Tokens one call may request from `generate` (requests x max-tokens), per item.
    pub generate_tokens_per_item: u64,
    /// Total wall-clock time of one call, host time included: this many `deadline_ms` ...
    pub call_wall_multiple: u32,
    /// ... plus this many milliseconds per token requested from `generate`.
    pub call_wall_ms_per_token: u64,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            deadline_ms: 10_000,
            memory_mb: 256,
            fuel: 0,
            host_calls_per_item: 16,
            generate_tokens_per_item: 32_768,
            call_wall_multiple: 10,
            call_wall_ms_per_token: 50,
        }
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

/// How errors name a plugin: `ROLE plugin `NAME``, or `ROLE plugin` when the name is the
/// role word itself (`--plugin judge=PATH` names the judge `judge`), so no word is said twice.
pub fn plugin_label(role: &str, name: &str) -> String {
    if name == role { format!("{role} plugin") } else { format!("{role} plugin `{name}`") }
}

impl Plugins {
    /// The folder built plugins are looked up in: `dir`, else the host's default
    /// ([`crate::plugin::default_plugin_dir`]).
    pub fn plugin_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .or_else(crate::plugin::default_plugin_dir)
            .unwrap_or_else(|| PathBuf::from(".cache/advgame/plugins"))
    }

    /// The component file of the named plugin of the given kind (`judge`, `rubric`,
    /// `curriculum`).
    ///
    /// # Errors
    /// A [`ConfigErrorKind::MissingFile`] [`ConfigError`]: about `plugins.paths.NAME` when
    /// that entry is not a file, otherwise about `plugins.judge` / `plugins.curriculum` (for
    /// a rubric: `plugins.dir`), naming every place looked at, the plugins of that kind built
    /// there and the closest of them.
    pub fn path_of(&self, kind: &str, name: &str) -> Result<PathBuf, ConfigError> {
        if let Some(p) = self.paths.get(name) {
            if p.is_file() {
                return Ok(p.clone());
            }
            return Err(ConfigError::new(
                ConfigErrorKind::MissingFile,
                format!(
                    "{}: {} is not a file (set by plugins.paths or --plugin)",
                    plugin_label(kind, name),
                    p.display()
                ),
            )
            .field(format!("plugins.paths.{name}")));
        }
        let dir = self.plugin_dir();
        let candidates =
            [dir.join(format!("{name}.wasm")), dir.join(format!("{kind}-{name}.wasm"))];
        if let Some(found) = candidates.iter().find(|p| p.is_file()) {
            return Ok(found.clone());
        }
        let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
        let built = built_names(&dir, kind);
        let mut message =
            format!("{}: none of {} exists", plugin_label(kind, name), tried.join(", "));
        if !built.is_empty() {
            message.push_str(&format!("; built {kind} plugins there: {}", built.join(", ")));
            if let Some(b) = super::words::closest(name, built.iter().map(String::as_str)) {
                message.push_str(&format!(" (did you mean `{b}`?)"));
            }
        }
        message.push_str(&format!(
            " (build the built-in plugins with scripts/build-plugins.sh, or pass --plugin \
             {name}=PATH)"
        ));
        // The name is the judge's or the curriculum's own key; a rubric's could be any role.
        let field = match kind {
            "judge" | "curriculum" => format!("plugins.{kind}"),
            _ => "plugins.dir".to_string(),
        };
        Err(ConfigError::new(ConfigErrorKind::MissingFile, message).field(field))
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

/// The names of the `{kind}-NAME.wasm` components in `dir`, sorted (empty when it cannot be
/// read).
fn built_names(dir: &std::path::Path, kind: &str) -> Vec<String> {
    let prefix = format!("{kind}-");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|f| f.strip_prefix(&prefix)?.strip_suffix(".wasm").map(String::from))
        .collect();
    names.sort();
    names
}
