//! The wasmtime host for `advgame:plugin@0.1.0` components (the WIT lives in `wit/`).
//!
//! Loading: [`load`] reads a file, recognises a component (refusing core modules and random
//! bytes), hashes it, compiles it through the [`cache`], tells its world from its exports,
//! checks the package version and imports, and pre-links it ([`wasmtime::component::InstancePre`]).
//!
//! Running: every instance lives in its own store with a memory cap; every call gets a
//! guest-time deadline (epoch interruption) and optional fuel, and a host-service budget
//! (service calls, `generate` tokens, total wall-clock time: [`HostBudget`]). Any error is a
//! typed, counted [`crate::judging::Failure`] naming the plugin, and a trapped instance is
//! replaced before the next call. Outputs are checked: sizes, counts, finite in-range scores.
//!
//! Facades: [`JudgePlugin`] implements [`crate::judging::Judge`] (rubrics reached by name
//! through a [`RubricRegistry`], the judge model through any [`crate::llm::Generator`]);
//! [`CurriculumPlugin`] implements [`crate::judging::Curriculum`].

mod bindings;
mod budget;
mod cache;
pub mod conformance;
mod curriculum;
mod engine;
mod identity;
mod judge;
mod load;
mod open;
pub mod probe;
mod registry;
mod rubric;
mod sandbox;
mod services;
mod state;

pub use budget::{BudgetExceeded, HostBudget, Overspent};
pub use curriculum::CurriculumPlugin;
pub use engine::{
    EPOCH_TICK, EngineOptions, FailureCounts, Limits, PluginEngine, default_cache_dir,
    default_plugin_dir,
};
pub use identity::{Identity, WorldKind};
pub use judge::{Agreement, JudgeOptions, JudgePlugin};
pub use load::{LoadError, PACKAGE, PACKAGE_VERSION, file_sha256, verify_pin};
pub use registry::RubricRegistry;
pub use rubric::RubricPlugin;

/// Loads a plugin file far enough to identify it (any world), without instantiating it:
/// what `advgame-host plugin inspect` shows.
pub fn inspect(engine: &PluginEngine, path: &std::path::Path) -> Result<Identity, LoadError> {
    load::load(engine, path, None).map(|l| l.identity)
}
