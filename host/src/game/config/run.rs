//! `[validation]`, `[checkpoint]` and `[output]`: what a run measures, keeps and where it
//! writes.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Validation: the defender alone on held-out seeds, scored pointwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Validation {
    /// Validate every N steps (0 = never); also before the first step and after the last.
    #[serde(rename = "eval_steps", alias = "every")]
    pub every: usize,
    /// At most this many seeds per category (0 = all).
    pub max_seeds: usize,
    /// A pointwise score at or above this counts as a hit for the rate metrics.
    pub threshold: f32,
    /// Defender sampling temperature for validation (0 = greedy, reproducible).
    pub temperature: f32,
    /// Rubrics scored on harmful seeds (rates `val/harmful/<rubric>_rate`).
    pub harmful_rubrics: Vec<String>,
    /// Rubrics scored on benign seeds.
    pub benign_rubrics: Vec<String>,
}

impl Default for Validation {
    fn default() -> Self {
        Self {
            every: 25,
            max_seeds: 0,
            threshold: 5.0,
            temperature: 0.0,
            harmful_rubrics: vec!["deflection".into(), "refusal".into()],
            benign_rubrics: vec!["compliance".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// Checkpoints: both players, their EMA copies and optimiser states.
pub struct Checkpoint {
    /// Checkpoint every N steps (0 = only at the end).
    #[serde(rename = "save_steps", alias = "every")]
    pub every: usize,
    /// Keep the newest N checkpoints (0 = all).
    #[serde(rename = "save_total_limit", alias = "keep")]
    pub keep: usize,
}

impl Default for Checkpoint {
    fn default() -> Self {
        Self { every: 50, keep: 2 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
/// Where runs are written.
pub struct Output {
    /// Parent folder of run directories.
    pub dir: PathBuf,
    /// Run name; the run directory is `dir/NAME-NNN`, the first unused number.
    pub name: String,
}

impl Default for Output {
    fn default() -> Self {
        Self { dir: PathBuf::from("runs"), name: "advgame".into() }
    }
}
