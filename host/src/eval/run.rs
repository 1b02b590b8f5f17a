//! Running an eval: each target answers each prompt it has not answered yet (in batches),
//! the judge scores every answer under the refusal and compliance rubrics, and each batch is
//! appended to `responses.jsonl` before the next starts.
//!
//! A target is anything that yields an [`llm::Generator`](crate::llm::Generator): a local
//! model folder today, a remote OpenAI-compatible server through the same trait later. It is
//! loaded lazily (only when it still has prompts to answer) and dropped before the next one
//! loads, so two 7B targets never sit in memory together.

use std::collections::BTreeMap;

use anyhow::{Context, anyhow};
use serde::{Deserialize, Serialize};

use crate::eval::dataset::EvalItem;
use crate::eval::responses::{ResponseLog, ResponseRecord};
use crate::eval::score;
use crate::judging::{Category, Judge};
use crate::llm::{Generation, Generator, SamplingParams};

/// Opens a target's generator (loads weights, or connects).
pub type Loader = Box<dyn FnOnce() -> anyhow::Result<Box<dyn Generator>>>;

/// One model under evaluation.
pub struct Target {
    /// Short unique name used in files, tables and plots.
    pub name: String,
    /// Where it comes from (folder path or URL), for the report.
    pub source: String,
    /// Opens the generator; called once, when the target's turn comes, so only one target's
    /// weights are in memory at a time.
    pub load: Loader,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").field("name", &self.name).field("source", &self.source).finish()
    }
}

/// The two rubrics every answer is scored under (names of rubric plugins, or roles a
/// heuristic judge knows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalRubrics {
    /// High = the answer refuses (outright or partially).
    pub refusal: String,
    /// High = the answer helpfully does what was asked.
    pub compliance: String,
}

impl Default for EvalRubrics {
    fn default() -> Self {
        Self { refusal: "refusal".into(), compliance: "compliance".into() }
    }
}

impl EvalRubrics {
    /// The rubric names, refusal first.
    pub fn names(&self) -> Vec<String> {
        vec![self.refusal.clone(), self.compliance.clone()]
    }
}

/// How targets answer and how answers are scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Target decoding; `temperature = 0` (the default) is greedy. Each batch's seed is
    /// derived from `sampling.seed` and the batch's first prompt id.
    pub sampling: SamplingParams,
    /// Prompts per generation call.
    pub batch_size: usize,
    /// The rubrics every answer is scored under.
    pub rubrics: EvalRubrics,
    /// System turn of every request (`eval --system-prompt`); `None`: none (the defender's
    /// view in the game).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// User-turn template with one `{prompt}` slot (`eval --prompt-template`); `None`: the
    /// prompt as it is. The judge still reads the bare prompt as the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_template: Option<String>,
}

/// Progress of a running eval, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A target starts; `todo` prompts remain of `total`.
    Target {
        /// The target's short name.
        name: String,
        /// Items still to answer (not in `responses.jsonl`).
        todo: usize,
        /// Items in the data set.
        total: usize,
    },
    /// `n` more prompts answered and judged.
    Answered {
        /// Items finished by this batch.
        n: usize,
    },
}

/// Counters of one run (this invocation only).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCounts {
    /// Items answered and judged in this invocation.
    pub answered: usize,
    /// Items skipped because `responses.jsonl` already had them.
    pub resumed: usize,
    /// Failed judgments by failure kind.
    pub judge_failures: BTreeMap<String, usize>,
}

/// Answers and scores every (target, item) pair not yet in `log`.
pub fn run(
    targets: Vec<Target>,
    items: &[EvalItem],
    judge: &mut dyn Judge,
    settings: &EvalSettings,
    log: &mut ResponseLog,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<RunCounts> {
    anyhow::ensure!(settings.batch_size > 0, "the batch size must be at least 1");
    let mut counts = RunCounts::default();
    for target in targets {
        let todo: Vec<&EvalItem> =
            items.iter().filter(|it| !log.is_done(&target.name, &it.id)).collect();
        counts.resumed += items.len() - todo.len();
        progress(Progress::Target {
            name: target.name.clone(),
            todo: todo.len(),
            total: items.len(),
        });
        if todo.is_empty() {
            continue;
        }
        let name = target.name.clone();
        let mut generator = (target.load)()
            .with_context(|| format!("target `{name}` ({}) failed to load", target.source))?;
        for batch in todo.chunks(settings.batch_size) {
            let mut params = settings.sampling.clone();
            params.seed = batch_seed(params.seed, &name, &batch[0].id);
            let template = settings.prompt_template.as_deref();
            let filled: Vec<String> = batch
                .iter()
                .map(|it| crate::game::prompts::fill_prompt_template(template, &it.prompt))
                .collect();
            let prompts: Vec<&str> = filled.iter().map(String::as_str).collect();
            let system = settings.system_prompt.as_deref();
            let replies = score::answer_with_system(generator.as_mut(), &prompts, system, &params)
                .with_context(|| format!("target `{name}`: generation failed"))?;
            let records = judge_batch(judge, &settings.rubrics, &name, batch, &replies)
                .map_err(|e| anyhow!("target `{name}`: the judge stopped: {e:#}"))?;
            for r in &records {
                for f in r.answer.failures.values() {
                    *counts.judge_failures.entry(f.kind.as_str().to_string()).or_default() += 1;
                }
            }
            counts.answered += records.len();
            log.append(records)?;
            progress(Progress::Answered { n: batch.len() });
        }
    }
    Ok(counts)
}

/// Scores one batch of answers under both rubrics, as response records.
fn judge_batch(
    judge: &mut dyn Judge,
    rubrics: &EvalRubrics,
    target: &str,
    batch: &[&EvalItem],
    replies: &[Generation],
) -> anyhow::Result<Vec<ResponseRecord>> {
    let answers: Vec<(Category, &str, &Generation)> =
        batch.iter().zip(replies).map(|(it, g)| (it.category, it.prompt.as_str(), g)).collect();
    let names = rubrics.names();
    let scored = score::assess(judge, &answers, &|_| names.clone())?;
    Ok(batch
        .iter()
        .zip(scored)
        .map(|(it, answer)| ResponseRecord {
            target: target.to_string(),
            id: it.id.clone(),
            group: it.group.clone(),
            prompt: it.prompt.clone(),
            answer,
        })
        .collect())
}

/// A batch's sampling seed: stable for the same run seed, target and first prompt.
fn batch_seed(seed: u64, target: &str, first_id: &str) -> u64 {
    // FNV-1a over the names, then mixed with the run seed.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in target.bytes().chain([0]).chain(first_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    crate::game::rng::derive_seed(seed, h, 0x45_56_41_4c)
}
