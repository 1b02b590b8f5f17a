//! A loaded judge plugin behind the [`Judge`] facade: batches go to the guest in one call,
//! results come back checked (count, finiteness, range, sizes), per-item failures are typed
//! and counted, and an optional A/B swap fights position bias.

use super::bindings::judge::JudgePlugin as Bindings;
use super::bindings::judge::exports::advgame::plugin::judge as wit;
use super::engine::PluginEngine;
use super::identity::WorldKind;
use super::load::LoadError;
use super::open::{adopt_info, open};
use super::registry::RubricRegistry;
use super::sandbox::{Sandbox, sandbox_accessors};
use super::services::from_wit;
use crate::judging::{Assessment, Comparison, Failure, FailureKind, Judge, ScoredPair};
use crate::llm::Generator;
use std::path::Path;

/// How a judge is run.
#[derive(Debug, Clone, Default)]
pub struct JudgeOptions {
    /// What the judge's `host.config()` returns.
    pub config: Vec<(String, String)>,
    /// Share of comparisons (0-1) sent with A and B exchanged; scores are flipped back, so
    /// a position-biased judge is biased toward neither side on average.
    pub swap_share: f64,
    /// Share of comparisons (0-1) judged in BOTH orders: the two results are averaged and
    /// whether they prefer the same response is counted in [`JudgePlugin::agreement`].
    pub both_orders_share: f64,
    /// Seed of the swap decisions (deterministic given the seed and the call sequence).
    pub seed: u64,
}

/// Agreement between the two orders of comparisons judged both ways.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Agreement {
    /// Comparisons for which both orders gave a result.
    pub checked: u64,
    /// Of those, how many preferred the same response (or tied both times).
    pub agreed: u64,
}

impl Agreement {
    /// `agreed / checked`; `None` before any comparison was judged both ways.
    pub fn rate(&self) -> Option<f64> {
        (self.checked > 0).then(|| self.agreed as f64 / self.checked as f64)
    }
}

/// A judge component with its rubric registry and (optional) judge model. Its failures are
/// the judge's own: rubric failures are counted on the rubrics.
pub struct JudgePlugin {
    sandbox: Sandbox<Bindings>,
    options: JudgeOptions,
    agreement: Agreement,
    /// Comparisons planned so far: the swap RNG's stream position.
    drawn: u64,
}

impl std::fmt::Debug for JudgePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JudgePlugin")
            .field("plugin", &self.sandbox.identity.label())
            .field("options", &self.options)
            .finish()
    }
}

/// SplitMix64 of `(seed, n)` mapped to [0, 1).
fn uniform(seed: u64, n: u64) -> f64 {
    use crate::rng::{GOLDEN_GAMMA, mix64, unit_f64};
    unit_f64(mix64(seed ^ n.wrapping_mul(GOLDEN_GAMMA)))
}

/// One wire item: which input it serves and whether A and B were exchanged.
#[derive(Debug, Clone, Copy)]
struct Slot {
    item: usize,
    swapped: bool,
}

impl JudgePlugin {
    /// Loads a `judge-plugin` component. `registry` holds the rubrics it may name;
    /// `generator` serves its `host.generate` (a judge that needs none may get `None`).
    pub fn load(
        engine: &PluginEngine,
        path: &Path,
        registry: RubricRegistry,
        generator: Option<Box<dyn Generator>>,
        options: JudgeOptions,
    ) -> Result<Self, LoadError> {
        let mut sandbox: Sandbox<Bindings> =
            open(engine, path, WorldKind::Judge, options.config.clone(), |state| {
                state.registry = Some(registry);
                state.generator = generator;
            })?;
        let info = sandbox.call("info", |b, s| b.advgame_plugin_judge().call_info(s));
        adopt_info(engine, &mut sandbox, info)?;
        Ok(Self { sandbox, options, agreement: Agreement::default(), drawn: 0 })
    }

    sandbox_accessors!();

    /// Agreement between the two orders so far, over comparisons judged both ways.
    pub fn agreement(&self) -> Agreement {
        self.agreement
    }

    /// The rubrics this judge reaches.
    pub fn registry(&self) -> Option<&RubricRegistry> {
        self.sandbox.state().registry.as_ref()
    }

    fn range(&self, rubric: &str) -> (f32, f32) {
        self.registry().map_or((0.0, 10.0), |r| r.range_or_default(rubric))
    }

    /// Turns a failure of the whole call into one failure per item, or into a run-stopping
    /// error once too many calls in a row failed.
    fn whole_call_failed<T>(
        &mut self,
        failure: Failure,
        n: usize,
    ) -> anyhow::Result<Vec<Result<T, Failure>>> {
        // The sandbox counted the call once; count the remaining items.
        self.sandbox.count(failure.kind, n.saturating_sub(1) as u64);
        let max = self.sandbox.state().limits.max_consecutive_call_failures;
        if self.sandbox.consecutive_call_failures >= max {
            anyhow::bail!(
                "judge {} failed {} calls in a row (limit {max}); last: {failure}",
                self.sandbox.identity.label(),
                self.sandbox.consecutive_call_failures
            );
        }
        Ok((0..n).map(|_| Err(failure.clone())).collect())
    }

    fn check_len<T>(
        &mut self,
        what: &str,
        got: usize,
        want: usize,
    ) -> Result<(), Vec<Result<T, Failure>>> {
        if got == want {
            return Ok(());
        }
        self.sandbox.count(FailureKind::InvalidOutput, want as u64);
        let f = self.sandbox.fail(
            FailureKind::InvalidOutput,
            format!("{what} returned {got} results for {want} items"),
        );
        Err((0..want).map(|_| Err(f.clone())).collect())
    }

    fn check_score(&mut self, rubric: &str, x: f32) -> Result<f32, Failure> {
        let (min, max) = self.range(rubric);
        if x.is_finite() && (min..=max).contains(&x) {
            return Ok(x);
        }
        self.sandbox.count(FailureKind::InvalidOutput, 1);
        Err(self.sandbox.fail(
            FailureKind::InvalidOutput,
            format!("score {x} for rubric `{rubric}` is outside [{min}, {max}] or not finite"),
        ))
    }

    fn reported(&mut self, failure: super::bindings::WitFailure) -> Failure {
        let cap = self.sandbox.state().limits.max_string_bytes;
        let f = from_wit(failure, self.sandbox.identity.label(), cap);
        self.sandbox.count(f.kind, 1);
        f
    }

    fn check_pair(
        &mut self,
        rubric: &str,
        slot: Slot,
        r: Result<wit::ScoredPair, super::bindings::WitFailure>,
    ) -> Result<ScoredPair, Failure> {
        let pair = r.map_err(|f| self.reported(f))?;
        let cap = self.sandbox.state().limits.max_string_bytes;
        if let Some(r) = &pair.rationale
            && r.len() > cap
        {
            self.sandbox.count(FailureKind::Oversize, 1);
            return Err(self.sandbox.fail(
                FailureKind::Oversize,
                format!("rationale of {} bytes is over the {cap}-byte cap", r.len()),
            ));
        }
        let a = self.check_score(rubric, pair.a)?;
        let b = self.check_score(rubric, pair.b)?;
        let (a, b) = if slot.swapped { (b, a) } else { (a, b) };
        Ok(ScoredPair { a, b, rationale: pair.rationale })
    }
}

/// Which response a pair prefers: -1 (B), 0 (tie), 1 (A).
fn preference(p: &ScoredPair) -> i8 {
    match p.a.partial_cmp(&p.b) {
        Some(std::cmp::Ordering::Greater) => 1,
        Some(std::cmp::Ordering::Less) => -1,
        _ => 0,
    }
}

impl Judge for JudgePlugin {
    fn compare(
        &mut self,
        batch: &[Comparison],
    ) -> anyhow::Result<Vec<Result<ScoredPair, Failure>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Plan the wire batch: each item once (maybe swapped), some items in both orders.
        let mut slots = Vec::with_capacity(batch.len());
        for item in 0..batch.len() {
            let n = self.drawn;
            self.drawn += 1;
            if uniform(self.options.seed ^ 0xB07D, n) < self.options.both_orders_share {
                slots.push(Slot { item, swapped: false });
                slots.push(Slot { item, swapped: true });
            } else {
                let swapped = uniform(self.options.seed, n) < self.options.swap_share;
                slots.push(Slot { item, swapped });
            }
        }
        let max = self.sandbox.state().limits.max_list_len;
        anyhow::ensure!(
            slots.len() <= max,
            "batch of {} comparisons is over the {max} limit",
            slots.len()
        );
        let wire: Vec<wit::Comparison> = slots
            .iter()
            .map(|s| {
                let c = &batch[s.item];
                let (a, b) = if s.swapped { (&c.b, &c.a) } else { (&c.a, &c.b) };
                wit::Comparison {
                    rubric: c.rubric.clone(),
                    context: c.context.clone(),
                    a: a.clone(),
                    b: b.clone(),
                }
            })
            .collect();
        let results = match self.sandbox.call_batch("compare", wire.len(), |b, s| {
            b.advgame_plugin_judge().call_compare(s, &wire)
        }) {
            Ok(r) => r,
            Err(failure) => return self.whole_call_failed(failure, batch.len()),
        };
        if let Err(all) = self.check_len("compare", results.len(), slots.len()) {
            return Ok(all.into_iter().take(batch.len()).collect());
        }
        // Gather up to two results per item, then merge.
        let mut per_item: Vec<Vec<Result<ScoredPair, Failure>>> = vec![Vec::new(); batch.len()];
        for (slot, r) in slots.iter().zip(results) {
            let checked = self.check_pair(&batch[slot.item].rubric, *slot, r);
            per_item[slot.item].push(checked);
        }
        let mut out = Vec::with_capacity(batch.len());
        for mut results in per_item {
            let merged = if results.len() == 2 {
                let second = results.pop().expect("two results");
                let first = results.pop().expect("two results");
                match (first, second) {
                    (Ok(x), Ok(y)) => {
                        self.agreement.checked += 1;
                        if preference(&x) == preference(&y) {
                            self.agreement.agreed += 1;
                        }
                        Ok(ScoredPair {
                            a: (x.a + y.a) / 2.0,
                            b: (x.b + y.b) / 2.0,
                            rationale: x.rationale.or(y.rationale),
                        })
                    }
                    (Ok(x), Err(_)) | (Err(_), Ok(x)) => Ok(x),
                    (Err(e), Err(_)) => Err(e),
                }
            } else {
                results.pop().expect("one result")
            };
            out.push(merged);
        }
        Ok(out)
    }

    fn assess(&mut self, batch: &[Assessment]) -> anyhow::Result<Vec<Result<f32, Failure>>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let max = self.sandbox.state().limits.max_list_len;
        anyhow::ensure!(
            batch.len() <= max,
            "batch of {} assessments is over the {max} limit",
            batch.len()
        );
        let wire: Vec<wit::Assessment> = batch
            .iter()
            .map(|x| wit::Assessment {
                rubric: x.rubric.clone(),
                context: x.context.clone(),
                response: x.response.clone(),
            })
            .collect();
        let results = match self
            .sandbox
            .call_batch("assess", wire.len(), |b, s| b.advgame_plugin_judge().call_assess(s, &wire))
        {
            Ok(r) => r,
            Err(failure) => return self.whole_call_failed(failure, batch.len()),
        };
        if let Err(all) = self.check_len("assess", results.len(), batch.len()) {
            return Ok(all);
        }
        Ok(batch
            .iter()
            .zip(results)
            .map(|(x, r)| match r {
                Ok(score) => self.check_score(&x.rubric, score),
                Err(f) => Err(self.reported(f)),
            })
            .collect())
    }
}
