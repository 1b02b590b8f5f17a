//! Typed errors of loading a model folder: every variant names the file (or folder) it is
//! about, and configuration errors name the field, so callers and tests can match on what
//! went wrong instead of on wording.
//!
//! [`crate::model::CausalLm::load`] and [`crate::model::ChatModel::load`] return
//! `anyhow::Result` (the game and CLI work in `anyhow`); the root cause of their errors is a
//! [`LoadError`], reachable with `err.downcast_ref::<LoadError>()`.

#![warn(missing_docs)]

use std::path::PathBuf;

/// A `config.json`-level problem: which field, and what is wrong with it. Produced by the
/// config, RoPE and family modules (which do not know the file's path); [`LoadError::Field`]
/// adds the path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct FieldError {
    /// The field as a JSON path (`rope_scaling.rope_type`, `layer_types[0]`, `.` for the
    /// whole object).
    pub field: String,
    /// What is wrong with the value and what was expected.
    pub message: String,
}

impl FieldError {
    /// A problem with `field` (a JSON path), described by `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// `Err(FieldError::new(field, format!(...)))` in one line.
macro_rules! field_err {
    ($field:expr, $($fmt:tt)+) => {
        return Err($crate::model::error::FieldError::new($field, format!($($fmt)+)))
    };
}
pub(crate) use field_err;

/// Why a model folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file exists (or must exist) but could not be read.
    #[error("cannot read {what} {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file is for (`model config`, `weight file`, ...).
        what: &'static str,
        /// The operating system's error (in the message, not a `source()`: shown once).
        cause: std::io::Error,
    },
    /// A required file (or entry) is missing.
    #[error("{}: {what}", path.display())]
    Missing {
        /// The folder or file looked for.
        path: PathBuf,
        /// What is missing (and where else it was looked for).
        what: String,
    },
    /// A JSON file does not parse.
    #[error("{}: invalid JSON: {cause}", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// `serde_json`'s error, with line and column (in the message, not a `source()`).
        cause: serde_json::Error,
    },
    /// A field of a JSON file (`config.json`, `generation_config.json`) that this engine
    /// cannot honour: an unsupported value, a wrong type, or settings that contradict each
    /// other. Refused rather than run differently from transformers.
    #[error("{}: {error}", path.display())]
    Field {
        /// The JSON file.
        path: PathBuf,
        /// The field and what is wrong with it.
        error: FieldError,
    },
    /// A weight file is malformed or truncated, or a tensor is missing, unexpected or has
    /// another shape or dtype than `config.json` implies.
    #[error("{}: {message}", path.display())]
    Weights {
        /// The weight file (or the folder, when no weight file is found).
        path: PathBuf,
        /// The tensor concerned, when there is one.
        tensor: Option<String>,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The tokenizer cannot be loaded or does not fit the model.
    #[error("{}: {message}", path.display())]
    Tokenizer {
        /// The tokenizer file (or the folder).
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The requested dtype is not one the engine computes in.
    #[error("model dtype {0:?} is not supported (use f32, bf16 or f16)")]
    Dtype(tch::Kind),
}

impl LoadError {
    /// The file or folder the error is about (`None` for [`LoadError::Dtype`]).
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            LoadError::Read { path, .. }
            | LoadError::Missing { path, .. }
            | LoadError::Json { path, .. }
            | LoadError::Field { path, .. }
            | LoadError::Weights { path, .. }
            | LoadError::Tokenizer { path, .. } => Some(path),
            LoadError::Dtype(_) => None,
        }
    }

    /// The [`LoadError`] at the root of an `anyhow` error from a `load` function.
    pub fn of(err: &anyhow::Error) -> Option<&LoadError> {
        err.downcast_ref::<LoadError>()
    }
}
