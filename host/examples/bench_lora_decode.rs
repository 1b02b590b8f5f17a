//! LoRA generation: decode steps with the adapter's low-rank side paths against decoding on
//! merged weights (`CausalLm::set_merged_sampling`), and the frozen base alone, in one
//! process, rounds alternating (side, merged, base, side, merged, base, ...). Prints, per
//! batch size, the CPU seconds (user + system of the process, which other jobs on the box
//! hardly move) and wall seconds of one generation call, best and median of the rounds, and
//! the merged / side and base / side ratios. A merged call includes making its merged copy.
//!
//! The quickstart-lora shapes by default: SmolLM2-135M-Instruct, r = 16 on all seven
//! projections (`lora_alpha` 32), prompts of 120 tokens, 1 new token (prefill, and the merge) and 48 (no stop token), batch
//! 12 (the attacker's 6 seeds x 2 attacks) and 24 (the defender's 12 prompts x 2 replies).
//!
//! `OMP_NUM_THREADS=1 cargo run --profile dev --example bench_lora_decode -- [ROUNDS [BATCH...]]`
//! (model: `ADVGAME_BENCH_MODEL`, default `$ADVGAME_DATA/models/SmolLM2-135M-Instruct`).

use std::path::PathBuf;
use std::time::Instant;

use advgame_host::model::CausalLm;
use advgame_host::model::generate::{DecodeOptions, decode};
use advgame_host::model::lora::{LoraAdapter, LoraConfig};
use tch::{Device, Kind, Tensor};

/// User + system CPU seconds of this process so far (`/proc/self/stat`, 1/100 s ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rounds = args.first().copied().unwrap_or(3);
    let batches = if args.len() > 1 { args[1..].to_vec() } else { vec![12, 24] };
    let dir = std::env::var_os("ADVGAME_BENCH_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("ADVGAME_DATA").unwrap_or_else(|_| "data".into()))
            .join("models/SmolLM2-135M-Instruct")
    });
    let base = CausalLm::load(&dir, Device::Cpu, Kind::Float)?;
    let config = LoraConfig { r: 16, lora_alpha: 32.0, ..Default::default() };
    tch::manual_seed(0);
    // A trained-like adapter: B != 0 (a fresh one's B = 0 would change nothing).
    let adapter =
        LoraAdapter::build(base.spec(), &config, Device::Cpu, Kind::Float, &mut |_, shape| {
            Ok(Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.01)
        })?;
    let mut view = base.with_adapter(adapter)?;
    let vocab = base.spec().vocab_size;
    println!(
        "model {}, r 16 on all projections, prompts 120 tokens, {rounds} rounds, \
         OMP_NUM_THREADS={}",
        dir.display(),
        std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    println!(
        "| batch | new tokens | decoding | CPU s best / median | wall s best / median | CPU vs side |"
    );
    println!("|---|---|---|---|---|---|");
    for (&batch, new_tokens) in batches.iter().flat_map(|b| [(b, 1), (b, 48)]) {
        let prompts: Vec<Vec<i64>> = (0..batch)
            .map(|r| (0..120).map(|j| ((r * 7919 + j * 104729) as i64 % (vocab - 2)) + 1).collect())
            .collect();
        let opts = DecodeOptions {
            max_new_tokens: new_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop_token_ids: Vec::new(),
            pad_token_id: 0,
        };
        let names = ["side paths", "merged", "base alone"];
        let mut cpu = vec![Vec::new(); 3];
        let mut wall = vec![Vec::new(); 3];
        // Round 0 warms up (the base's decode layout, allocator) and is not counted.
        for round in 0..=rounds {
            for (i, cpu_i) in cpu.iter_mut().enumerate() {
                view.set_merged_sampling((i == 1).then_some(0));
                let lm = if i == 2 { &base } else { &view };
                let (c0, t0) = (cpu_seconds(), Instant::now());
                let rows = decode(lm, &prompts, &opts, |_, _| false)?;
                let (c, t) = (cpu_seconds() - c0, t0.elapsed().as_secs_f64());
                assert!(rows.iter().all(|r| r.tokens.len() == new_tokens));
                if round > 0 {
                    cpu_i.push(c);
                    wall[i].push(t);
                }
            }
        }
        let side = median(cpu[0].clone());
        for i in 0..3 {
            let best = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let med = median(cpu[i].clone());
            println!(
                "| {batch} | {new_tokens} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {:.3}x |",
                names[i],
                best(&cpu[i]),
                med,
                best(&wall[i]),
                median(wall[i].clone()),
                med / side
            );
        }
    }
    Ok(())
}
