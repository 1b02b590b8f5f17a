//! The plugins' one SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", OOPSLA 2014; constants as in Vigna's reference `splitmix64.c`), the same
//! generator as the host's `advgame_host::rng`: tiny, well-mixed and identical on every
//! platform, so a curriculum's draws depend only on its seed.
//!
//! The state is a bare `u64` so that plugins can save and restore it as a number.

/// The golden-ratio increment of SplitMix64 (2^64 / phi, odd).
pub const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: mixes the bits of `z` (a bijection on `u64`).
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The next output of the generator whose state is `state` (advanced by [`GOLDEN_GAMMA`]).
pub fn next_u64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    mix64(*state)
}

/// The next output as a uniform `f64` in `[0, 1)` (its top 53 bits).
pub fn next_f64(state: &mut u64) -> f64 {
    (next_u64(state) >> 11) as f64 / (1u64 << 53) as f64
}

/// A uniform index in `0..bound` (`bound >= 1`), without modulo bias: outputs in the last,
/// incomplete multiple of `bound` are drawn again.
pub fn next_below(state: &mut u64, bound: u64) -> u64 {
    assert!(bound >= 1, "next_below: bound must be at least 1");
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let r = next_u64(state);
        if r < zone {
            return r % bound;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first outputs of Vigna's `splitmix64.c` seeded with 0, the values the host's
    /// `rng` test pins too: the two generators cannot drift apart.
    #[test]
    fn matches_the_reference_generator() {
        let mut state = 0u64;
        assert_eq!(next_u64(&mut state), 0xE220_A839_7B1D_CDAF);
        assert_eq!(next_u64(&mut state), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(state, GOLDEN_GAMMA.wrapping_mul(2));
        let mut state = 0u64;
        let u = next_f64(&mut state);
        assert_eq!(u, (0xE220_A839_7B1D_CDAFu64 >> 11) as f64 / (1u64 << 53) as f64);
        assert!((0.0..1.0).contains(&u));
    }

    #[test]
    fn bounded_draws_stay_in_range_and_cover_it() {
        let mut state = 7u64;
        let mut seen = [false; 5];
        for _ in 0..200 {
            let i = next_below(&mut state, 5);
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
        assert_eq!(next_below(&mut state, 1), 0);
    }
}
