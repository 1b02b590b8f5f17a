//! Plays one step's rollout trees: every phase is one batched call over all seeds of the
//! step (one attacker generation, one faithfulness assessment, one defender generation, one
//! defender comparison batch, one attacker comparison batch), so a judge model or plugin sees
//! as few, as large batches as possible.

use std::time::Instant;

use rand::Rng;

use super::{
    Attack, JudgmentRecord, PairRecord, Reply, RolloutStats, Sampled, SeedTree, StepRollout,
};
use crate::game::config::{JudgeContext, Rubrics};
use crate::game::memory_plan::probe;
use crate::game::parse::Rewrite;
use crate::game::prompts::{AttackerPrompts, fill_prompt_template};
use crate::game::rewards::{self, Judgment, Slot};
use crate::judging::{Category, Comparison, Judge, Seed};
use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};

/// Everything about the tree's shape that the config decides.
#[derive(Debug, Clone)]
pub struct RolloutSettings {
    /// A: attacker samples per seed (`game.attacks_per_seed`; paper: 2 for DPO, 4 for GRPO).
    pub attacks_per_seed: usize,
    /// D: defender replies per valid attacker prompt (`game.replies_per_prompt`; paper: 2 for
    /// DPO, 4 for GRPO).
    pub replies_per_prompt: usize,
    /// How the attacker samples (max tokens, temperature, top-p, stop strings); the seed is
    /// derived per step.
    pub attacker_sampling: SamplingParams,
    /// How the defender samples.
    pub defender_sampling: SamplingParams,
    /// On: an unfaithful prompt gets reward -1 and no defender replies (`game.faithfulness_gate`).
    pub faithfulness_gate: bool,
    /// A faithfulness score at or above this is "faithful".
    pub faithful_threshold: f32,
    /// On: the attacker is judged on the defender's best reply to its prompt (y*), as in the
    /// paper; off: on a random reply.
    pub optimistic_attacker: bool,
    /// On: a defender reply cut at `defender_max_tokens` gets reward -1 without being judged.
    pub penalize_truncated_replies: bool,
    /// What the defender judge sees as context: the attacker's prompt x (paper) or the seed.
    pub defender_context: JudgeContext,
    /// The rubric names for each judging role and category.
    pub rubrics: Rubrics,
    /// The attacker's instruction per category and its prefill.
    pub prompts: AttackerPrompts,
    /// Share of the seeds per category that the defender answers as written, without an
    /// attacker rewrite (config `game.direct_seed_share`; see [`direct_seeds`]).
    pub direct_seed_share: f64,
    /// The system message the defender samples under and is NOT scored under (context
    /// distillation, config `game.defender_sampling_system_prompt`); `None`: none.
    pub defender_sampling_system_prompt: Option<String>,
    /// The user-turn template (one `{prompt}` slot) the defender samples under and is NOT
    /// scored under (config `game.defender_sampling_prompt_template`); `None`: the prompt.
    pub defender_sampling_prompt_template: Option<String>,
    /// The template benign seeds' replies are sampled under instead (config
    /// `game.defender_sampling_prompt_template_benign`); `None`: the one above.
    pub defender_sampling_prompt_template_benign: Option<String>,
    /// The seed categories sampled under the two settings above (config
    /// `game.defender_sampling_categories`); the others are sampled on the bare prompt.
    pub defender_sampling_categories: Vec<Category>,
    /// Share of each prompt's replies sampled under them (config
    /// `game.defender_sampling_share`); the rest on the bare prompt.
    pub defender_sampling_share: f64,
}
impl RolloutSettings {
    /// The user-turn template a category's instructed replies are sampled under.
    fn defender_sampling_template(&self, c: Category) -> Option<&str> {
        match (c, &self.defender_sampling_prompt_template_benign) {
            (Category::Benign, Some(benign)) => Some(benign),
            _ => self.defender_sampling_prompt_template.as_deref(),
        }
    }
    fn defender_rubric(&self, c: Category) -> &str {
        match c {
            Category::Harmful => &self.rubrics.defender_harmful,
            Category::Benign => &self.rubrics.defender_benign,
        }
    }
    fn attacker_rubric(&self, c: Category) -> &str {
        match c {
            Category::Harmful => &self.rubrics.attacker_harmful,
            Category::Benign => &self.rubrics.attacker_benign,
        }
    }
    fn faithfulness_rubric(&self, c: Category) -> &str {
        match c {
            Category::Harmful => &self.rubrics.faithfulness_harmful,
            Category::Benign => &self.rubrics.faithfulness_benign,
        }
    }
}

/// A comparison to make: tree, attack (None for attacker judging), pairing, request.
type PlanItem = (usize, Option<usize>, (usize, usize), Comparison);

/// Runs one batch of comparisons and turns the results into per-pairing records.
/// (Position-bias handling, A/B swapping and both-order agreement, is the judge host's job:
/// see `crate::plugin::JudgeOptions`.)
fn judge_pairs(
    judge: &mut dyn Judge,
    plan: Vec<PlanItem>,
    stats: &mut RolloutStats,
) -> anyhow::Result<Vec<(usize, Option<usize>, JudgmentRecord)>> {
    if plan.is_empty() {
        return Ok(Vec::new());
    }
    let batch: Vec<Comparison> = plan.iter().map(|p| p.3.clone()).collect();
    let results = judge.compare(&batch)?;
    anyhow::ensure!(
        results.len() == batch.len(),
        "judge returned {} results for {} comparisons",
        results.len(),
        batch.len()
    );
    stats.judgments += batch.len() as u64;
    let mut out = Vec::with_capacity(plan.len());
    for ((tree, attack, (a, b), _), result) in plan.into_iter().zip(results) {
        let (scores, failure) = match result {
            Ok(s) => (Some((s.a, s.b)), None),
            Err(f) => {
                stats.judgments_failed += 1;
                *stats.failures.entry(f.kind.as_str()).or_default() += 1;
                (None, Some(f))
            }
        };
        out.push((tree, attack, JudgmentRecord { a, b, scores, failure }));
    }
    Ok(out)
}

fn into_judgments(records: &[JudgmentRecord]) -> Vec<Judgment> {
    records.iter().map(|r| ((r.a, r.b), r.scores)).collect()
}

/// Which of `seeds` the defender answers as written: per category, the first
/// `round(share x count)` in step order (the curriculum already drew them at random), so the
/// choice needs no random numbers and `share = 0` changes nothing.
pub fn direct_seeds(seeds: &[Seed], share: f64) -> Vec<bool> {
    let mut out = vec![false; seeds.len()];
    for category in [Category::Harmful, Category::Benign] {
        let own: Vec<usize> = (0..seeds.len()).filter(|&i| seeds[i].category == category).collect();
        let n = (share * own.len() as f64).round() as usize;
        for &i in own.iter().take(n) {
            out[i] = true;
        }
    }
    out
}

/// The stand-in attack of a direct seed: its prompt is the seed text, valid by construction.
fn direct_attack(seed: &Seed) -> Attack {
    Attack {
        output: String::new(),
        finish: FinishReason::Stop,
        rewrite: Rewrite { prompt: Some(seed.text.clone()), ..Rewrite::default() },
        replies: Vec::new(),
        judgments: Vec::new(),
        best_reply: None,
        pair: None,
        slot: Slot::Judged,
        reward: None,
        sample: Sampled::default(),
    }
}

/// Plays one step's rollout trees for `seeds`.
pub fn rollout(
    seeds: &[Seed],
    settings: &RolloutSettings,
    attacker: &mut dyn Generator,
    defender: &mut dyn Generator,
    judge: &mut dyn Judge,
    rng: &mut impl Rng,
) -> anyhow::Result<StepRollout> {
    let mut stats = RolloutStats::default();
    let a_n = settings.attacks_per_seed;

    // 1. Attacker samples (none for the seeds the defender answers as written).
    let direct = direct_seeds(seeds, settings.direct_seed_share);
    let requests: Vec<ChatRequest> = seeds.iter().map(|s| settings.prompts.request(s)).collect();
    let batch: Vec<ChatRequest> = requests
        .iter()
        .zip(&direct)
        .filter(|(_, d)| !**d)
        .flat_map(|(r, _)| std::iter::repeat_n(r.clone(), a_n))
        .collect();
    let t = Instant::now();
    let outputs = if batch.is_empty() {
        Vec::new()
    } else {
        attacker.generate(&batch, &settings.attacker_sampling)?
    };
    stats.time_attacker_generation = t.elapsed().as_secs_f64();
    probe::mark("attacker generation");
    anyhow::ensure!(
        outputs.len() == batch.len(),
        "attacker returned {} of {} outputs",
        outputs.len(),
        batch.len()
    );
    let mut outputs = outputs.into_iter();
    let mut trees: Vec<SeedTree> = seeds
        .iter()
        .zip(requests)
        .zip(&direct)
        .map(|((seed, request), &direct)| {
            let attacks = if direct {
                vec![direct_attack(seed)]
            } else {
                (0..a_n)
                    .map(|_| {
                        let Generation { text, token_ids, finish, logprobs } =
                            outputs.next().expect("length checked");
                        let rewrite = Rewrite::parse(&text, finish);
                        let slot =
                            if rewrite.prompt.is_some() { Slot::Judged } else { Slot::Penalized };
                        Attack {
                            output: text,
                            finish,
                            rewrite,
                            replies: Vec::new(),
                            judgments: Vec::new(),
                            best_reply: None,
                            pair: None,
                            slot,
                            reward: None,
                            sample: Sampled { token_ids, logprobs },
                        }
                    })
                    .collect()
            };
            SeedTree {
                seed: seed.clone(),
                attacks,
                judgments: Vec::new(),
                request,
                direct,
                pair: None,
            }
        })
        .collect();

    // 2. Faithfulness gate: one pointwise batch over every parsed prompt.
    if settings.faithfulness_gate {
        let mut index = Vec::new();
        let mut batch = Vec::new();
        for (ti, tree) in trees.iter().enumerate().filter(|(_, t)| !t.direct) {
            for (ai, attack) in tree.attacks.iter().enumerate() {
                let rubric = settings.faithfulness_rubric(tree.seed.category);
                if let Some(a) = attack.rewrite.faithfulness_assessment(rubric, &tree.seed) {
                    index.push((ti, ai));
                    batch.push(a);
                }
            }
        }
        if !batch.is_empty() {
            let t = Instant::now();
            let results = judge.assess(&batch)?;
            stats.time_judge += t.elapsed().as_secs_f64();
            anyhow::ensure!(
                results.len() == batch.len(),
                "judge returned {} of {} assessments",
                results.len(),
                batch.len()
            );
            stats.judgments += batch.len() as u64;
            for ((ti, ai), result) in index.into_iter().zip(results) {
                let attack = &mut trees[ti].attacks[ai];
                match attack.rewrite.record_faithfulness(result, settings.faithful_threshold) {
                    Ok(true) => {}
                    Ok(false) => attack.slot = Slot::Penalized,
                    Err(f) => {
                        stats.judgments_failed += 1;
                        *stats.failures.entry(f.kind.as_str()).or_default() += 1;
                        attack.slot = Slot::Excluded;
                    }
                }
            }
        }
    }

    // 3. Defender samples: D replies to every valid prompt, one batch.
    let d_n = settings.replies_per_prompt;
    let mut index = Vec::new();
    let mut batch = Vec::new();
    for (ti, tree) in trees.iter().enumerate() {
        for (ai, attack) in tree.attacks.iter().enumerate() {
            if attack.slot == Slot::Judged {
                let x = attack.rewrite.prompt.as_deref().expect("judged attacks have a prompt");
                let template = settings.defender_sampling_template(tree.seed.category);
                let told = ChatRequest {
                    system: settings.defender_sampling_system_prompt.clone(),
                    ..ChatRequest::user(fill_prompt_template(template, x))
                };
                // The first `distilled` replies are sampled under the instruction (when there
                // is one), the rest bare.
                let instructed = told.system.is_some() || template.is_some();
                let distilled = if instructed
                    && settings.defender_sampling_categories.contains(&tree.seed.category)
                {
                    (settings.defender_sampling_share * d_n as f64).round() as usize
                } else {
                    0
                };
                let bare = ChatRequest::user(x);
                for j in 0..d_n {
                    index.push((ti, ai, j < distilled));
                    batch.push(if j < distilled { told.clone() } else { bare.clone() });
                }
            }
        }
    }
    if !batch.is_empty() {
        let t = Instant::now();
        let replies = defender.generate(&batch, &settings.defender_sampling)?;
        stats.time_defender_generation = t.elapsed().as_secs_f64();
        probe::mark("defender generation");
        anyhow::ensure!(
            replies.len() == batch.len(),
            "defender returned {} of {} replies",
            replies.len(),
            batch.len()
        );
        for ((ti, ai, told), g) in index.into_iter().zip(replies) {
            let invalid = (settings.penalize_truncated_replies && g.finish == FinishReason::Length)
                || g.text.trim().is_empty();
            trees[ti].attacks[ai].replies.push(Reply {
                text: g.text,
                finish: g.finish,
                told,
                slot: if invalid { Slot::Penalized } else { Slot::Judged },
                reward: None,
                sample: Sampled { token_ids: g.token_ids, logprobs: g.logprobs },
            });
        }
    }

    // 4. Defender judging: every pair of replies to each prompt, one batch.
    let mut plan = Vec::new();
    for (ti, tree) in trees.iter().enumerate() {
        let rubric = settings.defender_rubric(tree.seed.category);
        for (ai, attack) in tree.attacks.iter().enumerate() {
            let slots: Vec<Slot> = attack.replies.iter().map(|r| r.slot).collect();
            let context = match settings.defender_context {
                JudgeContext::Prompt => attack.rewrite.prompt.clone().unwrap_or_default(),
                JudgeContext::Seed => tree.seed.text.clone(),
            };
            for (i, j) in rewards::plan_pairings(&slots) {
                let cmp = Comparison {
                    rubric: rubric.to_string(),
                    context: context.clone(),
                    a: attack.replies[i].text.clone(),
                    b: attack.replies[j].text.clone(),
                };
                plan.push((ti, Some(ai), (i, j), cmp));
            }
        }
    }
    let t = Instant::now();
    let judged = judge_pairs(judge, plan, &mut stats)?;
    stats.time_judge += t.elapsed().as_secs_f64();
    for (ti, ai, record) in judged {
        trees[ti].attacks[ai.expect("defender judgments name an attack")].judgments.push(record);
    }
    for tree in &mut trees {
        for attack in &mut tree.attacks {
            let slots: Vec<Slot> = attack.replies.iter().map(|r| r.slot).collect();
            let rewards = rewards::group_rewards(&slots, &into_judgments(&attack.judgments));
            for (reply, r) in attack.replies.iter_mut().zip(&rewards) {
                reply.reward = *r;
            }
            attack.pair = PairRecord::of(&rewards);
            // 5. The reply the attacker is judged on.
            if attack.slot == Slot::Judged {
                attack.best_reply = if settings.optimistic_attacker {
                    rewards::best_reply(&rewards)
                } else {
                    let scored: Vec<usize> =
                        (0..rewards.len()).filter(|&i| rewards[i].is_some()).collect();
                    (!scored.is_empty()).then(|| scored[rng.random_range(0..scored.len())])
                };
                if attack.best_reply.is_none() {
                    attack.slot = Slot::Excluded;
                }
            }
        }
    }

    // 6. Attacker judging: the best replies of a seed's attacks, against the seed (not for
    // seeds the defender answered as written: no attacker wrote them).
    let mut plan = Vec::new();
    for (ti, tree) in trees.iter().enumerate().filter(|(_, t)| !t.direct) {
        let rubric = settings.attacker_rubric(tree.seed.category);
        let slots: Vec<Slot> = tree.attacks.iter().map(|a| a.slot).collect();
        let best = |ai: usize| {
            let a = &tree.attacks[ai];
            a.replies[a.best_reply.expect("judged attacks have a best reply")].text.clone()
        };
        for (i, j) in rewards::plan_pairings(&slots) {
            let cmp = Comparison {
                rubric: rubric.to_string(),
                context: tree.seed.text.clone(),
                a: best(i),
                b: best(j),
            };
            plan.push((ti, None, (i, j), cmp));
        }
    }
    let t = Instant::now();
    let judged = judge_pairs(judge, plan, &mut stats)?;
    stats.time_judge += t.elapsed().as_secs_f64();
    for (ti, _, record) in judged {
        trees[ti].judgments.push(record);
    }
    for tree in &mut trees {
        let slots: Vec<Slot> = tree.attacks.iter().map(|a| a.slot).collect();
        let rewards = rewards::group_rewards(&slots, &into_judgments(&tree.judgments));
        if !tree.direct {
            tree.pair = PairRecord::of(&rewards);
        }
        for (attack, r) in tree.attacks.iter_mut().zip(rewards) {
            attack.reward = r;
        }
    }
    Ok(StepRollout { trees, stats })
}
