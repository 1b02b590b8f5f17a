//! From a file to a pre-linked component: read, recognise (component, not a core module or
//! random bytes), hash, compile (through the cache), tell the world from the exports, check
//! the package version and the imports, and link against the world's host functions.

use super::bindings;
use super::engine::PluginEngine;
use super::identity::{Identity, WorldKind};
use super::state::HostState;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, InstancePre, Linker};

/// The WIT package this host implements.
pub const PACKAGE: &str = "advgame:plugin";
/// The version of [`PACKAGE`] this host implements (`wit/` declares it). Plugins built
/// against any 0.1.x load; other versions are refused with [`LoadError::Version`].
pub const PACKAGE_VERSION: &str = "0.1.0";

/// Largest plugin file accepted (a Python component is ~20 MB).
const MAX_FILE_BYTES: u64 = 256 << 20;

/// Why a plugin file was refused. Its `Display` is `plugin PATH: PROBLEM`; callers that name
/// the plugin's role and name themselves use [`LoadError::path`] and [`LoadError::problem`]
/// (so the file is not named twice); `reason()` is the counter key.
#[derive(Debug)]
pub enum LoadError {
    /// The file could not be read, or is larger than 256 MiB.
    Io {
        /// The plugin file.
        path: PathBuf,
        /// The operating system's error, or the size limit that was exceeded.
        message: String,
    },
    /// The file does not start with the WebAssembly magic `00 61 73 6d`, or has an unknown
    /// layer in its header.
    NotWasm {
        /// The plugin file.
        path: PathBuf,
        /// What the first bytes are instead (e.g. `the file is empty`).
        found: String,
    },
    /// A core wasm module (header layer 0), not a component (layer 1).
    CoreModule {
        /// The plugin file.
        path: PathBuf,
    },
    /// wasmtime refused to compile the component.
    Compile {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's error chain.
        message: String,
    },
    /// A valid component that is not one plugin: it exports none or several of the
    /// `advgame:plugin` interfaces, or its `info()` is unusable (bad name or version).
    NotAPlugin {
        /// The plugin file.
        path: PathBuf,
        /// What was found instead.
        message: String,
    },
    /// The component exports an `advgame:plugin` interface of an incompatible version
    /// (anything but 0.1.x).
    Version {
        /// The plugin file.
        path: PathBuf,
        /// The full export name, e.g. `advgame:plugin/judge@0.2.0`.
        found: String,
    },
    /// The component imports something its world does not grant (sandbox rule: deny by
    /// default).
    Imports {
        /// The plugin file.
        path: PathBuf,
        /// The refused import names, comma-separated.
        names: String,
        /// What this world may import, for the message.
        allowed: String,
    },
    /// Linking against the host functions failed (e.g. an import's signature differs).
    Link {
        /// The plugin file.
        path: PathBuf,
        /// wasmtime's error chain.
        message: String,
    },
    /// A plugin of another kind than the config slot asks for (a rubric given as a judge).
    WrongWorld {
        /// The plugin file.
        path: PathBuf,
        /// The world the component's exports belong to.
        found: WorldKind,
        /// The world the caller asked for.
        expected: WorldKind,
    },
    /// Instantiating the component or its first call (`info()`) failed: a trap, deadline
    /// or memory cap while starting.
    Start {
        /// The plugin file.
        path: PathBuf,
        /// The typed failure of that call.
        failure: crate::judging::Failure,
    },
    /// The file's sha256 differs from the one the lock file pins.
    PinMismatch {
        /// The plugin file.
        path: PathBuf,
        /// The file's sha256, lowercase hex.
        found: String,
        /// The sha256 the lock pins, lowercase hex.
        pinned: String,
    },
}

impl std::error::Error for LoadError {}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: {}", self.path().display(), self.problem())
    }
}

impl LoadError {
    /// The plugin file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::NotWasm { path, .. }
            | Self::CoreModule { path }
            | Self::Compile { path, .. }
            | Self::NotAPlugin { path, .. }
            | Self::Version { path, .. }
            | Self::Imports { path, .. }
            | Self::Link { path, .. }
            | Self::WrongWorld { path, .. }
            | Self::Start { path, .. }
            | Self::PinMismatch { path, .. } => path,
        }
    }

    /// What is wrong with the file, without naming it (one line, lowercase start).
    pub fn problem(&self) -> String {
        match self {
            Self::Io { message, .. } => format!("cannot read: {message}"),
            Self::NotWasm { found, .. } => format!("not a WebAssembly file ({found})"),
            Self::CoreModule { .. } => format!(
                "is a core WebAssembly module, not a component; encode it with wit-component \
                 (scripts/build-plugins.sh does) against the {PACKAGE}@{PACKAGE_VERSION} WIT"
            ),
            Self::Compile { message, .. } => format!("invalid component: {message}"),
            Self::NotAPlugin { message, .. } => message.clone(),
            Self::Version { found, .. } => format!(
                "built for {found}, but this host implements {PACKAGE}@{PACKAGE_VERSION} (only \
                 0.1.x is compatible); rebuild it against this host's wit/"
            ),
            Self::Imports { names, allowed, .. } => {
                format!("imports {names} which this host does not provide ({allowed})")
            }
            Self::Link { message, .. } => format!("cannot link: {message}"),
            Self::WrongWorld { found, expected, .. } => format!(
                "is a {} plugin (world {found}), not a {} plugin",
                found.interface(),
                expected.interface()
            ),
            Self::Start { failure, .. } => failure.to_string(),
            Self::PinMismatch { found, pinned, .. } => {
                format!("sha256 is {found}, but the lock pins {pinned}; refusing to load it")
            }
        }
    }

    /// Stable snake_case key, used for the engine's load-failure counters.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Io { .. } => "io",
            Self::NotWasm { .. } => "not_wasm",
            Self::CoreModule { .. } => "core_module",
            Self::Compile { .. } => "compile",
            Self::NotAPlugin { .. } => "not_a_plugin",
            Self::Version { .. } => "version",
            Self::Imports { .. } => "imports",
            Self::Link { .. } => "link",
            Self::WrongWorld { .. } => "wrong_world",
            Self::Start { .. } => "start",
            Self::PinMismatch { .. } => "pin_mismatch",
        }
    }
}

/// The hex sha256 of a plugin file: its identity.
pub fn file_sha256(path: &Path) -> Result<String, LoadError> {
    let bytes = std::fs::read(path)
        .map_err(|e| LoadError::Io { path: path.into(), message: e.to_string() })?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// Refuses a file whose sha256 differs from the one a lock file pins (hex, any case).
pub fn verify_pin(engine: &PluginEngine, path: &Path, pinned: &str) -> Result<(), LoadError> {
    let found = file_sha256(path)?;
    if found.eq_ignore_ascii_case(pinned.trim()) {
        return Ok(());
    }
    let err = LoadError::PinMismatch { path: path.into(), found, pinned: pinned.trim().into() };
    engine.count_load_failure(err.reason());
    Err(err)
}

/// A compiled, recognised and linked plugin, ready to instantiate.
pub(crate) struct Linked {
    pub identity: Identity,
    pub pre: InstancePre<HostState>,
}

/// What a wasm binary's 8-byte header says it is.
fn recognise(path: &Path, bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let found = if bytes.is_empty() {
            "the file is empty".to_string()
        } else {
            let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            format!("starts with bytes {} instead of 00 61 73 6d", head.join(" "))
        };
        return Err(LoadError::NotWasm { path: path.into(), found });
    }
    // Bytes 4..8: version (u16 LE) and layer (u16 LE); layer 1 = component.
    let layer = u16::from_le_bytes([bytes[6], bytes[7]]);
    match layer {
        0 => Err(LoadError::CoreModule { path: path.into() }),
        1 => Ok(()),
        other => Err(LoadError::NotWasm {
            path: path.into(),
            found: format!("unknown WebAssembly layer {other}"),
        }),
    }
}

/// Splits `advgame:plugin/judge@0.1.0` into (`judge`, `0.1.0`).
fn package_item(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(rest.split_once('@').unwrap_or((rest, "")))
}

fn compatible(version: &str) -> bool {
    version == PACKAGE_VERSION
        || version.strip_prefix("0.1.").is_some_and(|p| p.parse::<u32>().is_ok())
}

/// Imports a world may have: our own interfaces and (deny-all) WASI.
fn allowed_import(world: WorldKind, name: &str) -> bool {
    if name.starts_with("wasi:") {
        return true;
    }
    match package_item(name) {
        Some(("types" | "host", _)) => true,
        Some(("rubric-registry", _)) => world == WorldKind::Judge,
        _ => false,
    }
}

fn allowed_list(world: WorldKind) -> String {
    let mut list = format!("{PACKAGE}/host@{PACKAGE_VERSION}");
    if world == WorldKind::Judge {
        list.push_str(&format!(", {PACKAGE}/rubric-registry@{PACKAGE_VERSION}"));
    }
    list.push_str(" and a deny-all wasi:*");
    list
}

/// The world's linker, built once per engine.
fn linker(engine: &PluginEngine, world: WorldKind) -> wasmtime::Result<&Linker<HostState>> {
    let slot = &engine.inner.linkers[WorldKind::ALL.iter().position(|w| *w == world).unwrap_or(0)];
    if let Some(linker) = slot.get() {
        return Ok(linker);
    }
    let built = build_linker(engine, world)?;
    Ok(slot.get_or_init(|| built))
}

fn build_linker(engine: &PluginEngine, world: WorldKind) -> wasmtime::Result<Linker<HostState>> {
    use wasmtime::component::HasSelf;
    let mut linker = Linker::new(engine.wasmtime());
    match world {
        WorldKind::Rubric => {
            bindings::rubric::RubricPlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?
        }
        WorldKind::Judge => {
            bindings::judge::JudgePlugin::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?
        }
        WorldKind::Curriculum => bindings::curriculum::CurriculumPlugin::add_to_linker::<
            _,
            HasSelf<_>,
        >(&mut linker, |s| s)?,
    }
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Ok(linker)
}

/// Reads and links a plugin file. `expected` refuses any other world.
pub(crate) fn load(
    engine: &PluginEngine,
    path: &Path,
    expected: Option<WorldKind>,
) -> Result<Linked, LoadError> {
    let result = load_inner(engine, path, expected);
    if let Err(err) = &result {
        engine.count_load_failure(err.reason());
        // The caller reports the error; a warning here would say it twice.
        tracing::debug!("{err}");
    }
    result
}

fn load_inner(
    engine: &PluginEngine,
    path: &Path,
    expected: Option<WorldKind>,
) -> Result<Linked, LoadError> {
    let io = |e: std::io::Error| LoadError::Io { path: path.into(), message: e.to_string() };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(LoadError::Io {
            path: path.into(),
            message: format!("{} bytes is over the {MAX_FILE_BYTES}-byte limit", meta.len()),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    recognise(path, &bytes)?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let wasm = engine.wasmtime();
    let compiled = match &engine.inner.cache {
        Some(cache) => cache.get_or_compile(wasm, &sha256, &bytes),
        None => Component::new(wasm, &bytes).map(|c| (c, false)),
    };
    let (component, cache_hit) = compiled
        .map_err(|e| LoadError::Compile { path: path.into(), message: format!("{e:#}") })?;

    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(wasm).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<String> = ty.exports(wasm).map(|(n, _)| n.to_string()).collect();

    // The world is told by which of our interfaces the component exports.
    let mut found = Vec::new();
    for name in &exports {
        if let Some((item, version)) = package_item(name)
            && let Some(world) = WorldKind::ALL.iter().find(|w| w.interface() == item)
        {
            found.push((*world, version.to_string(), name.clone()));
        }
    }
    let (world, version, export_name) = match found.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(LoadError::NotAPlugin {
                path: path.into(),
                message: format!(
                    "exports none of {PACKAGE}/rubric, /judge, /curriculum (it exports: {})",
                    if exports.is_empty() { "nothing".into() } else { exports.join(", ") }
                ),
            });
        }
        many => {
            let names: Vec<&str> = many.iter().map(|f| f.2.as_str()).collect();
            return Err(LoadError::NotAPlugin {
                path: path.into(),
                message: format!(
                    "exports several plugin interfaces ({}); a plugin has one world",
                    names.join(", ")
                ),
            });
        }
    };
    if !compatible(&version) {
        return Err(LoadError::Version { path: path.into(), found: export_name });
    }
    if let Some(expected) = expected
        && expected != world
    {
        return Err(LoadError::WrongWorld { path: path.into(), found: world, expected });
    }
    // Every import must be one of ours (at a compatible version) or WASI.
    let mut bad: Vec<&str> = Vec::new();
    for name in &imports {
        let version_ok = package_item(name).is_none_or(|(_, v)| compatible(v));
        if !allowed_import(world, name) || !version_ok {
            bad.push(name);
        }
    }
    if !bad.is_empty() {
        return Err(LoadError::Imports {
            path: path.into(),
            names: bad.join(", "),
            allowed: allowed_list(world),
        });
    }
    let link_err =
        |e: wasmtime::Error| LoadError::Link { path: path.into(), message: format!("{e:#}") };
    let linker = linker(engine, world).map_err(link_err)?;
    let pre = linker.instantiate_pre(&component).map_err(link_err)?;

    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let identity = Identity {
        path: path.into(),
        sha256,
        world,
        package_version: version,
        name: stem,
        version: "?".into(),
        description: String::new(),
        imports,
        exports,
        from_cache: cache_hit,
    };
    Ok(Linked { identity, pre })
}
