//! Strict, total parsing of judge-model outputs: `<tag>number</tag>` and
//! `<tag>yes|no</tag>`. Every function returns `Err(reason)` instead of guessing, so a
//! malformed output becomes a counted parse failure, never a silent score.
//!
//! Rules (shared by all built-in rubrics):
//! - Tags are matched case-insensitively; the LAST complete occurrence wins, so reasoning
//!   that quotes the format before the final answer does not confuse the parser.
//! - The closing tag may be missing only at the very end of the output (a stop string or the
//!   token limit cut it off right after the value).
//! - A number is an optional sign, digits and an optional fraction (`7`, `7.5`, ` 8 `), or a
//!   fraction of ten (`7/10`). Anything else (`seven`, `nan`, `1e3`, empty) is an error.
//! - The value is clipped into `[min, max]`: a model that writes 11 on a 0-10 scale meant
//!   "as high as possible".

/// Finds the value of the last `<tag>value</tag>` in `output` (see the module rules).
pub fn tag_value<'a>(output: &'a str, tag: &str) -> Result<&'a str, String> {
    let lower = output.to_ascii_lowercase();
    let open = format!("<{}>", tag.to_ascii_lowercase());
    let close = format!("</{}>", tag.to_ascii_lowercase());
    let start =
        lower.rfind(&open).ok_or_else(|| format!("no <{tag}> tag in the output"))? + open.len();
    // `to_ascii_lowercase` keeps byte offsets, so indices into `lower` are valid in `output`.
    match lower[start..].find(&close) {
        Some(len) => Ok(&output[start..start + len]),
        None => {
            let rest = &output[start..];
            // Unclosed: accept only a bare value that runs to the end of the output.
            if rest.trim().is_empty()
                || rest.trim().contains(char::is_whitespace)
                || rest.contains('<')
            {
                Err(format!("<{tag}> is not closed by </{tag}>"))
            } else {
                Ok(rest)
            }
        }
    }
}

/// Parses a score value: `7`, `7.5`, `+7`, `7/10`. Returns an error for anything else.
pub fn number(value: &str) -> Result<f32, String> {
    let v = value.trim();
    let v = v.strip_suffix("/10").map(str::trim_end).unwrap_or(v);
    let body = v.strip_prefix(['+', '-']).unwrap_or(v);
    let mut parts = body.splitn(2, '.');
    let int = parts.next().unwrap_or("");
    let frac = parts.next();
    let digits_ok =
        |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let ok = digits_ok(int) && frac.is_none_or(digits_ok);
    if !ok {
        return Err(format!("`{}` is not a number", shorten(value, 40)));
    }
    v.parse::<f32>().map_err(|e| format!("`{}`: {e}", shorten(value, 40)))
}

/// The number in the last `<tag>..</tag>`, clipped into `[min, max]`.
pub fn score(output: &str, tag: &str, min: f32, max: f32) -> Result<f32, String> {
    let value = tag_value(output, tag)?;
    let n = number(value).map_err(|e| format!("<{tag}>: {e}"))?;
    Ok(n.clamp(min, max))
}

/// Both scores of a pairwise judgment, `<score_A>n</score_A> <score_B>m</score_B>`.
pub fn pair(output: &str, min: f32, max: f32) -> Result<(f32, f32), String> {
    Ok((score(output, "score_A", min, max)?, score(output, "score_B", min, max)?))
}

/// A yes/no verdict in the last `<tag>..</tag>` (`yes`/`no`, `true`/`false`).
pub fn verdict(output: &str, tag: &str) -> Result<bool, String> {
    let value = tag_value(output, tag)?.trim().trim_end_matches('.').to_ascii_lowercase();
    match value.as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("<{tag}> must hold yes or no, not `{}`", shorten(&value, 40))),
    }
}

/// `text` cut to at most `max` characters (for error messages).
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_after_reasoning_last_wins() {
        let out =
            "Format is <score_A>n</score_A>. A helps. <score_A>8</score_A> <score_B> 2 </score_B>";
        assert_eq!(pair(out, 0.0, 10.0), Ok((8.0, 2.0)));
    }

    #[test]
    fn prefilled_and_unclosed_tail() {
        assert_eq!(pair("<score_A>7.5</score_A> <score_B>3", 0.0, 10.0), Ok((7.5, 3.0)));
        assert!(pair("<score_A>7</score_A> <score_B>3 because", 0.0, 10.0).is_err());
    }

    #[test]
    fn rejects_non_numbers_and_clips() {
        assert!(pair("<score_A>nan</score_A><score_B>1</score_B>", 0.0, 10.0).is_err());
        assert!(pair("<score_A>1e3</score_A><score_B>1</score_B>", 0.0, 10.0).is_err());
        assert!(pair("<score_A></score_A><score_B>1</score_B>", 0.0, 10.0).is_err());
        assert!(pair("no tags at all", 0.0, 10.0).is_err());
        assert_eq!(
            pair("<SCORE_A>12</SCORE_A><score_b>7/10</score_b>", 0.0, 10.0),
            Ok((10.0, 7.0))
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict("<faithful>Yes</faithful>", "faithful"), Ok(true));
        assert_eq!(verdict("<faithful> no.", "faithful"), Ok(false));
        assert!(verdict("<faithful>maybe</faithful>", "faithful").is_err());
    }
}
