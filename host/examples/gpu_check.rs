//! GPU check of the model engine, run by `scripts/gpu-check.sh` on a CUDA machine against
//! random-weight models built there: CPU-vs-GPU logit parity (f32 and bf16), bf16 batched
//! generation, tokens/s. Prints one JSON object.
//!
//! `gpu_check --model DIR --prompts PROMPTS.json [--new-tokens 128] [--device cpu]`, where PROMPTS.json is a
//! list of token-id lists (the same prompts transformers is timed on).

use std::path::PathBuf;
use std::time::Instant;

use advgame_host::llm::SamplingParams;
use advgame_host::model::{CausalLm, ChatModel};
use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Left-padded batch of the first two prompts, as tensors.
fn batch(prompts: &[Vec<i64>]) -> (Tensor, Tensor) {
    let rows = &prompts[..2.min(prompts.len())];
    let width = rows.iter().map(Vec::len).max().unwrap_or(1);
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for r in rows {
        let pad = width - r.len();
        ids.extend(std::iter::repeat_n(0, pad).chain(r.iter().copied()));
        mask.extend(std::iter::repeat_n(0i64, pad).chain(std::iter::repeat_n(1, r.len())));
    }
    let shape = [rows.len() as i64, width as i64];
    (Tensor::from_slice(&ids).view(shape), Tensor::from_slice(&mask).view(shape))
}

fn max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> (f64, f64) {
    let valid = mask.to_kind(Kind::Float).unsqueeze(-1);
    let a = a.to_device(Device::Cpu).to_kind(Kind::Float);
    let b = b.to_device(Device::Cpu).to_kind(Kind::Float);
    let diff = ((&a - &b).abs() * &valid).max().double_value(&[]);
    let scale = (a.abs() * valid).max().double_value(&[]);
    (diff, diff / scale.max(1e-12))
}

fn main() -> Result<()> {
    let dir = PathBuf::from(arg("--model").context("--model DIR is required")?);
    let prompts_path = arg("--prompts").context("--prompts FILE is required")?;
    let new_tokens: usize = arg("--new-tokens").map_or(Ok(128), |v| v.parse())?;
    let prompts: Vec<Vec<i64>> = serde_json::from_slice(&std::fs::read(&prompts_path)?)?;
    // `--device cpu` is a dry run of the same path on a machine without a GPU.
    let gpu = match arg("--device").as_deref() {
        Some("cpu") => Device::Cpu,
        _ if tch::Cuda::is_available() => Device::Cuda(0),
        _ => bail!("CUDA is not available to libtorch (is libtorch_cuda.so on the library path?)"),
    };
    let (ids, mask) = batch(&prompts);

    let cpu = CausalLm::load(&dir, Device::Cpu, Kind::Float)?;
    let reference = tch::no_grad(|| cpu.forward(&ids, &mask));
    drop(cpu);
    let gpu32 = CausalLm::load(&dir, gpu, Kind::Float)?;
    let logits32 = tch::no_grad(|| gpu32.forward(&ids.to_device(gpu), &mask.to_device(gpu)));
    let (f32_abs, f32_rel) = max_diff(&reference, &logits32, &mask);
    drop((gpu32, logits32));

    let model = ChatModel::load(&dir, gpu, Kind::BFloat16)?;
    let logits16 = tch::no_grad(|| model.lm().forward(&ids.to_device(gpu), &mask.to_device(gpu)));
    let (bf16_abs, bf16_rel) = max_diff(&reference, &logits16, &mask);
    let argmax_agree = reference
        .argmax(-1, false)
        .eq_tensor(&logits16.to_device(Device::Cpu).argmax(-1, false))
        .logical_and(&mask.to_kind(Kind::Bool))
        .sum(Kind::Float)
        .double_value(&[])
        / mask.sum(Kind::Float).double_value(&[]);

    let greedy = |n| SamplingParams { max_new_tokens: n, temperature: 0.0, ..Default::default() };
    model.generate_ids(&prompts, &greedy(8), false)?; // warm-up (kernels, allocator)
    let start = Instant::now();
    let rows = model.generate_ids(&prompts, &greedy(new_tokens), false)?;
    let secs = start.elapsed().as_secs_f64();
    let made: usize = rows.iter().map(|r| r.tokens.len()).sum();
    let sampled =
        SamplingParams { max_new_tokens: 32, temperature: 0.8, top_p: 0.9, seed: 1, stop: vec![] };
    let sample_rows = model.generate_ids(&prompts, &sampled, true)?;
    let finite = rows.iter().chain(&sample_rows).all(|r| r.logprobs.iter().all(|l| l.is_finite()));

    let report = serde_json::json!({
        "model": dir,
        "f32_cpu_vs_cuda_max_abs": f32_abs,
        "f32_cpu_vs_cuda_max_rel": f32_rel,
        "bf16_cuda_vs_f32_cpu_max_abs": bf16_abs,
        "bf16_cuda_vs_f32_cpu_max_rel": bf16_rel,
        "bf16_argmax_agreement": argmax_agree,
        "bf16_generate_tokens": made,
        "bf16_generate_seconds": secs,
        "bf16_generate_tokens_per_s": made as f64 / secs,
        "bf16_logprobs_finite": finite,
        "first_row_tokens": rows.first().map(|r| r.tokens.clone()).unwrap_or_default(),
    });
    println!("{report}");
    Ok(())
}
