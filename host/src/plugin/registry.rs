//! The run's rubrics by name. Judges reach them through the `rubric-registry` import; the
//! host forwards each call to that rubric's own sandboxed instance, so judges and rubrics
//! are swapped independently.

use super::rubric::RubricPlugin;
use crate::judging::{Failure, FailureKind};
use std::collections::BTreeMap;

/// The run's rubric plugins by name: what a judge's `rubric-registry` import calls reach.
/// Each rubric keeps its own sandboxed instance (own memory cap, own deadline).
#[derive(Debug, Default)]
pub struct RubricRegistry {
    rubrics: BTreeMap<String, RubricPlugin>,
}

impl RubricRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rubric under `name` (its own `info().name` when `None`). A second rubric under
    /// the same name is refused.
    pub fn insert(&mut self, name: Option<&str>, rubric: RubricPlugin) -> anyhow::Result<()> {
        let name = name.unwrap_or(rubric.name()).to_string();
        if let Some(existing) = self.rubrics.get(&name) {
            anyhow::bail!(
                "two rubrics named `{name}`: {} and {}",
                existing.identity().label(),
                rubric.identity().label()
            );
        }
        self.rubrics.insert(name, rubric);
        Ok(())
    }

    /// The loaded rubrics' names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.rubrics.keys().cloned().collect()
    }

    /// True when no rubric is loaded (heuristic judges need none).
    pub fn is_empty(&self) -> bool {
        self.rubrics.is_empty()
    }

    fn unknown(&self, name: &str) -> Failure {
        Failure {
            kind: FailureKind::Invalid,
            plugin: "rubric-registry".into(),
            message: format!(
                "no rubric named `{name}` is loaded (loaded: {})",
                if self.rubrics.is_empty() { "none".into() } else { self.names().join(", ") }
            ),
        }
    }

    /// The rubric named `name`, or an [`FailureKind::Invalid`] failure listing the loaded
    /// names.
    pub fn get(&self, name: &str) -> Result<&RubricPlugin, Failure> {
        self.rubrics.get(name).ok_or_else(|| self.unknown(name))
    }

    /// The rubric named `name` for a call (calls need `&mut`: they run in its store), or an
    /// [`FailureKind::Invalid`] failure listing the loaded names.
    pub fn get_mut(&mut self, name: &str) -> Result<&mut RubricPlugin, Failure> {
        if !self.rubrics.contains_key(name) {
            return Err(self.unknown(name));
        }
        Ok(self.rubrics.get_mut(name).expect("checked above"))
    }

    /// The rubric's score range, or 0-10 (the built-in scale) when no such rubric is loaded
    /// (heuristic judges name rubrics they score themselves).
    pub fn range_or_default(&self, name: &str) -> (f32, f32) {
        self.rubrics.get(name).map_or((0.0, 10.0), RubricPlugin::range)
    }

    /// Every rubric with its name, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &RubricPlugin)> {
        self.rubrics.iter().map(|(k, v)| (k.as_str(), v))
    }
}
