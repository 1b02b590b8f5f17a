//! [`ConfigError`]: every way a run configuration can be wrong (unreadable file, TOML syntax,
//! unknown key, wrong type, bad value, out-of-range value, missing file, bad `--set` item), as
//! one value that names the file, the line and column, the field, what was expected and what
//! was found, in the project's words ([`super::words`], not serde's type names).
//!
//! Positions come from `toml`'s spans ([`toml::de::Error::span`] for what serde refuses,
//! [`toml::de::DeTable`]'s spanned keys for what [`super::Config::check`] refuses); the text is
//! never scanned by hand for keys.

use std::fmt;

use super::{RENAMED, words};

/// What kind of problem a [`ConfigError`] is: what tests and callers match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigErrorKind {
    /// The config file could not be read (missing, unreadable, not UTF-8).
    Read,
    /// The text is not TOML.
    Syntax,
    /// A key that the section does not have (a typo, or a key this version does not know).
    UnknownKey,
    /// A key given twice, which includes an old name next to its new one ([`RENAMED`]).
    DuplicateKey,
    /// A value of the wrong TOML type (text where a number is expected...).
    WrongType,
    /// A value of the right type that is not an accepted one (an unknown method or device).
    InvalidValue,
    /// A value outside its documented range, or settings that contradict each other
    /// ([`super::Config::check`]).
    OutOfRange,
    /// A file or folder the configuration names does not exist
    /// ([`super::Config::check_files`], [`super::Plugins::path_of`]).
    MissingFile,
    /// A `--set` item that is not `dotted.key=value`, has no value, or whose key runs into a
    /// value that is not a table.
    BadOverride,
    /// `--set KEY=null` on a field that is not optional.
    NotOptional,
}

/// One configuration problem. Its `Display` is one line:
/// `FILE[:LINE[:COLUMN]]: field `FIELD`: MESSAGE` (parts that are unknown are left out; a
/// `--set` item stands in for the file when the problem is the item itself).
///
/// Configuration entry points ([`super::Config::load`], [`super::Config::parse`],
/// [`super::Config::check`], [`super::Config::check_files`], [`super::Plugins::path_of`])
/// return it; through `anyhow` it is reached with `err.downcast_ref::<ConfigError>()`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// What kind of problem it is.
    pub kind: ConfigErrorKind,
    /// The config file as given (the `origin` of [`super::Config::parse`]: a path, `defaults`,
    /// `resolved`), or `None` when the problem is not tied to one (a file check after loading).
    pub file: Option<String>,
    /// 1-based line in `file` where the offending key or value is, when it is in the text.
    pub line: Option<usize>,
    /// 1-based column (in characters) on `line`.
    pub column: Option<usize>,
    /// The field as a dotted path with current key names (`algorithm.learning_rate`), when
    /// the problem is one field's.
    pub field: Option<String>,
    /// The `--set` item the offending value came from, if it came from one.
    pub set: Option<String>,
    /// The other field of a contradiction between two settings (`algorithm.method` for an
    /// `rpo_alpha` under grpo), so that placing the error can say where that one came from.
    pub also: Option<String>,
    /// What the field takes, in the project's words ([`super::words`]: "a path (a string in
    /// quotes)", "a number"), when the error is about a value the field cannot hold and the
    /// reader knows it; the same words are in `message`. Callers that restate the problem
    /// (a `--set KEY=` item with no value) use this instead of parsing `message`.
    pub expected: Option<String>,
    /// What is wrong and what was expected, one line.
    pub message: String,
    /// Further problems found in the same pass ([`super::Config::check`] reports every
    /// out-of-range field at once), shown after this one.
    pub more: Vec<ConfigError>,
}

impl ConfigError {
    /// A problem of `kind` with `message`, not yet placed.
    pub fn new(kind: ConfigErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            line: None,
            column: None,
            field: None,
            set: None,
            also: None,
            expected: None,
            message: message.into(),
            more: Vec::new(),
        }
    }

    /// The same problem, about `field` (dotted path).
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The same problem, a contradiction with the setting of `field` (dotted path).
    pub fn also(mut self, field: impl Into<String>) -> Self {
        self.also = Some(field.into());
        self
    }

    /// The same problem, with what the field takes ([`ConfigError::expected`]).
    pub fn expected(mut self, takes: impl Into<String>) -> Self {
        self.expected = Some(takes.into());
        self
    }

    /// The same problem, in `file` (kept when a file is already named).
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        if self.file.is_none() {
            self.file = Some(file.into());
        }
        self
    }

    /// The same problem, from the `--set` item `item`.
    pub fn from_set(mut self, item: impl Into<String>) -> Self {
        self.set = Some(item.into());
        self
    }

    /// The same problem, at byte offset `offset` of `text` (the file's contents).
    pub(super) fn at_offset(mut self, text: &str, offset: usize) -> Self {
        let (line, column) = line_column(text, offset);
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    /// A `toml` deserialization error at serde path `path` (`.` or empty for the document),
    /// in `text`; `syntax` says whether it came from parsing (not from the typed step).
    pub(super) fn from_toml(err: &toml::de::Error, path: &str, text: &str, syntax: bool) -> Self {
        let message = one_line(err.message());
        let kind = if syntax {
            if message.starts_with("duplicate key") {
                ConfigErrorKind::DuplicateKey
            } else {
                ConfigErrorKind::Syntax
            }
        } else {
            kind_of_serde_message(&message)
        };
        let field = (!path.is_empty() && path != ".").then(|| path.to_string());
        // What the field takes and what was found, in the project's words (not serde's).
        let message = match syntax {
            false => words::reword(&message, field.as_deref(), || words::enum_at(text, path))
                .unwrap_or_else(|| words::suggest_field(&message)),
            true => {
                let span = err.span();
                let token = span.as_ref().map_or("", |s| token_at(text, s.start));
                words::syntax_hint(&message, span.and_then(|s| text.get(s)), token)
            }
        };
        let mut e = Self::new(kind, message);
        e.field = field;
        let span = err.span();
        if syntax && kind == ConfigErrorKind::Syntax && e.field.is_none() {
            // A value toml cannot read sits on its key's line: name that key as the field.
            e.field = span.as_ref().and_then(|s| key_of_line(text, s.start));
        }
        if kind == ConfigErrorKind::DuplicateKey {
            // serde reports a field given twice at its table; name the field, placed at its
            // second occurrence, the one to remove.
            let leaf =
                e.message.strip_prefix("duplicate field `").and_then(|r| r.split('`').next());
            if let Some(leaf) = leaf {
                let field = match &e.field {
                    Some(table) => format!("{table}.{leaf}"),
                    None => leaf.to_string(),
                };
                if let Some(offset) = locate(text, &field) {
                    e.field = Some(field);
                    return e.at_offset(text, offset);
                }
                e.field = Some(field);
            }
            if syntax
                && let Some(key) = span.as_ref().and_then(|s| text.get(s.clone()))
                && !key.trim().is_empty()
            {
                e.message = format!("{}: `{}`", e.message, key.trim());
            }
        }
        match span {
            Some(span) => e.at_offset(text, span.start),
            None => e,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, &self.set) {
            // The value came from a `--set` item, not from the file, and the message does not
            // say so yet (type errors do): name the item first.
            (Some(file), Some(item))
                if self.line.is_none() && !self.message.contains(&format!("--set {item}")) =>
            {
                write!(f, "--set {item} (over {file}): ")?
            }
            (Some(file), _) => {
                write!(f, "{file}")?;
                if let Some(line) = self.line {
                    write!(f, ":{line}")?;
                    if let Some(column) = self.column {
                        write!(f, ":{column}")?;
                    }
                }
                write!(f, ": ")?;
            }
            (None, Some(item)) if self.field.is_none() => write!(f, "--set {item}: ")?,
            (None, _) => {}
        }
        if let Some(field) = &self.field {
            write!(f, "field `{field}`: ")?;
        }
        write!(f, "{}", self.message)?;
        for more in &self.more {
            f.write_str("; ")?;
            if let Some(line) = more.line {
                write!(f, "line {line}")?;
                if let Some(column) = more.column {
                    write!(f, ", column {column}")?;
                }
                f.write_str(": ")?;
            } else if let Some(item) = more.set.as_ref().filter(|i| Some(*i) != self.set.as_ref()) {
                write!(f, "--set {item}: ")?;
            }
            if let Some(field) = &more.field {
                write!(f, "field `{field}`: ")?;
            }
            f.write_str(&more.message)?;
        }
        Ok(())
    }
}

/// The dotted name (`table.key`) of the `key = ...` line holding byte `offset` of `text`, in
/// the `[table]` whose header comes last before it; `None` when that line assigns no key
/// (a broken header, a stray word) or the key is quoted or dotted (left to toml's words).
fn key_of_line(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or_default();
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if !bare(key) || offset < start + line.find('=')? {
        return None;
    }
    let table = text[..start].lines().rev().map(str::trim).find_map(|l| {
        let name = l.strip_prefix('[')?.split(']').next()?.trim_matches(['[', ' ']);
        Some(name.to_string())
    });
    match table {
        Some(table) if table.split('.').all(bare) => Some(format!("{table}.{key}")),
        Some(_) => None,
        None => Some(key.to_string()),
    }
}

/// The value token around byte `offset` of `text`: between the [`words::ends_token`]
/// characters before and after it. toml points a number it cannot read at its point (`.5`) or
/// just past it (`1.`), so the token, not the span, is the number the user wrote.
fn token_at(text: &str, offset: usize) -> &str {
    let offset = (0..=offset.min(text.len())).rev().find(|&i| text.is_char_boundary(i));
    let offset = offset.unwrap_or(0);
    let start = text[..offset].rfind(words::ends_token).map_or(0, |i| i + 1);
    let end = text[offset..].find(words::ends_token).map_or(text.len(), |i| offset + i);
    &text[start..end]
}

/// serde reports every typed-step problem as text; its fixed prefixes (`serde::de::Error`'s
/// provided messages) tell the kind.
pub(super) fn kind_of_serde_message(message: &str) -> ConfigErrorKind {
    if message.starts_with("unknown field") {
        ConfigErrorKind::UnknownKey
    } else if message.starts_with("duplicate field") || message.starts_with("duplicate key") {
        ConfigErrorKind::DuplicateKey
    } else if message.starts_with("invalid type") || message == "wanted string or table" {
        // toml's words for a value of the wrong type given to an enum field.
        ConfigErrorKind::WrongType
    } else {
        ConfigErrorKind::InvalidValue
    }
}

/// A possibly multi-line message as one line.
pub(super) fn one_line(message: &str) -> String {
    message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

/// 1-based line and character column of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let offset = (0..=offset).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Byte offset in `text` of the value of the dotted key `field` (current name, or an old
/// name from [`RENAMED`]), from `toml`'s spanned parse; `None` when the text does not set it.
pub(super) fn locate(text: &str, field: &str) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut names = vec![field.to_string()];
    for (old, new) in RENAMED {
        if let Some(rest) = field.strip_prefix(new)
            && (rest.is_empty() || rest.starts_with('.'))
        {
            names.push(format!("{old}{rest}"));
        }
    }
    names.iter().find_map(|name| {
        let mut parts = name.split('.');
        let first = parts.next()?;
        let mut node = doc.get_ref().get(first)?;
        for part in parts {
            node = node.get_ref().get(part)?;
        }
        Some(node.span().start)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_the_known_parts() {
        let e = ConfigError::new(ConfigErrorKind::OutOfRange, "must be in (0, 1]")
            .field("game.top_p")
            .in_file("run.toml");
        assert_eq!(e.to_string(), "run.toml: field `game.top_p`: must be in (0, 1]");
        let e = e.at_offset("[game]\ntop_p = 1.5\n", 15);
        assert_eq!(e.to_string(), "run.toml:2:9: field `game.top_p`: must be in (0, 1]");
        let e = ConfigError::new(ConfigErrorKind::BadOverride, "expected dotted.key=value")
            .from_set("novalue");
        assert_eq!(e.to_string(), "--set novalue: expected dotted.key=value");
    }

    #[test]
    fn key_of_line_names_the_key_in_its_table() {
        let text =
            "name = x\n[algorithm]\n# [game]\nlearning_rate = \n[models.lora]\nr = q\n[bad\n";
        let at = |needle: &str| text.find(needle).unwrap();
        assert_eq!(key_of_line(text, at("x")).as_deref(), Some("name"));
        let after = at("learning_rate = ") + "learning_rate = ".len();
        assert_eq!(key_of_line(text, after).as_deref(), Some("algorithm.learning_rate"));
        assert_eq!(key_of_line(text, at("q")).as_deref(), Some("models.lora.r"));
        // Not on a value: a broken header, or the key itself.
        assert_eq!(key_of_line(text, at("[bad")), None);
        assert_eq!(key_of_line(text, at("learning_rate")), None);
    }

    #[test]
    fn token_at_is_the_value_around_an_offset() {
        let text = "a = .5\nb = 1.\nc = [1., 2]\n";
        assert_eq!(token_at(text, text.find(".5").unwrap()), ".5");
        // Just past `1.`, where toml points: the token still ends at the line's end.
        assert_eq!(token_at(text, text.find("1.\n").unwrap() + 2), "1.");
        assert_eq!(token_at(text, text.find("1.,").unwrap() + 1), "1.");
        assert_eq!(token_at(text, text.len()), "");
    }

    #[test]
    fn locate_finds_new_and_old_key_names() {
        let text = "[game]\ntop_p = 1.5\n[algorithm]\nlr = -1.0\n";
        assert_eq!(locate(text, "game.top_p").map(|o| line_column(text, o)), Some((2, 9)));
        let at = locate(text, "algorithm.learning_rate").map(|o| line_column(text, o));
        assert_eq!(at, Some((4, 6)));
        assert_eq!(locate(text, "game.temperature"), None);
    }
}
