//! The training loop: each step draws seeds from the curriculum, plays the rollout with the
//! players' samplers, logs the trees, applies the failure policy, updates both players
//! simultaneously from the same rollout, then validates and checkpoints on schedule.
//! Construction and resume are in [`crate::game::run`]; the update in [`crate::game::update`].
//!
//! Determinism: every random choice of step `t` (seed sampling fallback, generation seeds,
//! the non-optimistic reply pick) derives from `(algorithm.seed, t)` ([`crate::game::rng`]),
//! and the curriculum's own state is checkpointed, so a run resumed from the checkpoint of
//! step k replays steps k+1, k+2, ... exactly as the uninterrupted run would have.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::game::checkpoint::{self, TrainState};
use crate::game::config::Config;
use crate::game::failures::{self, CurriculumCall, FailureCounts};
use crate::game::memory_plan::probe;
use crate::game::metrics::{self, JsonlWriter, Metrics, MetricsLine, RolloutLine};
use crate::game::player::Player;
use crate::game::policy::Policy;
use crate::game::retain::{RetainSet, retain_requests};
use crate::game::rng::{
    PURPOSE_ATTACKER, PURPOSE_CURRICULUM, PURPOSE_DEFENDER, PURPOSE_RETAIN, PURPOSE_ROLLOUT,
    derive_seed,
};
use crate::game::rollout::{self, RolloutSettings};
use crate::game::schedule::lr_at;
use crate::game::update::update;
use crate::game::validate;
use crate::judging::{Category, Curriculum, Judge, RunJudge, Seed};
use crate::llm::Generator;

/// What the CLI shows after each step.
#[derive(Debug)]
pub struct StepReport<'a> {
    /// The step just completed (0 = the baseline validation before training).
    pub step: u64,
    /// `algorithm.max_steps`.
    pub total: u64,
    /// The step's metrics line.
    pub metrics: &'a Metrics,
}

/// Where the trained models are, for the final summary.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Completed steps.
    pub steps: u64,
    /// The newest checkpoint written, if any.
    pub last_checkpoint: Option<PathBuf>,
    /// The first metrics line of this call (the baseline validation on a fresh run).
    pub first: Option<Metrics>,
    /// The last metrics line of this call.
    pub last: Option<Metrics>,
    /// Wall-clock seconds of this call.
    pub seconds: f64,
    /// Optimiser updates the attacker has taken over the whole run (resumes included): 0
    /// when it never formed a pair (e.g. `game.direct_seed_share = 1` or one rewrite per
    /// seed), so the checkpoint's attacker is the initial model.
    pub attacker_updates: u64,
}

/// A training run in progress (made by [`crate::game::run::start`] or
/// [`crate::game::run::resume`]).
pub struct Trainer<P: Policy> {
    /// The resolved configuration.
    pub config: Config,
    /// The run directory.
    pub run_dir: PathBuf,
    pub(super) attacker: Player<P>,
    pub(super) defender: Player<P>,
    pub(super) judge: Box<dyn RunJudge>,
    pub(super) curriculum: Box<dyn Curriculum>,
    /// Training seeds, harmful then benign: the curriculum's indices point here.
    pub(super) seeds: Vec<Seed>,
    pub(super) val_seeds: Vec<Seed>,
    pub(super) settings: RolloutSettings,
    /// Completed steps.
    pub(super) step: u64,
    pub(super) failures: FailureCounts,
    pub(super) metrics_log: JsonlWriter,
    pub(super) rollouts_log: JsonlWriter,
    pub(super) last_checkpoint: Option<PathBuf>,
}

impl<P: Policy> Trainer<P> {
    /// The attacker and the defender (their weights, copies and optimisers), read-only.
    pub fn players(&self) -> (&Player<P>, &Player<P>) {
        (&self.attacker, &self.defender)
    }
}

impl<P: Policy> std::fmt::Debug for Trainer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("run_dir", &self.run_dir).field("step", &self.step).finish()
    }
}

impl<P: Policy> Trainer<P> {
    /// Completed steps.
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Runs until `algorithm.steps`, calling `report` after every step.
    pub fn run(&mut self, report: &mut dyn FnMut(StepReport<'_>)) -> anyhow::Result<Summary> {
        self.run_until(self.config.algorithm.steps as u64, report)
    }

    /// Runs until step `until` (at most `algorithm.steps`), calling `report` after every step.
    /// Stopping early is what an interrupted run looks like (the schedule still spans
    /// `algorithm.steps`).
    pub fn run_until(
        &mut self,
        until: u64,
        report: &mut dyn FnMut(StepReport<'_>),
    ) -> anyhow::Result<Summary> {
        let started = Instant::now();
        let total = self.config.algorithm.steps as u64;
        let until = until.min(total);
        let every_val = self.config.validation.every as u64;
        let every_ckpt = self.config.checkpoint.every as u64;
        let mut first = None;
        let mut last = None;
        probe::mark("load (models, copies, plugins)");
        if self.step == 0 && every_val > 0 && !self.val_seeds.is_empty() {
            // The baseline: the untrained defender, logged as step 0.
            let t = Instant::now();
            let mut m = self.validate()?;
            probe::mark("validation");
            m.insert("time/validation".into(), t.elapsed().as_secs_f64());
            self.metrics_log.write(&MetricsLine { step: 0, metrics: &m })?;
            report(StepReport { step: 0, total, metrics: &m });
            first = Some(m);
        }
        while self.step < until {
            let mut m = self.train_step()?;
            let step = self.step;
            if every_val > 0
                && !self.val_seeds.is_empty()
                && (step.is_multiple_of(every_val) || step == total)
            {
                let t = Instant::now();
                m.extend(self.validate()?);
                probe::mark("validation");
                m.insert("time/validation".into(), t.elapsed().as_secs_f64());
            }
            if (every_ckpt > 0 && step.is_multiple_of(every_ckpt)) || step == total {
                let t = Instant::now();
                self.save_checkpoint()?;
                probe::mark("checkpoint");
                m.insert("time/checkpoint".into(), t.elapsed().as_secs_f64());
            }
            self.metrics_log.write(&MetricsLine { step, metrics: &m })?;
            report(StepReport { step, total, metrics: &m });
            if first.is_none() {
                first = Some(m.clone());
            }
            last = Some(m);
        }
        Ok(Summary {
            run_dir: self.run_dir.clone(),
            steps: self.step,
            last_checkpoint: self.last_checkpoint.clone(),
            first,
            last,
            seconds: started.elapsed().as_secs_f64(),
            attacker_updates: self.attacker.optimizer.steps,
        })
    }

    /// One full step; returns its metrics (without validation).
    pub fn train_step(&mut self) -> anyhow::Result<Metrics> {
        let step_started = Instant::now();
        let t = self.step + 1;
        let seed = self.config.algorithm.seed;
        let mut m = Metrics::new();
        let a = &self.config.algorithm;
        let (n_harmful, n_benign) =
            (a.seeds_per_step(Category::Harmful), a.seeds_per_step(Category::Benign));

        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, t, PURPOSE_CURRICULUM));
        let mut picks =
            self.curriculum_call().next_seeds(Category::Harmful, n_harmful, t, &mut rng, &mut m)?;
        picks.extend(self.curriculum_call().next_seeds(
            Category::Benign,
            n_benign,
            t,
            &mut rng,
            &mut m,
        )?);
        let batch: Vec<Seed> = picks.iter().map(|&i| self.seeds[i].clone()).collect();

        let mut settings = self.settings.clone();
        settings.attacker_sampling.seed = derive_seed(seed, t, PURPOSE_ATTACKER);
        settings.defender_sampling.seed = derive_seed(seed, t, PURPOSE_DEFENDER);
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, t, PURPOSE_ROLLOUT));
        let judge_gen_before = self.judge.generation_seconds();
        let rollout = {
            let (attacker, defender) = (&mut self.attacker, &mut self.defender);
            rollout::rollout(
                &batch,
                &settings,
                attacker.sampler_mut() as &mut dyn Generator,
                defender.sampler_mut() as &mut dyn Generator,
                &mut *self.judge as &mut dyn Judge,
                &mut rng,
            )?
        };
        probe::mark("judge and the rest of the rollout");
        for tree in &rollout.trees {
            self.rollouts_log.write(&RolloutLine { step: t, tree })?;
        }
        m.extend(metrics::rollout_metrics(&rollout));
        m.extend(self.judge.metrics());
        let judge_gen = self.judge.generation_seconds() - judge_gen_before;
        m.insert("time/judge_generation".into(), judge_gen);
        m.insert("time/plugin".into(), (rollout.stats.time_judge - judge_gen).max(0.0));
        failures::check_judgments(
            &self.config.plugins.failure_policy,
            &mut self.failures,
            &rollout,
            t,
            self.last_checkpoint.as_deref(),
        )?;
        self.curriculum_call().observe(&rollout, t, &mut m)?;

        // Both players learn from the same rollout, then both EMA copies move.
        let a = &self.config.algorithm;
        let lr = lr_at(self.step as usize, a.steps, a.lr, a.final_lr_ratio, a.warmup_steps);
        m.insert("lr".into(), lr);
        let t_update = Instant::now();
        let attacker_groups = rollout.attacker_groups();
        let defender_groups = rollout.defender_groups();
        let retain = self.retain_set(&defender_groups, t, &mut m)?;
        let a = &self.config.algorithm;
        let am = update(&mut self.attacker, &attacker_groups, &RetainSet::default(), a, lr)?;
        crate::heap::release_free_memory();
        let dm = update(&mut self.defender, &defender_groups, &retain, a, lr)?;
        crate::heap::release_free_memory();
        m.extend(am);
        m.extend(dm);
        m.insert("time/loss_update".into(), t_update.elapsed().as_secs_f64());
        self.step = t;
        m.insert("time/step".into(), step_started.elapsed().as_secs_f64());
        if let Some(plugin) = m.get("time/plugin").copied() {
            m.insert("time/plugin_share".into(), plugin / m["time/step"].max(1e-9));
        }
        Ok(m)
    }

    /// The defender's retain set of step `step` (empty unless `algorithm.benign_retain_alpha >
    /// 0`): the initial defender's greedy replies to the benign groups' prompts and, up to
    /// `algorithm.benign_retain_size`, to benign training seeds drawn for the step. Logs
    /// `time/retain_generation` (seconds).
    fn retain_set(
        &mut self,
        groups: &[rollout::Group],
        step: u64,
        m: &mut Metrics,
    ) -> anyhow::Result<RetainSet> {
        let a = &self.config.algorithm;
        if a.benign_retain_alpha <= 0.0 {
            return Ok(RetainSet::default());
        }
        let t = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(a.seed, step, PURPOSE_RETAIN));
        let requests = retain_requests(groups, &self.seeds, a.benign_retain_size, &mut rng);
        let d = &mut self.defender;
        let initial = d.initial.as_mut().context("the retain set needs the initial defender")?;
        let set =
            RetainSet::build(initial, &d.current, &requests, &self.settings.defender_sampling)
                .context("building the defender's retain set")?;
        probe::mark("retain set (initial defender, greedy)");
        m.insert("time/retain_generation".into(), t.elapsed().as_secs_f64());
        Ok(set)
    }

    /// The curriculum with what its answers are checked against.
    fn curriculum_call(&mut self) -> CurriculumCall<'_> {
        CurriculumCall {
            curriculum: &mut *self.curriculum,
            seeds: &self.seeds,
            policy: &self.config.plugins.failure_policy,
            counts: &mut self.failures,
        }
    }

    /// The defender alone on the held-out seeds ([`validate::validate`]).
    pub fn validate(&mut self) -> anyhow::Result<Metrics> {
        validate::validate(
            &mut self.defender.current,
            &mut *self.judge as &mut dyn Judge,
            &self.val_seeds,
            &self.config,
            self.step,
        )
    }

    /// Writes a checkpoint of the current step (atomically) and prunes old ones.
    pub fn save_checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let state = TrainState::new(
            self.step,
            self.config.algorithm.seed,
            self.failures.judgments,
            self.failures.curriculum,
            &self.curriculum.save_state().context("curriculum save-state")?,
        );
        let dir = checkpoint::write(&self.run_dir, &state, |tmp| {
            let d = checkpoint::player_dirs(tmp);
            self.attacker.current.save_pretrained(&d.attacker)?;
            self.defender.current.save_pretrained(&d.defender)?;
            if let Some(e) = &self.attacker.ema {
                e.save_pretrained(&d.attacker_ema)?;
            }
            if let Some(e) = &self.defender.ema {
                e.save_pretrained(&d.defender_ema)?;
            }
            let (fa, fd) = checkpoint::player_files(tmp);
            self.attacker.save_state(&fa)?;
            self.defender.save_state(&fd)?;
            Ok(())
        })?;
        checkpoint::prune(&self.run_dir, self.config.checkpoint.keep)?;
        self.last_checkpoint = Some(dir.clone());
        Ok(dir)
    }
}

#[cfg(test)]
mod tests;
