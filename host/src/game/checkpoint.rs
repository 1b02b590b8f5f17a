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

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

mod error;

pub use error::CheckpointError;

/// The `state.json` format this build writes and reads.
pub const FORMAT: u32 = 1;
const STATE_FILE: &str = "state.json";

/// Test hook: when set to a step number, the process aborts in the middle of writing that
/// step's checkpoint (after the model files, before `state.json` and the rename), as a kill
/// would. Used by the checkpoint-safety integration test.
pub const ABORT_ENV: &str = "ADVGAME_TEST_ABORT_IN_CHECKPOINT";

/// What `state.json` holds: where the run stands, beyond the model and optimiser files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The checkpoint format ([`FORMAT`]).
    pub format: u32,
    /// Completed steps.
    pub step: u64,
    /// The run's `algorithm.seed`: with `step`, the whole RNG state.
    pub seed: u64,
    /// Failed judgments since the run started.
    pub total_failures: u64,
    /// Failed curriculum calls since the run started.
    pub curriculum_failures: u64,
    /// The curriculum plugin's `save-state` bytes, hex.
    pub curriculum_state: String,
}

impl TrainState {
    /// The state of step `step` of a run with seed `seed`; `curriculum` is the curriculum's
    /// `save-state` bytes.
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

    /// Reads `checkpoint/state.json`.
    ///
    /// # Errors
    /// [`CheckpointError::NotFound`] (no such folder), [`CheckpointError::Incomplete`] (no
    /// `state.json`), [`CheckpointError::Io`], [`CheckpointError::Json`] (with line and
    /// column), [`CheckpointError::Version`], or [`CheckpointError::Field`] for a
    /// `curriculum_state` that is not hex.
    pub fn read(checkpoint: &Path) -> Result<Self, CheckpointError> {
        if !checkpoint.is_dir() {
            return Err(CheckpointError::NotFound { path: checkpoint.to_path_buf() });
        }
        let path = checkpoint.join(STATE_FILE);
        if !path.exists() {
            return Err(CheckpointError::Incomplete {
                dir: checkpoint.to_path_buf(),
                missing: STATE_FILE.into(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| CheckpointError::io(&path, e))?;
        // The format first, so a file of another format is reported as such even when its
        // other fields differ.
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&text)
            && let Some(found) = map.get("format").and_then(serde_json::Value::as_u64)
            && found != u64::from(FORMAT)
        {
            return Err(CheckpointError::Version {
                path,
                found: u32::try_from(found).unwrap_or(u32::MAX),
                supported: FORMAT,
            });
        }
        let state: Self = serde_json::from_str(&text).map_err(|source| CheckpointError::Json {
            line: source.line(),
            column: source.column(),
            path: path.clone(),
            source,
        })?;
        state.curriculum_bytes(&path)?;
        Ok(state)
    }

    /// The curriculum's `save-state` bytes.
    ///
    /// # Errors
    /// [`CheckpointError::Field`] when `curriculum_state` is not hex (the path is the
    /// `state.json` of `checkpoint`).
    pub fn curriculum_state(&self, checkpoint: &Path) -> Result<Vec<u8>, CheckpointError> {
        self.curriculum_bytes(&checkpoint.join(STATE_FILE))
    }

    fn curriculum_bytes(&self, state_file: &Path) -> Result<Vec<u8>, CheckpointError> {
        hex::decode(&self.curriculum_state).map_err(|e| CheckpointError::Field {
            path: state_file.to_path_buf(),
            field: "curriculum_state",
            message: format!("expected the curriculum's state as hex: {e}"),
        })
    }
}

/// Checks that a step folder holds what every complete checkpoint holds (`state.json`, both
/// players' folders and optimiser states), before any model is loaded from it.
///
/// # Errors
/// [`CheckpointError::NotFound`] or [`CheckpointError::Incomplete`] naming the first entry
/// missing.
pub fn check_complete(checkpoint: &Path) -> Result<(), CheckpointError> {
    if !checkpoint.is_dir() {
        return Err(CheckpointError::NotFound { path: checkpoint.to_path_buf() });
    }
    let dirs = player_dirs(checkpoint);
    let (fa, fd) = player_files(checkpoint);
    let required = [
        (checkpoint.join(STATE_FILE), false),
        (dirs.attacker, true),
        (dirs.defender, true),
        (fa.optimizer, false),
        (fd.optimizer, false),
    ];
    for (path, dir) in required {
        let present = if dir { path.is_dir() } else { path.is_file() };
        if !present {
            let name = path.strip_prefix(checkpoint).unwrap_or(&path).display().to_string();
            return Err(CheckpointError::Incomplete {
                dir: checkpoint.to_path_buf(),
                missing: if dir { format!("{name}/") } else { name },
            });
        }
    }
    Ok(())
}

/// The model folders inside a checkpoint (Hugging Face layout; adapters only for LoRA runs).
#[derive(Debug, Clone)]
pub struct PlayerDirs {
    /// `attacker/`: the attacker's current weights.
    pub attacker: PathBuf,
    /// `defender/`: the defender's current weights.
    pub defender: PathBuf,
    /// `attacker-ema/`: the attacker's EMA copy (when `algorithm.ema_decay` keeps one).
    pub attacker_ema: PathBuf,
    /// `defender-ema/`: the defender's EMA copy.
    pub defender_ema: PathBuf,
}

/// The model folders of the checkpoint folder `checkpoint`.
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
///
/// # Errors
/// `fill`'s error (with the folder as context), or a [`CheckpointError::Io`] naming the file
/// or folder that could not be written, synced or renamed.
pub fn write(
    run_dir: &Path,
    state: &TrainState,
    fill: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| CheckpointError::Io { path, source: e }
    };
    let root = root(run_dir);
    std::fs::create_dir_all(&root).map_err(io(&root))?;
    let name = name_of(state.step);
    let tmp = root.join(format!(".tmp-{name}"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    fill(&tmp).with_context(|| format!("writing checkpoint {}", tmp.display()))?;
    if std::env::var(ABORT_ENV).ok().and_then(|s| s.parse::<u64>().ok()) == Some(state.step) {
        eprintln!("{ABORT_ENV}: aborting inside the checkpoint of step {}", state.step);
        std::process::abort();
    }
    let state_path = tmp.join(STATE_FILE);
    std::fs::write(&state_path, serde_json::to_string_pretty(state)? + "\n")
        .map_err(io(&state_path))?;
    sync_tree(&tmp)?;
    let final_dir = root.join(&name);
    if final_dir.exists() {
        // Re-saving a step (a resumed run) replaces the old copy; the new one is complete.
        let old = root.join(format!(".old-{name}"));
        std::fs::rename(&final_dir, &old).map_err(io(&final_dir))?;
        std::fs::rename(&tmp, &final_dir).map_err(io(&tmp))?;
        std::fs::remove_dir_all(&old).map_err(io(&old))?;
    } else {
        std::fs::rename(&tmp, &final_dir).map_err(io(&tmp))?;
    }
    if let Ok(d) = std::fs::File::open(&root) {
        let _ = d.sync_all();
    }
    Ok(final_dir)
}

/// Flushes every file under `dir` to disk so the rename never exposes unwritten data.
fn sync_tree(dir: &Path) -> Result<(), CheckpointError> {
    for entry in std::fs::read_dir(dir).map_err(|e| CheckpointError::io(dir, e))? {
        let path = entry.map_err(|e| CheckpointError::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| CheckpointError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Complete checkpoints of a run (step folders holding `state.json`), oldest first.
///
/// # Errors
/// [`CheckpointError::Io`] when the `checkpoints/` folder cannot be listed.
pub fn list(run_dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let root = root(run_dir);
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(&root).map_err(|e| CheckpointError::io(&root, e))? {
        let path = entry.map_err(|e| CheckpointError::io(&root, e))?.path();
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
///
/// # Errors
/// [`CheckpointError::Io`] naming the folder that could not be listed or removed.
pub fn latest(run_dir: &Path) -> Result<Option<PathBuf>, CheckpointError> {
    let root = root(run_dir);
    if root.exists() {
        for entry in std::fs::read_dir(&root).map_err(|e| CheckpointError::io(&root, e))? {
            let path = entry.map_err(|e| CheckpointError::io(&root, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(".tmp-") || name.starts_with(".old-") {
                tracing::warn!("removing an interrupted checkpoint write: {}", path.display());
                std::fs::remove_dir_all(&path).map_err(|e| CheckpointError::io(&path, e))?;
            }
        }
    }
    Ok(list(run_dir)?.pop().map(|(_, p)| p))
}

/// Keeps the newest `keep` checkpoints (0 = keep all).
///
/// # Errors
/// [`CheckpointError::Io`] naming the folder that could not be listed or removed.
pub fn prune(run_dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    if keep == 0 {
        return Ok(());
    }
    let all = list(run_dir)?;
    let excess = all.len().saturating_sub(keep);
    for (_, path) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&path).map_err(|e| CheckpointError::io(&path, e))?;
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
        assert_eq!(state.curriculum_state(&latest_dir).unwrap(), vec![1, 2, 255]);
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
            anyhow::bail!("disk full")
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
    fn bad_checkpoints_are_typed_errors_naming_the_path() {
        let run = tempfile::tempdir().unwrap();
        let missing = run.path().join("checkpoints/step-000009");
        let err = TrainState::read(&missing).unwrap_err();
        assert!(matches!(&err, CheckpointError::NotFound { path } if path == &missing), "{err}");
        assert_eq!(err.path(), missing);

        let dir = write(run.path(), &TrainState::new(1, 0, 0, 0, &[7]), fill_ok).unwrap();
        let state_file = dir.join(STATE_FILE);
        // A step folder without its players or optimiser states is incomplete.
        let err = check_complete(&dir).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Incomplete { dir: d, missing } if d == &dir
                && missing == "defender/"),
            "{err}"
        );
        std::fs::remove_file(&state_file).unwrap();
        let err = TrainState::read(&dir).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Incomplete { missing, .. } if missing == STATE_FILE),
            "{err}"
        );
        // Malformed JSON: the line is named.
        std::fs::write(&state_file, "{\n  \"format\": 1,\n  \"step\": oops\n}\n").unwrap();
        let err = TrainState::read(&dir).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Json { path, line: 3, .. } if path == &state_file),
            "{err}"
        );
        assert!(err.to_string().starts_with(&format!("{}:3:", state_file.display())), "{err}");
        // Another format.
        let mut other = serde_json::to_value(TrainState::new(1, 0, 0, 0, &[])).unwrap();
        other["format"] = 99.into();
        std::fs::write(&state_file, other.to_string()).unwrap();
        let err = TrainState::read(&dir).unwrap_err();
        assert!(
            matches!(err, CheckpointError::Version { found: 99, supported: FORMAT, .. }),
            "{err}"
        );
        // A curriculum state that is not hex.
        let mut bad = serde_json::to_value(TrainState::new(1, 0, 0, 0, &[])).unwrap();
        bad["curriculum_state"] = "zz".into();
        std::fs::write(&state_file, bad.to_string()).unwrap();
        let err = TrainState::read(&dir).unwrap_err();
        assert!(
            matches!(&err, CheckpointError::Field { path, field: "curriculum_state", .. }
                if path == &state_file),
            "{err}"
        );
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
