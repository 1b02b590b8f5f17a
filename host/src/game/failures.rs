//! The failure policy (`plugins.failure_policy`): when failed judgments stop the run, and what
//! a failing curriculum costs (a uniform batch instead, counted, or the end of the run).
//!
//! A failed judgment is never a silent score: the member gets no reward and drops out of
//! pair selection (in [`crate::game::rollout`]); here the failures are counted and the policy
//! applied.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use crate::game::config::{CurriculumFallback, FailurePolicy};
use crate::game::metrics::Metrics;
use crate::game::rewards::mean_defined;
use crate::game::rollout::StepRollout;
use crate::judging::{Category, Curriculum, Failure, FailureKind, Outcome, Seed};

/// Failures counted since the run started (kept in checkpoints).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts {
    /// Failed judgments.
    pub judgments: u64,
    /// Curriculum calls that failed or answered invalid indices.
    pub curriculum: u64,
}

/// Why the failure policy stopped the run: the error [`check_judgments`] and
/// [`CurriculumCall`] return, reachable from the run's `anyhow::Error` with
/// `err.downcast_ref::<PolicyStop>()`. Each variant's message names the policy key that
/// tripped, so the user knows which setting to change.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyStop {
    /// One step's failed share of judgments exceeded
    /// `plugins.failure_policy.max_step_failure_share`.
    #[error(
        "step {step}: {failed} of {judgments} judgments failed ({kinds:?}), more than \
         plugins.failure_policy.max_step_failure_share = {limit}; the run stops here \
         (rollouts.jsonl has this step's trees; the last checkpoint is {})",
        last_checkpoint.as_ref().map_or("none".into(), |p| p.display().to_string())
    )]
    StepFailureShare {
        /// The step (1-based).
        step: u64,
        /// Failed judgments in the step.
        failed: u64,
        /// Judgments in the step.
        judgments: u64,
        /// Failed judgments by [`FailureKind`] name.
        kinds: std::collections::BTreeMap<String, u64>,
        /// The policy's share (0-1).
        limit: f64,
        /// The newest checkpoint, where a resume would start.
        last_checkpoint: Option<PathBuf>,
    },
    /// The run's failed judgments exceeded `plugins.failure_policy.max_total_failures`.
    #[error(
        "step {step}: {total} failed judgments in total, more than \
         plugins.failure_policy.max_total_failures = {limit}"
    )]
    TotalFailures {
        /// The step (1-based).
        step: u64,
        /// Failed judgments since the run started.
        total: u64,
        /// The policy's limit.
        limit: u64,
    },
    /// A curriculum call failed under `plugins.failure_policy.curriculum = "stop"`.
    #[error(
        "step {step}: the curriculum failed in {call}: {failure} \
         (plugins.failure_policy.curriculum = \"stop\")"
    )]
    Curriculum {
        /// The step (1-based).
        step: u64,
        /// The call: `next_batch` or `observe`.
        call: &'static str,
        /// What went wrong, typed.
        failure: Failure,
    },
}

/// Counts step `step`'s failed judgments and stops the run (a [`PolicyStop`] naming the
/// limit) when the step's failed share or the run's total exceeds the policy.
pub fn check_judgments(
    policy: &FailurePolicy,
    counts: &mut FailureCounts,
    rollout: &StepRollout,
    step: u64,
    last_checkpoint: Option<&Path>,
) -> Result<(), PolicyStop> {
    let s = &rollout.stats;
    counts.judgments += s.judgments_failed;
    if s.judgments > 0 {
        let share = s.judgments_failed as f64 / s.judgments as f64;
        if share <= policy.max_step_failure_share
            && s.judgments_failed > 0
            && (policy.max_total_failures == 0 || counts.judgments <= policy.max_total_failures)
        {
            let kinds: Vec<String> = s.failures.iter().map(|(k, n)| format!("{k} {n}")).collect();
            tracing::warn!(
                "step {step}: {} of {} judgments failed ({}); going on, as \
                 plugins.failure_policy.max_step_failure_share = {} allows",
                s.judgments_failed,
                s.judgments,
                kinds.join(", "),
                policy.max_step_failure_share
            );
        }
        if share > policy.max_step_failure_share {
            return Err(PolicyStop::StepFailureShare {
                step,
                failed: s.judgments_failed,
                judgments: s.judgments,
                kinds: s.failures.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
                limit: policy.max_step_failure_share,
                last_checkpoint: last_checkpoint.map(Path::to_path_buf),
            });
        }
    }
    if policy.max_total_failures > 0 && counts.judgments > policy.max_total_failures {
        return Err(PolicyStop::TotalFailures {
            step,
            total: counts.judgments,
            limit: policy.max_total_failures,
        });
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
    /// `n` seed indices of `category` for step `step`, from the curriculum, checked; on a
    /// failure the failure policy decides: a uniform sample from `rng` (counted in
    /// `curriculum/failures` and `curriculum/failures/<kind>`) or a
    /// [`PolicyStop::Curriculum`] that stops the run.
    pub(crate) fn next_seeds(
        &mut self,
        category: Category,
        n: usize,
        step: u64,
        rng: &mut ChaCha8Rng,
        m: &mut Metrics,
    ) -> Result<Vec<usize>, PolicyStop> {
        let seeds = self.seeds;
        let pool: Vec<usize> =
            (0..seeds.len()).filter(|&i| seeds[i].category == category).collect();
        let answer = self.curriculum.next_batch(category, n as u32).and_then(|ix| {
            let invalid = |message: String| Failure {
                kind: FailureKind::InvalidOutput,
                plugin: self.curriculum.label(),
                message,
            };
            if ix.len() != n {
                return Err(invalid(format!(
                    "next_batch returned {} indices for a batch of {n}",
                    ix.len()
                )));
            }
            for &i in &ix {
                match seeds.get(i as usize) {
                    None => {
                        return Err(invalid(format!(
                            "next_batch index {i} is out of range (0..{})",
                            seeds.len()
                        )));
                    }
                    Some(s) if s.category != category => {
                        return Err(invalid(format!(
                            "next_batch index {i} is not a {category:?} seed"
                        )));
                    }
                    Some(_) => {}
                }
            }
            Ok(ix)
        });
        match answer {
            Ok(ix) => Ok(ix.into_iter().map(|i| i as usize).collect()),
            Err(failure) => {
                self.failed(step, "next_batch", failure, m)?;
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
    /// back to the curriculum; a failure is counted (as in [`Self::next_seeds`]), and stops
    /// the run under `stop`.
    pub(crate) fn observe(
        &mut self,
        rollout: &StepRollout,
        step: u64,
        m: &mut Metrics,
    ) -> Result<(), PolicyStop> {
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
        match self.curriculum.observe(&outcomes) {
            Ok(()) => Ok(()),
            Err(failure) => self.failed(step, "observe", failure, m),
        }
    }

    /// Counts a failed curriculum call (run total, `curriculum/failures` and
    /// `curriculum/failures/<kind>` in the step's metrics) and applies the policy: `Ok` to go
    /// on with a fallback, [`PolicyStop::Curriculum`] under `stop`.
    fn failed(
        &mut self,
        step: u64,
        call: &'static str,
        failure: Failure,
        m: &mut Metrics,
    ) -> Result<(), PolicyStop> {
        self.counts.curriculum += 1;
        *m.entry(CURRICULUM_FAILURES.into()).or_default() += 1.0;
        *m.entry(format!("{CURRICULUM_FAILURES}/{}", failure.kind.as_str())).or_default() += 1.0;
        tracing::warn!(
            plugin = %failure.plugin,
            kind = failure.kind.as_str(),
            "step {step}: curriculum {call} failed: {}",
            failure.message
        );
        match self.policy.curriculum {
            CurriculumFallback::Stop => Err(PolicyStop::Curriculum { step, call, failure }),
            CurriculumFallback::Uniform => Ok(()),
        }
    }
}

/// The metric counting a step's failed curriculum calls; `CURRICULUM_FAILURES/<kind>` counts
/// them by [`FailureKind::as_str`] (both present only on steps with a failure).
pub const CURRICULUM_FAILURES: &str = "curriculum/failures";
