//! Host-side bindings generated from `wit/` for the three worlds. The `types` and `host`
//! interfaces are generated once (in [`rubric`]) and shared, so one `Host` implementation
//! serves every world. The host services whose time is kept off the guest deadline
//! (`host.generate`, every `rubric-registry` function) are trappable: a call over its
//! host-service budget ends with a trap (see `super::budget`).

/// `rubric-plugin`.
pub mod rubric {
    wasmtime::component::bindgen!({
        world: "rubric-plugin",
        path: "../wit",
        imports: { "advgame:plugin/host.generate": trappable },
    });
}

/// `judge-plugin`.
pub mod judge {
    wasmtime::component::bindgen!({
        world: "judge-plugin",
        path: "../wit",
        imports: { "advgame:plugin/rubric-registry": trappable },
        with: {
            "advgame:plugin/types": super::rubric::advgame::plugin::types,
            "advgame:plugin/host": super::rubric::advgame::plugin::host,
        },
    });
}

/// `curriculum-plugin`.
pub mod curriculum {
    wasmtime::component::bindgen!({
        world: "curriculum-plugin",
        path: "../wit",
        with: {
            "advgame:plugin/types": super::rubric::advgame::plugin::types,
            "advgame:plugin/host": super::rubric::advgame::plugin::host,
        },
    });
}

pub use rubric::advgame::plugin::host::{Level, Sampling};
pub use rubric::advgame::plugin::types::{
    Category as WitCategory, Chat, Failure as WitFailure, PluginInfo, ScoreRange, Seed as WitSeed,
};
