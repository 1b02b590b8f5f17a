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
//! , [`prompt`] (the common layout of rubric prompts), [`rng`] (the plugins' one SplitMix64)
//! and [`state`] (reading curricula's saved text states).

pub mod format;
pub mod prompt;
pub mod rng;
pub mod state;

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

    /// Wraps a [`crate::prompt::Request`] into this world's `chat` record.
    pub fn chat(r: crate::prompt::Request) -> Chat {
        Chat { system: Some(r.system), user: r.user, prefill: r.prefill }
    }

    /// Whether the run config asks this rubric for reasoning before the scores
    /// (`reasoning = "true"`); off by default so small judges answer with the tags at once.
    pub fn reasoning() -> bool {
        // The config is fixed for the life of an instance: ask the host once.
        static REASONING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *REASONING.get_or_init(|| crate::prompt::flag(&host::config(), "reasoning", false))
    }

    /// How this rubric's prompts ask the judge to answer ([`reasoning`]), for the parsers:
    /// without reasoning the verdict's first tag is prefilled and reasoning tags in the output
    /// are plain text.
    pub fn answer() -> crate::format::Answer {
        if reasoning() { crate::format::Answer::Reasoned } else { crate::format::Answer::Direct }
    }
}

/// A whole rubric plugin from its criteria: a 0-10 rubric that uses the shared prompt
/// layout ([`prompt::pairwise`] / [`prompt::pointwise`]) and the strict score-tag parsers
/// ([`format`]). Rubrics that differ only in what they judge differ only in their
/// [`prompt::Criteria`]; anything more unusual implements [`rubric::Rubric`] by hand.
///
/// ```ignore
/// advgame_plugin_sdk::banded_rubric!(
///     Compliance, name: "compliance", description: "0-10: ...", criteria: CRITERIA
/// );
/// ```
#[cfg(feature = "rubric")]
#[macro_export]
macro_rules! banded_rubric {
    ($ty:ident, name: $name:expr, description: $description:expr, criteria: $criteria:expr $(,)?) => {
        struct $ty;

        impl $crate::rubric::Rubric for $ty {
            fn info() -> $crate::rubric::PluginInfo {
                $crate::rubric::PluginInfo {
                    name: ($name).into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    description: ($description).into(),
                }
            }
            fn range() -> $crate::rubric::ScoreRange {
                $crate::rubric::ScoreRange { min: 0.0, max: 10.0 }
            }
            fn pairwise_prompt(context: String, a: String, b: String) -> $crate::rubric::Chat {
                let reasoning = $crate::rubric::reasoning();
                $crate::rubric::chat($crate::prompt::pairwise(
                    &$criteria, &context, &a, &b, reasoning,
                ))
            }
            fn parse_pairwise(output: String) -> Result<(f32, f32), $crate::rubric::Failure> {
                let answer = $crate::rubric::answer();
                $crate::format::pair_in(&output, answer, 0.0, 10.0)
                    .map_err($crate::rubric::Failure::Parse)
            }
            fn pointwise_prompt(context: String, response: String) -> $crate::rubric::Chat {
                let reasoning = $crate::rubric::reasoning();
                $crate::rubric::chat($crate::prompt::pointwise(
                    &$criteria, &context, &response, reasoning,
                ))
            }
            fn parse_pointwise(output: String) -> Result<f32, $crate::rubric::Failure> {
                let answer = $crate::rubric::answer();
                $crate::format::score_in(&output, answer, "score", 0.0, 10.0)
                    .map_err($crate::rubric::Failure::Parse)
            }
        }

        $crate::rubric::export_rubric!($ty);
    };
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
