//! Curriculum `uniform`: the paper's schedule. Each category's seeds are visited in a
//! shuffled order, one batch after another; when a category is exhausted it is reshuffled
//! (a new epoch). Fully determined by the rng seed: the permutation of epoch `e` is derived
//! from `(rng_seed, category, e)`, so the saved state is just two cursors.

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed};
use advgame_plugin_sdk::rng;
use std::cell::RefCell;

/// Version tag of the saved state; `load-state` refuses anything else.
const STATE_TAG: &str = "uniform-v1";

#[derive(Debug, Default, Clone)]
struct Lane {
    /// Indices (into the `init` seeds) of this category, in seed-file order.
    members: Vec<u32>,
    epoch: u64,
    /// Position inside the current epoch's permutation.
    pos: usize,
    /// The current epoch's order (recomputed from `(rng_seed, lane, epoch)`).
    order: Vec<u32>,
}

#[derive(Debug, Default)]
struct State {
    rng_seed: u64,
    lanes: [Lane; 2],
    observed: u64,
    ready: bool,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
}

fn lane_index(category: Category) -> usize {
    match category {
        Category::Harmful => 0,
        Category::Benign => 1,
    }
}

fn shuffle(rng_seed: u64, lane: usize, epoch: u64, members: &[u32]) -> Vec<u32> {
    let mut order = members.to_vec();
    let mut s = rng_seed
        ^ (lane as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407)
        ^ epoch.wrapping_mul(0x9FB2_1C65_1E98_DF25);
    // Fisher-Yates with an unbiased bounded draw.
    for i in (1..order.len()).rev() {
        let j = rng::next_below(&mut s, (i + 1) as u64) as usize;
        order.swap(i, j);
    }
    order
}

struct Uniform;

impl Curriculum for Uniform {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "uniform".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "shuffled passes over each category's seeds, reshuffled every epoch"
                .into(),
        }
    }

    fn init(seeds: Vec<Seed>, rng_seed: u64) -> Result<(), String> {
        let mut st = State { rng_seed, ..State::default() };
        for (i, seed) in seeds.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "more than 2^32 seeds".to_string())?;
            st.lanes[lane_index(seed.category)].members.push(i);
        }
        for (l, lane) in st.lanes.iter_mut().enumerate() {
            lane.order = shuffle(rng_seed, l, 0, &lane.members);
        }
        st.ready = true;
        STATE.with(|s| *s.borrow_mut() = st);
        Ok(())
    }

    fn next_batch(category: Category, size: u32) -> Vec<u32> {
        STATE.with(|s| {
            let mut st = s.borrow_mut();
            let rng_seed = st.rng_seed;
            let l = lane_index(category);
            let lane = &mut st.lanes[l];
            let mut out = Vec::with_capacity(size as usize);
            if lane.members.is_empty() {
                return out;
            }
            while out.len() < size as usize {
                if lane.pos == lane.order.len() {
                    lane.epoch += 1;
                    lane.pos = 0;
                    lane.order = shuffle(rng_seed, l, lane.epoch, &lane.members);
                }
                out.push(lane.order[lane.pos]);
                lane.pos += 1;
            }
            out
        })
    }

    fn observe(outcomes: Vec<Outcome>) {
        STATE.with(|s| s.borrow_mut().observed += outcomes.len() as u64);
    }

    fn save_state() -> Vec<u8> {
        STATE.with(|s| {
            let st = s.borrow();
            let [h, b] = &st.lanes;
            format!(
                "{STATE_TAG} rng={} observed={} harmful={}:{}:{} benign={}:{}:{}",
                st.rng_seed,
                st.observed,
                h.members.len(),
                h.epoch,
                h.pos,
                b.members.len(),
                b.epoch,
                b.pos
            )
            .into_bytes()
        })
    }

    fn load_state(state: Vec<u8>) -> Result<(), String> {
        let text = std::str::from_utf8(&state).map_err(|_| "state is not UTF-8".to_string())?;
        let mut fields = advgame_plugin_sdk::state::Fields::new(text, STATE_TAG)?;
        let mut get = |key: &str| fields.get(key);
        let num = |v: &str, what: &str| {
            v.parse::<u64>().map_err(|_| format!("{what}: `{v}` is not a number"))
        };
        let rng = num(get("rng")?, "rng")?;
        let observed = num(get("observed")?, "observed")?;
        let lanes = [get("harmful")?, get("benign")?];
        STATE.with(|s| {
            let mut st = s.borrow_mut();
            if !st.ready {
                return Err("load-state before init: call init with the run's seeds first".into());
            }
            if rng != st.rng_seed {
                return Err(format!("state is for rng seed {rng}, init was given {}", st.rng_seed));
            }
            for (l, text) in lanes.iter().enumerate() {
                let parts: Vec<&str> = text.split(':').collect();
                let [n, epoch, pos] = parts.as_slice() else {
                    return Err(format!("lane `{text}`: expected count:epoch:pos"));
                };
                let (n, epoch, pos) = (num(n, "count")?, num(epoch, "epoch")?, num(pos, "pos")?);
                let lane = &mut st.lanes[l];
                if n != lane.members.len() as u64 {
                    return Err(format!(
                        "state has {n} seeds in lane {l}, init was given {}",
                        lane.members.len()
                    ));
                }
                if pos > n {
                    return Err(format!("position {pos} beyond {n} seeds"));
                }
                lane.epoch = epoch;
                lane.pos = pos as usize;
                lane.order = shuffle(rng, l, epoch, &lane.members);
            }
            st.observed = observed;
            Ok(())
        })
    }
}

advgame_plugin_sdk::curriculum::export_curriculum!(Uniform);
