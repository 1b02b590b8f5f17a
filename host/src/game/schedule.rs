//! Learning-rate schedule: optional linear warm-up, then cosine decay from `lr` to
//! `final_ratio * lr` (the paper: no warm-up, decay to 0.2 x lr over the run).

/// The learning rate of update `step` (0-based) in a run of `total` updates.
pub fn lr_at(step: usize, total: usize, lr: f64, final_ratio: f64, warmup: usize) -> f64 {
    if step < warmup {
        return lr * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    lr * (final_ratio + (1.0 - final_ratio) * cosine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(step, total, lr, final_ratio, warmup, expected)`, each checked to 1e-12.
    const CASES: [(usize, usize, f64, f64, usize, f64); 9] = [
        // Cosine to a fifth, no warm-up.
        (0, 10, 1.0, 0.2, 0, 1.0),
        (5, 10, 1.0, 0.2, 0, 0.6),
        // Quarter way: 0.2 + 0.8 * 0.5 * (1 + cos(pi/4)) = 0.8828427...
        (25, 100, 1.0, 0.2, 0, 0.882_842_712_474_619),
        (10, 10, 1.0, 0.2, 0, 0.2),
        (50, 10, 2.0, 0.2, 0, 0.4),
        // Two warm-up steps, linear, then the cosine over the remaining ten.
        (0, 12, 1.0, 0.2, 2, 0.5),
        (1, 12, 1.0, 0.2, 2, 1.0),
        (2, 12, 1.0, 0.2, 2, 1.0),
        (7, 12, 1.0, 0.2, 2, 0.6),
    ];

    #[test]
    fn cosine_to_a_fifth_and_linear_warmup_hand_computed() {
        for (step, total, lr, ratio, warmup, expected) in CASES {
            let got = lr_at(step, total, lr, ratio, warmup);
            assert!((got - expected).abs() < 1e-12, "step {step}/{total}: {got} != {expected}");
        }
    }
}
