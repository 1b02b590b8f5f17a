//! Chat templates: the Jinja template a model ships (`chat_template.jinja` or the
//! `chat_template` field of `tokenizer_config.json`) rendered with minijinja in the same
//! environment transformers' `apply_chat_template` uses: `trim_blocks`, `lstrip_blocks`,
//! loop controls, Python string/dict methods, the special-token variables, and the
//! `raise_exception`, `strftime_now` and `tojson` helpers.
//!
//! Two places where minijinja and Jinja2 differ are bridged before compiling (see
//! [`jinja2_source`]): Jinja2 folds every line ending of the template source (`\r\n`, `\r`)
//! into `\n`, and transformers registers a `{% generation %}` block tag (used by TRL's
//! assistant-only loss) that renders its body unchanged.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, Error as JinjaError, ErrorKind};
use serde::Serialize;

const TEMPLATE_NAME: &str = "chat_template";

/// One chat turn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `system`, `user` or `assistant`, as the template's `message.role` sees it.
    pub role: String,
    /// The turn's text (`message.content`).
    pub content: String,
}

impl Message {
    /// A turn from a role and its text.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.to_string(), content: content.to_string() }
    }
}

/// A compiled chat template plus the special-token variables it may refer to.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    special_tokens: BTreeMap<String, Value>,
    /// Where the template came from, for error messages.
    origin: String,
    source: String,
}

impl ChatTemplate {
    /// Reads the template of a tokenizer folder: `chat_template.jinja` wins over
    /// `tokenizer_config.json`'s `chat_template` (as in transformers >= 4.43); a list of named
    /// templates there gives the one named `default`. Returns `Ok(None)` if the model has no
    /// chat template. Errors (unreadable files, a template that does not compile) name the
    /// file and field; [`crate::model::ChatModel`] keeps them for chat rendering only.
    pub fn from_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid JSON", config_path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let mut special = special_tokens(&config);
        let map_path = dir.join("special_tokens_map.json");
        if let Ok(text) = std::fs::read_to_string(&map_path) {
            let map: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: invalid JSON", map_path.display()))?;
            special.extend(special_tokens(&map));
        }
        let jinja_path = dir.join("chat_template.jinja");
        let (source, origin) = if jinja_path.is_file() {
            let text = std::fs::read_to_string(&jinja_path)
                .with_context(|| format!("cannot read {}", jinja_path.display()))?;
            (text, jinja_path.display().to_string())
        } else {
            let origin = format!("{} field `chat_template`", config_path.display());
            match config.get("chat_template") {
                None | Some(serde_json::Value::Null) => return Ok(None),
                Some(serde_json::Value::String(s)) => (s.clone(), origin),
                // A list of named templates: transformers uses the one named "default".
                Some(serde_json::Value::Array(list)) => {
                    let found = list
                        .iter()
                        .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"));
                    match found.and_then(|t| t.get("template")).and_then(|t| t.as_str()) {
                        Some(s) => (s.to_string(), origin),
                        None => bail!("{origin}: a list without a template named `default`"),
                    }
                }
                Some(_) => bail!("{origin}: expected a string or a list of named templates"),
            }
        };
        Self::new(source, special, origin).map(Some)
    }

    /// Compiles `source`; `special_tokens` become template variables (`bos_token`, ...).
    pub fn new(
        source: String,
        special_tokens: BTreeMap<String, Value>,
        origin: String,
    ) -> Result<Self> {
        let source = jinja2_source(&source);
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_function(GENERATION_BLOCK, generation_block);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.clone())
            .map_err(|e| anyhow!("{origin}: chat template does not compile: {}", describe(&e)))?;
        Ok(Self { env, special_tokens, origin, source })
    }

    /// The template's Jinja source, as read from `tokenizer_config.json` or
    /// `chat_template.jinja`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages` like `tokenizer.apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=...)`.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let template = self.env.get_template(TEMPLATE_NAME).map_err(|e| anyhow!("{e}"))?;
        let mut ctx: BTreeMap<String, Value> = self.special_tokens.clone();
        ctx.insert("messages".into(), Value::from_serialize(messages));
        ctx.insert("add_generation_prompt".into(), Value::from(add_generation_prompt));
        ctx.insert("tools".into(), Value::from(()));
        ctx.insert("documents".into(), Value::from(()));
        template.render(ctx).map_err(|e| {
            anyhow!("{}: chat template failed to render: {}", self.origin, describe(&e))
        })
    }
}

/// The function a `{% generation %}` block is rewritten to call (see [`jinja2_source`]).
const GENERATION_BLOCK: &str = "_generation_block";

/// `{% call _generation_block() %}body{% endcall %}`: renders the body once, unchanged, as
/// transformers' `AssistantTracker` extension does at render time (its body runs as a call
/// block there too, so scoping matches).
fn generation_block(state: &minijinja::State, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let caller: Value = kwargs.get("caller")?;
    kwargs.assert_all_used()?;
    caller.call(state, &[])
}

/// The template source as Jinja2 (with transformers' extensions) would read it:
///
/// - every `\r\n` or lone `\r` becomes `\n` (Jinja2's lexer splits the source on
///   `\r\n|\r|\n` and joins it with `newline_sequence`, `\n` by default; transformers also
///   reads `chat_template.jinja` in text mode), so a template saved with Windows line endings
///   renders the same bytes as its LF twin;
/// - `{% generation %}` / `{% endgeneration %}` tags (with any `-`/`+` whitespace control) become
///   `{% call _generation_block() %}` / `{% endcall %}`. Only real tags are rewritten: text
///   inside string literals, `{# comments #}` and `{% raw %}` blocks is left alone.
pub fn jinja2_source(source: &str) -> String {
    let source = source.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(source.len() + 64);
    let mut rest = source.as_str();
    while let Some(open) = rest.find('{') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let close = match from.get(..2) {
            Some("{#") => "#}",
            Some("{{") => "}}",
            Some("{%") => "%}",
            _ => {
                out.push('{');
                rest = &from[1..];
                continue;
            }
        };
        let Some(end) = tag_end(from, close) else {
            // Unclosed tag: leave it to the compiler to report.
            out.push_str(from);
            return out;
        };
        let tag = &from[..end];
        rest = &from[end..];
        if close != "%}" {
            out.push_str(tag);
            continue;
        }
        let inner = &tag[2..tag.len() - 2];
        let lead = if inner.starts_with(['-', '+']) { &inner[..1] } else { "" };
        let trail = if inner.ends_with(['-', '+']) && inner.len() > lead.len() {
            &inner[inner.len() - 1..]
        } else {
            ""
        };
        let body = inner[lead.len()..inner.len() - trail.len()].trim();
        match body {
            "generation" => {
                out.push_str(&format!("{{%{lead} call {GENERATION_BLOCK}() {trail}%}}"))
            }
            "endgeneration" => out.push_str(&format!("{{%{lead} endcall {trail}%}}")),
            "raw" => {
                // Copy everything up to the end of the raw block verbatim.
                out.push_str(tag);
                let stop = find_endraw(rest).unwrap_or(rest.len());
                out.push_str(&rest[..stop]);
                rest = &rest[stop..];
            }
            _ => out.push_str(tag),
        }
    }
    out.push_str(rest);
    out
}

/// Byte length of the tag starting at `from[0]` (through `close`), skipping string literals
/// inside `{{ }}` / `{% %}`.
fn tag_end(from: &str, close: &str) -> Option<usize> {
    let bytes = from.as_bytes();
    let mut i = 2;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) => {
                if c == b'\\' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None if close != "#}" && (c == b'\'' || c == b'"') => quote = Some(c),
            None if from[i..].starts_with(close) => return Some(i + 2),
            None => {}
        }
        i += 1;
    }
    None
}

/// Offset of the `{% endraw %}` tag (any whitespace control) in `text`.
fn find_endraw(text: &str) -> Option<usize> {
    let mut offset = 0;
    while let Some(open) = text[offset..].find("{%") {
        let at = offset + open;
        let inner = text[at + 2..].trim_start_matches(['-', '+']).trim_start();
        if inner.starts_with("endraw") {
            return Some(at);
        }
        offset = at + 2;
    }
    None
}

/// A minijinja error with its cause chain and template line.
fn describe(err: &JinjaError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The special-token attributes transformers passes to the template, from a
/// `tokenizer_config.json` or `special_tokens_map.json` object. Tokens are either strings or
/// `AddedToken` objects with a `content` field.
fn special_tokens(config: &serde_json::Value) -> BTreeMap<String, Value> {
    let text = |v: &serde_json::Value| -> Option<String> {
        v.as_str().map(str::to_string).or_else(|| v.get("content")?.as_str().map(str::to_string))
    };
    let mut out = BTreeMap::new();
    for key in
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
    {
        if let Some(token) = config.get(key).and_then(text) {
            out.insert(key.to_string(), Value::from(token));
        }
    }
    if let Some(list) = config.get("additional_special_tokens").and_then(|v| v.as_array()) {
        let tokens: Vec<String> = list.iter().filter_map(text).collect();
        out.insert("additional_special_tokens".into(), Value::from(tokens));
    }
    out
}

fn raise_exception(message: String) -> Result<Value, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, format!("raise_exception: {message}")))
}

/// `strftime_now(format)`: the current UTC time formatted with the common strftime codes.
fn strftime_now(format: String) -> Result<Value, JinjaError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] =
    ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Formats a Unix time (UTC) with `%d %m %Y %y %b %B %a %A %H %M %S %j %%`.
pub fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_march = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_march + 2) / 153;
    let day = doy_march - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let cumulative = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cumulative[(month - 1) as usize] + day + i64::from(leap && month > 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday.
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('Y') => out.push_str(&year.to_string()),
            Some('y') => out.push_str(&format!("{:02}", year % 100)),
            Some('b') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=...)`, so
/// with Python's separators (`", "`, `": "`) and no HTML escaping (unlike minijinja's own).
fn tojson(value: Value, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, format!("tojson: {e}")))?;
    let mut out = String::new();
    write_python_json(&json, indent, sort_keys.unwrap_or(false), 0, &mut out);
    Ok(Value::from(out))
}

fn write_python_json(
    v: &serde_json::Value,
    indent: Option<usize>,
    sort: bool,
    depth: usize,
    out: &mut String,
) {
    use serde_json::Value as J;
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v {
        J::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                write_python_json(item, indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        J::Object(map) if !map.is_empty() => {
            out.push('{');
            let mut entries: Vec<(&String, &J)> = map.iter().collect();
            if sort {
                entries.sort_by(|a, b| a.0.cmp(b.0));
            }
            for (i, (k, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                out.push_str(&J::String(k.clone()).to_string());
                out.push_str(": ");
                write_python_json(item, indent, sort, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        assert_eq!(strftime("%d %b %Y", 0), "01 Jan 1970");
        // 2024-02-29 12:34:56 UTC, a Thursday.
        assert_eq!(
            strftime("%Y-%m-%d %H:%M:%S %A %j", 1_709_210_096),
            "2024-02-29 12:34:56 Thursday 060"
        );
    }

    #[test]
    fn tojson_uses_python_separators() {
        let t = ChatTemplate::new(
            "{{ x | tojson }}|{{ x | tojson(indent=2) }}".into(),
            BTreeMap::new(),
            "test".into(),
        )
        .unwrap();
        let mut env_ctx = BTreeMap::new();
        env_ctx.insert("x", serde_json::json!({"a": [1, "<b>"], "c": {}}));
        let tmpl = t.env.get_template(TEMPLATE_NAME).unwrap();
        let out = tmpl.render(env_ctx).unwrap();
        assert_eq!(
            out,
            "{\"a\": [1, \"<b>\"], \"c\": {}}|{\n  \"a\": [\n    1,\n    \"<b>\"\n  ],\n  \"c\": {}\n}"
        );
    }
}
