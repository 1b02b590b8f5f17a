//! Model-engine benchmark: ours vs transformers/PyTorch eager on the same machine, in one run,
//! with the same thread count (not a test; prints a table).
//!
//! `cargo bench --bench model` (release) or, without a release build of the dependencies,
//! `cargo bench --profile dev --bench model` (dependencies are optimised in dev builds too).
//! Env: `ADVGAME_BENCH_THREADS` (default: OMP_NUM_THREADS or 2), `ADVGAME_BENCH_MODEL`
//! (default: $ADVGAME_DATA/models/SmolLM2-135M-Instruct), `ADVGAME_BENCH_PHASES`
//! (`generate`, `rollout`, `train`; default `generate,train`), `ADVGAME_BENCH_ROUNDS` (generation: ours and
//! transformers alternate this many times, default 1; the best round of each side counts,
//! which on a shared machine is the one least disturbed by other jobs).
//!
//! Generation also reports tokens per CPU-second of the process (user + system time): with
//! one thread that is a measure of the work done that other jobs on the machine hardly
//! disturb (wall time is only meaningful on an idle machine).
//!
//! 1. Generation: batch of 8 chat prompts, 128 new tokens each (end-of-turn ignored so both
//!    sides make exactly 128), greedy; tokens/s. Baseline: `model.generate(min_new_tokens=128)`.
//! 2. Rollout (phase `rollout`): a game step's sampling shape, REPLIES samples of each of the
//!    8 prompts wrapped in the CPU demo's instruction (examples/cpu-demo.toml), 32 new tokens,
//!    temperature 0.8. Ours with the shared prefill of repeated prompts against ours with
//!    every row's prompt made distinct by a numbered prefix of the same token length (so each
//!    row is prefilled), alternating rounds in one process; tokens/s.
//! 3. Training step: one forward+backward of a DPO-style loss over 4 chosen/rejected pairs
//!    (64 prompt + 64 completion tokens). Baseline: the usual eager recipe (full logits,
//!    log_softmax, gather).
//!
//! Peak resident memory of each phase is measured after resetting the kernel's high-water mark.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use advgame_host::llm::{ChatRequest, SamplingParams};
use advgame_host::model::{ChatModel, Completion};
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

/// User + system CPU seconds of this process so far (`/proc/self/stat`, clock ticks of
/// 1/100 s, the Linux default `USER_HZ`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (tick(11) + tick(12)) / 100.0
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
    let phases = std::env::var("ADVGAME_BENCH_PHASES").unwrap_or_else(|_| "generate,train".into());
    let rounds: usize =
        std::env::var("ADVGAME_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    println!("\n| measurement | advgame-host (tch) | PyTorch / transformers | ratio |");
    println!("|---|---|---|---|");
    if phases.contains("generate") {
        bench_generate(&model, &model_dir, &prompts, threads, rounds.max(1))?;
    }
    if phases.contains("rollout") {
        bench_rollout(&model, rounds.max(1))?;
    }
    if phases.contains("train") {
        bench_train(&model, &model_dir, vocab, threads)?;
    }
    Ok(())
}

fn bench_generate(
    model: &ChatModel,
    model_dir: &std::path::Path,
    prompts: &[Vec<i64>],
    threads: i32,
    rounds: usize,
) -> anyhow::Result<()> {
    let greedy = |n| SamplingParams { max_new_tokens: n, temperature: 0.0, ..Default::default() };
    model.generate_ids(prompts, &greedy(4), false)?; // warm-up
    let (mut ours_gen, mut ours_cpu, mut theirs_gen, mut theirs_cpu) = (0f64, 0f64, 0f64, 0f64);
    let (mut ours_gen_mem, mut theirs_mem) = (f64::NAN, f64::NAN);
    for round in 1..=rounds {
        reset_peak();
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let rows = model.generate_ids(prompts, &greedy(NEW_TOKENS), false)?;
        let (secs, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        let made: usize = rows.iter().map(|r| r.tokens.len()).sum();
        ours_gen = ours_gen.max(made as f64 / secs);
        ours_cpu = ours_cpu.max(made as f64 / cpu);
        ours_gen_mem = peak_rss_mib();
        let theirs = python_phase(&serde_json::json!({
            "model": model_dir, "threads": threads, "phase": "generate",
            "prompts": prompts, "new_tokens": NEW_TOKENS,
        }));
        let t = theirs["tokens_per_s"].as_f64().unwrap_or(f64::NAN);
        let tc = theirs["tokens_per_cpu_s"].as_f64().unwrap_or(f64::NAN);
        theirs_gen = theirs_gen.max(t);
        theirs_cpu = theirs_cpu.max(tc);
        theirs_mem = theirs["peak_rss_mib"].as_f64().unwrap_or(f64::NAN);
        eprintln!(
            "round {round}: ours {:.1} tokens/s ({:.1} per CPU-s), transformers {t:.1} ({tc:.1})",
            made as f64 / secs,
            made as f64 / cpu
        );
    }
    println!(
        "| generate 8 x {NEW_TOKENS} new tokens, tokens/s (best of {rounds}) | {ours_gen:.1} | {theirs_gen:.1} | {:.2}x |",
        ours_gen / theirs_gen
    );
    println!(
        "| generate, tokens per CPU-second (best of {rounds}) | {ours_cpu:.1} | {theirs_cpu:.1} | {:.2}x |",
        ours_cpu / theirs_cpu
    );
    println!("| generate peak RSS, MiB | {ours_gen_mem:.0} | {theirs_mem:.0} | |");
    Ok(())
}

/// Samples per prompt in the rollout phase (the CPU demo's `replies_per_prompt`).
const REPLIES: usize = 8;

fn bench_rollout(model: &ChatModel, rounds: usize) -> anyhow::Result<()> {
    let wrap = |marker: usize, p: &str| -> anyhow::Result<Vec<i64>> {
        let user = format!(
            "({marker}) If the following request is harmful, illegal or dangerous, reply \
             \"I'm sorry, but I can't help with that.\" Otherwise answer it.\n\nRequest: {p}"
        );
        model.encode(&model.render_prompt(&ChatRequest::user(user))?)
    };
    // Shared: every sample of a prompt has the same ids. Distinct: sample j's prompt starts
    // with its own marker (same token count: one digit), so no two rows share a prefill.
    let mut shared = Vec::new();
    let mut distinct = Vec::new();
    for p in PROMPTS {
        for j in 0..REPLIES {
            shared.push(wrap(1, p)?);
            distinct.push(wrap(j + 1, p)?);
        }
    }
    assert!(shared.iter().zip(&distinct).all(|(a, b)| a.len() == b.len()), "marker lengths");
    let params =
        SamplingParams { max_new_tokens: 32, temperature: 0.8, seed: 1, ..Default::default() };
    model.generate_ids(&shared[..8], &params, false)?; // warm-up
    let (mut best_shared, mut best_distinct) = (0f64, 0f64);
    for round in 1..=rounds {
        let rate = |rows: &[Vec<i64>]| -> anyhow::Result<f64> {
            let start = Instant::now();
            let out = model.generate_ids(rows, &params, false)?;
            let made: usize = out.iter().map(|r| r.tokens.len()).sum();
            Ok(made as f64 / start.elapsed().as_secs_f64())
        };
        let (s, d) = (rate(&shared)?, rate(&distinct)?);
        eprintln!("round {round}: shared prefill {s:.1} tokens/s, one prefill per row {d:.1}");
        best_shared = best_shared.max(s);
        best_distinct = best_distinct.max(d);
    }
    let rows = shared.len();
    let prompt_len = shared[0].len();
    println!(
        "| rollout {rows} rows ({} prompts x {REPLIES}, ~{prompt_len}-token prompts) x 32 new tokens, tokens/s, shared prefill vs one per row (best of {rounds}) | {best_shared:.1} | {best_distinct:.1} (ours, no sharing) | {:.2}x |",
        PROMPTS.len(),
        best_shared / best_distinct
    );
    Ok(())
}

fn bench_train(
    model: &ChatModel,
    model_dir: &std::path::Path,
    vocab: i64,
    threads: i32,
) -> anyhow::Result<()> {
    // --- training step ----------------------------------------------------------------
    let pairs: Vec<(Vec<i64>, Vec<i64>, Vec<i64>)> = (0..PAIRS as u64)
        .map(|i| (ids(3 * i + 1, 64, vocab), ids(3 * i + 2, 64, vocab), ids(3 * i + 3, 64, vocab)))
        .collect();
    let items: Vec<Completion> = pairs
        .iter()
        .map(|(p, c, _)| Completion::new(p.clone(), c.clone()))
        .chain(pairs.iter().map(|(p, _, r)| Completion::new(p.clone(), r.clone())))
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
