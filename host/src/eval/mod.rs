//! Measuring what the game trains: `advgame-host eval` (any targets on any labelled prompts,
//! judged by any judge plugin) and `advgame-host redteam` (a trained attacker against a
//! target). `train`'s validation is [`score`] too, so its `val/...` numbers and an eval's
//! numbers come from one implementation.
//!
//! - [`dataset`]: seed JSONL or any JSONL/CSV with prompt and label columns mapped by flags.
//! - [`score`]: answer prompts, score answers under named rubrics, the rubric rate metrics.
//! - [`run`]: targets (anything that yields an `llm::Generator`), batches, resume.
//! - [`responses`]: the append-only, fsynced `responses.jsonl` that makes resume possible.
//! - [`stats`]: bootstrap intervals, the exact McNemar test, distinct-answer share.
//! - [`report`]: `report.json` and `report.md`.
//! - [`plot`]: PNG bar charts with intervals.
//! - [`redteam`]: ASR@1 / ASR@K of attacker rewrites against the direct baseline.

pub mod dataset;
pub mod plot;
pub mod redteam;
pub mod report;
pub mod responses;
pub mod run;
pub mod score;
pub mod stats;
