//! The plan as text, and the device's capacity it is checked against.

use std::fmt::Write as _;

use super::{Capacity, GIB, MemoryPlan, Phase};

/// `bytes` as the plan prints them: GiB with two decimals (`9.37 GiB`).
pub fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / GIB)
}

pub(super) fn count(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1}M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

impl MemoryPlan {
    /// The plan as text: one line per term, the phase totals and the peak; against
    /// `capacity` when known, with a warning when the peak does not fit.
    pub fn render(&self, capacity: Option<&Capacity>) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "memory plan for device {}", self.device);
        let _ = writeln!(
            out,
            "lengths: attacker prompt {} + completion {} tokens, defender prompt {} + \
             completion {} tokens ({})",
            self.lengths.attacker_prompt,
            self.lengths.attacker_completion,
            self.lengths.defender_prompt,
            self.lengths.defender_completion,
            self.lengths.source
        );
        for phase in [Phase::Resident, Phase::Generation, Phase::Update, Phase::Checkpoint] {
            let total = self.phase(phase);
            let _ = writeln!(out, "\n[{}] {}", phase.label(), gib(total));
            for t in self.terms.iter().filter(|t| t.phase == phase) {
                let _ = writeln!(out, "  {:>10}  {}", gib(t.bytes), t.what);
                let _ = writeln!(out, "              = {}", t.formula);
            }
        }
        let (phase, bytes) = self.largest_phase();
        let _ = writeln!(out);
        if self.transient_factor != 1.0 {
            let _ = writeln!(
                out,
                "allocator factor on transient phases: x{:.2} (CPU, measured)",
                self.transient_factor
            );
        }
        let _ = writeln!(
            out,
            "peak = resident {} + {} {} = {}",
            gib(self.resident()),
            phase.label(),
            gib(bytes),
            gib(self.peak())
        );
        match capacity {
            Some(c) if self.peak() > c.bytes => {
                let _ = writeln!(
                    out,
                    "WARNING: the plan needs {} but the device has {} ({}): it will not fit",
                    gib(self.peak()),
                    gib(c.bytes),
                    c.source
                );
            }
            Some(c) => {
                let _ = writeln!(
                    out,
                    "fits: {} of {} ({}), {:.0}% used",
                    gib(self.peak()),
                    gib(c.bytes),
                    c.source,
                    100.0 * self.peak() as f64 / c.bytes as f64
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "device memory unknown: pass --device-memory GiB to check the fit"
                );
            }
        }
        out
    }
}

/// The memory the device offers: `--device-memory` when given, else `MemAvailable` on CPU
/// and `nvidia-smi`'s total memory on CUDA (`None` when neither can be read).
pub fn device_capacity(device: &str, override_gib: Option<f64>) -> Option<Capacity> {
    if let Some(g) = override_gib {
        return Some(Capacity { bytes: (g * GIB) as u64, source: "--device-memory".into() });
    }
    if device == "cpu" {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kib: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        return Some(Capacity { bytes: kib << 10, source: "MemAvailable in /proc/meminfo".into() });
    }
    let index = device.strip_prefix("cuda:").unwrap_or("0");
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits", "-i", index])
        .output()
        .ok()?;
    let mib: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(Capacity { bytes: mib << 20, source: format!("nvidia-smi (GPU {index} total)") })
}
