//! Validation: the defender alone on held-out seeds, scored pointwise with the same answering
//! and scoring code as `advgame-host eval` ([`crate::eval::score`]), logged as
//! `val/<category>/<rubric>_{mean,rate}`, `val/judge_failures`, `val/truncated_rate`.

use crate::eval::score;
use crate::game::config::Config;
use crate::game::metrics::Metrics;
use crate::game::rng::{PURPOSE_VALIDATION, derive_seed};
use crate::judging::{Category, Judge, Seed};
use crate::llm::{Generation, Generator, SamplingParams};

/// The validation seeds of a run: harmful then benign, each list cut to
/// `validation.max_seeds` (0 = all).
pub fn validation_seeds(config: &Config, harmful: Vec<Seed>, benign: Vec<Seed>) -> Vec<Seed> {
    let mut val_seeds = Vec::new();
    for mut s in [harmful, benign] {
        if config.validation.max_seeds > 0 {
            s.truncate(config.validation.max_seeds);
        }
        val_seeds.extend(s);
    }
    val_seeds
}

/// Answers every seed with `defender` (sampling seeded by `(algorithm.seed, step)`) and
/// scores the replies with the validation rubrics of their category.
pub fn validate(
    defender: &mut dyn Generator,
    judge: &mut dyn Judge,
    seeds: &[Seed],
    config: &Config,
    step: u64,
) -> anyhow::Result<Metrics> {
    let v = &config.validation;
    let prompts: Vec<&str> = seeds.iter().map(|s| s.text.as_str()).collect();
    let params = SamplingParams {
        max_new_tokens: config.game.defender_max_tokens,
        temperature: v.temperature,
        top_p: config.game.top_p,
        seed: derive_seed(config.algorithm.seed, step, PURPOSE_VALIDATION),
        stop: Vec::new(),
    };
    let replies = score::answer(defender, &prompts, &params)?;
    let answers: Vec<(Category, &str, &Generation)> =
        seeds.iter().zip(&replies).map(|(s, r)| (s.category, s.text.as_str(), r)).collect();
    let rubrics = |c: Category| match c {
        Category::Harmful => v.harmful_rubrics.clone(),
        Category::Benign => v.benign_rubrics.clone(),
    };
    let scored = score::assess(judge, &answers, &rubrics)?;
    Ok(score::rubric_metrics("val", &scored, v.threshold))
}
