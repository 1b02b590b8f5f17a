//! The decoder-only transformer shared by the Llama, Mistral, Qwen2 and Qwen3 families: token
//! embedding, pre-norm blocks (RMSNorm, rotary GQA attention, SwiGLU MLP), final norm and LM
//! head.
//!
//! The families differ only in what [`DecoderSpec`] says (biases, per-head q/k norms, rope
//! scaling, sliding windows, tying), so
//! the arithmetic lives here once and follows transformers' operation order (RMSNorm in f32,
//! rotate-half rotary embedding) so that f32 logits agree to ~1e-6.
//!
//! Variables are registered in a `VarStore` under exactly the Hugging Face parameter names
//! (`model.layers.0.self_attn.q_proj.weight`, ...): loading and saving are name-for-name.

use tch::{Device, Kind, Tensor, nn};

use crate::model::lora::{AdapterPass, LoraAdapter, Target};

/// Rotary embedding frequencies (transformers' `rope_type`).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeKind {
    /// Plain RoPE: dimension pair `i` of a head of size `d` rotates at `theta^(-2i/d)` radians
    /// per position (transformers `rope_type = "default"`).
    Default,
    /// Positions divided by `factor`.
    Linear {
        /// The scale, > 0 (transformers `rope_scaling.factor`).
        factor: f64,
    },
    /// Llama 3.x frequency-dependent scaling.
    Llama3 {
        /// Overall scale of the low frequencies, > 0 (`rope_scaling.factor`, 8 for Llama 3.1).
        factor: f64,
        /// Wavelengths longer than `original_max_position / low_freq_factor` are divided by
        /// `factor` (`rope_scaling.low_freq_factor`, 1 for Llama 3.1).
        low_freq_factor: f64,
        /// Wavelengths shorter than `original_max_position / high_freq_factor` are kept; between
        /// the two bounds the scale is interpolated (`rope_scaling.high_freq_factor`, 4 for Llama
        /// 3.1).
        high_freq_factor: f64,
        /// The context length, in tokens, the model was pre-trained with before scaling
        /// (`rope_scaling.original_max_position_embeddings`, 8192 for Llama 3.1).
        original_max_position: i64,
    },
}

/// Everything the shared decoder needs to know about one model.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    /// Token ids the embedding and LM head cover (`vocab_size`).
    pub vocab_size: i64,
    /// Width of the residual stream (`hidden_size`).
    pub hidden_size: i64,
    /// Width of the SwiGLU MLP's inner layer (`intermediate_size`).
    pub intermediate_size: i64,
    /// Decoder blocks (`num_hidden_layers`).
    pub num_layers: i64,
    /// Query heads per layer (`num_attention_heads`).
    pub num_heads: i64,
    /// Key/value heads per layer (`num_key_value_heads`); divides `num_heads`, each group of
    /// `num_heads / num_kv_heads` query heads shares one (grouped-query attention).
    pub num_kv_heads: i64,
    /// Width of one attention head (`head_dim`, else `hidden_size / num_attention_heads`); even,
    /// as the rotary embedding rotates pairs.
    pub head_dim: i64,
    /// Epsilon inside every RMSNorm (`rms_norm_eps`).
    pub rms_norm_eps: f64,
    /// RoPE base frequency (`rope_theta`).
    pub rope_theta: f64,
    /// How RoPE frequencies are scaled (`rope_scaling` / `rope_parameters`).
    pub rope: RopeKind,
    /// Biases on the q, k and v projections (Qwen2 always; Llama and Qwen3 with
    /// `attention_bias`).
    pub qkv_bias: bool,
    /// A bias on the attention output projection (Llama and Qwen3 with `attention_bias`).
    pub o_bias: bool,
    /// Biases on the gate, up and down projections (Llama's `mlp_bias`).
    pub mlp_bias: bool,
    /// RMSNorm over each query and key head before the rotary embedding (Qwen3).
    pub qk_norm: bool,
    /// The LM head reuses `model.embed_tokens.weight` (no `lm_head.weight` of its own).
    pub tie_word_embeddings: bool,
    /// Per layer: `Some(w)` when a query may only see the `w` most recent positions (itself
    /// included), `None` for full causal attention. Length `num_layers`.
    pub layer_windows: Vec<Option<i64>>,
}

impl DecoderSpec {
    /// The name and shape of every parameter, in the order transformers lists them.
    pub fn parameters(&self) -> Vec<(String, Vec<i64>)> {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim);
        let (q, kv) = (self.num_heads * d, self.num_kv_heads * d);
        let mut out = vec![("model.embed_tokens.weight".to_string(), vec![self.vocab_size, h])];
        for l in 0..self.num_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            let mut push = |name: String, shape: Vec<i64>| out.push((name, shape));
            push(p("self_attn.q_proj.weight"), vec![q, h]);
            if self.qkv_bias {
                push(p("self_attn.q_proj.bias"), vec![q]);
            }
            push(p("self_attn.k_proj.weight"), vec![kv, h]);
            if self.qkv_bias {
                push(p("self_attn.k_proj.bias"), vec![kv]);
            }
            push(p("self_attn.v_proj.weight"), vec![kv, h]);
            if self.qkv_bias {
                push(p("self_attn.v_proj.bias"), vec![kv]);
            }
            push(p("self_attn.o_proj.weight"), vec![h, q]);
            if self.o_bias {
                push(p("self_attn.o_proj.bias"), vec![h]);
            }
            if self.qk_norm {
                push(p("self_attn.q_norm.weight"), vec![d]);
                push(p("self_attn.k_norm.weight"), vec![d]);
            }
            for (name, shape) in
                [("gate_proj", vec![i, h]), ("up_proj", vec![i, h]), ("down_proj", vec![h, i])]
            {
                let bias_len = shape[0];
                push(p(&format!("mlp.{name}.weight")), shape);
                if self.mlp_bias {
                    push(p(&format!("mlp.{name}.bias")), vec![bias_len]);
                }
            }
            push(p("input_layernorm.weight"), vec![h]);
            push(p("post_attention_layernorm.weight"), vec![h]);
        }
        out.push(("model.norm.weight".to_string(), vec![h]));
        if !self.tie_word_embeddings {
            out.push(("lm_head.weight".to_string(), vec![self.vocab_size, h]));
        }
        out
    }

    /// Inverse rotary frequencies, computed like transformers' `rope_init_fn` (f32).
    fn inv_freq(&self) -> Tensor {
        let dim = self.head_dim;
        let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, Device::Cpu))
            .to_kind(Kind::Float)
            / (dim as f64);
        let inv = Tensor::pow_scalar(self.rope_theta, &exponents).reciprocal();
        match &self.rope {
            RopeKind::Default => inv,
            RopeKind::Linear { factor } => inv / *factor,
            RopeKind::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position,
            } => {
                let old = *original_max_position as f64;
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                let wavelen = inv.reciprocal() * (2.0 * std::f64::consts::PI);
                let scaled = inv.where_self(&wavelen.le(low_wavelen), &(&inv / *factor));
                // `old / wavelen` in Python is `wavelen.reciprocal() * old` in PyTorch.
                let smooth = ((wavelen.reciprocal() * old) - *low_freq_factor)
                    / (high_freq_factor - low_freq_factor);
                let smoothed =
                    (smooth.ones_like() - &smooth) * &scaled / *factor + &smooth * &scaled;
                let medium = wavelen.ge(high_wavelen).logical_and(&wavelen.le(low_wavelen));
                smoothed.where_self(&medium, &scaled)
            }
        }
    }
}

/// A dense layer `y = x W^T + b` over VarStore-owned tensors.
#[derive(Debug)]
struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// The frozen projection, plus the adapter's low-rank path for `(layer, target)` when an
    /// adapter is given (PEFT's `lora.Linear.forward`, see [`LoraAdapter::apply`]).
    fn forward(&self, xs: &Tensor, lora: Option<(AdapterPass<'_>, usize, Target)>) -> Tensor {
        let out = xs.linear(&self.weight, self.bias.as_ref());
        match lora {
            Some((adapter, layer, target)) => adapter.apply(layer, target, xs, out),
            None => out,
        }
    }

    /// The same map with the weight given as `W^T` `[in, out]` contiguous (see
    /// [`DecodeLayout`]).
    fn forward_transposed(&self, xs: &Tensor, weight_t: &Tensor) -> Tensor {
        // Exhaustive on purpose: a field added to `Linear` (e.g. an adapter that changes
        // `forward`) must be reflected here too, or decoding would silently skip it.
        let Linear { weight: _, bias } = self;
        let ys = xs.matmul(weight_t);
        match bias {
            Some(b) => ys + b,
            None => ys,
        }
    }
}

/// Row count (batch x new positions) up to which a cached call runs its projections on the
/// [`DecodeLayout`]. At 8 rows MKL's f32 GEMM on `x @ W^T` with `W` stored `[out, in]`
/// ran 1.5-2.3x slower than on `x @ T` with `T = W^T` stored contiguous (1 thread,
/// SmolLM2's shapes, 576x576 to 49152x576); at 360 rows the stored layout is as fast or
/// faster, so prefills keep it. Measured with `torch.nn.functional.linear` vs `x @ T`,
/// 2026-11-29 (BENCHMARKS.md, model engine section).
const DECODE_ROWS: i64 = 32;

/// Target width (output columns) of one [`Panels`] panel. At 8 rows, `x @ T` over the whole
/// transposed `[576, 49152]` LM head ran 1.2-2.3x slower than one batched GEMM over its
/// `[576, 256]` panels, with bit-identical logits (each output column is the same dot
/// product); widths of 192-256 were the best of 128-2048 (MKL, 1 thread, per-step A/B inside
/// one generation, 2026-11-30, BENCHMARKS.md "Decode steps on transposed weights"). The
/// layer projections (at most 1536 columns) gained nothing measurable and keep one panel.
const PANEL_WIDTH: i64 = 256;

/// A wide projection `y = x W^T` laid out for decode steps: `W^T` `[in, out]` cut into `n`
/// contiguous column panels `[n, in, width]` (the last padded with zero columns when `width`
/// does not divide `out`), multiplied by one batched GEMM. Over one wide `W^T`, MKL's
/// few-row GEMM walks `in` rows of `out` floats each per column block; a panel keeps each
/// block's weights contiguous and its output small (see [`PANEL_WIDTH`]).
#[derive(Debug)]
struct Panels {
    /// `[n, in, width]`, contiguous.
    panels: Tensor,
    /// Real output columns (`<= n * width`).
    out: i64,
}

impl Panels {
    /// The panels of `weight` `[out, in]` (detached).
    fn new(weight: &Tensor) -> Self {
        let w = weight.detach();
        let (out, inp) = w.size2().expect("projection weights are [out, in]");
        let width = if out % PANEL_WIDTH == 0 {
            PANEL_WIDTH
        } else {
            (128..=320).filter(|w| out % w == 0).max().unwrap_or(PANEL_WIDTH)
        };
        let n = (out + width - 1) / width;
        let w = if n * width > out {
            let pad = Tensor::zeros([n * width - out, inp], (w.kind(), w.device()));
            Tensor::cat(&[&w, &pad], 0)
        } else {
            w
        };
        let panels = w.view([n, width, inp]).transpose(1, 2).contiguous();
        Self { panels, out }
    }

    /// New handles on the same tensor.
    fn shallow_clone(&self) -> Self {
        Self { panels: self.panels.shallow_clone(), out: self.out }
    }

    /// `xs W^T` for `xs` `[rows, in]`: `[rows, out]`.
    fn matmul(&self, xs: &Tensor) -> Tensor {
        let (n, inp, width) = self.panels.size3().expect("panels are [n, in, width]");
        let rows = xs.size()[0];
        // [n, rows, width] -> [rows, n * width]
        let ys = xs.expand([n, rows, inp], false).bmm(&self.panels);
        let ys = ys.permute([1, 0, 2]).reshape([rows, n * width]);
        if n * width > self.out { ys.narrow(1, 0, self.out) } else { ys }
    }
}

/// The projection weights transposed to `[in, out]` contiguous, and the LM head as
/// [`Panels`], for decode steps on CPU. Built when a cache is made, kept while the weights
/// stay the same (see [`LayoutCache`]). Costs one more copy of those weights in memory while
/// it is held.
#[derive(Debug)]
struct DecodeLayout {
    /// Per block: q, k, v, o, gate, up, down.
    blocks: Vec<[Tensor; 7]>,
    lm_head: Panels,
}

/// What identifies a weight's current values: its data pointer and version counter (bumped
/// by every in-place update, e.g. an optimizer step or `VarStore::copy`).
type Stamp = (usize, i64);

fn stamp(t: &Tensor) -> Stamp {
    (t.data_ptr() as usize, t.internal_version())
}

/// A decoder's [`DecodeLayout`], its two parts held and rebuilt separately: the transposed
/// projections and the LM head's panels, each with the [`Stamp`]s of its sources, compared
/// at the next [`Decoder::new_cache`], which rebuilds a part whose sources changed. Separate
/// so that LoRA sampling on merged weights ([`Decoder::merged`]) can share the frozen base's
/// LM head panels without making the base's transposed projections, which it replaces.
#[derive(Debug, Default)]
struct LayoutCache {
    blocks: Option<(Vec<Stamp>, Vec<[Tensor; 7]>)>,
    lm_head: Option<(Stamp, Panels)>,
}

#[derive(Debug)]
struct Block {
    input_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    /// Per-head RMSNorm weights `[head_dim]` for queries and keys (Qwen3).
    qk_norm: Option<(Tensor, Tensor)>,
    /// Sliding attention window of this layer (see [`DecoderSpec::layer_windows`]).
    window: Option<i64>,
    post_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Per-layer key/value tensors of a batch being generated, preallocated to the final length
/// so that a decode step writes in place instead of concatenating.
#[derive(Debug)]
pub struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    /// Transposed projection weights for small cached calls (CPU only).
    decode: Option<DecodeLayout>,
    /// Number of positions filled so far.
    len: i64,
    capacity: i64,
}

impl KvCache {
    /// Positions filled so far (the same for every row: padding occupies positions too).
    pub fn len(&self) -> i64 {
        self.len
    }

    /// True before the first forward pass wrote into the cache.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions the cache holds at most: prompt plus generated tokens.
    pub fn capacity(&self) -> i64 {
        self.capacity
    }

    /// Keeps only the given batch rows (used to drop finished sequences).
    pub fn select_rows(&mut self, rows: &Tensor) {
        for t in self.keys.iter_mut().chain(self.values.iter_mut()) {
            *t = t.index_select(0, rows);
        }
    }
}

/// Rotary tables for one forward call, shared by all layers: `cos` and the sign-folded `sin`
/// (so rotate-half becomes one `roll`), both `[B, 1, T, head_dim]` in the model's dtype.
struct Rotary {
    cos: Tensor,
    sin: Tensor,
    half: i64,
}

impl Rotary {
    fn apply(&self, xs: &Tensor) -> Tensor {
        xs * &self.cos + xs.roll([self.half], [-1]) * &self.sin
    }
}

/// Registers `tensor` as trainable variable `name` of `root`. VarStore paths are
/// dot-separated, so `a.b.c` becomes sub-path `a.b`, leaf `c` (the Hugging Face name the
/// weights are saved under).
pub(crate) fn add_var(root: &nn::Path, name: &str, tensor: Tensor) -> Tensor {
    let (parents, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    let mut path: Option<nn::Path> = None;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        path = Some(match &path {
            None => root / part,
            Some(p) => p / part,
        });
    }
    path.as_ref().unwrap_or(root).add(leaf, tensor, true)
}

/// The shared decoder. Holds shallow handles to VarStore variables.
#[derive(Debug)]
pub struct Decoder {
    spec: DecoderSpec,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Tensor,
    kind: Kind,
    /// See [`DecodeLayout`]; empty until the first cache on CPU.
    layout: std::sync::Mutex<LayoutCache>,
}

impl Decoder {
    /// Registers every parameter in `root` under its HF name, taking each tensor from `init`
    /// (which must return a tensor of the given shape on the store's device and in `kind`);
    /// the first error of `init` is returned as is.
    pub fn build<E, F>(
        root: &nn::Path,
        spec: &DecoderSpec,
        kind: Kind,
        init: &mut F,
    ) -> Result<Self, E>
    where
        F: FnMut(&str, &[i64]) -> Result<Tensor, E>,
    {
        let mut add = |name: &str, shape: &[i64]| -> Result<Tensor, E> {
            Ok(add_var(root, name, init(name, shape)?))
        };
        let h = spec.hidden_size;
        let (i, d) = (spec.intermediate_size, spec.head_dim);
        let (qd, kvd) = (spec.num_heads * d, spec.num_kv_heads * d);
        let embed = add("model.embed_tokens.weight", &[spec.vocab_size, h])?;
        let mut blocks = Vec::with_capacity(spec.num_layers as usize);
        for l in 0..spec.num_layers {
            let mut linear = |name: &str, out: i64, inp: i64, bias: bool| -> Result<Linear, E> {
                let weight = add(&format!("model.layers.{l}.{name}.weight"), &[out, inp])?;
                let bias = if bias {
                    Some(add(&format!("model.layers.{l}.{name}.bias"), &[out])?)
                } else {
                    None
                };
                Ok(Linear { weight, bias })
            };
            let q = linear("self_attn.q_proj", qd, h, spec.qkv_bias)?;
            let k = linear("self_attn.k_proj", kvd, h, spec.qkv_bias)?;
            let v = linear("self_attn.v_proj", kvd, h, spec.qkv_bias)?;
            let o = linear("self_attn.o_proj", h, qd, spec.o_bias)?;
            let window = spec.layer_windows.get(l as usize).copied().flatten();
            let gate = linear("mlp.gate_proj", i, h, spec.mlp_bias)?;
            let up = linear("mlp.up_proj", i, h, spec.mlp_bias)?;
            let down = linear("mlp.down_proj", h, i, spec.mlp_bias)?;
            let qk_norm = if spec.qk_norm {
                let q = add(&format!("model.layers.{l}.self_attn.q_norm.weight"), &[d])?;
                let k = add(&format!("model.layers.{l}.self_attn.k_norm.weight"), &[d])?;
                Some((q, k))
            } else {
                None
            };
            let input_norm = add(&format!("model.layers.{l}.input_layernorm.weight"), &[h])?;
            let post_norm =
                add(&format!("model.layers.{l}.post_attention_layernorm.weight"), &[h])?;
            blocks.push(Block {
                input_norm,
                q,
                k,
                v,
                o,
                qk_norm,
                window,
                post_norm,
                gate,
                up,
                down,
            });
        }
        let norm = add("model.norm.weight", &[h])?;
        let lm_head = if spec.tie_word_embeddings {
            embed.shallow_clone()
        } else {
            add("lm_head.weight", &[spec.vocab_size, h])?
        };
        let inv_freq = spec.inv_freq().to_device(root.device());
        Ok(Self {
            spec: spec.clone(),
            embed,
            blocks,
            norm,
            lm_head,
            inv_freq,
            kind,
            layout: std::sync::Mutex::new(LayoutCache::default()),
        })
    }

    /// The shape this decoder was built from.
    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }

    /// The dtype of the weights and activations (f32 on CPU, bf16 on CUDA by default).
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// An empty cache for `batch` rows and up to `capacity` positions.
    pub fn new_cache(&self, batch: i64, capacity: i64) -> KvCache {
        let shape = [batch, self.spec.num_kv_heads, capacity, self.spec.head_dim];
        let opts = (self.kind, self.embed.device());
        let n = self.blocks.len();
        KvCache {
            keys: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            values: (0..n).map(|_| Tensor::zeros(shape, opts)).collect(),
            decode: self.decode_layout(),
            len: 0,
            capacity,
        }
    }

    /// The current [`DecodeLayout`] (a part rebuilt if a weight changed since it was made),
    /// on CPU.
    fn decode_layout(&self) -> Option<DecodeLayout> {
        if self.embed.device() != Device::Cpu {
            return None;
        }
        let mut cache = self.layout.lock().unwrap_or_else(|e| e.into_inner());
        let blocks = self.layout_blocks(&mut cache);
        let lm_head = self.layout_head(&mut cache);
        Some(DecodeLayout { blocks, lm_head })
    }

    /// The projection weights of every block, q, k, v, o, gate, up, down.
    fn projections(&self) -> impl Iterator<Item = &Tensor> {
        self.blocks
            .iter()
            .flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down])
            .map(|l| &l.weight)
    }

    /// The transposed projections of `cache`, rebuilt first when stale.
    fn layout_blocks(&self, cache: &mut LayoutCache) -> Vec<[Tensor; 7]> {
        let stamps: Vec<Stamp> = self.projections().map(stamp).collect();
        if let Some((held, blocks)) = &cache.blocks
            && *held == stamps
        {
            return blocks.iter().map(|b| b.each_ref().map(Tensor::shallow_clone)).collect();
        }
        // Drop the stale copy before making the new one (peak memory).
        cache.blocks = None;
        let blocks: Vec<[Tensor; 7]> = tch::no_grad(|| {
            let mut it = self.projections().map(|w| w.detach().tr().contiguous());
            (0..self.blocks.len())
                .map(|_| std::array::from_fn(|_| it.next().expect("7 weights per block")))
                .collect()
        });
        let shared = blocks.iter().map(|b| b.each_ref().map(Tensor::shallow_clone)).collect();
        cache.blocks = Some((stamps, blocks));
        shared
    }

    /// The LM head's panels of `cache`, rebuilt first when stale.
    fn layout_head(&self, cache: &mut LayoutCache) -> Panels {
        let stamp = stamp(&self.lm_head);
        if let Some((held, panels)) = &cache.lm_head
            && *held == stamp
        {
            return panels.shallow_clone();
        }
        cache.lm_head = None;
        let panels = tch::no_grad(|| Panels::new(&self.lm_head));
        let shared = panels.shallow_clone();
        cache.lm_head = Some((stamp, panels));
        shared
    }

    /// A decoder for sampling from this one with `adapter` merged into its weights (PEFT's
    /// `merge_adapter`, without touching the frozen base that other views share): every
    /// adapted projection is a new tensor `W + scaling * B A`
    /// ([`LoraAdapter::merged_weight`]) in the weights' dtype; everything else (embeddings,
    /// norms, projections the adapter does not target, the LM head) is this decoder's own
    /// tensors, by reference. On CPU the sums are made directly in the decode layout
    /// (`[in, out]` contiguous), which the merged decoder's prefill multiplies by too, and
    /// the LM head's panels are this decoder's: the merged copy costs the adapted
    /// projections once, and this decoder's own transposed projections are never made for
    /// it (unless the adapter leaves some projection untargeted, which then comes from
    /// them).
    ///
    /// Decoding on it runs the plain projections, no low-rank side paths: the logits equal
    /// the side paths' up to f32 rounding (tests: `model::generate`). It holds its copy
    /// until dropped; no dropout (an evaluation-mode forward).
    pub(crate) fn merged(&self, adapter: &LoraAdapter) -> Decoder {
        let cpu = self.embed.device() == Device::Cpu;
        let untargeted = (0..self.blocks.len())
            .any(|l| Target::ALL.iter().any(|&t| adapter.get(l, t).is_none()));
        let (base_blocks, head) = if cpu {
            let mut cache = self.layout.lock().unwrap_or_else(|e| e.into_inner());
            let blocks = untargeted.then(|| self.layout_blocks(&mut cache));
            (blocks, Some(self.layout_head(&mut cache)))
        } else {
            (None, None)
        };
        let mut layout_blocks = Vec::with_capacity(self.blocks.len());
        let blocks = self
            .blocks
            .iter()
            .enumerate()
            .map(|(l, b)| {
                let mut transposed: [Option<Tensor>; 7] = Default::default();
                let mut merge = |lin: &Linear, t: Target| -> Linear {
                    let bias = lin.bias.as_ref().map(Tensor::shallow_clone);
                    let weight = match adapter.merged_weight(l, t, &lin.weight, cpu) {
                        Some(w) => {
                            transposed[t as usize] = cpu.then(|| w.tr());
                            w
                        }
                        None => {
                            transposed[t as usize] = base_blocks
                                .as_ref()
                                .map(|blocks| blocks[l][t as usize].shallow_clone());
                            lin.weight.shallow_clone()
                        }
                    };
                    Linear { weight, bias }
                };
                let block = Block {
                    input_norm: b.input_norm.shallow_clone(),
                    q: merge(&b.q, Target::Q),
                    k: merge(&b.k, Target::K),
                    v: merge(&b.v, Target::V),
                    o: merge(&b.o, Target::O),
                    qk_norm: b
                        .qk_norm
                        .as_ref()
                        .map(|(q, k)| (q.shallow_clone(), k.shallow_clone())),
                    window: b.window,
                    post_norm: b.post_norm.shallow_clone(),
                    gate: merge(&b.gate, Target::Gate),
                    up: merge(&b.up, Target::Up),
                    down: merge(&b.down, Target::Down),
                };
                if cpu {
                    layout_blocks.push(transposed.map(|t| t.expect("every projection laid out")));
                }
                block
            })
            .collect();
        let mut merged = Decoder {
            spec: self.spec.clone(),
            embed: self.embed.shallow_clone(),
            blocks,
            norm: self.norm.shallow_clone(),
            lm_head: self.lm_head.shallow_clone(),
            inv_freq: self.inv_freq.shallow_clone(),
            kind: self.kind,
            layout: std::sync::Mutex::new(LayoutCache::default()),
        };
        if let Some(panels) = head {
            let stamps = merged.projections().map(stamp).collect();
            let cache = LayoutCache {
                blocks: Some((stamps, layout_blocks)),
                lm_head: Some((stamp(&merged.lm_head), panels)),
            };
            merged.layout = std::sync::Mutex::new(cache);
        }
        merged
    }

    fn rms_norm(&self, xs: &Tensor, weight: &Tensor) -> Tensor {
        let x32 = xs.to_kind(Kind::Float);
        let var = x32.square().mean_dim(-1, true, Kind::Float);
        let normed = x32 * (var + self.spec.rms_norm_eps).rsqrt();
        weight * normed.to_kind(self.kind)
    }

    fn rotary(&self, positions: &Tensor) -> Rotary {
        // freqs[b, t, j] = position[b, t] * inv_freq[j], in f32 as transformers does.
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1);
        let cos = emb.cos().to_kind(self.kind).unsqueeze(1);
        let sin = freqs.sin();
        let signed_sin = Tensor::cat(&[&(-&sin), &sin], -1).to_kind(self.kind).unsqueeze(1);
        Rotary { cos, sin: signed_sin, half: self.spec.head_dim / 2 }
    }

    /// Runs the decoder and returns the final-norm hidden states `[B, T, hidden]`.
    ///
    /// - `input_ids`: `[B, T]` int64.
    /// - `positions`: `[B, T]` int64 rotary positions (left padding shifts them per row).
    /// - `mask`: boolean `[B, 1, T, L]`, true where a query may attend a key, where `L` is the
    ///   number of keys (`T`, or the cache length after this call). `None` means purely
    ///   causal. Layers with a sliding window further restrict it by cache index (query `i`
    ///   sees key `j` only when `i - j < window`), as transformers' sliding-window masks do.
    /// - `cache`: when given, this call's keys/values are written at the cache's current length
    ///   and attention runs over the whole filled cache.
    /// - `adapter`: LoRA matrices added to the projections, with this pass's dropout key
    ///   (`None`: the base model alone; see [`crate::model::LoraAdapter::pass`]).
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        positions: &Tensor,
        mask: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        adapter: Option<AdapterPass<'_>>,
    ) -> Tensor {
        let all = 0..self.blocks.len();
        self.forward_layers(input_ids, None, positions, mask, cache, adapter, all, true)
    }

    /// Token embeddings `[B, T, hidden]` of `input_ids`.
    pub(crate) fn embed(&self, input_ids: &Tensor) -> Tensor {
        Tensor::embedding(&self.embed, input_ids, -1, false, false)
    }

    /// The final RMSNorm of the decoder.
    pub(crate) fn final_norm(&self, xs: &Tensor) -> Tensor {
        self.rms_norm(xs, &self.norm)
    }

    /// Number of decoder layers.
    pub(crate) fn num_layers(&self) -> usize {
        self.blocks.len()
    }

    /// Runs the decoder layers `layers` (see [`Decoder::hidden_states`] for the arguments),
    /// starting from `input` `[B, T, hidden]` (the output of the layer before `layers`) or,
    /// when `None`, from the embeddings of `input_ids`; applies the final norm when
    /// `final_norm`. Activation checkpointing runs the stack one layer at a time with it
    /// (`model::checkpointing`).
    #[expect(
        clippy::too_many_arguments,
        reason = "the stack's inputs are independent; checkpointing calls it per layer"
    )]
    pub(crate) fn forward_layers(
        &self,
        input_ids: &Tensor,
        input: Option<Tensor>,
        positions: &Tensor,
        mask: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        adapter: Option<AdapterPass<'_>>,
        layers: std::ops::Range<usize>,
        final_norm: bool,
    ) -> Tensor {
        let (b, t) = input_ids.size2().expect("input_ids must be [B, T]");
        let (nh, nkv, d) = (self.spec.num_heads, self.spec.num_kv_heads, self.spec.head_dim);
        let rotary = self.rotary(positions);
        let rep = nh / nkv;
        let start = cache.as_ref().map(|c| c.len).unwrap_or(0);
        // Grouped-query attention without repeating the cache: the `rep` query heads that
        // share a kv head are folded into the query axis (q `[B, nkv, rep*T, D]` against
        // k/v `[B, nkv, L, D]`), and the mask is repeated to match. Without a mask (pure
        // causal) the kernel's own GQA support is used instead.
        let group = |m: Tensor| -> Tensor {
            if rep > 1 {
                let (mb, l) = (m.size()[0], m.size()[3]);
                m.unsqueeze(2).expand([mb, 1, rep, t, l], false).reshape([mb, 1, rep * t, l])
            } else {
                m
            }
        };
        let full_mask = mask.map(|m| group(m.shallow_clone()));
        // One mask per distinct window size (usually none or one).
        let mut window_masks: Vec<(i64, Tensor)> = Vec::new();
        for w in self.blocks.iter().filter_map(|blk| blk.window) {
            if !window_masks.iter().any(|(x, _)| *x == w) {
                let l = start + t;
                let m = window_mask(mask, self.embed.device(), start, t, l, w);
                window_masks.push((w, group(m)));
            }
        }
        // Small cached calls (decode steps) project with the transposed weights.
        // (Taken out of the cache for the loop, which writes keys and values; put back below.)
        let fast = match cache.as_deref_mut() {
            Some(c) if b * t <= DECODE_ROWS => c.decode.take(),
            _ => None,
        };
        let mut xs = input.unwrap_or_else(|| self.embed(input_ids));
        for (layer, block) in self.blocks.iter().enumerate().take(layers.end).skip(layers.start) {
            let layer_mask = match block.window {
                Some(w) => window_masks.iter().find(|(x, _)| *x == w).map(|(_, m)| m),
                None => full_mask.as_ref(),
            };
            let grouped = rep > 1 && layer_mask.is_some();
            let lora = |target: Target| adapter.map(|a| (a, layer, target));
            // Decode steps use the transposed copies of the frozen weights; an adapter's
            // low-rank path is added on top either way.
            let proj = |lin: &Linear, target: Target, x: &Tensor| match &fast {
                Some(d) => {
                    let out = lin.forward_transposed(x, &d.blocks[layer][target as usize]);
                    match lora(target) {
                        Some((a, l, t)) => a.apply(l, t, x, out),
                        None => out,
                    }
                }
                None => lin.forward(x, lora(target)),
            };
            let h = self.rms_norm(&xs, &block.input_norm);
            let mut q = proj(&block.q, Target::Q, &h).view([b, t, nh, d]);
            let mut k = proj(&block.k, Target::K, &h).view([b, t, nkv, d]);
            if let Some((q_norm, k_norm)) = &block.qk_norm {
                q = self.rms_norm(&q, q_norm);
                k = self.rms_norm(&k, k_norm);
            }
            let q = rotary.apply(&q.transpose(1, 2));
            let k = rotary.apply(&k.transpose(1, 2));
            let v = proj(&block.v, Target::V, &h).view([b, t, nkv, d]).transpose(1, 2);
            let (k, v) = match cache.as_deref_mut() {
                Some(c) => {
                    let total = start + t;
                    c.keys[layer].narrow(2, start, t).copy_(&k);
                    c.values[layer].narrow(2, start, t).copy_(&v);
                    (c.keys[layer].narrow(2, 0, total), c.values[layer].narrow(2, 0, total))
                }
                None => (k, v),
            };
            let q = if grouped { q.reshape([b, nkv, rep * t, d]) } else { q };
            let attn = Tensor::scaled_dot_product_attention(
                &q,
                &k,
                &v,
                layer_mask,
                0.0,
                layer_mask.is_none() && t > 1,
                None,
                rep > 1 && !grouped,
            );
            let attn = attn.reshape([b, nh, t, d]).transpose(1, 2).reshape([b, t, nh * d]);
            // Not `+=`: tch maps that to an in-place add, which would break autograd.
            xs = &xs + proj(&block.o, Target::O, &attn);
            let h = self.rms_norm(&xs, &block.post_norm);
            let act = proj(&block.gate, Target::Gate, &h).silu() * proj(&block.up, Target::Up, &h);
            let mlp = proj(&block.down, Target::Down, &act);
            xs = &xs + mlp;
        }
        if let Some(c) = cache {
            c.len = start + t;
            if fast.is_some() {
                c.decode = fast;
            }
        }
        if final_norm { self.final_norm(&xs) } else { xs }
    }

    /// Projects hidden states to vocabulary logits.
    pub fn logits(&self, hidden: &Tensor) -> Tensor {
        hidden.linear(&self.lm_head, None::<Tensor>)
    }

    /// [`Decoder::logits`] for the last positions of a cached call `[B, hidden]`, on the
    /// cache's transposed LM head when it has one and the batch is small.
    pub(crate) fn step_logits(&self, hidden: &Tensor, cache: &KvCache) -> Tensor {
        match &cache.decode {
            Some(d) if hidden.size()[0] <= DECODE_ROWS => d.lm_head.matmul(hidden),
            _ => self.logits(hidden),
        }
    }
}

/// `mask` (or a causal mask when `None`) restricted to a sliding window: query at cache
/// index `past + i` may see key `j` only when `past + i - j < window`.
fn window_mask(
    mask: Option<&Tensor>,
    device: Device,
    past: i64,
    t: i64,
    l: i64,
    window: i64,
) -> Tensor {
    let q_idx = Tensor::arange_start(past, past + t, (Kind::Int64, device)).unsqueeze(1);
    let k_idx = Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0);
    let band = k_idx.gt_tensor(&(&q_idx - window)).unsqueeze(0).unsqueeze(0);
    match mask {
        Some(m) => m.logical_and(&band),
        None => band.logical_and(&k_idx.le_tensor(&q_idx).unsqueeze(0).unsqueeze(0)),
    }
}

/// Rotary positions for a padded batch: the index of each token among its row's real tokens
/// (`cumsum(mask) - 1`, pads get 0), as transformers' `generate` computes them.
pub fn positions_from_mask(attention_mask: &Tensor) -> Tensor {
    let mask = attention_mask.to_kind(Kind::Int64);
    (mask.cumsum(-1, Kind::Int64) - 1).clamp_min(0)
}

/// Boolean attention mask `[B, 1, T, L]` for `T` queries at absolute positions
/// `past..past+T` over `L = past + T` keys: causal, pads hidden, and every query may always
/// see itself (so rows of pure padding never produce NaN).
pub fn attention_mask_4d(key_valid: &Tensor, past: i64, t: i64) -> Tensor {
    let device = key_valid.device();
    let l = past + t;
    let q_idx = Tensor::arange_start(past, l, (Kind::Int64, device)).unsqueeze(1);
    let k_idx = Tensor::arange(l, (Kind::Int64, device)).unsqueeze(0);
    let causal = k_idx.le_tensor(&q_idx);
    let diag = k_idx.eq_tensor(&q_idx);
    let valid = key_valid.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1);
    causal.unsqueeze(0).unsqueeze(0).logical_and(&valid).logical_or(&diag.unsqueeze(0).unsqueeze(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Panels give exactly `x @ W^T` (same dot products), with and without padding columns.
    #[test]
    fn panels_match_the_transposed_product() {
        tch::manual_seed(0);
        for out in [1024, 1000, 300] {
            let w = Tensor::randn([out, 64], (Kind::Float, Device::Cpu));
            let x = Tensor::randn([8, 64], (Kind::Float, Device::Cpu));
            let panels = Panels::new(&w);
            let got = panels.matmul(&x);
            assert_eq!(got.size(), [8, out]);
            let want = x.matmul(&w.tr().contiguous());
            let diff = (&got - &want).abs().max().double_value(&[]);
            assert!(diff < 1e-5, "out = {out}: max difference {diff}");
        }
    }
}
