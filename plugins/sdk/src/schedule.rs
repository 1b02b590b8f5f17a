//! Shuffled passes over seed indices: the schedule of the `uniform` and `lookalike` curricula.
//!
//! A [`Passes`] holds one category's seed indices in tiers. Each pass (an epoch) visits every
//! index exactly once: tier 0's in a shuffled order, then tier 1's, and so on; when a pass is
//! used up the next epoch reshuffles every tier. The order of epoch `e` is a pure function of
//! `(rng seed, lane, e, tier)`, so the saved position is three numbers (`count:epoch:pos`)
//! and a restored schedule continues exactly.

use crate::rng;

/// One lane (category) of a curriculum: tiers of seed indices and the cursor into the
/// current pass.
#[derive(Debug, Default, Clone)]
pub struct Passes {
    /// Seed indices (into the curriculum's `init` list) per tier, in seed-file order.
    tiers: Vec<Vec<u32>>,
    rng_seed: u64,
    lane: u64,
    epoch: u64,
    /// Position inside the current epoch's order.
    pos: usize,
    /// The current epoch's order (recomputed from the fields above).
    order: Vec<u32>,
}

impl Passes {
    /// The schedule of lane `lane` (any number the curriculum keeps fixed per category) with
    /// the given tiers, at the start of epoch 0. With one tier this is a plain shuffled pass.
    pub fn new(rng_seed: u64, lane: u64, tiers: Vec<Vec<u32>>) -> Self {
        let mut p = Self { tiers, rng_seed, lane, ..Self::default() };
        p.order = p.epoch_order(0);
        p
    }

    /// How many seed indices the lane holds (all tiers).
    pub fn len(&self) -> usize {
        self.tiers.iter().map(Vec::len).sum()
    }

    /// Whether the lane holds no seed at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next `size` indices, crossing into new epochs as needed; empty for an empty lane.
    pub fn take(&mut self, size: usize) -> Vec<u32> {
        let mut out = Vec::with_capacity(size);
        if self.is_empty() {
            return out;
        }
        while out.len() < size {
            if self.pos == self.order.len() {
                self.epoch += 1;
                self.pos = 0;
                self.order = self.epoch_order(self.epoch);
            }
            out.push(self.order[self.pos]);
            self.pos += 1;
        }
        out
    }

    /// The cursor as `count:epoch:pos` (count = [`Passes::len`], kept to catch a state
    /// restored against other seeds).
    pub fn save(&self) -> String {
        format!("{}:{}:{}", self.len(), self.epoch, self.pos)
    }

    /// Moves the cursor to a position written by [`Passes::save`]. Errors name what does not
    /// match: the format, a seed count other than this lane's, a position past the pass.
    pub fn restore(&mut self, text: &str) -> Result<(), String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [n, epoch, pos] = parts.as_slice() else {
            return Err(format!("lane `{text}`: expected count:epoch:pos"));
        };
        let num = |v: &str, what: &str| {
            v.parse::<u64>().map_err(|_| format!("{what}: `{v}` is not a number"))
        };
        let (n, epoch, pos) = (num(n, "count")?, num(epoch, "epoch")?, num(pos, "pos")?);
        if n != self.len() as u64 {
            return Err(format!(
                "state has {n} seeds in lane {}, init was given {}",
                self.lane,
                self.len()
            ));
        }
        if pos > n {
            return Err(format!("position {pos} beyond {n} seeds"));
        }
        self.epoch = epoch;
        self.pos = pos as usize;
        self.order = self.epoch_order(epoch);
        Ok(())
    }

    /// Restores every lane from its saved text (`texts[i]` for `lanes[i]`) or none: on an
    /// error the lanes are left as they were, so a refused state changes nothing.
    pub fn restore_all(lanes: &mut [Passes], texts: &[&str]) -> Result<(), String> {
        if lanes.len() != texts.len() {
            return Err(format!("state has {} lanes, expected {}", texts.len(), lanes.len()));
        }
        let mut restored = lanes.to_vec();
        for (lane, text) in restored.iter_mut().zip(texts) {
            lane.restore(text)?;
        }
        lanes.clone_from_slice(&restored);
        Ok(())
    }

    /// Epoch `epoch`'s order: each tier shuffled (Fisher-Yates, unbiased bounded draws), tier
    /// by tier. Tier 0's stream is the one the `uniform` curriculum has always used, so its
    /// schedules are unchanged by the tiers.
    fn epoch_order(&self, epoch: u64) -> Vec<u32> {
        let mut order = Vec::with_capacity(self.len());
        for (t, tier) in self.tiers.iter().enumerate() {
            let mut part = tier.clone();
            let mut s = self.rng_seed
                ^ (self.lane + 1).wrapping_mul(0xA24B_AED4_963E_E407)
                ^ epoch.wrapping_mul(0x9FB2_1C65_1E98_DF25)
                ^ (t as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93);
            for i in (1..part.len()).rev() {
                let j = rng::next_below(&mut s, (i + 1) as u64) as usize;
                part.swap(i, j);
            }
            order.extend(part);
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::Passes;

    #[test]
    fn a_pass_visits_tier_zero_first_and_every_index_once() {
        let mut p = Passes::new(7, 1, vec![vec![10, 11, 12], vec![20, 21, 22, 23]]);
        let first = p.take(7);
        let mut head = first[..3].to_vec();
        head.sort();
        assert_eq!(head, vec![10, 11, 12], "tier 0 comes first: {first:?}");
        let mut all = first.clone();
        all.sort();
        assert_eq!(all, vec![10, 11, 12, 20, 21, 22, 23]);
        // The next pass is another shuffle of the same tiers.
        let second = p.take(7);
        let mut head = second[..3].to_vec();
        head.sort();
        assert_eq!(head, vec![10, 11, 12]);
        assert_eq!(p.save(), "7:1:7");
    }

    /// The orders the `uniform` curriculum drew before the tiers existed (its own shuffle,
    /// rng seed 42, 10 seeds): a one-tier lane must keep drawing them, or resumed runs and
    /// recorded schedules would change under users.
    #[test]
    fn one_tier_keeps_the_uniform_curriculums_orders() {
        let mut a = Passes::new(42, 0, vec![(0..10).collect()]);
        assert_eq!(a.take(10), vec![1, 4, 8, 3, 2, 0, 9, 6, 5, 7]);
        let mut b = Passes::new(42, 1, vec![(0..10).collect()]);
        b.take(10);
        assert_eq!(b.take(10), vec![1, 2, 7, 9, 0, 6, 5, 4, 8, 3], "lane 1, epoch 1");
    }

    #[test]
    fn restore_continues_exactly_and_refuses_what_does_not_fit() {
        let mut a = Passes::new(3, 0, vec![(0..9).collect()]);
        a.take(5);
        let saved = a.save();
        let next: Vec<u32> = a.take(12);
        let mut b = Passes::new(3, 0, vec![(0..9).collect()]);
        b.restore(&saved).unwrap();
        assert_eq!(b.take(12), next);
        assert_eq!(b.restore("9:0").unwrap_err(), "lane `9:0`: expected count:epoch:pos");
        assert_eq!(
            b.restore("8:0:0").unwrap_err(),
            "state has 8 seeds in lane 0, init was given 9"
        );
        assert_eq!(b.restore("9:0:10").unwrap_err(), "position 10 beyond 9 seeds");
        assert_eq!(b.restore("9:x:0").unwrap_err(), "epoch: `x` is not a number");
    }

    #[test]
    fn restore_all_moves_every_lane_or_none() {
        let fresh = || {
            [Passes::new(5, 0, vec![(0..4).collect()]), Passes::new(5, 1, vec![(4..6).collect()])]
        };
        let mut lanes = fresh();
        lanes[0].take(3);
        let before = lanes[0].save();
        let err = Passes::restore_all(&mut lanes, &["4:0:1", "9:0:0"]).unwrap_err();
        assert_eq!(err, "state has 9 seeds in lane 1, init was given 2");
        assert_eq!(lanes[0].save(), before, "a refused state changes nothing");
        Passes::restore_all(&mut lanes, &["4:2:1", "2:0:1"]).unwrap();
        assert_eq!((lanes[0].save(), lanes[1].save()), ("4:2:1".into(), "2:0:1".into()));
        assert!(Passes::restore_all(&mut lanes, &["4:0:0"]).is_err());
    }

    #[test]
    fn an_empty_lane_gives_empty_batches() {
        let mut p = Passes::new(1, 0, vec![vec![], vec![]]);
        assert!(p.is_empty());
        assert!(p.take(4).is_empty());
    }
}
