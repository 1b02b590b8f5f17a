//! What the host grants through imports: `host` (log, config, generate) for every plugin,
//! and `rubric-registry` for judges. Host-service time (`generate`, the registry) is kept off
//! the guest's deadline and charged to the call's host-service budget instead
//! ([`super::budget`]); `log` and `config` run on guest time.

use super::bindings::judge::advgame::plugin::rubric_registry;
use super::bindings::rubric::advgame::plugin::{host, types};
use super::bindings::{Chat, Level, Sampling, ScoreRange, WitFailure};
use super::state::HostState;
use crate::judging::{Failure, FailureKind};
use crate::llm::{ChatRequest, SamplingParams};

/// Longest log line kept; longer ones are cut.
const MAX_LOG_BYTES: usize = 2048;
/// Upper bound on `max-tokens` a plugin may ask for in one generate batch.
const MAX_GENERATE_TOKENS: u32 = 16_384;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn log(&mut self, level: Level, message: String) {
        self.logs_this_call += 1;
        if self.logs_this_call > self.limits.max_logs_per_call {
            self.logs_dropped += 1;
            return;
        }
        let msg = cut(&message, MAX_LOG_BYTES);
        let plugin = self.label.as_str();
        match level {
            Level::Trace => tracing::trace!(plugin, "{msg}"),
            Level::Debug => tracing::debug!(plugin, "{msg}"),
            Level::Info => tracing::info!(plugin, "{msg}"),
            Level::Warn => tracing::warn!(plugin, "{msg}"),
            Level::Error => tracing::error!(plugin, "{msg}"),
        }
    }

    fn config(&mut self) -> Vec<(String, String)> {
        self.config.clone()
    }

    fn generate(
        &mut self,
        requests: Vec<Chat>,
        params: Sampling,
    ) -> wasmtime::Result<Vec<Result<String, String>>> {
        let n = requests.len();
        let max_tokens = params.max_tokens.min(MAX_GENERATE_TOKENS);
        // Tokens this batch may produce (a request for none still costs a prefill).
        let tokens = n as u64 * u64::from(max_tokens.max(1));
        Ok(self.service("generate", tokens, |state| {
            state.run_generate(requests, params, max_tokens)
        })?)
    }
}

impl HostState {
    fn run_generate(
        &mut self,
        requests: Vec<Chat>,
        params: Sampling,
        max_tokens: u32,
    ) -> Vec<Result<String, String>> {
        let n = requests.len();
        let all = |msg: String| vec![Err(msg); n];
        if n > self.limits.max_list_len {
            return all(format!("{n} requests is over the {} limit", self.limits.max_list_len));
        }
        let Some(mut generator) = self.generator.take() else {
            return all("this host has no judge model: generate is unavailable (configure one, or use a judge that needs none)".into());
        };
        let requests: Vec<ChatRequest> = requests
            .into_iter()
            .map(|c| ChatRequest { system: c.system, user: c.user, prefill: c.prefill })
            .collect();
        let params = SamplingParams {
            max_new_tokens: max_tokens as usize,
            temperature: if params.temperature.is_finite() {
                params.temperature.max(0.0)
            } else {
                0.0
            },
            top_p: if params.top_p.is_finite() { params.top_p.clamp(0.0, 1.0) } else { 1.0 },
            seed: params.seed,
            stop: params.stop,
        };
        // Per-request results: one failed request (a remote server's 429 or timeout) fails
        // only its own item, never the rest of the batch.
        let results = generator.generate_each(&requests, &params);
        self.generator = Some(generator);
        if results.len() != n {
            return all(format!(
                "the judge model returned {} outputs for {n} requests",
                results.len()
            ));
        }
        results
            .into_iter()
            .map(|r| r.map(|g| g.text).map_err(|err| format!("the judge model failed: {err}")))
            .collect()
    }
}

/// A host-side failure, as the judge guest sees it.
pub(crate) fn to_wit(failure: Failure) -> WitFailure {
    match failure.kind {
        FailureKind::Parse => WitFailure::Parse(failure.to_string()),
        FailureKind::Refused => WitFailure::Refused(failure.to_string()),
        FailureKind::Invalid => WitFailure::Invalid(failure.to_string()),
        _ => WitFailure::Host(failure.to_string()),
    }
}

/// A plugin-reported failure, as the host records it.
pub(crate) fn from_wit(failure: WitFailure, plugin: String, max_bytes: usize) -> Failure {
    let (kind, message) = match failure {
        WitFailure::Parse(m) => (FailureKind::Parse, m),
        WitFailure::Refused(m) => (FailureKind::Refused, m),
        WitFailure::Invalid(m) => (FailureKind::Invalid, m),
        WitFailure::Host(m) => (FailureKind::Host, m),
    };
    let message = if message.len() > max_bytes {
        format!("{}... ({} bytes, cut)", cut(&message, 512), message.len())
    } else {
        message
    };
    Failure { kind, plugin, message }
}

impl HostState {
    /// Runs one registry function as a charged host service (see [`HostState::service`]).
    /// The outer `Err` (over budget) traps the guest; the inner one is the guest's failure.
    fn with_registry<R>(
        &mut self,
        service: &str,
        rubric: &str,
        f: impl FnOnce(&mut super::registry::RubricRegistry) -> Result<R, Failure>,
    ) -> wasmtime::Result<Result<R, WitFailure>> {
        let label = self.label.clone();
        Ok(self.service(service, 0, |state| match state.registry.as_mut() {
            Some(registry) => f(registry).map_err(to_wit),
            None => Err(WitFailure::Invalid(format!(
                "{label}: no rubric registry is available (rubric `{rubric}` requested)"
            ))),
        })?)
    }
}

impl rubric_registry::Host for HostState {
    fn names(&mut self) -> wasmtime::Result<Vec<String>> {
        let names = self.service("rubric-registry.names", 0, |state| {
            state.registry.as_ref().map(|r| r.names()).unwrap_or_default()
        })?;
        Ok(names)
    }

    fn range(&mut self, rubric: String) -> wasmtime::Result<Result<ScoreRange, WitFailure>> {
        self.with_registry("rubric-registry.range", &rubric, |r| {
            r.get(&rubric).map(|p| {
                let (min, max) = p.range();
                ScoreRange { min, max }
            })
        })
    }

    fn pairwise_prompt(
        &mut self,
        rubric: String,
        context: String,
        a: String,
        b: String,
    ) -> wasmtime::Result<Result<Chat, WitFailure>> {
        self.with_registry("rubric-registry.pairwise-prompt", &rubric, |r| {
            r.get_mut(&rubric)?.pairwise_prompt(&context, &a, &b).map(to_chat)
        })
    }

    fn parse_pairwise(
        &mut self,
        rubric: String,
        output: String,
    ) -> wasmtime::Result<Result<(f32, f32), WitFailure>> {
        self.with_registry("rubric-registry.parse-pairwise", &rubric, |r| {
            r.get_mut(&rubric)?.parse_pairwise(&output)
        })
    }

    fn pointwise_prompt(
        &mut self,
        rubric: String,
        context: String,
        response: String,
    ) -> wasmtime::Result<Result<Chat, WitFailure>> {
        self.with_registry("rubric-registry.pointwise-prompt", &rubric, |r| {
            r.get_mut(&rubric)?.pointwise_prompt(&context, &response).map(to_chat)
        })
    }

    fn parse_pointwise(
        &mut self,
        rubric: String,
        output: String,
    ) -> wasmtime::Result<Result<f32, WitFailure>> {
        self.with_registry("rubric-registry.parse-pointwise", &rubric, |r| {
            r.get_mut(&rubric)?.parse_pointwise(&output)
        })
    }
}

fn to_chat(c: ChatRequest) -> Chat {
    Chat { system: c.system, user: c.user, prefill: c.prefill }
}
