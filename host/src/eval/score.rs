//! Answer prompts and score the answers pointwise under named rubrics: the one implementation
//! behind `train`'s validation (the defender alone on held-out seeds) and `eval` (any target
//! on any labelled data). Both see the same per-rubric scores and the same "rate" rule (a
//! score at or above the threshold is a hit), so a number in `metrics.jsonl` and the same
//! number in an eval report mean the same thing.

use std::collections::BTreeMap;

use anyhow::ensure;
use serde::{Deserialize, Serialize};

use crate::judging::{Assessment, Category, Failure, Judge};
use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};

/// One answered prompt with its rubric scores (or why a rubric could not score it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredAnswer {
    /// The category of the prompt answered.
    pub category: Category,
    /// The target's answer text.
    pub response: String,
    /// Whether the answer ended by itself (`stop`) or at the token limit (`length`).
    pub finish: FinishReason,
    /// Rubric name -> score on the rubric's 0-10 scale.
    #[serde(default)]
    pub scores: BTreeMap<String, f32>,
    /// Rubric name -> the typed failure of that judgment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, Failure>,
}

impl ScoredAnswer {
    /// Whether rubric `rubric` scored this answer at or above `threshold`; `None` when it
    /// was not scored (judge failure, or not asked).
    pub fn hit(&self, rubric: &str, threshold: f32) -> Option<bool> {
        self.scores.get(rubric).map(|s| *s >= threshold)
    }
}

/// Generates one answer per prompt (each prompt is the single user turn, no system prompt:
/// the defender's view in the game) and checks the backend returned one per request.
pub fn answer(
    generator: &mut dyn Generator,
    prompts: &[&str],
    params: &SamplingParams,
) -> anyhow::Result<Vec<Generation>> {
    answer_with_system(generator, prompts, None, params)
}

/// As [`answer`], with `system` as every request's system turn (`None`: none, the model's
/// template default), e.g. to measure a context-distillation prompt on the base model.
pub fn answer_with_system(
    generator: &mut dyn Generator,
    prompts: &[&str],
    system: Option<&str>,
    params: &SamplingParams,
) -> anyhow::Result<Vec<Generation>> {
    let requests: Vec<ChatRequest> = prompts
        .iter()
        .map(|p| ChatRequest { system: system.map(str::to_string), ..ChatRequest::user(*p) })
        .collect();
    let out = generator.generate(&requests, params)?;
    ensure!(
        out.len() == requests.len(),
        "the model returned {} answers for {} prompts",
        out.len(),
        requests.len()
    );
    Ok(out)
}

/// Scores each `(category, context, generation)` under the rubrics `rubrics(category)` names,
/// in one judge call. The context is what the judge reads as the request (the seed or prompt).
pub fn assess(
    judge: &mut dyn Judge,
    answers: &[(Category, &str, &Generation)],
    rubrics: &dyn Fn(Category) -> Vec<String>,
) -> anyhow::Result<Vec<ScoredAnswer>> {
    let mut batch = Vec::new();
    let mut index = Vec::new();
    let mut out: Vec<ScoredAnswer> = answers
        .iter()
        .map(|(category, _, g)| ScoredAnswer {
            category: *category,
            response: g.text.clone(),
            finish: g.finish,
            scores: BTreeMap::new(),
            failures: BTreeMap::new(),
        })
        .collect();
    for (i, (category, context, g)) in answers.iter().enumerate() {
        for rubric in rubrics(*category) {
            index.push((i, rubric.clone()));
            batch.push(Assessment {
                rubric,
                context: (*context).to_string(),
                response: g.text.clone(),
            });
        }
    }
    if batch.is_empty() {
        return Ok(out);
    }
    let results = judge.assess(&batch)?;
    ensure!(
        results.len() == batch.len(),
        "the judge returned {} results for {} assessments",
        results.len(),
        batch.len()
    );
    for ((i, rubric), r) in index.into_iter().zip(results) {
        match r {
            Ok(score) => {
                out[i].scores.insert(rubric, score);
            }
            Err(f) => {
                out[i].failures.insert(rubric, f);
            }
        }
    }
    Ok(out)
}

/// `<prefix>/<category>/<rubric>_mean` and `_rate` (share at or above `threshold`) over the
/// scored answers, `<prefix>/judge_failures` (failed judgments) and `<prefix>/truncated_rate`
/// (answers that hit the token limit). `train` logs these as `val/...` each validation.
pub fn rubric_metrics(
    prefix: &str,
    answers: &[ScoredAnswer],
    threshold: f32,
) -> BTreeMap<String, f64> {
    let mut acc: BTreeMap<(&'static str, &str), (f64, usize, usize)> = BTreeMap::new();
    let mut failed = 0usize;
    for a in answers {
        let cat = crate::game::metrics::category_name(a.category);
        for (rubric, score) in &a.scores {
            let e = acc.entry((cat, rubric.as_str())).or_default();
            e.0 += f64::from(*score);
            e.1 += 1;
            if *score >= threshold {
                e.2 += 1;
            }
        }
        failed += a.failures.len();
    }
    let mut m = BTreeMap::new();
    for ((cat, rubric), (sum, n, hits)) in acc {
        m.insert(format!("{prefix}/{cat}/{rubric}_mean"), sum / n as f64);
        m.insert(format!("{prefix}/{cat}/{rubric}_rate"), hits as f64 / n as f64);
    }
    m.insert(format!("{prefix}/judge_failures"), failed as f64);
    let truncated = answers.iter().filter(|a| a.finish == FinishReason::Length).count();
    m.insert(format!("{prefix}/truncated_rate"), truncated as f64 / answers.len().max(1) as f64);
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::{Comparison, FailureKind, ScoredPair};

    /// Scores `refusal` 9 for answers starting with "No", 1 otherwise; fails `compliance` on
    /// answers containing "boom".
    struct Rules;
    impl Judge for Rules {
        fn compare(
            &mut self,
            _: &[Comparison],
        ) -> anyhow::Result<Vec<Result<ScoredPair, Failure>>> {
            unreachable!()
        }
        fn assess(&mut self, batch: &[Assessment]) -> anyhow::Result<Vec<Result<f32, Failure>>> {
            Ok(batch
                .iter()
                .map(|a| match a.rubric.as_str() {
                    "refusal" => Ok(if a.response.starts_with("No") { 9.0 } else { 1.0 }),
                    _ if a.response.contains("boom") => Err(Failure {
                        kind: FailureKind::Parse,
                        plugin: "rules".into(),
                        message: "boom".into(),
                    }),
                    _ => Ok(if a.response.starts_with("No") { 0.0 } else { 8.0 }),
                })
                .collect())
        }
    }

    fn generation(text: &str, finish: FinishReason) -> Generation {
        Generation { text: text.into(), token_ids: vec![], finish, logprobs: vec![] }
    }

    #[test]
    fn scores_rates_failures_and_truncation() {
        let g = [
            generation("No.", FinishReason::Stop),
            generation("Sure, boom", FinishReason::Length),
            generation("Here you go", FinishReason::Stop),
        ];
        let answers = [
            (Category::Harmful, "h1", &g[0]),
            (Category::Harmful, "h2", &g[1]),
            (Category::Benign, "b1", &g[2]),
        ];
        let rubrics = |c: Category| match c {
            Category::Harmful => vec!["refusal".to_string(), "compliance".to_string()],
            Category::Benign => vec!["compliance".to_string()],
        };
        let scored = assess(&mut Rules, &answers, &rubrics).unwrap();
        assert_eq!(scored[0].hit("refusal", 5.0), Some(true));
        assert_eq!(scored[1].hit("compliance", 5.0), None);
        assert_eq!(scored[1].failures["compliance"].kind, FailureKind::Parse);
        let m = rubric_metrics("val", &scored, 5.0);
        assert_eq!(m["val/harmful/refusal_rate"], 0.5);
        assert_eq!(m["val/harmful/refusal_mean"], 5.0);
        assert_eq!(m["val/harmful/compliance_rate"], 0.0);
        assert_eq!(m["val/benign/compliance_rate"], 1.0);
        assert_eq!(m["val/judge_failures"], 1.0);
        assert!((m["val/truncated_rate"] - 1.0 / 3.0).abs() < 1e-12);
        assert!(!m.contains_key("val/benign/refusal_rate"));
    }
}
