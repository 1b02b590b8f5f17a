//! Write `advgame:plugin@0.1.0` components in Rust: one `impl` and one macro.
//!
//! Enable exactly one world feature (`rubric`, `judge` or `curriculum`), implement the
//! world's trait and export it:
//!
//! ```ignore
//! use advgame_plugin_sdk::rubric::{Chat, Failure, PluginInfo, Rubric, ScoreRange};
//! struct Mine;
//! impl Rubric for Mine { /* info, range, pairwise-prompt, ... */ }
//! advgame_plugin_sdk::export_rubric!(Mine);
//! ```
//!
//! Build with `cargo build --release --target wasm32-unknown-unknown` and encode the core
//! module into a component (`scripts/build-plugins.sh` does both). The result imports only
//! `advgame:plugin/host` (and, for judges, `rubric-registry`): no WASI, no other capability.
//!
//! World-independent helpers: [`format`] (strict score-tag parsing shared by the rubrics)
//! and [`prompt`] (the common layout of rubric prompts).

pub mod format;
pub mod prompt;

#[cfg(any(
    all(feature = "rubric", feature = "judge"),
    all(feature = "rubric", feature = "curriculum"),
    all(feature = "judge", feature = "curriculum"),
))]
compile_error!(
    "enable exactly one of the features `rubric`, `judge`, `curriculum`: a component has one world"
);

/// The `rubric-plugin` world: export [`rubric::Rubric`] with [`export_rubric!`].
#[cfg(feature = "rubric")]
pub mod rubric {
    wit_bindgen::generate!({
        world: "rubric-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_rubric",
        default_bindings_module: "advgame_plugin_sdk::rubric",
    });
    pub use self::advgame::plugin::host;
    pub use self::advgame::plugin::types::{Chat, Failure, PluginInfo, ScoreRange};
    pub use self::exports::advgame::plugin::rubric::Guest as Rubric;
}

/// The `judge-plugin` world: export [`judge::Judge`] with [`export_judge!`].
#[cfg(feature = "judge")]
pub mod judge {
    wit_bindgen::generate!({
        world: "judge-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_judge",
        default_bindings_module: "advgame_plugin_sdk::judge",
    });
    pub use self::advgame::plugin::host;
    pub use self::advgame::plugin::rubric_registry as registry;
    pub use self::advgame::plugin::types::{Chat, Failure, PluginInfo};
    pub use self::exports::advgame::plugin::judge::{
        Assessment, Comparison, Guest as Judge, ScoredPair,
    };
}

/// The `curriculum-plugin` world: export [`curriculum::Curriculum`] with
/// [`export_curriculum!`].
#[cfg(feature = "curriculum")]
pub mod curriculum {
    wit_bindgen::generate!({
        world: "curriculum-plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "export_curriculum",
        default_bindings_module: "advgame_plugin_sdk::curriculum",
    });
    pub use self::advgame::plugin::host;
    pub use self::advgame::plugin::types::{Category, PluginInfo, Seed};
    pub use self::exports::advgame::plugin::curriculum::{Guest as Curriculum, Outcome};
}
