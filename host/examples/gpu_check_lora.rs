//! GPU check of LoRA players, run by `scripts/gpu-check.sh` on a CUDA machine: a random-weight
//! bf16 base of a real shape (only `config.json` is read), two LoRA adapter sets on it
//! (attacker, defender) with their f32 EMA copies, and per player one game update as the
//! trainer does it (policy forward + backward through the frozen base, EMA reference forward,
//! AdamW on the adapter, EMA lerp), then bf16 sampling through an EMA adapter. Prints one JSON
//! object; peak GPU memory is sampled by the caller (`nvidia-smi`), since libtorch's
//! allocator statistics are not exposed by tch.
//!
//! `gpu_check_lora --model DIR [--device cpu] [--r 16] [--batch 8] [--prompt-len 256]
//!  [--completion-len 256] [--new-tokens 128] [--steps 3]`

use std::path::PathBuf;
use std::time::Instant;

use advgame_host::game::{ema, optim::AdamW};
use advgame_host::model::generate::{DecodeOptions, decode};
use advgame_host::model::lora::{LoraAdapter, LoraConfig};
use advgame_host::model::{CausalLm, Completion, default_kind};
use anyhow::{Context, Result, bail};
use tch::{Device, Kind};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn num(name: &str, default: usize) -> Result<usize> {
    arg(name).map_or(Ok(default), |v| v.parse().with_context(|| format!("{name} {v}")))
}

/// Deterministic token ids in `[0, vocab)`.
fn ids(seed: u64, len: usize, vocab: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as i64
        })
        .collect()
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(arg("--model").context("--model DIR (with config.json) is required")?);
    let device = match arg("--device").as_deref() {
        Some("cpu") => Device::Cpu,
        _ if tch::Cuda::is_available() => Device::Cuda(0),
        _ => bail!("CUDA is not available to libtorch (is libtorch_cuda.so on the library path?)"),
    };
    let kind = if device.is_cuda() { Kind::BFloat16 } else { default_kind(device) };
    let (r, batch) = (num("--r", 16)? as i64, num("--batch", 8)?);
    let (p_len, c_len) = (num("--prompt-len", 256)?, num("--completion-len", 256)?);
    let (new_tokens, steps) = (num("--new-tokens", 128)?, num("--steps", 3)?.max(1));

    let t = Instant::now();
    let base = CausalLm::from_config(&dir, device, kind, 0)?;
    sync(device);
    let build_s = t.elapsed().as_secs_f64();
    let spec = base.spec().clone();
    let config = LoraConfig { r, lora_alpha: 2.0 * r as f64, ..Default::default() };
    let mut players = Vec::new();
    for seed in [1u64, 2] {
        let current = base.with_adapter(LoraAdapter::new(&spec, &config, device, kind, seed)?)?;
        let ema_copy = current.adapter_copy(Kind::Float)?;
        players.push((current, ema_copy, AdamW::new(0.9, 0.95, 0.0)));
    }
    let trainable: i64 =
        players[0].0.var_store().trainable_variables().iter().map(|t| t.numel() as i64).sum();
    let base_params: i64 =
        base.base_var_store().variables().values().map(|t| t.numel() as i64).sum();

    let vocab = spec.vocab_size;
    let items: Vec<Completion> = (0..batch as u64)
        .map(|i| Completion::new(ids(2 * i + 1, p_len, vocab), ids(2 * i + 2, c_len, vocab)))
        .collect();
    let mut step_times = Vec::new();
    for step in 0..=steps {
        let t = Instant::now();
        for (current, ema_copy, opt) in players.iter_mut() {
            AdamW::zero_grad(current.var_store());
            let reference = tch::no_grad(|| ema_copy.token_logprobs(&items))?;
            let policy = current.token_logprobs(&items)?;
            // A stand-in for the DPO loss with the same graph: policy minus reference.
            let loss = (&policy.logprobs - &reference.logprobs).sum(Kind::Float) / batch as f64;
            (-loss).backward();
            AdamW::clip_grad_norm(current.var_store(), 1.0);
            opt.step(current.var_store(), 1e-4)?;
            ema::ema_update(ema_copy.var_store(), current.var_store(), 0.95)?;
        }
        sync(device);
        if step > 0 {
            step_times.push(t.elapsed().as_secs_f64()); // step 0 warms kernels and allocator
        }
    }
    let step_s = step_times.iter().sum::<f64>() / step_times.len() as f64;
    let train_tokens = 2 * batch * (p_len + c_len);

    let prompts: Vec<Vec<i64>> =
        items.iter().map(|x| x.prompt_ids[..p_len.min(64)].to_vec()).collect();
    let opts = DecodeOptions {
        max_new_tokens: new_tokens,
        temperature: 0.8,
        top_p: 0.9,
        seed: 1,
        stop_token_ids: vec![],
        pad_token_id: 0,
    };
    let sampler = &players[0].1;
    decode(sampler, &prompts, &DecodeOptions { max_new_tokens: 4, ..opts.clone() }, |_, _| false)?;
    sync(device);
    let t = Instant::now();
    let rows = decode(sampler, &prompts, &opts, |_, _| false)?;
    sync(device);
    let gen_s = t.elapsed().as_secs_f64();
    let made: usize = rows.iter().map(|r| r.tokens.len()).sum();
    let finite = rows.iter().all(|r| r.logprobs.iter().all(|l| l.is_finite()));
    let ema_moved = players.iter().all(|(_, e, _)| {
        e.var_store()
            .variables()
            .iter()
            .any(|(n, t)| n.contains("lora_B") && t.abs().max().double_value(&[]) > 0.0)
    });

    let report = serde_json::json!({
        "model": dir,
        "device": format!("{device:?}"),
        "dtype": format!("{kind:?}"),
        "base_parameters": base_params,
        "adapter_parameters_per_player": trainable,
        "r": r,
        "batch": batch,
        "prompt_len": p_len,
        "completion_len": c_len,
        "build_seconds": build_s,
        "game_update_seconds": step_s,
        "game_update_tokens_per_s": train_tokens as f64 / step_s,
        "sample_tokens": made,
        "sample_tokens_per_s": made as f64 / gen_s,
        "logprobs_finite": finite,
        "ema_moved": ema_moved,
    });
    println!("{report}");
    Ok(())
}
