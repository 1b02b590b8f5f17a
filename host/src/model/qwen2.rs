//! The Qwen2 family (`Qwen2ForCausalLM`: Qwen2, Qwen2.5): like Llama but with biases on the
//! q/k/v projections (none on o_proj or the MLP). Sliding-window attention is refused: every
//! released Qwen2/2.5 checkpoint ships with `use_sliding_window: false`.

use anyhow::{Result, bail};

use crate::model::config::Qwen2Config;
use crate::model::decoder::DecoderSpec;
use crate::model::llama::{check_common, rope_kind};

/// Validates a Qwen2 config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &Qwen2Config) -> Result<DecoderSpec> {
    if c.use_sliding_window {
        bail!("field `use_sliding_window`: sliding-window attention is not supported");
    }
    let spec = DecoderSpec {
        vocab_size: c.vocab_size,
        hidden_size: c.hidden_size,
        intermediate_size: c.intermediate_size,
        num_layers: c.num_hidden_layers,
        num_heads: c.num_attention_heads,
        num_kv_heads: c.num_key_value_heads.unwrap_or(c.num_attention_heads),
        head_dim: c.hidden_size / c.num_attention_heads.max(1),
        rms_norm_eps: c.rms_norm_eps,
        rope_theta: c.rope_theta,
        rope: rope_kind(c.rope_scaling.as_ref(), c.max_position_embeddings)?,
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        tie_word_embeddings: c.tie_word_embeddings,
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
