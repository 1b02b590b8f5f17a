//! Dropout masks from a counter-based generator owned by the run, not by libtorch.
//!
//! # Why counter-based
//! `Tensor::dropout` draws its mask from libtorch's process-global generator. That state is
//! shared by every model, thread and run of the process, and it advances with each draw. So
//! (1) two runs (or two tests) in one process change each other's masks, and a resumed run
//! replays only if nothing else touched the generator; (2) activation checkpointing
//! ([`crate::model::checkpointing`]) recomputes each layer in the backward pass and would draw
//! *new* masks there, so the gradients would flow through other masks than the forward pass
//! that produced the loss (`torch.utils.checkpoint` saves and restores the RNG state for this
//! reason). Here a mask is a pure function of a key and the element index: the same key gives
//! the same mask on every call, thread and device, and nothing is stored or advanced.
//!
//! # Key layout
//! - [`DropoutSeed`]: one training phase of one model, e.g. a player's optimiser update:
//!   `game::rng::derive_seed(run seed, optimiser step, player purpose)`.
//! - [`DropoutKey`]: one forward pass in that phase: the seed and the pass's index `call`
//!   (0, 1, ... in the order the phase runs its forward passes; the adapter counts them, and
//!   `LoraAdapter::set_training` restarts the count). The update loop runs a phase's passes
//!   in a fixed order on one thread, so a replayed phase gets the same indices.
//! - A *site*, one module's dropout in one layer of that pass:
//!   `site = mix64(seed ^ mix64(call << 24 | layer << 8 | module))` with `layer < 2^16`,
//!   `module < 2^8` (the index of [`crate::model::lora::Target`]) and `call < 2^40`. The word
//!   is injective in `(call, layer, module)` and `mix64` is a bijection, so distinct sites of
//!   one seed never share a key.
//! - Element `i` (row-major index into the input tensor) of a site gets the `(i + 1)`-th
//!   output of SplitMix64 started at `site`: `h = mix64(site + (i + 1) * GOLDEN_GAMMA)`.
//!   It is kept when its top 53 bits, as a fraction of `2^53`, are at least `p`, and kept
//!   elements are scaled by `1 / (1 - p)` (inverted dropout, as `torch.nn.Dropout`).
//!
//! The mixing function and its constants are SplitMix64's (Steele, Lea and Flood, OOPSLA
//! 2014; constants from Vigna's reference `splitmix64.c`), the host's one copy in
//! [`crate::rng`]. SplitMix64 over consecutive counters passes BigCrush, which is what a
//! stateless per-element hash needs.
//!
//! # Where the hash runs
//! On the CPU a plain Rust loop computes the mask (about 20 elementwise tensor passes per
//! mask would cost several times more: `BENCHMARKS.md`, "LoRA dropout masks"). On any other
//! device the same arithmetic runs as int64 tensor ops there (wrapping multiplication;
//! logical right shifts as arithmetic shifts masked to the low `64 - s` bits), so no mask
//! crosses the bus. Tests check both paths bit for bit against [`crate::rng::mix64`].

use tch::{Device, Kind, Tensor};

use crate::rng::{GOLDEN_GAMMA, mix64};

/// The seed of one training phase's dropout masks (see the module docs), e.g.
/// `derive_seed(run seed, optimiser step, PURPOSE_LORA_DROPOUT_*)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DropoutSeed(pub u64);

/// The key of one forward pass's dropout masks: its phase's seed and its index in the phase.
/// Activation checkpointing keeps it on its tape so the recomputation draws the same masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DropoutKey {
    /// The phase's seed.
    pub seed: DropoutSeed,
    /// The index of this forward pass in the phase (`< 2^40`).
    pub call: u64,
}

impl DropoutKey {
    /// The 64-bit key of one module's dropout in one layer of this pass (`layer < 2^16`,
    /// `module < 2^8`): `mix64(seed ^ mix64(call << 24 | layer << 8 | module))`.
    pub fn site(self, layer: usize, module: usize) -> u64 {
        debug_assert!(layer < 1 << 16 && module < 1 << 8 && self.call < 1 << 40);
        let word = (self.call << 24) | ((layer as u64) << 8) | module as u64;
        mix64(self.seed.0 ^ mix64(word))
    }
}

/// `mix64` of every element of an int64 tensor, bit for bit as [`crate::rng::mix64`] on the
/// elements read as `u64`.
fn mix64_tensor(z: Tensor) -> Tensor {
    let xor_shr = |z: &Tensor, s| z.bitwise_xor_tensor(&logical_shr(z, s));
    let z = xor_shr(&z, 30) * (0xBF58_476D_1CE4_E5B9_u64 as i64);
    let z = xor_shr(&z, 27) * (0x94D0_49BB_1331_11EB_u64 as i64);
    xor_shr(&z, 31)
}

/// `z >> s` on the bits read as `u64` (torch shifts int64 arithmetically).
fn logical_shr(z: &Tensor, s: u32) -> Tensor {
    z.bitwise_right_shift_tensor_scalar(i64::from(s)).bitwise_and(((1u64 << (64 - s)) - 1) as i64)
}

/// The raw 64-bit outputs `mix64(site + (i + 1) * GOLDEN_GAMMA)` for `i` in `0..n`, as int64
/// `[n]` on `device`, computed with tensor ops there (the non-CPU path of [`keep_mask`]).
pub fn hash_stream(site: u64, n: i64, device: Device) -> Tensor {
    let i = Tensor::arange_start(1, n + 1, (Kind::Int64, device));
    mix64_tensor(i * (GOLDEN_GAMMA as i64) + (site as i64))
}

/// Element `i` of `site` is kept when the top 53 bits of its hash are at least this.
fn threshold(p: f64) -> u64 {
    (p * (1u64 << 53) as f64).round() as u64
}

/// Whether element `i` of `site` is kept at probability `p` (the scalar definition).
pub fn kept(site: u64, i: u64, p: f64) -> bool {
    mix64(site.wrapping_add((i + 1).wrapping_mul(GOLDEN_GAMMA))) >> 11 >= threshold(p)
}

/// The keep-mask of `site` for a tensor of `shape` on `device`: boolean, true where element
/// `i` (row-major) is kept, each with probability `1 - p` (exactly: the share of 53-bit
/// fractions `>= p`). Computed by a Rust loop on the CPU, by int64 tensor ops elsewhere.
pub fn keep_mask(site: u64, shape: &[i64], p: f64, device: Device) -> Tensor {
    if device == Device::Cpu {
        let n = shape.iter().product::<i64>() as u64;
        let keep: Vec<bool> = (0..n).map(|i| kept(site, i, p)).collect();
        Tensor::from_slice(&keep).view(shape)
    } else {
        keep_mask_tensor_ops(site, shape, p, device)
    }
}

/// [`keep_mask`] by int64 tensor ops on `device` (any device, the CPU included for tests).
pub fn keep_mask_tensor_ops(site: u64, shape: &[i64], p: f64, device: Device) -> Tensor {
    let n = shape.iter().product::<i64>();
    logical_shr(&hash_stream(site, n, device), 11).ge(threshold(p) as i64).view(shape)
}

/// Inverted dropout of `x` with probability `p` and the mask of `site`: kept elements are
/// scaled by `1 / (1 - p)`, dropped ones are zero. Differentiable in `x`; `p = 0` returns
/// `x` itself.
pub fn dropout(x: &Tensor, p: f64, site: u64) -> Tensor {
    if p <= 0.0 {
        return x.shallow_clone();
    }
    let shape = x.size();
    let scale = 1.0 / (1.0 - p);
    let factors = if x.device() == Device::Cpu {
        // The 0 / `1 / (1 - p)` factors straight from the loop: one tensor, no casts.
        let n = shape.iter().product::<i64>() as u64;
        let (keep, drop) = (scale as f32, 0f32);
        let f: Vec<f32> = (0..n).map(|i| if kept(site, i, p) { keep } else { drop }).collect();
        Tensor::from_slice(&f).view(shape.as_slice())
    } else {
        keep_mask_tensor_ops(site, &shape, p, x.device()).to_kind(Kind::Float) * scale
    };
    let factors = if x.kind() == Kind::Float { factors } else { factors.to_kind(x.kind()) };
    x * factors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u64, call: u64) -> DropoutKey {
        DropoutKey { seed: DropoutSeed(seed), call }
    }

    #[test]
    fn tensor_hash_matches_the_scalar_splitmix64() {
        for site in [0u64, 1, 0xDEAD_BEEF_F00D_CAFE, u64::MAX] {
            let got = Vec::<i64>::try_from(hash_stream(site, 1000, Device::Cpu)).unwrap();
            for (i, h) in got.into_iter().enumerate() {
                let want = mix64(site.wrapping_add((i as u64 + 1).wrapping_mul(GOLDEN_GAMMA)));
                assert_eq!(h as u64, want, "site {site:#x}, element {i}");
            }
        }
        // Started at 0, the stream is Vigna's reference sequence.
        let first = hash_stream(0, 2, Device::Cpu);
        assert_eq!(first.int64_value(&[0]) as u64, 0xE220_A839_7B1D_CDAF);
        assert_eq!(first.int64_value(&[1]) as u64, 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn cpu_loop_and_tensor_ops_give_the_same_mask() {
        for (site, p) in [(0u64, 0.1), (u64::MAX, 0.5), (0x1234_5678_9ABC_DEF0, 0.9)] {
            let shape = [3, 5, 67];
            let a = keep_mask(site, &shape, p, Device::Cpu);
            let b = keep_mask_tensor_ops(site, &shape, p, Device::Cpu);
            assert!(a.equal(&b), "site {site:#x}, p {p}");
        }
    }

    #[test]
    fn same_key_same_mask_and_every_coordinate_changes_it() {
        let shape = [4, 8, 32];
        let mask = |k: DropoutKey, layer, module| {
            keep_mask(k.site(layer, module), &shape, 0.5, Device::Cpu)
        };
        let a = mask(key(7, 0), 1, 2);
        assert!(a.equal(&mask(key(7, 0), 1, 2)));
        for other in [
            mask(key(8, 0), 1, 2),
            mask(key(7, 1), 1, 2),
            mask(key(7, 0), 0, 2),
            mask(key(7, 0), 1, 3),
        ] {
            let agree = a.eq_tensor(&other).to_kind(Kind::Float).mean(Kind::Float);
            let agree = agree.double_value(&[]);
            // Independent masks at p = 0.5 agree on about half the elements.
            assert!((0.4..0.6).contains(&agree), "masks agree on {agree}");
        }
    }

    #[test]
    fn kept_share_is_one_minus_p() {
        let n = 1 << 20;
        for p in [0.05, 0.1, 0.5, 0.9] {
            let kept = keep_mask(key(3, 4).site(5, 6), &[n], p, Device::Cpu);
            let share = kept.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
            // Binomial standard deviation sqrt(p (1 - p) / n) <= 5e-4: 6 sigma.
            assert!((share - (1.0 - p)).abs() < 3e-3, "p = {p}: kept share {share}");
        }
        assert!(keep_mask(1, &[1000], 0.0, Device::Cpu).all().int64_value(&[]) == 1);
    }

    #[test]
    fn dropout_scales_kept_elements_and_passes_gradients_through_the_mask() {
        let x = Tensor::ones([64, 64], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let y = dropout(&x, 0.25, 42);
        let keep = keep_mask(42, &[64, 64], 0.25, Device::Cpu);
        let want = keep.to_kind(Kind::Float) / 0.75;
        assert!(y.allclose(&want, 1e-6, 1e-7, false));
        y.sum(Kind::Float).backward();
        assert!(x.grad().allclose(&want, 1e-6, 1e-7, false));
        assert!(dropout(&x, 0.0, 42).equal(&x));
    }
}
