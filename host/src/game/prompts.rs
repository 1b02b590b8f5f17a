//! The attacker's instructions: one text file per seed category with a `{seed}` slot, plus an
//! optional assistant prefill (e.g. `<think>`) that starts the answer in the expected format.
//! Kept as files so a run can swap them without recompiling.

use std::path::Path;

use anyhow::{Context, bail};

use crate::judging::{Category, Seed};
use crate::llm::ChatRequest;

/// The placeholder replaced by the seed text.
pub const SLOT: &str = "{seed}";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackerPrompts {
    pub harmful: String,
    pub benign: String,
    pub prefill: Option<String>,
}

impl AttackerPrompts {
    pub fn load(harmful: &Path, benign: &Path, prefill: Option<String>) -> anyhow::Result<Self> {
        let read = |p: &Path| -> anyhow::Result<String> {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read attacker instruction {}", p.display()))?;
            if !text.contains(SLOT) {
                bail!("{}: the attacker instruction has no {SLOT} placeholder", p.display());
            }
            Ok(text.trim_end().to_string())
        };
        Ok(Self { harmful: read(harmful)?, benign: read(benign)?, prefill })
    }

    /// The attacker's chat request for one seed.
    pub fn request(&self, seed: &Seed) -> ChatRequest {
        let template = match seed.category {
            Category::Harmful => &self.harmful,
            Category::Benign => &self.benign,
        };
        ChatRequest {
            system: None,
            user: template.replace(SLOT, seed.text.trim()),
            prefill: self.prefill.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_slot_and_keeps_the_prefill() {
        let p = AttackerPrompts {
            harmful: "Rewrite: {seed}".into(),
            benign: "Probe: {seed}".into(),
            prefill: Some("<think>".into()),
        };
        let s = Seed { id: "1".into(), category: Category::Benign, text: " bake bread ".into() };
        let r = p.request(&s);
        assert_eq!(r.user, "Probe: bake bread");
        assert_eq!(r.prefill.as_deref(), Some("<think>"));
    }

    #[test]
    fn shipped_instructions_load() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/prompts");
        let p = AttackerPrompts::load(
            &root.join("attacker_harmful.txt"),
            &root.join("attacker_benign.txt"),
            Some("<think>".into()),
        )
        .unwrap();
        assert!(p.harmful.contains(SLOT) && p.benign.contains(SLOT));
    }
}
