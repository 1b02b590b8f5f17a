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
//!
//! When to use it: when a defender starts refusing harmless orders. It is a dial, not a free
//! lunch: on the CPU demo (SmolLM2-135M, 4 LoRA updates of 32 + 32 seeds) it kept benign
//! compliance at the base level (0, -3, 0 points over three training seeds) but the refusal
//! gain fell from +22.3 to +7.7 points (BENCHMARKS.md "CPU demo", session 9).

use advgame_plugin_sdk::curriculum::{Category, Curriculum, Outcome, PluginInfo, Seed};
use advgame_plugin_sdk::schedule::Lanes;
use std::cell::RefCell;
use std::collections::HashSet;

/// Version tag of the saved state; `load-state` refuses anything else. The benign lane's
/// sizes in it (`benign=LOOKALIKES+OTHERS:epoch:pos`) catch a state restored against seeds
/// that split differently.
const STATE_TAG: &str = "lookalike-v1";

thread_local! {
    static STATE: RefCell<Lanes> = RefCell::new(Lanes::default());
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
        STATE.with(|s| *s.borrow_mut() = Lanes::new(rng_seed, vec![harmful], vec![alike, rest]));
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
