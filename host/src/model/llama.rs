//! The Llama family (`LlamaForCausalLM`: Llama 2/3, SmolLM2, ...): maps a [`LlamaConfig`]
//! onto the shared decoder and refuses settings the decoder does not implement. Also holds
//! the checks every family shares.

use crate::model::config::LlamaConfig;
use crate::model::decoder::DecoderSpec;
use crate::model::error::{FieldError, field_err};

/// The [`DecoderSpec`] of a family's config `$c` from the fields every family spells the same
/// way (transformers' common names): sizes, heads, `head_dim` with its fallback, the RMSNorm
/// epsilon, the rotary embedding (resolved with `?`) and the tied head; no biases, no q/k norm
/// and no sliding window. Each family sets what differs with struct update syntax, then calls
/// [`check_common`]. A macro, because the family configs share these names but no type.
macro_rules! common_spec {
    ($c:expr) => {{
        let c = $c;
        let rope = $crate::model::rope::resolve(&c.rope)?;
        $crate::model::decoder::DecoderSpec {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            intermediate_size: c.intermediate_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
            head_dim: $crate::model::llama::head_dim(
                c.head_dim,
                c.hidden_size,
                c.num_attention_heads,
            ),
            rms_norm_eps: c.rms_norm_eps,
            rope_theta: rope.theta,
            rope: rope.kind,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            tie_word_embeddings: c.tie_word_embeddings,
            layer_windows: vec![None; c.num_hidden_layers.max(0) as usize],
        }
    }};
}
pub(crate) use common_spec;

/// Validates a Llama config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &LlamaConfig) -> Result<DecoderSpec, FieldError> {
    let spec = DecoderSpec {
        qkv_bias: c.attention_bias,
        o_bias: c.attention_bias,
        mlp_bias: c.mlp_bias,
        ..common_spec!(c)
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}

/// An explicit `head_dim`, else `hidden_size / num_attention_heads` (transformers'
/// fallback in every family; attention width `heads * head_dim` need not equal the hidden
/// size).
pub(crate) fn head_dim(explicit: Option<i64>, hidden: i64, heads: i64) -> i64 {
    explicit.unwrap_or(hidden / heads.max(1))
}

/// Checks shared by every family: activation, sizes and head arithmetic.
pub(crate) fn check_common(spec: &DecoderSpec, hidden_act: &str) -> Result<(), FieldError> {
    if hidden_act != "silu" {
        field_err!("hidden_act", "`{hidden_act}` is not supported (expected `silu`)");
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
            field_err!(field, "must be positive, got {value}");
        }
    }
    if !(spec.rms_norm_eps.is_finite() && spec.rms_norm_eps > 0.0) {
        field_err!("rms_norm_eps", "must be a positive number, got {}", spec.rms_norm_eps);
    }
    if spec.num_heads % spec.num_kv_heads != 0 {
        field_err!(
            "num_key_value_heads",
            "{} does not divide num_attention_heads {}",
            spec.num_kv_heads,
            spec.num_heads
        );
    }
    if spec.head_dim % 2 != 0 {
        field_err!("head_dim", "{} must be even for rotary embeddings", spec.head_dim);
    }
    Ok(())
}
