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
