//! Strict parsing of attacker outputs: `<think>reasoning</think> <prompt>rewritten</prompt>`.
//!
//! Strict, because a lenient parser lets the attacker collect reward for garbage; but small
//! models make two harmless slips we accept: a `</thought>` typo closing the reasoning, and a
//! `<prompt>` left unclosed at the very end of the output (generation stopped on the
//! end-of-turn token or on the `</prompt>` stop string, which the engine may strip). A
//! truncated output (max tokens reached) is always invalid.

use serde::{Deserialize, Serialize};

use crate::llm::FinishReason;

/// A well-formed attacker output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedAttack {
    pub think: String,
    pub prompt: String,
}

/// Why an attacker output was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum ParseError {
    #[error("output hit the token limit")]
    Truncated,
    #[error("no <think> block at the start")]
    MissingThink,
    #[error("<think> is never closed")]
    UnclosedThink,
    #[error("no <prompt> after the reasoning")]
    MissingPrompt,
    #[error("the <prompt> is empty")]
    EmptyPrompt,
    #[error("more than one <prompt>")]
    MultiplePrompts,
    #[error("text after </prompt>")]
    TrailingText,
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSES: [&str; 2] = ["</think>", "</thought>"];
const PROMPT_OPEN: &str = "<prompt>";
const PROMPT_CLOSE: &str = "</prompt>";

/// Parses one attacker output (which includes any prefill, e.g. a leading `<think>`).
pub fn parse_attack(text: &str, finish: FinishReason) -> Result<ParsedAttack, ParseError> {
    if finish == FinishReason::Length {
        return Err(ParseError::Truncated);
    }
    let rest = text.trim_start().strip_prefix(THINK_OPEN).ok_or(ParseError::MissingThink)?;
    let (think, close_len, close_at) = THINK_CLOSES
        .iter()
        .filter_map(|c| rest.find(c).map(|at| (at, c.len())))
        .min_by_key(|(at, _)| *at)
        .map(|(at, len)| (&rest[..at], len, at))
        .ok_or(ParseError::UnclosedThink)?;
    if think.contains(PROMPT_OPEN) {
        // The prompt must come after the reasoning, not inside it.
        return Err(ParseError::UnclosedThink);
    }
    let after = rest[close_at + close_len..].trim_start();
    let body = after.strip_prefix(PROMPT_OPEN).ok_or(ParseError::MissingPrompt)?;
    let (prompt, trailing) = match body.find(PROMPT_CLOSE) {
        Some(at) => (&body[..at], &body[at + PROMPT_CLOSE.len()..]),
        None => (body, ""),
    };
    if prompt.contains(PROMPT_OPEN) || trailing.contains(PROMPT_OPEN) {
        return Err(ParseError::MultiplePrompts);
    }
    if !trailing.trim().is_empty() {
        return Err(ParseError::TrailingText);
    }
    let prompt = prompt.trim();
    if prompt.is_empty() {
        return Err(ParseError::EmptyPrompt);
    }
    Ok(ParsedAttack { think: think.trim().to_string(), prompt: prompt.to_string() })
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
}
