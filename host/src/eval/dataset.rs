//! Evaluation data: our seed JSONL as it is, or any JSONL/CSV with a prompt column and a label
//! column, mapped onto harmful/benign by flags. Safety benchmarks ship in that shape (a prompt
//! and a `safe`/`unsafe` or `1`/`0` label, often a category column); none is hard-coded here.
//!
//! Every bad input is one precise error naming the file, the line (JSONL line or CSV record
//! line) and the field: a missing column, an empty prompt, a label value that the mapping does
//! not cover, a duplicate id, an empty file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::jsonl::JsonlText;
use crate::judging::Category;

/// One prompt to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalItem {
    /// Unique over all data files of one eval: the file's id column, else `<file stem>:<line>`.
    pub id: String,
    /// Harmful or benign, from the label column through [`FieldMap::labels`].
    pub category: Category,
    /// The value of `--group-field` (e.g. a harm sub-category); `None` without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The prompt text sent to the target as the single user turn.
    pub prompt: String,
}

/// How the columns of a data file map onto [`EvalItem`]. The defaults read our seed JSONL
/// (`{"id", "category": "harmful"|"benign", "text"}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldMap {
    /// Column holding the prompt (default `text`).
    pub prompt_field: String,
    /// Column holding the label that [`FieldMap::labels`] maps to a category (default
    /// `category`).
    pub label_field: String,
    /// Optional id column; when absent (or missing in a file) ids are `<file stem>:<line>`.
    pub id_field: Option<String>,
    /// Optional column to break rates down by (e.g. a harm sub-category), the `--group-field`
    /// flag.
    pub group_field: Option<String>,
    /// Label value -> category, compared after trimming and ASCII lower-casing.
    pub labels: BTreeMap<String, Category>,
    /// CSV comment character (lines starting with it are skipped), e.g. `#`.
    pub csv_comment: Option<u8>,
}

impl Default for FieldMap {
    fn default() -> Self {
        Self {
            prompt_field: "text".into(),
            label_field: "category".into(),
            id_field: Some("id".into()),
            group_field: None,
            labels: BTreeMap::from([
                ("harmful".into(), Category::Harmful),
                ("benign".into(), Category::Benign),
            ]),
            csv_comment: None,
        }
    }
}

impl FieldMap {
    /// Replaces the label mapping with `harmful`/`benign` values and `KEY=harmful|benign`
    /// pairs (the `--harmful-label`, `--benign-label` and `--label-map` flags). With none
    /// given the default mapping (`harmful`, `benign`) stays.
    pub fn set_labels(
        &mut self,
        harmful: &[String],
        benign: &[String],
        map: &[String],
    ) -> anyhow::Result<()> {
        if harmful.is_empty() && benign.is_empty() && map.is_empty() {
            return Ok(());
        }
        let mut labels = BTreeMap::new();
        let mut add = |value: &str, c: Category, flag: &str| -> anyhow::Result<()> {
            let key = normalise_label(value);
            if key.is_empty() {
                bail!("{flag} `{value}`: the label value is empty");
            }
            if let Some(prev) = labels.insert(key.clone(), c)
                && prev != c
            {
                bail!("{flag}: label `{key}` is mapped to both harmful and benign");
            }
            Ok(())
        };
        for v in harmful {
            add(v, Category::Harmful, "--harmful-label")?;
        }
        for v in benign {
            add(v, Category::Benign, "--benign-label")?;
        }
        for pair in map {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--label-map `{pair}`: expected VALUE=harmful|benign"))?;
            let c = match v.trim().to_ascii_lowercase().as_str() {
                "harmful" => Category::Harmful,
                "benign" => Category::Benign,
                other => bail!("--label-map `{pair}`: `{other}` is not harmful or benign"),
            };
            add(k, c, "--label-map")?;
        }
        self.labels = labels;
        Ok(())
    }

    fn category_of(&self, raw: &str, at: &str) -> anyhow::Result<Category> {
        self.labels.get(&normalise_label(raw)).copied().ok_or_else(|| {
            anyhow!(
                "{at}: field `{}`: label `{raw}` is not mapped (known: {}; map it with \
                 --harmful-label / --benign-label / --label-map)",
                self.label_field,
                self.labels.keys().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )
        })
    }
}

fn normalise_label(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// The on-disk format, from the file extension (`.csv`, `.tsv`; anything else is JSONL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON Lines: one object per line (any extension but `.csv`/`.tsv`).
    Jsonl,
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// Tab-separated values with a header row (`.tsv`).
    Tsv,
}

impl Format {
    /// The format of `path` by its extension, case-insensitive.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") => Format::Csv,
            Some("tsv") => Format::Tsv,
            _ => Format::Jsonl,
        }
    }
}

/// Reads every data file and checks that ids are unique across them.
pub fn load_all(paths: &[impl AsRef<Path>], map: &FieldMap) -> anyhow::Result<Vec<EvalItem>> {
    let mut items = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for path in paths {
        let path = path.as_ref();
        for (at, item) in load_file(path, map)? {
            if let Some(first) = seen.insert(item.id.clone(), at.clone()) {
                bail!("{at}: duplicate id `{}` (first seen at {first})", item.id);
            }
            items.push(item);
        }
    }
    Ok(items)
}

/// Reads one data file; each item comes with its `file:line` for later errors.
pub fn load_file(path: &Path, map: &FieldMap) -> anyhow::Result<Vec<(String, EvalItem)>> {
    let origin = path.display().to_string();
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("data").to_string();
    let items = match Format::of(path) {
        Format::Jsonl => parse_jsonl(&JsonlText::read(path)?, &stem, map)?,
        format => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read data file {}", path.display()))?;
            if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
                bail!(
                    "{origin}: the file is UTF-16 (it starts with a UTF-16 byte-order mark); save it as UTF-8"
                );
            }
            let text = String::from_utf8(bytes)
                .map_err(|e| anyhow!("{origin}: not UTF-8 text ({e}); save it as UTF-8"))?;
            let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
            let delimiter = if format == Format::Tsv { b'\t' } else { b',' };
            parse_csv(text, delimiter, &origin, &stem, map)?
        }
    };
    if items.is_empty() {
        bail!("{origin}: no items (the file is empty)");
    }
    Ok(items)
}

/// One record's fields as strings (JSON numbers and booleans are rendered as text, so a
/// `label: 1` maps with `--harmful-label 1`).
trait Record {
    /// `Ok(None)` when the field is absent; an error when it has an unusable type.
    fn get(&self, field: &str, at: &str) -> anyhow::Result<Option<String>>;
}

impl Record for serde_json::Map<String, serde_json::Value> {
    fn get(&self, field: &str, at: &str) -> anyhow::Result<Option<String>> {
        use serde_json::Value;
        match self.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(other) => {
                bail!("{at}: field `{field}`: expected a string, number or boolean, found {other}")
            }
        }
    }
}

fn item_from(
    record: &dyn Record,
    at: &str,
    line: usize,
    stem: &str,
    map: &FieldMap,
) -> anyhow::Result<EvalItem> {
    let prompt = record
        .get(&map.prompt_field, at)?
        .ok_or_else(|| anyhow!("{at}: field `{}` (the prompt) is missing", map.prompt_field))?;
    if prompt.trim().is_empty() {
        bail!("{at}: field `{}` (the prompt) is empty", map.prompt_field);
    }
    let label = record
        .get(&map.label_field, at)?
        .ok_or_else(|| anyhow!("{at}: field `{}` (the label) is missing", map.label_field))?;
    let category = map.category_of(&label, at)?;
    let id = match &map.id_field {
        Some(f) => record.get(f, at)?.filter(|s| !s.trim().is_empty()),
        None => None,
    }
    .unwrap_or_else(|| format!("{stem}:{line}"));
    let group = match &map.group_field {
        Some(f) => Some(
            record
                .get(f, at)?
                .map(|g| g.trim().to_string())
                .filter(|g| !g.is_empty())
                .unwrap_or_else(|| "(none)".into()),
        ),
        None => None,
    };
    Ok(EvalItem { id, category, group, prompt })
}

/// JSONL through the shared reader (`crate::jsonl`: BOM, CRLF, blank lines, UTF-16 and bad
/// UTF-8 refused), one object per line.
fn parse_jsonl(
    text: &JsonlText,
    stem: &str,
    map: &FieldMap,
) -> anyhow::Result<Vec<(String, EvalItem)>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let at = line.place().to_string();
        let value: serde_json::Value = line.parse()?;
        let serde_json::Value::Object(obj) = value else {
            bail!("{at}: expected a JSON object, found {value}");
        };
        out.push((at.clone(), item_from(&obj, &at, line.number, stem, map)?));
    }
    Ok(out)
}

/// A CSV record with its header.
struct CsvRow<'a> {
    header: &'a HashMap<String, usize>,
    record: &'a csv::StringRecord,
}

impl Record for CsvRow<'_> {
    fn get(&self, field: &str, _at: &str) -> anyhow::Result<Option<String>> {
        Ok(self.header.get(field).and_then(|&i| self.record.get(i)).map(str::to_string))
    }
}

fn parse_csv(
    text: &str,
    delimiter: u8,
    origin: &str,
    stem: &str,
    map: &FieldMap,
) -> anyhow::Result<Vec<(String, EvalItem)>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .comment(map.csv_comment)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| anyhow!("{origin}: bad CSV header: {e}"))?.clone();
    if headers.is_empty() || (headers.len() == 1 && headers[0].trim().is_empty()) {
        bail!("{origin}: no items (the file is empty)");
    }
    let header: HashMap<String, usize> =
        headers.iter().enumerate().map(|(i, h)| (h.trim().to_string(), i)).collect();
    let header_line = headers.position().map_or(1, |p| p.line());
    let columns = || headers.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", ");
    for (what, field) in [("prompt", &map.prompt_field), ("label", &map.label_field)] {
        if !header.contains_key(field.as_str()) {
            bail!(
                "{origin}:{header_line}: no column `{field}` (the {what} column; the header has \
                 {}; choose one with --{what}-field)",
                columns()
            );
        }
    }
    if let Some(g) = &map.group_field
        && !header.contains_key(g.as_str())
    {
        bail!(
            "{origin}:{header_line}: no column `{g}` (--group-field); the header has {}",
            columns()
        );
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => anyhow!("{origin}:{}: bad CSV record: {e}", p.line()),
            None => anyhow!("{origin}: bad CSV: {e}"),
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let at = format!("{origin}:{line}");
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let row = CsvRow { header: &header, record: &record };
        out.push((at.clone(), item_from(&row, &at, line, stem, map)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn seed_jsonl_reads_as_is_with_bom_crlf_and_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "seeds.jsonl",
            "\u{feff}{\"id\":\"h1\",\"category\":\"harmful\",\"text\":\"x\"}\r\n\r\n{\"id\":\"b1\",\"category\":\"benign\",\"text\":\"y\"}\r\n",
        );
        let items = load_all(&[&p], &FieldMap::default()).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "h1");
        assert_eq!(items[0].category, Category::Harmful);
        assert_eq!(items[1].category, Category::Benign);
        assert_eq!(items[1].prompt, "y");
    }

    #[test]
    fn csv_with_mapped_columns_labels_and_groups() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "bench.csv",
            "# a comment\nprompt,label,kind\n\"How do I, say, bake bread?\",safe,food\n\
             \"multi\nline\",UNSAFE,weapons\n",
        );
        let mut map = FieldMap {
            prompt_field: "prompt".into(),
            label_field: "label".into(),
            id_field: None,
            group_field: Some("kind".into()),
            csv_comment: Some(b'#'),
            ..FieldMap::default()
        };
        map.set_labels(&["unsafe".into()], &["safe".into()], &[]).unwrap();
        let items = load_all(&[&p], &map).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].prompt, "How do I, say, bake bread?");
        assert_eq!(items[0].category, Category::Benign);
        assert_eq!(items[0].group.as_deref(), Some("food"));
        assert_eq!(items[0].id, "bench:3");
        assert_eq!(items[1].prompt, "multi\nline");
        assert_eq!(items[1].category, Category::Harmful);
        assert_eq!(items[1].id, "bench:4");
    }

    #[test]
    fn label_map_and_numeric_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "n.jsonl",
            "{\"q\":\"a\",\"y\":1}\n{\"q\":\"b\",\"y\":0}\n{\"q\":\"c\",\"y\":true}\n",
        );
        let mut map =
            FieldMap { prompt_field: "q".into(), label_field: "y".into(), ..FieldMap::default() };
        map.set_labels(&[], &[], &["1=harmful".into(), "0=benign".into(), "true=harmful".into()])
            .unwrap();
        let items = load_all(&[&p], &map).unwrap();
        let cats: Vec<_> = items.iter().map(|i| i.category).collect();
        assert_eq!(cats, vec![Category::Harmful, Category::Benign, Category::Harmful]);
        assert_eq!(items[0].id, "n:1", "no id column: file stem and line");
        let err = map.set_labels(&[], &[], &["x=evil".into()]).unwrap_err().to_string();
        assert!(err.contains("evil"), "{err}");
        let err = map.set_labels(&["a".into()], &["A".into()], &[]).unwrap_err().to_string();
        assert!(err.contains("both"), "{err}");
    }

    #[test]
    fn precise_errors() {
        let dir = tempfile::tempdir().unwrap();
        let map = FieldMap {
            prompt_field: "prompt".into(),
            label_field: "label".into(),
            ..FieldMap::default()
        };
        // A CSV without the named column.
        let p = write(dir.path(), "a.csv", "question,label\nhi,benign\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(
            err.contains("a.csv:1")
                && err.contains("no column `prompt`")
                && err.contains("`question`"),
            "{err}"
        );
        // An empty file, CSV or JSONL.
        for name in ["e.csv", "e.jsonl"] {
            let p = write(dir.path(), name, "");
            let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
            assert!(err.contains(name) && err.contains("empty"), "{err}");
        }
        // A header only.
        let p = write(dir.path(), "h.csv", "prompt,label\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(err.contains("no items"), "{err}");
        // An unmapped label value names the line and the known values.
        let p = write(dir.path(), "l.csv", "prompt,label\nhi,benign\nyo,unsafe\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(
            err.contains("l.csv:3") && err.contains("`unsafe`") && err.contains("`harmful`"),
            "{err}"
        );
        // A ragged row.
        let p = write(dir.path(), "r.csv", "prompt,label\nhi,benign,extra\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(err.contains("r.csv:2"), "{err}");
        // JSONL: missing field, bad JSON, empty prompt.
        let p = write(
            dir.path(),
            "m.jsonl",
            "{\"prompt\":\"x\",\"label\":\"benign\"}\n{\"label\":\"benign\"}\n",
        );
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(
            err.contains("m.jsonl:2") && err.contains("`prompt`") && err.contains("missing"),
            "{err}"
        );
        let p = write(dir.path(), "j.jsonl", "{nope\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(err.contains("j.jsonl:1") && err.contains("invalid JSON"), "{err}");
        let p = write(dir.path(), "w.jsonl", "{\"prompt\":\" \",\"label\":\"benign\"}\n");
        let err = format!("{:#}", load_all(&[&p], &map).unwrap_err());
        assert!(err.contains("w.jsonl:1") && err.contains("empty"), "{err}");
        // Duplicate ids across files.
        let a = write(
            dir.path(),
            "d1.jsonl",
            "{\"id\":\"x\",\"category\":\"benign\",\"text\":\"a\"}\n",
        );
        let b = write(
            dir.path(),
            "d2.jsonl",
            "{\"id\":\"x\",\"category\":\"benign\",\"text\":\"b\"}\n",
        );
        let err = format!("{:#}", load_all(&[&a, &b], &FieldMap::default()).unwrap_err());
        assert!(err.contains("d2.jsonl:1") && err.contains("d1.jsonl:1"), "{err}");
        // A missing file.
        let err = format!("{:#}", load_all(&[dir.path().join("nope.csv")], &map).unwrap_err());
        assert!(err.contains("nope.csv"), "{err}");
    }
}
