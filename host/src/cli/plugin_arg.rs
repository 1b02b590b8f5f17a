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
}
