//! Model-engine benchmark: ours vs transformers/PyTorch eager on the same machine, in one run,
//! with the same thread count (not a test; prints a table).
//!
//! `cargo bench --bench model` (release) or, without a release build of the dependencies,
//! `cargo bench --profile dev --bench model` (dependencies are optimised in dev builds too).
//! Env: `ADVGAME_BENCH_THREADS` (default: OMP_NUM_THREADS or 2), `ADVGAME_BENCH_MODEL`
//! (default: $ADVGAME_DATA/models/SmolLM2-135M-Instruct).
//!
//! 1. Generation: batch of 8 chat prompts, 128 new tokens each (end-of-turn ignored so both
//!    sides make exactly 128), greedy; tokens/s. Baseline: `model.generate(min_new_tokens=128)`.
//! 2. Training step: one forward+backward of a DPO-style loss over 4 chosen/rejected pairs
//!    (64 prompt + 64 completion tokens). Baseline: the usual eager recipe (full logits,
//!    log_softmax, gather).
//!
//! Peak resident memory of each phase is measured after resetting the kernel's high-water mark.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use advgame_host::llm::{ChatRequest, SamplingParams};
use advgame_host::model::ChatModel;
use tch::{Device, Kind, Tensor};

const PROMPTS: [&str; 8] = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain how a bicycle stays upright.",
    "Give me three tips for learning a new language.",
    "What is the difference between weather and climate?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How do vaccines work?",
    "Suggest a name for a friendly robot.",
];
const NEW_TOKENS: usize = 128;
const PAIRS: usize = 4;
const TRAIN_STEPS: usize = 3;

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn ids(seed: u64, len: usize, vocab: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % (vocab as u64 - 100)) as i64 + 100
        })
        .collect()
}

fn python_phase(request: &serde_json::Value) -> serde_json::Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var("ADVGAME_PYTHON").expect("ADVGAME_PYTHON (source scripts/env.sh)");
    let req_path = std::env::temp_dir().join(format!("advgame-bench-{}.json", std::process::id()));
    std::fs::write(&req_path, serde_json::to_vec(request).unwrap()).unwrap();
    let out = Command::new(python)
        .arg(root.join("scripts/bench_reference.py"))
        .arg(&req_path)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .output()
        .expect("cannot run scripts/bench_reference.py");
    let _ = std::fs::remove_file(&req_path);
    assert!(
        out.status.success(),
        "bench_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON from bench_reference.py")
}

fn main() -> anyhow::Result<()> {
    let threads: i32 = std::env::var("ADVGAME_BENCH_THREADS")
        .or_else(|_| std::env::var("OMP_NUM_THREADS"))
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    tch::set_num_threads(threads);
    let model_dir =
        std::env::var_os("ADVGAME_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
            let data = std::env::var_os("ADVGAME_DATA")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data"));
            data.join("models/SmolLM2-135M-Instruct")
        });
    let model = ChatModel::load(&model_dir, Device::Cpu, Kind::Float)?;
    let vocab = model.lm().spec().vocab_size;
    let prompts: Vec<Vec<i64>> = PROMPTS
        .iter()
        .map(|p| model.encode(&model.render_prompt(&ChatRequest::user(*p))?))
        .collect::<anyhow::Result<_>>()?;
    println!("model {} | CPU f32 | {threads} threads", model_dir.display());

    // --- generation -------------------------------------------------------------------
    let greedy = |n| SamplingParams { max_new_tokens: n, temperature: 0.0, ..Default::default() };
    model.generate_ids(&prompts, &greedy(4), false)?; // warm-up
    reset_peak();
    let start = Instant::now();
    let rows = model.generate_ids(&prompts, &greedy(NEW_TOKENS), false)?;
    let secs = start.elapsed().as_secs_f64();
    let made: usize = rows.iter().map(|r| r.tokens.len()).sum();
    let ours_gen = made as f64 / secs;
    let ours_gen_mem = peak_rss_mib();
    let theirs = python_phase(&serde_json::json!({
        "model": model_dir, "threads": threads, "phase": "generate",
        "prompts": prompts, "new_tokens": NEW_TOKENS,
    }));
    let theirs_gen = theirs["tokens_per_s"].as_f64().unwrap_or(f64::NAN);

    // --- training step ----------------------------------------------------------------
    let pairs: Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> = (0..PAIRS as u64)
        .map(|i| (ids(3 * i + 1, 64, vocab), ids(3 * i + 2, 64, vocab), ids(3 * i + 3, 64, vocab)))
        .collect();
    let items: Vec<(Vec<i64>, Vec<i64>)> = pairs
        .iter()
        .map(|(p, c, _)| (p.clone(), c.clone()))
        .chain(pairs.iter().map(|(p, _, r)| (p.clone(), r.clone())))
        .collect();
    let step = || -> anyhow::Result<f64> {
        let lp = model.sequence_logprobs(&items)?;
        let (chosen, rejected) =
            (lp.narrow(0, 0, PAIRS as i64), lp.narrow(0, PAIRS as i64, PAIRS as i64));
        let loss: Tensor = -((chosen - rejected) * 0.1).log_sigmoid().mean(Kind::Float);
        loss.backward();
        for v in model.lm().var_store().trainable_variables() {
            let mut grad = v.grad();
            if grad.defined() {
                let _ = grad.zero_();
            }
        }
        Ok(loss.double_value(&[]))
    };
    step()?;
    reset_peak();
    let start = Instant::now();
    for _ in 0..TRAIN_STEPS {
        step()?;
    }
    let ours_step = start.elapsed().as_secs_f64() / TRAIN_STEPS as f64;
    let ours_step_mem = peak_rss_mib();
    let theirs_t = python_phase(&serde_json::json!({
        "model": model_dir, "threads": threads, "phase": "train",
        "pairs": pairs, "steps": TRAIN_STEPS,
    }));
    let theirs_step = theirs_t["seconds_per_step"].as_f64().unwrap_or(f64::NAN);

    println!("\n| measurement | advgame-host (tch) | PyTorch / transformers | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| generate 8 x {NEW_TOKENS} new tokens, tokens/s | {ours_gen:.1} | {theirs_gen:.1} | {:.2}x |",
        ours_gen / theirs_gen
    );
    println!(
        "| generate peak RSS, MiB | {ours_gen_mem:.0} | {:.0} | |",
        theirs["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "| fwd+bwd log-prob step ({PAIRS} pairs, 64+64 tokens), s | {ours_step:.3} | {theirs_step:.3} | {:.2}x |",
        theirs_step / ours_step
    );
    println!(
        "| train step peak RSS, MiB | {ours_step_mem:.0} | {:.0} | |",
        theirs_t["peak_rss_mib"].as_f64().unwrap_or(f64::NAN)
    );
    Ok(())
}
