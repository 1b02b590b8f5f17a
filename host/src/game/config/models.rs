//! `[models]`: which models play, where they run and in which precision.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which models play, where they run and in which precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Models {
    /// Attacker model directory (Hugging Face layout).
    pub attacker: PathBuf,
    /// Defender model directory (Hugging Face layout).
    pub defender: PathBuf,
    /// Judge model, served to judge plugins through the host `generate` import: a model
    /// directory, or a `[models.judge]` table naming an OpenAI-compatible server (`url`,
    /// `model`, `api_key_env`, `max_concurrency`, `timeout_s`, `max_retries`, `prefill`,
    /// `tokenizer`; see `crate::openai::RemoteModel`). Optional: heuristic judges never
    /// call it.
    pub judge: Option<crate::openai::ModelRef>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Parameter and compute precision: `f32`, `bf16` or `f16`.
    pub dtype: Dtype,
}

impl Default for Models {
    fn default() -> Self {
        Self {
            attacker: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            defender: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            judge: None,
            device: "cpu".into(),
            dtype: Dtype::F32,
        }
    }
}

/// Parameter and compute precision of the players (and the judge model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// bfloat16 (CUDA; f32 AdamW master weights are kept).
    Bf16,
    /// float16.
    F16,
}

/// Parses a device name: `cpu`, `cuda` (device 0) or `cuda:N`.
///
/// Errors: any other text, naming what is accepted.
pub fn device_of(name: &str) -> anyhow::Result<tch::Device> {
    match name {
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" => Ok(tch::Device::Cuda(0)),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .map(tch::Device::Cuda)
            .ok_or_else(|| {
                anyhow::anyhow!("unknown device {other:?}: expected cpu, cuda or cuda:N")
            }),
    }
}

/// The libtorch tensor kind of a configured dtype.
pub fn kind_of(dtype: Dtype) -> tch::Kind {
    match dtype {
        Dtype::F32 => tch::Kind::Float,
        Dtype::Bf16 => tch::Kind::BFloat16,
        Dtype::F16 => tch::Kind::Half,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_parse() {
        assert_eq!(device_of("cuda:1").unwrap(), tch::Device::Cuda(1));
        assert!(device_of("tpu").is_err());
    }
}
