//! `--set dotted.key=value`: command-line overrides of the run configuration.
//!
//! The value is read as a TOML value (`3`, `true`, `"x"`, `[0.9, 0.95]`); anything that does
//! not parse as one is taken as a bare string, so paths need no quotes (but text that opens
//! with a quote and does not parse is an error, not a string with quotes in it). Two words are not
//! strings: `null` and `none` (any case, unquoted), what people type to *unset* an optional
//! field (TOML has no null). They set an optional field to "none" (no harmful validation
//! file, no attacker prefill); on a field that is not optional they are an error that names
//! the field. The literal text needs quotes: `--set 'game.attacker_prefill="null"'`.
//!
//! A value of the wrong type is never coerced (`--set output.name=2024` is the integer 2024,
//! refused for a text field with the quoting fix), so one `--set` means the same TOML value
//! wherever it lands. Old key names (see [`super::RENAMED`]) are accepted and mean the new key.

use super::{Config, ConfigError, ConfigErrorKind, RENAMED, words};

/// A [`ConfigErrorKind::BadOverride`] about the item `item`.
fn bad(item: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::BadOverride, message).from_set(item)
}

/// The `--set` item that passes `raw` to `key` as text: `--set 'key="raw"'`.
fn as_text(key: &str, raw: &str) -> String {
    format!("--set '{key}=\"{raw}\"'")
}

/// One parsed `--set` item.
#[derive(Debug, Clone)]
pub(super) struct Override {
    /// The item as the user typed it, for error messages.
    item: String,
    /// The key's segments, old names replaced by the current ones.
    key: Vec<String>,
    /// The value; `None` unsets the field.
    value: Option<toml::Value>,
}

/// The words that unset a field (compared case-insensitively, unquoted only).
const NULL_WORDS: [&str; 2] = ["null", "none"];

impl Override {
    /// Parses `dotted.key=value` (see the module docs).
    pub(super) fn parse(item: &str) -> Result<Self, ConfigError> {
        let (key, raw) =
            item.split_once('=').ok_or_else(|| bad(item, "expected dotted.key=value"))?;
        let (key, raw) = (key.trim(), raw.trim());
        if key.is_empty() || key.split('.').any(|s| s.trim().is_empty()) {
            return Err(bad(item, "empty key segment"));
        }
        if raw.is_empty() {
            return Err(bad(
                item,
                format!(
                    "no value; write {key}=null to unset an optional field, or {key}='\"\"' \
                     for empty text"
                ),
            ));
        }
        let value = if NULL_WORDS.iter().any(|w| raw.eq_ignore_ascii_case(w)) {
            None
        } else {
            Some(match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
                Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.into())),
                // A whole number TOML cannot hold is not meant as text.
                Err(_) if is_whole_number(raw) => {
                    return Err(bad(
                        item,
                        format!(
                            "`{raw}` is beyond TOML's whole numbers (64 bits: at most {}); as \
                             text: {}",
                            i64::MAX,
                            as_text(key, raw)
                        ),
                    )
                    .field(key));
                }
                // So is a decimal number beyond f64 (`1e400`, which TOML refuses to round).
                Err(_)
                    if words::is_unreadable_number(raw)
                        && raw.parse::<f64>().is_ok_and(f64::is_infinite) =>
                {
                    return Err(bad(
                        item,
                        format!(
                            "`{raw}` is beyond TOML's floating-point numbers (64 bits: at most \
                             about {:e}); as text: {}",
                            f64::MAX,
                            as_text(key, raw)
                        ),
                    )
                    .field(key));
                }
                // And `.5` or `1.`, numbers in most languages but not in TOML.
                Err(_) if words::is_unreadable_number(raw) => {
                    let message = words::unreadable_number(raw);
                    return Err(
                        bad(item, format!("{message}; as text: {}", as_text(key, raw))).field(key)
                    );
                }
                // A list or inline table that does not parse is not meant as text either.
                Err(e) if raw.starts_with(['[', '{']) => {
                    let number =
                        raw.split(words::ends_token).find(|w| words::is_unreadable_number(w));
                    let message = match number {
                        Some(n) => words::unreadable_number(n),
                        None => format!(
                            "`{raw}` opens a TOML {} but is not one: {}",
                            if raw.starts_with('[') { "list" } else { "inline table" },
                            super::error::one_line(e.message())
                        ),
                    };
                    return Err(bad(item, message).field(key));
                }
                // Text that opens with a quote was meant as a TOML string; taken bare, the
                // quotes would become part of the value (`'I'm sorry'`: TOML's single-quoted
                // strings cannot hold an apostrophe).
                Err(_) if raw.starts_with(['\'', '"']) => {
                    return Err(bad(
                        item,
                        format!(
                            "{raw} opens with a quote but is not one TOML string (a \
                             single-quoted string cannot hold an apostrophe, and a quote must \
                             be closed); write the text in double quotes, {key}=\"I'm ...\", \
                             or bare, without quotes"
                        ),
                    ));
                }
                Err(_) => toml::Value::String(raw.into()),
            })
        };
        let mut key: Vec<String> = key.split('.').map(|s| s.trim().to_string()).collect();
        canonical_key(&mut key);
        if value.is_none() && key == ["algorithm", "betas"] {
            return Err(ConfigError::new(
                ConfigErrorKind::NotOptional,
                "the old name of `algorithm.adam_beta1` and `algorithm.adam_beta2`; cannot be \
                 unset: it is not optional",
            )
            .field("algorithm.betas")
            .expected("two numbers in [0, 1), [adam_beta1, adam_beta2]")
            .from_set(item));
        }
        Ok(Self { item: item.to_string(), key, value })
    }

    /// The dotted key with current names.
    pub(super) fn dotted(&self) -> String {
        self.key.join(".")
    }

    /// Applies the override to a TOML tree. An unset removes the key (the typed step,
    /// [`unset`], then sets the field to none).
    pub(super) fn apply(&self, root: &mut toml::Value) -> Result<(), ConfigError> {
        let item = &self.item;
        let (leaf, parents) = self.key.split_last().expect("a key has at least one segment");
        let mut node = root;
        for (i, part) in parents.iter().enumerate() {
            let table = node.as_table_mut().ok_or_else(|| {
                bad(item, format!("`{}` is not a table", self.key[..i].join(".")))
            })?;
            node =
                table.entry(part.clone()).or_insert_with(|| toml::Value::Table(Default::default()));
        }
        let table = node
            .as_table_mut()
            .ok_or_else(|| bad(item, format!("`{}` is not a table", parents.join("."))))?;
        match &self.value {
            Some(v) => {
                table.insert(leaf.clone(), v.clone());
            }
            None => {
                table.remove(leaf);
            }
        }
        Ok(())
    }

    /// Explains a deserialization error at this override's key, with the quoting fix when a
    /// bare value was not the text the field wants.
    fn explain(&self, message: &str, field: Option<&str>) -> String {
        // The item itself is named first by `ConfigError`'s Display (`--set ITEM (over FILE):`),
        // as for out-of-range values.
        let mut out = message.to_string();
        let wants_text = field == Some(self.dotted().as_str())
            && (message.contains(&format!("expected {}", words::STRING))
                || message.contains(words::PATH));
        if wants_text && !matches!(self.value, Some(toml::Value::String(_))) {
            let raw = self.item.split_once('=').map_or("", |(_, r)| r.trim());
            out.push_str(&format!(
                "; to pass it as text, quote it: {}",
                as_text(&self.dotted(), raw)
            ));
        }
        out
    }
}

/// Whether `raw` is written as a whole number (sign, digits, `_` separators).
fn is_whole_number(raw: &str) -> bool {
    let digits = raw.strip_prefix(['+', '-']).unwrap_or(raw);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// Replaces old key names by the current ones, in place.
fn canonical_key(key: &mut [String]) {
    let dotted = key.join(".");
    for (old, new) in RENAMED {
        if let Some(rest) = dotted.strip_prefix(old)
            && (rest.is_empty() || rest.starts_with('.'))
        {
            let (parent, leaf) = new.rsplit_once('.').unwrap_or(("", new));
            let depth = parent.split('.').filter(|s| !s.is_empty()).count();
            key[depth] = leaf.to_string();
            return;
        }
    }
}

/// Whether an item names `algorithm.adam_beta1` or `algorithm.adam_beta2` (a `--set` of the
/// old pair `algorithm.betas` beside them is refused: [`super::Algorithm::fold_old_betas`]).
pub(super) fn sets_adam_betas(overrides: &[Override]) -> bool {
    overrides
        .iter()
        .any(|o| matches!(o.dotted().as_str(), "algorithm.adam_beta1" | "algorithm.adam_beta2"))
}

/// Renames old keys of a parsed config file to the current names (so that a `--set` of
/// either name replaces the same entry), the old pair `algorithm.betas` included.
pub(super) fn canonical_tree(root: &mut toml::Value) {
    super::algorithm::canonical_betas(root);
    for (old, new) in RENAMED {
        let (parent, old_leaf) = old.rsplit_once('.').unwrap_or(("", old));
        let new_leaf = new.rsplit_once('.').map_or(new, |(_, l)| l);
        let mut node = Some(&mut *root);
        for part in parent.split('.').filter(|s| !s.is_empty()) {
            node = node.and_then(|n| n.get_mut(part));
        }
        if let Some(table) = node.and_then(toml::Value::as_table_mut)
            && !table.contains_key(new_leaf)
            && let Some(v) = table.remove(old_leaf)
        {
            table.insert(new_leaf.to_string(), v);
        }
    }
}

/// The error of deserializing the overridden tree (`e`, placed in that tree's text, whose
/// lines mean nothing to the user): at an override's key it names the override; elsewhere
/// it lists them all.
pub(super) fn explain(origin: &str, overrides: &[Override], e: ConfigError) -> ConfigError {
    let e = ConfigError { line: None, column: None, ..e };
    // The item that set the field, or a key inside it (`--set game.top_p.x=1` makes
    // `game.top_p` a table).
    let at = |o: &&Override| {
        let key = o.dotted();
        // ... or a list item or key inside the value it set (`--set k=[1]` at `k[0]`).
        e.field.as_deref().is_some_and(|f| {
            key == f
                || key.strip_prefix(f).is_some_and(|rest| rest.starts_with('.'))
                || f.strip_prefix(&key).is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    };
    match overrides.iter().rev().find(at) {
        Some(o) => {
            let message = o.explain(&e.message, e.field.as_deref());
            ConfigError { message, ..e }.from_set(&o.item).in_file(origin)
        }
        None => {
            let items: Vec<&str> = overrides.iter().map(|o| o.item.as_str()).collect();
            let message = format!("{} (with --set {})", e.message, items.join(" --set "));
            ConfigError { message, ..e }.in_file(origin)
        }
    }
}

/// Sets every field whose last override is an unset to none, through a JSON copy of the
/// config (JSON has the null TOML lacks). A field that is not optional refuses the null with
/// an error naming it; an unknown key is refused as in a file; an entry of a map
/// (`plugins.paths.NAME`, `plugins.settings.NAME.KEY`) is removed.
pub(super) fn unset(
    config: Config,
    origin: &str,
    overrides: &[Override],
) -> Result<Config, ConfigError> {
    let nulls: Vec<&Override> = overrides
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            o.value.is_none() && !overrides[i + 1..].iter().any(|later| later.key == o.key)
        })
        .map(|(_, o)| o)
        .collect();
    if nulls.is_empty() {
        return Ok(config);
    }
    let mut json = serde_json::to_value(&config).map_err(|e| {
        ConfigError::new(ConfigErrorKind::InvalidValue, format!("cannot unset: {e}"))
            .in_file(origin)
    })?;
    // Keys absent from the serialized config are map entries (already removed from the tree)
    // or typos; deserializing with a null there tells which.
    let mut absent = Vec::new();
    for o in &nulls {
        let (leaf, parents) = o.key.split_last().expect("a key has at least one segment");
        let mut node = &mut json;
        for part in parents {
            node = node
                .as_object_mut()
                .ok_or_else(|| bad(&o.item, format!("`{part}` is inside a value, not a table")))?
                .entry(part.clone())
                .or_insert_with(|| serde_json::Value::Object(Default::default()));
        }
        let table = node
            .as_object_mut()
            .ok_or_else(|| bad(&o.item, format!("`{}` is not a table", parents.join("."))))?;
        if table.insert(leaf.clone(), serde_json::Value::Null).is_none() {
            absent.push(o.key.clone());
        }
    }
    // Fields that refused the null and are being retried with the word as text, each with the
    // error to give if the text is refused too.
    let mut retried: Vec<(Vec<String>, ConfigError)> = Vec::new();
    loop {
        match serde_path_to_error::deserialize::<_, Config>(&json) {
            Ok(config) => return Ok(config),
            Err(e) => {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                let Some(o) = nulls.iter().find(|o| o.dotted() == path) else {
                    return Err(ConfigError::new(
                        super::error::kind_of_serde_message(&message),
                        super::words::suggest_field(&message),
                    )
                    .field(path)
                    .in_file(origin));
                };
                if let Some(i) = absent.iter().position(|k| *k == o.key)
                    && message.starts_with("invalid type: null")
                {
                    // A map entry: removing it was the whole job.
                    absent.swap_remove(i);
                    remove(&mut json, &o.key);
                    continue;
                }
                if let Some(i) = retried.iter().position(|(k, _)| *k == o.key) {
                    // The word was tried as text and refused too. A field with named values
                    // says which (`algorithm.method=none`: not unset, and not a method).
                    let mut refused = retried.swap_remove(i).1;
                    if let Some(takes) = words::variants_expected(&message) {
                        let raw = o.item.split_once('=').map_or("", |(_, r)| r.trim());
                        refused.message = format!(
                            "cannot be unset (it is not optional), and `{raw}` is not one of its \
                             values: expected {takes}"
                        );
                        refused.expected = Some(takes);
                    }
                    return Err(refused);
                }
                if message.starts_with("unknown field") {
                    return Err(ConfigError::new(
                        ConfigErrorKind::UnknownKey,
                        super::words::suggest_field(&message),
                    )
                    .field(path)
                    .from_set(&o.item)
                    .in_file(origin));
                }
                let raw = o.item.split_once('=').map_or("", |(_, r)| r.trim());
                // serde: `invalid type: null, expected TYPE`.
                let takes = message
                    .rsplit_once(", expected ")
                    .map_or(message.clone(), |(_, e)| words::expected_words(e, Some(&path)));
                let mut text = format!("cannot be unset: it is not optional (it takes {takes})");
                let free_text = takes == words::STRING || takes == words::PATH;
                if free_text {
                    text.push_str(&format!(
                        "; to set the text, quote it: --set '{path}=\"{raw}\"'"
                    ));
                }
                let refused = ConfigError::new(ConfigErrorKind::NotOptional, text)
                    .field(path)
                    .expected(takes)
                    .from_set(&o.item)
                    .in_file(origin);
                if free_text {
                    // Text or an unset: which one was meant is a guess (the error says how
                    // to quote it).
                    return Err(refused);
                }
                // `none` is also a value some fields take (`models.adapter = "none"`, full
                // fine-tuning): a field that cannot be unset and takes more than free text
                // gets the word as text, and this error stands if the text is refused too.
                set(&mut json, &o.key, serde_json::Value::String(raw.to_string()));
                retried.push((o.key.clone(), refused));
            }
        }
    }
}

/// The value at the dotted path `key`, if every part of it exists.
fn node_mut<'a>(
    json: &'a mut serde_json::Value,
    key: &[String],
) -> Option<&'a mut serde_json::Value> {
    key.iter().try_fold(json, |node, part| node.get_mut(part))
}

/// Sets the value at `key` (whose tables exist: [`unset`] made them).
fn set(json: &mut serde_json::Value, key: &[String], value: serde_json::Value) {
    if let Some(slot) = node_mut(json, key) {
        *slot = value;
    }
}

fn remove(json: &mut serde_json::Value, key: &[String]) {
    let (leaf, parents) = key.split_last().expect("a key has at least one segment");
    if let Some(table) = node_mut(json, parents).and_then(serde_json::Value::as_object_mut) {
        table.remove(leaf);
    }
}
