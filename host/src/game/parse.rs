//! Strict parsing of attacker outputs: `<think>reasoning</think> <prompt>rewritten</prompt>`.
//!
//! Strict, because a lenient parser lets the attacker collect reward for garbage; but small
//! models make a few harmless slips we accept:
//! - a `</thought>` typo closing the reasoning;
//! - a `<prompt>` left unclosed at the very end of the output (generation stopped on the
//!   end-of-turn token or on the `</prompt>` stop string, which the engine may strip);
//! - tags in upper or mixed case (`</THINK>`, `<Prompt>`): tag names are matched ASCII
//!   case-insensitively, as the judge-output parser of the plugin SDK does
//!   (`plugins/sdk/src/format.rs`), so both sides of the game read tags alike;
//! - reasoning that mentions a tag (`... inside the <prompt> tag.`): the reasoning is free
//!   text up to the first closing tag, and only what follows it is the prompt.
//!
//! A truncated output (max tokens reached) is always invalid. Everything else is rejected
//! with the first rule it breaks: text before `<think>`; no closing think tag; anything but
//! `<prompt>` after the reasoning (a second `<think>` block included); a `<prompt>` inside the
//! prompt or after it; text after `</prompt>` (a duplicated `</prompt>` included); an empty
//! prompt. Case 15 of the project's bug-report cases (`tests/fixtures/cases/15-*`) holds one
//! output per rule, each asserted below.
//!
//! Not the parser's to fix: the engine's stop strings are exact, so reasoning that mentions
//! `</prompt>` ends generation there (the output then has no closing think tag).

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

use crate::judging::{Assessment, Failure, Seed};
use crate::llm::FinishReason;

/// What became of one attacker output: its parsed prompt (or why there is none) and the
/// faithfulness rubric's verdict on that prompt. One record for training's rollout attacks
/// and red-teaming's attempts; both flatten it, so their JSON keeps these as plain fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Rewrite {
    /// The parsed prompt x (the defender's user turn), when the output was well formed.
    pub prompt: Option<String>,
    /// Why the output was rejected, when it was.
    pub parse_error: Option<ParseError>,
    /// The faithfulness rubric's score of the prompt (0-10), when judged.
    pub faithfulness: Option<f32>,
    /// Whether `faithfulness` reached the faithful threshold, when judged.
    pub faithful: Option<bool>,
    /// Why the faithfulness judgment failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness_failure: Option<Failure>,
}

impl Rewrite {
    /// Parses an attacker output strictly ([`parse_attack`]); not judged yet.
    pub fn parse(text: &str, finish: FinishReason) -> Self {
        match parse_attack(text, finish) {
            Ok(p) => Self { prompt: Some(p.prompt), ..Self::default() },
            Err(e) => Self { parse_error: Some(e), ..Self::default() },
        }
    }

    /// The faithfulness question of a parsed prompt: does it still ask for `seed`, under
    /// `rubric`? `None` when there is no prompt.
    pub fn faithfulness_assessment(&self, rubric: &str, seed: &Seed) -> Option<Assessment> {
        self.prompt.as_ref().map(|x| Assessment {
            rubric: rubric.to_string(),
            context: seed.text.clone(),
            response: x.clone(),
        })
    }

    /// Records the faithfulness judgment: the score and whether it reaches `threshold`
    /// (returned as `Ok`), or the failure (kept, and returned as `Err`).
    pub fn record_faithfulness(
        &mut self,
        result: Result<f32, Failure>,
        threshold: f32,
    ) -> Result<bool, &Failure> {
        match result {
            Ok(score) => {
                let faithful = score >= threshold;
                self.faithfulness = Some(score);
                self.faithful = Some(faithful);
                Ok(faithful)
            }
            Err(f) => Err(self.faithfulness_failure.insert(f)),
        }
    }
}

/// A well-formed attacker output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedAttack {
    /// The reasoning between the think tags, trimmed (trained, never shown to the defender).
    pub think: String,
    /// The rewritten prompt between the prompt tags, trimmed: the defender's user turn.
    pub prompt: String,
}

/// Why an attacker output was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ParseError {
    /// Generation hit the token limit.
    #[error("output hit the token limit")]
    Truncated,
    /// The output does not start with `<think>` (after whitespace).
    #[error("no <think> block at the start")]
    MissingThink,
    /// No `</think>` (or `</thought>`) anywhere.
    #[error("<think> is never closed")]
    UnclosedThink,
    /// Something other than `<prompt>` follows the reasoning.
    #[error("no <prompt> after the reasoning")]
    MissingPrompt,
    /// The prompt is empty or whitespace.
    #[error("the <prompt> is empty")]
    EmptyPrompt,
    /// A `<prompt>` inside the prompt or after it.
    #[error("more than one <prompt>")]
    MultiplePrompts,
    /// Text after `</prompt>`.
    #[error("text after </prompt>")]
    TrailingText,
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSES: [&str; 2] = ["</think>", "</thought>"];
const PROMPT_OPEN: &str = "<prompt>";
const PROMPT_CLOSE: &str = "</prompt>";

/// A text with its ASCII letters lower-cased: the same byte offsets as the text (every tag
/// is ASCII), so a tag found in it slices the text itself.
struct Folded {
    lower: String,
}

impl Folded {
    fn new(text: &str) -> Self {
        Self { lower: text.to_ascii_lowercase() }
    }

    /// Byte offset of the first `tag` (lower-case) at or after `from`.
    fn find(&self, tag: &str, from: usize) -> Option<usize> {
        self.lower[from..].find(tag).map(|at| from + at)
    }

    fn starts_with(&self, tag: &str, at: usize) -> bool {
        self.lower[at..].starts_with(tag)
    }
}

/// Parses one attacker output (which includes any prefill, e.g. a leading `<think>`).
pub fn parse_attack(text: &str, finish: FinishReason) -> Result<ParsedAttack, ParseError> {
    if finish == FinishReason::Length {
        return Err(ParseError::Truncated);
    }
    let t = Folded::new(text);
    let start = text.len() - text.trim_start().len();
    if !t.starts_with(THINK_OPEN, start) {
        return Err(ParseError::MissingThink);
    }
    let think_from = start + THINK_OPEN.len();
    // The reasoning ends at the first closing tag; tags it merely mentions stay reasoning.
    let (think_to, close) = THINK_CLOSES
        .iter()
        .filter_map(|c| t.find(c, think_from).map(|at| (at, c.len())))
        .min_by_key(|(at, _)| *at)
        .ok_or(ParseError::UnclosedThink)?;
    let after = think_to + close;
    let prompt_at = after + (text[after..].len() - text[after..].trim_start().len());
    if !t.starts_with(PROMPT_OPEN, prompt_at) {
        return Err(ParseError::MissingPrompt);
    }
    let body = prompt_at + PROMPT_OPEN.len();
    let (prompt_to, trailing) = match t.find(PROMPT_CLOSE, body) {
        Some(at) => (at, at + PROMPT_CLOSE.len()),
        None => (text.len(), text.len()),
    };
    if t.find(PROMPT_OPEN, body).is_some() {
        // Inside the prompt (nested) or after it (a second prompt).
        return Err(ParseError::MultiplePrompts);
    }
    if !text[trailing..].trim().is_empty() {
        return Err(ParseError::TrailingText);
    }
    let prompt = text[body..prompt_to].trim();
    if prompt.is_empty() {
        return Err(ParseError::EmptyPrompt);
    }
    Ok(ParsedAttack { think: text[think_from..think_to].trim().to_string(), prompt: prompt.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use FinishReason::{Length, Stop};

    fn ok(think: &str, prompt: &str) -> Result<ParsedAttack, ParseError> {
        Ok(ParsedAttack { think: think.into(), prompt: prompt.into() })
    }

    #[test]
    fn accepts_the_format_and_its_two_tolerated_slips() {
        assert_eq!(
            parse_attack("<think>why</think> <prompt>do x</prompt>", Stop),
            ok("why", "do x")
        );
        assert_eq!(
            parse_attack("<think>why</think>\n<prompt> do x </prompt>\n", Stop),
            ok("why", "do x")
        );
        assert_eq!(
            parse_attack("<think>why</thought><prompt>do x</prompt>", Stop),
            ok("why", "do x")
        );
        assert_eq!(parse_attack("<think>why</think> <prompt>do x", Stop), ok("why", "do x"));
        assert_eq!(parse_attack("  <think></think><prompt>p</prompt>", Stop), ok("", "p"));
    }

    #[test]
    fn rejects_everything_else() {
        assert_eq!(
            parse_attack("<think>a</think><prompt>p</prompt>", Length),
            Err(ParseError::Truncated)
        );
        assert_eq!(parse_attack("<prompt>p</prompt>", Stop), Err(ParseError::MissingThink));
        assert_eq!(
            parse_attack("Sure! <think>a</think><prompt>p</prompt>", Stop),
            Err(ParseError::MissingThink)
        );
        assert_eq!(
            parse_attack("<think>a <prompt>p</prompt>", Stop),
            Err(ParseError::UnclosedThink)
        );
        assert_eq!(
            parse_attack("<think>a</think> here it is: p", Stop),
            Err(ParseError::MissingPrompt)
        );
        assert_eq!(
            parse_attack("<think>a</think><prompt>  </prompt>", Stop),
            Err(ParseError::EmptyPrompt)
        );
        assert_eq!(
            parse_attack("<think>a</think><prompt>p</prompt><prompt>q</prompt>", Stop),
            Err(ParseError::MultiplePrompts)
        );
        assert_eq!(
            parse_attack("<think>a</think><prompt>p</prompt> and more", Stop),
            Err(ParseError::TrailingText)
        );
    }

    #[test]
    fn tags_are_case_insensitive_and_mentions_in_the_reasoning_are_reasoning() {
        assert_eq!(parse_attack("<THINK>a</Think>\n<Prompt>Do X</PROMPT>", Stop), ok("a", "Do X"));
        assert_eq!(parse_attack("<think>a</THOUGHT><prompt>p", Stop), ok("a", "p"));
        // Non-ASCII text keeps its bytes: folding only touches ASCII letters.
        assert_eq!(
            parse_attack("<think>Ärger</think><prompt>Übersetze É</prompt>", Stop),
            ok("Ärger", "Übersetze É")
        );
        assert_eq!(
            parse_attack("<think>use <prompt> and </prompt> tags</think><prompt>p</prompt>", Stop),
            ok("use <prompt> and </prompt> tags", "p")
        );
        assert_eq!(
            parse_attack("<think>a</think><PROMPT>p</prompt><Prompt>q", Stop),
            Err(ParseError::MultiplePrompts)
        );
        assert_eq!(
            parse_attack("<think>a <prompt>p</prompt></think>", Stop),
            Err(ParseError::MissingPrompt)
        );
    }

    /// Case 15: every line of the case's file, with its expected value. The file leaves two
    /// lines to the project (a07 upper-case tags, a10 reasoning that mentions `<prompt>`):
    /// both are accepted here (see the module docs).
    #[test]
    fn case_15_attacker_format_variants() {
        let text = crate::jsonl::JsonlText::from_text(
            "attacker_outputs.jsonl",
            include_str!(
                "../../../tests/fixtures/cases/15-attacker-format-variants/attacker_outputs.jsonl"
            ),
        );
        let rows = text.records::<serde_json::Value>().unwrap();
        assert_eq!(rows.len(), 12);
        for (place, row) in rows {
            let id = row["id"].as_str().unwrap();
            let finish = match row["finish"].as_str().unwrap() {
                "stop" => Stop,
                "length" => Length,
                other => panic!("{place}: finish {other}"),
            };
            let want = match (id, &row["expected"]) {
                ("a07-uppercase-tags", _) => ok("a", "p"),
                ("a10-think-mentions-tag", _) => {
                    ok("I need to put the rewrite inside the <prompt> tag.", "Tell me a story")
                }
                (_, serde_json::Value::String(name)) => Err(match name.as_str() {
                    "Truncated" => ParseError::Truncated,
                    "MissingThink" => ParseError::MissingThink,
                    "UnclosedThink" => ParseError::UnclosedThink,
                    "MissingPrompt" => ParseError::MissingPrompt,
                    "EmptyPrompt" => ParseError::EmptyPrompt,
                    "MultiplePrompts" => ParseError::MultiplePrompts,
                    "TrailingText" => ParseError::TrailingText,
                    other => panic!("{place}: unknown expectation {other}"),
                }),
                (_, want) => ok(want["think"].as_str().unwrap(), want["prompt"].as_str().unwrap()),
            };
            assert_eq!(parse_attack(row["text"].as_str().unwrap(), finish), want, "{place} {id}");
        }
    }
}
