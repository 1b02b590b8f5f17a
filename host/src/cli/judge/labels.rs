//! How well a judge matches human labels: when input lines of `advgame-host judge` carry a
//! `label`, each judged item's prediction is compared with it, per group (comparisons or
//! assessments of one rubric) and overall, as accuracy, Cohen's kappa and a confusion
//! matrix. This is how someone writing a judge plugin learns how good it is.
//!
//! Predictions:
//! - a comparison predicts `a` or `b` (the higher score), or `tie` when the scores are within
//!   `tie_margin`; its label must be one of `a`, `b`, `tie` (any case);
//! - an assessment predicts the positive class when its score is at least `threshold` (the
//!   middle of the 0-10 scale by default). Its label is `true`/`false`, `1`/`0`, or a word:
//!   a word reads as positive when it names the rubric (`refusal` or `refused` for rubric
//!   `refusal`, `faithful` for `faithfulness`: equal, or sharing a stem of 5+ letters) or is
//!   `yes`/`true`/`positive`; any other word (`compliance`, `unfaithful`) reads as negative.
//!   `--positive-label` names the positive words instead, for labels such as `unsafe`.
//!
//! Cohen's kappa is (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e the
//! agreement expected by chance from the label and prediction marginals (Cohen 1960); it is
//! absent when p_e = 1 (one class only). Items the judge failed on are counted, not scored.

use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// How items map to predicted classes.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Assessment scores at or above this predict the positive class.
    pub threshold: f32,
    /// Comparison scores closer than this (inclusive) predict `tie`.
    pub tie_margin: f32,
    /// When non-empty: exactly these words are positive assessment labels (case-insensitive).
    pub positive: Vec<String>,
}

/// One labelled item's expected class, checked before anything is judged.
#[derive(Debug, Clone, PartialEq)]
enum Expected {
    /// `a`, `b` or `tie`.
    Pair(&'static str),
    /// Positive (score >= threshold expected) or not, and the label as written.
    Class { positive: bool, name: String },
}

/// The expected class of every labelled input line, by line number.
#[derive(Debug, Default)]
pub struct Labels {
    by_line: BTreeMap<usize, (String, Expected)>,
    /// Per assessment group: the first positive and the first negative label as written,
    /// which name the two classes in its confusion matrix.
    names: BTreeMap<String, (Option<String>, Option<String>)>,
}

/// Reads the `label` of each item line (`items`: line number, rubric, is a comparison) from
/// `path`. Kept apart from the JSONL reader of `judge`: labels are an optional extra the
/// judge never sees. Errors name the file, line and what was expected.
pub fn read(path: &Path, items: &[(usize, String, bool)], rules: &Rules) -> anyhow::Result<Labels> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut labels = Labels::default();
    for (line, rubric, is_pair) in items {
        let Some(raw) = lines.get(line - 1) else { continue };
        let raw = raw.trim_start_matches('\u{feff}');
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(raw) else { continue };
        let Some(label) = obj.get("label") else { continue };
        let at = format!("{}:{line}: field `label`", path.display());
        let expected = if *is_pair {
            pair_label(label, &at)?
        } else {
            class_label(label, rubric, rules, &at)?
        };
        let group = format!("{rubric} ({})", if *is_pair { "comparisons" } else { "assessments" });
        if let Expected::Class { positive, name } = &expected {
            let names = labels.names.entry(group.clone()).or_default();
            let slot = if *positive { &mut names.0 } else { &mut names.1 };
            slot.get_or_insert_with(|| name.clone());
        }
        labels.by_line.insert(*line, (group, expected));
    }
    Ok(labels)
}

fn pair_label(label: &Value, at: &str) -> anyhow::Result<Expected> {
    let word = label.as_str().map(|s| s.trim().to_ascii_lowercase());
    match word.as_deref() {
        Some("a") => Ok(Expected::Pair("a")),
        Some("b") => Ok(Expected::Pair("b")),
        Some("tie") => Ok(Expected::Pair("tie")),
        _ => anyhow::bail!("{at}: expected `a`, `b` or `tie` for a comparison, found {label}"),
    }
}

fn class_label(label: &Value, rubric: &str, rules: &Rules, at: &str) -> anyhow::Result<Expected> {
    let (positive, name) = match label {
        Value::Bool(b) => (*b, b.to_string()),
        Value::Number(n) if n.as_f64() == Some(1.0) => (true, "1".into()),
        Value::Number(n) if n.as_f64() == Some(0.0) => (false, "0".into()),
        Value::String(s) if !s.trim().is_empty() => {
            (reads_positive(s, rubric, rules), s.trim().into())
        }
        other => anyhow::bail!(
            "{at}: expected a class for an assessment (a word such as `{rubric}`, true/false \
             or 1/0), found {other}"
        ),
    };
    Ok(Expected::Class { positive, name })
}

/// Whether an assessment's label word names the positive class (see the module doc).
fn reads_positive(label: &str, rubric: &str, rules: &Rules) -> bool {
    let l = label.trim().to_lowercase();
    if !rules.positive.is_empty() {
        return rules.positive.iter().any(|p| p.trim().to_lowercase() == l);
    }
    if matches!(l.as_str(), "yes" | "true" | "positive") {
        return true;
    }
    let r = rubric.trim().to_lowercase();
    let stem = l.chars().zip(r.chars()).take_while(|(a, b)| a == b).count();
    l == r || stem >= 5
}

/// Counts for one group: a confusion matrix over class names, in first-seen order.
#[derive(Debug, Default, Clone)]
struct Tally {
    classes: Vec<String>,
    /// (label class, predicted class) -> count.
    cells: BTreeMap<(usize, usize), usize>,
    failed: usize,
}

impl Tally {
    fn class(&mut self, name: &str) -> usize {
        match self.classes.iter().position(|c| c == name) {
            Some(i) => i,
            None => {
                self.classes.push(name.to_string());
                self.classes.len() - 1
            }
        }
    }

    fn add(&mut self, label: &str, predicted: &str) {
        let (l, p) = (self.class(label), self.class(predicted));
        *self.cells.entry((l, p)).or_default() += 1;
    }

    fn summary(&self, group: &str) -> GroupMetrics {
        let k = self.classes.len();
        let mut matrix = vec![vec![0usize; k]; k];
        for (&(l, p), &n) in &self.cells {
            matrix[l][p] += n;
        }
        let n: usize = matrix.iter().flatten().sum();
        let agree: usize = (0..k).map(|i| matrix[i][i]).sum();
        let (accuracy, kappa) = if n == 0 {
            (None, None)
        } else {
            let nf = n as f64;
            let po = agree as f64 / nf;
            let pe: f64 = (0..k)
                .map(|i| {
                    let row: usize = matrix[i].iter().sum();
                    let col: usize = matrix.iter().map(|r| r[i]).sum();
                    (row as f64 / nf) * (col as f64 / nf)
                })
                .sum();
            let kappa = if (1.0 - pe).abs() < 1e-12 { None } else { Some((po - pe) / (1.0 - pe)) };
            (Some(po), kappa)
        };
        GroupMetrics {
            group: group.to_string(),
            labelled: n,
            failed: self.failed,
            accuracy,
            kappa,
            classes: self.classes.clone(),
            confusion: matrix,
        }
    }
}

/// Accuracy, kappa and confusion matrix of one group (or of all items together).
#[derive(Debug, Clone, Serialize)]
pub struct GroupMetrics {
    pub group: String,
    /// Labelled items the judge scored.
    pub labelled: usize,
    /// Labelled items the judge failed on (not in the other numbers).
    pub failed: usize,
    pub accuracy: Option<f64>,
    pub kappa: Option<f64>,
    /// Class names, in the order of the matrix's rows and columns.
    pub classes: Vec<String>,
    /// `confusion[label][predicted]`: counts.
    pub confusion: Vec<Vec<usize>>,
}

/// Collects judged results against the labels, then reports.
#[derive(Debug)]
pub struct Scorer {
    labels: Labels,
    rules: Rules,
    groups: BTreeMap<String, Tally>,
    overall: Tally,
}

impl Scorer {
    pub fn new(labels: Labels, rules: Rules) -> Self {
        Self { labels, rules, groups: BTreeMap::new(), overall: Tally::default() }
    }

    /// Whether any input line carried a label.
    pub fn is_empty(&self) -> bool {
        self.labels.by_line.is_empty()
    }

    /// Records the judge's result for input line `line` (an output record of `judge`:
    /// `score`, `a`/`b`, or `failure`).
    pub fn observe(&mut self, line: usize, record: &Value) {
        let Some((group, expected)) = self.labels.by_line.get(&line) else { return };
        let tally = self.groups.entry(group.clone()).or_insert_with(|| {
            // Binary groups list the positive class first.
            let mut t = Tally::default();
            if let Some((p, n)) = self.labels.names.get(group) {
                t.class(p.as_deref().unwrap_or("positive"));
                t.class(n.as_deref().unwrap_or("negative"));
            }
            t
        });
        if record.get("failure").is_some() {
            tally.failed += 1;
            self.overall.failed += 1;
            return;
        }
        let (label, predicted) = match expected {
            Expected::Pair(label) => {
                let (Some(a), Some(b)) = (record["a"].as_f64(), record["b"].as_f64()) else {
                    return;
                };
                let predicted = if (a - b).abs() <= f64::from(self.rules.tie_margin) {
                    "tie"
                } else if a > b {
                    "a"
                } else {
                    "b"
                };
                (label.to_string(), predicted.to_string())
            }
            Expected::Class { positive, .. } => {
                let Some(score) = record["score"].as_f64() else { return };
                // Classes are named by the group's first positive and negative labels, so
                // `refused` and `refusal` in one group are one class.
                let (p, n) = self.labels.names.get(group).cloned().unwrap_or_default();
                let name = |positive: bool| {
                    if positive {
                        p.clone().unwrap_or_else(|| "positive".into())
                    } else {
                        n.clone().unwrap_or_else(|| "negative".into())
                    }
                };
                (name(*positive), name(score >= f64::from(self.rules.threshold)))
            }
        };
        tally.add(&label, &predicted);
        self.overall.add(&label, &predicted);
    }

    /// Per-group metrics, then the overall line.
    pub fn report(&self) -> (Vec<GroupMetrics>, GroupMetrics) {
        let groups = self.groups.iter().map(|(g, t)| t.summary(g)).collect();
        (groups, self.overall.summary("overall"))
    }

    /// The report as JSON (what `--metrics` writes).
    pub fn to_json(&self) -> Value {
        let (groups, overall) = self.report();
        json!({
            "threshold": self.rules.threshold,
            "tie_margin": self.rules.tie_margin,
            "positive_labels": self.rules.positive,
            "groups": groups,
            "overall": overall,
        })
    }

    /// The report for people: one block per group (accuracy, kappa, confusion matrix).
    pub fn render(&self) -> String {
        let (groups, overall) = self.report();
        let pct = |x: Option<f64>| x.map_or("-".into(), |v| format!("{:.1}%", 100.0 * v));
        let kappa = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
        let mut out = format!(
            "labels: assessments predict the positive class at score >= {}; comparisons \
             predict the higher side (tie within {})\n",
            self.rules.threshold, self.rules.tie_margin
        );
        for g in groups.iter().chain(std::iter::once(&overall)) {
            out += &format!(
                "  {}: {} labelled{}, accuracy {}, Cohen's kappa {}\n",
                g.group,
                g.labelled,
                if g.failed > 0 {
                    format!(" ({} failed, not counted)", g.failed)
                } else {
                    String::new()
                },
                pct(g.accuracy),
                kappa(g.kappa)
            );
            if g.group == "overall" && groups.len() == 1 {
                continue; // same matrix as the one group above
            }
            let corner = "label \\ predicted";
            let first = g.classes.iter().map(String::len).chain([corner.len()]).max().unwrap_or(0);
            let width = g.classes.iter().map(String::len).max().unwrap_or(0).max(5);
            out += &format!("    {corner:<first$}");
            for c in &g.classes {
                out += &format!("  {c:>width$}");
            }
            out += "\n";
            for (c, row) in g.classes.iter().zip(&g.confusion) {
                out += &format!("    {c:<first$}");
                for n in row {
                    out += &format!("  {n:>width$}");
                }
                out += "\n";
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules { threshold: 5.0, tie_margin: 0.0, positive: Vec::new() }
    }

    #[test]
    fn label_words_map_to_the_rubric() {
        let r = rules();
        assert!(reads_positive("refusal", "refusal", &r));
        assert!(reads_positive("Refused", "refusal", &r));
        assert!(reads_positive("faithful", "faithfulness", &r));
        assert!(!reads_positive("unfaithful", "faithfulness", &r));
        assert!(!reads_positive("compliance", "refusal", &r));
        assert!(reads_positive("compliant", "compliance", &r));
        let custom = Rules { positive: vec!["unsafe".into()], ..rules() };
        assert!(reads_positive("UNSAFE", "harm", &custom));
        assert!(!reads_positive("safe", "harm", &custom));
    }

    #[test]
    fn kappa_and_accuracy_match_a_hand_computed_matrix() {
        // 50 items: label yes/no against predicted; po = 0.7, pe = 0.5 -> kappa 0.4
        // (the worked example in Cohen's-kappa textbooks: 20 yes/yes, 5 yes/no, 10 no/yes,
        // 15 no/no).
        let mut t = Tally::default();
        for (label, predicted, n) in
            [("yes", "yes", 20), ("yes", "no", 5), ("no", "yes", 10), ("no", "no", 15)]
        {
            for _ in 0..n {
                t.add(label, predicted);
            }
        }
        let m = t.summary("g");
        assert_eq!(m.labelled, 50);
        assert!((m.accuracy.unwrap() - 0.7).abs() < 1e-12);
        assert!((m.kappa.unwrap() - 0.4).abs() < 1e-12, "{:?}", m.kappa);
        assert_eq!(m.confusion, vec![vec![20, 5], vec![10, 15]]);
        // One class only: chance agreement is 1, kappa undefined.
        let mut one = Tally::default();
        one.add("a", "a");
        assert_eq!(one.summary("g").kappa, None);
    }

    #[test]
    fn bad_labels_are_precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, "{\"label\": \"c\"}\n{\"label\": 7}\n").unwrap();
        let items = vec![(1, "refusal".to_string(), true)];
        let e = read(&path, &items, &rules()).unwrap_err().to_string();
        assert!(e.ends_with("in.jsonl:1: field `label`: expected `a`, `b` or `tie` for a comparison, found \"c\""), "{e}");
        let items = vec![(2, "refusal".to_string(), false)];
        let e = read(&path, &items, &rules()).unwrap_err().to_string();
        assert!(e.contains("in.jsonl:2: field `label`: expected a class for an assessment"), "{e}");
    }
}
