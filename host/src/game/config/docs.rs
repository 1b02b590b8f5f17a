//! The documented TOML that `train --print-config` prints: every key with its documentation
//! ([`FIELDS`]) and its default (read from [`Config::default`], so it cannot drift) in comments
//! above it. A unit test fails when a key has no entry in [`FIELDS`] or an entry names no key:
//! a new field is not done until it is documented.

use std::fmt::Write as _;

use super::Config;
use super::fields::FIELDS;

/// Text wider than this is wrapped onto further comment lines.
const WIDTH: usize = 96;

/// The config as TOML with the documentation of every key in comments above it.
pub(super) fn render(config: &Config) -> anyhow::Result<String> {
    let mut value = toml::Value::try_from(config)?;
    let mut defaults = toml::Value::try_from(Config::default())?;
    shortest_floats(&mut value);
    shortest_floats(&mut defaults);
    let toml::Value::Table(root) = &value else { anyhow::bail!("the config is not a table") };
    let mut out = String::from(
        "# The resolved run configuration. Every key is documented above it; the default is the\n\
         # paper's value unless noted. Old key names (lr, steps, betas, ...) are still accepted.\n",
    );
    write_table(&mut out, "", root, &defaults)?;
    Ok(out)
}

/// `toml::Value::try_from` widens f32 fields to f64 (`temperature = 0.8` would print as
/// `0.800000011920929`): a float that is exactly an f32 is written as that f32's shortest
/// decimal, which reads back to the same f32. Other f64 values are left as they are.
fn shortest_floats(value: &mut toml::Value) {
    match value {
        toml::Value::Float(x) if x.is_finite() && f64::from(*x as f32) == *x => {
            if let Ok(short) = (*x as f32).to_string().parse::<f64>() {
                *x = short;
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(shortest_floats),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, v)| shortest_floats(v)),
        _ => {}
    }
}

fn doc_of(key: &str) -> Option<&'static str> {
    FIELDS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d)
}

/// One entry of a table as printed: a key with its value, or a documented optional key that
/// is unset (printed commented out).
enum Entry<'a> {
    Set(&'a String, &'a toml::Value),
    /// The full dotted key and its last part.
    Unset(&'static str, &'static str),
}

/// The table's entries in [`FIELDS`] order, unset optional keys in their place among the set
/// ones (map entries, which have no [`FIELDS`] line, after them by name), and plain values
/// before tables (TOML puts a table's keys before its sub-tables).
fn entries<'a>(path: &str, table: &'a toml::Table) -> Vec<Entry<'a>> {
    let rank = |full: &str| FIELDS.iter().position(|(f, _)| *f == full).unwrap_or(usize::MAX);
    let mut entries: Vec<(bool, usize, Entry<'a>)> =
        table.iter().map(|(k, v)| (v.is_table(), rank(&join(path, k)), Entry::Set(k, v))).collect();
    for (key, _) in FIELDS {
        let leaf = if path.is_empty() {
            Some(*key)
        } else {
            key.strip_prefix(path).and_then(|k| k.strip_prefix('.'))
        };
        if let Some(leaf) = leaf
            && !leaf.contains('.')
            && !leaf.is_empty()
            && !table.contains_key(leaf)
        {
            entries.push((false, rank(key), Entry::Unset(key, leaf)));
        }
    }
    // Stable: map entries (all ranked last) keep the table's order, which is by name.
    entries.sort_by_key(|(is_table, rank, _)| (*is_table, *rank));
    entries.into_iter().map(|(_, _, e)| e).collect()
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn write_table(
    out: &mut String,
    path: &str,
    table: &toml::Table,
    defaults: &toml::Value,
) -> anyhow::Result<()> {
    for entry in entries(path, table) {
        match entry {
            Entry::Set(key, toml::Value::Table(sub)) => {
                let full = join(path, key);
                out.push('\n');
                write_doc(out, &full, None);
                let header = full.split('.').map(toml_key).collect::<Vec<_>>().join(".");
                writeln!(out, "[{header}]")?;
                write_table(out, &full, sub, defaults)?;
            }
            Entry::Set(key, value) => {
                write_doc(out, &join(path, key), Some(defaults));
                writeln!(out, "{} = {value}", toml_key(key))?;
            }
            Entry::Unset(full, leaf) => {
                write_doc(out, full, Some(defaults));
                writeln!(out, "# {leaf} is unset")?;
            }
        }
    }
    Ok(())
}

/// The comment lines above a key: its documentation and, for values, its default.
fn write_doc(out: &mut String, key: &str, defaults: Option<&toml::Value>) {
    let Some(doc) = doc_of(key) else { return };
    let mut text = doc.to_string();
    if let Some(defaults) = defaults {
        let default = key.split('.').try_fold(defaults, |v, k| v.get(k));
        match default {
            Some(v) => text.push_str(&format!(" Default: {v}.")),
            None => text.push_str(" Default: unset."),
        }
    }
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

/// A key as TOML writes it: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        key.to_string()
    } else {
        toml::Value::String(key.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// Every dotted key (tables and values) of a serialized config.
    fn keys(path: &str, value: &toml::Value, out: &mut Vec<String>) {
        if let toml::Value::Table(t) = value {
            for (k, v) in t {
                let full = join(path, k);
                out.push(full.clone());
                // Map entries (plugin names) are the user's, not documented keys.
                if !matches!(full.as_str(), "plugins.paths" | "plugins.settings") {
                    keys(&full, v, out);
                }
            }
        }
    }

    /// A config with every optional key set, so every key appears when serialized.
    fn full() -> Config {
        let mut c = Config::default();
        c.models.judge = Some(crate::openai::ModelRef::Local(PathBuf::from("j")));
        c.plugins.dir = Some(PathBuf::from("p"));
        c.game.attacker_temperature = Some(0.6);
        c.game.defender_temperature = Some(0.6);
        c.game.defender_sampling_system_prompt = Some(PathBuf::from("s"));
        c.game.defender_sampling_prompt_template = Some(PathBuf::from("t"));
        c.game.defender_sampling_prompt_template_benign = Some(PathBuf::from("b"));
        c.algorithm.benign_seeds_per_step = Some(48);
        c.algorithm.benign_rejected_refusal = Some("No.".into());
        c
    }

    #[test]
    fn every_key_is_documented_and_every_entry_is_a_key() {
        let mut all = Vec::new();
        keys("", &toml::Value::try_from(full()).unwrap(), &mut all);
        let undocumented: Vec<&String> = all.iter().filter(|k| doc_of(k).is_none()).collect();
        assert!(
            undocumented.is_empty(),
            "add these keys to game/config/fields.rs FIELDS (meaning, unit, range): {undocumented:?}"
        );
        let stale: Vec<&str> =
            FIELDS.iter().map(|(k, _)| *k).filter(|k| !all.iter().any(|a| a == k)).collect();
        assert!(stale.is_empty(), "FIELDS entries that are no config key: {stale:?}");
        for (key, doc) in FIELDS {
            assert!(doc.ends_with('.') || doc.ends_with(')'), "{key}: end the text with a period");
        }
    }

    #[test]
    fn documented_toml_parses_back_to_the_same_config() {
        let mut c = full();
        c.plugins.paths.insert("my judge".into(), PathBuf::from("/tmp/j.wasm"));
        c.plugins
            .settings
            .insert("llm".into(), BTreeMap::from([("max_tokens".into(), toml::Value::Integer(3))]));
        c.data.harmful_val = None;
        c.game.attacker_prefill = Some("<think>\n\"quoted\" # not a comment".into());
        c.game.temperature = 0.8;
        c.game.top_p = 0.9;
        c.algorithm.beta = 0.1;
        for config in [Config::default(), c.clone()] {
            let text = config.to_documented_toml().unwrap();
            let back = Config::parse(&text, "printed", &[]).unwrap();
            assert_eq!(back, config, "{text}");
        }
        let text = Config::default().to_documented_toml().unwrap();
        assert!(
            text.contains(
                "# AdamW peak learning rate (was `lr`). Per step, >= 0. Default: 0.000001.\n\
                 learning_rate = 0.000001\n"
            ),
            "{text}"
        );
        assert!(text.contains("# judge is unset\n"), "{text}");
        // f32 fields print as written, not widened to f64 (0.800000011920929).
        let text = c.to_documented_toml().unwrap();
        for line in ["\ntemperature = 0.8\n", "\ntop_p = 0.9\n", "\nbeta = 0.1\n"] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
    }
    /// An unset optional key prints where it prints when set, among its table's keys, not
    /// after the table (where it would follow the table's sub-tables).
    #[test]
    fn unset_keys_print_in_their_place() {
        let unset = Config::default().to_documented_toml().unwrap();
        let mut c = Config::default();
        c.algorithm.benign_rejected_refusal = Some("no".into());
        let set = c.to_documented_toml().unwrap();
        let previous_key = |text: &str, line: &str| {
            let at = text.find(line).unwrap_or_else(|| panic!("{line:?} in {text}"));
            text[..at].lines().rev().find(|l| !l.starts_with('#')).map(String::from)
        };
        let key = previous_key(&set, "\nbenign_rejected_refusal = \"no\"\n");
        assert_eq!(key.as_deref(), Some("rpo_alpha = 0.0"));
        assert_eq!(previous_key(&unset, "\n# benign_rejected_refusal is unset\n"), key);
    }
}
