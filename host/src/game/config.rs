//! The run configuration: one TOML file, every field documented and defaulted to the paper's
//! value (game.md) unless that cannot run on the embedded CPU default, plus `--set
//! dotted.key=value` overrides ([`overrides`]). Unknown keys are errors, and every error names
//! the file, the line and the field, because a typo in a training config otherwise costs a
//! whole run.
//!
//! Keys use the names people know from transformers' `TrainingArguments` and TRL
//! (`learning_rate`, `max_grad_norm`, `max_steps`, `per_device_train_batch_size`, `eval_steps`,
//! `save_steps`, `save_total_limit`, `beta`, `warmup_steps`, `weight_decay`, `seed`); the
//! project's earlier names stay accepted ([`RENAMED`]; the old pair `betas = [b1, b2]` means
//! `adam_beta1 = b1` and `adam_beta2 = b2`). Every key's meaning, unit, default and
//! range is in [`docs`], which `train --print-config` prints above each key.
//!
//! TOML has no null: an optional file or text whose default is set (`data.harmful_val`,
//! `data.benign_val`, `game.attacker_prefill`) is turned off with the empty string `""`, which
//! is also how the resolved config writes "none"; on the command line `--set KEY=null` does it.

#![warn(missing_docs)]
#![allow(
    clippy::result_large_err,
    reason = "a ConfigError is built once, when a run is refused; its size costs nothing, and \
              boxing it would hide its fields from the `matches!` patterns callers use"
)]

mod algorithm;
mod check;
mod data;
mod docs;
mod error;
mod fields;
mod game;
mod models;
mod overrides;
mod plugins;
mod run;
mod words;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use algorithm::{
    Algorithm, Baseline, Method, Sampler, UpdateOrder, initial_uses, keeps_initial,
};
pub use data::Data;
pub use error::{ConfigError, ConfigErrorKind};
pub use fields::FIELDS;
pub use game::{Game, JudgeContext};
pub use models::{Adapter, Dtype, Lora, Models};
pub use plugins::{
    CurriculumFallback, FailurePolicy, PluginLimits, Plugins, Rubrics, plugin_label,
};
pub use run::{Checkpoint, Output, Validation};

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
    /// `[models]`
    pub models: Models,
    /// `[data]`
    pub data: Data,
    /// `[game]`
    pub game: Game,
    /// `[algorithm]`
    pub algorithm: Algorithm,
    /// `[plugins]`
    pub plugins: Plugins,
    /// `[validation]`
    pub validation: Validation,
    /// `[checkpoint]`
    pub checkpoint: Checkpoint,
    /// `[output]`
    pub output: Output,
}

impl Config {
    /// Reads `path`, applies `overrides` (`dotted.key=value`, value in TOML syntax or a bare
    /// string), and validates the result.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, line, column and field: [`ConfigErrorKind::Read`]
    /// when the file cannot be read, otherwise as [`Config::parse`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(ConfigErrorKind::Read, format!("cannot read the config file: {e}"))
                .in_file(&origin)
        })?;
        Self::parse(&text, &origin, overrides)
    }

    /// Parses config text; `origin` names the source in errors. `overrides` are `--set`
    /// items (see [`overrides`]: TOML values, bare strings, `null` to unset).
    ///
    /// # Errors
    /// A [`ConfigError`] in `origin`: TOML syntax, an unknown or duplicate key, a wrong type
    /// or value (with line and column), a malformed or misplaced `--set` item, or a value out
    /// of range ([`Config::check`]).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Self, ConfigError> {
        // First pass straight from the text, so errors carry the line and the field path.
        let mut config: Config = from_toml_text(text).map_err(|mut e| {
            if e.kind == ConfigErrorKind::DuplicateKey
                && let Some((old, new)) = RENAMED.iter().find(|(_, new)| {
                    let leaf = new.rsplit_once('.').map_or(*new, |(_, l)| l);
                    e.message.contains(&format!("duplicate field `{leaf}`"))
                })
            {
                e.message.push_str(&format!(" (`{old}` is the old name of `{new}`: keep one)"));
            }
            let (mut e, rest) = other_unknown_keys(e, text);
            if e.kind == ConfigErrorKind::UnknownKey && !overrides.is_empty() {
                // The `--set` items' unknown keys too, so one run names every typo.
                if let Err(s) = Self::apply_overrides(&rest, origin, overrides)
                    .map_err(|s| other_unknown_sets(s, &rest, origin, overrides))
                    && s.kind == ConfigErrorKind::UnknownKey
                    && s.set.is_some()
                {
                    let mut s = s;
                    let later = std::mem::take(&mut s.more);
                    s.message = s.message.split(", expected").next().unwrap_or_default().into();
                    e.more.push(s);
                    e.more.extend(later);
                }
            }
            e.in_file(origin)
        })?;
        // The text parsed above, so it is a TOML document.
        let file: toml::Value =
            toml::from_str(text).unwrap_or(toml::Value::Table(Default::default()));
        let in_file = algorithm::gives_adam_betas(&file);
        config.algorithm.fold_old_betas(in_file).map_err(|e| e.in_file(origin))?;
        let mut config = if overrides.is_empty() {
            config
        } else {
            Self::apply_overrides(text, origin, overrides)
                .map_err(|e| other_unknown_sets(e, text, origin, overrides))?
        };
        grpo_group_sizes(&mut config, text, overrides);
        config
            .check()
            .map_err(|e| place(words::with_found(e, &config), text, origin, overrides))?;
        Ok(config)
    }

    /// The configuration of `text` with the `--set` items applied: the file's TOML tree with
    /// each item set or removed, then the typed step again (so a `--set` value gets the same
    /// checks as the file's), then the unsets ([`overrides::unset`]).
    fn apply_overrides(
        text: &str,
        origin: &str,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let overrides: Vec<overrides::Override> = overrides
            .iter()
            .map(|o| {
                overrides::Override::parse(o)
                    .map_err(|e| no_value(e, o, text, origin, overrides).in_file(origin))
            })
            .collect::<Result<_, _>>()?;
        let mut value: toml::Value = toml::from_str(text)
            .map_err(|e| ConfigError::from_toml(&e, "", text, true).in_file(origin))?;
        overrides::canonical_tree(&mut value);
        for o in &overrides {
            o.apply(&mut value)?;
        }
        let merged = toml::to_string(&value).map_err(|e| {
            ConfigError::new(
                ConfigErrorKind::InvalidValue,
                format!("the overridden configuration is not TOML: {e}"),
            )
            .in_file(origin)
        })?;
        let mut config =
            from_toml_text(&merged).map_err(|e| overrides::explain(origin, &overrides, e))?;
        let in_overrides = overrides::sets_adam_betas(&overrides);
        config.algorithm.fold_old_betas(in_overrides).map_err(|e| e.in_file(origin))?;
        overrides::unset(config, origin, &overrides)
    }

    /// Whether the attacker writes rewrites at all: some seeds reach the defender through it
    /// (`game.direct_seed_share < 1`).
    pub fn attacker_writes(&self) -> bool {
        self.game.direct_seed_share < 1.0
    }

    /// Whether the attacker can ever be updated: it writes, and its groups can form
    /// something to learn from (DPO and IPO pair two rewrites of one seed, so they need
    /// `game.attacks_per_seed >= 2`; GRPO learns from single rewrites). When false the run
    /// never computes its gradients, AdamW state or update, and the memory plan leaves them
    /// out.
    pub fn attacker_learns(&self) -> bool {
        self.attacker_writes()
            && (self.game.attacks_per_seed >= 2 || self.algorithm.method == Method::Grpo)
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

/// A `--set KEY=` item (no value) said in terms of the field: a typo in KEY is reported as
/// such; an optional field gets the `KEY=null` / `KEY='""'` choice; a field that is not
/// optional says so and what it takes, instead of suggesting `null`. Found by loading the
/// configuration with `KEY=null` in the item's place. Other errors of `item` pass unchanged.
fn no_value(e: ConfigError, item: &str, text: &str, origin: &str, all: &[String]) -> ConfigError {
    let Some((key, raw)) = item.split_once('=') else { return e };
    if !raw.trim().is_empty() || e.kind != ConfigErrorKind::BadOverride {
        return e;
    }
    let (key, null) = (key.trim(), format!("{}=null", key.trim()));
    let others: Vec<String> =
        all.iter().map(|o| if o == item { null.clone() } else { o.clone() }).collect();
    match Config::parse(text, origin, &others) {
        Err(n) if n.set.as_deref() == Some(null.as_str()) => match n.kind {
            ConfigErrorKind::UnknownKey => ConfigError { set: Some(item.to_string()), ..n },
            ConfigErrorKind::NotOptional => {
                let message = match &n.expected {
                    Some(takes) => {
                        format!("no value, and the field is not optional: give it {takes}")
                    }
                    None => "no value, and the field is not optional".to_string(),
                };
                ConfigError {
                    kind: ConfigErrorKind::BadOverride,
                    set: Some(item.to_string()),
                    message,
                    ..n
                }
                .in_file(origin)
            }
            _ => e,
        },
        Err(_) => e,
        Ok(_) => ConfigError {
            message: format!(
                "no value; to unset this optional field write {key}=null, or {key}='\"\"' for \
                 empty text"
            ),
            ..e
        },
    }
}

/// GRPO's group sizes default to the paper's A = D = 4 (the defaults, 2 and 2, are DPO's):
/// `game.attacks_per_seed` / `game.replies_per_prompt` become 4 under `algorithm.method =
/// "grpo"` unless the file or a `--set` item gives them. The resolved config (the run's
/// `config.toml`) then carries them explicitly, so a resume keeps them.
fn grpo_group_sizes(config: &mut Config, text: &str, overrides: &[String]) {
    if config.algorithm.method != Method::Grpo {
        return;
    }
    let in_text = |key: &str| {
        toml::from_str::<toml::Value>(text)
            .ok()
            .and_then(|v| v.get("game").and_then(|g| g.get(key)).cloned())
            .is_some()
    };
    let in_overrides = |key: &str| {
        overrides
            .iter()
            .any(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == format!("game.{key}")))
    };
    if !in_text("attacks_per_seed") && !in_overrides("attacks_per_seed") {
        config.game.attacks_per_seed = 4;
    }
    if !in_text("replies_per_prompt") && !in_overrides("replies_per_prompt") {
        config.game.replies_per_prompt = 4;
    }
}

/// serde stops at the first unknown key; a file with several typos would then take one run
/// per typo. The others are found by reading the text again with each found key's line
/// commented out (so line numbers stay), and listed in `more` in file order with their line
/// and the closest accepted name (without the accepted list, which the first one gives). An
/// unknown table (`[validaton]`) is commented out with all its keys, which belong to it and
/// not to the table above (they are not reported again). Stops at anything else (a value
/// spread over several lines leaves a syntax error behind) or after 16. Also returns the text
/// with the reported keys commented out, against which the `--set` items are checked.
fn other_unknown_keys(mut e: ConfigError, text: &str) -> (ConfigError, String) {
    debug_assert!(e.more.is_empty(), "a fresh serde error");
    if e.kind != ConfigErrorKind::UnknownKey {
        return (e, text.to_string());
    }
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut line = e.line;
    for _ in 0..16 {
        let Some(at) = line.and_then(|l| l.checked_sub(1)).filter(|&i| i < lines.len()) else {
            break;
        };
        let end = if is_table_header(&lines[at]) {
            (at + 1..lines.len()).find(|&i| is_table_header(&lines[i])).unwrap_or(lines.len())
        } else {
            at + 1
        };
        for slot in &mut lines[at..end] {
            slot.insert(0, '#');
        }
        match from_toml_text(&lines.join("\n")) {
            Err(n)
                if n.kind == ConfigErrorKind::UnknownKey && n.line.is_some() && n.line != line =>
            {
                line = n.line;
                e.more.push(n);
            }
            _ => break,
        }
    }
    // serde visits a table's keys in its own order, not the file's.
    let mut found = std::mem::take(&mut e.more);
    found.push(e);
    (first_in_order(found, |m| m.line), lines.join("\n"))
}

/// Unknown keys found one by one (`found`, not empty), as one error: the first by `order`
/// with its full message (serde's list of accepted names), the others in `more` in order,
/// each cut before its list.
fn first_in_order<K: Ord>(
    mut found: Vec<ConfigError>,
    order: impl Fn(&ConfigError) -> K,
) -> ConfigError {
    found.sort_by_key(|e| order(e));
    let mut first = found.remove(0);
    for mut n in found {
        n.message = n.message.split(", expected").next().unwrap_or_default().to_string();
        first.more.push(n);
    }
    first
}

/// A TOML table header line: `[name]`, `[a.b]` or `[[name]]`, with an optional comment.
fn is_table_header(line: &str) -> bool {
    let code = line.split('#').next().unwrap_or_default().trim();
    code.starts_with('[') && code.ends_with(']') && !code.contains(['=', ','])
}

/// After an unknown key in a `--set` item (`e`), the unknown keys of the other items, so
/// that one run names every typo (as [`other_unknown_keys`] does for the file): the items
/// are applied again without each reported one until another error, or none, comes back.
/// The first item on the command line with an unknown key is the error; the others follow
/// in `more`, in command-line order (serde meets them in its own order).
fn other_unknown_sets(
    e: ConfigError,
    text: &str,
    origin: &str,
    overrides: &[String],
) -> ConfigError {
    let position =
        |e: &ConfigError| e.set.as_ref().and_then(|item| overrides.iter().position(|o| o == item));
    let mut found = vec![e];
    let mut rest = overrides.to_vec();
    while found.len() <= overrides.len() {
        let last = found.last().expect("found starts with e");
        if last.kind != ConfigErrorKind::UnknownKey {
            break;
        }
        let Some(i) = last.set.as_ref().and_then(|item| rest.iter().position(|o| o == item)) else {
            break;
        };
        rest.remove(i);
        match Config::apply_overrides(text, origin, &rest) {
            Err(n) if n.kind == ConfigErrorKind::UnknownKey && n.set.is_some() => found.push(n),
            _ => break,
        }
    }
    if found.len() == 1 {
        return found.pop().expect("one error");
    }
    first_in_order(found, position)
}

/// The typed step over config text; errors carry the field path and the position.
fn from_toml_text(text: &str) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|inner| ConfigError::from_toml(&inner, "", text, true))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ConfigError::from_toml(e.inner(), &path, text, false)
    })
}

impl ConfigError {
    /// The same problem placed in the config file `path` that was loaded with `overrides`:
    /// the file is named, and the line and column of the field's value when the file sets it
    /// and no `--set` item replaced it (else the item is named). For the checks that run
    /// after loading ([`Config::check_files`], [`Plugins::path_of`]), where the file is known
    /// only to the caller.
    pub fn placed_in(self, path: &Path, overrides: &[String]) -> Self {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        place(self, &text, &path.display().to_string(), overrides)
    }
}

/// Places [`Config::check`]'s problems: in `origin`, at the line of the field's value in
/// `text`, or at the `--set` item that gave the value.
fn place(mut e: ConfigError, text: &str, origin: &str, overrides: &[String]) -> ConfigError {
    // `adam_beta1` / `adam_beta2` may have come as the old pair `betas = [b1, b2]`.
    let old_pair = |field: &str| {
        matches!(field, "algorithm.adam_beta1" | "algorithm.adam_beta2")
            .then_some("algorithm.betas")
    };
    let set_by = |field: &str| {
        overrides.iter().rev().find(|o| {
            overrides::Override::parse(o).is_ok_and(|parsed| {
                let key = parsed.dotted();
                key == field || old_pair(field) == Some(key.as_str())
            })
        })
    };
    let set = e.field.as_deref().and_then(set_by);
    // A contradiction whose other side came from a --set item: say so, or the file's line
    // alone would look like the whole story.
    if set.is_none()
        && let Some(other) = e.also.as_deref()
        && let Some(item) = set_by(other)
    {
        e.message.push_str(&format!(" (`{other}` from --set {item})"));
    }
    let located = e.field.as_deref().and_then(|f| {
        error::locate(text, f).or_else(|| old_pair(f).and_then(|p| error::locate(text, p)))
    });
    match (set, located) {
        (Some(item), _) => e.set = Some(item.clone()),
        (None, Some(offset)) => e = e.at_offset(text, offset),
        (None, None) => {}
    }
    e.in_file(origin)
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
mod tests;
