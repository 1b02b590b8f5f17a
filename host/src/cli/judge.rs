//! `advgame-host judge --judge FILE [--rubric NAME=FILE ...] --input FILE.jsonl`: runs a
//! judge plugin over a user's own JSONL of comparisons and assessments and writes one JSON
//! result per input line (scores or a typed failure): how users test a judge or rubric on
//! their own labelled data.
//!
//! Input lines: `{"rubric", "context", "a", "b"}` (comparison) or
//! `{"rubric", "context", "response"}` (assessment); an optional `"id"` (a string or an
//! integer, unique in the file) is echoed back. The file is read with [`crate::jsonl`]: a
//! byte-order mark, CRLF and blank lines are fine, and every bad line is one `file:line`
//! error before anything is judged. Output lines: `{"line", "id", "a", "b", "rationale"}`, `{"line", "id",
//! "score"}` or `{"line", "id", "failure": {"kind", "plugin", "message"}}`.
//!
//! Lines with a `label` (`a`/`b`/`tie` for comparisons, a class for assessments) are also
//! scored against it: accuracy, Cohen's kappa and confusion matrices per rubric are printed
//! (standard error) and written as JSON to `--metrics` (default: beside `--output`, as
//! `OUTPUT.metrics.json`). See [`labels`].

mod labels;

use super::plugin::Setup;
use crate::game::plugins::PluginLoadError;
use crate::jsonl::{JsonlText, Place};
use crate::judging::{Assessment, Comparison, Failure, FailureKind, Judge};
use crate::llm::Generator;
use crate::plugin::{JudgeOptions, JudgePlugin, WorldKind};
use clap::Args;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Arguments of `advgame-host judge`.
#[derive(Debug, Args)]
pub struct JudgeArgs {
    /// The judge component.
    #[arg(long)]
    pub judge: PathBuf,
    /// JSONL of comparisons and/or assessments.
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the results (JSONL); standard output by default.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Items per judge call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Share of comparisons judged with A and B exchanged (scores flipped back).
    #[arg(long, default_value_t = 0.0)]
    pub swap_share: f64,
    /// Share of comparisons judged in both orders (averaged; agreement reported).
    #[arg(long, default_value_t = 0.0)]
    pub both_orders_share: f64,
    /// Judge model (Hugging Face folder) serving the plugin's `host.generate`. Without it,
    /// LLM judges report a `host` failure per item; heuristic judges need none.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// OpenAI-compatible server serving the judge model instead of a local folder
    /// (e.g. `http://127.0.0.1:8011/v1` from `advgame-host serve`, or a vLLM server).
    #[arg(long, conflicts_with = "model")]
    pub judge_url: Option<String>,
    /// With --judge-url: the model id to request (default: the first the server lists).
    #[arg(long, requires = "judge_url")]
    pub judge_model_name: Option<String>,
    /// With --judge-url: environment variable holding the server's API key.
    #[arg(long, requires = "judge_url")]
    pub judge_api_key_env: Option<String>,
    /// With --judge-url: a folder with the served model's tokenizer files. Servers that
    /// reject vLLM's `continue_final_message` (used for the rubric prefill) then get the
    /// chat template rendered here and sent to `/v1/completions`.
    #[arg(long, requires = "judge_url")]
    pub judge_tokenizer: Option<PathBuf>,
    /// Device of the judge model: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Where to write accuracy, kappa and confusion matrices against the input's `label`s
    /// (JSON). Default: `OUTPUT.metrics.json` beside `--output`; printed in any case.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Labelled assessments: a score at or above this predicts the positive class.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f32,
    /// Labelled comparisons: scores this close (or closer) predict `tie`.
    #[arg(long, default_value_t = 0.0)]
    pub tie_margin: f32,
    /// Labelled assessments: the label words that mean "score >= threshold" (repeatable).
    /// Default: a word naming the rubric (`refusal`/`refused` for rubric `refusal`), or
    /// yes/true/positive.
    #[arg(long = "positive-label")]
    pub positive_labels: Vec<String>,
    /// Sandbox limits, plugin config and rubrics.
    #[command(flatten)]
    pub setup: Setup,
}

/// One validated input line.
#[derive(Debug)]
enum Item {
    Compare(Comparison),
    Assess(Assessment),
}

fn field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    name: &str,
    at: &str,
) -> anyhow::Result<&'a str> {
    match obj.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => anyhow::bail!("{at}: field `{name}`: expected a string, found {other}"),
        None => anyhow::bail!("{at}: field `{name}`: missing (expected a string)"),
    }
}

/// An input line's optional `id`: a string or an integer (the rule of seed files), echoed
/// back unchanged; `null` counts as absent. Anything else is refused naming `id`.
fn item_id(obj: &serde_json::Map<String, Value>, place: &Place) -> anyhow::Result<Value> {
    match obj.get("id") {
        None | Some(Value::Null) => Ok(Value::Null),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Value::String(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Value::Number(n.clone())),
        Some(other) => Err(place
            .field_error(
                "id",
                format!(
                    "expected a non-empty string or an integer, found {other} (quote any other \
                     id to keep its exact text)"
                ),
            )
            .into()),
    }
}

/// Reads and validates every line before any judging starts (the shared JSONL reader: a
/// byte-order mark, CRLF and blank lines are fine). Ids, when given, must be unique: results
/// are joined back to the input by them.
fn read_items(path: &Path) -> anyhow::Result<Vec<(usize, Value, Item)>> {
    let text = JsonlText::read(path)?;
    let mut items = Vec::new();
    let mut ids: HashMap<String, Place> = HashMap::new();
    for line in text.lines() {
        let place = line.place();
        let at = place.to_string();
        let value: Value = line.parse()?;
        let Value::Object(obj) = &value else {
            anyhow::bail!("{at}: expected a JSON object, found {value}");
        };
        let id = item_id(obj, &place)?;
        if !id.is_null() {
            let key = id.as_str().map_or_else(|| id.to_string(), str::to_string);
            if let Some(first) = ids.insert(key, place.clone()) {
                anyhow::bail!(
                    "{at}: field `id`: {id} is also the id of {first}; ids must be unique \
                     (results are matched to inputs by them)"
                );
            }
        }
        let rubric = field(obj, "rubric", &at)?.to_string();
        let context = field(obj, "context", &at)?.to_string();
        let item = match (
            obj.contains_key("a") || obj.contains_key("b"),
            obj.contains_key("response"),
        ) {
            (true, false) => Item::Compare(Comparison {
                rubric,
                context,
                a: field(obj, "a", &at)?.into(),
                b: field(obj, "b", &at)?.into(),
            }),
            (false, true) => Item::Assess(Assessment {
                rubric,
                context,
                response: field(obj, "response", &at)?.into(),
            }),
            _ => anyhow::bail!(
                "{at}: expected either fields `a` and `b` (a comparison) or `response` (an assessment)"
            ),
        };
        items.push((line.number, id, item));
    }
    Ok(items)
}

fn failure_json(f: &Failure) -> Value {
    json!({"kind": f.kind.as_str(), "plugin": f.plugin, "message": f.message})
}

/// Runs `judge`: one JSON result per input line (in input order), and agreement metrics
/// when the input has labels. Input errors stop the run before anything is judged.
pub fn run(args: JudgeArgs) -> anyhow::Result<()> {
    let generator: Option<Box<dyn Generator>> = match &args.model {
        Some(dir) => {
            let device = crate::model::parse_device(&args.device)?;
            let kind = crate::model::default_kind(device);
            Some(Box::new(crate::model::ChatModel::load(dir, device, kind)?))
        }
        None => match &args.judge_url {
            Some(url) => {
                let mut remote = crate::openai::RemoteModel::at(url);
                remote.model = args.judge_model_name.clone();
                remote.api_key_env = args.judge_api_key_env.clone();
                remote.tokenizer = args.judge_tokenizer.clone();
                Some(Box::new(crate::openai::RemoteGenerator::open(&remote)?))
            }
            None => None,
        },
    };
    run_with(args, generator)
}

/// Runs the command with `generator` serving the judge's `host.generate` (the model engine
/// plugs in here); without one, generation requests fail per item with a `host` failure.
pub fn run_with(args: JudgeArgs, generator: Option<Box<dyn Generator>>) -> anyhow::Result<()> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    for (name, share) in
        [("--swap-share", args.swap_share), ("--both-orders-share", args.both_orders_share)]
    {
        anyhow::ensure!(
            (0.0..=1.0).contains(&share),
            "{name} {share}: expected a share between 0 and 1"
        );
    }
    let items = read_items(&args.input)?;
    let mut scorer = label_scorer(&args, &items)?;
    let engine = args.setup.engine()?;
    let registry = args.setup.registry(&engine)?;
    let options = JudgeOptions {
        config: args.setup.config()?,
        swap_share: args.swap_share,
        both_orders_share: args.both_orders_share,
        seed: 0,
    };
    let mut judge = JudgePlugin::load(&engine, &args.judge, registry, generator, options)
        .map_err(|error| PluginLoadError { role: WorldKind::Judge, name: "judge".into(), error })?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let (mut scored, mut failed, mut invalid) = (0usize, 0usize, 0usize);
    for chunk in items.chunks(args.batch) {
        // Keep the input order: judge the chunk's comparisons and assessments, then merge.
        let comparisons: Vec<Comparison> = chunk
            .iter()
            .filter_map(|(_, _, it)| match it {
                Item::Compare(c) => Some(c.clone()),
                Item::Assess(_) => None,
            })
            .collect();
        let assessments: Vec<Assessment> = chunk
            .iter()
            .filter_map(|(_, _, it)| match it {
                Item::Assess(a) => Some(a.clone()),
                Item::Compare(_) => None,
            })
            .collect();
        let mut pairs = judge.compare(&comparisons)?.into_iter();
        let mut scores = judge.assess(&assessments)?.into_iter();
        for (line, id, item) in chunk {
            let record = match item {
                Item::Compare(_) => match pairs.next().expect("one result per comparison") {
                    Ok(p) => {
                        json!({"line": line, "id": id, "a": p.a, "b": p.b, "rationale": p.rationale})
                    }
                    Err(f) => json!({"line": line, "id": id, "failure": failure_json(&f)}),
                },
                Item::Assess(_) => match scores.next().expect("one result per assessment") {
                    Ok(s) => json!({"line": line, "id": id, "score": s}),
                    Err(f) => json!({"line": line, "id": id, "failure": failure_json(&f)}),
                },
            };
            if let Some(f) = record.get("failure") {
                failed += 1;
                invalid += usize::from(f["kind"] == FailureKind::Invalid.as_str());
            } else {
                scored += 1
            }
            scorer.observe(*line, &record);
            writeln!(out, "{record}")?;
        }
    }
    out.flush()?;
    let agreement = judge.agreement();
    eprintln!(
        "judge {}: {scored} scored, {failed} failed{}{}",
        judge.identity().label(),
        if judge.failures().total() > 0 {
            format!(" (judge failures: {:?})", judge.failures().nonzero())
        } else {
            String::new()
        },
        agreement
            .rate()
            .map(|r| format!("; A/B agreement {:.1}% of {}", 100.0 * r, agreement.checked))
            .unwrap_or_default()
    );
    report_labels(&args, &scorer)?;
    // Every result line is written either way (each failure says why). A run in which the
    // plugin refused every item as invalid input (an unknown rubric, say) is the user's
    // mistake and an error for scripts; a judge model whose answers could not be parsed is
    // a result, reported per line and in the counts above.
    anyhow::ensure!(
        scored > 0 || invalid < failed || failed == 0,
        "the judge scored none of the {failed} items: it refused every one as invalid input \
         (each line above says why)"
    );
    Ok(())
}

/// The labels of `items`, checked before anything is judged.
fn label_scorer(
    args: &JudgeArgs,
    items: &[(usize, Value, Item)],
) -> anyhow::Result<labels::Scorer> {
    anyhow::ensure!(
        args.threshold.is_finite() && args.tie_margin.is_finite() && args.tie_margin >= 0.0,
        "--threshold {} / --tie-margin {}: expected finite numbers (tie margin >= 0)",
        args.threshold,
        args.tie_margin
    );
    let keys: Vec<(usize, String, bool)> = items
        .iter()
        .map(|(line, _, item)| match item {
            Item::Compare(c) => (*line, c.rubric.clone(), true),
            Item::Assess(a) => (*line, a.rubric.clone(), false),
        })
        .collect();
    let rules = labels::Rules {
        threshold: args.threshold,
        tie_margin: args.tie_margin,
        positive: args.positive_labels.clone(),
    };
    Ok(labels::Scorer::new(labels::read(&args.input, &keys, &rules)?, rules))
}

/// Prints the label metrics and writes them as JSON (`--metrics`, or beside `--output`).
fn report_labels(args: &JudgeArgs, scorer: &labels::Scorer) -> anyhow::Result<()> {
    if scorer.is_empty() {
        if let Some(path) = &args.metrics {
            eprintln!("no input line has a `label`: nothing written to {}", path.display());
        }
        return Ok(());
    }
    eprint!("{}", scorer.render());
    let path = args.metrics.clone().or_else(|| {
        args.output.as_ref().map(|o| {
            let mut name = o.file_name().unwrap_or_default().to_os_string();
            name.push(".metrics.json");
            o.with_file_name(name)
        })
    });
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(&scorer.to_json())?;
        std::fs::write(&path, text + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("label metrics written to {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(bytes: &[u8]) -> anyhow::Result<Vec<(usize, Value, Item)>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(&path, bytes).unwrap();
        read_items(&path).map_err(|e| {
            anyhow::anyhow!("{}", e.to_string().replace(&*dir.path().display().to_string(), "D"))
        })
    }

    /// Case 08: a comparison after a UTF-8 byte-order mark is read like any other.
    #[test]
    fn case_08_input_with_a_byte_order_mark_is_read() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/cases/08-seeds-bom-and-numeric-id/judge_input_bom.jsonl");
        let got = read_items(&path).unwrap();
        assert_eq!(got.len(), 1);
        let (line, id, Item::Compare(c)) = &got[0] else { panic!("{got:?}") };
        assert_eq!((*line, id.as_str(), c.rubric.as_str()), (1, Some("r1"), "refusal"));
        assert_eq!(c.a, "I'm sorry, but I can't help with that.");
    }

    #[test]
    fn crlf_blank_lines_and_integer_ids_are_fine() {
        let got = items(b"{\"id\": 0, \"rubric\": \"r\", \"context\": \"c\", \"response\": \"x\"}\r\n\r\n  \r\n{\"rubric\": \"r\", \"context\": \"c\", \"a\": \"x\", \"b\": \"y\", \"extra\": 1}").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].0, &got[0].1), (1, &json!(0)), "integer ids are echoed unchanged");
        assert_eq!((got[1].0, &got[1].1), (4, &Value::Null));
    }

    #[test]
    fn bad_ids_and_duplicate_ids_name_the_field_and_both_lines() {
        let line = |id: &str| {
            format!(
                "{{\"id\": {id}, \"rubric\": \"r\", \"context\": \"c\", \"response\": \"x\"}}\n"
            )
        };
        for bad in ["1.5", "true", "[1]", "{}", "\"\""] {
            let err = items(line(bad).as_bytes()).unwrap_err().to_string();
            assert!(err.starts_with("D/in.jsonl:1: field `id`: expected"), "{bad}: {err}");
        }
        let err = items(format!("{}\n{}", line("\"a\""), line("\"a\"")).as_bytes()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "D/in.jsonl:3: field `id`: \"a\" is also the id of D/in.jsonl:1; ids must be unique \
             (results are matched to inputs by them)"
        );
        let err =
            items(b"{\"rubric\": \"r\", \"context\": \"c\", \"response\": \"x\"\n").unwrap_err();
        assert!(err.to_string().starts_with("D/in.jsonl:1:"), "{err}");
        assert!(err.to_string().contains("invalid JSON"), "{err}");
    }
}
