//! Preference-pair selection (game.md, Losses): per group, chosen = the highest reward,
//! rejected = the lowest; a group whose members all tie carries no preference and is skipped.

/// `(chosen, rejected)` indices of a group, or `None` when fewer than two members have a
/// reward or the best and worst rewards tie. On equal maxima the first wins; on equal minima
/// the last loses (so the two never coincide).
pub fn select_pair(rewards: &[Option<f32>]) -> Option<(usize, usize)> {
    let mut chosen: Option<(usize, f32)> = None;
    let mut rejected: Option<(usize, f32)> = None;
    for (i, r) in rewards.iter().enumerate() {
        let Some(r) = *r else { continue };
        if chosen.is_none_or(|(_, c)| r > c) {
            chosen = Some((i, r));
        }
        if rejected.is_none_or(|(_, w)| r <= w) {
            rejected = Some((i, r));
        }
    }
    let ((ci, c), (ri, w)) = (chosen?, rejected?);
    (c > w).then_some((ci, ri))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_max_rejected_min() {
        assert_eq!(select_pair(&[Some(3.0), Some(7.5), Some(-1.0), Some(5.0)]), Some((1, 2)));
        assert_eq!(select_pair(&[None, Some(2.0), Some(4.0)]), Some((2, 1)));
    }

    #[test]
    fn ties_and_singletons_are_skipped() {
        assert_eq!(select_pair(&[Some(5.0), Some(5.0)]), None);
        assert_eq!(select_pair(&[Some(-1.0), Some(-1.0), None]), None);
        assert_eq!(select_pair(&[Some(5.0), None]), None);
        assert_eq!(select_pair(&[]), None);
    }

    #[test]
    fn partial_ties_still_pair_extremes() {
        // Max shared by 0 and 2 (first wins), min shared by 1 and 3 (last loses).
        assert_eq!(select_pair(&[Some(9.0), Some(1.0), Some(9.0), Some(1.0)]), Some((0, 3)));
    }
}
