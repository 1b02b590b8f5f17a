//! JSON Lines files the way people actually save them: one reader for every data file the
//! host takes (seed files, `judge --input`, eval sets), so they all accept and refuse the same
//! things and every error points at `file:line` and the field.
//!
//! Accepted, because editors and exporters produce them and the data is still valid:
//! - a UTF-8 byte-order mark at the start of the file, or of any line (Notepad, PowerShell 5
//!   `Out-File -Encoding utf8`, Excel exports; a BOM per line comes from concatenating such
//!   files). It is dropped, as Python's `utf-8-sig` codec does;
//! - CRLF line ends, blank and whitespace-only lines, a missing final newline.
//!
//! Refused with a precise error: a UTF-16 file (the PowerShell 5 `>` default), bytes that are
//! not UTF-8 (with the line of the first bad byte), a line that is not one JSON value
//! (`file:line:column`), and a record that does not fit the caller's type (`file:line: field
//! `name`: ...`, the field path from `serde_path_to_error`).

use std::fmt;
use std::path::Path;

use serde::de::DeserializeOwned;

/// The UTF-8 encoding of U+FEFF, the byte-order mark.
const UTF8_BOM: char = '\u{feff}';

/// Where a record came from: the file as the user named it and the 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    /// The file, as given (relative paths stay relative: that is what the user typed).
    pub file: String,
    /// 1-based line number, counting blank lines too (what an editor shows).
    pub line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

impl Place {
    /// An error about one field of the record at this place.
    pub fn field_error(&self, field: impl Into<String>, message: impl Into<String>) -> JsonlError {
        JsonlError::Field { place: self.clone(), field: field.into(), message: message.into() }
    }
}

/// Why a JSONL file or one of its records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JsonlError {
    /// The file could not be read at all.
    #[error("cannot read {file}: {source}")]
    Io {
        /// The file, as given.
        file: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file starts with a UTF-16 byte-order mark (FF FE or FE FF).
    #[error(
        "{file}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"
    )]
    Utf16 {
        /// The file, as given.
        file: String,
    },
    /// A byte sequence that is not UTF-8.
    #[error("{place}: not valid UTF-8 (byte {column} of the line); save the file as UTF-8")]
    NotUtf8 {
        /// Where the first bad byte is.
        place: Place,
        /// 1-based byte offset of the first bad byte in its line.
        column: usize,
    },
    /// The line is not one JSON value.
    #[error("{place}:{column}: invalid JSON: {message}")]
    Syntax {
        /// The line.
        place: Place,
        /// 1-based character column `serde_json` reports.
        column: usize,
        /// `serde_json`'s message without its (always "line 1") position.
        message: String,
    },
    /// A field of the record is missing or has the wrong type or value.
    #[error("{place}: field `{field}`: {message}")]
    Field {
        /// The line.
        place: Place,
        /// Dotted field path, e.g. `id` or `meta.tags[0]`.
        field: String,
        /// What was wrong and what was expected.
        message: String,
    },
    /// The record as a whole does not fit (e.g. an array where an object is expected).
    #[error("{place}: {message}")]
    Record {
        /// The line.
        place: Place,
        /// What was wrong and what was expected.
        message: String,
    },
}

impl JsonlError {
    /// The place the error points at, when it is about one line.
    pub fn place(&self) -> Option<&Place> {
        match self {
            Self::Io { .. } | Self::Utf16 { .. } => None,
            Self::NotUtf8 { place, .. }
            | Self::Syntax { place, .. }
            | Self::Field { place, .. }
            | Self::Record { place, .. } => Some(place),
        }
    }
}

/// The text of a JSONL file, decoded and ready to be walked line by line.
#[derive(Debug, Clone)]
pub struct JsonlText {
    file: String,
    text: String,
}

/// One non-blank line: its place and its text (without line end or byte-order mark).
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    file: &'a str,
    /// 1-based line number.
    pub number: usize,
    /// The line's text.
    pub text: &'a str,
}

impl JsonlText {
    /// Reads and decodes `path` (see the module docs for what is accepted).
    pub fn read(path: &Path) -> Result<Self, JsonlError> {
        let file = path.display().to_string();
        let bytes =
            std::fs::read(path).map_err(|source| JsonlError::Io { file: file.clone(), source })?;
        Self::from_bytes(file, bytes)
    }

    /// Decodes file contents; `file` names the source in errors.
    pub fn from_bytes(file: impl Into<String>, bytes: Vec<u8>) -> Result<Self, JsonlError> {
        let file = file.into();
        if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
            return Err(JsonlError::Utf16 { file });
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Self { file, text }),
            Err(e) => {
                let bytes = e.as_bytes();
                let good = &bytes[..e.utf8_error().valid_up_to()];
                let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let column = good.len() - line_start + 1;
                Err(JsonlError::NotUtf8 { place: Place { file, line }, column })
            }
        }
    }

    /// Text already decoded (tests, embedded data); `file` names the source in errors.
    pub fn from_text(file: impl Into<String>, text: impl Into<String>) -> Self {
        Self { file: file.into(), text: text.into() }
    }

    /// The file, as given.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The non-blank lines in order, each with its 1-based line number.
    pub fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        self.text.split('\n').enumerate().filter_map(|(i, raw)| {
            let text = raw.strip_suffix('\r').unwrap_or(raw);
            let text = text.strip_prefix(UTF8_BOM).unwrap_or(text);
            (!text.trim().is_empty()).then_some(Line { file: &self.file, number: i + 1, text })
        })
    }

    /// Every non-blank line deserialized as `T`, with its place; stops at the first error.
    pub fn records<T: DeserializeOwned>(&self) -> Result<Vec<(Place, T)>, JsonlError> {
        self.lines().map(|line| Ok((line.place(), line.parse()?))).collect()
    }
}

impl Line<'_> {
    /// The line's place, for errors and for records that must say where they came from.
    pub fn place(&self) -> Place {
        Place { file: self.file.to_string(), line: self.number }
    }

    /// Deserializes the line as `T` (one JSON value; surrounding whitespace is fine).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, JsonlError> {
        let mut de = serde_json::Deserializer::from_str(self.text);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            self.error(field, e.into_inner())
        })?;
        de.end().map_err(|e| self.error(String::new(), e))?;
        Ok(value)
    }

    fn error(&self, field: String, e: serde_json::Error) -> JsonlError {
        let place = self.place();
        // serde_json ends every message with " at line L column C"; L is always 1 here.
        let full = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
        if e.is_syntax() || e.is_eof() {
            return JsonlError::Syntax { place, column: e.column(), message };
        }
        let root = field.is_empty() || field == ".";
        // "missing field `x`" is reported at the containing object: name the field itself.
        if let Some(name) =
            message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`'))
        {
            let field = if root { name.to_string() } else { format!("{field}.{name}") };
            return JsonlError::Field { place, field, message: "missing".into() };
        }
        if root {
            JsonlError::Record { place, message }
        } else {
            JsonlError::Field { place, field, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Row {
        id: String,
        n: u32,
    }

    fn rows(text: &str) -> Result<Vec<(Place, Row)>, JsonlError> {
        JsonlText::from_text("f.jsonl", text).records()
    }

    #[test]
    fn bom_crlf_blank_lines_extra_fields_and_no_final_newline_are_fine() {
        let text = "\u{feff}{\"id\":\"a\",\"n\":1,\"extra\":true}\r\n\r\n   \r\n\t\n{\"id\":\"b\",\"n\":2}";
        let got = rows(text).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, Place { file: "f.jsonl".into(), line: 1 });
        assert_eq!(got[1].0.line, 5, "blank lines still count");
        assert_eq!(got[1].1, Row { id: "b".into(), n: 2 });
        // A byte-order mark on a later line (two such files concatenated).
        let got = rows("{\"id\":\"a\",\"n\":1}\n\u{feff}{\"id\":\"b\",\"n\":2}\n").unwrap();
        assert_eq!(got[1].1.id, "b");
    }

    #[test]
    fn bytes_are_decoded_or_refused_with_the_reason() {
        let mut bytes = vec![0xEF, 0xBB, 0xBF];
        bytes.extend_from_slice(b"{\"id\":\"a\",\"n\":1}\n");
        let text = JsonlText::from_bytes("f.jsonl", bytes).unwrap();
        assert_eq!(text.records::<Row>().unwrap()[0].1.id, "a");

        let err = JsonlText::from_bytes("w.jsonl", vec![0xFF, 0xFE, b'{', 0]).unwrap_err();
        assert!(matches!(err, JsonlError::Utf16 { .. }), "{err}");
        assert!(err.to_string().contains("save it as UTF-8"), "{err}");

        let err =
            JsonlText::from_bytes("l.jsonl", b"{}\n{\"id\":\"caf\xe9\"}\n".to_vec()).unwrap_err();
        match &err {
            JsonlError::NotUtf8 { place, column } => {
                assert_eq!((place.line, *column), (2, 11), "{err}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().starts_with("l.jsonl:2:"), "{err}");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let err = rows("{\"id\":\"a\",\"n\":1}\n{\"id\":\"b\",\"n\":-1}\n").unwrap_err();
        match &err {
            JsonlError::Field { place, field, .. } => {
                assert_eq!((place.line, field.as_str()), (2, "n"), "{err}");
            }
            other => panic!("{other}"),
        }
        assert!(!err.to_string().contains("line 1 column"), "position rewritten: {err}");

        let err = rows("\n{\"id\":\"a\"}\n").unwrap_err();
        assert_eq!(err.to_string(), "f.jsonl:2: field `n`: missing");

        let err = rows("{\"id\":\"a\",\"n\":1,}\n").unwrap_err();
        assert!(matches!(err, JsonlError::Syntax { column: 17, .. }), "{err}");
        assert!(err.to_string().starts_with("f.jsonl:1:17: invalid JSON"), "{err}");

        let err = rows("{\"id\":\"a\",\"n\":1} {\"id\":\"b\",\"n\":2}\n").unwrap_err();
        assert!(matches!(err, JsonlError::Syntax { .. }), "two values on one line: {err}");

        let err = rows("\"just text\"\n").unwrap_err();
        assert!(matches!(err, JsonlError::Record { .. }), "{err}");
        assert_eq!(err.place().map(|p| p.line), Some(1));
    }
}
