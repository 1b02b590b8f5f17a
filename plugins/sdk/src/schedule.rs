//! Shuffled passes over seed indices: the schedule of the `uniform` and `lookalike` curricula.
//!
//! A [`Passes`] holds one category's seed indices in tiers. Each pass (an epoch) visits every
//! index exactly once: tier 0's in a shuffled order, then tier 1's, and so on; when a pass is
//! used up the next epoch reshuffles every tier. The order of epoch `e` is a pure function of
//! `(rng seed, lane, e, tier)`, so the saved position is three fields (`sizes:epoch:pos`, the
//! sizes being the tiers' seed counts joined by `+`) and a restored schedule continues
//! exactly. [`Lanes`] is a whole curriculum's state: one [`Passes`] per category.

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

    /// The tiers' sizes joined by `+` (`"9"` for one tier of 9 seeds, `"3+6"` for two).
    fn sizes(&self) -> String {
        let sizes: Vec<String> = self.tiers.iter().map(|t| t.len().to_string()).collect();
        sizes.join("+")
    }

    /// The cursor as `sizes:epoch:pos` (the sizes are kept to catch a state restored
    /// against other seeds).
    pub fn save(&self) -> String {
        format!("{}:{}:{}", self.sizes(), self.epoch, self.pos)
    }

    /// Moves the cursor to a position written by [`Passes::save`]. Errors name what does not
    /// match: the format, tier sizes other than this lane's, a position past the pass.
    pub fn restore(&mut self, text: &str) -> Result<(), String> {
        let parts: Vec<&str> = text.split(':').collect();
        let [sizes, epoch, pos] = parts.as_slice() else {
            return Err(format!("lane `{text}`: expected count:epoch:pos"));
        };
        let num = |v: &str, what: &str| {
            v.parse::<u64>().map_err(|_| format!("{what}: `{v}` is not a number"))
        };
        let (epoch, pos) = (num(epoch, "epoch")?, num(pos, "pos")?);
        if *sizes != self.sizes() {
            return Err(format!(
                "state has {sizes} seeds in lane {}, init was given {}",
                self.lane,
                self.sizes()
            ));
        }
        if pos > self.len() as u64 {
            return Err(format!("position {pos} beyond {} seeds", self.len()));
        }
        self.epoch = epoch;
        self.pos = pos as usize;
        self.order = self.epoch_order(epoch);
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

/// A curriculum's whole state when it is one [`Passes`] per category (lane 0 harmful, lane
/// 1 benign): the batches, the count of observed outcomes, and the saved text
/// `TAG rng=R observed=N harmful=sizes:epoch:pos benign=sizes:epoch:pos`.
#[derive(Debug, Default)]
pub struct Lanes {
    rng_seed: u64,
    lanes: [Passes; 2],
    observed: u64,
    /// Set by [`Lanes::new`]: a default (never initialised) state refuses [`Lanes::load`].
    ready: bool,
}

impl Lanes {
    /// The state at the start of a run: the harmful seeds' tiers (lane 0) and the benign
    /// seeds' (lane 1), as [`Passes::new`] takes them.
    pub fn new(rng_seed: u64, harmful: Vec<Vec<u32>>, benign: Vec<Vec<u32>>) -> Self {
        Self {
            rng_seed,
            lanes: [Passes::new(rng_seed, 0, harmful), Passes::new(rng_seed, 1, benign)],
            observed: 0,
            ready: true,
        }
    }

    /// The next `size` seed indices of the harmful (`true`) or benign lane.
    pub fn take(&mut self, harmful: bool, size: usize) -> Vec<u32> {
        self.lanes[usize::from(!harmful)].take(size)
    }

    /// Counts `n` more observed outcomes (kept in the state, for inspection).
    pub fn observe(&mut self, n: usize) {
        self.observed += n as u64;
    }

    /// The saved text, starting with `tag`.
    pub fn save(&self, tag: &str) -> String {
        let [h, b] = &self.lanes;
        format!(
            "{tag} rng={} observed={} harmful={} benign={}",
            self.rng_seed,
            self.observed,
            h.save(),
            b.save()
        )
    }

    /// Continues from a text written by [`Lanes::save`] with the same `tag`, or changes
    /// nothing: a state for another tag, rng seed or set of seeds is refused with the reason.
    pub fn load(&mut self, tag: &str, text: &str) -> Result<(), String> {
        let mut fields = crate::state::Fields::new(text, tag)?;
        let mut get = |key: &str| fields.get(key);
        let num = |v: &str, what: &str| {
            v.parse::<u64>().map_err(|_| format!("{what}: `{v}` is not a number"))
        };
        let rng = num(get("rng")?, "rng")?;
        let observed = num(get("observed")?, "observed")?;
        let saved = [get("harmful")?, get("benign")?];
        if !self.ready {
            return Err("load-state before init: call init with the run's seeds first".into());
        }
        if rng != self.rng_seed {
            return Err(format!("state is for rng seed {rng}, init was given {}", self.rng_seed));
        }
        let mut restored = self.lanes.clone();
        for (lane, text) in restored.iter_mut().zip(saved) {
            lane.restore(text)?;
        }
        self.lanes = restored;
        self.observed = observed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Lanes, Passes};

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
        assert_eq!(p.save(), "3+4:1:7");
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
        assert_eq!(b.save(), "10:1:10", "the state text of a one-tier lane is unchanged too");
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
        let mut tiers = Passes::new(3, 1, vec![(0..4).collect(), (4..9).collect()]);
        let err = tiers.restore("5+4:0:0").unwrap_err();
        assert_eq!(err, "state has 5+4 seeds in lane 1, init was given 4+5");
    }

    #[test]
    fn lanes_save_and_load_all_or_nothing() {
        let fresh = || Lanes::new(5, vec![(0..4).collect()], vec![vec![4], vec![5]]);
        let mut a = fresh();
        a.take(true, 3);
        a.take(false, 1);
        a.observe(2);
        let saved = a.save("t-v1");
        assert_eq!(saved, "t-v1 rng=5 observed=2 harmful=4:0:3 benign=1+1:0:1");
        let next = (a.take(true, 5), a.take(false, 3));
        let mut b = fresh();
        b.load("t-v1", &saved).unwrap();
        assert_eq!((b.take(true, 5), b.take(false, 3)), next);
        // A refused state changes nothing.
        let mut c = fresh();
        c.take(true, 1);
        let before = c.save("t-v1");
        let err = c.load("t-v1", "t-v1 rng=5 observed=0 harmful=4:0:1 benign=2:0:0").unwrap_err();
        assert_eq!(err, "state has 2 seeds in lane 1, init was given 1+1");
        assert_eq!(c.save("t-v1"), before);
        assert!(c.load("t-v1", "t-v1 rng=6 observed=0 harmful=4:0:1 benign=1+1:0:0").is_err());
        assert!(c.load("u-v1", &saved).is_err());
        let err = Lanes::default().load("t-v1", &saved).unwrap_err();
        assert!(err.contains("before init"), "{err}");
    }

    #[test]
    fn an_empty_lane_gives_empty_batches() {
        let mut p = Passes::new(1, 0, vec![vec![], vec![]]);
        assert!(p.is_empty());
        assert!(p.take(4).is_empty());
    }
}
