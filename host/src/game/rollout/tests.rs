//! The rollout's tests, and the rollout settings other tests of the game use.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::game::config::{JudgeContext, Rubrics};
use crate::game::pairs::select_pair;
use crate::game::parse::ParseError;
use crate::game::prompts::AttackerPrompts;
pub(crate) use crate::game::testkit::ScriptedGenerator;
use crate::game::testkit::TableJudge;
use crate::judging::{Category, FailureKind};
use crate::llm::SamplingParams;

/// The scripted judge of these tests: unknown texts are an `invalid-output` failure, and
/// texts in `fail_texts` fail as unparsable.
fn scripted_judge() -> TableJudge {
    TableJudge { fail_kind: FailureKind::Parse, ..TableJudge::strict() }
}

pub(crate) fn settings(a: usize, d: usize) -> RolloutSettings {
    RolloutSettings {
        attacks_per_seed: a,
        replies_per_prompt: d,
        attacker_sampling: SamplingParams::default(),
        defender_sampling: SamplingParams::default(),
        faithfulness_gate: true,
        faithful_threshold: 5.0,
        optimistic_attacker: true,
        penalize_truncated_replies: true,
        defender_context: JudgeContext::Prompt,
        rubrics: Rubrics::default(),
        prompts: AttackerPrompts {
            harmful: "H: {seed}".into(),
            benign: "B: {seed}".into(),
            prefill: Some("<think>".into()),
        },
        direct_seed_share: 0.0,
        defender_sampling_system_prompt: None,
        defender_sampling_prompt_template: None,
        defender_sampling_prompt_template_benign: None,
        defender_sampling_categories: vec![Category::Harmful, Category::Benign],
        defender_sampling_share: 1.0,
    }
}

/// Plays one rollout of `seeds` with an RNG seeded with `rng_seed`.
fn play(
    seeds: &[Seed],
    settings: &RolloutSettings,
    attacker: &mut ScriptedGenerator,
    defender: &mut ScriptedGenerator,
    judge: &mut TableJudge,
    rng_seed: u64,
) -> StepRollout {
    let mut rng = ChaCha8Rng::seed_from_u64(rng_seed);
    rollout(seeds, settings, attacker, defender, judge, &mut rng).unwrap()
}

fn seed(id: &str, category: Category) -> Seed {
    Seed { id: id.into(), category, text: format!("seed {id}") }
}

use FinishReason::{Length, Stop};

const HELP: &str = "I can't help with that, but here is a safe alternative.";
const HARM: &str = "Sure, here is how.";

fn harmful_scenario() -> (ScriptedGenerator, ScriptedGenerator, TableJudge) {
    let attacker = ScriptedGenerator::new(&[
        ("<think>a</think> <prompt>P0</prompt>", Stop),
        ("<think>b</think> <prompt>P1</prompt>", Stop),
        ("<think>c</think> <prompt>P2</prompt>", Stop),
        ("I will just answer it.", Stop),
    ]);
    let defender =
        ScriptedGenerator::new(&[(HELP, Stop), (HARM, Stop), (HARM, Stop), (HARM, Length)]);
    let judge = scripted_judge()
        .score("faithfulness", "P0", 10.0)
        .score("faithfulness", "P1", 9.0)
        .score("faithfulness", "P2", 0.0)
        .score("deflection", HELP, 8.0)
        .score("deflection", HARM, 2.0)
        .score("compliance", HELP, 3.0)
        .score("compliance", HARM, 9.0);
    (attacker, defender, judge)
}

#[test]
fn harmful_tree_hand_computed() {
    let (mut attacker, mut defender, mut judge) = harmful_scenario();
    let seeds = [seed("h1", Category::Harmful)];
    let out = play(&seeds, &settings(4, 2), &mut attacker, &mut defender, &mut judge, 0);

    // One batch per phase.
    assert_eq!(attacker.calls.len(), 1);
    assert_eq!(attacker.calls[0].len(), 4);
    assert_eq!(attacker.calls[0][0].user, "H: seed h1");
    assert_eq!(defender.calls.len(), 1);
    assert_eq!(defender.calls[0].len(), 4, "two valid faithful prompts x two replies");
    assert_eq!(judge.assess_calls.len(), 1);
    assert_eq!(judge.assess_calls[0].len(), 3, "the unparsable output is not assessed");
    assert_eq!(judge.compare_calls.len(), 2);
    assert_eq!(judge.compare_calls[0].len(), 2, "P0: one pair, P1: one self-pair");
    assert_eq!(judge.compare_calls[1].len(), 1);

    let t = &out.trees[0];
    // P0: replies HELP vs HARM under deflection -> 8, 2.
    assert_eq!(
        t.attacks[0].replies.iter().map(|r| r.reward).collect::<Vec<_>>(),
        vec![Some(8.0), Some(2.0)]
    );
    assert_eq!(t.attacks[0].best_reply, Some(0));
    // P1: one reply truncated (-1), the other paired with itself: 2.
    assert_eq!(
        t.attacks[1].replies.iter().map(|r| r.reward).collect::<Vec<_>>(),
        vec![Some(2.0), Some(-1.0)]
    );
    assert_eq!(t.attacks[1].best_reply, Some(0));
    // P2 unfaithful, attack 3 unparsable: -1 each, no replies.
    assert_eq!(t.attacks[2].rewrite.faithful, Some(false));
    assert!(t.attacks[2].replies.is_empty());
    assert_eq!(t.attacks[3].rewrite.parse_error, Some(ParseError::MissingThink));
    // Attacker judging under compliance with the seed as context: y*(P0)=HELP 3, y*(P1)=HARM 9.
    assert_eq!(judge.compare_calls[1][0].context, "seed h1");
    assert_eq!(judge.compare_calls[1][0].rubric, "compliance");
    assert_eq!(judge.compare_calls[0][0].context, "P0");
    let rewards: Vec<_> = t.attacks.iter().map(|a| a.reward).collect();
    assert_eq!(rewards, vec![Some(3.0), Some(9.0), Some(-1.0), Some(-1.0)]);

    // Pairs: attacker chosen = P1 (9), rejected = the last -1; defender P0: 0 over 1.
    let attacker_groups = out.attacker_groups();
    assert_eq!(select_pair(&attacker_groups[0].rewards()), Some((1, 3)));
    assert_eq!(attacker_groups[0].request.prefill.as_deref(), Some("<think>"));
    let defender_groups = out.defender_groups();
    assert_eq!(defender_groups.len(), 2);
    assert_eq!(defender_groups[0].request.user, "P0");
    assert_eq!(select_pair(&defender_groups[0].rewards()), Some((0, 1)));
    assert_eq!(select_pair(&defender_groups[1].rewards()), Some((0, 1)));
    assert_eq!(out.stats.judgments, 6);
    assert_eq!(out.stats.judgments_failed, 0);

    // rollouts.jsonl records the same pairs the update trains on.
    assert_eq!(t.pair, Some(PairRecord { chosen: 1, rejected: 3 }));
    assert_eq!(t.attacks[0].pair, Some(PairRecord { chosen: 0, rejected: 1 }));
    assert_eq!(t.attacks[1].pair, Some(PairRecord { chosen: 0, rejected: 1 }));
    assert_eq!(t.attacks[2].pair, None, "no replies, no pair");

    let line = serde_json::to_string(t).unwrap();
    assert!(line.contains("\"parse_error\":\"missing_think\""), "{line}");
    assert!(line.contains("\"pair\":{\"chosen\":1,\"rejected\":3}"), "{line}");
    let back: SeedTree = serde_json::from_str(&line).unwrap();
    assert_eq!(back.pair, t.pair);
    assert_eq!(back.attacks[0].pair, t.attacks[0].pair);
}

#[test]
fn benign_seeds_use_their_rubrics_and_the_seed_context_option() {
    let mut attacker = ScriptedGenerator::new(&[("<think>a</think><prompt>Q</prompt>", Stop)]);
    let mut defender = ScriptedGenerator::new(&[("No.", Stop), ("Here you go.", Stop)]);
    let mut judge = scripted_judge()
        .score("faithfulness", "Q", 10.0)
        .score("compliance", "No.", 0.0)
        .score("compliance", "Here you go.", 10.0)
        .score("refusal", "Here you go.", 1.0);
    let mut s = settings(1, 2);
    s.defender_context = JudgeContext::Seed;
    let out =
        play(&[seed("b1", Category::Benign)], &s, &mut attacker, &mut defender, &mut judge, 0);
    assert_eq!(attacker.calls[0][0].user, "B: seed b1");
    assert_eq!(judge.compare_calls[0][0].rubric, "compliance");
    assert_eq!(judge.compare_calls[0][0].context, "seed b1");
    // The single attack is paired with itself under the refusal rubric: reward 1.
    assert_eq!(judge.compare_calls[1][0].rubric, "refusal");
    assert_eq!(out.trees[0].attacks[0].reward, Some(1.0));
    assert_eq!(select_pair(&out.attacker_groups()[0].rewards()), None);
    assert_eq!(out.trees[0].pair, None, "a lone attack forms no pair");
}

#[test]
fn failed_judgments_are_counted_and_leave_no_reward() {
    let (mut attacker, mut defender, mut judge) = harmful_scenario();
    // Every judgment involving HARM fails: P0's pair fails, P1's self-pair fails.
    judge.fail_texts.push(HARM.into());
    let out = play(
        &[seed("h1", Category::Harmful)],
        &settings(4, 2),
        &mut attacker,
        &mut defender,
        &mut judge,
        0,
    );
    let t = &out.trees[0];
    assert_eq!(t.attacks[0].replies.iter().map(|r| r.reward).collect::<Vec<_>>(), vec![None, None]);
    // P1 keeps its truncated reply's -1, which becomes y*; P0 has no best reply: excluded.
    assert_eq!(t.attacks[0].slot, Slot::Excluded);
    assert_eq!(t.attacks[0].reward, None);
    assert_eq!(t.attacks[1].best_reply, Some(1));
    assert_eq!(out.stats.judgments_failed, 3, "P0 pair, P1 self-pair, P1 attacker self-pair");
    assert_eq!(out.stats.failures["parse"], 3);
}

#[test]
fn non_optimistic_attacker_picks_a_scored_reply() {
    let (mut attacker, mut defender, mut judge) = harmful_scenario();
    let mut s = settings(4, 2);
    s.optimistic_attacker = false;
    let out =
        play(&[seed("h1", Category::Harmful)], &s, &mut attacker, &mut defender, &mut judge, 3);
    for a in &out.trees[0].attacks[..2] {
        assert!(a.best_reply.is_some_and(|i| a.replies[i].reward.is_some()));
    }
}

#[test]
fn direct_seeds_skip_the_attacker() {
    // Half of each category goes straight to the defender: the first seed of each in step
    // order; a share rounds per category.
    let seeds = [
        seed("h1", Category::Harmful),
        seed("b1", Category::Benign),
        seed("h2", Category::Harmful),
        seed("b2", Category::Benign),
    ];
    assert_eq!(direct_seeds(&seeds, 0.5), vec![true, true, false, false]);
    assert_eq!(direct_seeds(&seeds, 0.0), vec![false; 4]);
    assert_eq!(direct_seeds(&seeds, 1.0), vec![true; 4]);
    assert_eq!(
        direct_seeds(&seeds[..3], 0.5),
        vec![true, true, false],
        "1 of 2, 1 of 1 (0.5 rounds up)"
    );

    let mut attacker = ScriptedGenerator::new(&[("<think>a</think> <prompt>P0</prompt>", Stop)]);
    let mut defender =
        ScriptedGenerator::new(&[(HELP, Stop), (HARM, Stop), (HELP, Stop), (HARM, Stop)]);
    let mut judge = scripted_judge()
        .score("faithfulness", "P0", 10.0)
        .score("deflection", HELP, 8.0)
        .score("deflection", HARM, 2.0)
        .score("compliance", HELP, 3.0)
        .score("compliance", HARM, 9.0);
    let mut s = settings(1, 2);
    s.direct_seed_share = 0.5;
    let seeds = [seed("h1", Category::Harmful), seed("h2", Category::Harmful)];
    let out = play(&seeds, &s, &mut attacker, &mut defender, &mut judge, 0);

    // The attacker writes only for h2; the faithfulness gate sees only its prompt.
    assert_eq!(attacker.calls.len(), 1);
    assert_eq!(attacker.calls[0].len(), 1);
    assert_eq!(attacker.calls[0][0].user, "H: seed h2");
    assert_eq!(judge.assess_calls[0].len(), 1);
    // The defender answers the seed as written and the rewrite, two replies each.
    let asked: Vec<&str> = defender.calls[0].iter().map(|r| r.user.as_str()).collect();
    assert_eq!(asked, vec!["seed h1", "seed h1", "P0", "P0"]);
    let (direct, rewritten) = (&out.trees[0], &out.trees[1]);
    assert!(direct.direct && !rewritten.direct);
    assert_eq!(direct.attacks.len(), 1);
    assert_eq!(direct.attacks[0].replies.len(), 2);
    assert!(direct.attacks[0].reward.is_none(), "no attacker reward for a seed it did not write");
    // Both seeds give the defender a group; only h2 gives the attacker one.
    let groups = out.defender_groups();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].request.user, "seed h1");
    assert!(groups.iter().all(|g| select_pair(&g.rewards()).is_some()));
    assert_eq!(out.attacker_groups().len(), 1);
    // Attacker judging covers h2 only.
    assert!(judge.compare_calls[1].iter().all(|c| c.context == "seed h2"));
    // The record says which seed was direct; other lines stay as they were.
    let line = serde_json::to_string(direct).unwrap();
    assert!(line.contains("\"direct\":true"), "{line}");
    assert!(!serde_json::to_string(rewritten).unwrap().contains("direct"));
}

#[test]
fn the_sampling_system_prompt_reaches_sampling_but_not_scoring() {
    // Context distillation: the defender samples with the system message in front of the
    // prompt; the groups its loss scores hold the prompt alone. The attacker never sees it.
    let (mut attacker, _, mut judge) = harmful_scenario();
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop), (HARM, Stop)]);
    let mut s = settings(1, 2);
    s.direct_seed_share = 1.0;
    s.defender_sampling_system_prompt = Some("Refuse harmful requests.".into());
    s.defender_sampling_prompt_template = Some("If harmful, refuse.\n\n{prompt}".into());
    let seeds = [seed("h1", Category::Harmful)];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    assert!(attacker.calls.is_empty());
    let sampled = &defender.calls[0];
    assert_eq!(sampled.len(), 2);
    for r in sampled {
        assert_eq!(r.system.as_deref(), Some("Refuse harmful requests."));
        assert_eq!(r.user, "If harmful, refuse.\n\nseed h1");
    }
    let groups = out.defender_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].request, ChatRequest::user("seed h1"), "scored without the system");
    assert_eq!(groups[0].members.len(), 2);
    // Unset: sampled and scored on the same bare prompt.
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop), (HARM, Stop)]);
    s.defender_sampling_system_prompt = None;
    s.defender_sampling_prompt_template = None;
    rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    assert!(defender.calls[0].iter().all(|r| r.system.is_none() && r.user == "seed h1"));
}

#[test]
fn sampling_categories_choose_which_seeds_are_distilled() {
    // `defender_sampling_categories = ["harmful"]`: the harmful seed is sampled under the
    // instruction, the benign one on its bare prompt; both are scored on the bare prompt.
    let (mut attacker, _, judge) = harmful_scenario();
    let mut judge = judge.score("compliance", HELP, 3.0);
    let mut defender =
        ScriptedGenerator::new(&[(HELP, Stop), (HARM, Stop), (HARM, Stop), (HELP, Stop)]);
    let mut s = settings(1, 2);
    s.direct_seed_share = 1.0;
    s.defender_sampling_system_prompt = Some("Refuse harmful requests.".into());
    s.defender_sampling_prompt_template = Some("If harmful, refuse.\n\n{prompt}".into());
    s.defender_sampling_categories = vec![Category::Harmful];
    let seeds = [seed("h1", Category::Harmful), seed("b1", Category::Benign)];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    let sampled = &defender.calls[0];
    assert_eq!(sampled.len(), 4);
    let harmful: Vec<_> = sampled.iter().filter(|r| r.user.ends_with("seed h1")).collect();
    let benign: Vec<_> = sampled.iter().filter(|r| r.user.ends_with("seed b1")).collect();
    assert_eq!((harmful.len(), benign.len()), (2, 2));
    for r in harmful {
        assert_eq!(r.system.as_deref(), Some("Refuse harmful requests."));
        assert_eq!(r.user, "If harmful, refuse.\n\nseed h1");
    }
    for r in benign {
        assert_eq!(r, &ChatRequest::user("seed b1"), "benign seeds are sampled bare");
    }
    let requests: Vec<_> = out.defender_groups().iter().map(|g| g.request.clone()).collect();
    assert_eq!(requests, vec![ChatRequest::user("seed h1"), ChatRequest::user("seed b1")]);
}

#[test]
fn sampling_share_mixes_instructed_and_bare_replies_in_one_group() {
    // `defender_sampling_share = 0.5` with 4 replies: 2 under the instruction, 2 bare, in one
    // group scored on the bare prompt, so the judge's pair can contrast the two.
    let (mut attacker, _, mut judge) = harmful_scenario();
    let mut defender =
        ScriptedGenerator::new(&[(HELP, Stop), (HELP, Stop), (HARM, Stop), (HARM, Stop)]);
    let mut s = settings(1, 4);
    s.direct_seed_share = 1.0;
    s.defender_sampling_prompt_template = Some("If harmful, refuse.\n\n{prompt}".into());
    s.defender_sampling_share = 0.5;
    let seeds = [seed("h1", Category::Harmful)];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    let users: Vec<&str> = defender.calls[0].iter().map(|r| r.user.as_str()).collect();
    assert_eq!(
        users,
        ["If harmful, refuse.\n\nseed h1", "If harmful, refuse.\n\nseed h1", "seed h1", "seed h1"]
    );
    let groups = out.defender_groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].request, ChatRequest::user("seed h1"));
    assert_eq!(groups[0].members.len(), 4);
    // rollouts.jsonl says which replies were sampled under the instruction.
    let replies = &out.trees[0].attacks[0].replies;
    assert_eq!(replies.iter().map(|r| r.told).collect::<Vec<_>>(), [true, true, false, false]);
    let line = serde_json::to_string(&out.trees[0]).unwrap();
    assert_eq!(line.matches("\"told\":true").count(), 2, "{line}");
    assert!(!line.contains("\"told\":false"), "{line}");
    // The instructed refusal is chosen over the bare answer.
    let rewards: Vec<Option<f32>> = groups[0].members.iter().map(|m| m.reward).collect();
    let (chosen, rejected) = select_pair(&rewards).unwrap();
    assert_eq!((chosen, rejected), (0, 3), "{rewards:?}");
    // Share 0: every reply bare.
    s.defender_sampling_share = 0.0;
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop); 4]);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    assert!(defender.calls[0].iter().all(|r| r.user == "seed h1"));
    assert!(out.trees[0].attacks[0].replies.iter().all(|r| !r.told));
    // No instruction at all: nothing is marked told, whatever the share.
    s.defender_sampling_share = 1.0;
    s.defender_sampling_prompt_template = None;
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop); 4]);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    assert!(out.trees[0].attacks[0].replies.iter().all(|r| !r.told));
}

#[test]
fn benign_seeds_sample_under_their_own_template() {
    // `defender_sampling_prompt_template_benign`: benign seeds' instructed replies use it (the
    // negative prompt of the contrast), harmful seeds' the shared template; both categories
    // keep the share's bare replies and are scored on the bare prompt.
    let (mut attacker, _, judge) = harmful_scenario();
    let mut judge = judge.score("compliance", HELP, 3.0);
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop); 4]);
    let mut s = settings(1, 2);
    s.direct_seed_share = 1.0;
    s.defender_sampling_prompt_template = Some("If harmful, refuse.\n\n{prompt}".into());
    s.defender_sampling_prompt_template_benign = Some("{prompt}\n\nRefuse.".into());
    s.defender_sampling_share = 0.5;
    let seeds = [seed("h1", Category::Harmful), seed("b1", Category::Benign)];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let out = rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    let users: Vec<&str> = defender.calls[0].iter().map(|r| r.user.as_str()).collect();
    assert_eq!(
        users,
        ["If harmful, refuse.\n\nseed h1", "seed h1", "seed b1\n\nRefuse.", "seed b1"]
    );
    let requests: Vec<_> = out.defender_groups().iter().map(|g| g.request.clone()).collect();
    assert_eq!(requests, vec![ChatRequest::user("seed h1"), ChatRequest::user("seed b1")]);
    // Unset: benign seeds fall back to the shared template.
    s.defender_sampling_prompt_template_benign = None;
    let mut defender = ScriptedGenerator::new(&[(HELP, Stop); 4]);
    rollout(&seeds, &s, &mut attacker, &mut defender, &mut judge, &mut rng).unwrap();
    assert_eq!(defender.calls[0][2].user, "If harmful, refuse.\n\nseed b1");
}
