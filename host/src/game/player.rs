//! A player of the game (the attacker or the defender): its trained weights, the copies its
//! method needs (the EMA copy with its f32 masters, the frozen initial model) and its
//! optimiser, loaded fresh or from a checkpoint.
//!
//! The weights are any [`Policy`]: a full model, or (`models.adapter = "lora"`) LoRA adapter
//! views of one shared frozen base ([`load_lora_players`], [`crate::game::lora`]); the loop
//! does not change with it.

use std::path::Path;

use anyhow::Context;
use tch::Tensor;

use crate::game::checkpoint::PlayerFiles;
use crate::game::config::{Algorithm, Config, Sampler};
use crate::game::ema::EmaMasters;
use crate::game::lora::{self, LoraPlan};
use crate::game::optim::AdamW;
use crate::game::policy::Policy;
use crate::game::rng::{PURPOSE_LORA_INIT_ATTACKER, PURPOSE_LORA_INIT_DEFENDER, derive_seed};

/// One player: the trained weights, the copies the method needs, and its optimiser.
#[derive(Debug)]
pub struct Player<P: Policy> {
    /// `attacker` or `defender`: the prefix of this player's metrics.
    pub name: &'static str,
    /// The weights being trained.
    pub current: P,
    /// The EMA copy (sampler and DPO/IPO reference) when `algorithm.sampler = "ema"`.
    pub ema: Option<P>,
    /// The frozen initial model: the reference for on-policy DPO/IPO, the KL anchor of GRPO.
    pub initial: Option<P>,
    /// AdamW state of `current`.
    pub optimizer: AdamW,
    /// f32 masters of the EMA copy's variables held in bf16/f16 (empty in f32).
    pub ema_masters: EmaMasters,
}

/// A fresh AdamW with the config's `adam_beta1`, `adam_beta2`, `adam_epsilon` and
/// `weight_decay`.
fn optimizer(a: &Algorithm) -> AdamW {
    let mut optimizer = AdamW::new(a.adam_beta1, a.adam_beta2, a.weight_decay);
    optimizer.eps = a.adam_epsilon;
    optimizer
}

impl<P: Policy> Player<P> {
    /// Loads a player from `initial_dir`; when resuming, `resumed` holds the checkpoint's
    /// `(current_dir, ema_dir)` (the initial model is still read from `initial_dir`).
    ///
    /// Errors: a model that does not load (naming the player and the folder).
    pub fn load(
        name: &'static str,
        initial_dir: &Path,
        resumed: Option<(&Path, &Path)>,
        config: &Config,
    ) -> anyhow::Result<Self> {
        let device = config.models.device;
        let kind = config.models.dtype.kind();
        let a = &config.algorithm;
        let load = |dir: &Path| {
            P::load(dir, device, kind)
                .with_context(|| format!("loading the {name} from {}", dir.display()))
        };
        let current = load(resumed.map_or(initial_dir, |r| r.0))?;
        let ema = match (a.sampler, resumed) {
            (Sampler::Ema, Some((_, ema_dir))) => Some(load(ema_dir)?),
            (Sampler::Ema, None) => Some(current.try_clone()?),
            (Sampler::Current, _) => None,
        };
        let needs_initial = a.keeps_initial(name);
        let initial = match (needs_initial, resumed) {
            (false, _) => None,
            (true, None) => Some(current.try_clone()?),
            (true, Some(_)) => Some(load(initial_dir)?),
        };
        let mut current = current;
        // Copies start without checkpointing: only the trained weights run backward.
        current.set_gradient_checkpointing(a.gradient_checkpointing);
        Ok(Self {
            name,
            current,
            ema,
            initial,
            optimizer: optimizer(a),
            ema_masters: EmaMasters::new(),
        })
    }

    /// A LoRA player on `base`: its adapter (fresh, from `start`, or from the checkpoint's
    /// `resumed` folders), its f32 EMA adapter and its fixed reference (see
    /// [`crate::game::lora`]).
    pub fn load_lora(
        name: &'static str,
        base: &P,
        start: Option<&Path>,
        resumed: Option<(&Path, &Path)>,
        config: &Config,
        seed: u64,
    ) -> anyhow::Result<Self> {
        let a = &config.algorithm;
        let lora_config = config.models.lora.config();
        let plan = LoraPlan {
            config: &lora_config,
            start,
            ema: a.sampler == Sampler::Ema,
            initial: a.keeps_initial(name),
            seed,
            kind: config.models.dtype.kind(),
            gradient_checkpointing: a.gradient_checkpointing,
        };
        let models = lora::player(name, base, &plan, resumed)?;
        Ok(Self {
            name,
            current: models.current,
            ema: models.ema,
            initial: models.initial,
            optimizer: optimizer(a),
            ema_masters: EmaMasters::new(),
        })
    }

    /// Moves the EMA copy (if any) toward the current weights: `ema <- d ema + (1 - d)
    /// theta` in f32, theta being the optimiser's f32 master weights where it keeps them
    /// (bf16/f16 models; see [`EmaMasters`]).
    pub fn update_ema(&mut self, decay: f64) -> anyhow::Result<()> {
        let Some(e) = &self.ema else { return Ok(()) };
        let opt = &self.optimizer;
        self.ema_masters.update(
            e.var_store(),
            self.current.var_store(),
            &|name| opt.master(name).map(Tensor::shallow_clone),
            decay,
        )
    }

    /// Writes the optimiser state and the EMA masters (none for an f32 EMA copy) to the two
    /// files of a checkpoint ([`crate::game::checkpoint::PlayerFiles`]).
    pub fn save_state(&self, files: &PlayerFiles) -> anyhow::Result<()> {
        self.optimizer.save(&files.optimizer)?;
        self.ema_masters.save(&files.ema_masters)
    }

    /// Restores what [`Player::save_state`] wrote.
    ///
    /// # Errors
    /// A [`crate::game::checkpoint::CheckpointError`] naming the state file and the tensor
    /// that does not fit this player's model.
    pub fn load_state(
        &mut self,
        files: &PlayerFiles,
    ) -> Result<(), crate::game::checkpoint::CheckpointError> {
        self.optimizer.load(&files.optimizer, self.current.var_store())?;
        match &self.ema {
            Some(e) => self.ema_masters.load(&files.ema_masters, e.var_store()),
            None => Ok(()),
        }
    }

    /// The weights that sample the rollouts: the EMA copy, else the current weights.
    pub fn sampler_mut(&mut self) -> &mut P {
        self.ema.as_mut().unwrap_or(&mut self.current)
    }

    /// The DPO/IPO reference: the EMA copy, else the initial model.
    pub fn reference(&self) -> &P {
        self.ema
            .as_ref()
            .or(self.initial.as_ref())
            .expect("a player has an EMA copy or an initial model")
    }
}

/// A player's `(current, ema)` folders in a checkpoint.
pub type CurrentAndEma<'a> = (&'a Path, &'a Path);

/// Both players of a `models.adapter = "lora"` run: the base folder is loaded once when the
/// attacker and the defender name the same one (else once each), frozen, and every model
/// of both players is an adapter view of it. `resumed` holds the checkpoint's
/// `((attacker, attacker_ema), (defender, defender_ema))` adapter folders.
pub fn load_lora_players<P: Policy>(
    config: &Config,
    resumed: Option<(CurrentAndEma<'_>, CurrentAndEma<'_>)>,
) -> anyhow::Result<(Player<P>, Player<P>)> {
    let device = config.models.device;
    let kind = config.models.dtype.kind();
    let m = &config.models;
    let load = |dir: &Path| {
        P::load(dir, device, kind)
            .with_context(|| format!("loading the LoRA base model from {}", dir.display()))
    };
    let attacker_base = load(&m.attacker)?;
    let defender_base =
        if lora::same_base(&m.attacker, &m.defender) { None } else { Some(load(&m.defender)?) };
    let seed = config.algorithm.seed;
    let attacker = Player::load_lora(
        "attacker",
        &attacker_base,
        m.lora.attacker_adapter.as_deref(),
        resumed.map(|r| r.0),
        config,
        derive_seed(seed, 0, PURPOSE_LORA_INIT_ATTACKER),
    )?;
    let defender = Player::load_lora(
        "defender",
        defender_base.as_ref().unwrap_or(&attacker_base),
        m.lora.defender_adapter.as_deref(),
        resumed.map(|r| r.1),
        config,
        derive_seed(seed, 0, PURPOSE_LORA_INIT_DEFENDER),
    )?;
    Ok((attacker, defender))
}
