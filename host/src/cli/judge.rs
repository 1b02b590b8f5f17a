//! `advgame-host judge --judge FILE [--rubric NAME=FILE ...] --input FILE.jsonl`: runs a
//! judge plugin over a user's own JSONL of comparisons and assessments and writes one JSON
//! result per input line (scores or a typed failure): how users test a judge or rubric on
//! their own labelled data.
//!
//! Input lines: `{"rubric", "context", "a", "b"}` (comparison) or
//! `{"rubric", "context", "response"}` (assessment); an optional `"id"` (any JSON) is
//! echoed back. Output lines: `{"line", "id", "a", "b", "rationale"}`, `{"line", "id",
//! "score"}` or `{"line", "id", "failure": {"kind", "plugin", "message"}}`.

use super::plugin::Setup;
use crate::judging::{Assessment, Comparison, Failure, Judge};
use crate::llm::Generator;
use crate::plugin::{JudgeOptions, JudgePlugin};
use clap::Args;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Device of the judge model: cpu, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
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

/// Reads and validates every line before any judging starts.
fn read_items(path: &Path) -> anyhow::Result<Vec<(usize, Value, Item)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), i + 1);
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{at}: invalid JSON: {e}"))?;
        let Value::Object(obj) = &value else {
            anyhow::bail!("{at}: expected a JSON object, found {value}");
        };
        let rubric = field(obj, "rubric", &at)?.to_string();
        let context = field(obj, "context", &at)?.to_string();
        let id = obj.get("id").cloned().unwrap_or(Value::Null);
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
        items.push((i + 1, id, item));
    }
    Ok(items)
}

fn failure_json(f: &Failure) -> Value {
    json!({"kind": f.kind.as_str(), "plugin": f.plugin, "message": f.message})
}

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
    let engine = args.setup.engine()?;
    let registry = args.setup.registry(&engine)?;
    let options = JudgeOptions {
        config: args.setup.config()?,
        swap_share: args.swap_share,
        both_orders_share: args.both_orders_share,
        seed: 0,
    };
    let mut judge = JudgePlugin::load(&engine, &args.judge, registry, generator, options)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let (mut scored, mut failed) = (0usize, 0usize);
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
            if record.get("failure").is_some() {
                failed += 1
            } else {
                scored += 1
            }
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
    Ok(())
}
