//! The steps every world shares when a plugin is opened: load and link the file, start the
//! first instance, and adopt the name and version the plugin reports through `info()`.

use super::bindings::PluginInfo;
use super::engine::PluginEngine;
use super::identity::{Identity, WorldKind};
use super::load::{self, LoadError};
use super::sandbox::{Sandbox, World};
use super::state::HostState;
use std::path::Path;
use std::sync::Arc;

/// Loads `path` as a `world` plugin and starts its first instance. `services` fills the
/// store's services (judge model, registry) before instantiation.
pub(crate) fn open<W: World>(
    engine: &PluginEngine,
    path: &Path,
    world: WorldKind,
    config: Vec<(String, String)>,
    services: impl FnOnce(&mut HostState),
) -> Result<Sandbox<W>, LoadError> {
    let linked = load::load(engine, path, Some(world))?;
    let counted = |err: LoadError| {
        engine.count_load_failure(err.reason());
        err
    };
    let pre = W::pre(linked.pre)
        .map_err(|e| counted(LoadError::Link { path: path.into(), message: format!("{e:#}") }))?;
    let identity = Arc::new(linked.identity);
    let mut state = HostState::new(identity.label(), config, engine.limits().clone());
    services(&mut state);
    Sandbox::new(engine, pre, identity, state)
        .map_err(|failure| counted(LoadError::Start { path: path.into(), failure }))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
}

/// Checks what `info()` returned and makes it the plugin's identity.
pub(crate) fn adopt_info<W: World>(
    engine: &PluginEngine,
    sandbox: &mut Sandbox<W>,
    info: Result<PluginInfo, crate::judging::Failure>,
) -> Result<(), LoadError> {
    let path = sandbox.identity.path.clone();
    let refuse = |message: String| {
        let err = LoadError::NotAPlugin { path: path.clone(), message };
        engine.count_load_failure(err.reason());
        err
    };
    let info = info.map_err(|failure| {
        engine.count_load_failure("start");
        LoadError::Start { path: path.clone(), failure }
    })?;
    if !valid_name(&info.name) {
        return Err(refuse(format!(
            "info() name `{}` must be 1-64 characters of a-z, 0-9, '-', '_', '.'",
            info.name.chars().take(80).collect::<String>()
        )));
    }
    if info.version.is_empty() || info.version.len() > 64 || info.description.len() > 4096 {
        return Err(refuse(
            "info() version must be 1-64 bytes and description at most 4096 bytes".into(),
        ));
    }
    let mut identity: Identity = (*sandbox.identity).clone();
    identity.name = info.name;
    identity.version = info.version;
    identity.description = info.description;
    sandbox.state_mut().label = identity.label();
    sandbox.identity = Arc::new(identity);
    Ok(())
}
