//! Run directories: `output.dir/output.name-NNN`, holding the resolved `config.toml`,
//! `plugins.json` (who judged and chose the seeds), `metrics.jsonl`, `rollouts.jsonl` and
//! `checkpoints/`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::game::config::Config;
use crate::game::plugins::PluginRecord;

/// Creates a fresh run directory `output.dir/output.name-NNN` (first unused number) and
/// writes the resolved configuration into it.
pub fn create_run_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let parent = &config.output.dir;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    for n in 1..10_000 {
        let dir = parent.join(format!("{}-{n:03}", config.output.name));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::write(dir.join("config.toml"), config.to_toml()?)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!("{}: no free run directory name", parent.display())
}

/// The `config.toml` of the run folder `dir`, which `train --resume` reads.
///
/// # Errors
/// When `dir` does not exist (naming the run folders beside it, nearest name first, and how
/// runs are named), is not a folder, or holds no `config.toml` (not a run folder).
pub fn run_config(dir: &Path) -> anyhow::Result<PathBuf> {
    let config = dir.join("config.toml");
    if config.is_file() {
        return Ok(config);
    }
    let how = "runs are the folders train makes, output.dir/output.name-NNN (NNN from 001)";
    if dir.is_dir() {
        bail!("{} is not a run folder: it has no config.toml ({how})", dir.display());
    }
    if dir.exists() {
        bail!("{} is not a folder ({how})", dir.display());
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let wanted = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let near = match std::fs::read_dir(&parent) {
        Err(_) => format!("{} does not exist either", parent.display()),
        Ok(entries) => {
            let mut runs: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("config.toml").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            // Nearest first: the longest common beginning, then by name.
            let common =
                |name: &str| name.chars().zip(wanted.chars()).take_while(|(a, b)| a == b).count();
            runs.sort_by(|a, b| common(b).cmp(&common(a)).then(a.cmp(b)));
            match runs.len() {
                0 => format!("{} holds no run folders", parent.display()),
                n => {
                    let shown = runs.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                    let more = if n > 5 { format!(" and {} more", n - 5) } else { String::new() };
                    format!("run folders in {}: {shown}{more}", parent.display())
                }
            }
        }
    };
    bail!("no run folder {}: it does not exist; {near} ({how})", dir.display())
}

/// On resume the plugins must be the ones the run started with (same sha256, as recorded in
/// the run's `plugins.json`; a run without that file passes).
pub fn check_same_plugins(run_dir: &Path, now: &[PluginRecord]) -> anyhow::Result<()> {
    let path = run_dir.join("plugins.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let before: Vec<serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a plugin list", path.display()))?;
    for old in &before {
        let role = old["role"].as_str().unwrap_or_default();
        let name = old["name"].as_str().unwrap_or_default();
        let sha = old["sha256"].as_str().unwrap_or_default();
        match now.iter().find(|p| p.role == role && p.name == name) {
            Some(p) if p.sha256 == sha => {}
            Some(p) => bail!(
                "{role} plugin `{name}` changed since the run started: sha256 {} in {}, now {} \
                 ({}); resuming with a different plugin would not continue the same run",
                &sha[..12.min(sha.len())],
                path.display(),
                &p.sha256[..12],
                p.path
            ),
            None => bail!("{role} plugin `{name}` of {} is not loaded now", path.display()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_run_folder_is_named_with_the_runs_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for name in ["quickstart-001", "quickstart-002", "other-001"] {
            std::fs::create_dir_all(runs.join(name)).unwrap();
            std::fs::write(runs.join(name).join("config.toml"), "").unwrap();
        }
        std::fs::create_dir_all(runs.join("empty")).unwrap();
        assert_eq!(
            run_config(&runs.join("quickstart-001")).unwrap(),
            runs.join("quickstart-001/config.toml")
        );
        let err = run_config(&runs.join("quickstart-000")).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("no run folder {}", runs.join("quickstart-000").display()))
        );
        assert!(err.contains("it does not exist"), "{err}");
        assert!(
            err.contains(&format!(
                "run folders in {}: quickstart-001, quickstart-002, other-001",
                runs.display()
            )),
            "{err}"
        );
        assert!(err.contains("output.dir/output.name-NNN"), "{err}");
        assert!(!err.contains("config.toml does not"), "{err}");
        let err = run_config(&runs.join("empty")).unwrap_err().to_string();
        assert!(err.contains("is not a run folder: it has no config.toml"), "{err}");
        let err = run_config(&dir.path().join("nowhere/x-001")).unwrap_err().to_string();
        assert!(err.contains("nowhere does not exist either"), "{err}");
    }
}
