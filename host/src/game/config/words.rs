//! What a config field takes and what was found instead, in the project's words: the one
//! place that turns serde's type names (`expected usize`, `invalid type: string "eight"`) into
//! text a user of the TOML file reads (`expected a whole number >= 1, found the string
//! "eight"`).
//!
//! The kind of value comes from serde's message (one table, [`kind_words`]); the range comes
//! from the field's documentation in [`FIELDS`] (the `>= 1`, `> 0`, `in [0, 1)` it states), so
//! a range is written once, where `--print-config` shows it too. Enums list their accepted
//! values, which serde itself reports ([`enum_at`]).

use super::fields::FIELDS;
use super::{Config, ConfigError, ConfigErrorKind, RENAMED};

/// What [`kind_words`] says for a string field; the `--set` quoting hint looks for it.
pub(super) const STRING: &str = "a string in quotes";
/// What [`kind_words`] says for a path field; the `--set` quoting hint looks for it.
pub(super) const PATH: &str = "a path (a string in quotes)";

/// serde's message about a value at `field` (dotted, as serde_path_to_error writes it),
/// reworded as `expected WHAT, found WHAT`; `None` when the message is of another kind (an
/// unknown field, a duplicate, a custom message that already speaks our words).
///
/// `enum_at` is called for a value an enum refused by type (toml says only "wanted string or
/// table"): it returns the enum's accepted values and the value found ([`enum_at`]).
pub(super) fn reword(
    message: &str,
    field: Option<&str>,
    enum_at: impl FnOnce() -> Option<(Vec<String>, toml::Value)>,
) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // `unknown variant `x`, expected one of `a`, `b``; serde words one or two values
        // differently (`expected `a``, `expected `a` or `b``).
        // toml reads a table `{ a = 1 }` as the variant `a`: say what the text holds.
        let named = rest.split_once(", expected ")?.0.trim_matches('`');
        let found = match enum_at() {
            Some((_, found)) if !found.is_str() => value_words(&found),
            _ => format!("the string {named:?}"),
        };
        return Some(format!("expected {}, found {found}", one_of(&values_of(message)?)));
    }
    if message == "wanted string or table" {
        let (values, found) = enum_at()?;
        return Some(format!(
            "expected {} (a string in quotes), found {}",
            one_of(&values),
            value_words(&found)
        ));
    }
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    Some(format!("expected {}, found {}", expected_words(expected, field), found_words(found)))
}

/// serde's `unknown field `x`, expected one of `a`, `b`, ...` with the closest accepted name
/// suggested after the unknown one (`unknown field `x` (did you mean `b`?), expected ...`),
/// when one is close: Jaro-Winkler similarity at least 0.8 (typos and missing letters; clap
/// suggests at a similar bar). Other messages come back unchanged.
pub(super) fn suggest_field(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((unknown, accepted)) = rest.split_once('`') else {
        return message.to_string();
    };
    // serde lists the old names ([`RENAMED`], `betas`) among the accepted ones: they still
    // work, but the message offers only the current names.
    let current: Vec<&str> =
        accepted.split('`').skip(1).step_by(2).filter(|name| !is_old_name(name)).collect();
    let listed = if accepted.starts_with(", expected one of ") {
        let quoted: Vec<String> = current.iter().map(|c| format!("`{c}`")).collect();
        format!(", expected one of {}", quoted.join(", "))
    } else {
        accepted.to_string()
    };
    match closest(unknown, current.iter().copied()) {
        Some(name) => format!("unknown field `{unknown}` (did you mean `{name}`?){listed}"),
        None => format!("unknown field `{unknown}`{listed}"),
    }
}

/// A key's last segment that is only an old name of another key (`lr`, `steps`, `every`,
/// `betas` ...), accepted for old files and never suggested.
fn is_old_name(leaf: &str) -> bool {
    leaf == "betas"
        || RENAMED.iter().any(|(old, _)| old.rsplit_once('.').is_some_and(|(_, l)| l == leaf))
}

/// The candidate closest to `name` when one is close enough to suggest: Jaro-Winkler
/// similarity at least 0.8 (typos and missing letters). Shared by the unknown-key and the
/// missing-plugin messages.
pub(super) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A TOML syntax error at the text `at`, with the fix when the text is a word people write
/// for "no value" (`null`, which TOML lacks; toml then says `invalid float, expected nan`)
/// or a number TOML does not read. `token` is the value token around the error's start
/// (toml points `.5` at its point alone, `1.` just past it), empty when there is none.
pub(super) fn syntax_hint(message: &str, at: Option<&str>, token: &str) -> String {
    let word = at.map(str::trim).unwrap_or_default();
    if ["null", "none", "nil"].iter().any(|w| word.eq_ignore_ascii_case(w)) {
        return format!(
            "`{word}` is not a TOML value (TOML has no null): leave the key out for its \
             default, or write \"\" to turn an optional file or text off"
        );
    }
    // A number toml cannot read (`.5`, `1.`): TOML wants a digit on each side of the
    // point. (Whole numbers past 64 bits parse, and are refused by type: "beyond 64 bits".)
    let number = if token.is_empty() { word } else { token };
    if is_unreadable_number(number) {
        return unreadable_number(number);
    }
    // toml's words for a value it cannot read at all, be it missing (`lr = `) or bare text.
    if message.starts_with("string values must be quoted") {
        if word.is_empty() || word.starts_with('#') {
            return "no value after `=` (expected a number, true or false, text in quotes, a \
                    [list] or a table; leave the key out for its default)"
                .into();
        }
        // A number with more after it (`1e-5 garbage`): the number is meant, not text.
        let number = word.split_whitespace().next().filter(|w| w.parse::<f64>().is_ok());
        if let Some(number) = number.filter(|_| word.contains(char::is_whitespace)) {
            return format!(
                "`{word}` is not a TOML value: after the number {number} comes more text (a \
                 comment starts with #; text goes in quotes)"
            );
        }
        if !word.contains(['"', '\'', '\n']) {
            return format!("`{word}` is not a TOML value: text goes in quotes, \"{word}\"");
        }
    }
    message.to_string()
}

/// Whether `word` is a number to Rust (digits and all: not `Infinity` or `NaN`, which are
/// text here) that TOML does not read as one: `.5`, `1.`, `+.5e3`.
pub(super) fn is_unreadable_number(word: &str) -> bool {
    word.parse::<f64>().is_ok()
        && word.bytes().any(|b| b.is_ascii_digit())
        && toml::from_str::<toml::Table>(&format!("v = {word}")).is_err()
}

/// "`.5` is not a TOML number: write 0.5 ...": the message for an [`is_unreadable_number`]
/// word, with the number as TOML writes it (a 0 on the bare side of the point).
pub(super) fn unreadable_number(word: &str) -> String {
    let mut fixed = String::with_capacity(word.len() + 2);
    let bytes = word.as_bytes();
    for (i, c) in word.char_indices() {
        if c == '.' && !bytes.get(i.wrapping_sub(1)).is_some_and(u8::is_ascii_digit) {
            fixed.push('0');
        }
        fixed.push(c);
        if c == '.' && !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
            fixed.push('0');
        }
    }
    if toml::from_str::<toml::Table>(&format!("v = {fixed}")).is_ok() {
        format!(
            "`{word}` is not a TOML number: write {fixed} (TOML wants a digit on each side of \
             the point)"
        )
    } else {
        format!(
            "`{word}` is not a TOML number: TOML writes a digit on each side of the point \
             (0.5, 1.0) or an exponent (1e-5)"
        )
    }
}

/// Whether `c` ends a TOML value token (a number or a bare word): a blank, `=`, a comma, a
/// bracket or brace, or a comment's `#`.
pub(super) fn ends_token(c: char) -> bool {
    c.is_whitespace() || "=,[]{}#".contains(c)
}

/// What a field takes: serde's `expected` part (`usize`, `a boolean`, `path string`...) as
/// words, with the range its documentation states.
pub(super) fn expected_words(expected: &str, field: Option<&str>) -> String {
    let range = field.and_then(documented_range);
    let (kind, default_range) = kind_words(expected);
    match range.or(default_range.map(String::from)) {
        Some(range) if kind.starts_with("a whole number") || kind == "a number" => {
            format!("{kind} {range}")
        }
        _ => kind.to_string(),
    }
}

/// The one table from serde's type names to words: the words and, for unsigned integers,
/// the range the type itself imposes. Names this table does not know (a custom `expecting`,
/// already written for people) pass through.
fn kind_words(expected: &str) -> (&str, Option<&'static str>) {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => ("a whole number", Some(">= 0")),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => ("a whole number", None),
        "f32" | "f64" => ("a number", None),
        "a boolean" => ("true or false", None),
        "a string" | "a borrowed string" | "a char" => (STRING, None),
        "path string" => (PATH, None),
        "a sequence" => ("a list in brackets, e.g. [\"a\", \"b\"]", None),
        "a map" => ("a table of key = value", None),
        other if other.starts_with("struct ") => ("a table ([section] or { key = value })", None),
        other => (other, None),
    }
}

/// serde's `Unexpected` (`string "x"`, `integer `3``, `floating point `1.5``, `boolean
/// `true``, `sequence`, `map`) as words.
fn found_words(found: &str) -> String {
    let quoted = |prefix: &str| {
        found.strip_prefix(prefix).map(|r| r.split('`').nth(1).unwrap_or(r).to_string())
    };
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    if let Some(n) = quoted("integer ") {
        // toml reports integers beyond 64 bits as `integer `N` as i128`.
        let note = if found.ends_with(" as i128") { " (beyond 64 bits)" } else { "" };
        return format!("the whole number {n}{note}");
    }
    if let Some(n) = quoted("floating point ") {
        return format!("the number {n}");
    }
    if let Some(b) = quoted("boolean ") {
        return format!("the boolean {b}");
    }
    match found {
        "sequence" => "a list".into(),
        "map" => "a table".into(),
        "unit value" | "null" => "nothing".into(),
        other => other.into(),
    }
}

/// [`Config::check`]'s out-of-range problems (`must be in (0, 1]`), each with the value
/// `config` holds (`, found the number 1.5`).
pub(super) fn with_found(mut e: ConfigError, config: &Config) -> ConfigError {
    let Ok(tree) = toml::Value::try_from(config) else { return e };
    let add = |mut e: ConfigError| {
        let value = e
            .field
            .as_deref()
            .and_then(|f| f.split('.').try_fold(&tree, |node, part| node.get(part)));
        if e.kind == ConfigErrorKind::OutOfRange
            && let Some(value) = value
        {
            e.message = format!("{}, found {}", e.message, value_words(value));
        }
        e
    };
    let more = std::mem::take(&mut e.more).into_iter().map(add).collect();
    ConfigError { more, ..add(e) }
}

/// A TOML value as [`found_words`] words it.
fn value_words(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(n) => format!("the whole number {n}"),
        // An f32 field's value, widened to f64, printed as the f32 it is (1.1, not
        // 1.100000023841858).
        toml::Value::Float(x) if f64::from(*x as f32) == *x => format!("the number {}", *x as f32),
        toml::Value::Float(x) => format!("the number {x}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the date {d}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

/// The accepted values of the enum field at `path` (dotted) of the config `text`, and the
/// value the text gives it: serde lists the values when the field is given one it does not
/// know, so the field is given one and the config deserialized again.
pub(super) fn enum_at(text: &str, path: &str) -> Option<(Vec<String>, toml::Value)> {
    let mut root: toml::Value = toml::from_str(text).ok()?;
    let mut node = &mut root;
    for part in path.split('.') {
        // A list element: `name[0]` (serde_path_to_error's spelling), possibly nested.
        let mut pieces = part.split('[');
        node = node.get_mut(pieces.next()?)?;
        for index in pieces {
            node = node.get_mut(index.strip_suffix(']')?.parse::<usize>().ok()?)?;
        }
    }
    let found = std::mem::replace(node, toml::Value::String("\u{1}".into()));
    let err = serde_path_to_error::deserialize::<_, Config>(root).err()?;
    let message = err.inner().message();
    if err.path().to_string() != path || !message.starts_with("unknown variant ") {
        return None;
    }
    Some((values_of(message)?, found))
}

/// What serde's `unknown variant `x`, expected ...` says the field takes, in the project's
/// words (`` one of `a`, `b`, `c` ``); `None` for any other message.
pub(super) fn variants_expected(message: &str) -> Option<String> {
    message
        .starts_with("unknown variant ")
        .then(|| values_of(message))
        .flatten()
        .map(|v| one_of(&v))
}

/// The values serde's `unknown variant `x`, expected ...` lists.
fn values_of(message: &str) -> Option<Vec<String>> {
    let expected = message.split_once(", expected ")?.1;
    Some(expected.split('`').skip(1).step_by(2).map(String::from).collect())
}

/// `` `a` `` / `` `a` or `b` `` / `` one of `a`, `b`, `c` ``.
fn one_of(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    match quoted.as_slice() {
        [] => "nothing (no value is accepted)".into(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        all => format!("one of {}", all.join(", ")),
    }
}

/// The range the documentation of `field` states (the last of `>= N`, `> N`, `in [A, B]`
/// with any brackets, `A-B`), as written there (`in [A, B]` for `A-B`). `field` may use an
/// old key name or end in a list index.
pub(super) fn documented_range(field: &str) -> Option<String> {
    let field = field.split('[').next().unwrap_or(field);
    let renamed = RENAMED.iter().find(|(old, _)| *old == field).map(|(_, new)| *new);
    let doc = FIELDS.iter().find(|(k, _)| *k == renamed.unwrap_or(field)).map(|(_, d)| *d)?;
    let words: Vec<&str> = doc.split_whitespace().collect();
    let number = |w: &str| {
        let w = w.trim_end_matches(['.', ',', ';']);
        (!w.is_empty() && w.parse::<f64>().is_ok()).then(|| w.to_string())
    };
    let mut found = None;
    for (i, w) in words.iter().enumerate() {
        let next = words.get(i + 1).copied().unwrap_or("");
        let after = words.get(i + 2).copied().unwrap_or("");
        if (*w == ">=" || *w == ">")
            && let Some(n) = number(next)
        {
            found = Some(format!("{w} {n}"));
        } else if w.eq_ignore_ascii_case("in")
            && (next.starts_with('[') || next.starts_with('('))
            && number(&next[1..]).is_some()
            && let Some(close) = after.find([']', ')'])
            && number(&after[..close]).is_some()
        {
            found = Some(format!("in {next} {}", &after[..=close]));
        } else if let Some((a, b)) = w.trim_end_matches(['.', ',', ';']).split_once('-')
            && number(a).is_some()
            && number(b).is_some()
        {
            found = Some(format!("in [{a}, {b}]"));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_field_gets_the_closest_accepted_name() {
        let m = "unknown field `learnig_rate`, expected one of `method`, `learning_rate`, `lr`";
        assert_eq!(
            suggest_field(m),
            "unknown field `learnig_rate` (did you mean `learning_rate`?), expected one of \
             `method`, `learning_rate`"
        );
        // Old names still parse but are neither suggested nor listed: `lr_x` is closer to
        // `lr` than to `learning_rate`, and gets no suggestion rather than the old name.
        let m = "unknown field `lr_x`, expected one of `method`, `learning_rate`, `lr`, `betas`";
        assert_eq!(
            suggest_field(m),
            "unknown field `lr_x`, expected one of `method`, `learning_rate`"
        );
        let far = "unknown field `colour`, expected one of `method`, `seed`";
        assert_eq!(suggest_field(far), far);
        assert_eq!(
            suggest_field("unknown field `x`, there are no fields"),
            "unknown field `x`, there are no fields"
        );
        assert_eq!(suggest_field("invalid type: string"), "invalid type: string");
    }

    #[test]
    fn ranges_come_from_the_documentation() {
        let range = |f: &str| documented_range(f);
        assert_eq!(range("algorithm.seeds_per_category").as_deref(), Some(">= 1"));
        assert_eq!(range("algorithm.lr").as_deref(), Some(">= 0"), "old names too");
        assert_eq!(range("game.top_p").as_deref(), Some("in (0, 1]"));
        assert_eq!(range("models.lora.lora_dropout").as_deref(), Some("in [0, 1)"));
        assert_eq!(range("models.lora.lora_alpha").as_deref(), Some("> 0"));
        assert_eq!(range("game.faithful_threshold").as_deref(), Some("in [0, 10]"));
        assert_eq!(range("output.name"), None);
        assert_eq!(range("no.such.key"), None);
    }

    #[test]
    fn serde_messages_become_expected_and_found() {
        let none = || None;
        let r = |m: &str, f: &str| reword(m, Some(f), none);
        assert_eq!(
            r("invalid type: string \"eight\", expected usize", "algorithm.seeds_per_category")
                .as_deref(),
            Some("expected a whole number >= 1, found the string \"eight\"")
        );
        assert_eq!(
            r("invalid value: integer `-3`, expected u64", "algorithm.seed").as_deref(),
            Some("expected a whole number >= 0, found the whole number -3")
        );
        assert_eq!(
            r("invalid type: sequence, expected f32", "game.top_p").as_deref(),
            Some("expected a number in (0, 1], found a list")
        );
        assert_eq!(
            r("invalid type: integer `1`, expected a boolean", "game.faithfulness_gate").as_deref(),
            Some("expected true or false, found the whole number 1")
        );
        assert_eq!(
            r("invalid type: floating point `1.5`, expected a string", "output.name").as_deref(),
            Some("expected a string in quotes, found the number 1.5")
        );
        assert_eq!(
            r("unknown variant `fast`, expected one of `dpo`, `ipo`, `grpo`", "algorithm.method")
                .as_deref(),
            Some("expected one of `dpo`, `ipo`, `grpo`, found the string \"fast\"")
        );
        assert_eq!(
            r("unknown variant `x`, expected `none` or `lora`", "models.adapter").as_deref(),
            Some("expected `none` or `lora`, found the string \"x\"")
        );
        let text = "[models]\ndtype = 16\n";
        let found = || enum_at(text, "models.dtype");
        assert_eq!(
            reword("wanted string or table", Some("models.dtype"), found).as_deref(),
            Some(
                "expected one of `f32`, `bf16`, `f16` (a string in quotes), found the whole number 16"
            )
        );
        assert_eq!(r("unknown field `x`, expected `a`", "game"), None);
        let text = "[algorithm]\nsampler = { a = 1 }\n";
        assert_eq!(
            reword(
                "unknown variant `a`, expected `ema` or `current`",
                Some("algorithm.sampler"),
                || enum_at(text, "algorithm.sampler")
            )
            .as_deref(),
            Some("expected `ema` or `current`, found a table")
        );
    }
}
