//! Checks serde cannot express: value ranges and consistency ([`Config::check`], at parse
//! time) and the existence of every file the run reads ([`Config::check_files`], before a run).

use std::path::Path;

use super::{Config, ConfigError, ConfigErrorKind, Method};
use crate::judging::Category;

impl Config {
    /// Semantic checks serde cannot express (ranges, consistency).
    ///
    /// # Errors
    /// A [`ConfigErrorKind::OutOfRange`] [`ConfigError`] naming the first field out of its
    /// range and what the range is; any further ones are in its `more`. [`Config::parse`]
    /// adds the file and the line.
    pub fn check(&self) -> Result<(), ConfigError> {
        let g = &self.game;
        let a = &self.algorithm;
        let mut problems = Vec::new();
        let mut need = |ok: bool, field: &str, what: &str| {
            if !ok {
                problems.push(ConfigError::new(ConfigErrorKind::OutOfRange, what).field(field));
            }
        };
        need(g.attacks_per_seed >= 1, "game.attacks_per_seed", "must be at least 1");
        need(g.replies_per_prompt >= 1, "game.replies_per_prompt", "must be at least 1");
        need(g.attacker_max_tokens >= 1, "game.attacker_max_tokens", "must be at least 1");
        need(g.defender_max_tokens >= 1, "game.defender_max_tokens", "must be at least 1");
        need(
            g.temperature >= 0.0 && g.temperature.is_finite(),
            "game.temperature",
            "must be finite and >= 0",
        );
        // Each player's own temperature, when given (unset, it is `temperature`, checked
        // above: one bad value is one problem).
        need(
            g.attacker_temperature.is_none_or(|t| t >= 0.0 && t.is_finite()),
            "game.attacker_temperature",
            "must be finite and >= 0",
        );
        need(
            g.defender_temperature.is_none_or(|t| t >= 0.0 && t.is_finite()),
            "game.defender_temperature",
            "must be finite and >= 0",
        );
        need(
            (0.0..=1.0).contains(&g.direct_seed_share),
            "game.direct_seed_share",
            "must be in [0, 1]",
        );
        let categories = &g.defender_sampling_categories;
        need(
            !categories.is_empty(),
            "game.defender_sampling_categories",
            "must name harmful and/or benign (to sample every seed bare, unset \
             game.defender_sampling_system_prompt and game.defender_sampling_prompt_template)",
        );
        need(
            !categories.iter().enumerate().any(|(i, c)| categories[..i].contains(c)),
            "game.defender_sampling_categories",
            "must name each category at most once",
        );
        need(
            g.defender_sampling_prompt_template_benign.is_none()
                || categories.contains(&Category::Benign),
            "game.defender_sampling_prompt_template_benign",
            "is used only when game.defender_sampling_categories includes benign (add benign there, \
             or unset it: --set game.defender_sampling_prompt_template_benign=null)",
        );
        need(
            (0.0..=1.0).contains(&g.defender_sampling_share),
            "game.defender_sampling_share",
            "must be in [0, 1]",
        );
        need(g.top_p > 0.0 && g.top_p <= 1.0, "game.top_p", "must be in (0, 1]");
        need((0.0..=1.0).contains(&g.swap_share), "game.swap_share", "must be in [0, 1]");
        need(
            (0.0..=1.0).contains(&g.both_orders_share),
            "game.both_orders_share",
            "must be in [0, 1]",
        );
        need(a.beta > 0.0 && a.beta.is_finite(), "algorithm.beta", "must be finite and > 0");
        need(
            a.rpo_alpha >= 0.0 && a.rpo_alpha.is_finite(),
            "algorithm.rpo_alpha",
            "must be finite and >= 0",
        );
        need(
            a.benign_rejected_refusal.as_deref().is_none_or(|t| !t.trim().is_empty()),
            "algorithm.benign_rejected_refusal",
            "must be a non-empty text (or left out)",
        );
        need(
            a.benign_retain_alpha >= 0.0 && a.benign_retain_alpha.is_finite(),
            "algorithm.benign_retain_alpha",
            "must be finite and >= 0",
        );
        // Contradictions between two settings (pushed after the range checks' borrow ends).
        let mut conflicts = Vec::new();
        if a.benign_rejected_refusal.is_some() && a.method == Method::Grpo {
            conflicts.push(
                ConfigError::new(
                    ConfigErrorKind::OutOfRange,
                    "applies to the preference losses (algorithm.method = \"dpo\" or \"ipo\"), \
                     not to grpo: leave it out or choose dpo",
                )
                .field("algorithm.benign_rejected_refusal")
                .also("algorithm.method"),
            );
        }
        if a.benign_retain_size > 0 && a.benign_retain_alpha <= 0.0 {
            conflicts.push(
                ConfigError::new(
                    ConfigErrorKind::OutOfRange,
                    "sizes the retain set, which is used only when algorithm.benign_retain_alpha > 0: set that weight too, or leave this out",
                )
                .field("algorithm.benign_retain_size")
                .also("algorithm.benign_retain_alpha"),
            );
        }
        if a.rpo_alpha != 0.0 && a.method == Method::Grpo {
            conflicts.push(
                ConfigError::new(
                    ConfigErrorKind::OutOfRange,
                    "applies to the preference losses (algorithm.method = \"dpo\" or \"ipo\"), \
                     not to grpo: set it to 0 or choose dpo",
                )
                .field("algorithm.rpo_alpha")
                .also("algorithm.method"),
            );
        }
        need((0.0..=1.0).contains(&a.ema_decay), "algorithm.ema_decay", "must be in [0, 1]");
        need(a.lr >= 0.0 && a.lr.is_finite(), "algorithm.learning_rate", "must be finite and >= 0");
        need((0.0..1.0).contains(&a.adam_beta1), "algorithm.adam_beta1", "must be in [0, 1)");
        need((0.0..1.0).contains(&a.adam_beta2), "algorithm.adam_beta2", "must be in [0, 1)");
        need(
            a.adam_epsilon > 0.0 && a.adam_epsilon.is_finite(),
            "algorithm.adam_epsilon",
            "must be finite and > 0",
        );
        need((0.0..=1.0).contains(&a.final_lr_ratio), "algorithm.min_lr_rate", "must be in [0, 1]");
        need(a.grad_clip >= 0.0, "algorithm.max_grad_norm", "must be >= 0");
        need(a.seeds_per_category >= 1, "algorithm.seeds_per_category", "must be at least 1");
        need(
            a.benign_seeds_per_step.is_none_or(|n| n >= 1),
            "algorithm.benign_seeds_per_step",
            "must be at least 1",
        );
        need(
            a.grpo_ratio_cap >= 1.0 && a.grpo_ratio_cap.is_finite(),
            "algorithm.grpo_ratio_cap",
            "must be finite and >= 1",
        );
        need(a.micro_batch >= 1, "algorithm.per_device_train_batch_size", "must be at least 1");
        let fp = &self.plugins.failure_policy;
        need(
            (0.0..=1.0).contains(&fp.max_step_failure_share),
            "plugins.failure_policy.max_step_failure_share",
            "must be in [0, 1]",
        );
        let plugins = &self.plugins;
        for (field, name) in
            [("plugins.judge", &plugins.judge), ("plugins.curriculum", &plugins.curriculum)]
        {
            need(
                !name.trim().is_empty(),
                field,
                "must name a plugin (e.g. `uniform`), not be empty",
            );
        }
        let lora = &self.models.lora;
        need(lora.r >= 1, "models.lora.r", "must be at least 1");
        need(
            lora.lora_alpha.is_finite() && lora.lora_alpha > 0.0,
            "models.lora.lora_alpha",
            "must be > 0",
        );
        need(
            (0.0..1.0).contains(&lora.lora_dropout),
            "models.lora.lora_dropout",
            "must be in [0, 1)",
        );
        if let Err(e) = lora.config().targets() {
            let what = format!("{e:#}");
            let what = what.strip_prefix("target_modules: ").unwrap_or(&what).to_string();
            problems.push(
                ConfigError::new(ConfigErrorKind::InvalidValue, what)
                    .field("models.lora.target_modules"),
            );
        }
        problems.extend(conflicts);
        let mut problems = problems.into_iter();
        match problems.next() {
            None => Ok(()),
            Some(first) => Err(ConfigError { more: problems.collect(), ..first }),
        }
    }

    /// Checks that every file and folder the run reads exists, and that the instruction and
    /// template files hold their slots, naming the field otherwise.
    ///
    /// # Errors
    /// A [`ConfigErrorKind::MissingFile`] [`ConfigError`] naming the field and the path (and
    /// the working directory relative paths are resolved against); an
    /// [`ConfigErrorKind::InvalidValue`] one for an empty path, a remote judge model whose
    /// settings do not hold together, an instruction or template file without its slot
    /// (`{seed}`, `{prompt}`) or an empty sampling system prompt.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        let mut entries: Vec<(&str, &Path)> = vec![
            ("models.attacker", &self.models.attacker),
            ("models.defender", &self.models.defender),
            ("data.harmful", &self.data.harmful),
            ("data.benign", &self.data.benign),
            ("game.attacker_prompt_harmful", &self.game.attacker_prompt_harmful),
            ("game.attacker_prompt_benign", &self.game.attacker_prompt_benign),
        ];
        match &self.models.judge {
            Some(crate::openai::ModelRef::Local(p)) => entries.push(("models.judge", p)),
            Some(crate::openai::ModelRef::Remote(r)) => {
                r.validate("models.judge").map_err(remote_error)?;
                if let Some(t) = &r.tokenizer {
                    entries.push(("models.judge.tokenizer", t));
                }
            }
            None => {}
        }
        if self.models.adapter == super::Adapter::Lora {
            let l = &self.models.lora;
            for (field, p) in [
                ("models.lora.attacker_adapter", &l.attacker_adapter),
                ("models.lora.defender_adapter", &l.defender_adapter),
            ] {
                if let Some(p) = p {
                    entries.push((field, p.as_path()));
                }
            }
        }
        if let Some(p) = &self.game.defender_sampling_system_prompt {
            entries.push(("game.defender_sampling_system_prompt", p));
        }
        if let Some(p) = &self.game.defender_sampling_prompt_template {
            entries.push(("game.defender_sampling_prompt_template", p));
        }
        if let Some(p) = &self.game.defender_sampling_prompt_template_benign {
            entries.push(("game.defender_sampling_prompt_template_benign", p));
        }
        if let Some(p) = &self.data.harmful_val {
            entries.push(("data.harmful_val", p));
        }
        if let Some(p) = &self.data.benign_val {
            entries.push(("data.benign_val", p));
        }
        for &(field, path) in &entries {
            if path.as_os_str().is_empty() {
                return Err(ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    "is an empty path (expected a path; an optional setting is unset by leaving \
                     it out, or with --set KEY=null)",
                )
                .field(field));
            }
            if !path.exists() {
                let cwd = std::env::current_dir().map(|d| d.display().to_string());
                return Err(ConfigError::new(
                    ConfigErrorKind::MissingFile,
                    format!(
                        "{} does not exist (relative paths are resolved against the working \
                         directory {})",
                        path.display(),
                        cwd.unwrap_or_default()
                    ),
                )
                .field(field));
            }
        }
        self.check_prompt_files()
    }

    /// Checks that the attacker, the defender and a local judge model are Hugging Face model
    /// folders this host loads (`config.json` of a supported architecture), naming the field
    /// otherwise: what `train` plays ([`crate::model::ChatModel`]); the library's trainer is
    /// generic over policies, whose folders may hold anything. Call after
    /// [`Config::check_files`] (which says when a folder does not exist).
    ///
    /// # Errors
    /// An [`ConfigErrorKind::InvalidValue`] [`ConfigError`] naming the field: a file instead
    /// of a folder, a folder without `config.json` (a PEFT adapter folder is told where it
    /// goes), or a `config.json` that does not parse or names an unsupported architecture.
    pub fn check_model_folders(&self) -> Result<(), ConfigError> {
        let mut models = vec![
            ("models.attacker", self.models.attacker.as_path(), "attacker"),
            ("models.defender", self.models.defender.as_path(), "defender"),
        ];
        if let Some(crate::openai::ModelRef::Local(p)) = &self.models.judge {
            models.push(("models.judge", p.as_path(), "judge"));
        }
        for (field, dir, player) in models {
            check_model_dir(dir, player).map_err(|what| {
                ConfigError::new(ConfigErrorKind::InvalidValue, what).field(field)
            })?;
        }
        Ok(())
    }

    /// Resolves every plugin the run loads (the judge, the curriculum, each rubric role and
    /// validation rubric) to its component file, as `train` does before it loads them: a dry
    /// run (`--memory-plan`) then catches a misspelt plugin name too.
    ///
    /// # Errors
    /// The first name that resolves to no file ([`super::Plugins::path_of`]).
    pub fn check_plugin_files(&self) -> Result<(), ConfigError> {
        let p = &self.plugins;
        p.path_of("judge", &p.judge)?;
        p.path_of("curriculum", &p.curriculum)?;
        let v = &self.validation;
        for name in p.rubric_names().iter().chain(&v.harmful_rubrics).chain(&v.benign_rubrics) {
            p.path_of("rubric", name)?;
        }
        Ok(())
    }

    /// Reads the instruction and template files the run fills in, so that one without its
    /// slot (or an empty system prompt) stops the run before anything is made, at the field.
    fn check_prompt_files(&self) -> Result<(), ConfigError> {
        use crate::game::prompts::{PROMPT_SLOT, SLOT, read_slotted, read_system_prompt};
        let g = &self.game;
        let slotted = [
            ("game.attacker_prompt_harmful", Some(&g.attacker_prompt_harmful), SLOT),
            ("game.attacker_prompt_benign", Some(&g.attacker_prompt_benign), SLOT),
            (
                "game.defender_sampling_prompt_template",
                g.defender_sampling_prompt_template.as_ref(),
                PROMPT_SLOT,
            ),
            (
                "game.defender_sampling_prompt_template_benign",
                g.defender_sampling_prompt_template_benign.as_ref(),
                PROMPT_SLOT,
            ),
        ];
        // The readers' errors start with the origin given them, here the field.
        let invalid = |field: &str, e: anyhow::Error| {
            let text = format!("{e:#}");
            let what = text.strip_prefix(&format!("{field}: ")).unwrap_or(&text).to_string();
            ConfigError::new(ConfigErrorKind::InvalidValue, what).field(field)
        };
        for (field, path, slot) in slotted {
            if let Some(path) = path {
                read_slotted(path, field, slot).map_err(|e| invalid(field, e))?;
            }
        }
        if let Some(path) = &g.defender_sampling_system_prompt {
            let field = "game.defender_sampling_system_prompt";
            read_system_prompt(path, field).map_err(|e| invalid(field, e))?;
        }
        Ok(())
    }
}

/// Whether the existing path `dir` is a model folder this host can load: a folder (not a
/// file) with a `config.json` of a supported architecture. Read now, before any weight or
/// plugin loads, so that a wrong folder is the field's error and costs nothing. A PEFT
/// adapter folder (`adapter_config.json`, no `config.json`) is told where it goes.
fn check_model_dir(dir: &Path, player: &str) -> Result<(), String> {
    if dir.is_dir()
        && !dir.join("config.json").is_file()
        && crate::model::lora::is_adapter_dir(dir)
        && player != "judge"
    {
        return Err(format!(
            "{} is a PEFT adapter folder (adapter_config.json, no config.json): give its base \
             model here and the adapter as models.lora.{player}_adapter, with models.adapter = \
             \"lora\"",
            dir.display()
        ));
    }
    crate::model::causal_lm::check_model_folder(dir).map_err(|e| e.to_string())?;
    let config = dir.join("config.json");
    crate::model::ModelConfig::from_file(&config).map(|_| ()).map_err(|e| e.to_string())
}

/// `RemoteModel::validate`'s `field `F`: what` as a typed error about `F`.
fn remote_error(e: anyhow::Error) -> ConfigError {
    let text = format!("{e:#}");
    let split = text
        .strip_prefix("field `")
        .and_then(|rest| rest.split_once("`: "))
        .map(|(field, what)| (field.to_string(), what.to_string()));
    match split {
        Some((field, what)) => ConfigError::new(ConfigErrorKind::InvalidValue, what).field(field),
        None => ConfigError::new(ConfigErrorKind::InvalidValue, text).field("models.judge"),
    }
}
