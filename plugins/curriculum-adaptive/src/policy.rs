//! The adaptive sampling policy, free of any WIT type so it is unit-tested natively.

use std::collections::HashMap;

use advgame_plugin_sdk::rng;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    pub epsilon: f64,
    pub temperature: f64,
    pub decay: f64,
    pub prior: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub params: Params,
    /// Category of each seed (true = harmful), by index.
    harmful: Vec<bool>,
    ids: HashMap<String, u32>,
    pub scores: Vec<f32>,
    pub draws: Vec<u32>,
    rng: u64,
    rng_seed: u64,
}

impl State {
    pub fn new(
        params: Params,
        harmful: Vec<bool>,
        ids: HashMap<String, u32>,
        rng_seed: u64,
    ) -> Self {
        let n = harmful.len();
        Self {
            params,
            harmful,
            ids,
            scores: vec![params.prior; n],
            draws: vec![0; n],
            rng: rng_seed ^ 0xADA9_71CE,
            rng_seed,
        }
    }

    /// Sampling probabilities over the given pool (indices into the seeds).
    pub fn probabilities(&self, pool: &[u32]) -> Vec<f64> {
        let p = self.params;
        let logits: Vec<f64> =
            pool.iter().map(|&i| f64::from(self.scores[i as usize]) / p.temperature).collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = exp.iter().sum();
        let uniform = 1.0 / pool.len() as f64;
        exp.iter().map(|e| (1.0 - p.epsilon) * e / sum + p.epsilon * uniform).collect()
    }

    pub fn next_batch(&mut self, harmful: bool, size: usize) -> Vec<u32> {
        let pool: Vec<u32> = (0..self.harmful.len() as u32)
            .filter(|&i| self.harmful[i as usize] == harmful)
            .collect();
        let mut out = Vec::with_capacity(size);
        if pool.is_empty() {
            return out;
        }
        // Without replacement while the pool lasts, then start over (repeats only when the
        // category has fewer seeds than the batch).
        let mut left = pool.clone();
        while out.len() < size {
            if left.is_empty() {
                left = pool.clone();
            }
            let probs = self.probabilities(&left);
            let mut u = rng::next_f64(&mut self.rng) * probs.iter().sum::<f64>();
            let mut k = 0;
            while k + 1 < probs.len() && u >= probs[k] {
                u -= probs[k];
                k += 1;
            }
            let pick = left.remove(k);
            self.draws[pick as usize] += 1;
            out.push(pick);
        }
        out
    }

    pub fn observe(&mut self, seed_id: &str, attacker_reward: f32) {
        if let Some(&i) = self.ids.get(seed_id)
            && attacker_reward.is_finite()
        {
            let d = self.params.decay as f32;
            let s = &mut self.scores[i as usize];
            *s = d * *s + (1.0 - d) * attacker_reward;
        }
    }

    pub fn save(&self, tag: &str) -> Vec<u8> {
        let scores: Vec<String> =
            self.scores.iter().map(|s| format!("{:08x}", s.to_bits())).collect();
        let draws: Vec<String> = self.draws.iter().map(u32::to_string).collect();
        format!(
            "{tag} seed={} rng={} n={} scores={} draws={}",
            self.rng_seed,
            self.rng,
            self.scores.len(),
            scores.join(","),
            draws.join(",")
        )
        .into_bytes()
    }

    pub fn load(&mut self, tag: &str, text: &str) -> Result<(), String> {
        let mut fields = advgame_plugin_sdk::state::Fields::new(text, tag)?;
        let mut get = |key: &str| fields.get(key);
        let seed: u64 = get("seed")?.parse().map_err(|_| "seed is not a number".to_string())?;
        let rng: u64 = get("rng")?.parse().map_err(|_| "rng is not a number".to_string())?;
        let n: usize = get("n")?.parse().map_err(|_| "n is not a number".to_string())?;
        if seed != self.rng_seed {
            return Err(format!("state is for rng seed {seed}, init was given {}", self.rng_seed));
        }
        if n != self.scores.len() {
            return Err(format!("state has {n} seeds, init was given {}", self.scores.len()));
        }
        let split = |s: &str| {
            if s.is_empty() {
                Vec::new()
            } else {
                s.split(',').map(String::from).collect::<Vec<_>>()
            }
        };
        let scores = split(get("scores")?)
            .iter()
            .map(|h| {
                u32::from_str_radix(h, 16)
                    .map(f32::from_bits)
                    .map_err(|_| format!("bad score `{h}`"))
            })
            .collect::<Result<Vec<f32>, String>>()?;
        let draws = split(get("draws")?)
            .iter()
            .map(|d| d.parse::<u32>().map_err(|_| format!("bad draw count `{d}`")))
            .collect::<Result<Vec<u32>, String>>()?;
        if scores.len() != n || draws.len() != n {
            return Err(format!(
                "state lists {} scores and {} draw counts for {n} seeds",
                scores.len(),
                draws.len()
            ));
        }
        self.rng = rng;
        self.scores = scores;
        self.draws = draws;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(n_harmful: usize, n_benign: usize) -> State {
        let harmful: Vec<bool> = (0..n_harmful + n_benign).map(|i| i < n_harmful).collect();
        let ids = (0..harmful.len()).map(|i| (format!("s{i}"), i as u32)).collect();
        State::new(
            Params { epsilon: 0.2, temperature: 2.0, decay: 0.5, prior: 10.0 },
            harmful,
            ids,
            42,
        )
    }

    #[test]
    fn batches_stay_in_category_without_repeats() {
        let mut st = state(4, 3);
        let b = st.next_batch(true, 4);
        let mut sorted = b.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3]);
        let b = st.next_batch(false, 5);
        assert!(b.iter().all(|&i| (4..7).contains(&i)));
        assert_eq!(b.len(), 5);
    }

    #[test]
    fn probabilities_hand_computed() {
        // Scores 10 and 6 at temperature 2: softmax = 1/(1+e^-2) = 0.880797, 0.119203;
        // mixed with 20% uniform: 0.8*0.880797 + 0.1 = 0.804638, 0.8*0.119203 + 0.1 = 0.195362.
        let mut st = state(2, 0);
        st.observe("s1", 2.0); // 0.5 * 10 + 0.5 * 2 = 6
        assert_eq!(st.scores, vec![10.0, 6.0]);
        let p = st.probabilities(&[0, 1]);
        assert!((p[0] - 0.804_637_8).abs() < 1e-6 && (p[1] - 0.195_362_2).abs() < 1e-6, "{p:?}");
    }

    #[test]
    fn seeds_the_attacker_beats_are_drawn_more() {
        let mut st = state(10, 0);
        // Seed 0 keeps being beaten (attacker reward 9); the others are defended (-1).
        for _ in 0..5 {
            for i in 0..10 {
                st.observe(&format!("s{i}"), if i == 0 { 9.0 } else { -1.0 });
            }
        }
        let mut count0 = 0;
        for _ in 0..200 {
            count0 += st.next_batch(true, 1).iter().filter(|&&i| i == 0).count();
        }
        // Uniform would give ~20 of 200; exploration keeps every seed alive.
        assert!(count0 > 120, "{count0}");
        assert!(st.draws.iter().all(|&d| d > 0), "{:?}", st.draws);
    }

    #[test]
    fn state_round_trips_exactly() {
        let mut a = state(5, 5);
        a.observe("s3", 7.25);
        a.next_batch(true, 3);
        let saved = a.save("adaptive-v1");
        let mut b = state(5, 5);
        b.load("adaptive-v1", std::str::from_utf8(&saved).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.next_batch(false, 4), b.next_batch(false, 4));
        assert!(b.load("other", "x").is_err());
        let mut c = state(4, 5);
        assert!(
            c.load("adaptive-v1", std::str::from_utf8(&saved).unwrap())
                .unwrap_err()
                .contains("seeds")
        );
    }
}
