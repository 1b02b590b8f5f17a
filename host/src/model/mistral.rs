//! The Mistral family (`MistralForCausalLM`: Mistral 7B v0.1-v0.3, Mistral Nemo, ...):
//! Llama-shaped blocks without any bias, an optional explicit `head_dim`, and sliding-window
//! attention on every layer when `sliding_window` is set (v0.1: 4096; later releases: null).
//! The window is honoured by the attention mask (a query sees the `sliding_window` most
//! recent positions, itself included, as transformers' `sliding_window_overlay`), so
//! sequences longer than the window run exactly as in transformers.

use crate::model::config::MistralConfig;
use crate::model::decoder::DecoderSpec;
use crate::model::error::{FieldError, field_err};
use crate::model::llama::{check_common, common_spec};

/// Validates a Mistral config and describes it for [`crate::model::decoder::Decoder`].
pub fn decoder_spec(c: &MistralConfig) -> Result<DecoderSpec, FieldError> {
    if let Some(w) = c.sliding_window
        && w <= 0
    {
        field_err!("sliding_window", "must be positive or null, got {w}");
    }
    let spec = DecoderSpec {
        layer_windows: vec![c.sliding_window; c.num_hidden_layers.max(0) as usize],
        ..common_spec!(c)
    };
    check_common(&spec, &c.hidden_act)?;
    Ok(spec)
}
