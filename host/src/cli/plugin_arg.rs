//! The `--plugin NAME=PATH` value that `train`, `eval` and `redteam` take: parsed and checked
//! once, by clap, into a [`PluginPath`], so a malformed item is refused before anything
//! loads, with the same words in every command.

use std::path::PathBuf;
use std::str::FromStr;

/// One `--plugin NAME=PATH` item: use the component file `path` for the plugin `name` (a
/// judge, rubric or curriculum name, or a role word such as `judge`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginPath {
    /// The plugin name: ASCII letters, digits, `-` or `_` (it becomes a config key).
    pub name: String,
    /// The component file; it existed when the argument was parsed.
    pub path: PathBuf,
}

/// Why a `--plugin` item was refused (clap puts the option and the item in front of the
/// message: `invalid value 'judge' for '--plugin <NAME=PATH>': expected NAME=PATH`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginPathError {
    /// No `=` between a name and a path.
    #[error("expected NAME=PATH")]
    NoSeparator,
    /// The name is empty or holds other characters than letters, digits, `-` or `_`.
    #[error("NAME must be letters, digits, `-` or `_`")]
    BadName,
    /// The path names no existing file.
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
}

impl FromStr for PluginPath {
    type Err = PluginPathError;

    fn from_str(item: &str) -> Result<Self, Self::Err> {
        let (name, path) = item.split_once('=').ok_or(PluginPathError::NoSeparator)?;
        let name = name.trim();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(PluginPathError::BadName);
        }
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(PluginPathError::NotAFile(path));
        }
        Ok(PluginPath { name: name.to_string(), path })
    }
}

impl PluginPath {
    /// The `--set` item that points the config at the file: `plugins.paths.NAME = "PATH"`.
    pub fn config_override(&self) -> String {
        let quoted = toml::Value::String(self.path.display().to_string()).to_string();
        format!("plugins.paths.{}={quoted}", self.name)
    }
}

/// The plugins a command loads, by role: what its `--plugin` items must name.
#[derive(Debug, Clone, Default)]
pub struct UsedPlugins {
    /// The judge's name (`plugins.judge`).
    pub judge: String,
    /// The curriculum's name, for commands that load one (`train`).
    pub curriculum: Option<String>,
    /// Every rubric name the command loads.
    pub rubrics: Vec<String>,
}

/// Refuses an item whose NAME no plugin of `used` has (a typo, or the name of a judge the
/// config does not use): it would be ignored, and the command would go ahead with the plugin
/// the user meant to replace. `hint` says how that command replaces a plugin by role.
pub fn check_used(flags: &[PluginPath], used: &UsedPlugins, hint: &str) -> anyhow::Result<()> {
    let mut rubrics = used.rubrics.clone();
    rubrics.sort();
    rubrics.dedup();
    for flag in flags {
        let name = &flag.name;
        if *name == used.judge || used.curriculum.as_ref() == Some(name) || rubrics.contains(name) {
            continue;
        }
        let mut has = vec![format!("judge `{}`", used.judge)];
        if let Some(c) = &used.curriculum {
            has.push(format!("curriculum `{c}`"));
        }
        let quoted: Vec<String> = rubrics.iter().map(|r| format!("`{r}`")).collect();
        if !quoted.is_empty() {
            has.push(format!("rubrics {}", quoted.join(", ")));
        }
        anyhow::bail!(
            "--plugin {name}={}: no plugin here is named `{name}` ({}); {hint}",
            flag.path.display(),
            has.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_parse_or_fail_with_their_kind() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("my judge.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        let item = format!(" judge-2 ={}", file.display());
        let parsed: PluginPath = item.parse().unwrap();
        assert_eq!(parsed, PluginPath { name: "judge-2".into(), path: file.clone() });
        let set = parsed.config_override();
        assert!(set.starts_with("plugins.paths.judge-2=\"") && set.ends_with("my judge.wasm\""));

        assert_eq!("judge".parse::<PluginPath>(), Err(PluginPathError::NoSeparator));
        let bad = format!("a.b={}", file.display());
        assert_eq!(bad.parse::<PluginPath>(), Err(PluginPathError::BadName));
        let missing = PathBuf::from("/nonexistent/j.wasm");
        assert_eq!(
            "judge=/nonexistent/j.wasm".parse::<PluginPath>(),
            Err(PluginPathError::NotAFile(missing))
        );
    }

    #[test]
    fn an_item_naming_no_loaded_plugin_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.wasm");
        std::fs::write(&file, b"\0asm").unwrap();
        let item =
            |name: &str| -> PluginPath { format!("{name}={}", file.display()).parse().unwrap() };
        // What `eval` loads: a judge and rubrics, no curriculum.
        let used = UsedPlugins {
            judge: "llm".into(),
            curriculum: None,
            rubrics: vec!["refusal".into(), "compliance".into(), "refusal".into()],
        };
        check_used(&[item("llm"), item("refusal"), item("compliance")], &used, "h").unwrap();
        let err = check_used(&[item("refusal"), item("refusl")], &used, "--judge takes the judge")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!(
                "--plugin refusl={}: no plugin here is named `refusl` (judge `llm`, rubrics \
                 `compliance`, `refusal`); --judge takes the judge",
                file.display()
            )
        );
    }
}
