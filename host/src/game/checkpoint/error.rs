//! [`CheckpointError`]: why a checkpoint cannot be read, listed or resumed from, naming the
//! file or folder concerned.

use std::path::{Path, PathBuf};

#[cfg(doc)]
use super::FORMAT;

/// Why a checkpoint cannot be read, listed or resumed from. Every variant names the file or
/// folder concerned, so callers and tests match on what went wrong, not on wording; through
/// `anyhow` it is reached with `err.downcast_ref::<CheckpointError>()`. (The model folders
/// inside a checkpoint fail with [`crate::model::LoadError`], which names its path too.)
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The checkpoint folder does not exist, or is not a folder.
    #[error("{}: no such checkpoint folder", path.display())]
    NotFound {
        /// The folder asked for.
        path: PathBuf,
    },
    /// A step folder lacks a file or folder every complete checkpoint holds: it was not
    /// written by this program, or was altered after the atomic rename.
    #[error(
        "{}: incomplete checkpoint: {missing} is missing (a complete step folder holds \
         state.json, attacker/, defender/ and both optimizer-*.safetensors)",
        dir.display()
    )]
    Incomplete {
        /// The step folder.
        dir: PathBuf,
        /// The missing entry, relative to `dir`.
        missing: String,
    },
    /// A file or folder could not be read, written, listed or removed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `state.json` is not valid JSON, or lacks a field.
    #[error("{}:{line}:{column}: invalid checkpoint state: {source}", path.display())]
    Json {
        /// The `state.json` file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// `serde_json`'s error.
        #[source]
        source: serde_json::Error,
    },
    /// `state.json` was written by a build with another checkpoint format.
    #[error("{}: checkpoint format {found} (this build reads {supported})", path.display())]
    Version {
        /// The `state.json` file.
        path: PathBuf,
        /// The format the file declares.
        found: u32,
        /// The format this build reads ([`FORMAT`]).
        supported: u32,
    },
    /// A field of `state.json` has a value that cannot be used.
    #[error("{}: field `{field}`: {message}", path.display())]
    Field {
        /// The `state.json` file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A safetensors state file (optimiser state, EMA masters) cannot be parsed.
    #[error("{}: not a readable safetensors file: {message}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// libtorch's message.
        message: String,
    },
    /// A tensor of a state file does not fit the model being resumed: unknown name, another
    /// shape or dtype, or its companion tensor missing.
    #[error("{}: tensor `{tensor}`: {message}", path.display())]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor's name in the file.
        tensor: String,
        /// What does not fit, and what was expected.
        message: String,
    },
}

impl CheckpointError {
    /// The file or folder the error is about.
    pub fn path(&self) -> &Path {
        match self {
            CheckpointError::NotFound { path }
            | CheckpointError::Io { path, .. }
            | CheckpointError::Json { path, .. }
            | CheckpointError::Version { path, .. }
            | CheckpointError::Field { path, .. }
            | CheckpointError::Safetensors { path, .. }
            | CheckpointError::Tensor { path, .. } => path,
            CheckpointError::Incomplete { dir, .. } => dir,
        }
    }

    /// An [`CheckpointError::Io`] about `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        CheckpointError::Io { path: path.to_path_buf(), source }
    }

    /// A [`CheckpointError::Tensor`] about `tensor` of `path`.
    pub fn tensor(path: &Path, tensor: impl Into<String>, message: impl Into<String>) -> Self {
        CheckpointError::Tensor {
            path: path.to_path_buf(),
            tensor: tensor.into(),
            message: message.into(),
        }
    }
}
