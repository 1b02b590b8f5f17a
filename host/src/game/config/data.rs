//! `[data]`: the seed files of training and validation.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Seed requests: JSONL files of `{"id", "category", "text"}`, one file per category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Data {
    /// Training seeds of category harmful (JSONL).
    pub harmful: PathBuf,
    /// Training seeds of category benign (JSONL).
    pub benign: PathBuf,
    /// Held-out seeds for validation (sent straight to the defender); `""` = none.
    #[serde(with = "super::empty_is_none")]
    pub harmful_val: Option<PathBuf>,
    /// Held-out benign seeds (JSONL); `""` = none.
    #[serde(with = "super::empty_is_none")]
    pub benign_val: Option<PathBuf>,
}

impl Default for Data {
    fn default() -> Self {
        Self {
            harmful: PathBuf::from("data/seeds/harmful_train.jsonl"),
            benign: PathBuf::from("data/seeds/benign_train.jsonl"),
            harmful_val: Some(PathBuf::from("data/seeds/harmful_val.jsonl")),
            benign_val: Some(PathBuf::from("data/seeds/benign_val.jsonl")),
        }
    }
}
