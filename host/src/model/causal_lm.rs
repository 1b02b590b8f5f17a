//! [`CausalLm`]: a decoder-only language model whose weights live in a tch `VarStore`
//! under their Hugging Face names, loaded from and saved to the HF folder layout.

use std::path::Path;

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor, nn};

use crate::model::checkpointing::{Checkpointing, grad_enabled};
use crate::model::config::ModelConfig;
use crate::model::decoder::{
    Decoder, DecoderSpec, KvCache, attention_mask_4d, positions_from_mask,
};
use crate::model::error::{FieldError, LoadError};
use crate::model::weights::{self, WeightFiles};

/// A causal LM (Llama, Mistral, Qwen2 or Qwen3 family) with trainable weights.
#[derive(Debug)]
pub struct CausalLm {
    vs: nn::VarStore,
    config: ModelConfig,
    /// `config.json` as read, written back (with the dtype updated) by `save_pretrained`.
    raw_config: serde_json::Value,
    decoder: Decoder,
    device: Device,
    kind: Kind,
    /// Activation checkpointing state, when on (`model::checkpointing`).
    pub(crate) checkpointing: Option<Checkpointing>,
}

impl CausalLm {
    /// Loads `config.json` and `model.safetensors` (or a sharded index) from a HF folder,
    /// converting weights to `kind` on `device`.
    ///
    /// Errors: the root cause is a [`LoadError`] naming the file (and the field of
    /// `config.json`, or the tensor) that could not be used.
    pub fn load(dir: &Path, device: Device, kind: Kind) -> Result<Self> {
        Ok(Self::load_typed(dir, device, kind)?)
    }

    fn load_typed(dir: &Path, device: Device, kind: Kind) -> Result<Self, LoadError> {
        check_kind(kind)?;
        let config_path = dir.join("config.json");
        let (config, raw_config) = ModelConfig::from_file(&config_path)?;
        let spec = config
            .decoder_spec()
            .map_err(|error: FieldError| LoadError::Field { path: config_path.clone(), error })?;
        let files = WeightFiles::read(dir)?;
        let index = files.index()?;
        let vs = nn::VarStore::new(device);
        let decoder = Decoder::build(&vs.root(), &spec, kind, &mut |name, shape| {
            index.load(name, shape, kind, device)
        })?;
        let expected: Vec<String> = spec.parameters().into_iter().map(|(n, _)| n).collect();
        let extra = index.unexpected(&expected);
        // A tied model may still carry a copy of lm_head; rotary buffers are recomputed.
        let ignorable = |n: &&str| n.ends_with("rotary_emb.inv_freq") || *n == "lm_head.weight";
        if let Some(name) = extra.iter().find(|n| !ignorable(n)) {
            return Err(LoadError::Weights {
                path: dir.to_path_buf(),
                tensor: Some(name.to_string()),
                message: format!(
                    "tensor `{name}` is not a parameter of {} with this config.json ({} \
                     unexpected tensors)",
                    config.architecture(),
                    extra.len()
                ),
            });
        }
        Ok(Self { vs, config, raw_config, decoder, device, kind, checkpointing: None })
    }

    /// A deep copy (for EMA or frozen reference models) that shares no storage with `self`.
    pub fn try_clone(&self) -> Result<Self> {
        let vs = nn::VarStore::new(self.device);
        let vars = self.vs.variables();
        let spec = self.decoder.spec().clone();
        let decoder =
            Decoder::build::<anyhow::Error, _>(&vs.root(), &spec, self.kind, &mut |name, _| {
                let src = vars.get(name).with_context(|| format!("variable `{name}` missing"))?;
                Ok(tch::no_grad(|| src.detach().copy()))
            })?;
        Ok(Self {
            vs,
            config: self.config.clone(),
            raw_config: self.raw_config.clone(),
            decoder,
            device: self.device,
            kind: self.kind,
            checkpointing: None,
        })
    }

    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable access, e.g. to freeze a reference copy or build an optimizer.
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn spec(&self) -> &DecoderSpec {
        self.decoder.spec()
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub(crate) fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// Logits `[B, T, vocab]` for a (possibly left- or right-padded) batch. Rotary positions
    /// count only real tokens, and pads are hidden from attention.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let hidden = self.hidden_states(input_ids, attention_mask);
        self.decoder.logits(&hidden)
    }

    /// Final-norm hidden states `[B, T, hidden]` (see [`CausalLm::forward`]). With gradient
    /// checkpointing on and autograd recording, the layers run checkpointed (see
    /// [`CausalLm::finish_backward`]).
    pub fn hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let t = input_ids.size().last().copied().unwrap_or(0);
        let positions = positions_from_mask(attention_mask);
        let mask = attention_mask_4d(attention_mask, 0, t);
        match &self.checkpointing {
            Some(state) if grad_enabled() => {
                self.hidden_states_checkpointed(state, input_ids, &positions, &mask)
            }
            _ => self.decoder.hidden_states(input_ids, &positions, Some(&mask), None),
        }
    }

    /// Projects hidden states to logits.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.decoder.logits(hidden)
    }

    /// One cached step: runs `input_ids` `[B, T]` at `positions` with `key_valid` `[B, L]`
    /// (L = cache length after the step) and returns the last position's logits `[B, V]`.
    pub(crate) fn step(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        key_valid: &Tensor,
        cache: &mut KvCache,
    ) -> Tensor {
        let t = input_ids.size()[1];
        let mask = attention_mask_4d(key_valid, cache.len(), t);
        let hidden = self.decoder.hidden_states(input_ids, positions, Some(&mask), Some(cache));
        self.decoder.logits(&hidden.select(1, t - 1))
    }

    /// Writes `config.json` and `model.safetensors` so that transformers'
    /// `AutoModelForCausalLM.from_pretrained(dir)` loads the same model.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
        let mut config = self.raw_config.clone();
        if let Some(obj) = config.as_object_mut() {
            let dtype = match self.kind {
                Kind::BFloat16 => "bfloat16",
                Kind::Half => "float16",
                _ => "float32",
            };
            obj.insert("torch_dtype".into(), dtype.into());
            if obj.contains_key("dtype") {
                obj.insert("dtype".into(), dtype.into());
            }
        }
        let text = serde_json::to_string_pretty(&config)?;
        std::fs::write(dir.join("config.json"), text + "\n")
            .with_context(|| format!("cannot write {}", dir.join("config.json").display()))?;
        let vars = self.vs.variables();
        let mut named: Vec<(String, Tensor)> = vars.into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        weights::save(&dir.join(weights::SINGLE_FILE), &named)
    }
}

fn check_kind(kind: Kind) -> Result<(), LoadError> {
    match kind {
        Kind::Float | Kind::BFloat16 | Kind::Half | Kind::Double => Ok(()),
        other => Err(LoadError::Dtype(other)),
    }
}

/// Parses a device name as the CLI and configs write it: `cpu`, `cuda`, `cuda:N`.
pub fn parse_device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(Device::Cuda(i)),
            _ => bail!("device `{other}`: expected cpu, cuda or cuda:N"),
        },
    }
}

/// The dtype a device runs at by default: f32 on CPU, bf16 on CUDA.
pub fn default_kind(device: Device) -> Kind {
    if device.is_cuda() { Kind::BFloat16 } else { Kind::Float }
}
