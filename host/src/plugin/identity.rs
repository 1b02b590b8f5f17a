//! Who a plugin is: the file it came from, its content hash, its world, and what it says
//! about itself. Every failure and log line carries [`Identity::label`].

use std::path::PathBuf;

/// The three kinds of plugin, one per WIT world.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldKind {
    /// `rubric-plugin`: exports `rubric` (prompts for and parses of judge-model outputs).
    Rubric,
    /// `judge-plugin`: exports `judge` (turns rubric-scored judgments into preferences); may
    /// import `rubric-registry` and the host's `generate`.
    Judge,
    /// `curriculum-plugin`: exports `curriculum` (which seeds the attacker sees next).
    Curriculum,
}

impl WorldKind {
    /// The three worlds, in the order the WIT file declares them.
    pub const ALL: [WorldKind; 3] = [Self::Rubric, Self::Judge, Self::Curriculum];

    /// The exported interface that identifies the world (`rubric`, `judge`, `curriculum`).
    pub fn interface(self) -> &'static str {
        match self {
            Self::Rubric => "rubric",
            Self::Judge => "judge",
            Self::Curriculum => "curriculum",
        }
    }

    /// The WIT world name.
    pub fn world(self) -> &'static str {
        match self {
            Self::Rubric => "rubric-plugin",
            Self::Judge => "judge-plugin",
            Self::Curriculum => "curriculum-plugin",
        }
    }
}

impl std::fmt::Display for WorldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.world())
    }
}

/// Identity of one loaded plugin.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Identity {
    /// The component file the plugin was loaded from.
    pub path: PathBuf,
    /// Hex sha256 of the component file: the plugin's identity for caches and lock files.
    pub sha256: String,
    /// The world its exports belong to.
    pub world: WorldKind,
    /// The `advgame:plugin` version it was built against (e.g. `0.1.0`).
    pub package_version: String,
    /// From the plugin's `info()`; the file stem until `info()` has been called.
    pub name: String,
    /// The plugin's own version string from `info()` (free-form, e.g. `0.1.0`).
    pub version: String,
    /// One line from `info()` saying what the plugin does.
    pub description: String,
    /// Component-level import and export names.
    pub imports: Vec<String>,
    /// Component-level export names (e.g. `advgame:plugin/judge@0.1.0`).
    pub exports: Vec<String>,
    /// Whether the compiled code came from the compile cache when it was loaded.
    pub from_cache: bool,
}

impl Identity {
    /// `name@version (sha256 prefix)`: how failures and logs name the plugin.
    pub fn label(&self) -> String {
        format!("{}@{} ({})", self.name, self.version, &self.sha256[..12.min(self.sha256.len())])
    }
}
