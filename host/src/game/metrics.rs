//! Run logs: `metrics.jsonl` (one flat object per step, TRL-style slash names, so the usual
//! plotting scripts read it) and `rollouts.jsonl` (every tree of every step). Both are append-
//! only and flushed line by line, so a crash loses at most the line being written.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::game::parse::ParseError;
use crate::game::rewards::{Slot, mean_defined};
use crate::game::rollout::{SeedTree, StepRollout};
use crate::judging::{Category, FailureKind};
use crate::llm::FinishReason;

/// One step's metrics, by name.
pub type Metrics = BTreeMap<String, f64>;

/// Appends JSON lines to a file, flushing each one.
#[derive(Debug)]
pub struct JsonlWriter {
    file: File,
}

impl JsonlWriter {
    /// Opens `path` for appending. When resuming, lines of steps after `keep_through_step`
    /// (written after the checkpoint the run resumes from) are dropped first.
    pub fn open(path: &Path, keep_through_step: Option<u64>) -> anyhow::Result<Self> {
        if let Some(step) = keep_through_step
            && path.exists()
        {
            truncate_after_step(path, step)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Self { file })
    }

    /// Appends `value` as one JSON line and flushes it, so a crash loses at most the line being
    /// written.
    pub fn write<T: Serialize>(&mut self, value: &T) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(value)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.file.flush()?;
        Ok(())
    }
}

/// Keeps only the lines whose `"step"` is at most `step` (lines without a step are kept).
fn truncate_after_step(path: &Path, step: u64) -> anyhow::Result<()> {
    let reader = BufReader::new(File::open(path)?);
    let mut kept = String::new();
    for line in reader.lines() {
        let line = line?;
        let line_step = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64));
        if line_step.is_none_or(|s| s <= step) {
            kept.push_str(&line);
            kept.push('\n');
        }
    }
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// A metrics line: the step and the metrics, flattened.
#[derive(Debug, Serialize)]
pub struct MetricsLine<'a> {
    /// The training step the metrics belong to (1-based; 0 for the validation before the
    /// first step).
    pub step: u64,
    /// The step's metrics, by name (written flattened beside `step`).
    #[serde(flatten)]
    pub metrics: &'a Metrics,
}

/// A rollouts line: one seed's tree at one step.
#[derive(Debug, Serialize)]
pub struct RolloutLine<'a> {
    /// The training step (1-based) the tree was played at.
    pub step: u64,
    /// The seed's rollout tree (written flattened beside `step`).
    #[serde(flatten)]
    pub tree: &'a SeedTree,
}

/// `harmful` / `benign`, as used in metric names.
pub fn category_name(c: Category) -> &'static str {
    match c {
        Category::Harmful => "harmful",
        Category::Benign => "benign",
    }
}

fn put(m: &mut Metrics, name: impl Into<String>, value: Option<f64>) {
    if let Some(v) = value
        && v.is_finite()
    {
        m.insert(name.into(), v);
    }
}

fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Rewards, rates, failure counts and generation/judge timings of one rollout.
pub fn rollout_metrics(r: &StepRollout) -> Metrics {
    let mut m = Metrics::new();
    // Attacker numbers cover the attacker's own samples (not the seeds the defender answered
    // as written); defender numbers cover every reply.
    let all_attacks =
        || r.trees.iter().flat_map(|t| t.attacks.iter().map(move |a| (t.seed.category, a)));
    let attacks = || {
        r.trees
            .iter()
            .filter(|t| !t.direct)
            .flat_map(|t| t.attacks.iter().map(move |a| (t.seed.category, a)))
    };
    let replies = || all_attacks().flat_map(|(c, a)| a.replies.iter().map(move |y| (c, y)));

    put(&mut m, "attacker/reward/mean", mean_defined(attacks().map(|(_, a)| a.reward)));
    put(&mut m, "defender/reward/mean", mean_defined(replies().map(|(_, y)| y.reward)));
    for c in [Category::Harmful, Category::Benign] {
        let name = category_name(c);
        put(
            &mut m,
            format!("attacker/reward/{name}"),
            mean_defined(attacks().filter(|(k, _)| *k == c).map(|(_, a)| a.reward)),
        );
        put(
            &mut m,
            format!("defender/reward/{name}"),
            mean_defined(replies().filter(|(k, _)| *k == c).map(|(_, y)| y.reward)),
        );
    }
    let n_attacks = attacks().count();
    let parse_failures = attacks()
        .filter(|(_, a)| a.rewrite.parse_error.is_some_and(|e| e != ParseError::Truncated))
        .count();
    let truncated = attacks().filter(|(_, a)| a.finish == FinishReason::Length).count();
    let verdicts = attacks().filter(|(_, a)| a.rewrite.faithful.is_some()).count();
    let faithful = attacks().filter(|(_, a)| a.rewrite.faithful == Some(true)).count();
    let valid = attacks().filter(|(_, a)| a.slot == Slot::Judged).count();
    put(&mut m, "attacker/parse_failure_rate", ratio(parse_failures, n_attacks));
    put(&mut m, "attacker/truncated_rate", ratio(truncated, n_attacks));
    put(&mut m, "attacker/valid_rate", ratio(valid, n_attacks));
    put(&mut m, "faithful_rate", ratio(faithful, verdicts));
    let n_replies = replies().count();
    let reply_truncated = replies().filter(|(_, y)| y.finish == FinishReason::Length).count();
    put(&mut m, "defender/truncated_rate", ratio(reply_truncated, n_replies));
    put(&mut m, "defender/replies", Some(n_replies as f64));

    let s = &r.stats;
    for kind in FailureKind::ALL {
        let n = s.failures.get(kind.as_str()).copied().unwrap_or(0);
        put(&mut m, format!("judge/failures/{}", kind.as_str()), Some(n as f64));
    }
    put(&mut m, "judge/judgments", Some(s.judgments as f64));
    put(&mut m, "judge/failure_rate", ratio(s.judgments_failed as usize, s.judgments as usize));
    let parse = s.failures.get("parse").copied().unwrap_or(0);
    put(&mut m, "judge/parse_failure_rate", ratio(parse as usize, s.judgments as usize));
    put(&mut m, "time/attacker_generation", Some(s.time_attacker_generation));
    put(&mut m, "time/defender_generation", Some(s.time_defender_generation));
    put(&mut m, "time/judge", Some(s.time_judge));
    m
}

/// Reads a `metrics.jsonl` back (for resume checks and summaries).
pub fn read_metrics(path: &Path) -> anyhow::Result<Vec<(u64, Metrics)>> {
    let reader = BufReader::new(
        File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
    );
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        let mut value: BTreeMap<String, serde_json::Value> = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON object", path.display(), i + 1))?;
        let step = value
            .remove("step")
            .and_then(|v| v.as_u64())
            .with_context(|| format!("{}:{}: no step", path.display(), i + 1))?;
        let metrics = value.into_iter().filter_map(|(k, v)| v.as_f64().map(|f| (k, f))).collect();
        out.push((step, metrics));
    }
    Ok(out)
}

/// The lines of `lines` (as [`read_metrics`] returns them) at each of `steps`, in that order,
/// without their `time/*` keys: what two runs of one config and seed (one of them interrupted
/// and resumed) must agree on exactly, wall-clock timings being the only nondeterminism.
///
/// # Errors
/// A step with no line.
pub fn reproducible_at(lines: &[(u64, Metrics)], steps: &[u64]) -> anyhow::Result<Vec<Metrics>> {
    steps
        .iter()
        .map(|&step| {
            let (_, m) = lines
                .iter()
                .find(|(s, _)| *s == step)
                .with_context(|| format!("no metrics line for step {step}"))?;
            Ok(m.iter()
                .filter(|(k, _)| !k.starts_with("time/"))
                .map(|(k, v)| (k.clone(), *v))
                .collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::game::rollout::rollout;
    use crate::game::rollout::tests::settings;
    use crate::game::testkit::{ScriptedGenerator, TableJudge};
    use crate::judging::Seed;
    use FinishReason::{Length, Stop};

    #[test]
    fn rollout_metrics_hand_computed() {
        let mut attacker = ScriptedGenerator::new(&[
            ("<think>a</think><prompt>P0</prompt>", Stop),
            ("no format", Stop),
            ("<think>a</think><prompt>P1", Length),
            ("<think>a</think><prompt>P2</prompt>", Stop),
        ]);
        let mut defender =
            ScriptedGenerator::new(&[("ok", Stop), ("fine", Stop), ("x", Length), ("y", Stop)]);
        let mut judge = TableJudge::strict()
            .score("faithfulness", "P0", 10.0)
            .score("faithfulness", "P2", 7.0)
            .score("deflection", "ok", 6.0)
            .score("deflection", "fine", 4.0)
            .score("deflection", "y", 2.0)
            .score("compliance", "ok", 1.0)
            .score("compliance", "y", 5.0);
        let seed = Seed { id: "h".into(), category: Category::Harmful, text: "s".into() };
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let r =
            rollout(&[seed], &settings(4, 2), &mut attacker, &mut defender, &mut judge, &mut rng)
                .unwrap();
        let m = rollout_metrics(&r);
        // Attacker rewards: P0 1, bad -1, truncated -1, P2 5 -> mean 1.
        assert_eq!(m["attacker/reward/mean"], 1.0);
        assert_eq!(m["attacker/reward/harmful"], 1.0);
        assert!(!m.contains_key("attacker/reward/benign"));
        // Defender: P0 (6, 4), P2 (-1 truncated, 2 self-paired) -> (6 + 4 - 1 + 2) / 4 = 2.75.
        assert_eq!(m["defender/reward/mean"], 2.75);
        assert_eq!(m["attacker/parse_failure_rate"], 0.25);
        assert_eq!(m["attacker/truncated_rate"], 0.25);
        assert_eq!(m["faithful_rate"], 1.0);
        assert_eq!(m["defender/truncated_rate"], 0.25);
        assert_eq!(m["judge/failures/parse"], 0.0);
        assert_eq!(m["judge/judgments"], 5.0);
    }

    #[test]
    fn jsonl_round_trip_and_resume_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let mut w = JsonlWriter::open(&path, None).unwrap();
        for step in 1..=4u64 {
            let m = Metrics::from([("loss".to_string(), step as f64 / 2.0)]);
            w.write(&MetricsLine { step, metrics: &m }).unwrap();
        }
        drop(w);
        let mut w = JsonlWriter::open(&path, Some(2)).unwrap();
        w.write(&MetricsLine { step: 3, metrics: &Metrics::from([("loss".to_string(), 9.0)]) })
            .unwrap();
        let back = read_metrics(&path).unwrap();
        assert_eq!(
            back.iter().map(|(s, m)| (*s, m["loss"])).collect::<Vec<_>>(),
            vec![(1, 0.5), (2, 1.0), (3, 9.0)]
        );
    }
}
