//! The Qwen3 family (`Qwen3ForCausalLM`, dense Qwen3 models): Llama-shaped blocks with an
//! RMSNorm over each head of the queries and keys (weights `self_attn.q_norm` /
//! `self_attn.k_norm`, shape `[head_dim]`, applied before the rotary embedding), no q/k/v
//! bias unless `attention_bias`, and an explicit `head_dim` (transformers' default 128)
//! that need not equal `hidden_size / num_attention_heads`. Sliding windows as in Qwen2.

use crate::model::config::Qwen3Config;
use crate::model::decoder::DecoderSpec;
use crate::model::error::FieldError;
use crate::model::llama::{check_common, head_dim};
use crate::model::rope;

/// Validates a Qwen3 config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &Qwen3Config) -> Result<DecoderSpec, FieldError> {
    let rope = rope::resolve(&c.rope)?;
    let spec = DecoderSpec {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_layers: c.num_hidden_layers,
        num_heads: c.num_attention_heads,
        num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim: head_dim(c.head_dim, c.hidden_size, c.num_attention_heads),
        rms_norm_eps: c.rms_norm_eps,
        rope_theta: rope.theta,
        rope: rope.kind,
        qkv_bias: c.attention_bias,
        o_bias: c.attention_bias,
        mlp_bias: false,
        qk_norm: true,
        tie_word_embeddings: c.tie_word_embeddings,
        layer_windows: c.window.layer_windows(c.num_hidden_layers)?,
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
