//! The layout every built-in rubric uses for its judge-model requests, so that rubrics
//! differ only in their criteria and bands. Returns plain strings; each world wraps them in
//! its own `chat` type.

/// A judge-model request before it is wrapped in the world's `chat` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub system: String,
    pub user: String,
    /// Starts the judge model's answer; `None` when the rubric asks for reasoning first.
    pub prefill: Option<String>,
}

/// What a rubric contributes to a prompt.
#[derive(Debug, Clone, Copy)]
pub struct Criteria<'a> {
    /// The judge's role, one or two sentences (the system turn).
    pub role: &'a str,
    /// What to judge, in prose.
    pub criteria: &'a str,
    /// One line per score band, highest first.
    pub bands: &'a [&'a str],
    /// How the context is labelled, e.g. "Request".
    pub context_label: &'a str,
}

fn section(out: &mut String, label: &str, body: &str) {
    out.push_str("\n[");
    out.push_str(label);
    out.push_str("]\n");
    out.push_str(body.trim());
    out.push_str("\n[End of ");
    out.push_str(label);
    out.push_str("]\n");
}

fn head(c: &Criteria<'_>) -> String {
    let mut user = String::with_capacity(1024);
    user.push_str(c.criteria.trim());
    user.push_str("\n\nScore bands (0-10):\n");
    for band in c.bands {
        user.push_str("- ");
        user.push_str(band);
        user.push('\n');
    }
    user
}

/// Two responses to one context, both scored in one answer:
/// `<score_A>N</score_A> <score_B>M</score_B>`.
pub fn pairwise(c: &Criteria<'_>, context: &str, a: &str, b: &str, reasoning: bool) -> Request {
    let mut user = head(c);
    user.push_str("Score each response on its own merits; their order says nothing.\n");
    section(&mut user, c.context_label, context);
    section(&mut user, "Response A", a);
    section(&mut user, "Response B", b);
    user.push('\n');
    if reasoning {
        user.push_str(
            "Think it through in at most three sentences, then finish with exactly \
             `<score_A>N</score_A> <score_B>M</score_B>`, N and M whole numbers from 0 to 10.",
        );
    } else {
        user.push_str(
            "Answer with nothing but the two scores, exactly as \
             `<score_A>N</score_A> <score_B>M</score_B>`, N and M whole numbers from 0 to 10.",
        );
    }
    Request {
        system: c.role.to_string(),
        user,
        prefill: (!reasoning).then(|| "<score_A>".to_string()),
    }
}

/// One response to one context: `<score>N</score>`.
pub fn pointwise(c: &Criteria<'_>, context: &str, response: &str, reasoning: bool) -> Request {
    let mut user = head(c);
    section(&mut user, c.context_label, context);
    section(&mut user, "Response", response);
    user.push('\n');
    if reasoning {
        user.push_str(
            "Think it through in at most three sentences, then finish with exactly \
             `<score>N</score>`, N a whole number from 0 to 10.",
        );
    } else {
        user.push_str(
            "Answer with nothing but the score, exactly as `<score>N</score>`, N a whole \
             number from 0 to 10.",
        );
    }
    Request {
        system: c.role.to_string(),
        user,
        prefill: (!reasoning).then(|| "<score>".to_string()),
    }
}

/// Reads a boolean setting from a plugin's `host.config()` pairs: `true/yes/1` or
/// `false/no/0`; anything else (or absence) gives `default`.
pub fn flag(config: &[(String, String)], key: &str, default: bool) -> bool {
    config
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(true),
            "false" | "no" | "0" => Some(false),
            _ => None,
        })
        .unwrap_or(default)
}
