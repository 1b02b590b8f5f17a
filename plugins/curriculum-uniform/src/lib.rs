//! Curriculum `uniform`: the paper's schedule. Each category's seeds are visited in a
//! shuffled order, one batch after another; when a category is exhausted it is reshuffled
//! (a new epoch). Fully determined by the rng seed: the permutation of epoch `e` is derived
//! from `(rng_seed, category, e)` (`advgame_plugin_sdk::schedule`), so the saved state is
//! just two cursors.

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed};
use advgame_plugin_sdk::schedule::Passes;
use std::cell::RefCell;

/// Version tag of the saved state; `load-state` refuses anything else.
const STATE_TAG: &str = "uniform-v1";

#[derive(Debug, Default)]
struct State {
    rng_seed: u64,
    /// Harmful, benign: one tier each.
    lanes: [Passes; 2],
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
        let mut members: [Vec<u32>; 2] = Default::default();
        for (i, seed) in seeds.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "more than 2^32 seeds".to_string())?;
            members[lane_index(seed.category)].push(i);
        }
        let [h, b] = members;
        let lanes = [Passes::new(rng_seed, 0, vec![h]), Passes::new(rng_seed, 1, vec![b])];
        STATE.with(|s| *s.borrow_mut() = State { rng_seed, lanes, observed: 0, ready: true });
        Ok(())
    }

    fn next_batch(category: Category, size: u32) -> Vec<u32> {
        STATE.with(|s| s.borrow_mut().lanes[lane_index(category)].take(size as usize))
    }

    fn observe(outcomes: Vec<Outcome>) {
        STATE.with(|s| s.borrow_mut().observed += outcomes.len() as u64);
    }

    fn save_state() -> Vec<u8> {
        STATE.with(|s| {
            let st = s.borrow();
            let [h, b] = &st.lanes;
            format!(
                "{STATE_TAG} rng={} observed={} harmful={} benign={}",
                st.rng_seed,
                st.observed,
                h.save(),
                b.save()
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
            Passes::restore_all(&mut st.lanes, &lanes)?;
            st.observed = observed;
            Ok(())
        })
    }
}

advgame_plugin_sdk::curriculum::export_curriculum!(Uniform);
