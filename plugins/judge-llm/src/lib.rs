//! Judge `llm`: LLM-as-judge. Renders every item through its named rubric (host registry),
//! asks the host's judge model for all of them in ONE `generate` batch, and parses each
//! output with the same rubric. Every item gets its own result: a rubric or generation
//! failure affects only that item.
//!
//! Settings (`host.config`): `max-tokens` (default 64), `temperature` (0 = greedy, the
//! default), `top-p` (1.0), `seed` (0), `stop` (a stop string; may repeat).

use advgame_plugin_sdk::format::shorten;
use advgame_plugin_sdk::judge::host::{self, Sampling};
use advgame_plugin_sdk::judge::{
    Assessment, Chat, Comparison, Failure, Judge, PluginInfo, ScoredPair, registry,
};

struct Llm;

fn sampling() -> Sampling {
    let config = host::config();
    let get = |key: &str| config.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.trim());
    let stop = config.iter().filter(|(k, _)| k == "stop").map(|(_, v)| v.clone()).collect();
    Sampling {
        max_tokens: get("max-tokens").and_then(|v| v.parse().ok()).unwrap_or(64),
        temperature: get("temperature").and_then(|v| v.parse().ok()).unwrap_or(0.0),
        top_p: get("top-p").and_then(|v| v.parse().ok()).unwrap_or(1.0),
        seed: get("seed").and_then(|v| v.parse().ok()).unwrap_or(0),
        stop,
    }
}

/// Runs the prompts that were built, in one batch; `Err` items pass through untouched.
fn generate_all(prompts: Vec<Result<Chat, Failure>>) -> Vec<Result<String, Failure>> {
    let chats: Vec<Chat> = prompts.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
    let mut outputs =
        if chats.is_empty() { Vec::new() } else { host::generate(&chats, &sampling()) }.into_iter();
    prompts
        .into_iter()
        .map(|p| {
            p?;
            match outputs.next() {
                Some(Ok(text)) => Ok(text),
                Some(Err(e)) => Err(Failure::Host(format!("generate: {e}"))),
                None => Err(Failure::Host("generate returned fewer outputs than requests".into())),
            }
        })
        .collect()
}

/// The judge model's text before its first score tag: a short rationale, if any.
fn rationale(output: &str) -> Option<String> {
    let cut = output.find('<').unwrap_or(output.len());
    let text = output[..cut].trim();
    (!text.is_empty()).then(|| shorten(text, 300))
}

impl Judge for Llm {
    fn info() -> PluginInfo {
        PluginInfo {
            name: "llm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "LLM-as-judge: rubric prompts, one batched generate, rubric parsers"
                .into(),
        }
    }

    fn compare(batch: Vec<Comparison>) -> Vec<Result<ScoredPair, Failure>> {
        let prompts =
            batch.iter().map(|c| registry::pairwise_prompt(&c.rubric, &c.context, &c.a, &c.b));
        let outputs = generate_all(prompts.collect());
        batch
            .iter()
            .zip(outputs)
            .map(|(c, out)| {
                let text = out?;
                let (a, b) = registry::parse_pairwise(&c.rubric, &text)?;
                Ok(ScoredPair { a, b, rationale: rationale(&text) })
            })
            .collect()
    }

    fn assess(batch: Vec<Assessment>) -> Vec<Result<f32, Failure>> {
        let prompts =
            batch.iter().map(|x| registry::pointwise_prompt(&x.rubric, &x.context, &x.response));
        let outputs = generate_all(prompts.collect());
        batch
            .iter()
            .zip(outputs)
            .map(|(x, out)| registry::parse_pointwise(&x.rubric, &out?))
            .collect()
    }
}

advgame_plugin_sdk::judge::export_judge!(Llm);
