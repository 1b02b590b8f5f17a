//! A loaded curriculum plugin behind the [`Curriculum`] facade. Batches are validated
//! (size, index range, category); the plugin's state is snapshotted after every change so a
//! replacement instance (after a trap) is restored to exactly where the old one was.
//!
//! Every call answers `Result<_, Failure>`: a trap, deadline or budget overrun comes from the
//! sandbox already counted; what the host finds wrong afterwards (a refusal by the plugin, a
//! batch of the wrong size or category, an oversized state) is counted here under its
//! [`FailureKind`], so [`CurriculumPlugin::failures`] holds every failure by kind.

#![warn(missing_docs)]

use super::bindings::curriculum::CurriculumPlugin as Bindings;
use super::bindings::curriculum::exports::advgame::plugin::curriculum as wit;
use super::bindings::{WitCategory, WitSeed};
use super::engine::PluginEngine;
use super::identity::WorldKind;
use super::load::LoadError;
use super::open::{adopt_info, open};
use super::sandbox::{Sandbox, sandbox_accessors};
use crate::judging::{Category, Curriculum, Failure, FailureKind, Outcome, Seed};
use std::path::Path;

/// A curriculum component in its sandbox, with what it needs to bring a replacement instance
/// (after a trap) back to the same state: the `init` arguments and the last state snapshot
/// (after a restart, the next call re-initialises the fresh instance and restores them).
pub struct CurriculumPlugin {
    sandbox: Sandbox<Bindings>,
    /// The seeds and rng seed given to `init`, to re-initialise a replacement instance.
    seeds: Vec<WitSeed>,
    rng_seed: u64,
    initialised: bool,
    /// The state after the last successful call.
    snapshot: Option<Vec<u8>>,
    /// `sandbox.instances` when the current instance was last brought up to date.
    synced_instance: u64,
}

impl std::fmt::Debug for CurriculumPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurriculumPlugin").field("plugin", &self.sandbox.identity.label()).finish()
    }
}

fn wit_category(c: Category) -> WitCategory {
    match c {
        Category::Harmful => WitCategory::Harmful,
        Category::Benign => WitCategory::Benign,
    }
}

impl CurriculumPlugin {
    /// Loads a `curriculum-plugin` component from `path`; `config` is what its
    /// `host.config()` returns.
    ///
    /// # Errors
    /// A [`LoadError`] when the file is not a curriculum component or its `info` fails.
    pub fn load(
        engine: &PluginEngine,
        path: &Path,
        config: Vec<(String, String)>,
    ) -> Result<Self, LoadError> {
        let mut sandbox: Sandbox<Bindings> =
            open(engine, path, WorldKind::Curriculum, config, |_| {})?;
        let info = sandbox.call("info", |b, s| b.advgame_plugin_curriculum().call_info(s));
        adopt_info(engine, &mut sandbox, info)?;
        let synced_instance = sandbox.instances;
        Ok(Self {
            sandbox,
            seeds: Vec::new(),
            rng_seed: 0,
            initialised: false,
            snapshot: None,
            synced_instance,
        })
    }

    sandbox_accessors!();

    /// A host-detected failure of `kind`, counted.
    fn err(&mut self, kind: FailureKind, message: String) -> Failure {
        self.sandbox.count(kind, 1);
        self.sandbox.fail(kind, message)
    }

    /// The failure of a call made out of order (before `init`): the host's mistake, so it is
    /// returned as [`FailureKind::Invalid`] input but not counted against the plugin.
    fn before_init(&self, call: &str) -> Result<(), Failure> {
        if self.initialised {
            Ok(())
        } else {
            Err(self.sandbox.fail(
                FailureKind::Invalid,
                format!("{call} before init: call init with the run's seeds first"),
            ))
        }
    }

    fn call_init(&mut self) -> Result<Result<(), String>, Failure> {
        let seeds = &self.seeds;
        let rng = self.rng_seed;
        self.sandbox.call("init", |b, s| b.advgame_plugin_curriculum().call_init(s, seeds, rng))
    }

    /// Brings a replacement instance back to the last snapshot.
    fn resync(&mut self) -> Result<(), Failure> {
        if self.sandbox.instances == self.synced_instance || !self.initialised {
            return Ok(());
        }
        if let Err(msg) = self.call_init()? {
            return Err(self.err(FailureKind::Invalid, format!("re-init after a restart: {msg}")));
        }
        if let Some(state) = self.snapshot.clone() {
            let r = self.sandbox.call("load-state", |b, s| {
                b.advgame_plugin_curriculum().call_load_state(s, &state)
            })?;
            if let Err(msg) = r {
                return Err(
                    self.err(FailureKind::Invalid, format!("restore after a restart: {msg}"))
                );
            }
        }
        self.synced_instance = self.sandbox.instances;
        Ok(())
    }

    fn snapshot(&mut self) -> Result<(), Failure> {
        let state = self
            .sandbox
            .call("save-state", |b, s| b.advgame_plugin_curriculum().call_save_state(s))?;
        let cap = self.sandbox.state().limits.max_state_bytes;
        if state.len() > cap {
            return Err(self.err(
                FailureKind::Oversize,
                format!("state of {} bytes is over the {cap}-byte cap", state.len()),
            ));
        }
        self.snapshot = Some(state);
        Ok(())
    }
}

impl Curriculum for CurriculumPlugin {
    fn init(&mut self, seeds: &[Seed], rng_seed: u64) -> Result<(), Failure> {
        self.seeds = seeds
            .iter()
            .map(|s| WitSeed {
                id: s.id.clone(),
                category: wit_category(s.category),
                text: s.text.clone(),
            })
            .collect();
        self.rng_seed = rng_seed;
        if let Err(msg) = self.call_init()? {
            return Err(self.err(FailureKind::Invalid, format!("init refused the seeds: {msg}")));
        }
        self.initialised = true;
        self.synced_instance = self.sandbox.instances;
        self.snapshot()
    }

    fn next_batch(&mut self, category: Category, size: u32) -> Result<Vec<u32>, Failure> {
        self.before_init("next_batch")?;
        self.resync()?;
        let cat = wit_category(category);
        let batch = self.sandbox.call("next-batch", |b, s| {
            b.advgame_plugin_curriculum().call_next_batch(s, cat, size)
        })?;
        let available = self.seeds.iter().filter(|s| s.category == cat).count();
        let want = if available == 0 { 0 } else { size as usize };
        if batch.len() != want {
            return Err(self.err(
                FailureKind::InvalidOutput,
                format!("next-batch returned {} indices, asked for {want}", batch.len()),
            ));
        }
        for &i in &batch {
            match self.seeds.get(i as usize) {
                Some(seed) if seed.category == cat => {}
                Some(_) => {
                    return Err(self.err(
                        FailureKind::InvalidOutput,
                        format!("next-batch returned seed {i}, which is not {category:?}"),
                    ));
                }
                None => {
                    return Err(self.err(
                        FailureKind::InvalidOutput,
                        format!(
                            "next-batch returned index {i}, but there are {} seeds",
                            self.seeds.len()
                        ),
                    ));
                }
            }
        }
        self.snapshot()?;
        Ok(batch)
    }

    fn observe(&mut self, outcomes: &[Outcome]) -> Result<(), Failure> {
        self.before_init("observe")?;
        self.resync()?;
        let wire: Vec<wit::Outcome> = outcomes
            .iter()
            .map(|o| wit::Outcome {
                seed_id: o.seed_id.clone(),
                attacker_reward: o.attacker_reward,
                defender_reward: o.defender_reward,
                faithful: o.faithful,
            })
            .collect();
        self.sandbox
            .call("observe", |b, s| b.advgame_plugin_curriculum().call_observe(s, &wire))?;
        self.snapshot()
    }

    fn save_state(&mut self) -> Result<Vec<u8>, Failure> {
        self.resync()?;
        self.snapshot()?;
        Ok(self.snapshot.clone().unwrap_or_default())
    }

    fn load_state(&mut self, state: &[u8]) -> Result<(), Failure> {
        self.before_init("load_state")?;
        self.resync()?;
        let r = self
            .sandbox
            .call("load-state", |b, s| b.advgame_plugin_curriculum().call_load_state(s, state))?;
        if let Err(msg) = r {
            return Err(
                self.err(FailureKind::Invalid, format!("load-state refused the state: {msg}"))
            );
        }
        self.snapshot = Some(state.to_vec());
        Ok(())
    }

    fn label(&self) -> String {
        self.sandbox.identity.label()
    }
}
