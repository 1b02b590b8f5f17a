//! One sandboxed plugin instance and the discipline around every call into it: set the
//! deadline, fuel and per-call counters; classify any error into a typed [`Failure`]; count
//! it; and replace the instance after a trap (a trapped instance is never called again).

use super::budget::BudgetExceeded;
use super::engine::{FailureCounts, PluginEngine};
use super::identity::Identity;
use super::state::{DeadlineExceeded, HostState};
use crate::judging::{Failure, FailureKind};
use std::sync::Arc;
use wasmtime::component::InstancePre;
use wasmtime::{Store, Trap, UpdateDeadline};

/// The accessors every plugin type (judge, rubric, curriculum) has over its `sandbox:
/// Sandbox<_>` field, written once: who it is, its failures, its instances, and a restart.
macro_rules! sandbox_accessors {
    () => {
        /// Who the plugin is (file, sha256, name, version).
        pub fn identity(&self) -> &$crate::plugin::Identity {
            &self.sandbox.identity
        }

        /// This plugin's failures so far, by kind (traps, deadlines, oversize prompts, invalid
        /// output, plugin-reported failures; host-detected ones alike).
        pub fn failures(&self) -> &$crate::plugin::FailureCounts {
            &self.sandbox.failures
        }

        /// How many instances were started (1 + replacements after traps).
        pub fn instances(&self) -> u64 {
            self.sandbox.instances
        }

        /// Drops the current instance and starts a fresh one from the pre-linked component
        /// (what happens after a trap). Benchmarks use it to time instantiation.
        pub fn restart(&mut self) -> Result<(), $crate::judging::Failure> {
            self.sandbox.restart()
        }
    };
}
pub(super) use sandbox_accessors;

/// A world's typed bindings, instantiable from a pre-linked component.
pub(crate) trait World: Sized {
    type Pre: Clone;
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self>;
}

impl World for super::bindings::rubric::RubricPlugin {
    type Pre = super::bindings::rubric::RubricPluginPre<HostState>;
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }
}

impl World for super::bindings::judge::JudgePlugin {
    type Pre = super::bindings::judge::JudgePluginPre<HostState>;
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }
}

impl World for super::bindings::curriculum::CurriculumPlugin {
    type Pre = super::bindings::curriculum::CurriculumPluginPre<HostState>;
    fn pre(pre: InstancePre<HostState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }
    fn instantiate(pre: &Self::Pre, store: &mut Store<HostState>) -> wasmtime::Result<Self> {
        pre.instantiate(store)
    }
}

/// A live instance of a plugin plus everything needed to replace it.
pub(crate) struct Sandbox<W: World> {
    engine: PluginEngine,
    pre: W::Pre,
    store: Store<HostState>,
    /// `None` after a failed re-instantiation; the next call tries again.
    bindings: Option<W>,
    pub identity: Arc<Identity>,
    pub failures: FailureCounts,
    /// Instances created so far (1 = never replaced).
    pub instances: u64,
    /// Calls that failed as a whole, in a row (reset by a successful call).
    pub consecutive_call_failures: u32,
}

fn new_store(engine: &PluginEngine, data: HostState) -> Store<HostState> {
    let mut store = Store::new(&engine.inner.engine, data);
    store.limiter(|s| &mut s.limiter);
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        let clock = &state.clock;
        if clock.guest_elapsed() >= clock.budget {
            return Err(DeadlineExceeded(clock.budget).into());
        }
        state.spend.check_wall()?;
        Ok(UpdateDeadline::Continue(1))
    });
    store
}

/// Arms deadline, host-service budget (for a batch of `items`) and fuel for the next guest
/// entry.
fn arm(store: &mut Store<HostState>, engine: &PluginEngine, items: usize) -> wasmtime::Result<()> {
    store.data_mut().begin_call(items);
    store.set_epoch_deadline(1);
    if let Some(fuel) = engine.limits().fuel {
        store.set_fuel(fuel)?;
    }
    Ok(())
}

/// What kind of failure a wasmtime error is.
pub(crate) fn classify(err: &wasmtime::Error, state: &HostState) -> FailureKind {
    if state.limiter.hit {
        return FailureKind::Memory;
    }
    if err.downcast_ref::<DeadlineExceeded>().is_some() {
        return FailureKind::Deadline;
    }
    if err.downcast_ref::<BudgetExceeded>().is_some() {
        return FailureKind::Budget;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel | Trap::Interrupt) => FailureKind::Deadline,
        _ => FailureKind::Trap,
    }
}

impl<W: World> Sandbox<W> {
    /// Instantiates the first instance (under the same deadline and caps as any call).
    pub fn new(
        engine: &PluginEngine,
        pre: W::Pre,
        identity: Arc<Identity>,
        data: HostState,
    ) -> Result<Self, Failure> {
        let mut sandbox = Self {
            engine: engine.clone(),
            pre,
            store: new_store(engine, data),
            bindings: None,
            identity,
            failures: FailureCounts::default(),
            instances: 0,
            consecutive_call_failures: 0,
        };
        sandbox.instantiate()?;
        Ok(sandbox)
    }

    fn failure(&self, kind: FailureKind, message: String) -> Failure {
        Failure { kind, plugin: self.identity.label(), message }
    }

    fn instantiate(&mut self) -> Result<(), Failure> {
        let result = arm(&mut self.store, &self.engine, 1)
            .and_then(|()| W::instantiate(&self.pre, &mut self.store));
        match result {
            Ok(b) => {
                self.bindings = Some(b);
                self.instances += 1;
                Ok(())
            }
            Err(err) => {
                let kind = classify(&err, self.store.data());
                Err(self.failure(kind, format!("instantiation failed: {err:#}")))
            }
        }
    }

    /// Drops the current instance (and its whole store) and starts a fresh one that keeps
    /// the services (judge model, registry).
    fn replace(&mut self) -> Result<(), Failure> {
        self.bindings = None;
        let data = self.store.data_mut().successor();
        self.store = new_store(&self.engine, data);
        self.instantiate()
    }

    /// Replaces the instance on request (not counted as a failure).
    pub fn restart(&mut self) -> Result<(), Failure> {
        self.replace()
    }

    /// Calls into the guest (a call without a batch: one item's host-service budget). Any
    /// error becomes a counted [`Failure`] naming the plugin and the call, and the instance is
    /// replaced before the next call.
    pub fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        self.call_batch(what, 1, f)
    }

    /// [`Self::call`] for a call over a batch of `items`, whose host-service budget scales
    /// with it.
    pub fn call_batch<R>(
        &mut self,
        what: &str,
        items: usize,
        f: impl FnOnce(&W, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        if self.bindings.is_none()
            && let Err(failure) = self.replace()
        {
            self.failures.add(failure.kind, 1);
            self.consecutive_call_failures += 1;
            return Err(failure);
        }
        let bindings = self.bindings.as_ref().expect("instantiated above");
        let result =
            arm(&mut self.store, &self.engine, items).and_then(|()| f(bindings, &mut self.store));
        match result {
            Ok(r) => {
                self.consecutive_call_failures = 0;
                Ok(r)
            }
            Err(err) => {
                let kind = classify(&err, self.store.data());
                let failure = self.failure(kind, format!("{what}: {err:#}"));
                self.failures.add(kind, 1);
                self.consecutive_call_failures += 1;
                // The caller's failure policy decides what the user hears (a stop, or one
                // warning per step that goes on): here it is a debug line.
                tracing::debug!(plugin = %failure.plugin, kind = kind.as_str(), "{}", failure.message);
                // A trapped instance may hold broken invariants: never reuse it.
                if let Err(again) = self.replace() {
                    tracing::warn!("{again}");
                }
                Err(failure)
            }
        }
    }

    /// Records a failure detected by the host after a successful call (oversize, invalid
    /// output) or reported by the plugin itself.
    pub fn count(&mut self, kind: FailureKind, n: u64) {
        self.failures.add(kind, n);
    }

    /// A failure of `kind` naming this plugin.
    pub fn fail(&self, kind: FailureKind, message: impl Into<String>) -> Failure {
        self.failure(kind, message.into())
    }

    pub fn state(&self) -> &HostState {
        self.store.data()
    }

    pub fn state_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }
}
