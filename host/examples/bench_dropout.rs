//! Cost of one LoRA dropout mask: libtorch's `Tensor::dropout` (process-global generator)
//! against the keyed, counter-based masks of `model::dropout`, on the CPU (Rust loop, and
//! int64 tensor ops for comparison) and, when CUDA is available, on the GPU (tensor ops).
//! Prints milliseconds per masked input and the ratio to libtorch's dropout in the same run.
//!
//! `OMP_NUM_THREADS=1 cargo run --profile dev --example bench_dropout -- [B T H]`
//! (default `8 256 576`: a quickstart-lora micro-batch on SmolLM2-135M's hidden size).

use std::time::Instant;

use advgame_host::model::dropout;
use tch::{Device, Kind, Tensor};

fn time(rounds: usize, device: Device, mut f: impl FnMut(u64) -> Tensor) -> f64 {
    let _ = f(0); // warm-up
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
    let start = Instant::now();
    for r in 0..rounds {
        let y = f(r as u64 + 1);
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        drop(y);
    }
    start.elapsed().as_secs_f64() * 1e3 / rounds as f64
}

fn main() {
    let args: Vec<i64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let shape = if args.len() == 3 { args } else { vec![8, 256, 576] };
    let p = 0.1;
    let mut devices = vec![Device::Cpu];
    if tch::Cuda::is_available() {
        devices.push(Device::Cuda(0));
    }
    for device in devices {
        let rounds = if device == Device::Cpu { 20 } else { 200 };
        let x = Tensor::randn(shape.as_slice(), (Kind::Float, device));
        let native = time(rounds, device, |_| x.dropout(p, true));
        let keyed = time(rounds, device, |site| dropout::dropout(&x, p, site));
        let ops = time(rounds, device, |site| {
            let keep = dropout::keep_mask_tensor_ops(site, &shape, p, device);
            &x * (keep.to_kind(Kind::Float) * (1.0 / (1.0 - p)))
        });
        println!("{device:?} shape {shape:?} p {p}:");
        println!("  libtorch dropout (global generator): {native:8.3} ms/mask   1.00x");
        println!(
            "  keyed (model::dropout::dropout):     {keyed:8.3} ms/mask {:6.2}x",
            keyed / native
        );
        println!("  keyed by int64 tensor ops:           {ops:8.3} ms/mask {:6.2}x", ops / native);
    }
}
