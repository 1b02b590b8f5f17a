//! Curriculum `uniform`: the paper's schedule. Each category's seeds are visited in a
//! shuffled order, one batch after another; when a category is exhausted it is reshuffled
//! (a new epoch). Fully determined by the rng seed: the permutation of epoch `e` is derived
//! from `(rng_seed, category, e)` (`advgame_plugin_sdk::schedule`), so the saved state is
//! just two cursors.

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed};
use advgame_plugin_sdk::schedule::Lanes;
use std::cell::RefCell;

/// Version tag of the saved state; `load-state` refuses anything else.
const STATE_TAG: &str = "uniform-v1";

thread_local! {
    static STATE: RefCell<Lanes> = RefCell::new(Lanes::default());
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
        let (mut harmful, mut benign) = (Vec::new(), Vec::new());
        for (i, seed) in seeds.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "more than 2^32 seeds".to_string())?;
            match seed.category {
                Category::Harmful => harmful.push(i),
                Category::Benign => benign.push(i),
            }
        }
        STATE.with(|s| *s.borrow_mut() = Lanes::new(rng_seed, vec![harmful], vec![benign]));
        Ok(())
    }

    fn next_batch(category: Category, size: u32) -> Vec<u32> {
        STATE.with(|s| s.borrow_mut().take(category == Category::Harmful, size as usize))
    }

    fn observe(outcomes: Vec<Outcome>) {
        STATE.with(|s| s.borrow_mut().observe(outcomes.len()));
    }

    fn save_state() -> Vec<u8> {
        STATE.with(|s| s.borrow().save(STATE_TAG).into_bytes())
    }

    fn load_state(state: Vec<u8>) -> Result<(), String> {
        let text = std::str::from_utf8(&state).map_err(|_| "state is not UTF-8".to_string())?;
        STATE.with(|s| s.borrow_mut().load(STATE_TAG, text))
    }
}

advgame_plugin_sdk::curriculum::export_curriculum!(Uniform);
