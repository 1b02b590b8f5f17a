//! `responses.jsonl`: one line per (target, prompt) with the answer and its rubric scores,
//! appended a batch at a time and synced to disk, so an interrupted eval resumes where it
//! stopped: on the next run, every (target, id) already in the file is skipped.
//!
//! A crash can leave a partial last line; it is dropped (with a warning) when the file is
//! reopened. Any other unreadable line is an error naming the line: the file is the eval's
//! only record, so it is never silently rewritten.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use crate::eval::score::ScoredAnswer;

/// One line of `responses.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseRecord {
    /// The target's name (see `crate::eval::run::Target`).
    pub target: String,
    /// The prompt's id (`crate::eval::dataset::EvalItem::id`).
    pub id: String,
    /// The prompt's group (`--group-field` value), when the data has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The prompt as sent to the target.
    pub prompt: String,
    /// The answer, its finish reason and its rubric scores, flattened into the same JSON
    /// object.
    #[serde(flatten)]
    pub answer: ScoredAnswer,
}

/// The append-only log of one eval's answers.
#[derive(Debug)]
pub struct ResponseLog {
    path: PathBuf,
    file: File,
    records: Vec<ResponseRecord>,
    done: HashSet<(String, String)>,
}

impl ResponseLog {
    /// Opens (or creates) `path` and reads what earlier runs wrote.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let mut records = Vec::new();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let complete = match text.rfind('\n') {
                Some(end) => end + 1,
                None => 0,
            };
            if complete < text.len() {
                tracing::warn!(
                    "{}: dropping an incomplete last line (an interrupted write)",
                    path.display()
                );
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(complete as u64)?;
                f.sync_all()?;
            }
            for (i, line) in text[..complete].lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let r: ResponseRecord = serde_json::from_str(line).map_err(|e| {
                    anyhow!(
                        "{}:{}: not a response record ({e}); move the file away to start over",
                        path.display(),
                        i + 1
                    )
                })?;
                records.push(r);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let done = records.iter().map(|r| (r.target.clone(), r.id.clone())).collect();
        Ok(Self { path: path.to_path_buf(), file, records, done })
    }

    /// The `responses.jsonl` file this log appends to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `target` already answered prompt `id` (in this or an earlier run), so a resumed
    /// eval skips it.
    pub fn is_done(&self, target: &str, id: &str) -> bool {
        self.done.contains(&(target.to_string(), id.to_string()))
    }

    /// Every record, earlier runs' first.
    pub fn records(&self) -> &[ResponseRecord] {
        &self.records
    }

    /// Appends one batch and syncs it to disk before returning.
    pub fn append(&mut self, batch: Vec<ResponseRecord>) -> anyhow::Result<()> {
        let mut text = String::new();
        for r in &batch {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        self.file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        for r in batch {
            self.done.insert((r.target.clone(), r.id.clone()));
            self.records.push(r);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::Category;
    use crate::llm::FinishReason;

    fn record(target: &str, id: &str) -> ResponseRecord {
        ResponseRecord {
            target: target.into(),
            id: id.into(),
            group: None,
            prompt: "p".into(),
            answer: ScoredAnswer {
                category: Category::Benign,
                response: "r".into(),
                finish: FinishReason::Stop,
                scores: [("refusal".to_string(), 1.0)].into(),
                failures: Default::default(),
            },
        }
    }

    #[test]
    fn appends_resumes_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("responses.jsonl");
        let mut log = ResponseLog::open(&path).unwrap();
        log.append(vec![record("a", "1"), record("a", "2")]).unwrap();
        drop(log);
        // A torn write after the batch.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"target\":\"a\",\"id\":\"3\",\"pro")
            .unwrap();
        let mut log = ResponseLog::open(&path).unwrap();
        assert!(log.is_done("a", "1") && log.is_done("a", "2"));
        assert!(!log.is_done("a", "3") && !log.is_done("b", "1"));
        log.append(vec![record("a", "3")]).unwrap();
        drop(log);
        let log = ResponseLog::open(&path).unwrap();
        assert_eq!(log.records().len(), 3);
        assert_eq!(log.records()[2], record("a", "3"));

        std::fs::write(&path, "{\"target\":\"a\"}\n").unwrap();
        let err = ResponseLog::open(&path).unwrap_err().to_string();
        assert!(err.contains("responses.jsonl:1"), "{err}");
    }
}
