//! One step's rollout trees (game.md, "One step"): attacker samples, strict parsing, the
//! faithfulness gate, defender samples, pairwise defender judging, optimistic selection,
//! pairwise attacker judging against the seed, and -1 patching.
//!
//! Every phase is one batched call over all seeds of the step (one attacker generation, one
//! faithfulness assessment, one defender generation, one defender comparison batch, one
//! attacker comparison batch), so a judge model or plugin sees as few, as large batches as
//! possible. The result is a serialisable record (`rollouts.jsonl`) and the groups the losses
//! train on.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::game::config::{JudgeContext, Rubrics};
use crate::game::parse::{ParseError, parse_attack};
use crate::game::prompts::AttackerPrompts;
use crate::game::rewards::{self, Judgment, Slot};
use crate::judging::{Assessment, Category, Comparison, Failure, Judge, Seed};
use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};

/// Everything about the tree's shape that the config decides.
#[derive(Debug, Clone)]
pub struct RolloutSettings {
    pub attacks_per_seed: usize,
    pub replies_per_prompt: usize,
    pub attacker_sampling: SamplingParams,
    pub defender_sampling: SamplingParams,
    pub faithfulness_gate: bool,
    /// A faithfulness score at or above this is "faithful".
    pub faithful_threshold: f32,
    pub optimistic_attacker: bool,
    pub penalize_truncated_replies: bool,
    pub defender_context: JudgeContext,
    pub rubrics: Rubrics,
    pub prompts: AttackerPrompts,
    /// Share of the seeds per category that the defender answers as written, without an
    /// attacker rewrite (config `game.direct_seed_share`; see [`direct_seeds`]).
    pub direct_seed_share: f64,
}

/// One pairwise judgment in a tree, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgmentRecord {
    pub a: usize,
    pub b: usize,
    /// Scores of (a, b); `None` when the judgment failed.
    pub scores: Option<(f32, f32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// One defender reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub text: String,
    pub finish: FinishReason,
    pub slot: Slot,
    pub reward: Option<f32>,
    #[serde(skip)]
    pub token_ids: Vec<i64>,
    #[serde(skip)]
    pub logprobs: Vec<f32>,
}

/// One attacker sample and everything that hangs off it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attack {
    pub output: String,
    pub finish: FinishReason,
    /// The parsed prompt x.
    pub prompt: Option<String>,
    pub parse_error: Option<ParseError>,
    pub faithfulness: Option<f32>,
    pub faithful: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faithfulness_failure: Option<Failure>,
    pub replies: Vec<Reply>,
    pub judgments: Vec<JudgmentRecord>,
    /// The reply the attacker is judged on (y*).
    pub best_reply: Option<usize>,
    pub slot: Slot,
    pub reward: Option<f32>,
    #[serde(skip)]
    pub token_ids: Vec<i64>,
    #[serde(skip)]
    pub logprobs: Vec<f32>,
}

/// The rollout tree of one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedTree {
    pub seed: Seed,
    pub attacks: Vec<Attack>,
    pub judgments: Vec<JudgmentRecord>,
    /// The attacker's request (rebuilt from the config; not written to `rollouts.jsonl`).
    #[serde(skip)]
    pub request: ChatRequest,
    /// The defender answered the seed as written (`game.direct_seed_share`): one attack whose
    /// prompt is the seed, not generated, never judged or trained as the attacker's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
}

/// Counters and timings of one rollout.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutStats {
    /// Failed judgments by kind name (faithfulness, defender and attacker judging together).
    pub failures: BTreeMap<&'static str, u64>,
    /// Judgments requested (pointwise and pairwise).
    pub judgments: u64,
    pub judgments_failed: u64,
    pub time_attacker_generation: f64,
    pub time_defender_generation: f64,
    pub time_judge: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRollout {
    pub trees: Vec<SeedTree>,
    pub stats: RolloutStats,
}

/// A completion with its sampler log-probs and reward (a member of a training group).
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub token_ids: Vec<i64>,
    pub logprobs: Vec<f32>,
    pub reward: Option<f32>,
}

/// Completions of one prompt that compete with each other: the D replies to one x (defender)
/// or the A attacks on one seed (attacker).
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub category: Category,
    pub request: ChatRequest,
    pub members: Vec<Member>,
}

impl Group {
    pub fn rewards(&self) -> Vec<Option<f32>> {
        self.members.iter().map(|m| m.reward).collect()
    }
}

impl RolloutSettings {
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
        prompt: Some(seed.text.clone()),
        parse_error: None,
        faithfulness: None,
        faithful: None,
        faithfulness_failure: None,
        replies: Vec::new(),
        judgments: Vec::new(),
        best_reply: None,
        slot: Slot::Judged,
        reward: None,
        token_ids: Vec::new(),
        logprobs: Vec::new(),
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
            if direct {
                let attacks = vec![direct_attack(seed)];
                return SeedTree {
                    seed: seed.clone(),
                    attacks,
                    judgments: Vec::new(),
                    request,
                    direct,
                };
            }
            let attacks = (0..a_n)
                .map(|_| {
                    let Generation { text, token_ids, finish, logprobs } =
                        outputs.next().expect("length checked");
                    let parsed = parse_attack(&text, finish);
                    let (prompt, parse_error) = match parsed {
                        Ok(p) => (Some(p.prompt), None),
                        Err(e) => (None, Some(e)),
                    };
                    let slot = if prompt.is_some() { Slot::Judged } else { Slot::Penalized };
                    Attack {
                        output: text,
                        finish,
                        prompt,
                        parse_error,
                        faithfulness: None,
                        faithful: None,
                        faithfulness_failure: None,
                        replies: Vec::new(),
                        judgments: Vec::new(),
                        best_reply: None,
                        slot,
                        reward: None,
                        token_ids,
                        logprobs,
                    }
                })
                .collect();
            SeedTree { seed: seed.clone(), attacks, judgments: Vec::new(), request, direct }
        })
        .collect();

    // 2. Faithfulness gate: one pointwise batch over every parsed prompt.
    if settings.faithfulness_gate {
        let mut index = Vec::new();
        let mut batch = Vec::new();
        for (ti, tree) in trees.iter().enumerate().filter(|(_, t)| !t.direct) {
            for (ai, attack) in tree.attacks.iter().enumerate() {
                if let Some(x) = &attack.prompt {
                    index.push((ti, ai));
                    batch.push(Assessment {
                        rubric: settings.faithfulness_rubric(tree.seed.category).to_string(),
                        context: tree.seed.text.clone(),
                        response: x.clone(),
                    });
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
                match result {
                    Ok(score) => {
                        let faithful = score >= settings.faithful_threshold;
                        attack.faithfulness = Some(score);
                        attack.faithful = Some(faithful);
                        if !faithful {
                            attack.slot = Slot::Penalized;
                        }
                    }
                    Err(f) => {
                        stats.judgments_failed += 1;
                        *stats.failures.entry(f.kind.as_str()).or_default() += 1;
                        attack.faithfulness_failure = Some(f);
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
                let x = attack.prompt.clone().expect("judged attacks have a prompt");
                for _ in 0..d_n {
                    index.push((ti, ai));
                    batch.push(ChatRequest::user(x.clone()));
                }
            }
        }
    }
    if !batch.is_empty() {
        let t = Instant::now();
        let replies = defender.generate(&batch, &settings.defender_sampling)?;
        stats.time_defender_generation = t.elapsed().as_secs_f64();
        anyhow::ensure!(
            replies.len() == batch.len(),
            "defender returned {} of {} replies",
            replies.len(),
            batch.len()
        );
        for ((ti, ai), g) in index.into_iter().zip(replies) {
            let invalid = (settings.penalize_truncated_replies && g.finish == FinishReason::Length)
                || g.text.trim().is_empty();
            trees[ti].attacks[ai].replies.push(Reply {
                text: g.text,
                finish: g.finish,
                slot: if invalid { Slot::Penalized } else { Slot::Judged },
                reward: None,
                token_ids: g.token_ids,
                logprobs: g.logprobs,
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
                JudgeContext::Prompt => attack.prompt.clone().unwrap_or_default(),
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
        for (attack, r) in tree.attacks.iter_mut().zip(rewards) {
            attack.reward = r;
        }
    }
    Ok(StepRollout { trees, stats })
}

impl StepRollout {
    /// The defender's groups: the replies to each valid prompt.
    pub fn defender_groups(&self) -> Vec<Group> {
        let mut out = Vec::new();
        for tree in &self.trees {
            for attack in &tree.attacks {
                if attack.replies.is_empty() {
                    continue;
                }
                let request = ChatRequest::user(attack.prompt.clone().unwrap_or_default());
                let members = attack
                    .replies
                    .iter()
                    .map(|r| Member {
                        token_ids: r.token_ids.clone(),
                        logprobs: r.logprobs.clone(),
                        reward: r.reward,
                    })
                    .collect();
                out.push(Group { category: tree.seed.category, request, members });
            }
        }
        out
    }

    /// The attacker's groups: the attacks on each seed (the think part included); seeds the
    /// defender answered as written have none.
    pub fn attacker_groups(&self) -> Vec<Group> {
        self.trees
            .iter()
            .filter(|tree| !tree.direct)
            .map(|tree| Group {
                category: tree.seed.category,
                request: tree.request.clone(),
                members: tree
                    .attacks
                    .iter()
                    .map(|a| Member {
                        token_ids: a.token_ids.clone(),
                        logprobs: a.logprobs.clone(),
                        reward: a.reward,
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
