//! The Qwen2 family (`Qwen2ForCausalLM`: Qwen2, Qwen2.5): like Llama but with biases on the
//! q/k/v projections (none on o_proj or the MLP), an optional explicit `head_dim`, and
//! sliding-window attention on the layers the config selects (released checkpoints ship
//! `use_sliding_window: false`; when it is on, the window is honoured per layer).

use crate::model::config::Qwen2Config;
use crate::model::decoder::DecoderSpec;
use crate::model::error::FieldError;
use crate::model::llama::{check_common, common_spec};

/// Validates a Qwen2 config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &Qwen2Config) -> Result<DecoderSpec, FieldError> {
    // The rotary fields are checked before the windows, so their errors come first.
    let common = common_spec!(c);
    let spec = DecoderSpec {
        qkv_bias: true,
        layer_windows: c.window.layer_windows(c.num_hidden_layers)?,
        ..common
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
