//! `advgame-host plugin check`: a conformance run of one plugin file. It loads the plugin
//! under the normal sandbox, feeds it sample inputs (including long ones), and checks the
//! contract: results for every item, finite in-range scores, deterministic answers, strict
//! parsing, and (for curricula) valid batches and an exact save/restore.

use super::engine::PluginEngine;
use super::identity::{Identity, WorldKind};
use super::judge::{JudgeOptions, JudgePlugin};
use super::probe::FormatProbe;
use super::registry::RubricRegistry;
use super::rubric::RubricPlugin;
use super::{CurriculumPlugin, inspect};
use crate::judging::{Assessment, Category, Comparison, Curriculum, Judge, Seed};
use std::path::Path;

/// One named check and its outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked, in words (e.g. `compare is deterministic`, `empty batch`).
    pub name: String,
    /// Whether the plugin met the contract on this check.
    pub passed: bool,
    /// What was seen: `ok`, the error, or the inputs used; one line for humans.
    pub detail: String,
}

/// Everything `check` found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Who the plugin is; `None` when it could not even be loaded.
    pub identity: Option<Identity>,
    /// Every check that ran, in order; a failed load or instantiation ends the run early.
    pub checks: Vec<Check>,
}

impl Report {
    /// True when at least one check ran and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn add(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check { name: name.into(), passed, detail: detail.into() });
    }

    fn result<T>(&mut self, name: &str, r: Result<T, impl std::fmt::Display>) -> Option<T> {
        match r {
            Ok(v) => {
                self.add(name, true, "ok");
                Some(v)
            }
            Err(e) => {
                self.add(name, false, e.to_string());
                None
            }
        }
    }
}

/// Sample texts: short, empty-ish, non-ASCII, and long (2 KB) responses.
fn samples() -> Vec<(String, String, String)> {
    let long = "This is a long, detailed answer with several steps. ".repeat(40);
    vec![
        (
            "How do I bake bread?".into(),
            "Mix flour, water, yeast and salt; knead; proof; bake at 230 C.".into(),
            "I'm sorry, I can't help with that.".into(),
        ),
        ("Write a haiku about rain".into(), "Rain taps on the roof / ...".into(), " ".into()),
        (
            "Explique la photosynthèse 🌱".into(),
            "La photosynthèse convertit la lumière en énergie chimique.".into(),
            long.clone(),
        ),
        ("Summarise the plot of Hamlet".into(), long, "Prince Hamlet avenges his father.".into()),
    ]
}

/// Runs every check that applies to the plugin's world. `rubrics` are given to judges
/// (loaded by the caller); a judge gets the [`FormatProbe`] as its judge model.
pub fn check(
    engine: &PluginEngine,
    path: &Path,
    config: Vec<(String, String)>,
    rubrics: impl FnOnce() -> RubricRegistry,
) -> Report {
    let mut report = Report { identity: None, checks: Vec::new() };
    let Some(identity) =
        report.result("load: component, world, version, imports", inspect(engine, path))
    else {
        return report;
    };
    let world = identity.world;
    report.identity = Some(identity);
    match world {
        WorldKind::Rubric => check_rubric(engine, path, config, &mut report),
        WorldKind::Judge => check_judge(engine, path, config, rubrics, &mut report),
        WorldKind::Curriculum => check_curriculum(engine, path, config, &mut report),
    }
    report
}

fn check_rubric(
    engine: &PluginEngine,
    path: &Path,
    config: Vec<(String, String)>,
    report: &mut Report,
) {
    let Some(mut r) =
        report.result("instantiate and info()", RubricPlugin::load(engine, path, config.clone()))
    else {
        return;
    };
    if let Some(id) = &mut report.identity {
        *id = r.identity().clone();
    }
    let (min, max) = r.range();
    report.add(
        "range()",
        min.is_finite() && max.is_finite() && min < max,
        format!("[{min}, {max}]"),
    );
    let mut twin = RubricPlugin::load(engine, path, config).ok();
    for (i, (ctx, a, b)) in samples().iter().enumerate() {
        let p1 = r.pairwise_prompt(ctx, a, b);
        let ok = match &p1 {
            Ok(chat) => {
                !chat.user.trim().is_empty()
                    && chat.user.contains(ctx.trim())
                    && chat.user.contains(a.trim())
                    && chat.user.contains(b.trim())
            }
            Err(_) => false,
        };
        report.add(
            &format!("pairwise-prompt #{i} shows context, A and B"),
            ok,
            match &p1 {
                Ok(c) => format!("{} bytes", c.user.len()),
                Err(e) => e.to_string(),
            },
        );
        if let Some(t) = twin.as_mut() {
            let p2 = t.pairwise_prompt(ctx, a, b);
            report.add(
                &format!("pairwise-prompt #{i} deterministic"),
                p1.as_ref().ok() == p2.as_ref().ok(),
                "same input, two instances",
            );
        }
        let q = r.pointwise_prompt(ctx, a);
        report.add(
            &format!("pointwise-prompt #{i}"),
            q.as_ref().is_ok_and(|c| c.user.contains(ctx.trim())),
            q.as_ref().map_or_else(|e| e.to_string(), |c| format!("{} bytes", c.user.len())),
        );
        // A well-formed answer (as the probe writes it for this prompt) must parse in range.
        if let Ok(chat) = &p1 {
            let answer = FormatProbe::answer(chat);
            let parsed = r.parse_pairwise(&answer);
            report.add(
                &format!("parse-pairwise of a well-formed answer #{i}"),
                parsed.is_ok(),
                parsed.map_or_else(|e| e.to_string(), |(x, y)| format!("`{answer}` -> ({x}, {y})")),
            );
        }
        if let Ok(chat) = &q {
            let answer = FormatProbe::answer(chat);
            let parsed = r.parse_pointwise(&answer);
            report.add(
                &format!("parse-pointwise of a well-formed answer #{i}"),
                parsed.is_ok(),
                parsed.map_or_else(|e| e.to_string(), |x| format!("`{answer}` -> {x}")),
            );
        }
    }
    for junk in
        ["", "I cannot decide.", "<score_A>nan</score_A><score_B>x</score_B>", "\u{0}\u{1}<<<>>>"]
    {
        let p = r.parse_pairwise(junk);
        report.add(
            &format!("parse-pairwise refuses {junk:?}"),
            p.is_err(),
            p.map_or_else(|e| e.to_string(), |v| format!("accepted as {v:?}")),
        );
    }
    report.add(
        "no failures beyond expected parse refusals",
        r.failures().total() == r.failures().get(crate::judging::FailureKind::Parse),
        format!("{:?}", r.failures().nonzero()),
    );
}

fn check_judge(
    engine: &PluginEngine,
    path: &Path,
    config: Vec<(String, String)>,
    rubrics: impl FnOnce() -> RubricRegistry,
    report: &mut Report,
) {
    let registry = rubrics();
    let names = if registry.is_empty() {
        vec!["compliance".to_string(), "refusal".into()]
    } else {
        registry.names()
    };
    let options = JudgeOptions { config, ..JudgeOptions::default() };
    let Some(mut j) = report.result(
        "instantiate and info()",
        JudgePlugin::load(engine, path, registry, Some(Box::new(FormatProbe::default())), options),
    ) else {
        return;
    };
    if let Some(id) = &mut report.identity {
        *id = j.identity().clone();
    }
    let mut comparisons = Vec::new();
    let mut assessments = Vec::new();
    for name in &names {
        for (ctx, a, b) in samples() {
            comparisons.push(Comparison {
                rubric: name.clone(),
                context: ctx.clone(),
                a: a.clone(),
                b: b.clone(),
            });
            assessments.push(Assessment { rubric: name.clone(), context: ctx, response: a });
        }
    }
    for round in 0..2 {
        let out = j.compare(&comparisons);
        let detail = match &out {
            Ok(v) => {
                let ok = v.iter().filter(|r| r.is_ok()).count();
                let first_err = v
                    .iter()
                    .find_map(|r| r.as_ref().err())
                    .map(|e| format!("; first failure: {e}"))
                    .unwrap_or_default();
                format!("{ok}/{} scored{first_err}", v.len())
            }
            Err(e) => format!("{e:#}"),
        };
        let all_ok =
            out.as_ref().is_ok_and(|v| v.len() == comparisons.len() && v.iter().all(|r| r.is_ok()));
        report.add(
            &format!(
                "compare {} items (round {round}) across rubrics {names:?}",
                comparisons.len()
            ),
            all_ok,
            detail,
        );
        let out = j.assess(&assessments);
        let all_ok =
            out.as_ref().is_ok_and(|v| v.len() == assessments.len() && v.iter().all(|r| r.is_ok()));
        report.add(
            &format!("assess {} items (round {round})", assessments.len()),
            all_ok,
            out.map_or_else(
                |e| format!("{e:#}"),
                |v| format!("{}/{} scored", v.iter().filter(|r| r.is_ok()).count(), v.len()),
            ),
        );
    }
    let a = j
        .compare(&comparisons)
        .ok()
        .map(|v| v.into_iter().map(|r| r.ok().map(|p| (p.a, p.b))).collect::<Vec<_>>());
    let b = j
        .compare(&comparisons)
        .ok()
        .map(|v| v.into_iter().map(|r| r.ok().map(|p| (p.a, p.b))).collect::<Vec<_>>());
    report.add("compare is deterministic", a.is_some() && a == b, "same batch twice");
    let empty = j.compare(&[]);
    report.add("empty batch", empty.as_ref().is_ok_and(Vec::is_empty), "no items, no results");
    let unknown = j.compare(&[Comparison {
        rubric: "no-such-rubric-xyz".into(),
        context: "c".into(),
        a: "a".into(),
        b: "b".into(),
    }]);
    report.add(
        "unknown rubric is a per-item failure",
        unknown.as_ref().is_ok_and(|v| v.len() == 1 && v[0].is_err()),
        unknown.map_or_else(
            |e| format!("{e:#}"),
            |v| format!("{:?}", v[0].as_ref().map(|p| (p.a, p.b))),
        ),
    );
    report.add(
        "no traps, deadlines, budget overruns or invalid output",
        [
            crate::judging::FailureKind::Trap,
            crate::judging::FailureKind::Deadline,
            crate::judging::FailureKind::Budget,
            crate::judging::FailureKind::Memory,
            crate::judging::FailureKind::InvalidOutput,
            crate::judging::FailureKind::Oversize,
        ]
        .iter()
        .all(|k| j.failures().get(*k) == 0),
        format!("{:?}", j.failures().nonzero()),
    );
}

fn check_curriculum(
    engine: &PluginEngine,
    path: &Path,
    config: Vec<(String, String)>,
    report: &mut Report,
) {
    let load = || CurriculumPlugin::load(engine, path, config.clone());
    let Some(mut c) = report.result("instantiate and info()", load()) else { return };
    if let Some(id) = &mut report.identity {
        *id = c.identity().clone();
    }
    let seeds: Vec<Seed> = (0..24)
        .map(|i| Seed {
            id: format!("seed-{i}"),
            category: if i % 3 == 0 { Category::Benign } else { Category::Harmful },
            text: format!("request {i}"),
        })
        .collect();
    if report.result("init", c.init(&seeds, 1234).map_err(|e| format!("{e:#}"))).is_none() {
        return;
    }
    let mut batches = Vec::new();
    for (cat, size) in [(Category::Harmful, 8), (Category::Benign, 4), (Category::Harmful, 20)] {
        let b = c.next_batch(cat, size);
        report.add(
            &format!("next-batch {cat:?} x{size}: right size, in range, right category"),
            b.is_ok(),
            b.as_ref().map_or_else(|e| format!("{e:#}"), |v| format!("{v:?}")),
        );
        batches.push(b.ok());
    }
    let observed = c.observe(&[crate::judging::Outcome {
        seed_id: "seed-1".into(),
        attacker_reward: 0.5,
        defender_reward: -1.0,
        faithful: true,
    }]);
    report.result("observe", observed.map_err(|e| format!("{e:#}")));
    if let Ok(mut d) = load() {
        let same = d.init(&seeds, 1234).is_ok()
            && [(Category::Harmful, 8), (Category::Benign, 4), (Category::Harmful, 20)]
                .iter()
                .zip(&batches)
                .all(|((cat, size), b)| d.next_batch(*cat, *size).ok() == *b);
        report.add(
            "deterministic given the rng seed",
            same,
            "two instances, same seeds and rng seed",
        );
    }
    let state = c.save_state();
    if let Some(state) = report.result("save-state", state.map_err(|e| format!("{e:#}"))) {
        let cont: Vec<_> = (0..3).map(|_| c.next_batch(Category::Harmful, 5).ok()).collect();
        let restored = load().ok().and_then(|mut d| {
            d.init(&seeds, 1234).ok()?;
            d.load_state(&state).ok()?;
            Some((0..3).map(|_| d.next_batch(Category::Harmful, 5).ok()).collect::<Vec<_>>())
        });
        report.add(
            "load-state continues exactly",
            restored.as_ref() == Some(&cont),
            format!("{} state bytes", state.len()),
        );
    }
}
