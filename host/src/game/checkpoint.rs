//! Checkpoints: `RUN/checkpoints/step-NNNNNN/` holding both players and their EMA copies in
//! Hugging Face layout (loadable by `transformers` as they are), both optimiser states, the
//! f32 EMA masters of bf16/f16 EMA copies, and
//! `state.json` (step, run seed, failure counters, curriculum state).
//!
//! Atomic: everything is written into `checkpoints/.tmp-step-NNNNNN/`, which is renamed to
//! its final name only when complete; a process killed mid-write leaves a `.tmp-` folder that
//! is ignored (and removed on resume), and the previous checkpoint untouched.
//!
//! RNG state: the loop derives every random stream from `(algorithm.seed, step)`, so the
//! step and seed are the whole RNG state; the generators are re-seeded per batch.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

const FORMAT: u32 = 1;
const STATE_FILE: &str = "state.json";

/// Test hook: when set to a step number, the process aborts in the middle of writing that
/// step's checkpoint (after the model files, before `state.json` and the rename), as a kill
/// would. Used by the checkpoint-safety integration test.
pub const ABORT_ENV: &str = "ADVGAME_TEST_ABORT_IN_CHECKPOINT";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub format: u32,
    /// Completed steps.
    pub step: u64,
    pub seed: u64,
    pub total_failures: u64,
    pub curriculum_failures: u64,
    /// The curriculum plugin's `save-state` bytes, hex.
    pub curriculum_state: String,
}

impl TrainState {
    pub fn new(
        step: u64,
        seed: u64,
        total_failures: u64,
        curriculum_failures: u64,
        curriculum: &[u8],
    ) -> Self {
        Self {
            format: FORMAT,
            step,
            seed,
            total_failures,
            curriculum_failures,
            curriculum_state: hex::encode(curriculum),
        }
    }

    pub fn read(checkpoint: &Path) -> anyhow::Result<Self> {
        let path = checkpoint.join(STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let state: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid checkpoint state", path.display()))?;
        if state.format != FORMAT {
            bail!(
                "{}: checkpoint format {} (this build reads {FORMAT})",
                path.display(),
                state.format
            );
        }
        Ok(state)
    }

    pub fn curriculum_state(&self) -> anyhow::Result<Vec<u8>> {
        hex::decode(&self.curriculum_state).context("checkpoint state: curriculum_state is not hex")
    }
}

/// The model folders inside a checkpoint.
#[derive(Debug, Clone)]
pub struct PlayerDirs {
    pub attacker: PathBuf,
    pub defender: PathBuf,
    pub attacker_ema: PathBuf,
    pub defender_ema: PathBuf,
}

pub fn player_dirs(checkpoint: &Path) -> PlayerDirs {
    PlayerDirs {
        attacker: checkpoint.join("attacker"),
        defender: checkpoint.join("defender"),
        attacker_ema: checkpoint.join("attacker-ema"),
        defender_ema: checkpoint.join("defender-ema"),
    }
}

/// The state files of one player in a checkpoint.
#[derive(Debug, Clone)]
pub struct PlayerFiles {
    /// AdamW moments, step count and f32 master weights.
    pub optimizer: PathBuf,
    /// f32 masters of the EMA copy (written only when the EMA copy is bf16/f16).
    pub ema_masters: PathBuf,
}

/// `(attacker, defender)` state files: `optimizer-NAME.safetensors` and
/// `ema-masters-NAME.safetensors`.
pub fn player_files(checkpoint: &Path) -> (PlayerFiles, PlayerFiles) {
    let of = |name: &str| PlayerFiles {
        optimizer: checkpoint.join(format!("optimizer-{name}.safetensors")),
        ema_masters: checkpoint.join(format!("ema-masters-{name}.safetensors")),
    };
    (of("attacker"), of("defender"))
}

fn root(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

fn name_of(step: u64) -> String {
    format!("step-{step:06}")
}

/// Writes a checkpoint: `fill` writes the model and optimiser files into the temporary
/// folder it is given; then the state is written and the folder renamed into place.
pub fn write(
    run_dir: &Path,
    state: &TrainState,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let root = root(run_dir);
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let name = name_of(state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    fill(&tmp).with_context(|| format!("writing checkpoint {}", tmp.display()))?;
    if std::env::var(ABORT_ENV).ok().and_then(|s| s.parse::<u64>().ok()) == Some(state.step) {
        eprintln!("{ABORT_ENV}: aborting inside the checkpoint of step {}", state.step);
        std::process::abort();
    }
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, serde_json::to_string_pretty(state)? + "\n")?;
    sync_tree(&tmp)?;
    let final_dir = root.join(&name);
    if final_dir.exists() {
        // Re-saving a step (a resumed run) replaces the old copy; the new one is complete.
        let old = root.join(format!(".old-{name}"));
        std::fs::rename(&final_dir, &old)?;
        std::fs::rename(&tmp, &final_dir)?;
        std::fs::remove_dir_all(&old)?;
    } else {
        std::fs::rename(&tmp, &final_dir)?;
    }
    if let Ok(d) = std::fs::File::open(&root) {
        let _ = d.sync_all();
    }
    Ok(final_dir)
}

/// Flushes every file under `dir` to disk so the rename never exposes unwritten data.
fn sync_tree(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    Ok(())
}

/// Complete checkpoints of a run, oldest first.
pub fn list(run_dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let root = root(run_dir);
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(&root)? {
        let path = entry?.path();
        let step = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("step-"))
            .and_then(|s| s.parse::<u64>().ok());
        if let Some(step) = step
            && path.join(STATE_FILE).is_file()
        {
            out.push((step, path));
        }
    }
    out.sort();
    Ok(out)
}

/// The newest complete checkpoint; leftovers of interrupted writes are removed.
pub fn latest(run_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let root = root(run_dir);
    if root.exists() {
        for entry in std::fs::read_dir(&root)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(".tmp-") || name.starts_with(".old-") {
                tracing::warn!("removing an interrupted checkpoint write: {}", path.display());
                std::fs::remove_dir_all(&path)?;
            }
        }
    }
    Ok(list(run_dir)?.pop().map(|(_, p)| p))
}

/// Keeps the newest `keep` checkpoints (0 = keep all).
pub fn prune(run_dir: &Path, keep: usize) -> anyhow::Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let all = list(run_dir)?;
    let excess = all.len().saturating_sub(keep);
    for (_, path) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&path)
            .with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill_ok(dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir.join("attacker"))?;
        std::fs::write(dir.join("attacker/model.safetensors"), b"w")?;
        Ok(())
    }

    #[test]
    fn write_list_latest_prune() {
        let run = tempfile::tempdir().unwrap();
        for step in [2, 4, 6] {
            let s = TrainState::new(step, 7, 0, 0, &[1, 2, 255]);
            let dir = write(run.path(), &s, fill_ok).unwrap();
            assert!(dir.ends_with(format!("step-{step:06}")));
        }
        let latest_dir = latest(run.path()).unwrap().unwrap();
        let state = TrainState::read(&latest_dir).unwrap();
        assert_eq!(state.step, 6);
        assert_eq!(state.curriculum_state().unwrap(), vec![1, 2, 255]);
        prune(run.path(), 2).unwrap();
        let steps: Vec<u64> = list(run.path()).unwrap().into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, vec![4, 6]);
    }

    #[test]
    fn failed_write_leaves_previous_checkpoint() {
        let run = tempfile::tempdir().unwrap();
        write(run.path(), &TrainState::new(1, 0, 0, 0, &[]), fill_ok).unwrap();
        let err = write(run.path(), &TrainState::new(2, 0, 0, 0, &[]), |dir| {
            fill_ok(dir)?;
            bail!("disk full")
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("disk full"));
        // The half-written folder is not a checkpoint, and is cleaned on resume.
        assert_eq!(list(run.path()).unwrap().len(), 1);
        let latest_dir = latest(run.path()).unwrap().unwrap();
        assert!(latest_dir.ends_with("step-000001"));
        assert!(!run.path().join("checkpoints/.tmp-step-000002").exists());
    }

    #[test]
    fn rewriting_a_step_replaces_it() {
        let run = tempfile::tempdir().unwrap();
        write(run.path(), &TrainState::new(3, 0, 1, 0, &[]), fill_ok).unwrap();
        write(run.path(), &TrainState::new(3, 0, 2, 0, &[]), fill_ok).unwrap();
        let s = TrainState::read(&latest(run.path()).unwrap().unwrap()).unwrap();
        assert_eq!(s.total_failures, 2);
    }
}
