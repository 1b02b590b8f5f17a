//! `[game]`: the rollout tree's shape, sampling, judging context and the attacker's
//! instruction files.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::judging::Category;

/// What the judge sees as context when comparing two defender replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JudgeContext {
    /// The attacker's rewritten prompt x (the paper's default).
    Prompt,
    /// The original seed s.
    Seed,
}

/// The rollout tree's shape and sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Game {
    /// A: attacker samples per seed (paper: 2 for DPO, 4 for GRPO).
    pub attacks_per_seed: usize,
    /// D: defender replies per valid attacker prompt (paper: 2 for DPO, 4 for GRPO).
    pub replies_per_prompt: usize,
    /// Most new tokens per attacker output (reaching it = truncated, invalid).
    pub attacker_max_tokens: usize,
    /// Most new tokens per defender reply.
    pub defender_max_tokens: usize,
    /// Max tokens of the judge model (served to judge plugins).
    pub judge_max_tokens: usize,
    /// Sampling temperature of both players (0 = greedy), unless a player has its own below.
    pub temperature: f32,
    /// The attacker's sampling temperature; unset = [`Game::temperature`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attacker_temperature: Option<f32>,
    /// The defender's sampling temperature; unset = [`Game::temperature`]. A small defender
    /// refuses far more often near greedy than at the attacker's exploratory temperature, and
    /// a DPO pair teaches refusal only when a refusal is among the sampled replies
    /// (BENCHMARKS.md, "CPU demo").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defender_temperature: Option<f32>,
    /// Nucleus sampling mass, in (0, 1].
    pub top_p: f32,
    /// Judge temperature (0 = greedy), for LLM judges.
    pub judge_temperature: f32,
    /// Unfaithful attacker prompts get reward -1 and no defender rollouts.
    pub faithfulness_gate: bool,
    /// The attacker is judged on the defender's best reply to its prompt (else a random one).
    pub optimistic_attacker: bool,
    /// A defender reply that hit `defender_max_tokens` gets reward -1 without being judged.
    /// The paper does this; very short CPU demos may turn it off.
    pub penalize_truncated_replies: bool,
    /// What the judge sees as context for defender replies.
    pub defender_judge_context: JudgeContext,
    /// Share of pairwise comparisons sent to the judge with A and B exchanged (scores flipped
    /// back), against position bias. The paper: 0.
    pub swap_share: f64,
    /// Share of pairwise comparisons judged in both orders: scores averaged, agreement logged
    /// as `judge/swap_agreement`. The paper: 0.
    pub both_orders_share: f64,
    /// A faithfulness score at or above this counts as faithful (rubric scale 0-10).
    pub faithful_threshold: f32,
    /// The attacker's instruction for harmful seeds: a text file in which `{seed}` is replaced
    /// by the seed text.
    pub attacker_prompt_harmful: PathBuf,
    /// The attacker's instruction for benign seeds (a text file with `{seed}`).
    pub attacker_prompt_benign: PathBuf,
    /// Assistant prefill starting every attacker answer (part of the prompt, not trained);
    /// `""` = none.
    #[serde(with = "super::empty_is_none")]
    pub attacker_prefill: Option<String>,
    /// Stop strings of attacker generation (the closing tag ends the attacker's job).
    pub attacker_stop: Vec<String>,
    /// Share of each step's seeds, per category (rounded to the nearest count), that the
    /// defender answers as written, without an attacker rewrite: a curriculum-like knob that
    /// mixes the eval's distribution (plain seeds) into training. Those seeds form no attacker
    /// group. In [0, 1]; the paper: 0 (every seed goes through the attacker).
    pub direct_seed_share: f64,
    /// Context distillation (Askell et al. 2021, "A General Language Assistant as a
    /// Laboratory for Alignment", section 3): a text file whose content is the system message
    /// in front of the defender's prompt ONLY while its replies are sampled; the policy and
    /// reference log-probs of the loss are computed on the prompt without it, so the defender
    /// learns to answer bare prompts the way it answers under the system message. Unset (the
    /// default and the paper): the defender samples with the prompt it is trained on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defender_sampling_system_prompt: Option<PathBuf>,
    /// Context distillation in the user turn: a text file with one `{prompt}` slot; while the
    /// defender's replies are sampled its user turn is this text with the prompt in the slot,
    /// while the loss scores them on the prompt alone. A 135M model follows an instruction in
    /// the user turn far more often than one in the system turn (BENCHMARKS.md, "CPU demo").
    /// Unset (the default and the paper): the prompt as it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defender_sampling_prompt_template: Option<PathBuf>,
    /// The user-turn template (one `{prompt}` slot) that benign seeds' replies are sampled
    /// under instead of `defender_sampling_prompt_template`. Its use is the other half of a
    /// contrast (RLCD's negative prompt, Yang et al. 2023): a template that provokes refusals
    /// of harmless requests puts "refuse" beside the model's own answers in every benign
    /// group, so the judge's pair teaches the defender not to refuse THESE, as the harmful
    /// groups teach it to refuse THOSE. The pull is strong: on the 135M CPU demo a
    /// refuse-everything template here cancelled the harmful gain (the benign pairs push down
    /// the very refusal the harmful pairs push up; BENCHMARKS.md, "CPU demo", session 8).
    /// Unset (the default): benign seeds use `defender_sampling_prompt_template`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub defender_sampling_prompt_template_benign: Option<PathBuf>,
    /// The seed categories whose defender replies are sampled under the two settings above;
    /// the others are sampled on the prompt as it is. Default: both. `["harmful"]` distils
    /// the instruction where it applies and keeps the benign replies the model's own (a 135M
    /// model told "refuse if harmful" also refuses a share of harmless requests, and in a
    /// group with no real answer the judge's best is a non-answer: BENCHMARKS.md, "CPU
    /// demo").
    pub defender_sampling_categories: Vec<Category>,
    /// Share of each prompt's `replies_per_prompt` replies (rounded to the nearest count)
    /// sampled under the two settings above; the rest are sampled on the bare prompt, so one
    /// group holds both what the model says when told and what it says on its own, and the
    /// judge's pair contrasts them (as RLCD, Yang et al. 2023, builds its pairs from a
    /// positive and a plain prompt). In [0, 1]; default 1 (every reply).
    pub defender_sampling_share: f64,
}

impl Game {
    /// The attacker's sampling temperature (its own, else the shared one).
    pub fn attacker_temperature(&self) -> f32 {
        self.attacker_temperature.unwrap_or(self.temperature)
    }

    /// The defender's sampling temperature (its own, else the shared one).
    pub fn defender_temperature(&self) -> f32 {
        self.defender_temperature.unwrap_or(self.temperature)
    }
}

impl Default for Game {
    fn default() -> Self {
        Self {
            attacks_per_seed: 2,
            replies_per_prompt: 2,
            attacker_max_tokens: 2048,
            defender_max_tokens: 2048,
            judge_max_tokens: 8192,
            temperature: 0.6,
            attacker_temperature: None,
            defender_temperature: None,
            top_p: 0.9,
            judge_temperature: 0.0,
            faithfulness_gate: true,
            optimistic_attacker: true,
            penalize_truncated_replies: true,
            defender_judge_context: JudgeContext::Prompt,
            swap_share: 0.0,
            both_orders_share: 0.0,
            faithful_threshold: 5.0,
            attacker_prompt_harmful: PathBuf::from("examples/prompts/attacker_harmful.txt"),
            attacker_prompt_benign: PathBuf::from("examples/prompts/attacker_benign.txt"),
            attacker_prefill: Some("<think>".into()),
            attacker_stop: vec!["</prompt>".into()],
            direct_seed_share: 0.0,
            defender_sampling_system_prompt: None,
            defender_sampling_prompt_template: None,
            defender_sampling_prompt_template_benign: None,
            defender_sampling_categories: vec![Category::Harmful, Category::Benign],
            defender_sampling_share: 1.0,
        }
    }
}
