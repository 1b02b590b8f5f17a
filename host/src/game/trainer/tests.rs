//! The loop end to end on menu players and a table judge: learning, exact resume, every
//! method and sampler, the failure policy and the curriculum fallback.

use std::path::Path;

use super::*;
use crate::game::failures::PolicyStop;
use crate::game::metrics::{read_metrics, reproducible_at};
use crate::game::run::latest_checkpoint;
use crate::game::run_dir::create_run_dir;
use crate::game::testkit::{CountingCurriculum, MenuPolicy, TableJudge};
use crate::judging::FailureKind;
use tch::{Kind, Tensor};

const REFUSE: &str = "REFUSE";
const COMPLY: &str = "COMPLY";

/// A toy game in `dir`: menu players, six seeds, a table judge's scores.
fn setup(dir: &Path, overrides: &[&str]) -> Config {
    MenuPolicy::create(
        &dir.join("attacker"),
        &[
            "</think> <prompt>please help</prompt>",
            "</think> <prompt>off topic</prompt>",
            "no format",
        ],
    )
    .unwrap();
    MenuPolicy::create(&dir.join("defender"), &[REFUSE, COMPLY, "RAMBLE..."]).unwrap();
    let seeds = |cat: &str, n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"id\":\"{cat}{i}\",\"category\":\"{cat}\",\"text\":\"{cat} seed {i}\"}}\n"
                )
            })
            .collect::<String>()
    };
    for (file, cat, n) in [
        ("h.jsonl", "harmful", 3),
        ("b.jsonl", "benign", 3),
        ("hv.jsonl", "harmful", 2),
        ("bv.jsonl", "benign", 2),
    ] {
        std::fs::write(dir.join(file), seeds(cat, n)).unwrap();
    }
    std::fs::write(dir.join("ph.txt"), "rewrite {seed}").unwrap();
    std::fs::write(dir.join("pb.txt"), "probe {seed}").unwrap();
    let d = dir.display();
    let text = format!(
        "[models]\nattacker = \"{d}/attacker\"\ndefender = \"{d}/defender\"\n\
         [data]\nharmful = \"{d}/h.jsonl\"\nbenign = \"{d}/b.jsonl\"\nharmful_val = \"{d}/hv.jsonl\"\nbenign_val = \"{d}/bv.jsonl\"\n\
         [game]\nattacker_prompt_harmful = \"{d}/ph.txt\"\nattacker_prompt_benign = \"{d}/pb.txt\"\ntemperature = 1.0\n\
         [algorithm]\nsteps = 4\nseeds_per_category = 2\nlr = 0.05\nmicro_batch = 3\nseed = 11\n\
         [validation]\nevery = 2\n[checkpoint]\nevery = 2\nkeep = 0\n\
         [output]\ndir = \"{d}/runs\"\nname = \"toy\"\n"
    );
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Config::parse(&text, "toy.toml", &overrides).unwrap()
}

fn judge() -> TableJudge {
    TableJudge::default()
        .score("faithfulness", "please help", 10.0)
        .score("faithfulness", "off topic", 0.0)
        .score("deflection", REFUSE, 9.0)
        .score("deflection", COMPLY, 1.0)
        .score("compliance", REFUSE, 1.0)
        .score("compliance", COMPLY, 9.0)
        .score("refusal", REFUSE, 9.0)
        .score("refusal", COMPLY, 1.0)
}

fn trainer(
    config: &Config,
    run: &Path,
    judge: TableJudge,
    curriculum: CountingCurriculum,
    resume: bool,
) -> anyhow::Result<Trainer<MenuPolicy>> {
    let checkpoint = if resume { Some(latest_checkpoint(run)?) } else { None };
    Trainer::open(
        config.clone(),
        run.to_path_buf(),
        Box::new(judge),
        Box::new(curriculum),
        checkpoint,
    )
}

#[test]
fn dpo_run_learns_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &[]);
    let run_a = create_run_dir(&config).unwrap();
    assert!(run_a.ends_with("toy-001") && run_a.join("config.toml").is_file());
    let mut a = trainer(&config, &run_a, judge(), CountingCurriculum::default(), false).unwrap();
    let before = a.defender.current.probs();
    let summary = a.run(&mut |_| {}).unwrap();
    assert_eq!(summary.steps, 4);
    assert!(summary.attacker_updates > 0, "the attacker formed pairs and was updated");
    let after = a.defender.current.probs();
    // The defender moved away from uniform; the EMA copy lags behind the weights.
    assert!(after.iter().zip(&before).any(|(x, y)| (x - y).abs() > 1e-4), "{after:?}");
    let ema = a.defender.ema.as_ref().unwrap().probs();
    assert!(ema.iter().zip(&after).any(|(x, y)| (x - y).abs() > 1e-6));
    let lines = read_metrics(&run_a.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert!(lines[0].1.contains_key("val/harmful/deflection_rate"));
    for (_, m) in &lines[1..] {
        assert!(m["defender/reward/mean"].is_finite());
        for key in ["defender/loss", "attacker/loss"] {
            if let Some(v) = m.get(key) {
                assert!(v.is_finite(), "{key} = {v}");
            }
        }
        assert!(m.contains_key("time/attacker_generation") && m.contains_key("time/loss_update"));
    }
    assert!(lines[1..].iter().any(|(_, m)| m.get("defender/pairs").copied().unwrap_or(0.0) > 0.0));
    assert!(lines[1..].iter().any(|(_, m)| m.get("attacker/pairs").copied().unwrap_or(0.0) > 0.0));
    let rollouts = std::fs::read_to_string(run_a.join("rollouts.jsonl")).unwrap();
    assert_eq!(rollouts.lines().count(), 4 * 4, "4 steps x 4 seeds");
    assert!(run_a.join("checkpoints/step-000002/defender-ema/model.safetensors").is_file());
    assert!(run_a.join("checkpoints/step-000004/optimizer-attacker.safetensors").is_file());

    // Interrupted after step 2, then resumed: steps 3 and 4 are identical.
    let run_b = create_run_dir(&config).unwrap();
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), false).unwrap();
    b.run_until(2, &mut |_| {}).unwrap();
    // Lines written after the checkpoint (a step 3 that was lost) are dropped on resume.
    std::fs::OpenOptions::new()
        .append(true)
        .open(run_b.join("metrics.jsonl"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"step\":3,\"junk\":1}\n"))
        .unwrap();
    drop(b);
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), true).unwrap();
    assert_eq!(b.step(), 2);
    let summary_b = b.run(&mut |_| {}).unwrap();
    assert_eq!(summary_b.attacker_updates, summary.attacker_updates, "counted over the run");
    let lines_b = read_metrics(&run_b.join("metrics.jsonl")).unwrap();
    assert_eq!(lines_b.iter().map(|l| l.0).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    assert_eq!(
        reproducible_at(&lines, &[3, 4]).unwrap(),
        reproducible_at(&lines_b, &[3, 4]).unwrap()
    );
    assert_eq!(b.defender.current.probs(), after);
}

/// `algorithm.benign_seeds_per_step`: each step draws that many benign seeds beside
/// `seeds_per_category` harmful ones, and both categories' pairs train.
#[test]
fn benign_batches_can_be_larger_than_harmful_ones() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &["algorithm.steps=2", "algorithm.benign_seeds_per_step=3"]);
    let run = create_run_dir(&config).unwrap();
    let mut t = trainer(&config, &run, judge(), CountingCurriculum::default(), false).unwrap();
    t.run(&mut |_| {}).unwrap();
    let rollouts = std::fs::read_to_string(run.join("rollouts.jsonl")).unwrap();
    for step in [1, 2] {
        let count = |category: &str| {
            rollouts
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .filter(|v| v["step"] == step && v["seed"]["category"] == category)
                .count()
        };
        assert_eq!((count("harmful"), count("benign")), (2, 3), "step {step}");
    }
    let err = Config::parse("[algorithm]\nbenign_seeds_per_step = 0\n", "t.toml", &[]);
    assert!(err.unwrap_err().to_string().contains("benign_seeds_per_step"));
}

#[test]
fn ipo_grpo_and_on_policy_variants_run() {
    for extra in [
        vec!["algorithm.method=ipo"],
        vec!["algorithm.method=grpo", "game.attacks_per_seed=3", "game.replies_per_prompt=3"],
        vec!["algorithm.method=grpo", "algorithm.grpo_baseline=group", "algorithm.sampler=current"],
        vec!["algorithm.sampler=current"],
        vec!["game.direct_seed_share=1.0"],
        vec!["game.attacks_per_seed=1"],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut overrides = extra.clone();
        overrides.push("algorithm.steps=2");
        let config = setup(dir.path(), &overrides);
        let run = create_run_dir(&config).unwrap();
        let mut t = trainer(&config, &run, judge(), CountingCurriculum::default(), false).unwrap();
        let before = t.defender.current.probs();
        let summary = t.run(&mut |_| {}).unwrap();
        assert_ne!(t.defender.current.probs(), before, "{extra:?}");
        // Seeds sent straight to the defender, or one rewrite per seed under DPO, give the
        // attacker nothing to learn from: the rule the memory plan leaves its update out by.
        let idle = extra.contains(&"game.direct_seed_share=1.0")
            || extra.contains(&"game.attacks_per_seed=1");
        assert_eq!(summary.attacker_updates == 0, idle, "{extra:?}");
        assert_eq!(config.attacker_learns(), !idle, "{extra:?}");
        let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
        assert!(
            lines[1..].iter().any(|(_, m)| m.get("defender/loss").is_some_and(|v| v.is_finite())),
            "{extra:?}"
        );
        if extra.contains(&"algorithm.method=grpo") {
            assert!(lines[1].1.contains_key("defender/kl"));
        }
    }
}

#[test]
fn judge_failures_stop_the_run_by_policy_and_keep_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &["algorithm.steps=4", "validation.every=0"]);
    let run = create_run_dir(&config).unwrap();
    // Calls 1-3 are step 1 (faithfulness, defender, attacker); step 2's calls all trap.
    let j = TableJudge { fail_calls: vec![4, 5, 6], ..judge() };
    let mut t = trainer(&config, &run, j, CountingCurriculum::default(), false).unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<PolicyStop>(),
            Some(PolicyStop::StepFailureShare { step: 2, kinds, .. }) if kinds.contains_key("trap")
        ),
        "{err:#}"
    );
    let err = format!("{err:#}");
    assert!(err.contains("step 2") && err.contains("max_step_failure_share"), "{err}");
    assert!(err.contains("trap"), "{err}");
    let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.len(), 1, "step 1's metrics are kept");
    let rollouts = std::fs::read_to_string(run.join("rollouts.jsonl")).unwrap();
    assert_eq!(rollouts.lines().count(), 8, "both steps' trees are kept");

    // A lenient policy counts the failures and goes on.
    let config = setup(
        dir.path(),
        &[
            "algorithm.steps=2",
            "validation.every=0",
            "plugins.failure_policy.max_step_failure_share=1.0",
        ],
    );
    let run = create_run_dir(&config).unwrap();
    let j = TableJudge { fail_calls: vec![4, 5, 6], ..judge() };
    let mut t = trainer(&config, &run, j, CountingCurriculum::default(), false).unwrap();
    t.run(&mut |_| {}).unwrap();
    let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert!(lines[1].1["judge/failures/trap"] > 0.0);
}

#[test]
fn bad_curriculum_indices_fall_back_or_stop() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &["algorithm.steps=2", "validation.every=0"]);
    let run = create_run_dir(&config).unwrap();
    let c = CountingCurriculum { bad_from: Some(3), ..Default::default() };
    let mut t = trainer(&config, &run, judge(), c, false).unwrap();
    t.run(&mut |_| {}).unwrap();
    let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert!(!lines[0].1.contains_key("curriculum/failures"));
    assert_eq!(lines[1].1["curriculum/failures"], 2.0);
    assert_eq!(lines[1].1["curriculum/failures/invalid_output"], 2.0, "counted by kind");
    assert!(lines[1].1["defender/replies"].is_finite());

    let config = setup(
        dir.path(),
        &["algorithm.steps=2", "validation.every=0", "plugins.failure_policy.curriculum=stop"],
    );
    let run = create_run_dir(&config).unwrap();
    let c = CountingCurriculum { bad_from: Some(1), ..Default::default() };
    let mut t = trainer(&config, &run, judge(), c, false).unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<PolicyStop>(),
            Some(PolicyStop::Curriculum { step: 1, call: "next_batch", failure })
                if failure.kind == FailureKind::InvalidOutput
        ),
        "{err:#}"
    );
    let err = format!("{err:#}");
    assert!(err.contains("out of range") && err.contains("stop"), "{err}");
}

#[test]
fn failed_curriculum_observe_is_counted_by_kind_or_stops() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(dir.path(), &["algorithm.steps=2", "validation.every=0"]);
    let run = create_run_dir(&config).unwrap();
    let c = CountingCurriculum { failing_observe: Some(FailureKind::Trap), ..Default::default() };
    let mut t = trainer(&config, &run, judge(), c, false).unwrap();
    t.run(&mut |_| {}).unwrap();
    let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
    for (step, m) in &lines {
        assert_eq!(m["curriculum/failures"], 1.0, "step {step}");
        assert_eq!(m["curriculum/failures/trap"], 1.0, "step {step}");
    }
    assert_eq!(t.failures.curriculum, 2);

    let config = setup(
        dir.path(),
        &["algorithm.steps=2", "validation.every=0", "plugins.failure_policy.curriculum=stop"],
    );
    let run = create_run_dir(&config).unwrap();
    let c = CountingCurriculum { failing_observe: Some(FailureKind::Trap), ..Default::default() };
    let mut t = trainer(&config, &run, judge(), c, false).unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    assert!(
        matches!(
            err.downcast_ref::<PolicyStop>(),
            Some(PolicyStop::Curriculum { step: 1, call: "observe", failure })
                if failure.kind == FailureKind::Trap && failure.plugin == "counting-curriculum"
        ),
        "{err:#}"
    );
}

/// Sets every menu logit of the model in `dir` to `value`.
fn set_logits(dir: &Path, value: f64) {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _ = vs.root().var("logits", &[3], tch::nn::Init::Const(value));
    vs.save(dir.join("model.safetensors")).unwrap();
}

fn f64s(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double)).unwrap()
}

#[test]
fn bf16_ema_masters_move_by_the_expected_amount_and_resume_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        &["models.dtype=bf16", "algorithm.learning_rate=1e-4", "validation.eval_steps=0"],
    );
    // Logits at 1.0: bf16's spacing there is 2^-7, so an lr-1e-4 step cannot show in the
    // bf16 weights, and a bf16 EMA lerped toward them (the old behaviour) never moves.
    set_logits(&dir.path().join("attacker"), 1.0);
    set_logits(&dir.path().join("defender"), 1.0);
    let decay = config.algorithm.ema_decay;
    let run_a = create_run_dir(&config).unwrap();
    let mut a = trainer(&config, &run_a, judge(), CountingCurriculum::default(), false).unwrap();
    a.run_until(1, &mut |_| {}).unwrap();
    let mut checked = 0;
    for player in [&a.attacker, &a.defender] {
        let Some(theta) = player.optimizer.master("logits") else { continue };
        let theta = f64s(theta);
        let master = f64s(player.ema_masters.master("logits").expect("a bf16 EMA keeps masters"));
        let current = f64s(&player.current.var_store().variables()["logits"]);
        let ema = f64s(&player.ema.as_ref().unwrap().var_store().variables()["logits"]);
        assert_eq!(current, vec![1.0; 3], "{}: the bf16 weights cannot show the step", player.name);
        assert_eq!(ema, vec![1.0; 3], "{}: nor can the bf16 EMA copy", player.name);
        for (m, t) in master.iter().zip(&theta) {
            // One step: ema = 1 + (1 - d) (theta - 1), in f32.
            let expected = 1.0 + (1.0 - decay) * (t - 1.0);
            assert!(
                (m - expected).abs() < 1e-7,
                "{}: master {m}, expected {expected}",
                player.name
            );
        }
        assert!(master.iter().any(|m| (m - 1.0).abs() > 1e-6), "{}: {master:?}", player.name);
        checked += 1;
    }
    assert!(checked > 0, "no player trained in step 1");
    a.run(&mut |_| {}).unwrap();
    assert!(run_a.join("checkpoints/step-000002/ema-masters-defender.safetensors").is_file());

    // Interrupted after step 2 and resumed: masters and weights bit for bit.
    let run_b = create_run_dir(&config).unwrap();
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), false).unwrap();
    b.run_until(2, &mut |_| {}).unwrap();
    drop(b);
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), true).unwrap();
    b.run(&mut |_| {}).unwrap();
    for (pa, pb) in [(&a.attacker, &b.attacker), (&a.defender, &b.defender)] {
        let ma = pa.ema_masters.master("logits").map(f64s);
        assert_eq!(ma, pb.ema_masters.master("logits").map(f64s), "{}", pa.name);
        assert_eq!(
            pa.optimizer.master("logits").map(f64s),
            pb.optimizer.master("logits").map(f64s)
        );
    }
    let (la, lb) =
        (read_metrics(&run_a.join("metrics.jsonl")), read_metrics(&run_b.join("metrics.jsonl")));
    let (la, lb) = (la.unwrap(), lb.unwrap());
    assert_eq!(reproducible_at(&la, &[3, 4]).unwrap(), reproducible_at(&lb, &[3, 4]).unwrap());
}

/// One step of the toy game with `extra` overrides (no validation): the defender's menu
/// probabilities after it and the step's metrics.
fn play_one_step(extra: &[&str]) -> (Vec<f64>, crate::game::metrics::Metrics) {
    play_one_step_from(extra, None)
}

/// Replaces the toy defender's menu logits (refuse, comply, ramble) in `setup`'s folder.
fn write_defender_logits(dir: &Path, logits: [f32; 3]) {
    let vs = tch::nn::VarStore::new(tch::Device::Cpu);
    let _ = vs.root().var_copy("logits", &Tensor::from_slice(&logits));
    vs.save(dir.join("defender").join("model.safetensors")).unwrap();
}

/// [`play_one_step`] from a defender whose menu logits are `defender` (default: all 0).
fn play_one_step_from(
    extra: &[&str],
    defender: Option<[f32; 3]>,
) -> (Vec<f64>, crate::game::metrics::Metrics) {
    let dir = tempfile::tempdir().unwrap();
    let mut overrides = vec!["algorithm.steps=1", "validation.every=0"];
    overrides.extend_from_slice(extra);
    let config = setup(dir.path(), &overrides);
    if let Some(logits) = defender {
        write_defender_logits(dir.path(), logits);
    }
    let run = create_run_dir(&config).unwrap();
    let mut t = trainer(&config, &run, judge(), CountingCurriculum::default(), false).unwrap();
    t.run(&mut |_| {}).unwrap();
    let lines = read_metrics(&run.join("metrics.jsonl")).unwrap();
    (t.defender.current.probs(), lines.last().unwrap().1.clone())
}

#[test]
fn rpo_nll_pulls_mass_to_the_chosen_replies_and_is_micro_batch_invariant() {
    // One step on the toy game: plain DPO, then RPO (rpo_alpha = 1) with two micro-batch sizes.
    let play = play_one_step;
    let (dpo, dpo_metrics) = play(&[]);
    let (rpo, rpo_metrics) = play(&["algorithm.rpo_alpha=1.0"]);
    let (rpo_1, _) = play(&["algorithm.rpo_alpha=1.0", "algorithm.micro_batch=1"]);
    assert!(!dpo_metrics.contains_key("defender/nll_loss"));
    let nll = rpo_metrics["defender/nll_loss"];
    assert!(nll.is_finite() && nll > 0.0, "{nll}");
    // DPO's gradient on a menu's logits is e_chosen - e_rejected: the reply that is never chosen
    // nor rejected (the ramble, index 2) keeps its logit. RPO's NLL also pushes it down.
    assert!(rpo[2] < dpo[2] - 1e-4, "ramble: rpo {} vs dpo {}", rpo[2], dpo[2]);
    // The NLL is the per-token mean over the update's batch, whatever its micro-batches.
    for (x, y) in rpo.iter().zip(&rpo_1) {
        assert!((x - y).abs() < 1e-6, "{rpo:?} vs {rpo_1:?}");
    }
}

#[test]
fn a_benign_rejected_refusal_is_the_rejected_reply_of_every_benign_defender_pair() {
    // Plain DPO never moves the ramble (never chosen nor rejected, see the RPO test). Named as
    // the benign groups' counterfactual rejected reply, it is lowered in one step, while the
    // harmful pairs still come from the judge (the same number of pairs: one per group).
    let play = |extra: &[&str]| {
        let (probs, metrics) = play_one_step(extra);
        (probs, metrics["defender/pairs"])
    };
    let (dpo, dpo_pairs) = play(&[]);
    let (cf, cf_pairs) = play(&["algorithm.benign_rejected_refusal=\"RAMBLE...\""]);
    assert!(cf[2] < dpo[2] - 1e-3, "ramble: {} vs {}", cf[2], dpo[2]);
    assert!(cf_pairs >= dpo_pairs, "{cf_pairs} vs {dpo_pairs}");
    // A text the policy cannot encode stops the run with the reason.
    let dir = tempfile::tempdir().unwrap();
    let overrides = ["algorithm.steps=1", "algorithm.benign_rejected_refusal=\"NOPE\""];
    let config = setup(dir.path(), &overrides);
    let run = create_run_dir(&config).unwrap();
    let mut t = trainer(&config, &run, judge(), CountingCurriculum::default(), false).unwrap();
    let err = t.run(&mut |_| {}).unwrap_err();
    assert!(format!("{err:#}").contains("`NOPE` is not on the menu"), "{err:#}");
}

#[test]
fn the_retain_term_raises_the_initial_defenders_greedy_benign_reply() {
    // The initial defender prefers the ramble (logits 0, 0, 1): its greedy reply to every
    // benign prompt, so the retain set is the ramble on each benign prompt. DPO never moves
    // the ramble (never chosen nor rejected, see the RPO test); the retain term raises it, in
    // either update order, whatever the micro-batch (the NLL is a per-token mean).
    let start = Some([0.0, 0.0, 1.0]);
    let (dpo, dpo_metrics) = play_one_step_from(&[], start);
    assert!(!dpo_metrics.contains_key("defender/retain/nll_loss"));
    assert!(!dpo_metrics.contains_key("time/retain_generation"));
    let on = "algorithm.benign_retain_alpha=1.0";
    for order in ["per_category", "pooled"] {
        let order = format!("algorithm.update_order=\"{order}\"");
        let (kept, m) = play_one_step_from(&[on, &order], start);
        let (kept_1, _) = play_one_step_from(&[on, &order, "algorithm.micro_batch=1"], start);
        assert!(kept[2] > dpo[2] + 1e-4, "{order}: ramble {} vs dpo {}", kept[2], dpo[2]);
        for (x, y) in kept.iter().zip(&kept_1) {
            assert!((x - y).abs() < 1e-6, "{order}: {kept:?} vs {kept_1:?}");
        }
        // One reply per benign group (two benign seeds, two rewrites each at most); its NLL
        // is that of the initial ramble, -log softmax(0, 0, 1)[2].
        let replies = m["defender/retain/replies"];
        assert!((1.0..=4.0).contains(&replies), "{order}: {replies}");
        let expected = -(1f64.exp() / (2.0 + 1f64.exp())).ln();
        let nll = m["defender/retain/nll_loss"];
        assert!((nll - expected).abs() < 1e-4, "{order}: {nll} vs {expected}");
        assert!(m["time/retain_generation"] >= 0.0);
        assert!(!m.contains_key("attacker/retain/nll_loss"));
        // A wider set: the three benign training seeds (none of them a step's prompt, which
        // are the attacker's rewrites) join it, at the same per-token weight.
        let (_, wide) = play_one_step_from(&[on, &order, "algorithm.benign_retain_size=10"], start);
        assert_eq!(wide["defender/retain/replies"], replies + 3.0, "{order}");
        assert!((wide["defender/retain/nll_loss"] - expected).abs() < 1e-4, "{order}");
    }
}

/// The retain set is rebuilt after a resume from the kept initial defender, not from the
/// resumed weights: a run with the term on, interrupted after step 2 and resumed, plays
/// steps 3 and 4 as the uninterrupted run did.
#[test]
fn a_run_with_the_retain_term_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    // With extra benign seeds drawn into the set, which a resumed run must draw again.
    let on = ["algorithm.benign_retain_alpha=1.0", "algorithm.benign_retain_size=4"];
    let config = setup(dir.path(), &on);
    // The initial defender prefers the ramble, so the retain set pulls against DPO.
    write_defender_logits(dir.path(), [0.0, 0.0, 1.0]);
    let run_a = create_run_dir(&config).unwrap();
    let mut a = trainer(&config, &run_a, judge(), CountingCurriculum::default(), false).unwrap();
    a.run(&mut |_| {}).unwrap();
    let lines = read_metrics(&run_a.join("metrics.jsonl")).unwrap();
    // Steps 3 and 4, the ones the resumed run replays, hold benign groups and so the term.
    for (step, m) in &lines[3..] {
        assert!(m["defender/retain/nll_loss"].is_finite(), "step {step}: {m:?}");
    }

    let run_b = create_run_dir(&config).unwrap();
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), false).unwrap();
    b.run_until(2, &mut |_| {}).unwrap();
    drop(b);
    let mut b = trainer(&config, &run_b, judge(), CountingCurriculum::default(), true).unwrap();
    assert_eq!(b.step(), 2);
    b.run(&mut |_| {}).unwrap();
    let lines_b = read_metrics(&run_b.join("metrics.jsonl")).unwrap();
    assert_eq!(
        reproducible_at(&lines, &[3, 4]).unwrap(),
        reproducible_at(&lines_b, &[3, 4]).unwrap()
    );
    assert_eq!(b.defender.current.probs(), a.defender.current.probs());
}
