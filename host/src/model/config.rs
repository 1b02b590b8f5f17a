//! Model configurations deserialised from a Hugging Face `config.json`.
//!
//! Each supported architecture family has a struct mirroring the fields its transformers
//! config class reads, with that class's defaults for missing keys (transformers 4.57
//! `models/<family>/configuration_<family>.py`), so a config written by any transformers
//! version from 4.3x to 5 means here what it means there. Unknown fields are ignored unless
//! they change the arithmetic (then [`ModelConfig::from_json`] refuses them by name).
//! RoPE settings, which moved between versions, are resolved by [`crate::model::rope`].
//! [`ModelConfig::from_file`] dispatches on the `architectures` entry (or `model_type`) and
//! refuses anything it cannot run with one error naming the file and the field.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::model::error::{FieldError, LoadError, field_err};

type Result<T> = std::result::Result<T, FieldError>;

/// Architectures this engine can run, as written in `config.json`'s `architectures` list.
pub const SUPPORTED_ARCHITECTURES: [&str; 4] =
    ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"];

/// A token id field that HF writes either as one integer or as a list (`eos_token_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, expecting = "a token id (an integer) or a list of token ids")]
pub enum TokenIds {
    /// A single id, e.g. `"eos_token_id": 2`.
    One(i64),
    /// Several ids, e.g. Llama 3's `"eos_token_id": [128001, 128008, 128009]`.
    Many(Vec<i64>),
}

impl TokenIds {
    /// Every id, in order. Negative ids (Meta's original LLaMA wrote `-1` for "no token")
    /// mean unset and are dropped, as transformers' `generate` never uses them.
    pub fn to_vec(&self) -> Vec<i64> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
        .into_iter()
        .filter(|id| *id >= 0)
        .collect()
    }
}

/// The RoPE fields of a config, in every layout transformers has written: v4's top-level
/// `rope_theta` plus `rope_scaling` (kind under `type` before 4.43, `rope_type` after, both
/// since a re-save), and v5's `rope_parameters` holding the base and the scaling together.
/// Resolved by [`crate::model::rope::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RopeFields {
    /// RoPE base frequency, v4 layout (transformers `rope_theta`, e.g. 10000 for Llama 2,
    /// 500000 for Llama 3, 100000 for SmolLM2). `None`: taken from `rope_parameters` or the
    /// family default.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// RoPE scaling, v4 layout (transformers `rope_scaling`), e.g. `{"rope_type": "llama3",
    /// "factor": 8.0, ...}`; kept as raw JSON and validated by [`crate::model::rope::resolve`].
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// RoPE base and scaling together, transformers v5 layout (`rope_parameters`, with
    /// `rope_theta` and `rope_type` inside); raw JSON, validated by
    /// [`crate::model::rope::resolve`].
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    /// Share of each head that is rotated (transformers' `partial_rotary_factor`, default 1).
    #[serde(default)]
    pub partial_rotary_factor: Option<f64>,
}

fn d_silu() -> String {
    "silu".to_string()
}
fn d_eps() -> f64 {
    1e-6
}
fn d_i64<const N: i64>() -> i64 {
    N
}
fn d_some<const N: i64>() -> Option<i64> {
    Some(N)
}

/// `LlamaConfig` (transformers `models/llama/configuration_llama.py`): Llama 2/3, SmolLM2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlamaConfig {
    /// Rows of the token embedding and of the output head: the number of token ids the
    /// model knows (transformers `vocab_size`; default 32000).
    #[serde(default = "d_i64::<32000>")]
    pub vocab_size: i64,
    /// Width of the residual stream, the embedding dimension (transformers `hidden_size`;
    /// default 4096).
    #[serde(default = "d_i64::<4096>")]
    pub hidden_size: i64,
    /// Width of the gated MLP's inner layer, `gate_proj`/`up_proj` outputs (transformers
    /// `intermediate_size`; default 11008).
    #[serde(default = "d_i64::<11008>")]
    pub intermediate_size: i64,
    /// Number of decoder blocks (transformers `num_hidden_layers`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_hidden_layers: i64,
    /// Query heads per attention layer (transformers `num_attention_heads`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_attention_heads: i64,
    /// Missing or null: `num_attention_heads` (no grouped-query attention).
    #[serde(default)]
    pub num_key_value_heads: Option<i64>,
    /// Missing or null: `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// The MLP activation (transformers `hidden_act`, default `silu`); only `silu` is
    /// supported, anything else is refused by name.
    #[serde(default = "d_silu")]
    pub hidden_act: String,
    /// The context length the model was trained for, in tokens (transformers
    /// `max_position_embeddings`; default 2048). `serve` caps prompt plus completion at it.
    #[serde(default = "d_i64::<2048>")]
    pub max_position_embeddings: i64,
    /// The epsilon added to the mean square inside every RMSNorm (transformers
    /// `rms_norm_eps`; default 1e-6).
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// The rotary position embedding fields, flattened from the top level (see [`RopeFields`]).
    #[serde(flatten)]
    pub rope: RopeFields,
    /// A bias on the q/k/v/o attention projections (transformers `attention_bias`;
    /// default false).
    #[serde(default)]
    pub attention_bias: bool,
    /// A bias on the gate/up/down MLP projections (transformers `mlp_bias`; default false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// The output head reuses the token embedding matrix instead of its own
    /// `lm_head.weight` (transformers `tie_word_embeddings`; default false here, as in the
    /// family's config class). SmolLM2 ties them.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id(s) (transformers `bos_token_id`). Informational: the tokenizer
    /// and chat template decide whether a BOS is added.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s): generation of a row stops at any of them (transformers
    /// `eos_token_id`, one id or a list); see [`ModelConfig::eos_token_ids`].
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (transformers `pad_token_id`); missing, null or negative means unset, and
    /// must be inside the vocabulary otherwise; see [`ModelConfig::pad_token_id`].
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// `MistralConfig` (transformers `models/mistral/configuration_mistral.py`): Llama-shaped,
/// no biases, and sliding-window attention over every layer unless `sliding_window` is null
/// (missing means transformers' default of 4096).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MistralConfig {
    /// Rows of the token embedding and of the output head: the number of token ids the
    /// model knows (transformers `vocab_size`; default 32000).
    #[serde(default = "d_i64::<32000>")]
    pub vocab_size: i64,
    /// Width of the residual stream, the embedding dimension (transformers `hidden_size`;
    /// default 4096).
    #[serde(default = "d_i64::<4096>")]
    pub hidden_size: i64,
    /// Width of the gated MLP's inner layer, `gate_proj`/`up_proj` outputs (transformers
    /// `intermediate_size`; default 14336).
    #[serde(default = "d_i64::<14336>")]
    pub intermediate_size: i64,
    /// Number of decoder blocks (transformers `num_hidden_layers`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_hidden_layers: i64,
    /// Query heads per attention layer (transformers `num_attention_heads`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_attention_heads: i64,
    /// Missing: 8; null: `num_attention_heads`.
    #[serde(default = "d_some::<8>")]
    pub num_key_value_heads: Option<i64>,
    /// Missing or null: `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// The MLP activation (transformers `hidden_act`, default `silu`); only `silu` is
    /// supported, anything else is refused by name.
    #[serde(default = "d_silu")]
    pub hidden_act: String,
    /// The context length the model was trained for, in tokens (transformers
    /// `max_position_embeddings`; default 131072). `serve` caps prompt plus completion at it.
    #[serde(default = "d_i64::<131072>")]
    pub max_position_embeddings: i64,
    /// The epsilon added to the mean square inside every RMSNorm (transformers
    /// `rms_norm_eps`; default 1e-6).
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// The rotary position embedding fields, flattened from the top level (see [`RopeFields`]).
    #[serde(flatten)]
    pub rope: RopeFields,
    /// Tokens each query attends back to under sliding-window attention (transformers
    /// `sliding_window`; default 4096, null = full causal attention).
    #[serde(default = "d_some::<4096>")]
    pub sliding_window: Option<i64>,
    /// The output head reuses the token embedding matrix instead of its own
    /// `lm_head.weight` (transformers `tie_word_embeddings`; default false here, as in the
    /// family's config class). SmolLM2 ties them.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id(s) (transformers `bos_token_id`). Informational: the tokenizer
    /// and chat template decide whether a BOS is added.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s): generation of a row stops at any of them (transformers
    /// `eos_token_id`, one id or a list); see [`ModelConfig::eos_token_ids`].
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (transformers `pad_token_id`); missing, null or negative means unset, and
    /// must be inside the vocabulary otherwise; see [`ModelConfig::pad_token_id`].
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// `Qwen2Config` (transformers `models/qwen2/configuration_qwen2.py`): Qwen2, Qwen2.5. Qwen2
/// always has a bias on the q/k/v projections and none elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen2Config {
    /// Rows of the token embedding and of the output head: the number of token ids the
    /// model knows (transformers `vocab_size`; default 151936).
    #[serde(default = "d_i64::<151936>")]
    pub vocab_size: i64,
    /// Width of the residual stream, the embedding dimension (transformers `hidden_size`;
    /// default 4096).
    #[serde(default = "d_i64::<4096>")]
    pub hidden_size: i64,
    /// Width of the gated MLP's inner layer, `gate_proj`/`up_proj` outputs (transformers
    /// `intermediate_size`; default 22016).
    #[serde(default = "d_i64::<22016>")]
    pub intermediate_size: i64,
    /// Number of decoder blocks (transformers `num_hidden_layers`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_hidden_layers: i64,
    /// Query heads per attention layer (transformers `num_attention_heads`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_attention_heads: i64,
    /// Missing: 32; null: `num_attention_heads`.
    #[serde(default = "d_some::<32>")]
    pub num_key_value_heads: Option<i64>,
    /// Missing or null: `hidden_size / num_attention_heads` (transformers'
    /// `getattr(config, "head_dim", hidden_size // num_attention_heads)`).
    #[serde(default)]
    pub head_dim: Option<i64>,
    /// The MLP activation (transformers `hidden_act`, default `silu`); only `silu` is
    /// supported, anything else is refused by name.
    #[serde(default = "d_silu")]
    pub hidden_act: String,
    /// The context length the model was trained for, in tokens (transformers
    /// `max_position_embeddings`; default 32768). `serve` caps prompt plus completion at it.
    #[serde(default = "d_i64::<32768>")]
    pub max_position_embeddings: i64,
    /// The epsilon added to the mean square inside every RMSNorm (transformers
    /// `rms_norm_eps`; default 1e-6).
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// The rotary position embedding fields, flattened from the top level (see [`RopeFields`]).
    #[serde(flatten)]
    pub rope: RopeFields,
    /// The sliding-window fields, flattened from the top level (see [`QwenWindow`]).
    #[serde(flatten)]
    pub window: QwenWindow,
    /// The output head reuses the token embedding matrix instead of its own
    /// `lm_head.weight` (transformers `tie_word_embeddings`; default false here, as in the
    /// family's config class). SmolLM2 ties them.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id(s) (transformers `bos_token_id`). Informational: the tokenizer
    /// and chat template decide whether a BOS is added.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s): generation of a row stops at any of them (transformers
    /// `eos_token_id`, one id or a list); see [`ModelConfig::eos_token_ids`].
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (transformers `pad_token_id`); missing, null or negative means unset, and
    /// must be inside the vocabulary otherwise; see [`ModelConfig::pad_token_id`].
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// `Qwen3Config` (transformers `models/qwen3/configuration_qwen3.py`): per-head RMSNorm on
/// queries and keys, `attention_bias` (default off) on all four projections, and an explicit
/// `head_dim` (default 128, independent of `hidden_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Qwen3Config {
    /// Rows of the token embedding and of the output head: the number of token ids the
    /// model knows (transformers `vocab_size`; default 151936).
    #[serde(default = "d_i64::<151936>")]
    pub vocab_size: i64,
    /// Width of the residual stream, the embedding dimension (transformers `hidden_size`;
    /// default 4096).
    #[serde(default = "d_i64::<4096>")]
    pub hidden_size: i64,
    /// Width of the gated MLP's inner layer, `gate_proj`/`up_proj` outputs (transformers
    /// `intermediate_size`; default 22016).
    #[serde(default = "d_i64::<22016>")]
    pub intermediate_size: i64,
    /// Number of decoder blocks (transformers `num_hidden_layers`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_hidden_layers: i64,
    /// Query heads per attention layer (transformers `num_attention_heads`; default 32).
    #[serde(default = "d_i64::<32>")]
    pub num_attention_heads: i64,
    /// Missing: 32; null: `num_attention_heads`.
    #[serde(default = "d_some::<32>")]
    pub num_key_value_heads: Option<i64>,
    /// Missing: 128; null: `hidden_size / num_attention_heads`.
    #[serde(default = "d_some::<128>")]
    pub head_dim: Option<i64>,
    /// The MLP activation (transformers `hidden_act`, default `silu`); only `silu` is
    /// supported, anything else is refused by name.
    #[serde(default = "d_silu")]
    pub hidden_act: String,
    /// The context length the model was trained for, in tokens (transformers
    /// `max_position_embeddings`; default 32768). `serve` caps prompt plus completion at it.
    #[serde(default = "d_i64::<32768>")]
    pub max_position_embeddings: i64,
    /// The epsilon added to the mean square inside every RMSNorm (transformers
    /// `rms_norm_eps`; default 1e-6).
    #[serde(default = "d_eps")]
    pub rms_norm_eps: f64,
    /// The rotary position embedding fields, flattened from the top level (see [`RopeFields`]).
    #[serde(flatten)]
    pub rope: RopeFields,
    /// A bias on the q/k/v/o attention projections (transformers `attention_bias`;
    /// default false).
    #[serde(default)]
    pub attention_bias: bool,
    /// The sliding-window fields, flattened from the top level (see [`QwenWindow`]).
    #[serde(flatten)]
    pub window: QwenWindow,
    /// The output head reuses the token embedding matrix instead of its own
    /// `lm_head.weight` (transformers `tie_word_embeddings`; default false here, as in the
    /// family's config class). SmolLM2 ties them.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Beginning-of-sequence id(s) (transformers `bos_token_id`). Informational: the tokenizer
    /// and chat template decide whether a BOS is added.
    #[serde(default)]
    pub bos_token_id: Option<TokenIds>,
    /// End-of-sequence id(s): generation of a row stops at any of them (transformers
    /// `eos_token_id`, one id or a list); see [`ModelConfig::eos_token_ids`].
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
    /// Padding id (transformers `pad_token_id`); missing, null or negative means unset, and
    /// must be inside the vocabulary otherwise; see [`ModelConfig::pad_token_id`].
    #[serde(default)]
    pub pad_token_id: Option<TokenIds>,
}

/// Qwen2/Qwen3 sliding-window settings: the window applies only with `use_sliding_window`,
/// and then to the layers `layer_types` marks `sliding_attention` (when `layer_types` is
/// missing: layers from `max_window_layers` on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QwenWindow {
    /// Whether any layer uses sliding-window attention (transformers `use_sliding_window`;
    /// default false, which ignores `sliding_window`).
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Tokens each query attends back to under sliding-window attention (transformers
    /// `sliding_window`; default 4096, null = full causal attention).
    #[serde(default = "d_some::<4096>")]
    pub sliding_window: Option<i64>,
    /// When `layer_types` is missing: layers with index >= this use the window, earlier
    /// ones full attention (transformers `max_window_layers`; default 28).
    #[serde(default = "d_i64::<28>")]
    pub max_window_layers: i64,
    /// Attention kind of each layer, `full_attention` or `sliding_attention`, one entry per
    /// layer (transformers `layer_types`, newer configs); overrides `max_window_layers`.
    #[serde(default)]
    pub layer_types: Option<Vec<String>>,
}

impl QwenWindow {
    /// The attention window of each of `num_layers` layers (`None`: full causal attention),
    /// as transformers' Qwen2/Qwen3 config and attention classes compute it.
    pub fn layer_windows(&self, num_layers: i64) -> Result<Vec<Option<i64>>> {
        let window = if self.use_sliding_window { self.sliding_window } else { None };
        if let Some(w) = window
            && w <= 0
        {
            field_err!("sliding_window", "must be positive, got {w}");
        }
        let n = num_layers.max(0) as usize;
        match &self.layer_types {
            Some(types) => {
                if types.len() != n {
                    field_err!(
                        "layer_types",
                        "{} entries, but num_hidden_layers is {n}",
                        types.len()
                    );
                }
                types
                    .iter()
                    .enumerate()
                    .map(|(i, t)| match t.as_str() {
                        "full_attention" => Ok(None),
                        "sliding_attention" => Ok(window),
                        other => field_err!(
                            format!("layer_types[{i}]"),
                            "`{other}` is not supported (expected \
                             full_attention or sliding_attention)"
                        ),
                    })
                    .collect()
            }
            None => {
                Ok((0..n as i64).map(|i| window.filter(|_| i >= self.max_window_layers)).collect())
            }
        }
    }
}

/// A parsed `config.json` of a supported architecture.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelConfig {
    /// Llama, Llama 2/3 and SmolLM2 (`LlamaForCausalLM`).
    Llama(LlamaConfig),
    /// Mistral (`MistralForCausalLM`).
    Mistral(MistralConfig),
    /// Qwen2 and Qwen2.5 (`Qwen2ForCausalLM`).
    Qwen2(Qwen2Config),
    /// Qwen3 dense models (`Qwen3ForCausalLM`).
    Qwen3(Qwen3Config),
}

#[derive(Debug, Clone, Deserialize)]
struct Header {
    #[serde(default)]
    architectures: Option<Vec<String>>,
    #[serde(default)]
    model_type: Option<String>,
}

/// Top-level fields that change the arithmetic in ways this engine does not implement.
const REFUSED_FIELDS: [(&str, &str); 2] = [
    ("quantization_config", "quantized checkpoints are not supported (use f32/bf16/f16 weights)"),
    ("attn_logit_softcapping", "attention logit soft-capping is not supported"),
];

fn parse_family<T: DeserializeOwned>(raw: &serde_json::Value, arch: &str) -> Result<T> {
    serde_path_to_error::deserialize(raw.clone()).map_err(|e| {
        let field = e.path().to_string();
        FieldError::new(field, format!("invalid {arch} config: {}", e.into_inner()))
    })
}

impl ModelConfig {
    /// Reads and validates `config.json`. Errors start with the file's path.
    pub fn from_file(path: &Path) -> std::result::Result<(Self, serde_json::Value), LoadError> {
        let text = std::fs::read_to_string(path).map_err(|cause| LoadError::Read {
            path: path.to_path_buf(),
            what: "model config",
            cause,
        })?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .map_err(|cause| LoadError::Json { path: path.to_path_buf(), cause })?;
        let config = Self::from_json(&raw)
            .map_err(|error| LoadError::Field { path: path.to_path_buf(), error })?;
        Ok((config, raw))
    }

    /// Parses a config from its JSON value (see [`ModelConfig::from_file`]).
    pub fn from_json(raw: &serde_json::Value) -> Result<Self> {
        if !raw.is_object() {
            field_err!(".", "expected a JSON object");
        }
        let header: Header = parse_family(raw, "model")?;
        let arch = match (&header.architectures, &header.model_type) {
            (Some(list), _) if !list.is_empty() => list[0].clone(),
            (_, Some(t)) => match t.as_str() {
                "llama" => "LlamaForCausalLM".into(),
                "mistral" => "MistralForCausalLM".into(),
                "qwen2" => "Qwen2ForCausalLM".into(),
                "qwen3" => "Qwen3ForCausalLM".into(),
                _ => field_err!(
                    "model_type",
                    "model type `{t}` is not supported and no \
                     `architectures` are given (supported: {})",
                    SUPPORTED_ARCHITECTURES.join(", ")
                ),
            },
            (_, None) => {
                field_err!("architectures", "neither `architectures` nor `model_type` is set")
            }
        };
        for (field, why) in REFUSED_FIELDS {
            if raw.get(field).is_some_and(|v| !v.is_null()) {
                field_err!(field, "{why}");
            }
        }
        let parsed = match arch.as_str() {
            "LlamaForCausalLM" => ModelConfig::Llama(parse_family(raw, &arch)?),
            "MistralForCausalLM" => ModelConfig::Mistral(parse_family(raw, &arch)?),
            "Qwen2ForCausalLM" => ModelConfig::Qwen2(parse_family(raw, &arch)?),
            "Qwen3ForCausalLM" => ModelConfig::Qwen3(parse_family(raw, &arch)?),
            other => field_err!(
                "architectures",
                "architecture `{other}` is not supported (supported: {})",
                SUPPORTED_ARCHITECTURES.join(", ")
            ),
        };
        let spec = parsed.decoder_spec()?;
        if let Some(pad) = parsed.pad_token_id()
            && pad >= spec.vocab_size
        {
            // transformers builds the embedding with `padding_idx=pad_token_id`, which
            // torch refuses outside the table.
            field_err!(
                "pad_token_id",
                "{pad} is outside the vocabulary (vocab_size {}); use a \
                 token id, null or -1",
                spec.vocab_size
            );
        }
        Ok(parsed)
    }

    /// The architecture name as written in `architectures`.
    pub fn architecture(&self) -> &'static str {
        match self {
            ModelConfig::Llama(_) => "LlamaForCausalLM",
            ModelConfig::Mistral(_) => "MistralForCausalLM",
            ModelConfig::Qwen2(_) => "Qwen2ForCausalLM",
            ModelConfig::Qwen3(_) => "Qwen3ForCausalLM",
        }
    }

    /// Rows of the token embedding (`vocab_size`): every token id must be below it.
    pub fn vocab_size(&self) -> i64 {
        match self {
            ModelConfig::Llama(c) => c.vocab_size,
            ModelConfig::Mistral(c) => c.vocab_size,
            ModelConfig::Qwen2(c) => c.vocab_size,
            ModelConfig::Qwen3(c) => c.vocab_size,
        }
    }

    /// The context length the model was trained for (`max_position_embeddings`), in tokens.
    pub fn max_position_embeddings(&self) -> i64 {
        match self {
            ModelConfig::Llama(c) => c.max_position_embeddings,
            ModelConfig::Mistral(c) => c.max_position_embeddings,
            ModelConfig::Qwen2(c) => c.max_position_embeddings,
            ModelConfig::Qwen3(c) => c.max_position_embeddings,
        }
    }

    fn token_ids(&self) -> [&Option<TokenIds>; 2] {
        match self {
            ModelConfig::Llama(c) => [&c.eos_token_id, &c.pad_token_id],
            ModelConfig::Mistral(c) => [&c.eos_token_id, &c.pad_token_id],
            ModelConfig::Qwen2(c) => [&c.eos_token_id, &c.pad_token_id],
            ModelConfig::Qwen3(c) => [&c.eos_token_id, &c.pad_token_id],
        }
    }

    /// End-of-sequence ids declared in `config.json` (one id or a list; may be empty).
    pub fn eos_token_ids(&self) -> Vec<i64> {
        self.token_ids()[0].as_ref().map(TokenIds::to_vec).unwrap_or_default()
    }

    /// The padding id of `config.json`; `None` when missing, null or negative (unset: the
    /// caller pads with an end-of-sequence id, as transformers' `generate` does).
    pub fn pad_token_id(&self) -> Option<i64> {
        self.token_ids()[1].as_ref().and_then(|t| t.to_vec().first().copied())
    }

    /// The architecture-independent description the shared decoder is built from.
    pub fn decoder_spec(&self) -> Result<crate::model::decoder::DecoderSpec> {
        match self {
            ModelConfig::Llama(c) => crate::model::llama::decoder_spec(c),
            ModelConfig::Mistral(c) => crate::model::mistral::decoder_spec(c),
            ModelConfig::Qwen2(c) => crate::model::qwen2::decoder_spec(c),
            ModelConfig::Qwen3(c) => crate::model::qwen3::decoder_spec(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn llama(extra: serde_json::Value) -> serde_json::Value {
        let mut base = json!({
            "architectures": ["LlamaForCausalLM"], "vocab_size": 320, "hidden_size": 32,
            "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2,
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    fn err(raw: serde_json::Value) -> String {
        ModelConfig::from_json(&raw).unwrap_err().to_string()
    }

    #[test]
    fn negative_or_null_pad_is_unset_and_eos_lists_keep_every_id() {
        let c = ModelConfig::from_json(&llama(json!({"pad_token_id": -1}))).unwrap();
        assert_eq!(c.pad_token_id(), None);
        let c = ModelConfig::from_json(&llama(json!({"pad_token_id": null}))).unwrap();
        assert_eq!(c.pad_token_id(), None);
        let c = ModelConfig::from_json(&llama(json!({"eos_token_id": [2, 7, -1]}))).unwrap();
        assert_eq!(c.eos_token_ids(), vec![2, 7]);
        let e = err(llama(json!({"pad_token_id": 320})));
        assert!(e.contains("field `pad_token_id`: 320 is outside the vocabulary"), "{e}");
    }

    #[test]
    fn a_token_id_of_the_wrong_type_says_what_is_expected() {
        let e = err(llama(json!({"eos_token_id": "2"})));
        assert!(e.contains("eos_token_id") && e.contains("a token id (an integer)"), "{e}");
    }

    #[test]
    fn field_type_errors_name_the_field() {
        let field = |v| ModelConfig::from_json(&llama(v)).unwrap_err().field;
        assert_eq!(field(json!({"hidden_size": "32"})), "hidden_size");
        assert_eq!(
            field(json!({"quantization_config": {"quant_method": "gptq"}})),
            "quantization_config"
        );
        assert_eq!(field(json!({"architectures": ["GemmaForCausalLM"]})), "architectures");
    }

    #[test]
    fn missing_keys_take_each_family_default() {
        let c = ModelConfig::from_json(&json!({"model_type": "qwen3"})).unwrap();
        let s = c.decoder_spec().unwrap();
        assert_eq!(
            (s.vocab_size, s.hidden_size, s.head_dim, s.num_kv_heads),
            (151936, 4096, 128, 32)
        );
        let c = ModelConfig::from_json(&json!({"model_type": "mistral"})).unwrap();
        let s = c.decoder_spec().unwrap();
        assert_eq!((s.intermediate_size, s.num_kv_heads, s.head_dim), (14336, 8, 128));
        assert!(s.layer_windows.iter().all(|w| *w == Some(4096)));
        let c = ModelConfig::from_json(&json!({"model_type": "mistral", "sliding_window": null}))
            .unwrap();
        assert!(c.decoder_spec().unwrap().layer_windows.iter().all(Option::is_none));
        let c = ModelConfig::from_json(&json!({"model_type": "llama"})).unwrap();
        let s = c.decoder_spec().unwrap();
        assert_eq!(
            (s.intermediate_size, s.num_kv_heads, s.head_dim, s.rope_theta),
            (11008, 32, 128, 10000.0)
        );
    }

    #[test]
    fn qwen_windows_follow_layer_types_or_max_window_layers() {
        let w = QwenWindow {
            use_sliding_window: true,
            sliding_window: Some(16),
            max_window_layers: 1,
            layer_types: None,
        };
        assert_eq!(w.layer_windows(3).unwrap(), vec![None, Some(16), Some(16)]);
        let off = QwenWindow { use_sliding_window: false, ..w.clone() };
        assert_eq!(off.layer_windows(3).unwrap(), vec![None, None, None]);
        let typed = QwenWindow {
            layer_types: Some(vec!["sliding_attention".into(), "full_attention".into()]),
            ..w.clone()
        };
        assert_eq!(typed.layer_windows(2).unwrap(), vec![Some(16), None]);
        let bad = QwenWindow { layer_types: Some(vec!["chunked_attention".into()]), ..w };
        assert_eq!(bad.layer_windows(1).unwrap_err().field, "layer_types[0]");
    }
}
