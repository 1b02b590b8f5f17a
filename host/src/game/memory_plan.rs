//! `train --memory-plan`: the memory a run configuration will take on its device, computed
//! before any weights load (only `config.json` of each model, the tokenizer and the prompt
//! files are read), with a warning when it will not fit.
//!
//! The plan is a sum of named terms, each with the formula that produced it, grouped by
//! phase: what stays **resident** for the whole run (weights, EMA copies and their f32
//! masters, initial copies, optimiser state, gradients, the local judge), and the transient
//! peak of each phase that comes and goes (**generation**: KV cache and prefill; **update**:
//! activations kept for backward, LM-head logits, backward temporaries; **checkpoint**:
//! serialisation buffers). The two players update one after the other, so the update phase
//! counts the larger player's micro-batch, not both. Peak = resident + the largest phase.
//!
//! Where the numbers come from:
//! - Parameter counts: [`DecoderSpec::parameters`] (the same list the loader registers).
//! - Activations: counted from the operations of `model/decoder.rs` and `model/scoring.rs`,
//!   tensor by tensor, as the ones autograd saves for backward ([`layer_activation_bytes`]
//!   lists them). Attention is the fused kernel (libtorch's CPU flash attention, CUDA's
//!   memory-efficient attention with a mask), which saves its output and a log-sum-exp, not
//!   the `T x T` probabilities.
//! - Worst-case lengths: every completion at its `max_tokens`, prompts as long as the
//!   longest seed rendered through the attacker instruction and the chat template (tokenised
//!   with the model's tokenizer when the folder has one, else ~4 bytes per token), the
//!   defender's prompt as long as the attacker's longest completion, micro-batches full.
//! - Runtime constants ([`CPU_RUNTIME_BYTES`], [`CPU_ALLOCATOR_FACTOR`],
//!   [`CUDA_CONTEXT_BYTES`]): measured, see their docs and BENCHMARKS.md.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::game::config::{Config, Dtype, Method, Sampler};
use crate::model::decoder::DecoderSpec;
use crate::model::{ChatTemplate, Message, ModelConfig};

const GIB: f64 = (1u64 << 30) as f64;

/// Resident memory of the process before any model loads on CPU: libtorch's and wasmtime's
/// code and data, the compiled plugins, the tokenizers. Measured: `VmHWM` 566 MiB of
/// `advgame-host train` on the quickstart config with both players swapped for the 2-layer
/// `tiny-llama` fixture and `max_steps = 0` (plugins loaded, four 13 MB model copies), i.e.
/// ~500 MiB without the models (BENCHMARKS.md, "Memory plan").
pub const CPU_RUNTIME_BYTES: u64 = 500 << 20;

/// What glibc's allocator adds on CPU over the bytes the tensors of a transient phase hold
/// (freed blocks kept by the heap, mmap granularity, libtorch's temporaries the formulas do
/// not list). Calibrated on two measured quickstart peaks (BENCHMARKS.md, "Memory plan"):
/// the transient part (peak minus resident) was 1.44x the formula with
/// `per_device_train_batch_size = 2` and 1.06x with the default 8; 1.2 puts both within 6%.
pub const CPU_ALLOCATOR_FACTOR: f64 = 1.2;

/// A CUDA context with cuBLAS/cuDNN workspaces and kernels loaded: ~0.5-1 GiB on recent
/// GPUs by PyTorch's own guidance ("CUDA context ... typically 300 MB - 1 GB", PyTorch CUDA
/// semantics notes); the plan takes 1 GiB. Not measured here (no GPU in the build machine).
pub const CUDA_CONTEXT_BYTES: u64 = 1 << 30;

/// LoRA settings, named as PEFT's `LoraConfig` names them.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterPlan {
    /// Rank of each adapter.
    pub r: i64,
    /// Adapted projections by leaf name (`q_proj`, ..., `down_proj`).
    pub target_modules: Vec<String>,
}

impl AdapterPlan {
    /// Every attention and MLP projection (the default `target_modules`).
    pub const ALL_TARGETS: [&'static str; 7] =
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

    /// Adapter parameters of one model: `sum over layers and targets of r * (in + out)`.
    ///
    /// Errors: a target that is not one of [`AdapterPlan::ALL_TARGETS`].
    pub fn parameters(&self, spec: &DecoderSpec) -> Result<u64> {
        let per_layer: i64 = self
            .target_modules
            .iter()
            .map(|t| projection_shape(spec, t).map(|(out, inp)| self.r * (inp + out)))
            .sum::<Result<i64>>()?;
        Ok((per_layer * spec.num_layers) as u64)
    }

    /// Adapter outputs per token and layer (`r` per target), saved for backward.
    fn ranks_per_layer(&self) -> i64 {
        self.r * self.target_modules.len() as i64
    }
}

/// `(out_features, in_features)` of a decoder projection.
fn projection_shape(spec: &DecoderSpec, module: &str) -> Result<(i64, i64)> {
    let (h, i) = (spec.hidden_size, spec.intermediate_size);
    let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
    Ok(match module {
        "q_proj" => (q, h),
        "k_proj" | "v_proj" => (kv, h),
        "o_proj" => (h, q),
        "gate_proj" | "up_proj" => (i, h),
        "down_proj" => (h, i),
        other => bail!(
            "target_modules: `{other}` is not a projection; expected one of {}",
            AdapterPlan::ALL_TARGETS.join(", ")
        ),
    })
}

/// Token lengths the plan assumes (worst case), and how they were obtained.
#[derive(Debug, Clone, PartialEq)]
pub struct Lengths {
    /// Longest attacker prompt: chat template + instruction with the longest seed + prefill.
    pub attacker_prompt: usize,
    /// Longest defender prompt: chat template around an attacker completion of
    /// `attacker_completion` tokens.
    pub defender_prompt: usize,
    /// `game.attacker_max_tokens`.
    pub attacker_completion: usize,
    /// `game.defender_max_tokens`.
    pub defender_completion: usize,
    /// How the prompt lengths were measured (tokenizer or estimate).
    pub source: String,
}

/// Everything the plan depends on, read from a [`Config`] by [`PlanInputs::from_config`].
#[derive(Debug, Clone)]
pub struct PlanInputs {
    /// `models.device`.
    pub device: String,
    /// `models.dtype`.
    pub dtype: Dtype,
    /// Attacker shapes (its `config.json`).
    pub attacker: DecoderSpec,
    /// Defender shapes.
    pub defender: DecoderSpec,
    /// Attacker and defender start from the same folder: with adapters, one frozen base
    /// serves both.
    pub same_base: bool,
    /// The judge model's shapes when it is a local folder (`models.judge`).
    pub judge: Option<DecoderSpec>,
    /// `algorithm.method`.
    pub method: Method,
    /// `algorithm.sampler`.
    pub sampler: Sampler,
    /// LoRA players (`None`: full fine-tuning).
    pub adapter: Option<AdapterPlan>,
    /// Activation checkpointing per decoder layer.
    pub gradient_checkpointing: bool,
    /// `algorithm.per_device_train_batch_size` (pairs for DPO/IPO, samples for GRPO).
    pub micro_batch: usize,
    /// `algorithm.seeds_per_category`.
    pub seeds_per_category: usize,
    /// `game.attacks_per_seed` (A).
    pub attacks_per_seed: usize,
    /// `game.replies_per_prompt` (D).
    pub replies_per_prompt: usize,
    /// `game.judge_max_tokens`.
    pub judge_max_tokens: usize,
    /// Worst-case lengths.
    pub lengths: Lengths,
}

fn spec_of(dir: &Path) -> Result<DecoderSpec> {
    let path = dir.join("config.json");
    let (config, _) = ModelConfig::from_file(&path)?;
    config.decoder_spec().with_context(|| format!("{}", path.display()))
}

/// Tokens of `text` with the tokenizer of `dir`, or ~4 bytes per token without one.
fn count_tokens(dir: &Path, text: &str) -> Result<(usize, bool)> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Ok((text.len().div_ceil(4), false));
    }
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let enc = tok.encode(text, false).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok((enc.len(), true))
}

/// The chat-rendered prompt of one user turn (plus prefill), or the bare text plus a fixed
/// allowance of 32 tokens' worth of bytes when the folder has no template.
fn render(dir: &Path, user: &str, prefill: Option<&str>) -> Result<String> {
    let text = match ChatTemplate::from_dir(dir)? {
        Some(t) => t.render(&[Message::new("user", user)], true)?,
        None => format!("{}{user}", " ".repeat(128)),
    };
    Ok(text + prefill.unwrap_or(""))
}

impl PlanInputs {
    /// Reads shapes, lengths and settings from the configuration's files (no weights).
    ///
    /// `adapter` and `gradient_checkpointing` are the planned values when the config does
    /// not carry them.
    pub fn from_config(
        config: &Config,
        adapter: Option<AdapterPlan>,
        gradient_checkpointing: bool,
    ) -> Result<Self> {
        let m = &config.models;
        let attacker = spec_of(&m.attacker)?;
        let defender = spec_of(&m.defender)?;
        let judge = match m.judge.as_ref().and_then(|j| j.local_dir()) {
            Some(dir) => Some(spec_of(dir)?),
            None => None,
        };
        let same_base = m.attacker.canonicalize().ok() == m.defender.canonicalize().ok()
            || m.attacker == m.defender;
        let g = &config.game;
        let seeds = crate::game::seeds::RunSeeds::load(&config.data)?;
        let longest = seeds.train.iter().map(|s| s.text.as_str()).max_by_key(|t| t.len());
        let longest = longest.unwrap_or("");
        let mut instruction = String::new();
        for file in [&g.attacker_prompt_harmful, &g.attacker_prompt_benign] {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if text.len() > instruction.len() {
                instruction = text;
            }
        }
        let attacker_text = render(
            &m.attacker,
            &instruction.replace("{seed}", longest),
            g.attacker_prefill.as_deref(),
        )?;
        let (attacker_prompt, tokenized) = count_tokens(&m.attacker, &attacker_text)?;
        // The defender sees the attacker's rewrite: at most attacker_max_tokens tokens; its
        // template overhead is what the template adds around an empty turn.
        let (overhead, _) = count_tokens(&m.defender, &render(&m.defender, "", None)?)?;
        let defender_prompt = overhead + g.attacker_max_tokens;
        let source = if tokenized {
            format!(
                "tokenised with {}'s tokenizer: chat template + longest instruction + longest \
                 seed ({} bytes) + prefill",
                m.attacker.display(),
                longest.len()
            )
        } else {
            "estimated at 4 bytes per token (no tokenizer.json next to config.json)".into()
        };
        Ok(Self {
            device: crate::model::device_name(m.device),
            dtype: m.dtype,
            attacker,
            defender,
            same_base,
            judge,
            method: config.algorithm.method,
            sampler: config.algorithm.sampler,
            adapter,
            gradient_checkpointing,
            micro_batch: config.algorithm.micro_batch.max(1),
            seeds_per_category: config.algorithm.seeds_per_category,
            attacks_per_seed: g.attacks_per_seed,
            replies_per_prompt: g.replies_per_prompt,
            judge_max_tokens: g.judge_max_tokens,
            lengths: Lengths {
                attacker_prompt,
                defender_prompt,
                attacker_completion: g.attacker_max_tokens,
                defender_completion: g.defender_max_tokens,
                source,
            },
        })
    }
}

/// When a term's memory is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// For the whole run.
    Resident,
    /// While the players generate the step's rollouts.
    Generation,
    /// While one player computes its loss and gradients.
    Update,
    /// While a checkpoint is written.
    Checkpoint,
}

impl Phase {
    fn label(self) -> &'static str {
        match self {
            Phase::Resident => "resident",
            Phase::Generation => "generation",
            Phase::Update => "update",
            Phase::Checkpoint => "checkpoint",
        }
    }
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// When the memory is held.
    pub phase: Phase,
    /// What it is.
    pub what: String,
    /// Bytes.
    pub bytes: u64,
    /// How `bytes` was computed.
    pub formula: String,
}

/// The device's memory, and where the number came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    /// Bytes available to the run.
    pub bytes: u64,
    /// `MemAvailable`, `nvidia-smi`, or `--device-memory`.
    pub source: String,
}

/// The computed plan.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// `models.device`.
    pub device: String,
    /// Every term, resident first.
    pub terms: Vec<Term>,
    /// Token lengths the plan assumed.
    pub lengths: Lengths,
    /// Factor applied to the transient phases (allocator overhead; 1 on CUDA).
    pub transient_factor: f64,
}

/// Bytes of one element of the model dtype.
pub fn dtype_bytes(dtype: Dtype) -> u64 {
    match dtype {
        Dtype::F32 => 4,
        Dtype::Bf16 | Dtype::F16 => 2,
    }
}

/// Parameters of a model (tied embeddings counted once).
pub fn parameter_count(spec: &DecoderSpec) -> u64 {
    spec.parameters().iter().map(|(_, s)| s.iter().product::<i64>() as u64).sum()
}

/// Bytes autograd keeps per token of one decoder layer for backward, with `e` the bytes of
/// the model dtype (h = hidden, q = heads x head_dim, kv = kv heads x head_dim,
/// i = intermediate, nh = heads), counted from `Decoder::hidden_states`:
/// - two RMSNorms, each: its f32 input (4h), the normalised value (e h) and its output
///   (e h), which the projections read;
/// - queries: projection output, its `roll` and the rotated result (3 e q); keys the same
///   (3 e kv); values (e kv);
/// - attention: its output (e q) and f32 log-sum-exp (4 nh), then the re-laid-out copy the
///   output projection reads (e q);
/// - MLP: gate output, its SiLU, up output and their product (4 e i);
/// - Qwen3's per-head q/k norms add their f32 input and two outputs ((4 + 2e)(q + kv));
/// - LoRA adds the rank-r output of each adapter's `A` (e r per target).
///
/// So `8h + 4 e h + e (5q + 4kv + 4i) + 4 nh` without q/k norms or adapters: 53 KB per
/// token per layer for SmolLM2-135M in f32.
pub fn layer_activation_bytes(spec: &DecoderSpec, e: u64, adapter: Option<&AdapterPlan>) -> u64 {
    let e = e as i64;
    let (h, i, nh) = (spec.hidden_size, spec.intermediate_size, spec.num_heads);
    let (q, kv) = (spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim);
    let mut bytes = 8 * h + 4 * e * h + e * (5 * q + 4 * kv + 4 * i) + 4 * nh;
    if spec.qk_norm {
        bytes += (4 + 2 * e) * (q + kv);
    }
    if let Some(a) = adapter {
        bytes += e * a.ranks_per_layer();
    }
    bytes as u64
}

fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB)
}

fn count(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

/// Training rows of one player's largest micro-batch and its padded width.
struct Batch {
    rows: u64,
    prompt: u64,
    completion: u64,
}

impl MemoryPlan {
    /// Computes the plan (pure: no files, no device).
    pub fn compute(x: &PlanInputs) -> Result<Self> {
        let e = dtype_bytes(x.dtype);
        let low = e != 4;
        let mut terms = Vec::new();
        let mut add = |phase, what: String, bytes: u64, formula: String| {
            terms.push(Term { phase, what, bytes, formula })
        };
        let players = [("attacker", &x.attacker), ("defender", &x.defender)];
        let uses_ema = x.sampler == Sampler::Ema;
        let needs_initial = x.method == Method::Grpo || x.sampler == Sampler::Current;
        let cuda = x.device.starts_with("cuda");
        if cuda {
            add(
                Phase::Resident,
                "CUDA context".into(),
                CUDA_CONTEXT_BYTES,
                "constant (PyTorch's typical CUDA context + cuBLAS workspace)".into(),
            );
        } else {
            add(
                Phase::Resident,
                "runtime (libtorch, wasmtime, plugins, tokenizers)".into(),
                CPU_RUNTIME_BYTES,
                "measured constant (BENCHMARKS.md)".into(),
            );
        }
        let shared_base = x.adapter.is_some() && x.same_base;
        if shared_base {
            let n = parameter_count(&x.attacker);
            add(
                Phase::Resident,
                "base weights (frozen, shared by both players)".into(),
                n * e,
                format!("{} params x {e} B", count(n)),
            );
        }
        for (name, spec) in players {
            let n = parameter_count(spec);
            match &x.adapter {
                None => {
                    add(
                        Phase::Resident,
                        format!("{name} weights"),
                        n * e,
                        format!("{} params x {e} B", count(n)),
                    );
                    if uses_ema {
                        add(
                            Phase::Resident,
                            format!("{name} EMA copy"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                        if low {
                            add(
                                Phase::Resident,
                                format!("{name} EMA f32 masters"),
                                n * 4,
                                format!("{} params x 4 B", count(n)),
                            );
                        }
                    }
                    if needs_initial {
                        add(
                            Phase::Resident,
                            format!("{name} initial copy (reference / KL anchor)"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                    }
                    optimiser_terms(&mut add, name, n, e);
                }
                Some(a) => {
                    if !shared_base {
                        add(
                            Phase::Resident,
                            format!("{name} base weights (frozen)"),
                            n * e,
                            format!("{} params x {e} B", count(n)),
                        );
                    }
                    let p = a.parameters(spec)?;
                    let per = format!(
                        "r {} x (in + out) over {} targets x {} layers = {} params",
                        a.r,
                        a.target_modules.len(),
                        spec.num_layers,
                        count(p)
                    );
                    add(
                        Phase::Resident,
                        format!("{name} LoRA adapter"),
                        p * e,
                        format!("{per} x {e} B"),
                    );
                    if uses_ema {
                        add(
                            Phase::Resident,
                            format!("{name} EMA adapter (f32)"),
                            p * 4,
                            format!("{} params x 4 B", count(p)),
                        );
                    }
                    // The on-policy reference is the base with the adapter off: no copy.
                    optimiser_terms(&mut add, name, p, e);
                }
            }
        }
        if let Some(j) = &x.judge {
            let n = parameter_count(j);
            add(
                Phase::Resident,
                "judge model weights".into(),
                n * e,
                format!("{} params x {e} B", count(n)),
            );
        }

        // Generation: the attacker, then the defender, then (LLM judges) the judge; each
        // decodes its whole phase in one batch.
        let seeds = 2 * x.seeds_per_category as u64;
        let (a_rows, d_rows) = (
            seeds * x.attacks_per_seed as u64,
            seeds * (x.attacks_per_seed * x.replies_per_prompt) as u64,
        );
        let l = &x.lengths;
        let mut gens = vec![
            (
                "attacker",
                &x.attacker,
                a_rows,
                l.attacker_prompt as u64,
                l.attacker_completion as u64,
            ),
            (
                "defender",
                &x.defender,
                d_rows,
                l.defender_prompt as u64,
                l.defender_completion as u64,
            ),
        ];
        if let Some(j) = &x.judge {
            // One comparison per defender group: the rubric (~512 tokens), the context and
            // two replies.
            let prompt = 512 + l.attacker_completion as u64 + 2 * l.defender_completion as u64;
            gens.push((
                "judge",
                j,
                seeds * x.attacks_per_seed as u64,
                prompt,
                x.judge_max_tokens as u64,
            ));
        }
        let (gname, gbytes, gformula) = gens
            .iter()
            .map(|(name, spec, rows, p, c)| {
                let kv = (spec.num_kv_heads * spec.head_dim) as u64;
                let layers = spec.num_layers as u64;
                let cache = 2 * layers * rows * (p + c) * kv * e;
                let rep = (spec.num_heads / spec.num_kv_heads) as u64;
                let mask = rows * (rep + 1) * p * p;
                let mlp = rows * p * (3 * spec.intermediate_size as u64 + 2 * spec.hidden_size as u64) * e;
                let formula = format!(
                    "KV cache 2 x {layers} layers x {rows} rows x ({p} + {c}) positions x {kv} x {e} B = {}; \
                     prefill mask {rows} x {} x {p}^2 x 1 B = {}; prefill MLP {rows} x {p} x (3 i + 2 h) x {e} B = {}",
                    gib(cache),
                    rep + 1,
                    gib(mask),
                    gib(mlp)
                );
                (*name, cache + mask + mlp, formula)
            })
            .max_by_key(|g| g.1)
            .expect("two players");
        add(Phase::Generation, format!("{gname} generation (largest batch)"), gbytes, gformula);

        // Update: the larger of the two players' micro-batches.
        let batches = [
            (
                "attacker",
                &x.attacker,
                self_batch(
                    x,
                    seeds,
                    seeds * x.attacks_per_seed as u64,
                    l.attacker_prompt,
                    l.attacker_completion,
                ),
            ),
            (
                "defender",
                &x.defender,
                self_batch(
                    x,
                    seeds * x.attacks_per_seed as u64,
                    d_rows,
                    l.defender_prompt,
                    l.defender_completion,
                ),
            ),
        ];
        let updates: Vec<(u64, Vec<Term>)> = batches
            .iter()
            .map(|(name, spec, b)| {
                let terms = update_terms(name, spec, b, e, x);
                (terms.iter().map(|t| t.bytes).sum::<u64>(), terms)
            })
            .collect();
        let (_, upd) = updates.into_iter().max_by_key(|u| u.0).expect("two players");
        terms.extend(upd);

        // Checkpoint: `weights::save` copies one model into byte buffers, and the optimiser
        // state is serialised in memory.
        let (ckpt_n, ckpt_what) = match &x.adapter {
            None => (parameter_count(&x.defender).max(parameter_count(&x.attacker)), "full model"),
            Some(a) => (a.parameters(&x.defender)?.max(a.parameters(&x.attacker)?), "adapter"),
        };
        let opt = ckpt_n * (8 + if low { 4 } else { 0 });
        terms.push(Term {
            phase: Phase::Checkpoint,
            what: "checkpoint buffers (optimiser state of one player)".into(),
            bytes: opt.max(ckpt_n * e),
            formula: format!(
                "{} {ckpt_what} params x {} B (m, v{})",
                count(ckpt_n),
                if low { 12 } else { 8 },
                if low { ", f32 master" } else { "" }
            ),
        });
        Ok(Self {
            device: x.device.clone(),
            terms,
            lengths: x.lengths.clone(),
            transient_factor: if cuda { 1.0 } else { CPU_ALLOCATOR_FACTOR },
        })
    }

    /// Bytes held for the whole run.
    pub fn resident(&self) -> u64 {
        self.phase(Phase::Resident)
    }

    /// Bytes of one phase's terms (before the allocator factor).
    pub fn phase(&self, phase: Phase) -> u64 {
        self.terms.iter().filter(|t| t.phase == phase).map(|t| t.bytes).sum()
    }

    /// The phase with the largest transient memory and its bytes (allocator factor applied).
    pub fn largest_phase(&self) -> (Phase, u64) {
        [Phase::Generation, Phase::Update, Phase::Checkpoint]
            .into_iter()
            .map(|p| (p, (self.phase(p) as f64 * self.transient_factor) as u64))
            .max_by_key(|p| p.1)
            .expect("three phases")
    }

    /// Planned peak: resident + the largest phase.
    pub fn peak(&self) -> u64 {
        self.resident() + self.largest_phase().1
    }

    /// The plan as text: one line per term, the phase totals and the peak; against
    /// `capacity` when known, with a warning when the peak does not fit.
    pub fn render(&self, capacity: Option<&Capacity>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "memory plan for device {}", self.device);
        let _ = writeln!(
            out,
            "lengths: attacker prompt {} + completion {} tokens, defender prompt {} + \
             completion {} tokens ({})",
            self.lengths.attacker_prompt,
            self.lengths.attacker_completion,
            self.lengths.defender_prompt,
            self.lengths.defender_completion,
            self.lengths.source
        );
        for phase in [Phase::Resident, Phase::Generation, Phase::Update, Phase::Checkpoint] {
            let total = self.phase(phase);
            let _ = writeln!(out, "\n[{}] {}", phase.label(), gib(total));
            for t in self.terms.iter().filter(|t| t.phase == phase) {
                let _ = writeln!(out, "  {:>10}  {}", gib(t.bytes), t.what);
                let _ = writeln!(out, "              = {}", t.formula);
            }
        }
        let (phase, bytes) = self.largest_phase();
        let _ = writeln!(out);
        if self.transient_factor != 1.0 {
            let _ = writeln!(
                out,
                "allocator factor on transient phases: x{:.2} (CPU, measured)",
                self.transient_factor
            );
        }
        let _ = writeln!(
            out,
            "peak = resident {} + {} {} = {}",
            gib(self.resident()),
            phase.label(),
            gib(bytes),
            gib(self.peak())
        );
        match capacity {
            Some(c) if self.peak() > c.bytes => {
                let _ = writeln!(
                    out,
                    "WARNING: the plan needs {} but the device has {} ({}): it will not fit",
                    gib(self.peak()),
                    gib(c.bytes),
                    c.source
                );
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "fits: {} of {} ({}), {:.0}% used",
                    gib(self.peak()),
                    gib(c.bytes),
                    c.source,
                    100.0 * self.peak() as f64 / c.bytes as f64
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "device memory unknown: pass --device-memory GiB to check the fit"
                );
            }
        }
        out
    }
}

/// The training micro-batch of one player: `groups` preference groups (DPO/IPO: one pair
/// each, two rows per pair) or `samples` GRPO samples, capped by the micro-batch.
fn self_batch(
    x: &PlanInputs,
    groups: u64,
    samples: u64,
    prompt: usize,
    completion: usize,
) -> Batch {
    let micro = x.micro_batch as u64;
    let rows = match x.method {
        Method::Dpo | Method::Ipo => 2 * micro.min(groups),
        Method::Grpo => micro.min(samples),
    };
    Batch { rows, prompt: prompt as u64, completion: completion as u64 }
}

fn optimiser_terms(add: &mut impl FnMut(Phase, String, u64, String), name: &str, n: u64, e: u64) {
    add(
        Phase::Resident,
        format!("{name} gradients"),
        n * e,
        format!("{} params x {e} B", count(n)),
    );
    add(
        Phase::Resident,
        format!("{name} AdamW m, v (f32)"),
        n * 8,
        format!("{} params x 2 x 4 B", count(n)),
    );
    if e != 4 {
        add(
            Phase::Resident,
            format!("{name} AdamW f32 master weights"),
            n * 4,
            format!("{} params x 4 B", count(n)),
        );
    }
}

/// The update-phase terms of one player's largest micro-batch.
fn update_terms(name: &str, spec: &DecoderSpec, b: &Batch, e: u64, x: &PlanInputs) -> Vec<Term> {
    let tokens = b.rows * (b.prompt + b.completion);
    let per_layer = layer_activation_bytes(spec, e, x.adapter.as_ref());
    let layers = spec.num_layers as u64;
    let h = spec.hidden_size as u64;
    let v = spec.vocab_size as u64;
    let head_tokens = b.rows * b.completion;
    let shape =
        format!("{} rows x ({} + {}) tokens = {tokens} tokens", b.rows, b.prompt, b.completion);
    let mut out = Vec::new();
    if x.gradient_checkpointing {
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} layer inputs kept (gradient checkpointing)"),
            bytes: tokens * layers * h * e,
            formula: format!("{shape} x {layers} layers x hidden {h} x {e} B"),
        });
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} activations of the layer being recomputed"),
            bytes: tokens * per_layer,
            formula: format!("{shape} x {per_layer} B per token and layer"),
        });
    } else {
        out.push(Term {
            phase: Phase::Update,
            what: format!("{name} activations saved for backward (decoder layers)"),
            bytes: tokens * layers * per_layer,
            formula: format!("{shape} x {layers} layers x {per_layer} B per token and layer"),
        });
    }
    out.push(Term {
        phase: Phase::Update,
        what: format!("{name} final norm and f32 LM-head logits"),
        bytes: tokens * (4 + 2 * e) * h + head_tokens * v * 4,
        formula: format!(
            "{tokens} tokens x (4 + 2 x {e}) B x {h} + {} rows x {} completion tokens x vocab {v} x 4 B",
            b.rows, b.completion
        ),
    });
    // Backward starts at the head: log-softmax and gather gradients over the logits (three
    // f32 [rows, C, vocab] temporaries), then one layer's worth of activation gradients.
    let head_tmp = head_tokens * v * 12;
    let layer_tmp = tokens * per_layer;
    out.push(Term {
        phase: Phase::Update,
        what: format!("{name} backward temporaries"),
        bytes: head_tmp.max(layer_tmp),
        formula: format!(
            "max(3 x f32 logits {}, one layer's activation gradients {})",
            gib(head_tmp),
            gib(layer_tmp)
        ),
    });
    out
}

/// The memory the device offers: `--device-memory` when given, else `MemAvailable` on CPU
/// and `nvidia-smi`'s total memory on CUDA (`None` when neither can be read).
pub fn device_capacity(device: &str, override_gib: Option<f64>) -> Option<Capacity> {
    if let Some(g) = override_gib {
        return Some(Capacity { bytes: (g * GIB) as u64, source: "--device-memory".into() });
    }
    if device == "cpu" {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        return Some(Capacity { bytes: kib << 10, source: "MemAvailable in /proc/meminfo".into() });
    }
    let index = device.strip_prefix("cuda:").unwrap_or("0");
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", index])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Capacity { bytes: mib << 20, source: format!("nvidia-smi (GPU {index} total)") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::decoder::RopeKind;

    /// SmolLM2-135M-Instruct's shapes (its config.json).
    fn smollm2() -> DecoderSpec {
        DecoderSpec {
            vocab_size: 49152,
            hidden_size: 576,
            intermediate_size: 1536,
            num_layers: 30,
            num_heads: 9,
            num_kv_heads: 3,
            head_dim: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 1e5,
            rope: RopeKind::Default,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            qk_norm: false,
            tie_word_embeddings: true,
            layer_windows: vec![None; 30],
        }
    }

    /// Qwen2.5-7B-Instruct's shapes.
    fn qwen7b() -> DecoderSpec {
        DecoderSpec {
            vocab_size: 152064,
            hidden_size: 3584,
            intermediate_size: 18944,
            num_layers: 28,
            num_heads: 28,
            num_kv_heads: 4,
            head_dim: 128,
            qkv_bias: true,
            tie_word_embeddings: false,
            layer_windows: vec![None; 28],
            ..smollm2()
        }
    }

    fn inputs(spec: DecoderSpec, dtype: Dtype) -> PlanInputs {
        PlanInputs {
            device: "cpu".into(),
            dtype,
            attacker: spec.clone(),
            defender: spec,
            same_base: true,
            judge: None,
            method: Method::Dpo,
            sampler: Sampler::Ema,
            adapter: None,
            gradient_checkpointing: false,
            micro_batch: 8,
            seeds_per_category: 3,
            attacks_per_seed: 2,
            replies_per_prompt: 2,
            judge_max_tokens: 512,
            lengths: Lengths {
                attacker_prompt: 150,
                defender_prompt: 78,
                attacker_completion: 48,
                defender_completion: 40,
                source: "test".into(),
            },
        }
    }

    fn term(plan: &MemoryPlan, what: &str) -> Option<u64> {
        plan.terms.iter().find(|t| t.what == what).map(|t| t.bytes)
    }

    #[test]
    fn counts_match_the_published_sizes() {
        // SmolLM2-135M: 134,515,008 parameters (tied head); Qwen2.5-7B: 7,615,616,512.
        assert_eq!(parameter_count(&smollm2()), 134_515_008);
        assert_eq!(parameter_count(&qwen7b()), 7_615_616_512);
        // PEFT's print_trainable_parameters for r = 16 on all seven projections of
        // Qwen2.5-7B: 40,370,176.
        let all = AdapterPlan {
            r: 16,
            target_modules: AdapterPlan::ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(all.parameters(&qwen7b()).unwrap(), 40_370_176);
        let qv = AdapterPlan { r: 8, target_modules: vec!["q_proj".into(), "v_proj".into()] };
        assert_eq!(qv.parameters(&smollm2()).unwrap(), 30 * 8 * ((576 + 576) + (576 + 192)));
        let bad = AdapterPlan { r: 8, target_modules: vec!["lm_head".into()] };
        assert!(bad.parameters(&smollm2()).unwrap_err().to_string().contains("lm_head"));
        // 8h + 4eh + e(5q + 4kv + 4i) + 4nh with e = 4.
        assert_eq!(layer_activation_bytes(&smollm2(), 4, None), 53_028);
    }

    #[test]
    fn full_fine_tuning_terms_follow_the_dtype_and_method() {
        let n = parameter_count(&smollm2());
        let f32_plan = MemoryPlan::compute(&inputs(smollm2(), Dtype::F32)).unwrap();
        assert_eq!(term(&f32_plan, "defender weights"), Some(4 * n));
        assert_eq!(term(&f32_plan, "defender EMA copy"), Some(4 * n));
        assert_eq!(term(&f32_plan, "defender AdamW m, v (f32)"), Some(8 * n));
        assert_eq!(term(&f32_plan, "defender EMA f32 masters"), None);
        assert_eq!(term(&f32_plan, "defender AdamW f32 master weights"), None);
        assert_eq!(term(&f32_plan, "defender initial copy (reference / KL anchor)"), None);
        // bf16: half-size weights, plus the f32 EMA and optimiser masters.
        let bf16 = MemoryPlan::compute(&inputs(smollm2(), Dtype::Bf16)).unwrap();
        assert_eq!(term(&bf16, "defender weights"), Some(2 * n));
        assert_eq!(term(&bf16, "defender EMA f32 masters"), Some(4 * n));
        assert_eq!(term(&bf16, "defender AdamW f32 master weights"), Some(4 * n));
        // GRPO keeps the initial model as KL anchor.
        let mut grpo = inputs(smollm2(), Dtype::F32);
        grpo.method = Method::Grpo;
        let grpo = MemoryPlan::compute(&grpo).unwrap();
        assert_eq!(term(&grpo, "attacker initial copy (reference / KL anchor)"), Some(4 * n));
        // The quickstart's plan is dominated by the attacker's micro-batch: 6 pairs (one per
        // seed) of 150 + 48 tokens.
        let act = term(&f32_plan, "attacker activations saved for backward (decoder layers)");
        assert_eq!(act, Some(12 * 198 * 30 * 53_028));
        assert_eq!(f32_plan.largest_phase().0, Phase::Update);
    }

    #[test]
    fn lora_shares_one_base_and_keeps_f32_ema_adapters() {
        let mut x = inputs(qwen7b(), Dtype::Bf16);
        x.device = "cuda".into();
        x.adapter = Some(AdapterPlan {
            r: 16,
            target_modules: AdapterPlan::ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
        });
        let plan = MemoryPlan::compute(&x).unwrap();
        let n = parameter_count(&qwen7b());
        let p = 40_370_176;
        assert_eq!(term(&plan, "base weights (frozen, shared by both players)"), Some(2 * n));
        assert_eq!(term(&plan, "attacker base weights (frozen)"), None);
        assert_eq!(term(&plan, "defender LoRA adapter"), Some(2 * p));
        assert_eq!(term(&plan, "defender EMA adapter (f32)"), Some(4 * p));
        assert_eq!(term(&plan, "defender AdamW f32 master weights"), Some(4 * p));
        assert_eq!(term(&plan, "CUDA context"), Some(CUDA_CONTEXT_BYTES));
        // Two different bases: each player holds its own frozen copy.
        x.same_base = false;
        let two = MemoryPlan::compute(&x).unwrap();
        assert_eq!(term(&two, "attacker base weights (frozen)"), Some(2 * n));
        assert_eq!(two.resident(), plan.resident() + 2 * n);
        // The on-policy variant needs no initial copy: the base with the adapter off.
        x.sampler = Sampler::Current;
        let on_policy = MemoryPlan::compute(&x).unwrap();
        assert!(on_policy.terms.iter().all(|t| !t.what.contains("initial copy")));
    }

    #[test]
    fn checkpointing_lowers_activation_memory() {
        let mut x = inputs(smollm2(), Dtype::F32);
        let without = MemoryPlan::compute(&x).unwrap();
        x.gradient_checkpointing = true;
        let with = MemoryPlan::compute(&x).unwrap();
        assert!(with.phase(Phase::Update) * 3 < without.phase(Phase::Update), "{with:?}");
        assert_eq!(
            term(&with, "attacker layer inputs kept (gradient checkpointing)"),
            Some(12 * 198 * 30 * 576 * 4)
        );
        assert!(with.peak() < without.peak());
    }

    #[test]
    fn render_warns_when_it_does_not_fit() {
        let plan = MemoryPlan::compute(&inputs(smollm2(), Dtype::F32)).unwrap();
        let small = Capacity { bytes: 1 << 30, source: "--device-memory".into() };
        let text = plan.render(Some(&small));
        assert!(text.contains("WARNING") && text.contains("will not fit"), "{text}");
        let big = Capacity { bytes: 64 << 30, source: "--device-memory".into() };
        let text = plan.render(Some(&big));
        assert!(!text.contains("WARNING") && text.contains("fits:"), "{text}");
        assert!(text.contains("attacker AdamW m, v (f32)") && text.contains("peak = "));
        assert_eq!(device_capacity("cuda:0", Some(80.0)).unwrap().bytes, 80 << 30);
        assert!(device_capacity("cpu", None).is_some_and(|c| c.bytes > 0));
    }
}
