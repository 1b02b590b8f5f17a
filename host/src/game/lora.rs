//! LoRA players (`models.adapter = "lora"`): the frozen base model is loaded ONCE per base
//! folder (attacker and defender starting from the same folder share it), and every model the
//! game needs is a view of it:
//!
//! - each player's `current` model: a LoRA adapter set in the model dtype (fresh as PEFT
//!   initialises one, `B = 0`, or read from a PEFT adapter folder), the only weights AdamW
//!   sees;
//! - each player's EMA copy (sampler and DPO/IPO reference under `sampler = "ema"`): an **f32**
//!   adapter set, whatever the model dtype, so `ema <- d ema + (1 - d) theta` keeps updates
//!   smaller than a bf16 ulp;
//! - the fixed reference (on-policy DPO/IPO, GRPO's KL anchor): the base with adapters off, or
//!   the starting adapter when the run starts from one (the initial policy either way).
//!
//! Checkpoints save the adapters in PEFT layout (`adapter_config.json` +
//! `adapter_model.safetensors`, through [`Policy::save_pretrained`]); resuming reads them back
//! onto the base.

use std::path::Path;

use anyhow::Context;
use tch::Kind;

use crate::game::policy::Policy;
use crate::model::LoraConfig;

/// The models of one LoRA player, all views of one base.
#[derive(Debug)]
pub struct LoraPlayer<P> {
    pub current: P,
    pub ema: Option<P>,
    pub initial: Option<P>,
}

/// What a player needs besides its base: read from the run config by the trainer.
#[derive(Debug, Clone, Copy)]
pub struct LoraPlan<'a> {
    pub config: &'a LoraConfig,
    /// A PEFT adapter to start from instead of a fresh one.
    pub start: Option<&'a Path>,
    /// Whether the method samples from (and references) an EMA copy.
    pub ema: bool,
    /// Whether the method needs the fixed initial model (on-policy reference, GRPO anchor).
    pub initial: bool,
    /// Seed of the fresh adapter's `A` matrices.
    pub seed: u64,
    /// The model dtype (the players' adapters); EMA adapters are always f32.
    pub kind: Kind,
}

/// Builds a player's models on `base`; `resumed` holds the checkpoint's `(current, ema)`
/// adapter folders.
pub fn player<P: Policy>(
    name: &str,
    base: &P,
    plan: &LoraPlan<'_>,
    resumed: Option<(&Path, &Path)>,
) -> anyhow::Result<LoraPlayer<P>> {
    let start = |kind: Kind| -> anyhow::Result<P> {
        match plan.start {
            Some(dir) => base.load_adapter(dir, kind),
            None => base.with_new_adapter(plan.config, plan.seed),
        }
    };
    let current = match resumed {
        Some((dir, _)) => base.load_adapter(dir, plan.kind),
        None => start(plan.kind),
    }
    .with_context(|| format!("the {name}'s LoRA adapter"))?;
    let ema = match (plan.ema, resumed) {
        (false, _) => None,
        (true, Some((_, dir))) => Some(base.load_adapter(dir, Kind::Float)?),
        (true, None) => Some(current.adapter_copy(Kind::Float)?),
    };
    let initial = match (plan.initial, plan.start) {
        (false, _) => None,
        (true, Some(_)) => Some(start(plan.kind)?),
        (true, None) => Some(base.without_adapter()?),
    };
    Ok(LoraPlayer { current, ema, initial })
}

/// Whether two model folders are the same base (same canonical path).
pub fn same_base(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
