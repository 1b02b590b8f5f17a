//! What the plan is computed from: model shapes (`config.json`), LoRA settings, and the
//! worst-case token lengths of the configured game (tokenised prompts), read from a
//! [`Config`] without loading any weights.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::game::config::{Config, Dtype, Method, Sampler, UpdateOrder};
use crate::game::prompts;
use crate::model::decoder::DecoderSpec;
use crate::model::{ChatTemplate, Message, ModelConfig};

/// LoRA settings, named as PEFT's `LoraConfig` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterPlan {
    /// Rank of each adapter.
    pub r: i64,
    /// Adapted projections by leaf name (`q_proj`, ..., `down_proj`).
    pub target_modules: Vec<String>,
}

impl AdapterPlan {
    /// Every attention and MLP projection (the default `target_modules`).
    pub const ALL_TARGETS: [&'static str; 7] =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// Adapter parameters of one model: `sum over layers and targets of r * (in + out)`.
    ///
    /// Errors: a target that is not one of [`AdapterPlan::ALL_TARGETS`].
    pub fn parameters(&self, spec: &DecoderSpec) -> Result<u64> {
        let per_layer: i64 = self
            .target_modules
            .iter()
            .map(|t| projection_shape(spec, t).map(|(out, inp)| self.r * (inp + out)))
            .sum::<Result<i64>>()?;
        Ok((per_layer * spec.num_layers) as u64)
    }

    /// Weights of the projections the adapter targets in one model (`sum over layers and
    /// targets of in * out`): what a merged copy for sampling holds
    /// (`CausalLm::sampling`).
    ///
    /// Errors: a target that is not one of [`AdapterPlan::ALL_TARGETS`].
    pub fn targeted_weights(&self, spec: &DecoderSpec) -> Result<u64> {
        let per_layer: i64 = self
            .target_modules
            .iter()
            .map(|t| projection_shape(spec, t).map(|(out, inp)| inp * out))
            .sum::<Result<i64>>()?;
        Ok((per_layer * spec.num_layers) as u64)
    }

    /// Whether every projection is targeted (then a merged copy replaces the base's own
    /// transposed projections for decoding).
    pub(super) fn targets_all(&self) -> bool {
        Self::ALL_TARGETS.iter().all(|t| self.target_modules.iter().any(|m| m == t))
    }

    /// Adapter outputs per token and layer (`r` per target), saved for backward.
    pub(super) fn ranks_per_layer(&self) -> i64 {
        self.r * self.target_modules.len() as i64
    }
}

/// `(out_features, in_features)` of a decoder projection.
fn projection_shape(spec: &DecoderSpec, module: &str) -> Result<(i64, i64)> {
    let (h, i) = (spec.hidden_size, spec.intermediate_size);
    let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
    Ok(match module {
        "q_proj" => (q, h),
        "k_proj" | "v_proj" => (kv, h),
        "o_proj" => (h, q),
        "gate_proj" | "up_proj" => (i, h),
        "down_proj" => (h, i),
        other => bail!(
            "target_modules: `{other}` is not a projection; expected one of {}",
            AdapterPlan::ALL_TARGETS.join(", ")
        ),
    })
}

/// Token lengths the plan assumes (worst case), and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Lengths {
    /// Longest attacker prompt: chat template + instruction with the longest seed + prefill.
    pub attacker_prompt: usize,
    /// Longest defender prompt: chat template (and sampling template and system prompt, when
    /// set) around an attacker completion of `attacker_completion` tokens or, when seeds go
    /// to the defender as written (`game.direct_seed_share`), the longest seed.
    pub defender_prompt: usize,
    /// `game.attacker_max_tokens`.
    pub attacker_completion: usize,
    /// `game.defender_max_tokens`.
    pub defender_completion: usize,
    /// How the prompt lengths were measured (tokenizer or estimate).
    pub source: String,
}

/// Everything the plan depends on, read from a [`Config`] by [`PlanInputs::from_config`].
#[derive(Debug, Clone)]
pub struct PlanInputs {
    /// `models.device`.
    pub device: String,
    /// `models.dtype`.
    pub dtype: Dtype,
    /// Attacker shapes (its `config.json`).
    pub attacker: DecoderSpec,
    /// Defender shapes.
    pub defender: DecoderSpec,
    /// Attacker and defender start from the same folder: with adapters, one frozen base
    /// serves both.
    pub same_base: bool,
    /// The judge model's shapes when it is a local folder (`models.judge`).
    pub judge: Option<DecoderSpec>,
    /// `algorithm.method`.
    pub method: Method,
    /// `algorithm.sampler`.
    pub sampler: Sampler,
    /// Whether the defender trains on a retain set (`algorithm.benign_retain_alpha > 0`),
    /// which keeps its initial model.
    pub retain: bool,
    /// Whether the attacker generates rewrites ([`Config::attacker_writes`]): without, no
    /// attacker batch and (full fine-tuning) no attacker decode layout.
    pub attacker_writes: bool,
    /// Whether the attacker is ever updated ([`Config::attacker_learns`]): without, it has no
    /// gradients, AdamW state or update phase.
    pub attacker_learns: bool,
    /// LoRA players (`None`: full fine-tuning).
    pub adapter: Option<AdapterPlan>,
    /// Activation checkpointing per decoder layer.
    pub gradient_checkpointing: bool,
    /// `algorithm.update_order`: one update per category (the paper) or one pooled.
    pub update_order: UpdateOrder,
    /// Whether validation generates (`validation.every > 0` with validation seeds): with
    /// full fine-tuning it decodes from the defender's trained weights.
    pub validation: bool,
    /// `algorithm.per_device_train_batch_size` (pairs for DPO/IPO, samples for GRPO).
    pub micro_batch: usize,
    /// `algorithm.seeds_per_category`: harmful seeds per step.
    pub seeds_per_category: usize,
    /// Benign seeds per step (`algorithm.benign_seeds_per_step`, else `seeds_per_category`).
    pub benign_seeds: usize,
    /// `game.attacks_per_seed` (A).
    pub attacks_per_seed: usize,
    /// `game.replies_per_prompt` (D).
    pub replies_per_prompt: usize,
    /// Distinct prompts among a defender group's D replies, 1 or 2: with a sampling
    /// instruction (system prompt or template) and `game.defender_sampling_share` leaving
    /// some replies bare, the instructed and the bare prompt. Rows that repeat a prompt share
    /// its prefill.
    pub defender_prompt_variants: usize,
    /// `game.judge_max_tokens`.
    pub judge_max_tokens: usize,
    /// Worst-case lengths.
    pub lengths: Lengths,
}

fn spec_of(dir: &Path) -> Result<DecoderSpec> {
    let path = dir.join("config.json");
    let (config, _) = ModelConfig::from_file(&path)?;
    config.decoder_spec().with_context(|| format!("{}", path.display()))
}

/// Tokens of `text` with the tokenizer of `dir`, or ~4 bytes per token without one.
fn count_tokens(dir: &Path, text: &str) -> Result<(usize, bool)> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Ok((text.len().div_ceil(4), false));
    }
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let enc = tok.encode(text, false).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((enc.len(), true))
}

/// The chat-rendered prompt of one user turn (plus prefill), or the bare text plus a fixed
/// allowance of 32 tokens' worth of bytes when the folder has no template.
fn render(dir: &Path, user: &str, prefill: Option<&str>) -> Result<String> {
    let text = match ChatTemplate::from_dir(dir)? {
        Some(t) => t.render(&[Message::new("user", user)], true)?,
        None => format!("{}{user}", " ".repeat(128)),
    };
    Ok(text + prefill.unwrap_or(""))
}

impl PlanInputs {
    /// Whether `player` keeps its frozen initial model (the config's rule,
    /// [`crate::game::config::keeps_initial`]).
    pub fn keeps_initial(&self, player: &str) -> bool {
        crate::game::config::keeps_initial(self.method, self.sampler, self.retain, player)
    }

    /// What `player` keeps its frozen initial model for ([`crate::game::config::initial_uses`]).
    pub fn initial_uses(&self, player: &str) -> Vec<&'static str> {
        crate::game::config::initial_uses(self.method, self.sampler, self.retain, player)
    }

    /// Why the attacker is never updated (`None` when it is): the formula of the plan's
    /// zero-byte line in place of its gradients, optimiser state and update.
    pub fn attacker_idle_reason(&self) -> Option<&'static str> {
        if !self.attacker_writes {
            Some("game.direct_seed_share = 1: every seed reaches the defender as written")
        } else if !self.attacker_learns {
            Some("game.attacks_per_seed = 1: DPO/IPO pair two rewrites of a seed, so no pair forms")
        } else {
            None
        }
    }

    /// Reads shapes, lengths and settings from the configuration's files (no weights).
    ///
    /// `adapter` and `gradient_checkpointing` are the planned values when the config does
    /// not carry them.
    pub fn from_config(
        config: &Config,
        adapter: Option<AdapterPlan>,
        gradient_checkpointing: bool,
    ) -> Result<Self> {
        let m = &config.models;
        let attacker = spec_of(&m.attacker)?;
        let defender = spec_of(&m.defender)?;
        let judge = match m.judge.as_ref().and_then(|j| j.local_dir()) {
            Some(dir) => Some(spec_of(dir)?),
            None => None,
        };
        let same_base = m.attacker.canonicalize().ok() == m.defender.canonicalize().ok()
            || m.attacker == m.defender;
        let g = &config.game;
        let seeds = crate::game::seeds::RunSeeds::load(&config.data)?;
        let longest = seeds.train.iter().map(|s| s.text.as_str()).max_by_key(|t| t.len());
        let longest = longest.unwrap_or("");
        let mut instruction = String::new();
        for file in [&g.attacker_prompt_harmful, &g.attacker_prompt_benign] {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if text.len() > instruction.len() {
                instruction = text;
            }
        }
        let attacker_text = render(
            &m.attacker,
            &instruction.replace("{seed}", longest),
            g.attacker_prefill.as_deref(),
        )?;
        let (attacker_prompt, tokenized) = count_tokens(&m.attacker, &attacker_text)?;
        // The defender sees the attacker's rewrite (at most attacker_max_tokens tokens) or,
        // with direct_seed_share > 0, the longest seed as written; either inside the longest
        // sampling template and after the sampling system prompt when those are set.
        let templates = [
            prompts::defender_sampling_prompt_template(g)?,
            prompts::defender_sampling_prompt_template_benign(g)?,
        ];
        let template = templates.into_iter().flatten().max_by_key(String::len);
        let system = match prompts::defender_sampling_system_prompt(g)? {
            Some(text) => count_tokens(&m.defender, &text)?.0,
            None => 0,
        };
        let wrapped = |x: &str| prompts::fill_prompt_template(template.as_deref(), x);
        let (overhead, _) = count_tokens(&m.defender, &render(&m.defender, &wrapped(""), None)?)?;
        let rewrite = if g.direct_seed_share < 1.0 { overhead + g.attacker_max_tokens } else { 0 };
        let direct = if g.direct_seed_share > 0.0 {
            count_tokens(&m.defender, &render(&m.defender, &wrapped(longest), None)?)?.0
        } else {
            0
        };
        let defender_prompt = system + rewrite.max(direct);
        let source = if tokenized {
            format!(
                "tokenised with {}'s tokenizer: chat template + longest instruction + longest \
                 seed ({} bytes) + prefill",
                m.attacker.display(),
                longest.len()
            )
        } else {
            "estimated at 4 bytes per token (no tokenizer.json next to config.json)".into()
        };
        Ok(Self {
            device: crate::model::device_name(m.device),
            dtype: m.dtype,
            attacker,
            defender,
            same_base,
            judge,
            method: config.algorithm.method,
            sampler: config.algorithm.sampler,
            retain: config.algorithm.benign_retain_alpha > 0.0,
            attacker_writes: config.attacker_writes(),
            attacker_learns: config.attacker_learns(),
            adapter,
            gradient_checkpointing,
            update_order: config.algorithm.update_order,
            validation: config.validation.every > 0
                && (config.data.harmful_val.is_some() || config.data.benign_val.is_some()),
            micro_batch: config.algorithm.micro_batch.max(1),
            seeds_per_category: config.algorithm.seeds_per_category,
            benign_seeds: config.algorithm.seeds_per_step(crate::judging::Category::Benign),
            attacks_per_seed: g.attacks_per_seed,
            replies_per_prompt: g.replies_per_prompt,
            defender_prompt_variants: {
                // As the rollout splits a group (`rollout::play`): the first
                // round(share x D) replies instructed, the rest bare.
                let instructed = template.is_some() || g.defender_sampling_system_prompt.is_some();
                let d = g.replies_per_prompt;
                let told = if instructed {
                    (g.defender_sampling_share * d as f64).round() as usize
                } else {
                    0
                };
                usize::from(told > 0) + usize::from(told < d)
            },
            judge_max_tokens: g.judge_max_tokens,
            lengths: Lengths {
                attacker_prompt,
                defender_prompt,
                attacker_completion: g.attacker_max_tokens,
                defender_completion: g.defender_max_tokens,
                source,
            },
        })
    }
}
