//! The Qwen2 family (`Qwen2ForCausalLM`: Qwen2, Qwen2.5): like Llama but with biases on the
//! q/k/v projections (none on o_proj or the MLP), an optional explicit `head_dim`, and
//! sliding-window attention on the layers the config selects (released checkpoints ship
//! `use_sliding_window: false`; when it is on, the window is honoured per layer).

use crate::model::config::Qwen2Config;
use crate::model::decoder::DecoderSpec;
use crate::model::error::FieldError;
use crate::model::llama::{check_common, head_dim};
use crate::model::rope;

/// Validates a Qwen2 config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &Qwen2Config) -> Result<DecoderSpec, FieldError> {
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
        qkv_bias: true,
        o_bias: false,
        mlp_bias: false,
        qk_norm: false,
        tie_word_embeddings: c.tie_word_embeddings,
        layer_windows: c.window.layer_windows(c.num_hidden_layers)?,
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
