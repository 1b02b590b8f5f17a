//! The statistics of an eval report: rates with seeded percentile-bootstrap intervals, and the
//! exact McNemar test for two targets answering the same prompts.
//!
//! - Bootstrap: resample the n outcomes with replacement `resamples` times, take the 2.5th and
//!   97.5th percentiles of the resampled rates (Efron & Tibshirani, "An Introduction to the
//!   Bootstrap", ch. 13). Seeded, so a report is reproducible.
//! - McNemar (exact form): only discordant pairs carry information; under the null each is
//!   equally likely to go either way, so with b and c discordant pairs the two-sided p-value is
//!   `min(1, 2 * P[Binomial(b + c, 1/2) <= min(b, c)])` (McNemar 1947; the exact binomial
//!   version is the one recommended for small counts, e.g. Fagerland et al. 2013).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// A share of hits among `n` outcomes with its 95% bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Outcomes counted (judged answers; failed judgments are not counted).
    pub n: usize,
    /// Outcomes that were hits.
    pub hits: usize,
    /// `hits / n`; `None` when `n == 0`.
    pub rate: Option<f64>,
    /// 95% percentile-bootstrap interval of the rate; `None` when `n == 0`.
    pub ci95: Option<[f64; 2]>,
}

impl Rate {
    /// The rate of `outcomes`, with `resamples` bootstrap resamples drawn from `seed`.
    pub fn of(outcomes: &[bool], resamples: usize, seed: u64) -> Rate {
        let n = outcomes.len();
        let hits = outcomes.iter().filter(|x| **x).count();
        if n == 0 {
            return Rate { n, hits, rate: None, ci95: None };
        }
        Rate {
            n,
            hits,
            rate: Some(hits as f64 / n as f64),
            ci95: Some(bootstrap_ci(outcomes, resamples, seed)),
        }
    }

    /// The same interval for the complementary outcome (`1 - rate`).
    pub fn complement(&self) -> Rate {
        Rate {
            n: self.n,
            hits: self.n - self.hits,
            rate: self.rate.map(|r| 1.0 - r),
            ci95: self.ci95.map(|[lo, hi]| [1.0 - hi, 1.0 - lo]),
        }
    }
}

/// 95% percentile-bootstrap interval of the share of `true` in `outcomes` (non-empty).
pub fn bootstrap_ci(outcomes: &[bool], resamples: usize, seed: u64) -> [f64; 2] {
    let n = outcomes.len();
    assert!(n > 0, "bootstrap of no outcomes");
    let resamples = resamples.max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rates: Vec<f64> = (0..resamples)
        .map(|_| {
            let hits = (0..n).filter(|_| outcomes[rng.random_range(0..n)]).count();
            hits as f64 / n as f64
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((q * (resamples - 1) as f64).round() as usize).min(resamples - 1);
        rates[i]
    };
    [at(0.025), at(0.975)]
}

/// The paired comparison of a baseline and another target on the same prompts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Prompts scored for both targets.
    pub pairs: usize,
    /// Hit for the baseline, miss for the other target.
    pub only_baseline: usize,
    /// Miss for the baseline, hit for the other target.
    pub only_other: usize,
    /// Exact two-sided p-value (1.0 when there is no discordant pair).
    pub p_value: f64,
}

impl McNemar {
    /// From paired outcomes `(baseline, other)`.
    pub fn of(pairs: &[(bool, bool)]) -> McNemar {
        let b = pairs.iter().filter(|(x, y)| *x && !*y).count();
        let c = pairs.iter().filter(|(x, y)| !*x && *y).count();
        McNemar {
            pairs: pairs.len(),
            only_baseline: b,
            only_other: c,
            p_value: mcnemar_exact(b, c),
        }
    }
}

/// Exact two-sided McNemar p-value for `b` and `c` discordant pairs.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let k = b.min(c);
    // P[X <= k] for X ~ Binomial(n, 1/2), summed in log space (n may be in the thousands).
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64; // ln C(n, 0)
    let mut tail = 0.0f64;
    for i in 0..=k {
        if i > 0 {
            ln_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// Share of distinct answers among `answers` (after trimming whitespace): 1.0 when every
/// answer differs, `1/n` when a model says the same thing to every prompt.
pub fn distinct_share<'a>(answers: impl IntoIterator<Item = &'a str>) -> Option<f64> {
    let mut seen = std::collections::HashSet::new();
    let mut n = 0usize;
    for a in answers {
        n += 1;
        seen.insert(a.trim());
    }
    (n > 0).then(|| seen.len() as f64 / n as f64)
}

/// Words of an answer's opening compared by [`opening`].
pub const OPENING_WORDS: usize = 6;

/// An answer's opening: its first [`OPENING_WORDS`] words, lowercased, with punctuation
/// dropped ("I'm sorry, but I can't" -> "im sorry but i cant"). Two answers that start
/// alike (a canned "I'm sorry, but I can't help with that" followed by the prompt's topic)
/// share an opening while their full texts differ, so the share of distinct openings sees a
/// collapse onto one template that the share of distinct answers misses.
pub fn opening(answer: &str) -> String {
    answer
        .split_whitespace()
        .map(|w| w.chars().filter(|c| c.is_alphanumeric()).flat_map(char::to_lowercase))
        .map(String::from_iter)
        .filter(|w| !w.is_empty())
        .take(OPENING_WORDS)
        .collect::<Vec<_>>()
        .join(" ")
}

/// How an answer set is spread over openings: the share of distinct openings and the most
/// common ones with their counts (most common first, ties in text order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpeningCount {
    /// The normalised opening (see [`opening`]); `""` for an empty answer.
    pub opening: String,
    /// Answers that start with it.
    pub count: usize,
}

/// The share of distinct openings (see [`opening`]) and the `k` most common ones; `None`
/// for no answers.
pub fn openings<'a>(
    answers: impl IntoIterator<Item = &'a str>,
    k: usize,
) -> Option<(f64, Vec<OpeningCount>)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut n = 0usize;
    for a in answers {
        n += 1;
        *counts.entry(opening(a)).or_default() += 1;
    }
    if n == 0 {
        return None;
    }
    let share = counts.len() as f64 / n as f64;
    let mut top: Vec<OpeningCount> =
        counts.into_iter().map(|(opening, count)| OpeningCount { opening, count }).collect();
    // Stable sort: equal counts keep the map's text order.
    top.sort_by_key(|o| std::cmp::Reverse(o.count));
    top.truncate(k);
    Some((share, top))
}

/// Whether an answer is degenerate text rather than language: empty, under 30% letters and
/// spaces (symbol or digit soup; "2 + 2 = 4" and code stay above it), or a loop (at least 12 words of
/// which under a third are distinct, e.g. "the the the ..." or one phrase repeated). Short
/// answers and lists are not loops: "Yes." or a 10-item list of distinct words pass.
pub fn degenerate(answer: &str) -> bool {
    let text = answer.trim();
    if text.is_empty() {
        return true;
    }
    let chars = text.chars().count();
    let wordy = text.chars().filter(|c| c.is_alphabetic() || c.is_whitespace()).count();
    if (wordy as f64) < 0.3 * chars as f64 {
        return true;
    }
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.len() >= 12 {
        let distinct: std::collections::HashSet<&String> = words.iter().collect();
        if (distinct.len() as f64) * 3.0 < words.len() as f64 {
            return true;
        }
    }
    false
}

/// Share of [`degenerate`] answers; `None` for no answers.
pub fn degenerate_share<'a>(answers: impl IntoIterator<Item = &'a str>) -> Option<f64> {
    let (mut n, mut bad) = (0usize, 0usize);
    for a in answers {
        n += 1;
        bad += usize::from(degenerate(a));
    }
    (n > 0).then(|| bad as f64 / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_matches_hand_computed_binomial_tails() {
        // b=0, c=5: 2 * 0.5^5 = 0.0625.
        assert!((mcnemar_exact(0, 5) - 0.0625).abs() < 1e-12);
        // b=1, c=9: 2 * (1 + 10) / 1024 = 0.021484375.
        assert!((mcnemar_exact(1, 9) - 0.021_484_375).abs() < 1e-12);
        assert!((mcnemar_exact(9, 1) - 0.021_484_375).abs() < 1e-12);
        assert_eq!(mcnemar_exact(3, 3), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Hundreds of pairs: summed in log space, no overflow of C(n, i) or 2^n.
        let p = mcnemar_exact(10, 300);
        assert!(p > 0.0 && p < 1e-60, "{p}");
        let m = McNemar::of(&[(true, false), (true, true), (false, true), (false, true)]);
        assert_eq!((m.pairs, m.only_baseline, m.only_other), (4, 1, 2));
        assert_eq!(m.p_value, 1.0);
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_rate() {
        let outcomes: Vec<bool> = (0..50).map(|i| i % 5 == 0).collect();
        let r = Rate::of(&outcomes, 1000, 7);
        assert_eq!(r.rate, Some(0.2));
        let [lo, hi] = r.ci95.unwrap();
        assert!(lo < 0.2 && 0.2 < hi && lo > 0.05 && hi < 0.4, "{lo} {hi}");
        assert_eq!(Rate::of(&outcomes, 1000, 7), r, "same seed, same interval");
        let c = r.complement();
        assert_eq!(c.hits, 40);
        assert!((c.ci95.unwrap()[0] - (1.0 - hi)).abs() < 1e-12);
        // Degenerate samples have a zero-width interval; no outcomes have none.
        assert_eq!(Rate::of(&[true; 4], 100, 0).ci95, Some([1.0, 1.0]));
        assert_eq!(Rate::of(&[], 100, 0).rate, None);
    }

    #[test]
    fn distinct_answers() {
        assert_eq!(distinct_share(["a", "a ", "b", "c"]), Some(0.75));
        assert_eq!(distinct_share(Vec::<&str>::new()), None);
    }

    #[test]
    fn openings_see_a_canned_template_that_distinct_answers_miss() {
        assert_eq!(opening("I'm sorry, but I can't help with that."), "im sorry but i cant help");
        assert_eq!(opening("  Sure!  "), "sure");
        assert_eq!(opening(""), "");
        let canned = [
            "I'm sorry, but I can't help with that request about locks.",
            "I'm sorry, but I can't help with making explosives.",
            "I'M SORRY but I can't help with hacking, sorry.",
            "Here is a recipe for bread: flour, water, salt.",
        ];
        assert_eq!(distinct_share(canned), Some(1.0));
        let (share, top) = openings(canned, 2).unwrap();
        assert_eq!(share, 0.5);
        assert_eq!(
            top,
            vec![
                OpeningCount { opening: "im sorry but i cant help".into(), count: 3 },
                OpeningCount { opening: "here is a recipe for bread".into(), count: 1 },
            ]
        );
        assert_eq!(openings(Vec::<&str>::new(), 3), None);
    }

    #[test]
    fn degenerate_answers_are_loops_symbol_soup_or_empty() {
        assert!(degenerate(""));
        assert!(degenerate("   "));
        assert!(degenerate(&"the ".repeat(20)));
        assert!(degenerate(&"I can't. ".repeat(8)));
        assert!(degenerate("#### 1234 5678 ---- **** ////"));
        assert!(!degenerate("Yes."));
        assert!(!degenerate("2 + 2 = 4"));
        assert!(!degenerate("I'm sorry, but I can't help with that. Is there anything else?"));
        assert!(!degenerate(
            "Paris is the capital of France, and it has been since the tenth century."
        ));
        assert_eq!(degenerate_share(["", "ok", "fine", &"no ".repeat(30)]), Some(0.5));
        assert_eq!(degenerate_share(Vec::<&str>::new()), None);
    }
}
