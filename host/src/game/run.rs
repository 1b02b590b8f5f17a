//! Starting and resuming a run: the one wiring that both `advgame-host train` and the tests
//! use. [`start`] creates a fresh run directory; [`resume`] continues the run in a directory
//! from its newest complete checkpoint, with the same plugins. Both read the seeds and the
//! attacker's instructions, load both players and hand back a [`Trainer`] ready to run.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};

use crate::game::checkpoint::{self, TrainState};
use crate::game::config::{Adapter, Config};
use crate::game::failures::FailureCounts;
use crate::game::metrics::JsonlWriter;
use crate::game::player::{Player, load_lora_players};
use crate::game::plugins::{self, LoadedPlugins};
use crate::game::policy::Policy;
use crate::game::prompts::AttackerPrompts;
use crate::game::rollout::RolloutSettings;
use crate::game::run_dir::{check_same_plugins, create_run_dir};
use crate::game::seeds::RunSeeds;
use crate::game::trainer::Trainer;
use crate::game::validate::validation_seeds;
use crate::judging::{Curriculum, RunJudge};
use crate::llm::SamplingParams;

/// Starts a fresh run with the loaded plugins: creates its directory
/// (`output.dir/output.name-NNN`, with the resolved `config.toml`), records the plugins in
/// `plugins.json` and loads both players.
pub fn start<P: Policy>(config: Config, plugins: LoadedPlugins) -> anyhow::Result<Trainer<P>> {
    let run_dir = create_run_dir(&config)?;
    plugins::write_records(&run_dir, &plugins.records)?;
    Trainer::open(config, run_dir, Box::new(plugins.judge), Box::new(plugins.curriculum), None)
}

/// Resumes the run in `run_dir` from its newest complete checkpoint. The plugins must be the
/// ones the run started with (same sha256); `config` (usually the run's own `config.toml`
/// with any overrides) is written back into the run directory.
pub fn resume<P: Policy>(
    run_dir: &Path,
    config: Config,
    plugins: LoadedPlugins,
) -> anyhow::Result<Trainer<P>> {
    check_same_plugins(run_dir, &plugins.records)?;
    std::fs::write(run_dir.join("config.toml"), config.to_toml()?)?;
    plugins::write_records(run_dir, &plugins.records)?;
    let checkpoint = latest_checkpoint(run_dir)?;
    let (judge, curriculum) = (Box::new(plugins.judge), Box::new(plugins.curriculum));
    Trainer::open(config, run_dir.to_path_buf(), judge, curriculum, Some(checkpoint))
}

fn sampling(
    config: &Config,
    temperature: f32,
    max_tokens: usize,
    stop: Vec<String>,
) -> SamplingParams {
    SamplingParams {
        max_new_tokens: max_tokens,
        temperature,
        top_p: config.game.top_p,
        seed: 0,
        stop,
    }
}

/// The rollout settings the config decides (generation seeds are set per step).
fn rollout_settings(config: &Config) -> anyhow::Result<RolloutSettings> {
    let g = &config.game;
    let prompts = AttackerPrompts::from_config(g)?;
    Ok(RolloutSettings {
        attacks_per_seed: g.attacks_per_seed,
        replies_per_prompt: g.replies_per_prompt,
        attacker_sampling: sampling(
            config,
            g.attacker_temperature(),
            g.attacker_max_tokens,
            g.attacker_stop.clone(),
        ),
        defender_sampling: sampling(
            config,
            g.defender_temperature(),
            g.defender_max_tokens,
            Vec::new(),
        ),
        direct_seed_share: g.direct_seed_share,
        defender_sampling_system_prompt: crate::game::prompts::defender_sampling_system_prompt(g)?,
        defender_sampling_prompt_template: crate::game::prompts::defender_sampling_prompt_template(
            g,
        )?,
        defender_sampling_prompt_template_benign:
            crate::game::prompts::defender_sampling_prompt_template_benign(g)?,
        defender_sampling_categories: g.defender_sampling_categories.clone(),
        defender_sampling_share: g.defender_sampling_share,
        faithfulness_gate: g.faithfulness_gate,
        faithful_threshold: g.faithful_threshold,
        optimistic_attacker: g.optimistic_attacker,
        penalize_truncated_replies: g.penalize_truncated_replies,
        defender_context: g.defender_judge_context,
        rubrics: config.plugins.rubrics.clone(),
        prompts,
    })
}

/// The newest complete checkpoint of the run in `run_dir`, to resume from; an error naming
/// the directory when there is none.
pub fn latest_checkpoint(run_dir: &Path) -> anyhow::Result<PathBuf> {
    checkpoint::latest(run_dir)?
        .ok_or_else(|| anyhow!("{}: no complete checkpoint to resume from", run_dir.display()))
}

impl<P: Policy> Trainer<P> {
    /// Opens the run in `run_dir` with this judge and curriculum: a fresh run when
    /// `checkpoint` is `None` (`run_dir` created by the caller, empty), else the run resumed
    /// from that checkpoint (see [`latest_checkpoint`]). [`start`] and [`resume`] are the
    /// usual ways in.
    pub fn open(
        config: Config,
        run_dir: PathBuf,
        judge: Box<dyn RunJudge>,
        mut curriculum: Box<dyn Curriculum>,
        checkpoint: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        config.check_files()?;
        let RunSeeds { train: seeds, harmful_val, benign_val } = RunSeeds::load(&config.data)?;
        let val_seeds = validation_seeds(&config, harmful_val, benign_val);
        let settings = rollout_settings(&config)?;

        if let Some(c) = &checkpoint {
            checkpoint::check_complete(c)?;
        }
        let state = checkpoint.as_ref().map(|c| TrainState::read(c)).transpose()?;
        let dirs = checkpoint.as_ref().map(|c| checkpoint::player_dirs(c));
        let (attacker, defender) = if config.models.adapter == Adapter::Lora {
            let resumed = dirs.as_ref().map(|d| {
                (
                    (d.attacker.as_path(), d.attacker_ema.as_path()),
                    (d.defender.as_path(), d.defender_ema.as_path()),
                )
            });
            load_lora_players(&config, resumed)?
        } else {
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
            (attacker, defender)
        };
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
            failures: FailureCounts::default(),
            last_checkpoint: checkpoint.clone(),
        };
        if let (Some(dir), Some(state)) = (checkpoint, state) {
            trainer.step = state.step;
            trainer.failures = FailureCounts {
                judgments: state.total_failures,
                curriculum: state.curriculum_failures,
            };
            trainer
                .curriculum
                .load_state(&state.curriculum_state(&dir)?)
                .context("curriculum load-state")?;
            let (fa, fd) = checkpoint::player_files(&dir);
            trainer.attacker.load_state(&fa)?;
            trainer.defender.load_state(&fd)?;
        }
        Ok(trainer)
    }
}
