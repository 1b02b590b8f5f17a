//! The three objectives of game.md on libtorch tensors: DPO and IPO over sequence-level
//! log-probability sums (no length normalisation), and GRPO with per-token k3 KL to the frozen
//! initial model and a truncated importance ratio against the sampling policy.

use tch::{Kind, Tensor};

/// Sequence log-prob sums `[B]` of the chosen and rejected completions under the trained
/// policy (with gradients) and under the reference (no gradients needed).
#[derive(Debug)]
pub struct PairLogps<'a> {
    /// `[B]` log pi(y_w | x) of the chosen completions, with gradients.
    pub policy_chosen: &'a Tensor,
    /// `[B]` log pi(y_l | x) of the rejected completions, with gradients.
    pub policy_rejected: &'a Tensor,
    /// `[B]` log ref(y_w | x) under the reference policy (detached).
    pub ref_chosen: &'a Tensor,
    /// `[B]` log ref(y_l | x) under the reference policy (detached).
    pub ref_rejected: &'a Tensor,
}

/// TRL-style statistics of a preference loss (means over the batch).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PrefStats {
    /// `beta * (log pi - log ref)` of the chosen completions (TRL `rewards/chosen`).
    pub reward_chosen: f64,
    /// `beta * (log pi - log ref)` of the rejected completions (TRL `rewards/rejected`).
    pub reward_rejected: f64,
    /// Share of pairs whose chosen implicit reward exceeds the rejected one.
    pub accuracy: f64,
    /// `reward_chosen - reward_rejected`.
    pub margin: f64,
    /// Mean sequence log-prob of the chosen completions under the policy (TRL `logps/chosen`).
    pub logp_chosen: f64,
    /// Mean sequence log-prob of the rejected completions under the policy (TRL
    /// `logps/rejected`).
    pub logp_rejected: f64,
}

/// The log-ratio difference `[(pi_w - ref_w) - (pi_l - ref_l)]` per pair.
fn log_ratio_diff(p: &PairLogps<'_>) -> (Tensor, Tensor, Tensor) {
    let chosen = p.policy_chosen - p.ref_chosen.detach();
    let rejected = p.policy_rejected - p.ref_rejected.detach();
    (&chosen - &rejected, chosen, rejected)
}

fn stats(p: &PairLogps<'_>, chosen: &Tensor, rejected: &Tensor, beta: f64) -> PrefStats {
    tch::no_grad(|| {
        let rc = (chosen * beta).to_kind(Kind::Double);
        let rr = (rejected * beta).to_kind(Kind::Double);
        PrefStats {
            reward_chosen: rc.mean(Kind::Double).double_value(&[]),
            reward_rejected: rr.mean(Kind::Double).double_value(&[]),
            accuracy: rc.gt_tensor(&rr).to_kind(Kind::Double).mean(Kind::Double).double_value(&[]),
            margin: (&rc - &rr).mean(Kind::Double).double_value(&[]),
            logp_chosen: p.policy_chosen.to_kind(Kind::Double).mean(Kind::Double).double_value(&[]),
            logp_rejected: p
                .policy_rejected
                .to_kind(Kind::Double)
                .mean(Kind::Double)
                .double_value(&[]),
        }
    })
}

/// DPO: `mean(-log sigmoid(beta * diff))`.
pub fn dpo_loss(p: &PairLogps<'_>, beta: f64) -> (Tensor, PrefStats) {
    let (diff, chosen, rejected) = log_ratio_diff(p);
    let loss = -(diff * beta).log_sigmoid().mean(Kind::Float);
    (loss, stats(p, &chosen, &rejected, beta))
}

/// IPO: `mean((diff - 1 / (2 beta))^2)`.
pub fn ipo_loss(p: &PairLogps<'_>, beta: f64) -> (Tensor, PrefStats) {
    let (diff, chosen, rejected) = log_ratio_diff(p);
    let loss = (diff - 1.0 / (2.0 * beta)).square().mean(Kind::Float);
    (loss, stats(p, &chosen, &rejected, beta))
}

/// RPO's negative log-likelihood term (Pang et al. 2024, "Iterative Reasoning Preference
/// Optimization", eq. 3; TRL's `rpo_alpha`): `-sum(log pi(y_w | x)) / tokens`, the chosen
/// completions' summed log-probs `policy_chosen` `[B]` over `tokens`, the number of chosen
/// completion tokens in the whole update batch (not only this micro-batch), so that the
/// micro-batches of one update add up to the per-token mean over the batch, as TRL's
/// cross-entropy over the chosen rows computes it.
pub fn chosen_nll(policy_chosen: &Tensor, tokens: usize) -> Tensor {
    -policy_chosen.sum(Kind::Float) / tokens.max(1) as f64
}

/// GRPO advantages: reward minus the mean over the batch, or over each member's group when
/// `groups` is given (no division by the standard deviation).
pub fn advantages(rewards: &[f32], groups: Option<&[usize]>) -> Vec<f32> {
    let mean_of = |pick: &dyn Fn(usize) -> bool| {
        let (s, n) = rewards
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .fold((0.0f64, 0usize), |(s, n), (_, r)| (s + f64::from(*r), n + 1));
        if n == 0 { 0.0 } else { s / n as f64 }
    };
    match groups {
        None => {
            let m = mean_of(&|_| true);
            rewards.iter().map(|r| (f64::from(*r) - m) as f32).collect()
        }
        Some(g) => rewards
            .iter()
            .enumerate()
            .map(|(i, r)| (f64::from(*r) - mean_of(&|k| g[k] == g[i])) as f32)
            .collect(),
    }
}

/// Token-level inputs of the GRPO loss, all `[B, T]` aligned on completion tokens.
#[derive(Debug)]
pub struct GrpoInputs<'a> {
    /// Log-probs of the sampled tokens under the trained policy (with gradients).
    pub policy: &'a Tensor,
    /// Under the policy that sampled them (EMA copy or pre-update weights).
    pub sampler: &'a Tensor,
    /// Under the frozen initial model (the KL anchor).
    pub reference: &'a Tensor,
    /// 1 for real completion tokens, 0 for padding.
    pub mask: &'a Tensor,
    /// `[B]` advantages.
    pub advantages: &'a Tensor,
}

/// Statistics of a GRPO loss (token means over the batch).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GrpoStats {
    /// Mean per-token k3 KL estimate to the reference.
    pub kl: f64,
    /// Mean (untruncated) importance ratio policy / sampler.
    pub ratio_mean: f64,
    /// Share of tokens whose ratio hit the cap.
    pub ratio_capped: f64,
}

/// Per-token loss `-min(ratio, cap) * A + beta * k3`, where the truncated ratio is a constant
/// weight on the policy-gradient term (truncated importance sampling) and
/// `k3 = exp(ref - pi) - (ref - pi) - 1`; averaged over each sequence's tokens, then over the
/// batch.
pub fn grpo_loss(x: &GrpoInputs<'_>, beta: f64, cap: f64) -> (Tensor, GrpoStats) {
    let mask = x.mask.to_kind(Kind::Float);
    let policy = x.policy.to_kind(Kind::Float);
    let log_ratio = (&policy - x.sampler.to_kind(Kind::Float)).detach();
    let ratio = log_ratio.exp();
    let weight = ratio.clamp_max(cap);
    // exp(pi - sg(pi)) == 1 in value with gradient d pi: the REINFORCE term in surrogate form.
    let surrogate = (&policy - policy.detach()).exp();
    let adv = x.advantages.to_kind(Kind::Float).unsqueeze(1);
    let pg = -(&weight * &adv * surrogate);
    let delta = x.reference.to_kind(Kind::Float).detach() - &policy;
    let k3 = delta.exp() - &delta - 1.0;
    let per_token = pg + &k3 * beta;
    let lengths = mask.sum_dim_intlist(1, false, Kind::Float).clamp_min(1.0);
    let per_seq = (per_token * &mask).sum_dim_intlist(1, false, Kind::Float) / lengths;
    let loss = per_seq.mean(Kind::Float);
    let stats = tch::no_grad(|| {
        let n = mask.sum(Kind::Double).double_value(&[]).max(1.0);
        let masked_mean =
            |t: &Tensor| (t.to_kind(Kind::Double) * &mask).sum(Kind::Double).double_value(&[]) / n;
        GrpoStats {
            kl: masked_mean(&k3),
            ratio_mean: masked_mean(&ratio),
            ratio_capped: masked_mean(&ratio.ge(cap).to_kind(Kind::Double)),
        }
    });
    (loss, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} != {b}");
    }

    #[test]
    fn dpo_hand_computed() {
        // diff = (-1 - -2) - (-3 - -2.5) = 1.5 ; loss = -log sigmoid(0.15) = 0.620957...
        let pc = t(&[-1.0]).set_requires_grad(true);
        let (pr, rc, rr) = (t(&[-3.0]), t(&[-2.0]), t(&[-2.5]));
        let p = PairLogps {
            policy_chosen: &pc,
            policy_rejected: &pr,
            ref_chosen: &rc,
            ref_rejected: &rr,
        };
        let (loss, st) = dpo_loss(&p, 0.1);
        close(loss.double_value(&[]), 0.620_957_047_8);
        close(st.reward_chosen, 0.1);
        close(st.reward_rejected, -0.05);
        close(st.margin, 0.15);
        close(st.accuracy, 1.0);
        // d loss / d pc = -beta * (1 - sigmoid(0.15)) = -0.1 * 0.462570...
        loss.backward();
        close(pc.grad().double_value(&[0]), -0.046_257_015_6);
    }

    #[test]
    fn dpo_batch_mean_hand_computed() {
        // Second pair: diff = (0 - 0) - (0 - -2) = -2 ; -log sigmoid(-0.2) = 0.798138869...
        let (pc, pr) = (t(&[-1.0, 0.0]), t(&[-3.0, 0.0]));
        let (rc, rr) = (t(&[-2.0, 0.0]), t(&[-2.5, -2.0]));
        let p = PairLogps {
            policy_chosen: &pc,
            policy_rejected: &pr,
            ref_chosen: &rc,
            ref_rejected: &rr,
        };
        let (loss, st) = dpo_loss(&p, 0.1);
        close(loss.double_value(&[]), (0.620_957_047_8 + 0.798_138_869_4) / 2.0);
        close(st.accuracy, 0.5);
    }

    #[test]
    fn chosen_nll_is_the_per_token_mean_over_the_batch() {
        // Two micro-batches of an update with 3 + 2 + 5 = 10 chosen tokens in all: their terms
        // add up to the mean negative log-prob per chosen token.
        let a = chosen_nll(&t(&[-3.0, -1.0]), 10).double_value(&[]);
        let b = chosen_nll(&t(&[-6.0]), 10).double_value(&[]);
        close(a, 0.4);
        close(a + b, 1.0);
    }

    #[test]
    fn ipo_hand_computed() {
        // diff = 1.5, 1/(2 beta) = 5: (1.5 - 5)^2 = 12.25.
        let (pc, pr, rc, rr) = (t(&[-1.0]), t(&[-3.0]), t(&[-2.0]), t(&[-2.5]));
        let p = PairLogps {
            policy_chosen: &pc,
            policy_rejected: &pr,
            ref_chosen: &rc,
            ref_rejected: &rr,
        };
        let (loss, _) = ipo_loss(&p, 0.1);
        close(loss.double_value(&[]), 12.25);
    }

    #[test]
    fn grpo_advantages_hand_computed() {
        assert_eq!(advantages(&[1.0, 2.0, 6.0], None), vec![-2.0, -1.0, 3.0]);
        assert_eq!(advantages(&[1.0, 3.0, 6.0], Some(&[0, 0, 1])), vec![-1.0, 1.0, 0.0]);
    }

    #[test]
    fn grpo_loss_kl_and_ratio_hand_computed() {
        // Two tokens. policy = ln .5, ln .5; sampler = ln .1, ln .5 -> ratios 5 (capped to 2), 1.
        // reference = ln .5, ln 1 -> delta = 0, ln 2 -> k3 = 0, 2 - ln 2 - 1 = 0.3068528.
        // A = 1.5: per token = -2*1.5 + 0, -1*1.5 + 0.1*0.3068528 -> mean = -2.2346574.
        let ln = |x: f32| x.ln();
        let policy = Tensor::from_slice(&[ln(0.5), ln(0.5)]).view([1, 2]).set_requires_grad(true);
        let sampler = Tensor::from_slice(&[ln(0.1), ln(0.5)]).view([1, 2]);
        let reference = Tensor::from_slice(&[ln(0.5), ln(1.0)]).view([1, 2]);
        let mask = Tensor::from_slice(&[1.0f32, 1.0]).view([1, 2]);
        let adv = t(&[1.5]);
        let x = GrpoInputs {
            policy: &policy,
            sampler: &sampler,
            reference: &reference,
            mask: &mask,
            advantages: &adv,
        };
        let (loss, st) = grpo_loss(&x, 0.1, 2.0);
        close(loss.double_value(&[]), -2.234_657_36);
        close(st.kl, 0.306_852_819_4 / 2.0);
        close(st.ratio_mean, 3.0);
        close(st.ratio_capped, 0.5);
        // Gradient per token: (-w*A + beta*(1 - exp(delta))) / T = (-3 + 0)/2, (-1.5 - 0.1)/2.
        loss.backward();
        let g = policy.grad();
        close(g.double_value(&[0, 0]), -1.5);
        close(g.double_value(&[0, 1]), -0.8);
    }

    #[test]
    fn grpo_padding_is_ignored() {
        let policy = Tensor::from_slice(&[-1.0f32, -7.0]).view([1, 2]);
        let mask = Tensor::from_slice(&[1.0f32, 0.0]).view([1, 2]);
        let adv = t(&[2.0]);
        let x = GrpoInputs {
            policy: &policy,
            sampler: &policy,
            reference: &policy,
            mask: &mask,
            advantages: &adv,
        };
        let (loss, st) = grpo_loss(&x, 0.1, 2.0);
        close(loss.double_value(&[]), -2.0);
        close(st.kl, 0.0);
    }
}
