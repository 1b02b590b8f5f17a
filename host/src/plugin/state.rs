//! Per-instance store data: the memory limiter, the call clock behind deadlines, the
//! plugin's config, a lazily created deny-all WASI context, and the services a judge
//! reaches through its imports (the judge model, the rubric registry).

use super::budget::{BudgetExceeded, Spend};
use super::engine::Limits;
use super::registry::RubricRegistry;
use crate::llm::Generator;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The error raised inside the guest when a memory cap is hit.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {cap} bytes reached (asked for {desired} bytes)")]
pub(crate) struct MemoryCapReached {
    pub cap: usize,
    pub desired: usize,
}

/// The error raised inside the guest when its call deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0:?} of guest time exceeded")]
pub(crate) struct DeadlineExceeded(pub Duration);

/// Caps linear memory and tables; remembers whether the cap was what stopped the guest
/// (wasmtime reports the trap, not why the limiter refused).
#[derive(Debug)]
pub(crate) struct Limiter {
    pub memory_cap: usize,
    pub hit: bool,
}

const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.hit = true;
            return Err(MemoryCapReached { cap: self.memory_cap, desired }.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// Guest-time accounting for the current call: wall time since the call began, minus the
/// time spent in host services.
#[derive(Debug)]
pub(crate) struct CallClock {
    pub started: Instant,
    pub in_host: Duration,
    pub budget: Duration,
}

impl CallClock {
    pub fn guest_elapsed(&self) -> Duration {
        self.started.elapsed().saturating_sub(self.in_host)
    }
}

pub(crate) struct Wasi {
    ctx: WasiCtx,
    table: ResourceTable,
}

/// A WASI context that grants nothing: no preopened directories, no environment, no
/// arguments, no stdio, no network, a frozen clock and a fixed-seed random source (so a
/// guest is also deterministic).
fn deny_all_wasi() -> Wasi {
    use rand_wasi::SeedableRng;
    use rand_wasi::rngs::StdRng;
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    b.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    b.wall_clock(FrozenClock).monotonic_clock(FrozenClock);
    b.secure_random(StdRng::seed_from_u64(0x5eed));
    b.insecure_random(StdRng::seed_from_u64(0x5eed + 1));
    b.insecure_random_seed(0x5eed);
    Wasi { ctx: b.build(), table: ResourceTable::new() }
}

/// A clock that always reads the Unix epoch: guests get no timing side channel and no
/// wall-clock dependence.
struct FrozenClock;

impl wasmtime_wasi::HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// Everything a plugin's store holds.
pub(crate) struct HostState {
    /// `name@version (sha256 prefix)`, or the file name before `info` is known.
    pub label: String,
    pub config: Vec<(String, String)>,
    pub limits: Limits,
    pub limiter: Limiter,
    pub clock: CallClock,
    /// Host services used by the current call, against its budget.
    pub spend: Spend,
    pub logs_this_call: u32,
    pub logs_dropped: u64,
    wasi: Option<Wasi>,
    /// The judge model (judges only).
    pub generator: Option<Box<dyn Generator>>,
    /// The run's rubrics (judges only).
    pub registry: Option<RubricRegistry>,
}

impl HostState {
    pub fn new(label: String, config: Vec<(String, String)>, limits: Limits) -> Self {
        Self {
            label,
            config,
            limiter: Limiter { memory_cap: limits.memory_bytes, hit: false },
            clock: CallClock {
                started: Instant::now(),
                in_host: Duration::ZERO,
                budget: limits.deadline,
            },
            spend: Spend::new(&limits.host_budget, limits.deadline, 1, Instant::now()),
            limits,
            logs_this_call: 0,
            logs_dropped: 0,
            wasi: None,
            generator: None,
            registry: None,
        }
    }

    /// A fresh state for a replacement instance, taking over the services (judge model,
    /// registry) from this one.
    pub fn successor(&mut self) -> Self {
        let mut next = Self::new(self.label.clone(), self.config.clone(), self.limits.clone());
        next.generator = self.generator.take();
        next.registry = self.registry.take();
        next.logs_dropped = self.logs_dropped;
        next
    }

    /// Resets per-call accounting for a call over `items` batch items; called before every
    /// guest call.
    pub fn begin_call(&mut self, items: usize) {
        let now = Instant::now();
        self.clock =
            CallClock { started: now, in_host: Duration::ZERO, budget: self.limits.deadline };
        self.spend = Spend::new(&self.limits.host_budget, self.limits.deadline, items, now);
        self.limiter.hit = false;
        self.logs_this_call = 0;
    }

    /// Runs a host service and keeps its time off the guest's deadline. Nothing is charged
    /// to the host-service budget: see [`Self::service`].
    pub fn in_host<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let t = Instant::now();
        let r = f(self);
        self.clock.in_host += t.elapsed();
        r
    }

    /// Charges one host-service call requesting `tokens` generate tokens to the current
    /// call's budget, then runs it off the guest's deadline. Over budget, the service does
    /// not run and the error traps the guest.
    pub fn service<R>(
        &mut self,
        name: &str,
        tokens: u64,
        f: impl FnOnce(&mut Self) -> R,
    ) -> Result<R, BudgetExceeded> {
        self.spend.charge(name, tokens).inspect_err(|e| {
            tracing::debug!(plugin = %self.label, "{e}");
        })?;
        Ok(self.in_host(f))
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let wasi = self.wasi.get_or_insert_with(deny_all_wasi);
        WasiCtxView { ctx: &mut wasi.ctx, table: &mut wasi.table }
    }
}
