//! Seed files: JSONL, one `{"id", "category", "text"}` object per line. A bad line is reported
//! with its file and line number, never skipped silently.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, bail};

use crate::judging::{Category, Seed};

/// Reads a seed file. When `expect` is given, every seed must be of that category (one file
/// per category keeps the per-step batches balanced). Blank lines are allowed.
pub fn load_seeds(path: &Path, expect: Option<Category>) -> anyhow::Result<Vec<Seed>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read seed file {}", path.display()))?;
    parse_seeds(&text, &path.display().to_string(), expect)
}

/// Parses JSONL seed text; `origin` names the source in errors.
pub fn parse_seeds(
    text: &str,
    origin: &str,
    expect: Option<Category>,
) -> anyhow::Result<Vec<Seed>> {
    let mut seeds = Vec::new();
    let mut ids = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let seed: Seed = serde_json::from_str(line).map_err(|e| {
            anyhow::anyhow!(
                "{origin}:{line_no}: {e} (expected a JSON object {{\"id\": string, \"category\": \
                 \"harmful\"|\"benign\", \"text\": string}})"
            )
        })?;
        if seed.text.trim().is_empty() {
            bail!("{origin}:{line_no}: field `text` is empty");
        }
        if let Some(want) = expect
            && seed.category != want
        {
            bail!(
                "{origin}:{line_no}: field `category` is {:?} but this file holds {:?} seeds",
                seed.category,
                want
            );
        }
        if !ids.insert(seed.id.clone()) {
            bail!("{origin}:{line_no}: duplicate id {:?}", seed.id);
        }
        seeds.push(seed);
    }
    if seeds.is_empty() {
        bail!("{origin}: no seeds");
    }
    Ok(seeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_skips_blanks() {
        let text = "{\"id\":\"a\",\"category\":\"harmful\",\"text\":\"x\"}\n\n{\"id\":\"b\",\"category\":\"harmful\",\"text\":\"y\"}\n";
        let seeds = parse_seeds(text, "h.jsonl", Some(Category::Harmful)).unwrap();
        assert_eq!(seeds.len(), 2);
        assert_eq!(seeds[1].id, "b");
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "{\"id\":\"a\",\"category\":\"harmful\",\"text\":\"x\"}\n{\"id\":\"b\",\"category\":\"evil\",\"text\":\"y\"}\n";
        let err = parse_seeds(text, "h.jsonl", None).unwrap_err().to_string();
        assert!(err.starts_with("h.jsonl:2:"), "{err}");
        assert!(err.contains("evil"), "{err}");

        let text = "{\"id\":\"a\",\"category\":\"benign\",\"text\":\"x\"}\n";
        let err = parse_seeds(text, "h.jsonl", Some(Category::Harmful)).unwrap_err().to_string();
        assert!(err.contains("h.jsonl:1") && err.contains("category"), "{err}");

        let text = "{\"id\":\"a\",\"category\":\"benign\"}\n";
        let err = parse_seeds(text, "b.jsonl", None).unwrap_err().to_string();
        assert!(err.contains("b.jsonl:1") && err.contains("text"), "{err}");

        let text = "{\"id\":\"a\",\"category\":\"benign\",\"text\":\"x\"}\n{\"id\":\"a\",\"category\":\"benign\",\"text\":\"y\"}";
        let err = parse_seeds(text, "b.jsonl", None).unwrap_err().to_string();
        assert!(err.contains("b.jsonl:2") && err.contains("duplicate"), "{err}");

        assert!(parse_seeds("\n", "e.jsonl", None).is_err());
    }
}
