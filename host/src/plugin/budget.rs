//! The host-service budget of one plugin call.
//!
//! A call's deadline counts guest time only: time inside `host.generate` or a rubric reached
//! through the registry is the host's, so a slow judge model never makes a judge look hung.
//! That exemption alone would let a guest hold the host for ever by calling services in a
//! loop (each call is short of guest time). The budget closes it: per call, at most
//! `calls_per_item` service calls and `tokens_per_item` requested `generate` tokens per item
//! of the batch, and a total wall-clock time, host time included, of `wall_multiple` x the
//! deadline plus `wall_per_token` for every token requested. Overspending traps the guest
//! with [`BudgetExceeded`]: a [`crate::judging::FailureKind::Budget`] failure, counted, the
//! instance replaced, the failure policy deciding the rest, like any trap.
//!
//! Where it is checked: on entry to every service call (a call over budget is refused before
//! it runs, so the model never starts an unaffordable batch) and at every epoch tick of guest
//! code. A service call that is running is not interrupted, so a call ends at most one
//! service call (bounded by its tokens) plus one epoch tick after its wall-clock budget.

use std::time::{Duration, Instant};

/// Limits on the host services one call may use. Scales with the batch: a call with `n`
/// items gets `n` times the per-item allowances (a call without a batch counts as one item).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBudget {
    /// Service calls (`generate`, any `rubric-registry` function) per item. The built-in
    /// `llm` judge makes 2 per item plus one `generate` per batch.
    pub calls_per_item: u32,
    /// Tokens requested from `generate` per item: the sum, over the call's `generate`
    /// batches, of requests x `max-tokens` (a request for 0 tokens counts as 1).
    pub tokens_per_item: u64,
    /// Total wall-clock time of one call, host time included, in multiples of the per-call
    /// guest deadline ...
    pub wall_multiple: u32,
    /// ... plus this much for every token the call requested from `generate`.
    pub wall_per_token: Duration,
}

impl Default for HostBudget {
    /// Generous: 16 service calls and 32768 tokens (two full-length generations at the
    /// host's 16384-token cap) per item; 10 deadlines plus 50 ms per requested token (20
    /// tokens/s per sequence, slower than a CPU judge of a few hundred million parameters).
    fn default() -> Self {
        Self {
            calls_per_item: 16,
            tokens_per_item: 32_768,
            wall_multiple: 10,
            wall_per_token: Duration::from_millis(50),
        }
    }
}

/// Which part of the budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overspent {
    /// More `generate` / rubric-registry calls than `calls_per_item` x batch items.
    Calls,
    /// More tokens requested from `generate` (sum of `max-tokens`) than `tokens_per_item` x
    /// batch items.
    Tokens,
    /// The call's wall-clock time, host time included, passed its allowance (`wall_multiple` x
    /// deadline, plus `wall_per_token` per requested token).
    Wall,
}

/// The error raised inside the guest when a call overspends its host-service budget.
#[derive(Debug, thiserror::Error)]
#[error("host-service budget exceeded: {detail}")]
pub struct BudgetExceeded {
    /// Which part of the budget ran out.
    pub what: Overspent,
    /// The amounts spent and allowed, for the failure message.
    pub detail: String,
}

/// What the current call has spent, against what it may spend.
#[derive(Debug, Clone)]
pub(crate) struct Spend {
    started: Instant,
    items: u64,
    calls: u64,
    tokens: u64,
    max_calls: u64,
    max_tokens: u64,
    wall_base: Duration,
    wall_per_token: Duration,
}

impl Spend {
    /// A fresh account for a call over `items` items (at least 1) under `deadline`, which
    /// began at `started`.
    pub fn new(budget: &HostBudget, deadline: Duration, items: usize, started: Instant) -> Self {
        let items = items.max(1) as u64;
        Self {
            started,
            items,
            calls: 0,
            tokens: 0,
            max_calls: items.saturating_mul(u64::from(budget.calls_per_item)),
            max_tokens: items.saturating_mul(budget.tokens_per_item),
            wall_base: deadline.saturating_mul(budget.wall_multiple),
            wall_per_token: budget.wall_per_token,
        }
    }

    /// The call's wall-clock budget given the tokens requested so far.
    pub fn wall_budget(&self) -> Duration {
        let per_token = u32::try_from(self.tokens).unwrap_or(u32::MAX);
        self.wall_base.saturating_add(self.wall_per_token.saturating_mul(per_token))
    }

    /// Err when the call has run past its wall-clock budget.
    pub fn check_wall(&self) -> Result<(), BudgetExceeded> {
        let elapsed = self.started.elapsed();
        let budget = self.wall_budget();
        if elapsed < budget {
            return Ok(());
        }
        Err(BudgetExceeded {
            what: Overspent::Wall,
            detail: format!(
                "the call ran {elapsed:.2?} in total (host time included), over its wall-clock \
                 budget of {budget:.2?} (deadline multiple plus {:?} per requested token, {} \
                 tokens requested)",
                self.wall_per_token, self.tokens
            ),
        })
    }

    /// Records one service call requesting `tokens` generate tokens, or refuses it.
    pub fn charge(&mut self, service: &str, tokens: u64) -> Result<(), BudgetExceeded> {
        if self.calls >= self.max_calls {
            return Err(BudgetExceeded {
                what: Overspent::Calls,
                detail: format!(
                    "{service} would be host-service call {} of a call limited to {} ({} items)",
                    self.calls + 1,
                    self.max_calls,
                    self.items
                ),
            });
        }
        let total = self.tokens.saturating_add(tokens);
        if total > self.max_tokens {
            return Err(BudgetExceeded {
                what: Overspent::Tokens,
                detail: format!(
                    "{service} asks for {tokens} tokens, {total} in this call, over its limit of \
                     {} ({} items)",
                    self.max_tokens, self.items
                ),
            });
        }
        self.check_wall()?;
        self.calls += 1;
        self.tokens = total;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> HostBudget {
        HostBudget {
            calls_per_item: 3,
            tokens_per_item: 100,
            wall_multiple: 1000,
            wall_per_token: Duration::from_millis(1),
        }
    }

    #[test]
    fn calls_and_tokens_scale_with_the_batch() {
        let mut s = Spend::new(&budget(), Duration::from_secs(1), 2, Instant::now());
        for _ in 0..6 {
            s.charge("generate", 10).unwrap();
        }
        let e = s.charge("generate", 0).unwrap_err();
        assert_eq!(e.what, Overspent::Calls);
        assert!(e.to_string().contains("call 7 of a call limited to 6 (2 items)"), "{e}");
        assert_eq!((s.calls, s.tokens), (6, 60));

        let mut s = Spend::new(&budget(), Duration::from_secs(1), 0, Instant::now());
        s.charge("generate", 100).unwrap();
        let e = s.charge("generate", 1).unwrap_err();
        assert_eq!(e.what, Overspent::Tokens);
        assert_eq!(s.tokens, 100, "a refused request is not charged");
    }

    #[test]
    fn the_wall_budget_grows_with_requested_tokens() {
        let mut s = Spend::new(&budget(), Duration::from_millis(2), 1, Instant::now());
        assert_eq!(s.wall_budget(), Duration::from_secs(2));
        s.charge("generate", 50).unwrap();
        assert_eq!(s.wall_budget(), Duration::from_millis(2050));
        let mut zero = budget();
        zero.wall_multiple = 0;
        zero.wall_per_token = Duration::ZERO;
        let e =
            Spend::new(&zero, Duration::from_secs(1), 1, Instant::now()).check_wall().unwrap_err();
        assert_eq!(e.what, Overspent::Wall);
    }
}
