//! Curriculum `adaptive`: spends the attacker's time where attacks recently worked.
//!
//! Each seed keeps a score: an exponential moving average of the attacker rewards it earned
//! (`score <- decay * score + (1 - decay) * reward`), starting at an optimistic `prior` so
//! every seed gets tried early. A batch is drawn without replacement from the mixture
//! `(1 - epsilon) * softmax(score / temperature) + epsilon * uniform`: mostly seeds the
//! defender is still weak on, with a floor of exploration so no seed is starved and scores of
//! rarely drawn seeds can recover.
//!
//! Settings (`host.config`): `epsilon` (0.2), `temperature` (2.0), `decay` (0.5),
//! `prior` (10.0). Deterministic: the RNG is SplitMix64 seeded by the run's rng seed, and
//! its state, the scores and the draw counts are the saved state (scores as exact f32 bits).

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed, host};
use std::cell::RefCell;
use std::collections::HashMap;

mod policy;
use policy::{Params, State};

const STATE_TAG: &str = "adaptive-v1";

thread_local! {
    static STATE: RefCell<Option<State>> = const { RefCell::new(None) };
}

fn params() -> Params {
    let config = host::config();
    let get = |key: &str, default: f64| {
        config
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .unwrap_or(default)
    };
    Params {
        epsilon: get("epsilon", 0.2).clamp(0.0, 1.0),
        temperature: get("temperature", 2.0).max(1e-3),
        decay: get("decay", 0.5).clamp(0.0, 1.0),
        prior: get("prior", 10.0) as f32,
    }
}

struct Adaptive;

impl Curriculum for Adaptive {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "adaptive".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "samples seeds by recent attacker reward (EMA, softmax) with uniform \
                          exploration"
                .into(),
        }
    }

    fn init(seeds: Vec<Seed>, rng_seed: u64) -> Result<(), String> {
        let harmful: Vec<bool> = seeds.iter().map(|s| s.category == Category::Harmful).collect();
        let ids: HashMap<String, u32> =
            seeds.iter().enumerate().map(|(i, s)| (s.id.clone(), i as u32)).collect();
        let st = State::new(params(), harmful, ids, rng_seed);
        STATE.with(|s| *s.borrow_mut() = Some(st));
        Ok(())
    }

    fn next_batch(category: Category, size: u32) -> Vec<u32> {
        STATE.with(|s| {
            s.borrow_mut()
                .as_mut()
                .map(|st| st.next_batch(category == Category::Harmful, size as usize))
                .unwrap_or_default()
        })
    }

    fn observe(outcomes: Vec<Outcome>) {
        STATE.with(|s| {
            if let Some(st) = s.borrow_mut().as_mut() {
                for o in outcomes {
                    st.observe(&o.seed_id, o.attacker_reward);
                }
            }
        })
    }

    fn save_state() -> Vec<u8> {
        STATE.with(|s| s.borrow().as_ref().map(|st| st.save(STATE_TAG)).unwrap_or_default())
    }

    fn load_state(state: Vec<u8>) -> Result<(), String> {
        let text = std::str::from_utf8(&state).map_err(|_| "state is not UTF-8".to_string())?;
        STATE.with(|s| match s.borrow_mut().as_mut() {
            Some(st) => st.load(STATE_TAG, text),
            None => Err("load-state before init: call init with the run's seeds first".into()),
        })
    }
}

advgame_plugin_sdk::curriculum::export_curriculum!(Adaptive);
