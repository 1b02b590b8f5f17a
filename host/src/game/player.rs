//! A player of the game (the attacker or the defender): its trained weights, the copies its
//! method needs (the EMA copy, the frozen initial model) and its optimiser, loaded fresh or
//! from a checkpoint.
//!
//! The weights are any [`Policy`]: today a full model; a LoRA adapter on a shared frozen base
//! is meant to be another `Policy` held here, so the loop does not change with it.

use std::path::Path;

use anyhow::Context;
use tch::Kind;

use crate::game::config::{Config, Method, Sampler};
use crate::game::optim::AdamW;
use crate::game::policy::Policy;

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
