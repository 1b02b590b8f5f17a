//! Model configurations deserialised from a Hugging Face `config.json`.
//!
//! Each supported architecture family has a struct mirroring the fields transformers writes
//! (unknown fields are ignored, defaults follow transformers' own defaults), so a config
//! written by `save_pretrained` round-trips. [`ModelConfig::from_file`] dispatches on the
//! `architectures` entry and refuses anything it cannot run with one precise error.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Architectures this engine can run, as written in `config.json`'s `architectures` list.
pub const SUPPORTED_ARCHITECTURES: [&str; 2] = ["LlamaForCausalLM", "Qwen2ForCausalLM"];

/// A token id field that HF writes either as one integer or as a list (`eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    One(i64),
    Many(Vec<i64>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// `rope_scaling` as transformers writes it. Older configs name the kind `type`, newer ones
/// `rope_type`; both are accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<i64>,
}

fn default_rope_theta() -> f64 {
    10000.0
}
fn default_rms_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".to_string()
}
fn default_max_pos() -> i64 {
    2048
}

/// `LlamaConfig` (transformers `models/llama/configuration_llama.py`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    #[serde(default)]
    pub head_dim: Option<i64>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// `Qwen2Config` (transformers `models/qwen2/configuration_qwen2.py`). Qwen2 always has a
/// bias on the q/k/v projections and none elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    pub vocab_size: i64,
    pub hidden_size: i64,
    pub intermediate_size: i64,
    pub num_hidden_layers: i64,
    pub num_attention_heads: i64,
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: i64,
    #[serde(default = "default_rms_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default)]
    pub sliding_window: Option<i64>,
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// A parsed `config.json` of a supported architecture, plus the raw JSON so that
/// `save_pretrained` writes back every field transformers put there.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    Llama(LlamaConfig),
    Qwen2(Qwen2Config),
}

#[derive(Debug, Clone, Deserialize)]
struct Header {
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    model_type: Option<String>,
}

impl ModelConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<(Self, serde_json::Value)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read model config {}", path.display()))?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        let config = Self::from_json(&raw).with_context(|| format!("{}", path.display()))?;
        Ok((config, raw))
    }

    /// Parses a config from its JSON value (see [`ModelConfig::from_file`]).
    pub fn from_json(raw: &serde_json::Value) -> Result<Self> {
        let header: Header = serde_json::from_value(raw.clone()).context("invalid config")?;
        let arch = match (&header.architectures, &header.model_type) {
            (Some(list), _) if !list.is_empty() => list[0].clone(),
            (_, Some(t)) if t == "llama" => "LlamaForCausalLM".into(),
            (_, Some(t)) if t == "qwen2" => "Qwen2ForCausalLM".into(),
            (_, Some(t)) => bail!(
                "field `model_type`: model type `{t}` is not supported and no `architectures` \
                 are given (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            ),
            (_, None) => bail!("neither `architectures` nor `model_type` is set"),
        };
        let parsed = match arch.as_str() {
            "LlamaForCausalLM" => ModelConfig::Llama(
                serde_json::from_value(raw.clone())
                    .context("invalid LlamaForCausalLM config (field types)")?,
            ),
            "Qwen2ForCausalLM" => ModelConfig::Qwen2(
                serde_json::from_value(raw.clone())
                    .context("invalid Qwen2ForCausalLM config (field types)")?,
            ),
            other => bail!(
                "field `architectures`: architecture `{other}` is not supported (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            ),
        };
        parsed.decoder_spec()?;
        Ok(parsed)
    }

    /// The architecture name as written in `architectures`.
    pub fn architecture(&self) -> &'static str {
        match self {
            ModelConfig::Llama(_) => "LlamaForCausalLM",
            ModelConfig::Qwen2(_) => "Qwen2ForCausalLM",
        }
    }

    pub fn vocab_size(&self) -> i64 {
        match self {
            ModelConfig::Llama(c) => c.vocab_size,
            ModelConfig::Qwen2(c) => c.vocab_size,
        }
    }

    /// End-of-sequence ids declared in `config.json` (may be empty).
    pub fn eos_token_ids(&self) -> Vec<i64> {
        let ids = match self {
            ModelConfig::Llama(c) => &c.eos_token_id,
            ModelConfig::Qwen2(c) => &c.eos_token_id,
        };
        ids.as_ref().map(TokenIds::to_vec).unwrap_or_default()
    }

    pub fn pad_token_id(&self) -> Option<i64> {
        let ids = match self {
            ModelConfig::Llama(c) => &c.pad_token_id,
            ModelConfig::Qwen2(c) => &c.pad_token_id,
        };
        ids.as_ref().and_then(|t| t.to_vec().first().copied())
    }

    /// The architecture-independent description the shared decoder is built from.
    pub fn decoder_spec(&self) -> Result<crate::model::decoder::DecoderSpec> {
        match self {
            ModelConfig::Llama(c) => crate::model::llama::decoder_spec(c),
            ModelConfig::Qwen2(c) => crate::model::qwen2::decoder_spec(c),
        }
    }
}
