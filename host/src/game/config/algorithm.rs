//! `[algorithm]`: the preference-learning method, the optimiser and its schedule, shared by
//! both players.

use super::{ConfigError, ConfigErrorKind};
use serde::{Deserialize, Serialize};

/// The preference-learning method, the same for both players.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// DPO with the EMA "mirror descent" reference (DPO-MD, the paper's main method).
    Dpo,
    /// IPO with the EMA reference (IPO-MD).
    Ipo,
    /// GRPO with per-token k3 KL to the initial model and truncated importance ratios.
    Grpo,
}

/// Which policy samples the rollouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sampler {
    /// The EMA copy samples and is the reference (the paper).
    Ema,
    /// The current weights sample; the reference is the frozen initial model (ablation).
    Current,
}

/// What GRPO subtracts from a reward to form the advantage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Baseline {
    /// Mean over the player's whole batch of the step (the paper).
    Batch,
    /// Mean over the group (the replies to one prompt, the attacks of one seed).
    Group,
}

/// How a player's groups of one step become optimiser updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateOrder {
    /// Two updates per step: one on the harmful groups, then one on the benign groups, each
    /// the mean over its own category (equal weight per category, the paper's order).
    PerCategory,
    /// One update on all groups of the step, the mean over both categories together.
    Pooled,
}

/// The learning algorithm and optimiser, identical for both players.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Algorithm {
    /// DPO, IPO or GRPO.
    pub method: Method,
    /// KL strength: DPO/IPO beta, GRPO k3-KL coefficient (TRL's `beta`).
    pub beta: f64,
    /// Weight of RPO's negative log-likelihood of the chosen completions added to the DPO/IPO
    /// loss (TRL's `rpo_alpha`; Pang et al. 2024, eq. 3, use 1). 0 = off (the paper).
    pub rpo_alpha: f64,
    /// A refusal that is the rejected completion of every benign defender pair (DPO/IPO),
    /// against the group's best reply; unset (the default and the paper): the group's worst
    /// reply. A refusal of a harmless request is known to be wrong without asking the judge,
    /// so this is a counterfactual negative, the benign half of the contrast the harmful
    /// pairs draw ("refuse THIS"): the same tokens the harmful pairs' chosen refusals raise
    /// are lowered on benign prompts. Off-policy text: DPO scores it under both the policy
    /// and the reference like any completion. Measured in BENCHMARKS.md "CPU demo".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benign_rejected_refusal: Option<String>,
    /// Weight of the retain term of the defender's loss: the per-token negative
    /// log-likelihood of the frozen initial defender's greedy replies to the step's benign
    /// prompts (the step's "retain set", [`crate::game::retain`]), added to its update's loss
    /// as RPO's term is. The preference pairs teach "refuse THIS" on harmful prompts; a small
    /// model generalises that to benign orders that look alike, and this term holds their
    /// answers where the initial model had them (the retain loss of unlearning and
    /// circuit-breaker training: Li et al. 2024, "The WMDP Benchmark", RMU; Zou et al. 2024,
    /// "Improving Alignment and Robustness with Circuit Breakers"). 0 = off (the default and
    /// the paper). Keeps the initial defender in memory.
    pub benign_retain_alpha: f64,
    /// Prompts in each step's retain set (with `benign_retain_alpha > 0`): the step's benign
    /// prompts, then benign training seeds drawn at random (without replacement, from those
    /// not already in the set; seeded by `(seed, step)`) up to this number. 0 (the default):
    /// the step's benign prompts only. A wider set anchors more of the benign orders the
    /// defender must keep answering than the step's own 32 do, at the same weight (the term
    /// is a per-token mean), for one greedy decode and one forward/backward per extra prompt
    /// (BENCHMARKS.md "CPU demo").
    pub benign_retain_size: usize,
    /// Which weights sample the rollouts.
    pub sampler: Sampler,
    /// ema <- decay * ema + (1 - decay) * theta after every step.
    pub ema_decay: f64,
    /// AdamW peak learning rate (key `learning_rate`, old name `lr`).
    #[serde(rename = "learning_rate", alias = "lr")]
    pub lr: f64,
    /// AdamW decay rate of the first-moment average (transformers' `adam_beta1`).
    pub adam_beta1: f64,
    /// AdamW decay rate of the second-moment average (transformers' `adam_beta2`).
    pub adam_beta2: f64,
    /// AdamW's epsilon added to the second-moment root (transformers' `adam_epsilon`).
    pub adam_epsilon: f64,
    /// The old key `betas = [beta1, beta2]`, read from files and `--set` items and moved into
    /// [`Algorithm::adam_beta1`] and [`Algorithm::adam_beta2`] while parsing
    /// ([`Algorithm::fold_old_betas`]); always `None` in a parsed config, never written.
    #[serde(default, skip_serializing)]
    pub(super) betas: Option<[f64; 2]>,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// The cosine schedule decays the learning rate to `min_lr_rate * learning_rate`.
    #[serde(rename = "min_lr_rate", alias = "final_lr_ratio")]
    pub final_lr_ratio: f64,
    /// Steps of linear warm-up.
    pub warmup_steps: usize,
    /// Global gradient-norm clip per player (0 = off).
    #[serde(rename = "max_grad_norm", alias = "grad_clip")]
    pub grad_clip: f64,
    /// Training steps (key `max_steps`, old name `steps`).
    #[serde(rename = "max_steps", alias = "steps")]
    pub steps: usize,
    /// Seeds of each category per step (the harmful ones when `benign_seeds_per_step` is
    /// set).
    pub seeds_per_category: usize,
    /// Benign seeds per step when they should differ from `seeds_per_category`; unset (the
    /// default, and the paper: one harmful and one benign batch of 32): the same. A larger
    /// benign batch weighs answering harmless requests more in each update, as safety
    /// tuning mixes more helpfulness data than safety data (Bianchi et al. 2024,
    /// "Safety-Tuned LLaMAs", ICLR; measured here in BENCHMARKS.md "CPU demo").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benign_seeds_per_step: Option<usize>,
    /// GRPO importance-ratio truncation.
    pub grpo_ratio_cap: f64,
    /// GRPO advantage baseline.
    pub grpo_baseline: Baseline,
    /// Sequences per forward/backward chunk (gradients are accumulated): bounds memory.
    #[serde(rename = "per_device_train_batch_size", alias = "micro_batch")]
    pub micro_batch: usize,
    /// Per-category updates (the paper) or one pooled update per step.
    pub update_order: UpdateOrder,
    /// Activation checkpointing per decoder layer (transformers' `gradient_checkpointing`):
    /// keeps only each layer's input and recomputes the layer in backward.
    pub gradient_checkpointing: bool,
    /// Master seed: every random choice of the run derives from (seed, step, purpose).
    pub seed: u64,
}

impl Default for Algorithm {
    fn default() -> Self {
        Self {
            method: Method::Dpo,
            beta: 0.1,
            rpo_alpha: 0.0,
            benign_rejected_refusal: None,
            benign_retain_alpha: 0.0,
            benign_retain_size: 0,
            sampler: Sampler::Ema,
            ema_decay: 0.95,
            lr: 1e-6,
            adam_beta1: 0.9,
            adam_beta2: 0.95,
            adam_epsilon: 1e-8,
            betas: None,
            weight_decay: 0.1,
            final_lr_ratio: 0.2,
            warmup_steps: 0,
            grad_clip: 1.0,
            steps: 1000,
            seeds_per_category: 32,
            benign_seeds_per_step: None,
            grpo_ratio_cap: 2.0,
            grpo_baseline: Baseline::Batch,
            micro_batch: 8,
            update_order: UpdateOrder::PerCategory,
            gradient_checkpointing: false,
            seed: 0,
        }
    }
}

/// What `player` (`"attacker"` or `"defender"`) keeps its frozen initial model for, in a
/// fixed order: GRPO's KL anchor (`"KL anchor"`), on-policy DPO/IPO's reference
/// (`sampler = "current"`: `"reference"`), both players; the source of the defender's retain
/// set (`retain`: `benign_retain_alpha > 0`: `"retain set"`). Empty: the player keeps none.
/// The memory plan names its term with these.
pub fn initial_uses(
    method: Method,
    sampler: Sampler,
    retain: bool,
    player: &str,
) -> Vec<&'static str> {
    let mut uses = Vec::new();
    if method == Method::Grpo {
        uses.push("KL anchor");
    }
    if sampler == Sampler::Current {
        uses.push("reference");
    }
    if retain && player == "defender" {
        uses.push("retain set");
    }
    uses
}

/// Whether `player` keeps its frozen initial model ([`initial_uses`] is not empty). The one
/// rule for loading players, their LoRA views and the memory plan.
pub fn keeps_initial(method: Method, sampler: Sampler, retain: bool, player: &str) -> bool {
    !initial_uses(method, sampler, retain, player).is_empty()
}

impl Algorithm {
    /// Seeds of `category` per step: `seeds_per_category`, or `benign_seeds_per_step` for
    /// benign seeds when it is set.
    pub fn seeds_per_step(&self, category: crate::judging::Category) -> usize {
        match category {
            crate::judging::Category::Benign => {
                self.benign_seeds_per_step.unwrap_or(self.seeds_per_category)
            }
            crate::judging::Category::Harmful => self.seeds_per_category,
        }
    }

    /// Whether `player` (`"attacker"` or `"defender"`) keeps its frozen initial model
    /// ([`keeps_initial`]).
    pub fn keeps_initial(&self, player: &str) -> bool {
        keeps_initial(self.method, self.sampler, self.benign_retain_alpha > 0.0, player)
    }

    /// Moves the old `betas = [beta1, beta2]` pair, when one was read, into `adam_beta1` and
    /// `adam_beta2`. `new_given` says whether the same source (the file, or the `--set`
    /// items) also gave either new key.
    ///
    /// # Errors
    /// Both spellings from one source: which one wins would be a guess.
    pub(super) fn fold_old_betas(&mut self, new_given: bool) -> Result<(), ConfigError> {
        let Some([beta1, beta2]) = self.betas.take() else { return Ok(()) };
        if new_given {
            return Err(ConfigError::new(
                ConfigErrorKind::DuplicateKey,
                "the old name of `algorithm.adam_beta1` and `algorithm.adam_beta2`, given \
                 together with them; keep one spelling",
            )
            .field("algorithm.betas"));
        }
        (self.adam_beta1, self.adam_beta2) = (beta1, beta2);
        Ok(())
    }
}

/// Whether the TOML tree `root` gives `algorithm.adam_beta1` or `algorithm.adam_beta2`.
pub(super) fn gives_adam_betas(root: &toml::Value) -> bool {
    let algorithm = root.get("algorithm");
    ["adam_beta1", "adam_beta2"].iter().any(|k| algorithm.and_then(|a| a.get(k)).is_some())
}

/// Rewrites an old `algorithm.betas = [beta1, beta2]` of a parsed file into `adam_beta1` and
/// `adam_beta2` (so that a `--set` of either new key replaces the file's value). Leaves the
/// tree alone when the file also gives a new key or `betas` is not a pair: parsing the file
/// reports those.
pub(super) fn canonical_betas(root: &mut toml::Value) {
    if gives_adam_betas(root) {
        return;
    }
    let Some(algorithm) = root.get_mut("algorithm").and_then(toml::Value::as_table_mut) else {
        return;
    };
    if let Some(toml::Value::Array(pair)) = algorithm.get("betas")
        && let [beta1, beta2] = pair.as_slice()
    {
        let (beta1, beta2) = (beta1.clone(), beta2.clone());
        algorithm.remove("betas");
        algorithm.insert("adam_beta1".into(), beta1);
        algorithm.insert("adam_beta2".into(), beta2);
    }
}
