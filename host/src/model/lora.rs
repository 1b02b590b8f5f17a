//! LoRA adapters (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") with
//! the semantics, field names and file layout of Hugging Face PEFT's `LoraModel`.
//!
//! An adapter adds to a frozen projection `y = x W^T (+ b)` the low-rank path
//! `scaling * (dropout(x) A^T) B^T`, where `A` is `[r, in]`, `B` is `[out, r]` and
//! `scaling = lora_alpha / r` (`lora_alpha / sqrt(r)` with `use_rslora`), exactly as PEFT's
//! `lora.Linear.forward`: the input is cast to the adapter's dtype, the sum is cast back to the
//! base layer's dtype. So an f32 adapter (an EMA copy) runs on a bf16 base without rounding
//! its own weights. Initialisation follows PEFT's `init_lora_weights=True`: `A` is
//! kaiming-uniform with `a = sqrt(5)` (uniform in `+-1/sqrt(in)`), `B` is zero, so a fresh
//! adapter leaves the model's outputs unchanged.
//!
//! An adapter owns its own `VarStore` (only the `A`/`B` matrices, under the names
//! `model.layers.N.self_attn.q_proj.lora_A.weight`, ...); the base weights are never copied.
//! One base [`crate::model::CausalLm`] serves any number of adapters
//! ([`crate::model::CausalLm::with_adapter`]).
//!
//! Files: [`LoraAdapter::save_pretrained`] writes `adapter_config.json` and
//! `adapter_model.safetensors` with PEFT's key names
//! (`base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight`), which
//! `peft.PeftModel.from_pretrained` loads; [`LoraAdapter::load`] reads what PEFT's
//! `save_pretrained` writes (LoRA on linear projections, `bias = "none"`), refusing any
//! feature it would otherwise silently drop, naming the file and field.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor, nn};

use crate::model::decoder::{DecoderSpec, add_var};
use crate::model::dropout::{self, DropoutKey, DropoutSeed};
use crate::model::weights;

/// PEFT's adapter config file name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// PEFT's adapter weights file name (safetensors serialization).
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// The prefix PEFT's `get_peft_model_state_dict` puts before the base model's module names.
const KEY_PREFIX: &str = "base_model.model.";

/// A projection of a decoder layer that an adapter can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `self_attn.q_proj`, the query projection.
    Q,
    /// `self_attn.k_proj`, the key projection.
    K,
    /// `self_attn.v_proj`, the value projection.
    V,
    /// `self_attn.o_proj`, the attention output projection.
    O,
    /// `mlp.gate_proj`, the gated MLP's gate.
    Gate,
    /// `mlp.up_proj`, the gated MLP's up projection.
    Up,
    /// `mlp.down_proj`, the gated MLP's down projection.
    Down,
}

impl Target {
    /// Every target, in the order transformers lists a layer's modules.
    pub const ALL: [Target; 7] =
        [Target::Q, Target::K, Target::V, Target::O, Target::Gate, Target::Up, Target::Down];

    /// The module's leaf name, as `target_modules` spells it (`q_proj`, ...).
    pub fn module(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The module path inside a layer (`self_attn.q_proj`, `mlp.gate_proj`, ...).
    pub fn path(self) -> &'static str {
        match self {
            Target::Q => "self_attn.q_proj",
            Target::K => "self_attn.k_proj",
            Target::V => "self_attn.v_proj",
            Target::O => "self_attn.o_proj",
            Target::Gate => "mlp.gate_proj",
            Target::Up => "mlp.up_proj",
            Target::Down => "mlp.down_proj",
        }
    }

    /// `(out_features, in_features)` of the projection in a model of this shape.
    pub fn shape(self, spec: &DecoderSpec) -> (i64, i64) {
        let (h, i) = (spec.hidden_size, spec.intermediate_size);
        let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
        match self {
            Target::Q => (q, h),
            Target::K | Target::V => (kv, h),
            Target::O => (h, q),
            Target::Gate | Target::Up => (i, h),
            Target::Down => (h, i),
        }
    }

    fn index(self) -> usize {
        Target::ALL.iter().position(|t| *t == self).expect("listed")
    }

    fn from_module(name: &str) -> Option<Self> {
        Target::ALL.into_iter().find(|t| t.module() == name)
    }
}

/// The LoRA hyper-parameters, with PEFT's `LoraConfig` field names and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update `B A` (PEFT default 8).
    pub r: i64,
    /// Numerator of the scaling `lora_alpha / r` (PEFT default 8).
    pub lora_alpha: f64,
    /// Dropout probability on the adapter's input, in training mode only (PEFT default 0).
    pub lora_dropout: f64,
    /// Module leaf names to adapt (`q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`,
    /// `up_proj`, `down_proj`); default: all of them (PEFT's `"all-linear"` minus the LM head).
    pub target_modules: Vec<String>,
    /// Rank-stabilised scaling `lora_alpha / sqrt(r)` (Kalajdzievski 2023; PEFT default false).
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: Target::ALL.iter().map(|t| t.module().to_string()).collect(),
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// The factor on `B A x`: `lora_alpha / r`, or `lora_alpha / sqrt(r)` with `use_rslora`.
    pub fn scaling(&self) -> f64 {
        if self.use_rslora {
            self.lora_alpha / (self.r as f64).sqrt()
        } else {
            self.lora_alpha / self.r as f64
        }
    }

    /// The targets named by `target_modules`. Errors name the field and the value expected.
    pub fn targets(&self) -> Result<Vec<Target>> {
        if self.target_modules.is_empty() {
            bail!("target_modules: expected at least one of {}", module_list());
        }
        let mut out = Vec::new();
        for name in &self.target_modules {
            let t = Target::from_module(name).with_context(|| {
                format!("target_modules: `{name}` is not a projection; expected {}", module_list())
            })?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Checks ranges: `r >= 1`, `lora_alpha > 0` and finite, `0 <= lora_dropout < 1`, targets.
    pub fn validate(&self) -> Result<()> {
        if self.r < 1 {
            bail!("r: expected an integer >= 1, got {}", self.r);
        }
        if !(self.lora_alpha.is_finite() && self.lora_alpha > 0.0) {
            bail!("lora_alpha: expected a number > 0, got {}", self.lora_alpha);
        }
        if !(0.0..1.0).contains(&self.lora_dropout) {
            bail!("lora_dropout: expected 0 <= p < 1, got {}", self.lora_dropout);
        }
        self.targets().map(|_| ())
    }
}

fn module_list() -> String {
    Target::ALL.iter().map(|t| t.module()).collect::<Vec<_>>().join(", ")
}

/// The two matrices of one adapted projection: `a` `[r, in]`, `b` `[out, r]`.
#[derive(Debug)]
pub struct LoraLinear {
    /// PEFT's `lora_A`, shape `[r, in_features]`: the input down to rank `r`.
    pub a: Tensor,
    /// PEFT's `lora_B`, shape `[out_features, r]`: rank `r` up to the output; zeros at
    /// initialisation, so a fresh adapter leaves the base model unchanged.
    pub b: Tensor,
}

/// One set of LoRA matrices over a decoder, in its own `VarStore`.
#[derive(Debug)]
pub struct LoraAdapter {
    vs: nn::VarStore,
    config: LoraConfig,
    /// Per layer, per [`Target::ALL`] index.
    layers: Vec<[Option<LoraLinear>; 7]>,
    kind: Kind,
    scaling: f64,
    /// Training mode (as `nn.Dropout` under `model.train()`): the seed of this phase's
    /// dropout masks (`model::dropout`); `None` in evaluation mode.
    dropout: Option<DropoutSeed>,
    /// Forward passes begun in this training phase: the next pass's [`DropoutKey::call`].
    calls: AtomicU64,
}

/// One forward pass's use of an adapter: its matrices and, in training mode with
/// `lora_dropout > 0`, the key of this pass's dropout masks. Activation checkpointing keeps
/// the key so the layers' recomputation applies the same masks.
#[derive(Debug, Clone, Copy)]
pub struct AdapterPass<'a> {
    /// The adapter's matrices.
    pub adapter: &'a LoraAdapter,
    /// The masks' key; `None`: no dropout.
    pub dropout: Option<DropoutKey>,
}

impl AdapterPass<'_> {
    /// [`LoraAdapter::apply`] with this pass's dropout key.
    pub fn apply(self, layer: usize, target: Target, x: &Tensor, base_out: Tensor) -> Tensor {
        self.adapter.apply(layer, target, x, base_out, self.dropout)
    }
}

/// The `VarStore` name of a matrix: `model.layers.{l}.{path}.lora_{A|B}.weight`.
pub fn var_name(layer: i64, target: Target, which: char) -> String {
    format!("model.layers.{layer}.{}.lora_{which}.weight", target.path())
}

impl LoraAdapter {
    /// A fresh adapter as PEFT initialises one: `A` uniform in `+-1/sqrt(in_features)`
    /// (kaiming-uniform with `a = sqrt(5)`), `B` zero. The values of `A` come from a ChaCha8
    /// stream seeded with `seed`, so a run's adapters are reproducible.
    pub fn new(
        spec: &DecoderSpec,
        config: &LoraConfig,
        device: Device,
        kind: Kind,
        seed: u64,
    ) -> Result<Self> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Self::build(spec, config, device, kind, &mut |name, shape| {
            if name.contains(".lora_A.") {
                let bound = 1.0 / (shape[1] as f64).sqrt();
                let n = (shape[0] * shape[1]) as usize;
                let vals: Vec<f32> =
                    (0..n).map(|_| rng.random_range(-bound..bound) as f32).collect();
                Ok(Tensor::from_slice(&vals).view([shape[0], shape[1]]))
            } else {
                Ok(Tensor::zeros(shape, (Kind::Float, Device::Cpu)))
            }
        })
    }

    /// Registers `A`/`B` for every layer and target in a new store; `init(name, shape)` gives
    /// each matrix's values (any dtype/device: converted to `kind` on `device`).
    pub fn build(
        spec: &DecoderSpec,
        config: &LoraConfig,
        device: Device,
        kind: Kind,
        init: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>,
    ) -> Result<Self> {
        config.validate()?;
        let targets = config.targets()?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut layers = Vec::with_capacity(spec.num_layers as usize);
        for l in 0..spec.num_layers {
            let mut slots: [Option<LoraLinear>; 7] = Default::default();
            for &t in &targets {
                let (out, inp) = t.shape(spec);
                let mut add = |which: char, shape: [i64; 2]| -> Result<Tensor> {
                    let name = var_name(l, t, which);
                    let value = init(&name, &shape)?;
                    if value.size() != shape {
                        bail!("{name}: expected shape {shape:?}, got {:?}", value.size());
                    }
                    Ok(add_var(&root, &name, value.to_device(device).to_kind(kind).detach()))
                };
                let a = add('A', [config.r, inp])?;
                let b = add('B', [out, config.r])?;
                slots[t.index()] = Some(LoraLinear { a, b });
            }
            layers.push(slots);
        }
        Ok(Self {
            vs,
            config: config.clone(),
            layers,
            kind,
            scaling: config.scaling(),
            dropout: None,
            calls: AtomicU64::new(0),
        })
    }

    /// A deep copy of the matrices in `kind` (e.g. an f32 EMA copy of a bf16 adapter), in a
    /// new store sharing no storage with `self`.
    pub fn try_clone(&self, kind: Kind) -> Result<Self> {
        let vars = self.vs.variables();
        let spec_layers = self.layers.len() as i64;
        let device = self.vs.device();
        let mut copy = Self::build_like(self, spec_layers, device, kind, &mut |name, _| {
            let src = vars.get(name).with_context(|| format!("variable `{name}` missing"))?;
            Ok(tch::no_grad(|| src.detach().to_kind(kind).copy()))
        })?;
        copy.dropout = self.dropout;
        copy.calls = AtomicU64::new(self.calls.load(Ordering::Relaxed));
        Ok(copy)
    }

    /// Rebuilds the same layout (layers, targets, shapes) with new values.
    fn build_like(
        other: &Self,
        num_layers: i64,
        device: Device,
        kind: Kind,
        init: &mut dyn FnMut(&str, &[i64]) -> Result<Tensor>,
    ) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut layers = Vec::with_capacity(num_layers as usize);
        for (l, slots) in other.layers.iter().enumerate() {
            let mut new: [Option<LoraLinear>; 7] = Default::default();
            for (i, slot) in slots.iter().enumerate() {
                let Some(lin) = slot else { continue };
                let t = Target::ALL[i];
                let mut add = |which: char, like: &Tensor| -> Result<Tensor> {
                    let name = var_name(l as i64, t, which);
                    let value = init(&name, &like.size())?.to_device(device).to_kind(kind);
                    Ok(add_var(&root, &name, value))
                };
                new[i] = Some(LoraLinear { a: add('A', &lin.a)?, b: add('B', &lin.b)? });
            }
            layers.push(new);
        }
        Ok(Self {
            vs,
            config: other.config.clone(),
            layers,
            kind,
            scaling: other.scaling,
            dropout: None,
            calls: AtomicU64::new(0),
        })
    }

    /// The store holding only this adapter's matrices (what an optimiser and EMA update).
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The PEFT config this adapter was built or loaded with (rank, alpha, targets, dropout).
    pub fn config(&self) -> &LoraConfig {
        &self.config
    }

    /// The dtype of the matrices.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Decoder layers the adapter covers (the base model's `num_hidden_layers`).
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Training mode with dropout masks keyed by `seed` (`Some`), or evaluation mode
    /// (`None`, the default: no dropout). Starts a new phase: the next forward pass is
    /// call 0 of `seed` (see `model::dropout`), so a phase replays its masks exactly.
    pub fn set_training(&mut self, seed: Option<DropoutSeed>) {
        self.dropout = seed;
        *self.calls.get_mut() = 0;
    }

    /// Whether the adapter is in training mode.
    pub fn training(&self) -> bool {
        self.dropout.is_some()
    }

    /// Begins a forward pass: in training mode with `lora_dropout > 0`, takes the phase's
    /// next call index for the pass's dropout key; otherwise the pass has no dropout.
    pub fn pass(&self) -> AdapterPass<'_> {
        let dropout = self
            .dropout
            .filter(|_| self.config.lora_dropout > 0.0)
            .map(|seed| DropoutKey { seed, call: self.calls.fetch_add(1, Ordering::Relaxed) });
        AdapterPass { adapter: self, dropout }
    }

    /// The matrices adapting `target` in decoder layer `layer` (0-based); `None` when that
    /// projection is not adapted or the layer is out of range.
    pub fn get(&self, layer: usize, target: Target) -> Option<&LoraLinear> {
        self.layers.get(layer).and_then(|s| s[target.index()].as_ref())
    }

    /// PEFT's `lora.Linear.forward` after the base layer: `base_out + B(A(dropout(x))) *
    /// scaling` with `x` cast to the adapter's dtype and the sum cast back to `base_out`'s.
    /// Dropout (probability `lora_dropout`) applies when `dropout` gives the pass's key: the
    /// mask is that of site `(layer, target)` of the key (`model::dropout`), so the same key
    /// gives the same mask. Returns `base_out` unchanged when this layer/target is not
    /// adapted. When `base_out` is contiguous and in the adapter's dtype, the low-rank
    /// product is accumulated into its storage by one GEMM (so `base_out` must be this
    /// call's own output, as the decoder's projections give it).
    pub fn apply(
        &self,
        layer: usize,
        target: Target,
        x: &Tensor,
        base_out: Tensor,
        dropout: Option<DropoutKey>,
    ) -> Tensor {
        let Some(lin) = self.get(layer, target) else { return base_out };
        let out_kind = base_out.kind();
        let x = if x.kind() == self.kind { x.shallow_clone() } else { x.to_kind(self.kind) };
        let x = match dropout {
            Some(key) if self.config.lora_dropout > 0.0 => {
                dropout::dropout(&x, self.config.lora_dropout, key.site(layer, target.index()))
            }
            _ => x,
        };
        let down = x.linear(&lin.a, None::<Tensor>);
        if out_kind == self.kind && base_out.is_contiguous() {
            // One GEMM accumulating into the base output (`beta = 1`), `scaling` folded into
            // the rank-r activations: no `[.., out]` temporaries for the product, the scaled
            // product and the sum, nor their passes in backward (the frozen projection's
            // backward does not read its output, so writing it in place is safe for
            // autograd). The same sum as PEFT's up to f32 rounding order.
            let (out, r) = (lin.b.size()[0], lin.b.size()[1]);
            let mut rows = base_out.view([-1, out]);
            let _ = rows.addmm_(&(down * self.scaling).view([-1, r]), &lin.b.tr());
            return base_out;
        }
        let delta = down.linear(&lin.b, None::<Tensor>) * self.scaling;
        let sum = base_out + delta;
        if sum.kind() == out_kind { sum } else { sum.to_kind(out_kind) }
    }

    /// PEFT's `merge` for one projection: `W + scaling * B A` for the frozen `weight` `W`
    /// `[out, in]` of `(layer, target)`, in `W`'s dtype and on its device, as a new tensor
    /// (`W` is never written: other views share it); `None` when that projection is not
    /// adapted. With `transposed`, the sum is stored as `W'^T` `[in, out]` contiguous and
    /// returned as its `[out, in]` view, the layout CPU decode steps multiply by (see
    /// `model::decoder`'s decode layout); else `[out, in]` contiguous.
    ///
    /// One GEMM of inner size `r` added onto a copy of `W` (`addmm`, `scaling` folded into
    /// `A`): with `B = 0` the product is exactly zero and the result equals `W` bit for bit
    /// (but for the sign of zeros). Deterministic: the same matrices give the same bits.
    /// Only for evaluation: the merged weight carries no dropout and no gradient.
    pub fn merged_weight(
        &self,
        layer: usize,
        target: Target,
        weight: &Tensor,
        transposed: bool,
    ) -> Option<Tensor> {
        let lin = self.get(layer, target)?;
        let kind = weight.kind();
        Some(tch::no_grad(|| {
            let a = lin.a.detach().to_kind(kind) * self.scaling;
            let b = lin.b.detach().to_kind(kind);
            let w = weight.detach();
            if transposed {
                // [in, out] = W^T + (s A)^T B^T; addmm writes a fresh contiguous result.
                w.tr().addmm(&a.tr(), &b.tr()).tr()
            } else {
                w.addmm(&b, &a)
            }
        }))
    }

    /// `scaling * B A` `[out, in]` in f32 for every adapted projection, keyed by the base
    /// weight's name (`model.layers.N.self_attn.q_proj.weight`): PEFT's `get_delta_weight`.
    pub fn delta_weights(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        tch::no_grad(|| {
            for (l, slots) in self.layers.iter().enumerate() {
                for (i, slot) in slots.iter().enumerate() {
                    if let Some(lin) = slot {
                        let t = Target::ALL[i];
                        let delta = lin.b.to_kind(Kind::Float).matmul(&lin.a.to_kind(Kind::Float))
                            * self.scaling;
                        out.push((format!("model.layers.{l}.{}.weight", t.path()), delta));
                    }
                }
            }
        });
        out
    }

    /// Writes `adapter_config.json` and `adapter_model.safetensors` as PEFT's
    /// `PeftModel.save_pretrained` does, so `PeftModel.from_pretrained(base, dir)` loads it.
    /// `base_model_name_or_path` is recorded for `export` and for PEFT's `AutoPeftModel`.
    pub fn save_pretrained(&self, dir: &Path, base_model_name_or_path: Option<&str>) -> Result<()> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create adapter folder {}", dir.display()))?;
        let file = PeftConfigFile::from_config(&self.config, base_model_name_or_path);
        let text = serde_json::to_string_pretty(&file)?;
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, text + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut named: Vec<(String, Tensor)> = self
            .vs
            .variables()
            .into_iter()
            .map(|(name, t)| (format!("{KEY_PREFIX}{name}"), t))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        weights::save(&dir.join(WEIGHTS_FILE), &named)
    }

    /// Reads a PEFT LoRA adapter folder for a base model of shape `spec`, converting the
    /// matrices to `kind` on `device`. Errors name the file and the field or tensor: an
    /// adapter for another model (missing layer, wrong shape), another PEFT method, or a
    /// LoRA feature this engine does not implement (DoRA, biases, per-module ranks, ...).
    pub fn load(dir: &Path, spec: &DecoderSpec, device: Device, kind: Kind) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let file = PeftConfigFile::read(&config_path)?;
        let config = file.to_config(&config_path)?;
        let weights_path = dir.join(WEIGHTS_FILE);
        if !weights_path.is_file() {
            bail!(
                "{}: missing (PEFT adapters are read from the safetensors serialization; \
                 re-save with `save_pretrained(..., safe_serialization=True)`)",
                weights_path.display()
            );
        }
        let tensors = Tensor::read_safetensors(&weights_path)
            .with_context(|| format!("cannot read {}", weights_path.display()))?;
        let mut by_name: HashMap<String, Tensor> = HashMap::new();
        for (key, t) in tensors {
            // PEFT drops the adapter name ("default") on save; accept it when present too.
            let name = key.strip_prefix(KEY_PREFIX).unwrap_or(&key).replace(".default.", ".");
            by_name.insert(name, t);
        }
        let adapter = Self::build(spec, &config, device, kind, &mut |name, shape| {
            let t = by_name.remove(name).with_context(|| {
                format!("{}: tensor `{KEY_PREFIX}{name}` is missing", weights_path.display())
            })?;
            if t.size() != shape {
                bail!(
                    "{}: tensor `{KEY_PREFIX}{name}` has shape {:?}, expected {shape:?} for this \
                     base model and r = {}",
                    weights_path.display(),
                    t.size(),
                    config.r
                );
            }
            Ok(t)
        })?;
        if let Some(extra) = by_name.keys().min() {
            bail!(
                "{}: tensor `{KEY_PREFIX}{extra}` is not a LoRA matrix of this base model's \
                 target_modules ({} unexpected tensors)",
                weights_path.display(),
                by_name.len()
            );
        }
        Ok(adapter)
    }
}

/// `adapter_config.json` as PEFT writes it (the fields this engine reads; others are kept
/// at PEFT's defaults on save and checked on load).
#[derive(Debug, Serialize, Deserialize)]
struct PeftConfigFile {
    peft_type: Option<String>,
    task_type: Option<String>,
    #[serde(default)]
    base_model_name_or_path: Option<String>,
    r: Option<i64>,
    lora_alpha: Option<f64>,
    lora_dropout: Option<f64>,
    target_modules: Option<serde_json::Value>,
    #[serde(default)]
    bias: Option<String>,
    #[serde(default)]
    fan_in_fan_out: Option<bool>,
    #[serde(default)]
    use_rslora: Option<bool>,
    #[serde(default)]
    use_dora: Option<bool>,
    #[serde(default)]
    modules_to_save: Option<serde_json::Value>,
    #[serde(default)]
    layers_to_transform: Option<serde_json::Value>,
    #[serde(default)]
    rank_pattern: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    alpha_pattern: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    inference_mode: Option<bool>,
    #[serde(default)]
    init_lora_weights: Option<bool>,
    #[serde(flatten)]
    rest: BTreeMap<String, serde_json::Value>,
}

impl PeftConfigFile {
    fn from_config(config: &LoraConfig, base: Option<&str>) -> Self {
        Self {
            peft_type: Some("LORA".into()),
            task_type: Some("CAUSAL_LM".into()),
            base_model_name_or_path: base.map(str::to_string),
            r: Some(config.r),
            lora_alpha: Some(config.lora_alpha),
            lora_dropout: Some(config.lora_dropout),
            target_modules: Some(serde_json::json!(config.target_modules)),
            bias: Some("none".into()),
            fan_in_fan_out: Some(false),
            use_rslora: Some(config.use_rslora),
            use_dora: Some(false),
            modules_to_save: None,
            layers_to_transform: None,
            rank_pattern: Some(BTreeMap::new()),
            alpha_pattern: Some(BTreeMap::new()),
            inference_mode: Some(true),
            init_lora_weights: Some(true),
            rest: BTreeMap::new(),
        }
    }

    fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        serde_path_to_error::deserialize(de)
            .map_err(|e| anyhow::anyhow!("{}: field `{}`: {}", path.display(), e.path(), e.inner()))
    }

    fn to_config(&self, path: &Path) -> Result<LoraConfig> {
        let p = path.display();
        let field = |name: &str, what: String| anyhow::anyhow!("{p}: field `{name}`: {what}");
        match self.peft_type.as_deref() {
            Some("LORA") => {}
            other => {
                return Err(field("peft_type", format!("expected \"LORA\", got {other:?}")));
            }
        }
        if let Some(bias) = self.bias.as_deref().filter(|b| *b != "none") {
            return Err(field(
                "bias",
                format!("expected \"none\" (trained biases are not supported), got {bias:?}"),
            ));
        }
        let unsupported = [
            ("fan_in_fan_out", self.fan_in_fan_out == Some(true)),
            ("use_dora", self.use_dora == Some(true)),
            ("modules_to_save", self.modules_to_save.as_ref().is_some_and(|v| !v.is_null())),
            (
                "layers_to_transform",
                self.layers_to_transform.as_ref().is_some_and(|v| !v.is_null()),
            ),
            ("rank_pattern", self.rank_pattern.as_ref().is_some_and(|m| !m.is_empty())),
            ("alpha_pattern", self.alpha_pattern.as_ref().is_some_and(|m| !m.is_empty())),
        ];
        if let Some((name, _)) = unsupported.iter().find(|(_, set)| *set) {
            return Err(field(
                name,
                "is set, which this engine does not implement; expected the PEFT default".into(),
            ));
        }
        let defaults = LoraConfig::default();
        let target_modules = match &self.target_modules {
            None | Some(serde_json::Value::Null) => defaults.target_modules.clone(),
            Some(serde_json::Value::String(s)) if s.eq_ignore_ascii_case("all-linear") => {
                defaults.target_modules.clone()
            }
            Some(serde_json::Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        field("target_modules", format!("expected module names, got {v}"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(field(
                    "target_modules",
                    format!(
                        "expected a list of module names or \"all-linear\", got {other} (regular expressions are not supported)"
                    ),
                ));
            }
        };
        let config = LoraConfig {
            r: self.r.unwrap_or(defaults.r),
            lora_alpha: self.lora_alpha.unwrap_or(defaults.lora_alpha),
            lora_dropout: self.lora_dropout.unwrap_or(defaults.lora_dropout),
            target_modules,
            use_rslora: self.use_rslora.unwrap_or(false),
        };
        config.validate().map_err(|e| anyhow::anyhow!("{p}: {e:#}"))?;
        Ok(config)
    }
}

/// The `base_model_name_or_path` recorded in a PEFT adapter folder, if any.
pub fn base_model_of(dir: &Path) -> Result<Option<String>> {
    let path = dir.join(CONFIG_FILE);
    Ok(PeftConfigFile::read(&path)?.base_model_name_or_path.filter(|s| !s.is_empty()))
}

/// Whether `dir` holds a PEFT adapter (its `adapter_config.json`).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(CONFIG_FILE).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decoder::RopeKind;

    fn spec() -> DecoderSpec {
        DecoderSpec {
            vocab_size: 32,
            hidden_size: 16,
            intermediate_size: 24,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            head_dim: 4,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope: RopeKind::Default,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            tie_word_embeddings: true,
            layer_windows: vec![None, None],
        }
    }

    #[test]
    fn fresh_adapter_is_peft_init_and_only_its_matrices() {
        let cfg = LoraConfig { r: 4, ..Default::default() };
        let a = LoraAdapter::new(&spec(), &cfg, Device::Cpu, Kind::Float, 7).unwrap();
        assert_eq!(a.var_store().variables().len(), 2 * 7 * 2);
        let q = a.get(0, Target::Q).unwrap();
        assert_eq!(q.a.size(), [4, 16]);
        assert_eq!(q.b.size(), [16, 4]);
        assert_eq!(q.b.abs().sum(Kind::Float).double_value(&[]), 0.0);
        let bound = 1.0 / 16f64.sqrt();
        assert!(q.a.abs().max().double_value(&[]) <= bound);
        assert!(q.a.abs().max().double_value(&[]) > 0.5 * bound);
        let down = a.get(1, Target::Down).unwrap();
        assert_eq!(down.a.size(), [4, 24]);
        // Same seed, same values; EMA copies in f32 share nothing.
        let again = LoraAdapter::new(&spec(), &cfg, Device::Cpu, Kind::Float, 7).unwrap();
        assert!(again.get(0, Target::Q).unwrap().a.equal(&q.a));
        let copy = a.try_clone(Kind::Float).unwrap();
        tch::no_grad(|| {
            let mut a = copy.get(0, Target::Q).unwrap().a.shallow_clone();
            let _ = a.g_add_scalar_(1.0);
        });
        assert!(!copy.get(0, Target::Q).unwrap().a.equal(&q.a));
    }

    #[test]
    fn training_passes_are_counted_and_keyed() {
        let cfg = LoraConfig { r: 2, lora_dropout: 0.5, ..Default::default() };
        let mut a = LoraAdapter::new(&spec(), &cfg, Device::Cpu, Kind::Float, 1).unwrap();
        tch::no_grad(|| {
            let _ = a.get(0, Target::Q).unwrap().b.shallow_clone().fill_(1.0);
        });
        assert!(a.pass().dropout.is_none(), "evaluation mode: no dropout");
        a.set_training(Some(DropoutSeed(9)));
        assert!(a.training());
        let (k0, k1) = (a.pass().dropout.unwrap(), a.pass().dropout.unwrap());
        assert_eq!((k0.call, k1.call), (0, 1));
        // A new phase with the same seed replays its keys.
        a.set_training(Some(DropoutSeed(9)));
        assert_eq!(a.pass().dropout, Some(k0));
        let x = Tensor::ones([2, 3, 16], (Kind::Float, Device::Cpu));
        let y = |key| a.apply(0, Target::Q, &x, x.zeros_like(), key);
        assert!(y(Some(k0)).equal(&y(Some(k0))));
        assert!(!y(Some(k0)).equal(&y(Some(k1))));
        assert!(!y(Some(k0)).equal(&y(None)));
        // No dropout probability, no key.
        let cfg = LoraConfig { lora_dropout: 0.0, ..cfg };
        let mut plain = LoraAdapter::new(&spec(), &cfg, Device::Cpu, Kind::Float, 1).unwrap();
        plain.set_training(Some(DropoutSeed(9)));
        assert!(plain.pass().dropout.is_none());
    }

    #[test]
    fn config_errors_name_the_field() {
        let bad = LoraConfig { target_modules: vec!["lm_head".into()], ..Default::default() };
        assert!(format!("{:#}", bad.validate().unwrap_err()).contains("target_modules"));
        let bad = LoraConfig { r: 0, ..Default::default() };
        assert!(format!("{:#}", bad.validate().unwrap_err()).starts_with("r:"));
        let cfg = LoraConfig { r: 16, lora_alpha: 32.0, ..Default::default() };
        assert_eq!(cfg.scaling(), 2.0);
        let rs = LoraConfig { use_rslora: true, ..cfg };
        assert_eq!(rs.scaling(), 8.0);
    }

    #[test]
    fn saved_adapter_reloads_and_bad_configs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = LoraConfig {
            r: 2,
            target_modules: vec!["v_proj".into(), "q_proj".into()],
            ..Default::default()
        };
        let a = LoraAdapter::new(&spec(), &cfg, Device::Cpu, Kind::Float, 1).unwrap();
        a.save_pretrained(dir.path(), Some("/base")).unwrap();
        let b = LoraAdapter::load(dir.path(), &spec(), Device::Cpu, Kind::Float).unwrap();
        assert!(b.get(1, Target::V).unwrap().a.equal(&a.get(1, Target::V).unwrap().a));
        assert!(b.get(0, Target::K).is_none());
        assert_eq!(base_model_of(dir.path()).unwrap().as_deref(), Some("/base"));
        let path = dir.path().join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"use_dora\": false", "\"use_dora\": true")).unwrap();
        let err = format!(
            "{:#}",
            LoraAdapter::load(dir.path(), &spec(), Device::Cpu, Kind::Float).unwrap_err()
        );
        assert!(err.contains("adapter_config.json: field `use_dora`"), "{err}");
        std::fs::write(&path, text.replace("\"r\": 2", "\"r\": 3")).unwrap();
        let err = format!(
            "{:#}",
            LoraAdapter::load(dir.path(), &spec(), Device::Cpu, Kind::Float).unwrap_err()
        );
        assert!(err.contains("has shape [2, 16], expected [3, 16]"), "{err}");
    }
}
