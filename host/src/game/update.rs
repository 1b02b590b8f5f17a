//! One optimiser update of a player from its groups of the step: the method's loss over
//! micro-batches (gradients accumulated, each chunk weighted by its share of the batch),
//! gradient clipping, the AdamW step (once per step, or once per category:
//! `algorithm.update_order`) and the EMA update. The defender's retain term
//! (`algorithm.benign_retain_alpha`, [`crate::game::retain`]) joins the update that holds the
//! benign groups. Returns the player's metrics (`<player>/loss`, TRL's `rewards/*` and
//! `logps/*` for DPO/IPO, `kl` and `ratio/*` for GRPO, `retain/nll_loss`).

use tch::{Kind, Tensor};

use crate::game::config::{Algorithm, Baseline, Method, UpdateOrder};
use crate::game::loss::{self, GrpoInputs, GrpoStats, PairLogps, PrefStats};
use crate::game::memory_plan::probe;
use crate::game::metrics::Metrics;
use crate::game::optim::AdamW;
use crate::game::pairs::select_pair;
use crate::game::player::Player;
use crate::game::policy::Policy;
use crate::game::retain::RetainSet;
use crate::game::rewards::best_reply;
use crate::game::rng::{PURPOSE_LORA_DROPOUT, derive_seed};
use crate::game::rollout::{Group, Member};
use crate::judging::Category;
use crate::model::{Completion, DropoutSeed, TokenLogprobs};

/// A DPO/IPO training pair: a prompt and two of its completions, the judge's preferred one
/// first.
struct PreferencePair {
    prompt: Vec<i64>,
    chosen: Vec<i64>,
    rejected: Vec<i64>,
}

/// Batch-weighted means of the DPO/IPO statistics over a step's micro-batches.
#[derive(Debug, Default)]
struct PreferenceSums {
    loss: f64,
    reward_chosen: f64,
    reward_rejected: f64,
    accuracy: f64,
    margin: f64,
    logp_chosen: f64,
    logp_rejected: f64,
    /// RPO's chosen NLL (already the batch's per-token mean: micro-batch terms add up).
    nll: f64,
}

impl PreferenceSums {
    /// Adds one micro-batch's loss and statistics with weight `w` (its share of the batch)
    /// and its part `nll` of the batch's RPO NLL term.
    fn add(&mut self, loss: f64, st: &PrefStats, w: f64, nll: f64) {
        self.nll += nll;
        self.loss += loss * w;
        self.reward_chosen += st.reward_chosen * w;
        self.reward_rejected += st.reward_rejected * w;
        self.accuracy += st.accuracy * w;
        self.margin += st.margin * w;
        self.logp_chosen += st.logp_chosen * w;
        self.logp_rejected += st.logp_rejected * w;
    }

    /// Writes the sums under TRL's metric names, prefixed with the player's name; `nll_loss`
    /// (TRL's name) only when RPO is on. `loss` is the preference loss alone.
    fn write(&self, name: &str, m: &mut Metrics, rpo: bool) {
        if rpo {
            m.insert(format!("{name}/nll_loss"), self.nll);
        }
        for (key, v) in [
            ("loss", self.loss),
            ("rewards/chosen", self.reward_chosen),
            ("rewards/rejected", self.reward_rejected),
            ("rewards/accuracies", self.accuracy),
            ("rewards/margins", self.margin),
            ("logps/chosen", self.logp_chosen),
            ("logps/rejected", self.logp_rejected),
        ] {
            m.insert(format!("{name}/{key}"), v);
        }
    }
}

/// A GRPO training sample: one rewarded completion with its group and prompt.
struct GrpoSample<'a> {
    /// Index of the group (the advantage baseline of `grpo_baseline = "group"`).
    group: usize,
    prompt: &'a Vec<i64>,
    member: &'a Member,
    reward: f32,
}

/// Batch-weighted means of the GRPO statistics over a step's micro-batches.
#[derive(Debug, Default)]
struct GrpoSums {
    loss: f64,
    kl: f64,
    ratio_mean: f64,
    ratio_capped: f64,
}

impl GrpoSums {
    /// Adds one micro-batch's loss and statistics with weight `w` (its share of the batch).
    fn add(&mut self, loss: f64, st: &GrpoStats, w: f64) {
        self.loss += loss * w;
        self.kl += st.kl * w;
        self.ratio_mean += st.ratio_mean * w;
        self.ratio_capped += st.ratio_capped * w;
    }

    /// Writes the sums, prefixed with the player's name.
    fn write(&self, name: &str, m: &mut Metrics) {
        for (key, v) in [
            ("loss", self.loss),
            ("kl", self.kl),
            ("ratio/mean", self.ratio_mean),
            ("ratio/capped", self.ratio_capped),
        ] {
            m.insert(format!("{name}/{key}"), v);
        }
    }
}

/// Sums each row's masked token log-probs: `[B, C]` -> `[B]`.
fn sequence_sums(logprobs: &Tensor, mask: &Tensor) -> Tensor {
    (logprobs * mask).sum_dim_intlist(1, false, Kind::Float)
}

/// Prompt ids of each group (once per group: the attacker's A samples share a prompt).
fn prompt_ids<P: Policy>(policy: &P, groups: &[Group]) -> anyhow::Result<Vec<Vec<i64>>> {
    groups.iter().map(|g| policy.prompt_ids(&g.request)).collect()
}

/// A player's optimiser updates of one step from its groups (and, for the defender, the
/// step's `retain` set; empty when off) at learning rate `lr`, in `algorithm.update_order`,
/// then the EMA update; returns its metrics. The EMA copy moves even when nothing was
/// trainable.
///
/// `per_category` (the paper): one update on the harmful groups, then one on the benign
/// groups, each the mean over its own category, so both categories weigh the same whatever
/// their number of pairs; the metrics are logged per category (`<player>/harmful/loss`, ...)
/// and combined (`<player>/loss` the mean over the categories that trained, counts summed).
/// GRPO's `batch` baseline is then the mean over the category's batch; the retain set (benign
/// prompts) joins the benign update. `pooled`: one update on all groups and the retain set.
pub fn update<P: Policy>(
    player: &mut Player<P>,
    groups: &[Group],
    retain: &RetainSet,
    a: &Algorithm,
    lr: f64,
) -> anyhow::Result<Metrics> {
    let none = RetainSet::default();
    let m = match a.update_order {
        UpdateOrder::Pooled => optimiser_update(player, groups, retain, a, lr)?,
        UpdateOrder::PerCategory => {
            let mut parts = Vec::new();
            for (category, label) in [(Category::Harmful, "harmful"), (Category::Benign, "benign")]
            {
                let own: Vec<Group> =
                    groups.iter().filter(|g| g.category == category).cloned().collect();
                let retain = if category == Category::Benign { retain } else { &none };
                parts.push((label, optimiser_update(player, &own, retain, a, lr)?));
            }
            combine_categories(player.name, &parts)
        }
    };
    player.update_ema(a.ema_decay)?;
    probe::mark(&format!("{} EMA update", player.name));
    Ok(m)
}

/// Per-category metrics under `<player>/<category>/...`, plus the combined
/// `<player>/...`: counts (`pairs`, `samples`) summed, everything else averaged over the
/// categories that reported it.
fn combine_categories(name: &str, parts: &[(&str, Metrics)]) -> Metrics {
    let mut out = Metrics::new();
    let mut combined: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    for (label, m) in parts {
        for (key, v) in m {
            let rest = key.strip_prefix(&format!("{name}/")).unwrap_or(key);
            out.insert(format!("{name}/{label}/{rest}"), *v);
            let e = combined.entry(rest.to_string()).or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    for (rest, (sum, n)) in combined {
        let is_count = rest == "pairs" || rest == "samples";
        out.insert(format!("{name}/{rest}"), if is_count { sum } else { sum / n as f64 });
    }
    out
}

/// One optimiser update of a player from `groups` and `retain` (the loss over them,
/// clipping, AdamW).
fn optimiser_update<P: Policy>(
    player: &mut Player<P>,
    groups: &[Group],
    retain: &RetainSet,
    a: &Algorithm,
    lr: f64,
) -> anyhow::Result<Metrics> {
    let mut m = Metrics::new();
    let prompts = prompt_ids(&player.current, groups)?;
    AdamW::zero_grad(player.current.var_store());
    // Adapter dropout (LoRA players) is on for the policy's forward passes only, its masks
    // keyed by the run seed, the player and its optimiser step (`model::dropout`): a resumed
    // run draws the same masks, and no process-global generator is touched.
    let purpose = PURPOSE_LORA_DROPOUT + u64::from(player.name == "defender");
    let seed = DropoutSeed(derive_seed(a.seed, player.optimizer.steps, purpose));
    player.current.set_training(Some(seed));
    let trained = match a.method {
        Method::Dpo => preference_backward(player, groups, &prompts, a, loss::dpo_loss, &mut m),
        Method::Ipo => preference_backward(player, groups, &prompts, a, loss::ipo_loss, &mut m),
        Method::Grpo => grpo_backward(player, groups, &prompts, a, &mut m),
    }
    .and_then(|trained| Ok(retain_backward(player, retain, a, &mut m)? || trained));
    player.current.set_training(None);
    let trained = trained?;
    let name = player.name;
    if trained {
        let norm = AdamW::clip_grad_norm(player.current.var_store(), a.grad_clip);
        m.insert(format!("{name}/grad_norm"), norm);
        player.optimizer.step(player.current.var_store(), lr)?;
        AdamW::zero_grad(player.current.var_store());
        probe::mark(&format!("{name} clipping and AdamW step"));
    }
    Ok(m)
}

/// The DPO/IPO loss (`pair_loss`) of the best-vs-worst pair of every group (for benign
/// defender groups under `algorithm.benign_rejected_refusal`: best vs that refusal), plus
/// `rpo_alpha` times the chosen completions' per-token NLL over all pairs
/// ([`loss::chosen_nll`]), backpropagated; returns whether there was anything to train.
fn preference_backward<P: Policy>(
    player: &Player<P>,
    groups: &[Group],
    prompts: &[Vec<i64>],
    a: &Algorithm,
    pair_loss: fn(&PairLogps<'_>, f64) -> (Tensor, PrefStats),
    m: &mut Metrics,
) -> anyhow::Result<bool> {
    let name = player.name;
    let micro = a.micro_batch.max(1);
    // The counterfactual rejected reply of benign defender groups, tokenized once.
    let refusal = match a.benign_rejected_refusal.as_deref() {
        Some(text) if name == "defender" => Some(player.current.completion_ids(text)?),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (g, prompt) in groups.iter().zip(prompts) {
        let (chosen, rejected) = match &refusal {
            Some(refusal) if g.category == Category::Benign => {
                let Some(w) = best_reply(&g.rewards()) else { continue };
                (&g.members[w].token_ids, refusal)
            }
            _ => {
                let Some((w, l)) = select_pair(&g.rewards()) else { continue };
                (&g.members[w].token_ids, &g.members[l].token_ids)
            }
        };
        if !chosen.is_empty() && !rejected.is_empty() {
            pairs.push(PreferencePair {
                prompt: prompt.clone(),
                chosen: chosen.clone(),
                rejected: rejected.clone(),
            });
        }
    }
    m.insert(format!("{name}/pairs"), pairs.len() as f64);
    let total = pairs.len();
    let chosen_tokens: usize = pairs.iter().map(|p| p.chosen.len()).sum();
    let rpo = a.rpo_alpha > 0.0;
    let mut sums = PreferenceSums::default();
    for chunk in pairs.chunks(micro) {
        let k = chunk.len();
        // Chosen completions first, then the rejected ones: rows i and k + i are a pair.
        let items: Vec<Completion> = chunk
            .iter()
            .map(|p| Completion::new(p.prompt.clone(), p.chosen.clone()))
            .chain(chunk.iter().map(|p| Completion::new(p.prompt.clone(), p.rejected.clone())))
            .collect();
        let t = player.current.token_logprobs(&items)?;
        let policy = sequence_sums(&t.logprobs, &t.mask);
        probe::mark(&format!("{name} log-prob forward, {} rows", items.len()));
        let reference = tch::no_grad(|| -> anyhow::Result<Tensor> {
            let t = player.reference().token_logprobs(&items)?;
            Ok(sequence_sums(&t.logprobs, &t.mask))
        })?;
        probe::mark(&format!("{name} reference forward"));
        let (pc, pr) = (policy.narrow(0, 0, k as i64), policy.narrow(0, k as i64, k as i64));
        let (rc, rr) = (reference.narrow(0, 0, k as i64), reference.narrow(0, k as i64, k as i64));
        let logps = PairLogps {
            policy_chosen: &pc,
            policy_rejected: &pr,
            ref_chosen: &rc,
            ref_rejected: &rr,
        };
        let (l, st) = pair_loss(&logps, a.beta);
        let w = k as f64 / total as f64;
        let mut objective = &l * w;
        let mut nll = 0.0;
        if rpo {
            let n = loss::chosen_nll(&pc, chosen_tokens);
            nll = n.double_value(&[]);
            objective += n * a.rpo_alpha;
        }
        player.current.backward(&objective)?;
        probe::mark(&format!("{name} backward"));
        sums.add(l.double_value(&[]), &st, w, nll);
    }
    if total > 0 {
        sums.write(name, m, rpo);
    }
    Ok(total > 0)
}

/// `benign_retain_alpha` times the retain set's per-token NLL (the mean over all its reply
/// tokens, whatever the micro-batches), backpropagated; returns whether there was anything
/// to train. Logs `<player>/retain/nll_loss` (the unweighted NLL) and `retain/replies`.
fn retain_backward<P: Policy>(
    player: &Player<P>,
    retain: &RetainSet,
    a: &Algorithm,
    m: &mut Metrics,
) -> anyhow::Result<bool> {
    if a.benign_retain_alpha <= 0.0 || retain.is_empty() {
        return Ok(false);
    }
    let name = player.name;
    let tokens = retain.tokens();
    let mut nll = 0.0;
    for chunk in retain.items.chunks(a.micro_batch.max(1)) {
        let t = player.current.token_logprobs(chunk)?;
        let n = loss::chosen_nll(&sequence_sums(&t.logprobs, &t.mask), tokens);
        nll += n.double_value(&[]);
        player.current.backward(&(n * a.benign_retain_alpha))?;
        probe::mark(&format!("{name} retain forward and backward"));
    }
    m.insert(format!("{name}/retain/nll_loss"), nll);
    m.insert(format!("{name}/retain/replies"), retain.items.len() as f64);
    Ok(true)
}

/// The GRPO loss of every rewarded completion, backpropagated; returns whether there was
/// anything to train.
fn grpo_backward<P: Policy>(
    player: &Player<P>,
    groups: &[Group],
    prompts: &[Vec<i64>],
    a: &Algorithm,
    m: &mut Metrics,
) -> anyhow::Result<bool> {
    let name = player.name;
    let micro = a.micro_batch.max(1);
    let mut samples = Vec::new();
    for (gi, (g, prompt)) in groups.iter().zip(prompts).enumerate() {
        for member in &g.members {
            if let Some(reward) = member.reward
                && !member.token_ids.is_empty()
            {
                samples.push(GrpoSample { group: gi, prompt, member, reward });
            }
        }
    }
    let rewards: Vec<f32> = samples.iter().map(|s| s.reward).collect();
    let group_ids: Vec<usize> = samples.iter().map(|s| s.group).collect();
    let adv = loss::advantages(
        &rewards,
        (a.grpo_baseline == Baseline::Group).then_some(group_ids.as_slice()),
    );
    m.insert(format!("{name}/samples"), samples.len() as f64);
    let total = samples.len();
    let mut sums = GrpoSums::default();
    let device = player.current.var_store().device();
    for (ci, chunk) in samples.chunks(micro).enumerate() {
        let k = chunk.len();
        let items: Vec<Completion> = chunk
            .iter()
            .map(|s| Completion::new(s.prompt.clone(), s.member.token_ids.clone()))
            .collect();
        let TokenLogprobs { logprobs: lp, mask } = player.current.token_logprobs(&items)?;
        let c = lp.size()[1];
        let mut sampler = vec![0f32; k * c as usize];
        for (r, s) in chunk.iter().enumerate() {
            for (j, v) in s.member.logprobs.iter().take(c as usize).enumerate() {
                sampler[r * c as usize + j] = *v;
            }
        }
        let sampler = Tensor::from_slice(&sampler).view([k as i64, c]).to_device(device);
        let reference = tch::no_grad(|| -> anyhow::Result<Tensor> {
            let init = player.initial.as_ref().expect("GRPO keeps the initial model");
            Ok(init.token_logprobs(&items)?.logprobs)
        })?;
        let advantages = Tensor::from_slice(&adv[ci * micro..ci * micro + k]).to_device(device);
        let x = GrpoInputs {
            policy: &lp,
            sampler: &sampler,
            reference: &reference,
            mask: &mask,
            advantages: &advantages,
        };
        let (l, st) = loss::grpo_loss(&x, a.beta, a.grpo_ratio_cap);
        let w = k as f64 / total as f64;
        player.current.backward(&(&l * w))?;
        sums.add(l.double_value(&[]), &st, w);
    }
    if total > 0 {
        sums.write(name, m);
        let mean_abs = adv.iter().map(|x| f64::from(x.abs())).sum::<f64>() / total as f64;
        m.insert(format!("{name}/advantage/abs_mean"), mean_abs);
    }
    Ok(total > 0)
}
