//! The Llama family (`LlamaForCausalLM`: Llama 2/3, SmolLM2, ...): maps a [`LlamaConfig`]
//! onto the shared decoder and refuses settings the decoder does not implement.

use anyhow::{Result, bail};

use crate::model::config::{LlamaConfig, RopeScaling};
use crate::model::decoder::{DecoderSpec, RopeKind};

/// Validates a Llama config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &LlamaConfig) -> Result<DecoderSpec> {
    let head_dim = c.head_dim.unwrap_or(c.hidden_size / c.num_attention_heads.max(1));
    let spec = DecoderSpec {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_layers: c.num_hidden_layers,
        num_heads: c.num_attention_heads,
        num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim,
        rms_norm_eps: c.rms_norm_eps,
        rope_theta: c.rope_theta,
        rope: rope_kind(c.rope_scaling.as_ref(), c.max_position_embeddings)?,
        qkv_bias: c.attention_bias,
        o_bias: c.attention_bias,
        mlp_bias: c.mlp_bias,
        tie_word_embeddings: c.tie_word_embeddings,
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}

/// Interprets `rope_scaling` (shared with Qwen2, which uses the same field).
pub(crate) fn rope_kind(scaling: Option<&RopeScaling>, max_pos: i64) -> Result<RopeKind> {
    let Some(s) = scaling else { return Ok(RopeKind::Default) };
    let need = |v: Option<f64>, field: &str| -> Result<f64> {
        match v {
            Some(v) => Ok(v),
            None => {
                bail!("field `rope_scaling.{field}` is required for rope type `{}`", s.rope_type)
            }
        }
    };
    Ok(match s.rope_type.as_str() {
        "default" => RopeKind::Default,
        "linear" => RopeKind::Linear { factor: need(s.factor, "factor")? },
        "llama3" => RopeKind::Llama3 {
            factor: need(s.factor, "factor")?,
            low_freq_factor: need(s.low_freq_factor, "low_freq_factor")?,
            high_freq_factor: need(s.high_freq_factor, "high_freq_factor")?,
            original_max_position: s.original_max_position_embeddings.unwrap_or(max_pos),
        },
        other => bail!(
            "field `rope_scaling.rope_type`: `{other}` is not supported (supported: default, \
             linear, llama3)"
        ),
    })
}

/// Checks shared by every family: activation and head arithmetic.
pub(crate) fn check_common(spec: &DecoderSpec, hidden_act: &str) -> Result<()> {
    if hidden_act != "silu" {
        bail!("field `hidden_act`: `{hidden_act}` is not supported (expected `silu`)");
    }
    let positive = [
        ("vocab_size", spec.vocab_size),
        ("hidden_size", spec.hidden_size),
        ("intermediate_size", spec.intermediate_size),
        ("num_hidden_layers", spec.num_layers),
        ("num_attention_heads", spec.num_heads),
        ("num_key_value_heads", spec.num_kv_heads),
        ("head_dim", spec.head_dim),
    ];
    for (field, value) in positive {
        if value <= 0 {
            bail!("field `{field}`: must be positive, got {value}");
        }
    }
    if spec.num_heads % spec.num_kv_heads != 0 {
        bail!(
            "field `num_key_value_heads`: {} does not divide num_attention_heads {}",
            spec.num_kv_heads,
            spec.num_heads
        );
    }
    if spec.head_dim % 2 != 0 {
        bail!("head dimension {} must be even for rotary embeddings", spec.head_dim);
    }
    Ok(())
}
