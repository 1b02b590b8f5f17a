//! The failure policy (`plugins.failure_policy`): when failed judgments stop the run, and what
//! a failing curriculum costs (a uniform batch instead, counted, or the end of the run).
//!
//! A failed judgment is never a silent score: the member gets no reward and drops out of
//! pair selection (in [`crate::game::rollout`]); here the failures are counted and the policy
//! applied.

use std::path::Path;

use anyhow::bail;
use rand::Rng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::game::config::{CurriculumFallback, FailurePolicy};
use crate::game::metrics::Metrics;
use crate::game::rewards::mean_defined;
use crate::game::rollout::StepRollout;
use crate::judging::{Category, Curriculum, Outcome, Seed};

/// Failures counted since the run started (kept in checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Failed judgments.
    pub judgments: u64,
    /// Curriculum calls that failed or answered invalid indices.
    pub curriculum: u64,
}

/// Counts step `step`'s failed judgments and stops the run (an error naming the limit) when
/// the step's failed share or the run's total exceeds the policy.
pub fn check_judgments(
    policy: &FailurePolicy,
    counts: &mut FailureCounts,
    rollout: &StepRollout,
    step: u64,
    last_checkpoint: Option<&Path>,
) -> anyhow::Result<()> {
    let s = &rollout.stats;
    counts.judgments += s.judgments_failed;
    if s.judgments > 0 {
        let share = s.judgments_failed as f64 / s.judgments as f64;
        if share > policy.max_step_failure_share {
            bail!(
                "step {step}: {} of {} judgments failed ({:?}), more than \
                 plugins.failure_policy.max_step_failure_share = {}; the run stops here \
                 (rollouts.jsonl has this step's trees; the last checkpoint is {})",
                s.judgments_failed,
                s.judgments,
                s.failures,
                policy.max_step_failure_share,
                last_checkpoint.map_or("none".into(), |p| p.display().to_string())
            );
        }
    }
    if policy.max_total_failures > 0 && counts.judgments > policy.max_total_failures {
        bail!(
            "step {step}: {} failed judgments in total, more than \
             plugins.failure_policy.max_total_failures = {}",
            counts.judgments,
            policy.max_total_failures
        );
    }
    Ok(())
}

/// The curriculum and what the loop knows to check its answers against.
pub(crate) struct CurriculumCall<'a> {
    /// The run's curriculum.
    pub(crate) curriculum: &'a mut dyn Curriculum,
    /// Training seeds, harmful then benign: the curriculum's indices point here.
    pub(crate) seeds: &'a [Seed],
    /// The failure policy.
    pub(crate) policy: &'a FailurePolicy,
    /// The run's failure counts.
    pub(crate) counts: &'a mut FailureCounts,
}

impl CurriculumCall<'_> {
    /// `n` seed indices of `category` for step `step`, from the curriculum, checked; on a bad
    /// answer the failure policy decides: a uniform sample from `rng` (counted in
    /// `curriculum/failures`) or an error that stops the run.
    pub(crate) fn next_seeds(
        &mut self,
        category: Category,
        n: usize,
        step: u64,
        rng: &mut ChaCha8Rng,
        m: &mut Metrics,
    ) -> anyhow::Result<Vec<usize>> {
        let seeds = self.seeds;
        let pool: Vec<usize> =
            (0..seeds.len()).filter(|&i| seeds[i].category == category).collect();
        let answer = self.curriculum.next_batch(category, n as u32);
        let problem = match &answer {
            Err(e) => Some(format!("{e:#}")),
            Ok(ix) if ix.len() != n => {
                Some(format!("returned {} indices for a batch of {n}", ix.len()))
            }
            Ok(ix) => ix.iter().find_map(|&i| match seeds.get(i as usize) {
                None => Some(format!("index {i} is out of range (0..{})", seeds.len())),
                Some(s) if s.category != category => {
                    Some(format!("index {i} is not a {category:?} seed"))
                }
                Some(_) => None,
            }),
        };
        match problem {
            None => Ok(answer.expect("checked").into_iter().map(|i| i as usize).collect()),
            Some(why) => {
                self.counts.curriculum += 1;
                *m.entry("curriculum/failures".into()).or_default() += 1.0;
                tracing::warn!("step {step}: curriculum {why}");
                if self.policy.curriculum == CurriculumFallback::Stop {
                    bail!(
                        "step {step}: the curriculum {why} (plugins.failure_policy.curriculum = \"stop\")"
                    );
                }
                let picks = if n <= pool.len() {
                    sample(rng, pool.len(), n).into_iter().map(|k| pool[k]).collect()
                } else {
                    (0..n).map(|_| pool[rng.random_range(0..pool.len())]).collect()
                };
                Ok(picks)
            }
        }
    }

    /// Feeds the step's outcomes (mean rewards per seed, whether any attack was faithful)
    /// back to the curriculum; a failure is counted, and stops the run under `stop`.
    pub(crate) fn observe(&mut self, rollout: &StepRollout) -> anyhow::Result<()> {
        let outcomes: Vec<Outcome> = rollout
            .trees
            .iter()
            .map(|t| {
                let mean = |v: Vec<Option<f32>>| mean_defined(v).unwrap_or(0.0) as f32;
                Outcome {
                    seed_id: t.seed.id.clone(),
                    attacker_reward: mean(t.attacks.iter().map(|a| a.reward).collect()),
                    defender_reward: mean(
                        t.attacks.iter().flat_map(|a| a.replies.iter().map(|r| r.reward)).collect(),
                    ),
                    faithful: t.attacks.iter().any(|a| a.rewrite.faithful == Some(true)),
                }
            })
            .collect();
        if let Err(e) = self.curriculum.observe(&outcomes) {
            self.counts.curriculum += 1;
            if self.policy.curriculum == CurriculumFallback::Stop {
                return Err(e.context("curriculum observe"));
            }
            tracing::warn!("curriculum observe failed: {e:#}");
        }
        Ok(())
    }
}
