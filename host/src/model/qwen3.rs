//! The Qwen3 family (`Qwen3ForCausalLM`, dense Qwen3 models): Llama-shaped blocks with an
//! RMSNorm over each head of the queries and keys (weights `self_attn.q_norm` /
//! `self_attn.k_norm`, shape `[head_dim]`, applied before the rotary embedding), no q/k/v
//! bias unless `attention_bias`, and an explicit `head_dim` (transformers' default 128)
//! that need not equal `hidden_size / num_attention_heads`. Sliding windows as in Qwen2.

use crate::model::config::Qwen3Config;
use crate::model::decoder::DecoderSpec;
use crate::model::error::FieldError;
use crate::model::llama::{check_common, common_spec};

/// Validates a Qwen3 config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &Qwen3Config) -> Result<DecoderSpec, FieldError> {
    // The rotary fields are checked before the windows, so their errors come first.
    let common = common_spec!(c);
    let spec = DecoderSpec {
        qkv_bias: c.attention_bias,
        o_bias: c.attention_bias,
        qk_norm: true,
        layer_windows: c.window.layer_windows(c.num_hidden_layers)?,
        ..common
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
