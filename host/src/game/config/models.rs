//! `[models]`: which models play, where they run and in which precision.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tch::{Device, Kind};

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
    /// `cpu`, `cuda` or `cuda:N`: parsed once here ([`crate::model::parse_device`]), so a
    /// bad name is an error naming the file, line and field.
    #[serde(with = "device_name")]
    pub device: Device,
    /// Parameter and compute precision: `f32`, `bf16` or `f16`.
    pub dtype: Dtype,
    /// What the players train: all weights (`none`) or LoRA adapters on a frozen base (`lora`).
    pub adapter: Adapter,
    /// `[models.lora]`: the LoRA settings (used with `adapter = "lora"`).
    pub lora: Lora,
}

/// What the players train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Adapter {
    /// Full fine-tuning: every weight of both players (and full EMA copies).
    #[default]
    None,
    /// LoRA adapters (PEFT semantics) on one frozen base per base folder.
    Lora,
}

/// `[models.lora]`: PEFT `LoraConfig` fields, plus optional starting adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Lora {
    /// Rank of each update `B A`.
    pub r: i64,
    /// Scaling numerator: the update is `lora_alpha / r * B A`.
    pub lora_alpha: f64,
    /// Dropout on the adapter's input during updates.
    pub lora_dropout: f64,
    /// Projections to adapt (module leaf names).
    pub target_modules: Vec<String>,
    /// Scaling `lora_alpha / sqrt(r)` instead of `lora_alpha / r`.
    pub use_rslora: bool,
    /// PEFT adapter folder the attacker starts from (fresh adapter when unset).
    #[serde(with = "super::empty_is_none")]
    pub attacker_adapter: Option<PathBuf>,
    /// PEFT adapter folder the defender starts from (fresh adapter when unset).
    #[serde(with = "super::empty_is_none")]
    pub defender_adapter: Option<PathBuf>,
}

impl Default for Lora {
    fn default() -> Self {
        let peft = crate::model::LoraConfig::default();
        Self {
            r: 16,
            lora_alpha: 32.0,
            lora_dropout: 0.0,
            target_modules: peft.target_modules,
            use_rslora: false,
            attacker_adapter: None,
            defender_adapter: None,
        }
    }
}

impl Lora {
    /// The adapter hyper-parameters as the model engine takes them.
    pub fn config(&self) -> crate::model::LoraConfig {
        crate::model::LoraConfig {
            r: self.r,
            lora_alpha: self.lora_alpha,
            lora_dropout: self.lora_dropout,
            target_modules: self.target_modules.clone(),
            use_rslora: self.use_rslora,
        }
    }
}

impl Default for Models {
    fn default() -> Self {
        Self {
            attacker: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            defender: PathBuf::from("data/models/SmolLM2-135M-Instruct"),
            judge: None,
            device: Device::Cpu,
            dtype: Dtype::F32,
            adapter: Adapter::None,
            lora: Lora::default(),
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

impl Dtype {
    /// The libtorch tensor kind of this dtype.
    pub fn kind(self) -> Kind {
        match self {
            Dtype::F32 => Kind::Float,
            Dtype::Bf16 => Kind::BFloat16,
            Dtype::F16 => Kind::Half,
        }
    }
}

/// A [`Device`] as TOML writes it: `cpu`, `cuda:N`.
mod device_name {
    use serde::{Deserializer, Serializer};
    use tch::Device;

    pub fn serialize<S: Serializer>(d: &Device, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::model::device_name(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Device, D::Error> {
        d.deserialize_str(Name)
    }

    /// Reads a device name; a value of another type is told what the field takes.
    struct Name;

    impl serde::de::Visitor<'_> for Name {
        type Value = Device;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("`cpu`, `cuda` or `cuda:N` (a string in quotes)")
        }

        fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Device, E> {
            crate::model::parse_device(name).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_round_trip() {
        for (name, device) in
            [("cpu", Device::Cpu), ("cuda", Device::Cuda(0)), ("cuda:1", Device::Cuda(1))]
        {
            let m: Models = toml::from_str(&format!("device = \"{name}\"")).unwrap();
            assert_eq!(m.device, device, "{name}");
            let back: Models = toml::from_str(&toml::to_string(&m).unwrap()).unwrap();
            assert_eq!(back.device, device, "{name}");
        }
        let err = toml::from_str::<Models>("device = \"tpu\"").unwrap_err().to_string();
        assert!(err.contains("tpu") && err.contains("cuda:N"), "{err}");
        let err = toml::from_str::<Models>("device = 0").unwrap_err().to_string();
        assert!(err.contains("expected `cpu`, `cuda` or `cuda:N`"), "{err}");
    }
}
