//! Curriculum `lookalike`: benign seeds that open like harmful ones come first.
//!
//! A defender trained to refuse learns the form of the harmful seeds as much as their
//! content: most harmful seeds are orders ("Write ...", "Create ...", "Develop ..."), and
//! the benign answers a short run loses are orders of the same kind ("Generate a goodbye
//! message", "Create an AI chatbot"). Benign seeds that look like harmful ones are the
//! contrast that teaches the difference, as XSTest (Röttger et al. 2024) probes exaggerated
//! safety with safe prompts that resemble unsafe ones.
//!
//! Here a benign seed *looks alike* when its opening word (lowercased, punctuation trimmed)
//! opens at least one harmful seed of the run. Each benign pass draws the look-alikes first,
//! shuffled, then the other benign seeds, shuffled; harmful seeds are drawn exactly as the
//! `uniform` curriculum draws them. Over a long run every benign seed is still seen once per
//! pass; a short run sees look-alikes only. Deterministic and resumable like `uniform`
//! (`advgame_plugin_sdk::schedule`); no settings.

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed};
use advgame_plugin_sdk::schedule::Passes;
use std::cell::RefCell;
use std::collections::HashSet;

/// Version tag of the saved state; `load-state` refuses anything else.
const STATE_TAG: &str = "lookalike-v1";

#[derive(Debug, Default)]
struct State {
    rng_seed: u64,
    /// Harmful (one tier), benign (look-alikes, then the rest).
    lanes: [Passes; 2],
    lookalikes: usize,
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

/// The opening word of a seed: its first whitespace-separated word, lowercased, with
/// leading and trailing non-alphanumeric characters removed (`"Write:"` -> `write`).
fn opener(text: &str) -> String {
    let first = text.split_whitespace().next().unwrap_or("");
    first.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

struct Lookalike;

impl Curriculum for Lookalike {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "lookalike".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "benign seeds whose opening word opens a harmful seed come first in \
                          each shuffled pass; harmful seeds as `uniform`"
                .into(),
        }
    }

    fn init(seeds: Vec<Seed>, rng_seed: u64) -> Result<(), String> {
        let openers: HashSet<String> = seeds
            .iter()
            .filter(|s| s.category == Category::Harmful)
            .map(|s| opener(&s.text))
            .filter(|w| !w.is_empty())
            .collect();
        let (mut harmful, mut alike, mut rest) = (Vec::new(), Vec::new(), Vec::new());
        for (i, seed) in seeds.iter().enumerate() {
            let i = u32::try_from(i).map_err(|_| "more than 2^32 seeds".to_string())?;
            match seed.category {
                Category::Harmful => harmful.push(i),
                Category::Benign if openers.contains(&opener(&seed.text)) => alike.push(i),
                Category::Benign => rest.push(i),
            }
        }
        let lookalikes = alike.len();
        let lanes =
            [Passes::new(rng_seed, 0, vec![harmful]), Passes::new(rng_seed, 1, vec![alike, rest])];
        STATE.with(|s| {
            *s.borrow_mut() = State { rng_seed, lanes, lookalikes, observed: 0, ready: true }
        });
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
                "{STATE_TAG} rng={} observed={} lookalikes={} harmful={} benign={}",
                st.rng_seed,
                st.observed,
                st.lookalikes,
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
        let lookalikes = num(get("lookalikes")?, "lookalikes")?;
        let lanes = [get("harmful")?, get("benign")?];
        STATE.with(|s| {
            let mut st = s.borrow_mut();
            if !st.ready {
                return Err("load-state before init: call init with the run's seeds first".into());
            }
            if rng != st.rng_seed {
                return Err(format!("state is for rng seed {rng}, init was given {}", st.rng_seed));
            }
            if lookalikes != st.lookalikes as u64 {
                return Err(format!(
                    "state has {lookalikes} look-alike benign seeds, init found {}",
                    st.lookalikes
                ));
            }
            Passes::restore_all(&mut st.lanes, &lanes)?;
            st.observed = observed;
            Ok(())
        })
    }
}

advgame_plugin_sdk::curriculum::export_curriculum!(Lookalike);

#[cfg(test)]
mod tests {
    use super::opener;

    #[test]
    fn the_opener_is_the_first_word_lowercased_without_punctuation() {
        assert_eq!(opener("Write a poem"), "write");
        assert_eq!(opener("  \"Create:\" something"), "create");
        assert_eq!(opener("¿Qué es?"), "qué");
        assert_eq!(opener(""), "");
        assert_eq!(opener("..."), "");
    }
}
