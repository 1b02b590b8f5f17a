//! Rewards from pairwise judgments (game.md steps 4-6).
//!
//! A group (the D replies to one attacker prompt, or the A attacks on one seed) is judged
//! pairwise; a member's reward is the mean of its scores over the pairings it took part in.
//! Members that broke the rules (truncated, unparsable, unfaithful) get -1 without being
//! judged. A member whose every judgment failed gets no reward at all (`None`): it drops out of
//! pair selection instead of being scored 0 silently.

use serde::{Deserialize, Serialize};

/// Reward of a member that broke the format rules.
pub const PENALTY: f32 = -1.0;

/// How a group member enters the pairwise judging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Judged against the other judged members.
    Judged,
    /// Broke a rule: reward -1, not judged.
    Penalized,
    /// Takes no part (e.g. its own prerequisite judgment failed): no reward.
    Excluded,
}

/// The comparisons to run for a group: every pair `i < j` of judged members, or the single
/// judged member against itself (so it still gets a score on the rubric's scale).
pub fn plan_pairings(slots: &[Slot]) -> Vec<(usize, usize)> {
    let judged: Vec<usize> = (0..slots.len()).filter(|&i| slots[i] == Slot::Judged).collect();
    match judged.as_slice() {
        [] => Vec::new(),
        [only] => vec![(*only, *only)],
        many => {
            let mut out = Vec::with_capacity(many.len() * (many.len() - 1) / 2);
            for (k, &i) in many.iter().enumerate() {
                for &j in &many[k + 1..] {
                    out.push((i, j));
                }
            }
            out
        }
    }
}

/// One pairing `(i, j)` and its scores `(score_i, score_j)`, `None` when the judgment failed.
pub type Judgment = ((usize, usize), Option<(f32, f32)>);

/// Rewards of a group given the results of its planned pairings, `((i, j), Some((score_i,
/// score_j)))` or `None` for a failed judgment. A self-pairing `(i, i)` contributes both of
/// its scores to member i.
pub fn group_rewards(slots: &[Slot], judgments: &[Judgment]) -> Vec<Option<f32>> {
    let mut sum = vec![0.0f64; slots.len()];
    let mut count = vec![0usize; slots.len()];
    for &((i, j), scores) in judgments {
        if let Some((si, sj)) = scores {
            sum[i] += f64::from(si);
            count[i] += 1;
            sum[j] += f64::from(sj);
            count[j] += 1;
        }
    }
    slots
        .iter()
        .enumerate()
        .map(|(k, slot)| match slot {
            Slot::Penalized => Some(PENALTY),
            Slot::Excluded => None,
            Slot::Judged => (count[k] > 0).then(|| (sum[k] / count[k] as f64) as f32),
        })
        .collect()
}

/// The best member of a group: the highest reward, first on ties, or `None` when no member
/// has a reward. The optimistic attacker's view of a prompt (the defender's best reply), and
/// the chosen side of a benign pair whose rejected side is not a member
/// (`algorithm.benign_rejected_refusal`).
pub fn best_reply(rewards: &[Option<f32>]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, r) in rewards.iter().enumerate() {
        if let Some(r) = *r
            && best.is_none_or(|(_, b)| r > b)
        {
            best = Some((i, r));
        }
    }
    best.map(|(i, _)| i)
}

/// Mean of the rewards that exist (for metrics).
pub fn mean_defined(rewards: impl IntoIterator<Item = Option<f32>>) -> Option<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for r in rewards.into_iter().flatten() {
        sum += f64::from(r);
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Slot::*;

    #[test]
    fn pairings_cover_every_pair_or_self() {
        assert_eq!(plan_pairings(&[Judged, Judged, Judged]), vec![(0, 1), (0, 2), (1, 2)]);
        assert_eq!(plan_pairings(&[Penalized, Judged, Excluded]), vec![(1, 1)]);
        assert_eq!(plan_pairings(&[Judged, Penalized, Judged]), vec![(0, 2)]);
        assert!(plan_pairings(&[Penalized, Excluded]).is_empty());
    }

    #[test]
    fn mean_over_pairings_hand_computed() {
        // Three replies: (0 vs 1) = 8, 2 ; (0 vs 2) = 6, 4 ; (1 vs 2) = 3, 9.
        // r0 = (8+6)/2 = 7, r1 = (2+3)/2 = 2.5, r2 = (4+9)/2 = 6.5.
        let slots = [Judged, Judged, Judged];
        let j =
            [((0, 1), Some((8.0, 2.0))), ((0, 2), Some((6.0, 4.0))), ((1, 2), Some((3.0, 9.0)))];
        assert_eq!(group_rewards(&slots, &j), vec![Some(7.0), Some(2.5), Some(6.5)]);
    }

    #[test]
    fn failed_judgments_drop_out_and_all_failed_gives_none() {
        // (0 vs 1) failed, (0 vs 2) = 5, 1, (1 vs 2) failed: r0 = 5, r1 = none, r2 = 1.
        let slots = [Judged, Judged, Judged];
        let j = [((0, 1), None), ((0, 2), Some((5.0, 1.0))), ((1, 2), None)];
        assert_eq!(group_rewards(&slots, &j), vec![Some(5.0), None, Some(1.0)]);
    }

    #[test]
    fn single_valid_member_is_paired_with_itself_and_invalid_ones_patched() {
        // One reply truncated (-1), one valid judged against itself: (6 + 8) / 2 = 7.
        let slots = [Penalized, Judged, Excluded];
        let j = [((1, 1), Some((6.0, 8.0)))];
        assert_eq!(group_rewards(&slots, &j), vec![Some(-1.0), Some(7.0), None]);
    }

    #[test]
    fn optimistic_selection_takes_the_best_first_on_ties() {
        assert_eq!(best_reply(&[Some(2.0), Some(9.0), Some(9.0), None]), Some(1));
        assert_eq!(best_reply(&[None, Some(-1.0)]), Some(1));
        assert_eq!(best_reply(&[None, None]), None);
        assert_eq!(best_reply(&[Some(3.0), Some(7.5), None, Some(7.5)]), Some(1));
        assert_eq!(best_reply(&[Some(5.0), Some(5.0)]), Some(0));
        assert_eq!(mean_defined([Some(1.0), None, Some(2.0)]), Some(1.5));
        assert_eq!(mean_defined([None]), None);
    }
}
