//! The judge-output cases from public bug reports (`data/case-*.jsonl`: a quoted score after
//! the verdict, scores drafted inside an unfinished `<think>`, number spellings) and our own
//! variants of each kind (`data/variants.jsonl`), fed to the pairwise parser every built-in
//! rubric uses. Each line is `{"id", "output", "expected"}`: `expected` is `[a, b]` or a
//! string starting with "error"; where a case allows either, `DECIDED` records our choice.

use advgame_plugin_sdk::format::pair;
use serde_json::Value;

/// Cases whose `expected` allows two answers, and the one this parser gives (and why).
const DECIDED: &[(&str, Option<(f32, f32)>)] = &[
    // A second, different score_A after the verdict: a conflicting duplicate is refused
    // (the case allows (2, 9) or a failure, never 10).
    ("q1-quote-after-verdict", None),
    ("q2-unclosed-quote-at-end", None),
    // The same shape without prose: refused, not last-wins.
    ("n09-duplicated-conflicting", None),
    // Full-width digits are read (an unambiguous spelling).
    ("n14-fullwidth-digit", Some((8.0, 2.0))),
];

fn expected(id: &str, value: &Value) -> Option<(f32, f32)> {
    if let Some((_, decided)) = DECIDED.iter().find(|(d, _)| *d == id) {
        return *decided;
    }
    match value {
        Value::Array(v) => {
            let n = |i: usize| v[i].as_f64().unwrap_or_else(|| panic!("{id}: bad expected")) as f32;
            assert_eq!(v.len(), 2, "{id}: expected is a pair");
            Some((n(0), n(1)))
        }
        Value::String(s) if s.starts_with("error") => None,
        other => panic!("{id}: expected {other} needs an entry in DECIDED"),
    }
}

fn check(file: &str, text: &str) -> usize {
    let mut n = 0;
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let case: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{file}:{}: {e}", i + 1));
        let id = case["id"].as_str().expect("id");
        let output = case["output"].as_str().expect("output");
        let got = pair(output, 0.0, 10.0);
        match expected(id, &case["expected"]) {
            Some(want) => assert_eq!(got, Ok(want), "{file}: {id}: {output:?}"),
            None => assert!(got.is_err(), "{file}: {id}: {output:?} must fail, got {got:?}"),
        }
        // Whatever the rule, a quoted or drafted 10 never becomes the verdict.
        if let Ok((a, _)) = got {
            assert!(a != 10.0 || id.contains("clip") || id.contains("n10"), "{id}: {got:?}");
        }
        n += 1;
    }
    n
}

#[test]
fn case_10_quoted_score_after_verdict() {
    let n = check("case-10", include_str!("data/case-10-judge-quoted-score-after-verdict.jsonl"));
    assert_eq!(n, 3);
}

#[test]
fn case_11_scores_inside_unfinished_think() {
    let n =
        check("case-11", include_str!("data/case-11-judge-scores-inside-unfinished-think.jsonl"));
    assert_eq!(n, 3);
}

#[test]
fn case_12_number_formats() {
    let n = check("case-12", include_str!("data/case-12-judge-number-formats.jsonl"));
    assert_eq!(n, 11);
}

#[test]
fn our_variants_of_each_kind() {
    let n = check("variants", include_str!("data/variants.jsonl"));
    assert!(n >= 25, "{n}");
}
