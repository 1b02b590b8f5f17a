//! [`CausalLm`]: a decoder-only language model whose weights live in a tch `VarStore`
//! under their Hugging Face names, loaded from and saved to the HF folder layout.
//!
//! The weights sit behind an `Arc`, so several `CausalLm`s can be views of ONE base: the
//! full model, the base with adapters off, and any number of LoRA adapter sets on it
//! ([`CausalLm::with_adapter`]). A view with an adapter trains, clones, EMA-updates and saves
//! only the adapter; the base's tensors are frozen and never copied.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor, nn};

use crate::model::checkpointing::{Checkpointing, grad_enabled};
use crate::model::config::ModelConfig;
use crate::model::decoder::{
    Decoder, DecoderSpec, KvCache, attention_mask_4d, positions_from_mask,
};
use crate::model::error::{FieldError, LoadError};
use crate::model::lora::LoraAdapter;
use crate::model::weights::{self, WeightFiles};

/// Tokens (rows x positions) from which a generation call or a forward pass without
/// gradients (a DPO/IPO reference forward on an EMA adapter, scoring) of an adapter view
/// runs on merged weights ([`CausalLm::sampling`]: made for the call, freed after it)
/// instead of the side paths. Merging SmolLM2-135M's projections cost about as much CPU as
/// the side paths of ~700 prefill tokens (1 thread, `examples/bench_lora_decode.rs`;
/// BENCHMARKS.md, LoRA section), so smaller calls (a chat request to `serve`) keep the side
/// paths. Both quickstart-lora generation batches and its reference micro-batches are
/// larger.
pub const MERGED_FORWARD_MIN_TOKENS: i64 = 1024;

/// A causal LM (Llama, Mistral, Qwen2 or Qwen3 family): the base weights, shared, plus an
/// optional LoRA adapter. Without an adapter the base weights are the trainable ones.
#[derive(Debug)]
pub struct CausalLm {
    base: Arc<Base>,
    adapter: Option<LoraAdapter>,
    /// Activation checkpointing state of this view, when on (`model::checkpointing`).
    pub(crate) checkpointing: Option<Checkpointing>,
    /// From how many tokens a generation call or no-grad forward pass with an adapter runs
    /// on merged weights ([`CausalLm::sampling`]); `None`: never.
    merge_from_tokens: Option<i64>,
}

/// `dir/config.json`: the typed config, the JSON as read, and the decoder it describes.
fn read_config(dir: &Path) -> Result<(ModelConfig, serde_json::Value, DecoderSpec), LoadError> {
    check_model_folder(dir)?;
    let path = dir.join("config.json");
    let (config, raw_config) = ModelConfig::from_file(&path)?;
    let spec =
        config.decoder_spec().map_err(|error: FieldError| LoadError::Field { path, error })?;
    Ok((config, raw_config, spec))
}

/// What a model folder holds, for the errors that say a path is not one.
pub const MODEL_FOLDER_LAYOUT: &str =
    "a Hugging Face model folder: config.json, *.safetensors, tokenizer.json";

/// Whether `dir` is a folder that holds a `config.json` (what every load reads first), told
/// as the error a user can act on: no such path, a file (a `model.safetensors` given for its
/// folder), or a folder without `config.json`, each [`LoadError::Missing`] naming the path
/// and the layout expected. Reads nothing.
pub fn check_model_folder(dir: &Path) -> Result<(), LoadError> {
    check_folder(dir, "config.json", MODEL_FOLDER_LAYOUT)
}

/// Whether `dir` is a folder holding the file `marker` (errors as for [`check_model_folder`],
/// with `layout` as what was expected): the one rule for "this path is not that kind of
/// folder", also used for PEFT adapter folders.
pub fn check_folder(dir: &Path, marker: &str, layout: &str) -> Result<(), LoadError> {
    let what = if !dir.exists() {
        "no such folder".to_string()
    } else if !dir.is_dir() {
        "is a file".to_string()
    } else if !dir.join(marker).is_file() {
        format!("has no {marker}")
    } else {
        return Ok(());
    };
    Err(LoadError::Missing { path: dir.to_path_buf(), what: format!("{what}; expected {layout}") })
}

/// The weights and everything read with them; shared by every view of one loaded folder.
#[derive(Debug)]
struct Base {
    vs: nn::VarStore,
    config: ModelConfig,
    /// `config.json` as read, written back (with the dtype updated) by `save_pretrained`.
    raw_config: serde_json::Value,
    /// Behind a mutex only so that the shared base is `Sync` (tch tensors are `Send`, not
    /// `Sync`): views on one thread never contend, views on two threads take turns.
    decoder: Mutex<Decoder>,
    spec: DecoderSpec,
    device: Device,
    kind: Kind,
    /// The folder the weights came from (recorded as an adapter's base model).
    dir: Option<PathBuf>,
    /// Merged weight sets ([`Sampling`]) of this base alive now.
    merged_sets: AtomicUsize,
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

    /// A model of the shape `dir/config.json` describes with random weights (no weight files
    /// read), as transformers' `from_config`: every matrix normal with std
    /// `initializer_range` (0.02), norm weights 1, drawn on `device` from libtorch's generator
    /// seeded with `seed`. For benchmarks and memory checks of real shapes without weights.
    pub fn from_config(dir: &Path, device: Device, kind: Kind, seed: i64) -> Result<Self> {
        check_kind(kind)?;
        let (config, raw_config, spec) = read_config(dir)?;
        let std = raw_config.get("initializer_range").and_then(|v| v.as_f64()).unwrap_or(0.02);
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(device);
        let decoder =
            Decoder::build::<anyhow::Error, _>(&vs.root(), &spec, kind, &mut |name, shape| {
                Ok(tch::no_grad(|| {
                    if name.ends_with("norm.weight") {
                        Tensor::ones(shape, (kind, device))
                    } else if name.ends_with(".bias") {
                        Tensor::zeros(shape, (kind, device))
                    } else {
                        Tensor::randn(shape, (kind, device)) * std
                    }
                }))
            })?;
        let decoder = Mutex::new(decoder);
        let base = Base {
            vs,
            config,
            raw_config,
            decoder,
            spec,
            device,
            kind,
            dir: None,
            merged_sets: AtomicUsize::new(0),
        };
        Ok(Self::view(Arc::new(base), None))
    }

    fn load_typed(dir: &Path, device: Device, kind: Kind) -> Result<Self, LoadError> {
        check_kind(kind)?;
        let (config, raw_config, spec) = read_config(dir)?;
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
        let dir = Some(dir.to_path_buf());
        let decoder = Mutex::new(decoder);
        let base = Base {
            vs,
            config,
            raw_config,
            decoder,
            spec,
            device,
            kind,
            dir,
            merged_sets: AtomicUsize::new(0),
        };
        Ok(Self::view(Arc::new(base), None))
    }

    /// A view of `base` with `adapter`, without checkpointing, merging from the default
    /// size ([`MERGED_FORWARD_MIN_TOKENS`]).
    fn view(base: Arc<Base>, adapter: Option<LoraAdapter>) -> Self {
        Self {
            base,
            adapter,
            checkpointing: None,
            merge_from_tokens: Some(MERGED_FORWARD_MIN_TOKENS),
        }
    }

    /// A copy for an EMA or frozen reference model that shares no trainable storage with
    /// `self`: without an adapter, a deep copy of the weights; with one, the same shared base
    /// and a deep copy of the adapter (in its dtype).
    pub fn try_clone(&self) -> Result<Self> {
        if let Some(adapter) = &self.adapter {
            return Ok(Self::view(
                Arc::clone(&self.base),
                Some(adapter.try_clone(adapter.kind())?),
            ));
        }
        let b = &self.base;
        self.rebuilt(b.kind, b.dir.clone(), &|_, src| src.detach().copy())
    }

    /// A new model with its own base: every base weight `w` (by name) becomes
    /// `weight(name, w)` in `kind`, recorded as coming from `dir`. No adapter.
    fn rebuilt(
        &self,
        kind: Kind,
        dir: Option<PathBuf>,
        weight: &dyn Fn(&str, &Tensor) -> Tensor,
    ) -> Result<Self> {
        let b = &self.base;
        let vs = nn::VarStore::new(b.device);
        let vars = b.vs.variables();
        let spec = self.spec().clone();
        let decoder =
            Decoder::build::<anyhow::Error, _>(&vs.root(), &spec, kind, &mut |name, _| {
                let src = vars.get(name).with_context(|| format!("variable `{name}` missing"))?;
                Ok(tch::no_grad(|| weight(name, src)))
            })?;
        let base = Base {
            vs,
            config: b.config.clone(),
            raw_config: b.raw_config.clone(),
            decoder: Mutex::new(decoder),
            spec,
            device: b.device,
            kind,
            dir,
            merged_sets: AtomicUsize::new(0),
        };
        Ok(Self::view(Arc::new(base), None))
    }

    /// A view of the same base weights with `adapter` on its projections. The base's tensors
    /// are frozen (`requires_grad = false`) from now on, for every view: gradients reach only
    /// adapters. Errors when the adapter was built for a model of another depth.
    pub fn with_adapter(&self, adapter: LoraAdapter) -> Result<Self> {
        let layers = self.spec().num_layers as usize;
        if adapter.num_layers() != layers {
            bail!("the adapter has {} layers, the base model {layers}", adapter.num_layers());
        }
        self.freeze_base();
        Ok(Self::view(Arc::clone(&self.base), Some(adapter)))
    }

    /// A view of the same base weights with no adapter (frozen: see
    /// [`CausalLm::with_adapter`]), e.g. the fixed reference of LoRA players.
    pub fn without_adapter(&self) -> Self {
        self.freeze_base();
        Self::view(Arc::clone(&self.base), None)
    }

    /// A view of the same base with a deep copy of this view's adapter in `kind` (an f32 EMA
    /// copy of a bf16 adapter). Errors when this view has no adapter.
    pub fn adapter_copy(&self, kind: Kind) -> Result<Self> {
        let adapter = self.adapter.as_ref().context("this model has no adapter to copy")?;
        Ok(Self::view(Arc::clone(&self.base), Some(adapter.try_clone(kind)?)))
    }

    fn freeze_base(&self) {
        for (_, t) in self.base.vs.variables() {
            if t.requires_grad() {
                let _ = t.set_requires_grad(false);
            }
        }
    }

    /// Whether `self` and `other` are views of the same base weights.
    pub fn shares_base_with(&self, other: &CausalLm) -> bool {
        Arc::ptr_eq(&self.base, &other.base)
    }

    /// The LoRA adapter on top of the base weights, when this view has one.
    pub fn adapter(&self) -> Option<&LoraAdapter> {
        self.adapter.as_ref()
    }

    /// Mutable access to the LoRA adapter (e.g. to switch its dropout on).
    pub fn adapter_mut(&mut self) -> Option<&mut LoraAdapter> {
        self.adapter.as_mut()
    }

    /// The trainable weights: the adapter's store when there is one, else the base's.
    pub fn var_store(&self) -> &nn::VarStore {
        match &self.adapter {
            Some(a) => a.var_store(),
            None => &self.base.vs,
        }
    }

    /// The base model's weights (shared by every view).
    pub fn base_var_store(&self) -> &nn::VarStore {
        &self.base.vs
    }

    /// Mutable access to the base weights, e.g. to freeze a reference copy; `None` while
    /// other views share them.
    pub fn var_store_mut(&mut self) -> Option<&mut nn::VarStore> {
        Arc::get_mut(&mut self.base).map(|b| &mut b.vs)
    }

    /// The parsed `config.json` of the base model.
    pub fn config(&self) -> &ModelConfig {
        &self.base.config
    }

    /// The architecture-independent shape of the decoder (layers, heads, sizes) derived from
    /// the config.
    pub fn spec(&self) -> &DecoderSpec {
        &self.base.spec
    }

    /// The device the base weights live on (`Cpu` or `Cuda(n)`).
    pub fn device(&self) -> Device {
        self.base.device
    }

    /// The base weights' dtype (an adapter may hold another, see [`LoraAdapter::kind`]).
    pub fn kind(&self) -> Kind {
        self.base.kind
    }

    /// The folder the base weights were loaded from.
    pub fn source_dir(&self) -> Option<&Path> {
        self.base.dir.as_deref()
    }

    pub(crate) fn decoder(&self) -> MutexGuard<'_, Decoder> {
        self.base.decoder.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Logits `[B, T, vocab]` for a (possibly left- or right-padded) batch. Rotary positions
    /// count only real tokens, and pads are hidden from attention.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let hidden = self.hidden_states(input_ids, attention_mask);
        self.decoder().logits(&hidden)
    }

    /// Final-norm hidden states `[B, T, hidden]` (see [`CausalLm::forward`]). With gradient
    /// checkpointing on and autograd recording, the layers run checkpointed (see
    /// [`CausalLm::finish_backward`]). An adapter in training mode counts the call as one
    /// forward pass of its phase ([`LoraAdapter::pass`]: the key of its dropout masks).
    pub fn hidden_states(&self, input_ids: &Tensor, attention_mask: &Tensor) -> Tensor {
        let t = input_ids.size().last().copied().unwrap_or(0);
        let positions = positions_from_mask(attention_mask);
        let mask = attention_mask_4d(attention_mask, 0, t);
        match &self.checkpointing {
            Some(state) if grad_enabled() => {
                self.hidden_states_checkpointed(state, input_ids, &positions, &mask)
            }
            _ => {
                if self.adapter.is_some() && !grad_enabled() {
                    let weights = self.sampling(input_ids.numel() as i64);
                    if let Some(merged) = &weights.merged {
                        return merged.hidden_states(
                            input_ids,
                            &positions,
                            Some(&mask),
                            None,
                            None,
                        );
                    }
                }
                let adapter = self.adapter.as_ref().map(LoraAdapter::pass);
                self.decoder().hidden_states(input_ids, &positions, Some(&mask), None, adapter)
            }
        }
    }

    /// Projects hidden states to logits.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        self.decoder().logits(hidden)
    }

    /// From how many tokens (rows x positions) a generation call, or a forward pass without
    /// gradients, of a view with an adapter runs on merged weights ([`CausalLm::sampling`]);
    /// `None`: never (every projection adds the adapter's low-rank side path, as the
    /// training forward pass does). Default: [`MERGED_FORWARD_MIN_TOKENS`].
    pub fn set_merged_sampling(&mut self, from_tokens: Option<i64>) {
        self.merge_from_tokens = from_tokens;
    }

    /// See [`CausalLm::set_merged_sampling`].
    pub fn merged_sampling(&self) -> Option<i64> {
        self.merge_from_tokens
    }

    /// The weights of one generation call or no-grad forward pass over `tokens` positions in
    /// all (rows x (prompt + new tokens)). With an adapter in evaluation mode on an f32 (or
    /// f64) base, and `tokens` at least [`CausalLm::merged_sampling`]: a merged copy of the adapted
    /// projections, `W + scaling * B A` ([`Decoder::merged`]), made now and freed when the
    /// returned value is dropped (at the end of the call), so decode steps run the plain
    /// projections instead of `x A^T B^T * scaling` per projection and layer, and nothing of
    /// it outlives the call (a generation phase's copy is gone before the update; a
    /// reference forward's before the backward pass). The base is never written.
    /// Otherwise: this view itself (no adapter, or the side paths).
    ///
    /// Why not for bf16/f16 bases: the sum would be rounded to the base dtype, where an f32
    /// EMA adapter's small updates can vanish (the side path adds them in f32 to each
    /// output instead). Why not in training mode: the side path's dropout has no merged form.
    pub(crate) fn sampling(&self, tokens: i64) -> Sampling<'_> {
        let merged = self
            .adapter
            .as_ref()
            .filter(|a| {
                self.merge_from_tokens.is_some_and(|n| tokens >= n)
                    && !a.training()
                    && matches!(self.base.kind, Kind::Float | Kind::Double)
            })
            .map(|a| {
                let merged = self.decoder().merged(a);
                self.base.merged_sets.fetch_add(1, Ordering::Relaxed);
                merged
            });
        Sampling { lm: self, merged }
    }

    /// Merged weight sets ([`CausalLm::sampling`]) of this view's base alive now: nonzero
    /// only while a generation call on merged weights runs.
    pub fn merged_sets_alive(&self) -> usize {
        self.base.merged_sets.load(Ordering::Relaxed)
    }

    /// Writes what this model trains: with an adapter, the adapter alone in PEFT layout
    /// (`adapter_config.json` + `adapter_model.safetensors`, as `PeftModel.save_pretrained`);
    /// without, `config.json` and `model.safetensors` so that transformers'
    /// `AutoModelForCausalLM.from_pretrained(dir)` loads the same model.
    pub fn save_pretrained(&self, dir: &Path) -> Result<()> {
        if let Some(adapter) = &self.adapter {
            let base = self.base.dir.as_ref().map(|d| d.canonicalize().unwrap_or(d.clone()));
            let base = base.as_ref().map(|d| d.display().to_string());
            return adapter.save_pretrained(dir, base.as_deref());
        }
        self.save_full(dir)
    }

    /// A full model whose projections are `W + scaling * B A` (PEFT's `merge_and_unload`),
    /// with weights in `kind` (the sum is taken in f32), sharing nothing with `self`. Without
    /// an adapter, a deep copy in `kind`.
    pub fn merged(&self, kind: Kind) -> Result<Self> {
        check_kind(kind)?;
        let deltas: std::collections::HashMap<String, Tensor> =
            self.adapter.iter().flat_map(|a| a.delta_weights()).collect();
        self.rebuilt(kind, None, &|name, src| match deltas.get(name) {
            Some(d) => (src.to_kind(Kind::Float) + d).to_kind(kind),
            None => src.detach().to_kind(kind).copy(),
        })
    }

    fn save_full(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create checkpoint folder {}", dir.display()))?;
        let mut config = self.base.raw_config.clone();
        if let Some(obj) = config.as_object_mut() {
            let dtype = match self.base.kind {
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
        let mut named: Vec<(String, Tensor)> = self.base.vs.variables().into_iter().collect();
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

/// A device's name as [`parse_device`] reads it back: `cpu` or `cuda:N`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}

/// The dtype a device runs at by default: f32 on CPU, bf16 on CUDA.
pub fn default_kind(device: Device) -> Kind {
    if device.is_cuda() { Kind::BFloat16 } else { Kind::Float }
}

/// The weights of one generation call ([`CausalLm::sampling`]): the model's own view, or a
/// merged copy that is freed when this is dropped.
pub(crate) struct Sampling<'a> {
    lm: &'a CausalLm,
    merged: Option<Decoder>,
}

impl Sampling<'_> {
    /// An empty cache for `batch` rows and up to `capacity` positions.
    pub(crate) fn new_cache(&self, batch: i64, capacity: i64) -> KvCache {
        match &self.merged {
            Some(d) => d.new_cache(batch, capacity),
            None => self.lm.decoder().new_cache(batch, capacity),
        }
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
        let mut run = |decoder: &Decoder, adapter| {
            let hidden =
                decoder.hidden_states(input_ids, positions, Some(&mask), Some(cache), adapter);
            decoder.step_logits(&hidden.select(1, t - 1), cache)
        };
        match &self.merged {
            Some(d) => run(d, None),
            None => run(&self.lm.decoder(), self.lm.adapter.as_ref().map(LoraAdapter::pass)),
        }
    }
}

impl Drop for Sampling<'_> {
    fn drop(&mut self) {
        if self.merged.take().is_some() {
            self.lm.base.merged_sets.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
