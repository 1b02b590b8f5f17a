//! The C heap under libtorch's CPU tensors: keep a training process's resident memory close
//! to what its live tensors hold.
//!
//! libtorch allocates every CPU tensor with `posix_memalign`, i.e. from the C library's
//! `malloc`. glibc serves a request of at least `M_MMAP_THRESHOLD` bytes with its own `mmap`
//! and unmaps it at `free`; smaller ones come from a heap (the `brk` heap of the main
//! thread, 64 MiB arenas of other threads, e.g. OpenMP workers), whose freed blocks stay
//! resident until the free space at the heap's top exceeds `M_TRIM_THRESHOLD`. Both
//! thresholds are dynamic by default (`mallopt(3)`): the mmap threshold starts at 128 KiB
//! and rises to the size of every mmapped block freed, up to 32 MiB on 64-bit systems. A
//! training step's tensors are a few MiB each (a SmolLM2-135M layer's MLP activations for a
//! 12-row micro-batch: 8.7 MB), so after the first ones are freed they all come from the
//! heaps, and a checkpointed backward pass that recomputes thirty layers one after the other
//! leaves each layer's freed blocks behind in a different place: measured on the LoRA
//! quickstart, the RSS climbed by ~530 MiB during a backward pass whose live tensors held
//! ~150 MiB, and stayed there (BENCHMARKS.md, "Memory plan").
//!
//! [`configure`] fixes the mmap threshold at [`MMAP_THRESHOLD_BYTES`] once at start-up, so
//! tensors of that size or more are mapped and unmapped one by one and never linger; the
//! heaps keep the small blocks, which they reuse well. The price is the kernel's page
//! faults on every fresh mapping (measured in BENCHMARKS.md). [`release_free_memory`]
//! (`malloc_trim(0)`) hands back what the heaps still hold free after a phase; the trainer
//! calls it after each player's update.
//!
//! Only glibc on Linux has these knobs; elsewhere both functions do nothing. Setting
//! `MALLOC_MMAP_THRESHOLD_` or `glibc.malloc.mmap_threshold` in `GLIBC_TUNABLES` keeps the
//! user's own threshold, and `ADVGAME_HEAP=default` leaves glibc's defaults alone (for
//! measuring the difference).

/// The environment variable that turns the tuning off: `ADVGAME_HEAP=default`.
pub const HEAP_ENV: &str = "ADVGAME_HEAP";

/// The fixed mmap threshold [`configure`] sets: 4 MiB. The largest tensors of a training
/// step (a SmolLM2-135M layer's MLP activations for a 12-row micro-batch, 8.7 MB; LM-head
/// logit chunks) are mapped one by one and leave the resident set when freed; the many
/// smaller ones stay in the heaps, which reuse them without page faults. Measured on the LoRA
/// quickstart (3 steps, quiet box, BENCHMARKS.md "glibc's heap under training"): 1 MiB gave
/// the lowest peak (1.94 GiB) but 27 M page faults and a 50% slower step; 4 MiB keeps 2.34
/// GiB at 6 M faults and a step within 3% of glibc's default (2.76 GiB, 1.9 M faults).
pub const MMAP_THRESHOLD_BYTES: usize = 4 << 20;

/// What [`configure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeapSetting {
    /// The mmap threshold is now fixed at [`MMAP_THRESHOLD_BYTES`].
    FixedMmapThreshold,
    /// Left alone: the user set a threshold, `ADVGAME_HEAP=default`, or not glibc.
    Default,
}

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD_BYTES`] (see the module docs), unless
/// the user chose a heap setting; call once, before the models load. Returns what it did.
pub fn configure() -> HeapSetting {
    if !wanted(|k| std::env::var(k).ok()) {
        return HeapSetting::Default;
    }
    if sys::set_mmap_threshold(MMAP_THRESHOLD_BYTES) {
        HeapSetting::FixedMmapThreshold
    } else {
        HeapSetting::Default
    }
}

/// Returns the free memory the heaps hold to the kernel (`malloc_trim(0)`: the top of each
/// heap and every whole free page inside it). Costs a walk over the heaps' free lists and
/// the page faults of reusing those pages later. Does nothing unless [`configure`] fixed the
/// threshold (so `ADVGAME_HEAP=default` measures glibc's own behaviour) or off glibc.
pub fn release_free_memory() {
    if sys::threshold_fixed() {
        sys::trim();
    }
}

/// Whether the environment (read through `var`) leaves the heap to [`configure`].
fn wanted(var: impl Fn(&str) -> Option<String>) -> bool {
    let own_threshold = var("MALLOC_MMAP_THRESHOLD_").is_some()
        || var("GLIBC_TUNABLES").is_some_and(|t| t.contains("glibc.malloc.mmap_threshold"));
    !own_threshold && var(HEAP_ENV).is_none_or(|v| v != "default")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod sys {
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Whether `set_mmap_threshold` succeeded in this process.
    static FIXED: AtomicBool = AtomicBool::new(false);

    #[expect(unsafe_code, reason = "one FFI call to glibc's mallopt")]
    pub fn set_mmap_threshold(bytes: usize) -> bool {
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: `mallopt` changes an allocator parameter under the allocator's own lock;
        // it takes two integers and reads no memory of ours. It returns 1 on success.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, value) } == 1;
        FIXED.store(ok, Ordering::Relaxed);
        ok
    }

    pub fn threshold_fixed() -> bool {
        FIXED.load(Ordering::Relaxed)
    }

    #[expect(unsafe_code, reason = "one FFI call to glibc's malloc_trim")]
    pub fn trim() {
        // SAFETY: `malloc_trim` takes an integer and reads no memory of ours; it locks each
        // arena in turn and gives back only pages of free chunks, never live allocations.
        unsafe { libc::malloc_trim(0) };
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod sys {
    pub fn set_mmap_threshold(_bytes: usize) -> bool {
        false
    }

    pub fn threshold_fixed() -> bool {
        false
    }

    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn tunes_unless_the_user_chose() {
        assert!(wanted(env(&[])));
        assert!(wanted(env(&[("ADVGAME_HEAP", "fixed")])));
        assert!(wanted(env(&[("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1")])));
        assert!(!wanted(env(&[("ADVGAME_HEAP", "default")])));
        assert!(!wanted(env(&[("MALLOC_MMAP_THRESHOLD_", "65536")])));
        assert!(!wanted(env(&[(
            "GLIBC_TUNABLES",
            "glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=4194304"
        )])));
    }

    /// Blocks above the threshold, freed while small blocks allocated between them stay,
    /// leave the resident set at once. Under glibc's dynamic threshold they would not: the
    /// first block freed raises the threshold to its size, the next ones come from the heap,
    /// and the live small blocks pin the holes they leave (~256 MiB kept here).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_tensor_sized_blocks_leave_the_resident_set() {
        use crate::game::memory_plan::probe::rss_and_peak_kib;
        if configure() != HeapSetting::FixedMmapThreshold {
            return; // the environment chose its own heap setting
        }
        let rss_mib = || rss_and_peak_kib().expect("/proc/self/status").0 as i64 / 1024;
        // Tensor-sized: at the threshold (glibc's default would raise its own threshold to
        // this size after the first free and keep the blocks in the heap).
        const BLOCK: usize = MMAP_THRESHOLD_BYTES;
        drop(std::hint::black_box(vec![1u8; BLOCK]));
        let before = rss_mib();
        let (mut big, mut small) = (Vec::new(), Vec::new());
        for _ in 0..(256 << 20) / BLOCK {
            big.push(std::hint::black_box(vec![1u8; BLOCK]));
            small.push(std::hint::black_box(vec![1u8; 4096]));
        }
        let peak = rss_mib();
        drop(big);
        let after = rss_mib();
        assert!(peak - before >= 192, "256 MiB allocated: rss {before} -> {peak} MiB");
        assert!(after - before <= 96, "256 MiB freed: rss {before} -> {peak} -> {after} MiB");
        drop(small);
    }
}
