//! The Mistral family (`MistralForCausalLM`: Mistral 7B v0.1-v0.3, Mistral Nemo, ...):
//! Llama-shaped blocks without any bias, an optional explicit `head_dim`, and sliding-window
//! attention on every layer when `sliding_window` is set (v0.1: 4096; later releases: null).
//! The window is honoured by the attention mask (a query sees the `sliding_window` most
//! recent positions, itself included, as transformers' `sliding_window_overlay`), so
//! sequences longer than the window run exactly as in transformers.

use crate::model::config::MistralConfig;
use crate::model::decoder::DecoderSpec;
use crate::model::error::{FieldError, field_err};
use crate::model::llama::{check_common, head_dim};
use crate::model::rope;

/// Validates a Mistral config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &MistralConfig) -> Result<DecoderSpec, FieldError> {
    if let Some(w) = c.sliding_window
        && w <= 0
    {
        field_err!("sliding_window", "must be positive or null, got {w}");
    }
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
        qkv_bias: false,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        tie_word_embeddings: c.tie_word_embeddings,
        layer_windows: vec![c.sliding_window; c.num_hidden_layers.max(0) as usize],
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
