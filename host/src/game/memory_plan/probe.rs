//! The measured side of the plan: resident memory of this process at phase boundaries,
//! printed when `ADVGAME_MEMORY_PROBE` is set (to anything but `0`), for comparing a run
//! against its `train --memory-plan` term by term.
//!
//! Each [`mark`] prints one line to stderr,
//! `memory-probe: <label> rss <VmRSS> MiB, phase peak <VmHWM> MiB, run peak <max> MiB`,
//! where the phase peak is the kernel's high-water mark of resident memory since the previous
//! mark: after reading it, the probe resets it by writing `5` to `/proc/self/clear_refs`
//! (Linux >= 4.0, `proc(5)`). So each line is the largest RSS reached *inside* the phase that
//! just ended, not only at its boundary. Because the reset also lowers what `getrusage` and
//! `/usr/bin/time` report as the process's maximum, the probe keeps the run's maximum itself
//! (`run peak`); benchmarks that read `/usr/bin/time` run without the probe.
//!
//! Off (the default) a mark costs one environment lookup. Linux only: elsewhere nothing
//! prints.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that turns the probe on.
pub const PROBE_ENV: &str = "ADVGAME_MEMORY_PROBE";

/// The run's largest phase peak so far, KiB.
static RUN_PEAK_KIB: AtomicU64 = AtomicU64::new(0);

/// Whether [`PROBE_ENV`] is set to anything but `0` (read once per process).
pub fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var(PROBE_ENV).is_ok_and(|v| v != "0"))
}

/// `VmRSS` and `VmHWM` of this process in KiB, from `/proc/self/status` (`None` where that
/// file or either field is missing).
pub fn rss_and_peak_kib() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find_map(|l| l.strip_prefix(name))?;
        line.trim().trim_end_matches("kB").trim().parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Ends a phase named `label` (see the module docs): prints its peak and resets the
/// high-water mark. Does nothing unless the probe is [`enabled`].
pub fn mark(label: &str) {
    if !enabled() {
        return;
    }
    let Some((rss, hwm)) = rss_and_peak_kib() else { return };
    let run = RUN_PEAK_KIB.fetch_max(hwm, Ordering::Relaxed).max(hwm);
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let mib = |kib: u64| kib as f64 / 1024.0;
    eprintln!(
        "memory-probe: {label:<40} rss {:>7.0} MiB, phase peak {:>7.0} MiB, run peak {:>7.0} MiB",
        mib(rss),
        mib(hwm),
        mib(run)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_rss() {
        let (rss, peak) = rss_and_peak_kib().expect("Linux /proc/self/status");
        assert!(rss > 0 && peak >= rss, "rss {rss} KiB, peak {peak} KiB");
    }
}
