//! The training loop: both players, their EMA copies (sampler and reference) or the frozen
//! initial model, the per-step rollout, the losses, a simultaneous AdamW update of both
//! players, the EMA update, validation, metrics and checkpoints.
//!
//! Determinism: every random choice of step `t` (seed sampling fallback, generation seeds,
//! the non-optimistic reply pick) derives from `(algorithm.seed, t)`, and the curriculum's
//! own state is checkpointed, so a run resumed from the checkpoint of step k replays steps
//! k+1, k+2, ... exactly as the uninterrupted run would have.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

use crate::eval::score;
use crate::game::checkpoint::{self, TrainState};
use crate::game::config::{Baseline, Config, CurriculumFallback, Dtype, Method, Sampler};
use crate::game::ema;
use crate::game::loss::{self, GrpoInputs, PairLogps};
use crate::game::metrics::{self, JsonlWriter, Metrics, MetricsLine, RolloutLine};
use crate::game::optim::AdamW;
use crate::game::pairs::select_pair;
use crate::game::policy::Policy;
use crate::game::prompts::AttackerPrompts;
use crate::game::rollout::{self, Group, RolloutSettings, StepRollout};
use crate::game::schedule::lr_at;
use crate::game::seeds::RunSeeds;
use crate::judging::{Category, Curriculum, Judge, Outcome, Seed};
use crate::llm::{Generation, Generator, SamplingParams};

/// A judge as the loop uses it: judgments plus whatever run metrics its host keeps
/// (cumulative failure counts, order agreement, judge-model time).
pub trait RunJudge: Judge {
    /// Metrics to merge into each step's line (cumulative values are fine).
    fn metrics(&self) -> Metrics {
        Metrics::new()
    }
    /// Seconds spent in the judge model's generation so far (0 for heuristic judges).
    fn generation_seconds(&self) -> f64 {
        0.0
    }
}

/// Parses `cpu`, `cuda`, `cuda:N`.
pub fn device_of(name: &str) -> anyhow::Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(Device::Cuda)
            .ok_or_else(|| anyhow!("unknown device {other:?}: expected cpu, cuda or cuda:N")),
    }
}

pub fn kind_of(dtype: Dtype) -> Kind {
    match dtype {
        Dtype::F32 => Kind::Float,
        Dtype::Bf16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
    }
}

/// One player: the trained weights, the copies the method needs, and its optimiser.
#[derive(Debug)]
pub struct Player<P: Policy> {
    pub name: &'static str,
    pub current: P,
    /// The EMA copy (sampler and DPO/IPO reference) when `algorithm.sampler = "ema"`.
    pub ema: Option<P>,
    /// The frozen initial model: the reference for on-policy DPO/IPO, the KL anchor of GRPO.
    pub initial: Option<P>,
    pub optimizer: AdamW,
}

impl<P: Policy> Player<P> {
    /// `current_dir`/`ema_dir` differ from `initial_dir` when resuming from a checkpoint.
    fn load(
        name: &'static str,
        initial_dir: &Path,
        resumed: Option<(&Path, &Path)>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let device = device_of(&config.models.device)?;
        let kind = kind_of(config.models.dtype);
        let a = &config.algorithm;
        let load = |dir: &Path| {
            P::load(dir, device, kind)
                .with_context(|| format!("loading the {name} from {}", dir.display()))
        };
        let current = load(resumed.map_or(initial_dir, |r| r.0))?;
        if a.sampler == Sampler::Ema && kind != Kind::Float && a.ema_decay < 1.0 {
            // Known limitation: the EMA copy lives in the model dtype, so in bf16/f16 an
            // update smaller than ~0.5 ulp / (1 - decay) rounds away and the EMA lags far
            // behind the weights. An f32 EMA master (as `optim` keeps for the weights) is
            // the fix; until then, say so instead of degrading silently.
            tracing::warn!(
                "{name}: EMA copy kept in {:?}: with small learning rates its updates round \
                 away; prefer models.dtype = \"f32\" for DPO-MD/IPO-MD until the EMA keeps \
                 an f32 master",
                config.models.dtype
            );
        }
        let ema = match (a.sampler, resumed) {
            (Sampler::Ema, Some((_, ema_dir))) => Some(load(ema_dir)?),
            (Sampler::Ema, None) => Some(current.try_clone()?),
            (Sampler::Current, _) => None,
        };
        let needs_initial = a.method == Method::Grpo || a.sampler == Sampler::Current;
        let initial = match (needs_initial, resumed) {
            (false, _) => None,
            (true, None) => Some(current.try_clone()?),
            (true, Some(_)) => Some(load(initial_dir)?),
        };
        Ok(Self {
            name,
            current,
            ema,
            initial,
            optimizer: AdamW::new(a.betas[0], a.betas[1], a.weight_decay),
        })
    }

    fn sampler_mut(&mut self) -> &mut P {
        self.ema.as_mut().unwrap_or(&mut self.current)
    }

    /// The DPO/IPO reference: the EMA copy, else the initial model.
    fn reference(&self) -> &P {
        self.ema
            .as_ref()
            .or(self.initial.as_ref())
            .expect("a player has an EMA copy or an initial model")
    }
}

/// What the CLI shows after each step.
#[derive(Debug)]
pub struct StepReport<'a> {
    pub step: u64,
    pub total: u64,
    pub metrics: &'a Metrics,
}

/// Where the trained models are, for the final summary.
#[derive(Debug, Clone)]
pub struct Summary {
    pub run_dir: PathBuf,
    pub steps: u64,
    pub last_checkpoint: Option<PathBuf>,
    pub first: Option<Metrics>,
    pub last: Option<Metrics>,
    pub seconds: f64,
}

/// A training run in progress.
pub struct Trainer<P: Policy> {
    pub config: Config,
    pub run_dir: PathBuf,
    attacker: Player<P>,
    defender: Player<P>,
    judge: Box<dyn RunJudge>,
    curriculum: Box<dyn Curriculum>,
    /// Training seeds, harmful then benign: the curriculum's indices point here.
    seeds: Vec<Seed>,
    val_seeds: Vec<Seed>,
    settings: RolloutSettings,
    /// Completed steps.
    step: u64,
    total_failures: u64,
    curriculum_failures: u64,
    metrics_log: JsonlWriter,
    rollouts_log: JsonlWriter,
    last_checkpoint: Option<PathBuf>,
}

impl<P: Policy> std::fmt::Debug for Trainer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer").field("run_dir", &self.run_dir).field("step", &self.step).finish()
    }
}

/// Creates a fresh run directory `output.dir/output.name-NNN` (first unused number) and
/// writes the resolved configuration into it.
pub fn create_run_dir(config: &Config) -> anyhow::Result<PathBuf> {
    let parent = &config.output.dir;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    for n in 1..10_000 {
        let dir = parent.join(format!("{}-{n:03}", config.output.name));
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                std::fs::write(dir.join("config.toml"), config.to_toml()?)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!("{}: no free run directory name", parent.display())
}

/// Mixes the run seed, a step and a purpose into one 64-bit seed (SplitMix64 finaliser).
pub fn derive_seed(seed: u64, step: u64, purpose: u64) -> u64 {
    let mut z = seed
        ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ purpose.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const PURPOSE_ATTACKER: u64 = 1;
const PURPOSE_DEFENDER: u64 = 2;
const PURPOSE_ROLLOUT: u64 = 3;
const PURPOSE_CURRICULUM: u64 = 4;
const PURPOSE_VALIDATION: u64 = 5;

fn sampling(config: &Config, max_tokens: usize, stop: Vec<String>) -> SamplingParams {
    SamplingParams {
        max_new_tokens: max_tokens,
        temperature: config.game.temperature,
        top_p: config.game.top_p,
        seed: 0,
        stop,
    }
}

impl<P: Policy> Trainer<P> {
    /// Starts a run in `run_dir` (created by the caller, empty), or resumes the run in it
    /// when it holds a checkpoint and `resume` is set.
    pub fn new(
        config: Config,
        run_dir: PathBuf,
        judge: Box<dyn RunJudge>,
        mut curriculum: Box<dyn Curriculum>,
        resume: bool,
    ) -> anyhow::Result<Self> {
        config.check_files()?;
        let RunSeeds { train: seeds, harmful_val, benign_val } = RunSeeds::load(&config.data)?;
        let mut val_seeds = Vec::new();
        for mut s in [harmful_val, benign_val] {
            if config.validation.max_seeds > 0 {
                s.truncate(config.validation.max_seeds);
            }
            val_seeds.extend(s);
        }
        let g = &config.game;
        let prompts = AttackerPrompts::load(
            &g.attacker_prompt_harmful,
            &g.attacker_prompt_benign,
            g.attacker_prefill.clone(),
        )?;
        let settings = RolloutSettings {
            attacks_per_seed: g.attacks_per_seed,
            replies_per_prompt: g.replies_per_prompt,
            attacker_sampling: sampling(&config, g.attacker_max_tokens, g.attacker_stop.clone()),
            defender_sampling: sampling(&config, g.defender_max_tokens, Vec::new()),
            faithfulness_gate: g.faithfulness_gate,
            faithful_threshold: g.faithful_threshold,
            optimistic_attacker: g.optimistic_attacker,
            penalize_truncated_replies: g.penalize_truncated_replies,
            defender_context: g.defender_judge_context,
            rubrics: config.plugins.rubrics.clone(),
            prompts,
        };

        let checkpoint = if resume { checkpoint::latest(&run_dir)? } else { None };
        if resume && checkpoint.is_none() {
            bail!("{}: no complete checkpoint to resume from", run_dir.display());
        }
        let state = checkpoint.as_ref().map(|c| TrainState::read(c)).transpose()?;
        let dirs = checkpoint.as_ref().map(|c| checkpoint::player_dirs(c));
        let attacker = Player::load(
            "attacker",
            &config.models.attacker,
            dirs.as_ref().map(|d| (d.attacker.as_path(), d.attacker_ema.as_path())),
            &config,
        )?;
        let defender = Player::load(
            "defender",
            &config.models.defender,
            dirs.as_ref().map(|d| (d.defender.as_path(), d.defender_ema.as_path())),
            &config,
        )?;
        curriculum.init(&seeds, config.algorithm.seed).context("curriculum init")?;
        let mut trainer = Self {
            metrics_log: JsonlWriter::open(
                &run_dir.join("metrics.jsonl"),
                state.as_ref().map(|s| s.step),
            )?,
            rollouts_log: JsonlWriter::open(
                &run_dir.join("rollouts.jsonl"),
                state.as_ref().map(|s| s.step),
            )?,
            config,
            run_dir,
            attacker,
            defender,
            judge,
            curriculum,
            seeds,
            val_seeds,
            settings,
            step: 0,
            total_failures: 0,
            curriculum_failures: 0,
            last_checkpoint: checkpoint.clone(),
        };
        if let (Some(dir), Some(state)) = (checkpoint, state) {
            trainer.step = state.step;
            trainer.total_failures = state.total_failures;
            trainer.curriculum_failures = state.curriculum_failures;
            trainer
                .curriculum
                .load_state(&state.curriculum_state()?)
                .context("curriculum load-state")?;
            let opt = checkpoint::optimizer_files(&dir);
            trainer.attacker.optimizer.load(&opt.0, trainer.attacker.current.var_store())?;
            trainer.defender.optimizer.load(&opt.1, trainer.defender.current.var_store())?;
        }
        Ok(trainer)
    }

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
        if self.step == 0 && every_val > 0 && !self.val_seeds.is_empty() {
            // The baseline: the untrained defender, logged as step 0.
            let t = Instant::now();
            let mut m = self.validate()?;
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
                m.insert("time/validation".into(), t.elapsed().as_secs_f64());
            }
            if (every_ckpt > 0 && step.is_multiple_of(every_ckpt)) || step == total {
                let t = Instant::now();
                self.save_checkpoint()?;
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
        })
    }

    /// The seeds of one category for step `step`, from the curriculum, checked; on a bad
    /// answer the failure policy decides (uniform fallback or stop).
    fn next_seeds(
        &mut self,
        category: Category,
        n: usize,
        rng: &mut ChaCha8Rng,
        m: &mut Metrics,
    ) -> anyhow::Result<Vec<usize>> {
        let pool: Vec<usize> =
            (0..self.seeds.len()).filter(|&i| self.seeds[i].category == category).collect();
        let answer = self.curriculum.next_batch(category, n as u32);
        let problem = match &answer {
            Err(e) => Some(format!("{e:#}")),
            Ok(ix) if ix.len() != n => {
                Some(format!("returned {} indices for a batch of {n}", ix.len()))
            }
            Ok(ix) => ix.iter().find_map(|&i| match self.seeds.get(i as usize) {
                None => Some(format!("index {i} is out of range (0..{})", self.seeds.len())),
                Some(s) if s.category != category => {
                    Some(format!("index {i} is not a {category:?} seed"))
                }
                Some(_) => None,
            }),
        };
        match problem {
            None => Ok(answer.expect("checked").into_iter().map(|i| i as usize).collect()),
            Some(why) => {
                self.curriculum_failures += 1;
                *m.entry("curriculum/failures".into()).or_default() += 1.0;
                tracing::warn!("step {}: curriculum {why}", self.step + 1);
                if self.config.plugins.failure_policy.curriculum == CurriculumFallback::Stop {
                    bail!(
                        "step {}: the curriculum {why} (plugins.failure_policy.curriculum = \"stop\")",
                        self.step + 1
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

    /// One full step; returns its metrics (without validation).
    pub fn train_step(&mut self) -> anyhow::Result<Metrics> {
        let step_started = Instant::now();
        let t = self.step + 1;
        let seed = self.config.algorithm.seed;
        let mut m = Metrics::new();
        let n = self.config.algorithm.seeds_per_category;

        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, t, PURPOSE_CURRICULUM));
        let mut picks = self.next_seeds(Category::Harmful, n, &mut rng, &mut m)?;
        picks.extend(self.next_seeds(Category::Benign, n, &mut rng, &mut m)?);
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
        for tree in &rollout.trees {
            self.rollouts_log.write(&RolloutLine { step: t, tree })?;
        }
        m.extend(metrics::rollout_metrics(&rollout));
        m.extend(self.judge.metrics());
        let judge_gen = self.judge.generation_seconds() - judge_gen_before;
        m.insert("time/judge_generation".into(), judge_gen);
        m.insert("time/plugin".into(), (rollout.stats.time_judge - judge_gen).max(0.0));
        self.check_failures(&rollout, t)?;
        self.observe(&rollout)?;

        // Both players learn from the same rollout, then both EMA copies move.
        let a = &self.config.algorithm;
        let lr = lr_at(self.step as usize, a.steps, a.lr, a.final_lr_ratio, a.warmup_steps);
        m.insert("lr".into(), lr);
        let t_update = Instant::now();
        let attacker_groups = rollout.attacker_groups();
        let defender_groups = rollout.defender_groups();
        let am = update(&mut self.attacker, &attacker_groups, &self.config, lr)?;
        let dm = update(&mut self.defender, &defender_groups, &self.config, lr)?;
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

    fn check_failures(&mut self, rollout: &StepRollout, step: u64) -> anyhow::Result<()> {
        let s = &rollout.stats;
        self.total_failures += s.judgments_failed;
        let fp = &self.config.plugins.failure_policy;
        if s.judgments > 0 {
            let share = s.judgments_failed as f64 / s.judgments as f64;
            if share > fp.max_step_failure_share {
                bail!(
                    "step {step}: {} of {} judgments failed ({:?}), more than \
                     plugins.failure_policy.max_step_failure_share = {}; the run stops here \
                     (rollouts.jsonl has this step's trees; the last checkpoint is {})",
                    s.judgments_failed,
                    s.judgments,
                    s.failures,
                    fp.max_step_failure_share,
                    self.last_checkpoint
                        .as_ref()
                        .map_or("none".into(), |p| p.display().to_string())
                );
            }
        }
        if fp.max_total_failures > 0 && self.total_failures > fp.max_total_failures {
            bail!(
                "step {step}: {} failed judgments in total, more than \
                 plugins.failure_policy.max_total_failures = {}",
                self.total_failures,
                fp.max_total_failures
            );
        }
        Ok(())
    }

    fn observe(&mut self, rollout: &StepRollout) -> anyhow::Result<()> {
        let outcomes: Vec<Outcome> = rollout
            .trees
            .iter()
            .map(|t| {
                let mean = |v: Vec<Option<f32>>| {
                    crate::game::rewards::mean_defined(v).unwrap_or(0.0) as f32
                };
                Outcome {
                    seed_id: t.seed.id.clone(),
                    attacker_reward: mean(t.attacks.iter().map(|a| a.reward).collect()),
                    defender_reward: mean(
                        t.attacks.iter().flat_map(|a| a.replies.iter().map(|r| r.reward)).collect(),
                    ),
                    faithful: t.attacks.iter().any(|a| a.faithful == Some(true)),
                }
            })
            .collect();
        if let Err(e) = self.curriculum.observe(&outcomes) {
            self.curriculum_failures += 1;
            if self.config.plugins.failure_policy.curriculum == CurriculumFallback::Stop {
                return Err(e.context("curriculum observe"));
            }
            tracing::warn!("curriculum observe failed: {e:#}");
        }
        Ok(())
    }

    /// The defender alone on the held-out seeds, scored pointwise: the same answering and
    /// scoring code as `advgame-host eval` (`crate::eval::score`), logged as
    /// `val/<category>/<rubric>_{mean,rate}`, `val/judge_failures`, `val/truncated_rate`.
    pub fn validate(&mut self) -> anyhow::Result<Metrics> {
        let v = &self.config.validation;
        let prompts: Vec<&str> = self.val_seeds.iter().map(|s| s.text.as_str()).collect();
        let params = SamplingParams {
            max_new_tokens: self.config.game.defender_max_tokens,
            temperature: v.temperature,
            top_p: self.config.game.top_p,
            seed: derive_seed(self.config.algorithm.seed, self.step, PURPOSE_VALIDATION),
            stop: Vec::new(),
        };
        let replies = score::answer(&mut self.defender.current, &prompts, &params)?;
        let answers: Vec<(Category, &str, &Generation)> = self
            .val_seeds
            .iter()
            .zip(&replies)
            .map(|(s, r)| (s.category, s.text.as_str(), r))
            .collect();
        let rubrics = |c: Category| match c {
            Category::Harmful => v.harmful_rubrics.clone(),
            Category::Benign => v.benign_rubrics.clone(),
        };
        let scored = score::assess(&mut *self.judge as &mut dyn Judge, &answers, &rubrics)?;
        Ok(score::rubric_metrics("val", &scored, v.threshold))
    }

    /// Writes a checkpoint of the current step (atomically) and prunes old ones.
    pub fn save_checkpoint(&mut self) -> anyhow::Result<PathBuf> {
        let state = TrainState::new(
            self.step,
            self.config.algorithm.seed,
            self.total_failures,
            self.curriculum_failures,
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
            let (oa, od) = checkpoint::optimizer_files(tmp);
            self.attacker.optimizer.save(&oa)?;
            self.defender.optimizer.save(&od)?;
            Ok(())
        })?;
        checkpoint::prune(&self.run_dir, self.config.checkpoint.keep)?;
        self.last_checkpoint = Some(dir.clone());
        Ok(dir)
    }
}

/// Sums each row's masked token log-probs: `[B, C]` -> `[B]`.
fn sequence_sums(logprobs: &Tensor, mask: &Tensor) -> Tensor {
    (logprobs * mask).sum_dim_intlist(1, false, Kind::Float)
}

/// Prompt ids of each group (once per group: the attacker's A samples share a prompt).
fn prompt_ids<P: Policy>(policy: &P, groups: &[Group]) -> anyhow::Result<Vec<Vec<i64>>> {
    groups.iter().map(|g| policy.prompt_ids(&g.request)).collect()
}

/// One optimiser update of a player from its groups; returns its metrics.
fn update<P: Policy>(
    player: &mut Player<P>,
    groups: &[Group],
    config: &Config,
    lr: f64,
) -> anyhow::Result<Metrics> {
    let a = &config.algorithm;
    let name = player.name;
    let mut m = Metrics::new();
    let prompts = prompt_ids(&player.current, groups)?;
    AdamW::zero_grad(player.current.var_store());
    let micro = a.micro_batch.max(1);
    let trained = match a.method {
        Method::Dpo | Method::Ipo => {
            let mut pairs = Vec::new();
            for (g, prompt) in groups.iter().zip(&prompts) {
                if let Some((w, l)) = select_pair(&g.rewards()) {
                    let (cw, cl) = (&g.members[w], &g.members[l]);
                    if !cw.token_ids.is_empty() && !cl.token_ids.is_empty() {
                        pairs.push((prompt.clone(), cw.token_ids.clone(), cl.token_ids.clone()));
                    }
                }
            }
            m.insert(format!("{name}/pairs"), pairs.len() as f64);
            let total = pairs.len();
            let mut sums = [0.0f64; 7];
            for chunk in pairs.chunks(micro) {
                let k = chunk.len();
                let items: Vec<(Vec<i64>, Vec<i64>)> = chunk
                    .iter()
                    .map(|(p, w, _)| (p.clone(), w.clone()))
                    .chain(chunk.iter().map(|(p, _, l)| (p.clone(), l.clone())))
                    .collect();
                let (lp, mask) = player.current.token_logprobs(&items)?;
                let policy = sequence_sums(&lp, &mask);
                let reference = tch::no_grad(|| -> anyhow::Result<Tensor> {
                    let (lp, mask) = player.reference().token_logprobs(&items)?;
                    Ok(sequence_sums(&lp, &mask))
                })?;
                let (pc, pr) =
                    (policy.narrow(0, 0, k as i64), policy.narrow(0, k as i64, k as i64));
                let (rc, rr) =
                    (reference.narrow(0, 0, k as i64), reference.narrow(0, k as i64, k as i64));
                let logps = PairLogps {
                    policy_chosen: &pc,
                    policy_rejected: &pr,
                    ref_chosen: &rc,
                    ref_rejected: &rr,
                };
                let (l, st) = match a.method {
                    Method::Dpo => loss::dpo_loss(&logps, a.beta),
                    _ => loss::ipo_loss(&logps, a.beta),
                };
                let w = k as f64 / total as f64;
                (&l * w).backward();
                for (s, v) in sums.iter_mut().zip([
                    l.double_value(&[]),
                    st.reward_chosen,
                    st.reward_rejected,
                    st.accuracy,
                    st.margin,
                    st.logp_chosen,
                    st.logp_rejected,
                ]) {
                    *s += v * w;
                }
            }
            if total > 0 {
                for (key, v) in [
                    "loss",
                    "rewards/chosen",
                    "rewards/rejected",
                    "rewards/accuracies",
                    "rewards/margins",
                    "logps/chosen",
                    "logps/rejected",
                ]
                .iter()
                .zip(sums)
                {
                    m.insert(format!("{name}/{key}"), v);
                }
            }
            total > 0
        }
        Method::Grpo => {
            let mut samples = Vec::new();
            for (gi, (g, prompt)) in groups.iter().zip(&prompts).enumerate() {
                for member in &g.members {
                    if let Some(r) = member.reward
                        && !member.token_ids.is_empty()
                    {
                        samples.push((gi, prompt, member, r));
                    }
                }
            }
            let rewards: Vec<f32> = samples.iter().map(|s| s.3).collect();
            let group_ids: Vec<usize> = samples.iter().map(|s| s.0).collect();
            let adv = loss::advantages(
                &rewards,
                (a.grpo_baseline == Baseline::Group).then_some(group_ids.as_slice()),
            );
            m.insert(format!("{name}/samples"), samples.len() as f64);
            let total = samples.len();
            let mut sums = [0.0f64; 4];
            let device = player.current.var_store().device();
            for (ci, chunk) in samples.chunks(micro).enumerate() {
                let k = chunk.len();
                let items: Vec<(Vec<i64>, Vec<i64>)> = chunk
                    .iter()
                    .map(|(_, p, mem, _)| ((*p).clone(), mem.token_ids.clone()))
                    .collect();
                let (lp, mask) = player.current.token_logprobs(&items)?;
                let c = lp.size()[1];
                let mut sampler = vec![0f32; k * c as usize];
                for (r, (_, _, mem, _)) in chunk.iter().enumerate() {
                    for (j, v) in mem.logprobs.iter().take(c as usize).enumerate() {
                        sampler[r * c as usize + j] = *v;
                    }
                }
                let sampler = Tensor::from_slice(&sampler).view([k as i64, c]).to_device(device);
                let reference = tch::no_grad(|| -> anyhow::Result<Tensor> {
                    let init = player.initial.as_ref().expect("GRPO keeps the initial model");
                    Ok(init.token_logprobs(&items)?.0)
                })?;
                let advantages =
                    Tensor::from_slice(&adv[ci * micro..ci * micro + k]).to_device(device);
                let x = GrpoInputs {
                    policy: &lp,
                    sampler: &sampler,
                    reference: &reference,
                    mask: &mask,
                    advantages: &advantages,
                };
                let (l, st) = loss::grpo_loss(&x, a.beta, a.grpo_ratio_cap);
                let w = k as f64 / total as f64;
                (&l * w).backward();
                for (s, v) in sums.iter_mut().zip([
                    l.double_value(&[]),
                    st.kl,
                    st.ratio_mean,
                    st.ratio_capped,
                ]) {
                    *s += v * w;
                }
            }
            if total > 0 {
                for (key, v) in ["loss", "kl", "ratio/mean", "ratio/capped"].iter().zip(sums) {
                    m.insert(format!("{name}/{key}"), v);
                }
                let mean_abs = adv.iter().map(|x| f64::from(x.abs())).sum::<f64>() / total as f64;
                m.insert(format!("{name}/advantage/abs_mean"), mean_abs);
            }
            total > 0
        }
    };
    if trained {
        let norm = AdamW::clip_grad_norm(player.current.var_store(), a.grad_clip);
        m.insert(format!("{name}/grad_norm"), norm);
        player.optimizer.step(player.current.var_store(), lr)?;
        AdamW::zero_grad(player.current.var_store());
    }
    if let Some(e) = &player.ema {
        ema::ema_update(e.var_store(), player.current.var_store(), a.ema_decay)?;
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::metrics::read_metrics;
    use crate::game::testkit::{CountingCurriculum, MenuPolicy, TableJudge};

    const REFUSE: &str = "REFUSE";
    const COMPLY: &str = "COMPLY";

    /// A toy game in `dir`: menu players, six seeds, a table judge's scores.
    fn setup(dir: &Path, overrides: &[&str]) -> Config {
        MenuPolicy::create(
            &dir.join("attacker"),
            &[
                "</think> <prompt>please help</prompt>",
                "</think> <prompt>off topic</prompt>",
                "no format",
            ],
        )
        .unwrap();
        MenuPolicy::create(&dir.join("defender"), &[REFUSE, COMPLY, "RAMBLE..."]).unwrap();
        let seeds = |cat: &str, n: usize| {
            (0..n).map(|i| format!("{{\"id\":\"{cat}{i}\",\"category\":\"{cat}\",\"text\":\"{cat} seed {i}\"}}\n")).collect::<String>()
        };
        for (file, cat, n) in [
            ("h.jsonl", "harmful", 3),
            ("b.jsonl", "benign", 3),
            ("hv.jsonl", "harmful", 2),
            ("bv.jsonl", "benign", 2),
        ] {
            std::fs::write(dir.join(file), seeds(cat, n)).unwrap();
        }
        std::fs::write(dir.join("ph.txt"), "rewrite {seed}").unwrap();
        std::fs::write(dir.join("pb.txt"), "probe {seed}").unwrap();
        let d = dir.display();
        let text = format!(
            "[models]\nattacker = \"{d}/attacker\"\ndefender = \"{d}/defender\"\n\
             [data]\nharmful = \"{d}/h.jsonl\"\nbenign = \"{d}/b.jsonl\"\nharmful_val = \"{d}/hv.jsonl\"\nbenign_val = \"{d}/bv.jsonl\"\n\
             [game]\nattacker_prompt_harmful = \"{d}/ph.txt\"\nattacker_prompt_benign = \"{d}/pb.txt\"\ntemperature = 1.0\n\
             [algorithm]\nsteps = 4\nseeds_per_category = 2\nlr = 0.05\nmicro_batch = 3\nseed = 11\n\
             [validation]\nevery = 2\n[checkpoint]\nevery = 2\nkeep = 0\n\
             [output]\ndir = \"{d}/runs\"\nname = \"toy\"\n"
        );
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Config::parse(&text, "toy.toml", &overrides).unwrap()
    }

    fn judge() -> TableJudge {
        TableJudge::default()
            .score("faithfulness", "please help", 10.0)
            .score("faithfulness", "off topic", 0.0)
            .score("deflection", REFUSE, 9.0)
            .score("deflection", COMPLY, 1.0)
            .score("compliance", REFUSE, 1.0)
            .score("compliance", COMPLY, 9.0)
            .score("refusal", REFUSE, 9.0)
            .score("refusal", COMPLY, 1.0)
    }

    fn trainer(
        config: &Config,
        run: &Path,
        judge: TableJudge,
        curriculum: CountingCurriculum,
        resume: bool,
    ) -> anyhow::Result<Trainer<MenuPolicy>> {
        Trainer::new(
            config.clone(),
            run.to_path_buf(),
            Box::new(judge),
            Box::new(curriculum),
            resume,
        )
    }

    fn without_timings(m: &Metrics) -> Metrics {
        m.iter().filter(|(k, _)| !k.starts_with("time/")).map(|(k, v)| (k.clone(), *v)).collect()
    }

    #[test]
    fn dpo_run_learns_and_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), &[]);
        let run_a = create_run_dir(&config).unwrap();
        assert!(run_a.ends_with("toy-001") && run_a.join("config.toml").is_file());
        let mut a =
            trainer(&config, &run_a, judge(), CountingCurriculum::default(), false).unwrap();
        let before = a.defender.current.probs();
        let summary = a.run(&mut |_| {}).unwrap();
        assert_eq!(summary.steps, 4);
        let after = a.defender.current.probs();
        // The defender moved away from uniform; the EMA copy lags behind the weights.
        assert!(after.iter().zip(&before).any(|(x, y)| (x - y).abs() > 1e-4), "{after:?}");
        let ema = a.defender.ema.as_ref().unwrap().probs();
        assert!(ema.iter().zip(&after).any(|(x, y)| (x - y).abs() > 1e-6));
        let lines = read_metrics(&run_a.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        assert!(lines[0].1.contains_key("val/harmful/deflection_rate"));
        for (_, m) in &lines[1..] {
            assert!(m["defender/reward/mean"].is_finite());
            for key in ["defender/loss", "attacker/loss"] {
                if let Some(v) = m.get(key) {
                    assert!(v.is_finite(), "{key} = {v}");
                }
            }
            assert!(
                m.contains_key("time/attacker_generation") && m.contains_key("time/loss_update")
            );
        }
        assert!(
            lines[1..].iter().any(|(_, m)| m.get("defender/pairs").copied().unwrap_or(0.0) > 0.0)
        );
        assert!(
            lines[1..].iter().any(|(_, m)| m.get("attacker/pairs").copied().unwrap_or(0.0) > 0.0)
        );
        let rollouts = std::fs::read_to_string(run_a.join("rollouts.jsonl")).unwrap();
        assert_eq!(rollouts.lines().count(), 4 * 4, "4 steps x 4 seeds");
        assert!(run_a.join("checkpoints/step-000002/defender-ema/model.safetensors").is_file());
        assert!(run_a.join("checkpoints/step-000004/optimizer-attacker.safetensors").is_file());

        // Interrupted after step 2, then resumed: steps 3 and 4 are identical.
        let run_b = create_run_dir(&config).unwrap();
        let mut b =
            trainer(&config, &run_b, judge(), CountingCurriculum::default(), false).unwrap();
        b.run_until(2, &mut |_| {}).unwrap();
        // Lines written after the checkpoint (a step 3 that was lost) are dropped on resume.
        std::fs::OpenOptions::new()
            .append(true)
            .open(run_b.join("metrics.jsonl"))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"step\":3,\"junk\":1}\n"))
            .unwrap();
        drop(b);
        let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), true).unwrap();
        assert_eq!(b.step(), 2);
        b.run(&mut |_| {}).unwrap();
        let lines_b = read_metrics(&run_b.join("metrics.jsonl")).unwrap();
        assert_eq!(lines_b.iter().map(|l| l.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
        for step in [3, 4] {
            assert_eq!(
                without_timings(&lines[step].1),
                without_timings(&lines_b[step].1),
                "step {step}"
            );
        }
        assert_eq!(b.defender.current.probs(), after);
    }

    #[test]
    fn ipo_grpo_and_on_policy_variants_run() {
        for extra in [
            vec!["algorithm.method=ipo"],
            vec!["algorithm.method=grpo", "game.attacks_per_seed=3", "game.replies_per_prompt=3"],
            vec![
                "algorithm.method=grpo",
                "algorithm.grpo_baseline=group",
                "algorithm.sampler=current",
            ],
            vec!["algorithm.sampler=current"],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut overrides = extra.clone();
            overrides.push("algorithm.steps=2");
            let config = setup(dir.path(), &overrides);
            let run = create_run_dir(&config).unwrap();
            let mut t =
                trainer(&config, &run, judge(), CountingCurriculum::default(), false).unwrap();
            let before = t.defender.current.probs();
            t.run(&mut |_| {}).unwrap();
            assert_ne!(t.defender.current.probs(), before, "{extra:?}");
            let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
            assert!(
                lines[1..]
                    .iter()
                    .any(|(_, m)| m.get("defender/loss").is_some_and(|v| v.is_finite())),
                "{extra:?}"
            );
            if extra.contains(&"algorithm.method=grpo") {
                assert!(lines[1].1.contains_key("defender/kl"));
            }
        }
    }

    #[test]
    fn judge_failures_stop_the_run_by_policy_and_keep_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), &["algorithm.steps=4", "validation.every=0"]);
        let run = create_run_dir(&config).unwrap();
        // Calls 1-3 are step 1 (faithfulness, defender, attacker); step 2's calls all trap.
        let j = TableJudge { fail_calls: vec![4, 5, 6], ..judge() };
        let mut t = trainer(&config, &run, j, CountingCurriculum::default(), false).unwrap();
        let err = format!("{:#}", t.run(&mut |_| {}).unwrap_err());
        assert!(err.contains("step 2") && err.contains("max_step_failure_share"), "{err}");
        assert!(err.contains("trap"), "{err}");
        let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
        assert_eq!(lines.len(), 1, "step 1's metrics are kept");
        let rollouts = std::fs::read_to_string(run.join("rollouts.jsonl")).unwrap();
        assert_eq!(rollouts.lines().count(), 8, "both steps' trees are kept");

        // A lenient policy counts the failures and goes on.
        let config = setup(
            dir.path(),
            &[
                "algorithm.steps=2",
                "validation.every=0",
                "plugins.failure_policy.max_step_failure_share=1.0",
            ],
        );
        let run = create_run_dir(&config).unwrap();
        let j = TableJudge { fail_calls: vec![4, 5, 6], ..judge() };
        let mut t = trainer(&config, &run, j, CountingCurriculum::default(), false).unwrap();
        t.run(&mut |_| {}).unwrap();
        let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
        assert!(lines[1].1["judge/failures/trap"] > 0.0);
    }

    #[test]
    fn bad_curriculum_indices_fall_back_or_stop() {
        let dir = tempfile::tempdir().unwrap();
        let config = setup(dir.path(), &["algorithm.steps=2", "validation.every=0"]);
        let run = create_run_dir(&config).unwrap();
        let c = CountingCurriculum { bad_from: Some(3), ..Default::default() };
        let mut t = trainer(&config, &run, judge(), c, false).unwrap();
        t.run(&mut |_| {}).unwrap();
        let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
        assert!(!lines[0].1.contains_key("curriculum/failures"));
        assert_eq!(lines[1].1["curriculum/failures"], 2.0);
        assert!(lines[1].1["defender/replies"].is_finite());

        let config = setup(
            dir.path(),
            &["algorithm.steps=2", "validation.every=0", "plugins.failure_policy.curriculum=stop"],
        );
        let run = create_run_dir(&config).unwrap();
        let c = CountingCurriculum { bad_from: Some(1), ..Default::default() };
        let mut t = trainer(&config, &run, judge(), c, false).unwrap();
        let err = format!("{:#}", t.run(&mut |_| {}).unwrap_err());
        assert!(err.contains("out of range") && err.contains("stop"), "{err}");
    }

    #[test]
    fn derived_seeds_differ_by_step_and_purpose() {
        assert_ne!(derive_seed(0, 1, 1), derive_seed(0, 2, 1));
        assert_ne!(derive_seed(0, 1, 1), derive_seed(0, 1, 2));
        assert_eq!(derive_seed(5, 3, 1), derive_seed(5, 3, 1));
        assert_eq!(device_of("cuda:1").unwrap(), Device::Cuda(1));
        assert!(device_of("tpu").is_err());
    }
}
