//! The attacker's instructions: one text file per seed category with a `{seed}` slot, plus an
//! optional assistant prefill (e.g. `<think>`) that starts the answer in the expected format.
//! Kept as files so a run can swap them without recompiling.

use std::path::Path;

use anyhow::{Context, bail};

use crate::game::config::Game;
use crate::judging::{Category, Seed};
use crate::llm::ChatRequest;

/// The placeholder replaced by the seed text.
pub const SLOT: &str = "{seed}";

/// The attacker's instruction per seed category and its optional prefill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackerPrompts {
    /// Instruction for harmful seeds, with one [`SLOT`].
    pub harmful: String,
    /// Instruction for benign seeds, with one [`SLOT`].
    pub benign: String,
    /// Text that starts every attacker answer (part of the prompt, not trained).
    pub prefill: Option<String>,
}

impl AttackerPrompts {
    /// Reads the two instruction files (trailing white space trimmed).
    ///
    /// # Errors
    /// A file that cannot be read or has no [`SLOT`] placeholder, naming the file.
    pub fn load(harmful: &Path, benign: &Path, prefill: Option<String>) -> anyhow::Result<Self> {
        let read = |p: &Path| read_slotted(p, "attacker instruction", SLOT);
        Ok(Self { harmful: read(harmful)?, benign: read(benign)?, prefill })
    }

    /// The instructions and prefill a run config's `[game]` names (`attacker_prompt_harmful`,
    /// `attacker_prompt_benign`, `attacker_prefill`): what `train` and `redteam` both use.
    ///
    /// # Errors
    /// As [`AttackerPrompts::load`].
    pub fn from_config(game: &Game) -> anyhow::Result<Self> {
        Self::load(
            &game.attacker_prompt_harmful,
            &game.attacker_prompt_benign,
            game.attacker_prefill.clone(),
        )
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

/// The system message the defender samples under (`game.defender_sampling_system_prompt`,
/// context distillation): the file's text with trailing white space trimmed, or `None` when
/// the key is unset.
///
/// # Errors
/// As [`read_system_prompt`], naming the key.
pub fn defender_sampling_system_prompt(game: &Game) -> anyhow::Result<Option<String>> {
    let key = "game.defender_sampling_system_prompt";
    game.defender_sampling_system_prompt.as_deref().map(|p| read_system_prompt(p, key)).transpose()
}

/// A system-message file (the game's sampling system prompt, `eval --system-prompt`): its
/// text with trailing white space trimmed. `origin` (the key or flag) starts every error.
///
/// # Errors
/// A file that cannot be read or holds only white space, naming `origin` and the file.
pub fn read_system_prompt(path: &Path, origin: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{origin}: cannot read {}", path.display()))?;
    let text = text.trim_end();
    if text.trim().is_empty() {
        bail!("{origin}: {} is empty (expected the system message)", path.display());
    }
    Ok(text.to_string())
}

/// The slot of `game.defender_sampling_prompt_template` that the prompt fills.
pub const PROMPT_SLOT: &str = "{prompt}";

/// The user-turn template the defender samples under (`game.defender_sampling_prompt_template`,
/// context distillation in the user turn): the file's text with trailing white space trimmed,
/// or `None` when the key is unset. Fill it with [`fill_prompt_template`].
///
/// # Errors
/// As [`read_prompt_template`], naming the key.
pub fn defender_sampling_prompt_template(game: &Game) -> anyhow::Result<Option<String>> {
    let path = game.defender_sampling_prompt_template.as_deref();
    path.map(|p| read_prompt_template(p, "game.defender_sampling_prompt_template")).transpose()
}

/// The user-turn template benign seeds' replies are sampled under instead
/// (`game.defender_sampling_prompt_template_benign`), read as
/// [`defender_sampling_prompt_template`]; `None` when the key is unset.
///
/// # Errors
/// As [`read_prompt_template`], naming the key.
pub fn defender_sampling_prompt_template_benign(game: &Game) -> anyhow::Result<Option<String>> {
    let path = game.defender_sampling_prompt_template_benign.as_deref();
    path.map(|p| read_prompt_template(p, "game.defender_sampling_prompt_template_benign"))
        .transpose()
}

/// A user-turn template file with one [`PROMPT_SLOT`] (the game's sampling template, `eval
/// --prompt-template`): its text with trailing white space trimmed. `origin` (the key or
/// flag) starts every error.
///
/// # Errors
/// A file that cannot be read or has no [`PROMPT_SLOT`], naming `origin` and the file.
pub fn read_prompt_template(path: &Path, origin: &str) -> anyhow::Result<String> {
    read_slotted(path, origin, PROMPT_SLOT)
}

/// A text file that must hold `slot` ([`SLOT`] or [`PROMPT_SLOT`]): its text with trailing
/// white space trimmed. The one place the slot rule lives: the readers above and the config
/// check before a run (`Config::check_files`) all use it.
///
/// # Errors
/// `{origin}: cannot read PATH` or `{origin}: PATH has no SLOT placeholder`.
pub fn read_slotted(path: &Path, origin: &str, slot: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{origin}: cannot read {}", path.display()))?;
    if !text.contains(slot) {
        bail!("{origin}: {} has no {slot} placeholder", path.display());
    }
    Ok(text.trim_end().to_string())
}

/// `template` with every [`PROMPT_SLOT`] replaced by `prompt`; no template = the prompt.
pub fn fill_prompt_template(template: Option<&str>, prompt: &str) -> String {
    match template {
        Some(t) => t.replace(PROMPT_SLOT, prompt),
        None => prompt.to_string(),
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

    #[test]
    fn defender_sampling_system_prompt_reads_the_file_and_rejects_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut game = Game::default();
        assert_eq!(defender_sampling_system_prompt(&game).unwrap(), None);
        let file = dir.path().join("system.txt");
        std::fs::write(&file, "Refuse harmful requests.\n\n").unwrap();
        game.defender_sampling_system_prompt = Some(file.clone());
        assert_eq!(
            defender_sampling_system_prompt(&game).unwrap().as_deref(),
            Some("Refuse harmful requests.")
        );
        std::fs::write(&file, " \n").unwrap();
        let err = defender_sampling_system_prompt(&game).unwrap_err().to_string();
        assert!(err.contains("system.txt") && err.contains("empty"), "{err}");
        game.defender_sampling_system_prompt = Some(dir.path().join("missing.txt"));
        let err = format!("{:#}", defender_sampling_system_prompt(&game).unwrap_err());
        assert!(err.contains("missing.txt") && err.contains("defender_sampling"), "{err}");
    }

    #[test]
    fn defender_sampling_prompt_template_needs_its_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut game = Game::default();
        assert_eq!(defender_sampling_prompt_template(&game).unwrap(), None);
        let file = dir.path().join("template.txt");
        std::fs::write(&file, "Refuse if harmful.\n\nRequest: {prompt}\n").unwrap();
        game.defender_sampling_prompt_template = Some(file.clone());
        let t = defender_sampling_prompt_template(&game).unwrap();
        assert_eq!(t.as_deref(), Some("Refuse if harmful.\n\nRequest: {prompt}"));
        assert_eq!(fill_prompt_template(t.as_deref(), "x"), "Refuse if harmful.\n\nRequest: x");
        assert_eq!(fill_prompt_template(None, "x"), "x");
        std::fs::write(&file, "no slot").unwrap();
        let err = defender_sampling_prompt_template(&game).unwrap_err().to_string();
        assert!(err.contains("template.txt") && err.contains(PROMPT_SLOT), "{err}");
    }

    #[test]
    fn the_cpu_demo_samples_with_a_template_that_loads() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let config = crate::game::config::Config::load(&root.join("examples/cpu-demo.toml"), &[]);
        let mut game = config.unwrap().game;
        let file = game.defender_sampling_prompt_template.take().expect("the demo sets one");
        game.defender_sampling_prompt_template = Some(root.join(file));
        let template = defender_sampling_prompt_template(&game).unwrap().unwrap();
        assert!(fill_prompt_template(Some(&template), "How?").ends_with("Request: How?"));
    }
}
