//! [`RemoteGenerator`]: a [`Generator`] backed by an OpenAI-compatible HTTP server, and
//! [`ModelRef`], the config value that names either a local model folder or such a server.
//!
//! Each [`ChatRequest`] becomes one `POST /v1/chat/completions`; a batch fans out under a
//! concurrency limit (a tokio semaphore on the generator's own runtime, so callers stay
//! synchronous). 429, 5xx and connection errors are retried with exponential backoff
//! (honouring `Retry-After`); a request slower than `timeout_s` fails as `timeout` and is not
//! retried (a slow server only gets slower under retries); other 4xx answers and bodies
//! that are not the expected JSON fail at once. Every failure is a typed [`RemoteFailure`],
//! counted in [`RemoteStats`], and reported per item by [`Generator::generate_each`].
//!
//! Prefill (`ChatRequest::prefill`, e.g. a rubric's `<score_A>`): sent as a final assistant
//! message with vLLM's `continue_final_message: true, add_generation_prompt: false`; the
//! server answers only the continuation and the returned text is prefill + continuation.
//! Servers that reject those fields (OpenAI's own API answers 400) get the documented
//! fallback when `tokenizer` names a local folder with the served model's tokenizer files:
//! the chat template is rendered here (generation prompt + prefill) and sent as a plain
//! prompt to `/v1/completions` with `add_special_tokens: false` (the template already holds
//! the special tokens). `prefill = "completions"` uses that path from the start. A server
//! that also rejects `add_special_tokens` (vLLM's extra field; `transformers serve` answers
//! 422 "Unexpected fields" to both) gets the prompt without the field from then on; since
//! such a server tokenizes with special tokens, a leading token the local tokenizer adds by
//! itself (a BOS the template also wrote) is cut from the prompt so it is not doubled.
//!
//! The API key is read from the environment variable named by `api_key_env` when the
//! generator opens, kept in memory only, sent only as the bearer token, and never printed:
//! `Debug` redacts it and no error message includes it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::wire::{
    ChatCompletion, ChatCompletionRequest, ChatMessage, Completion, CompletionRequest, ErrorBody,
    ModelList, Prompt, Stop,
};
use crate::llm::{ChatRequest, FinishReason, Generation, Generator, SamplingParams};
use crate::model::{ChatModel, ChatTemplate, Message};

/// How a request's prefill reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefillMode {
    /// `continue_final_message`, switching to `completions` for good once the server
    /// rejects it (needs `tokenizer`).
    #[default]
    Auto,
    /// Always `continue_final_message`.
    ContinueFinalMessage,
    /// Always render the chat template locally and call `/v1/completions` (needs
    /// `tokenizer`).
    Completions,
}

/// An OpenAI-compatible server as a model (the `[models.judge]` table of a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteModel {
    /// Base URL, e.g. `http://127.0.0.1:8011/v1` (a missing `/v1` is added).
    pub url: String,
    /// The `model` id to request; by default the first one `GET /v1/models` lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Name of the environment variable holding the API key (sent as a bearer token).
    /// The key itself never appears in a config, log or run folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Requests in flight at most.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Seconds one HTTP request may take, body included.
    #[serde(default = "default_timeout")]
    pub timeout_s: f64,
    /// Retries after a 429, a 5xx or a connection error (0 = one attempt).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// How a request's prefill (the start of the assistant's answer) reaches the server;
    /// default `auto` (see [`PrefillMode`]).
    #[serde(default)]
    pub prefill: PrefillMode,
    /// Local folder with the served model's tokenizer files (tokenizer_config.json /
    /// chat_template.jinja), for the `/v1/completions` prefill fallback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<PathBuf>,
}

fn default_concurrency() -> usize {
    8
}
fn default_timeout() -> f64 {
    120.0
}
fn default_retries() -> u32 {
    3
}

impl RemoteModel {
    /// A server at `url` with every other setting at its default.
    pub fn at(url: &str) -> Self {
        Self {
            url: url.into(),
            model: None,
            api_key_env: None,
            max_concurrency: default_concurrency(),
            timeout_s: default_timeout(),
            max_retries: default_retries(),
            prefill: PrefillMode::Auto,
            tokenizer: None,
        }
    }

    /// Checks the values; `field` is the config path used in messages.
    pub fn validate(&self, field: &str) -> anyhow::Result<()> {
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("field `{field}.url`: `{url}`: expected an http:// or https:// URL");
        }
        if self.max_concurrency == 0 {
            bail!("field `{field}.max_concurrency`: must be at least 1");
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            bail!(
                "field `{field}.timeout_s`: {}: expected a positive number of seconds",
                self.timeout_s
            );
        }
        if self.prefill == PrefillMode::Completions && self.tokenizer.is_none() {
            bail!(
                "field `{field}.prefill`: `completions` needs `{field}.tokenizer` (a folder with the model's tokenizer files)"
            );
        }
        Ok(())
    }

    /// `.../v1` without a trailing slash.
    fn base_url(&self) -> String {
        let url = self.url.trim().trim_end_matches('/');
        if url.ends_with("/v1") { url.to_string() } else { format!("{url}/v1") }
    }
}

/// A model as a run config names it: a local Hugging Face folder (a string) or an
/// OpenAI-compatible server (a table with `url`, see [`RemoteModel`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ModelRef {
    /// A local Hugging Face model folder (`config.json`, `model.safetensors`, tokenizer
    /// files), loaded into this process.
    Local(PathBuf),
    /// An OpenAI-compatible server (a TOML table with `url`).
    Remote(RemoteModel),
}

impl ModelRef {
    /// The folder of a local model.
    pub fn local_dir(&self) -> Option<&Path> {
        match self {
            ModelRef::Local(p) => Some(p),
            ModelRef::Remote(_) => None,
        }
    }

    /// Loads the local model on `device`, or connects to the server.
    pub fn open(&self, device: tch::Device, kind: tch::Kind) -> anyhow::Result<Box<dyn Generator>> {
        Ok(match self {
            ModelRef::Local(dir) => Box::new(
                ChatModel::load(dir, device, kind)
                    .with_context(|| format!("loading the model {}", dir.display()))?,
            ),
            ModelRef::Remote(remote) => Box::new(RemoteGenerator::open(remote)?),
        })
    }
}

/// A string is a folder, a table a server: the table is read with its own field checks so
/// that a typo names the field (an untagged enum would only say "no variant matched").
impl<'de> Deserialize<'de> for ModelRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RefVisitor;
        impl<'de> Visitor<'de> for RefVisitor {
            type Value = ModelRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a model folder path or a table with `url` (an OpenAI-compatible server)",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelRef, E> {
                Ok(ModelRef::Local(PathBuf::from(v)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelRef, A::Error> {
                RemoteModel::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ModelRef::Remote)
            }
        }
        deserializer.deserialize_any(RefVisitor)
    }
}

/// Failure kinds of one remote request (the metric suffixes are [`RemoteFailure::kind`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RemoteFailure {
    /// The HTTP request took longer than `timeout_s`; the value is that limit, in seconds.
    /// Not retried.
    #[error("timed out after {0:.1} s")]
    Timeout(f64),
    /// No connection or an interrupted body (DNS, refused, reset); retried.
    #[error("connection failed: {0}")]
    Connection(String),
    /// HTTP 429 on every attempt; the body's message.
    #[error("rate limited (HTTP 429) after all retries: {0}")]
    RateLimited(String),
    /// HTTP 5xx on every attempt: the status and the body's message.
    #[error("server error (HTTP {0}) after all retries: {1}")]
    Server(u16, String),
    /// HTTP 4xx other than 429 (bad request, unknown model, authentication); the status and
    /// the body's message. Not retried.
    #[error("request rejected (HTTP {0}): {1}")]
    Rejected(u16, String),
    /// A 2xx answer that is not the expected JSON (or has the wrong number of choices).
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl RemoteFailure {
    /// Stable snake_case name: `timeout`, `connection`, `rate_limited`, `server_error`,
    /// `rejected` or `malformed`; the suffix of the `remote/failures/KIND` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            RemoteFailure::Timeout(_) => "timeout",
            RemoteFailure::Connection(_) => "connection",
            RemoteFailure::RateLimited(_) => "rate_limited",
            RemoteFailure::Server(..) => "server_error",
            RemoteFailure::Rejected(..) => "rejected",
            RemoteFailure::Malformed(_) => "malformed",
        }
    }

    fn retryable(&self) -> bool {
        matches!(
            self,
            RemoteFailure::Connection(_)
                | RemoteFailure::RateLimited(_)
                | RemoteFailure::Server(..)
        )
    }
}

const FAILURE_KINDS: [&str; 6] =
    ["timeout", "connection", "rate_limited", "server_error", "rejected", "malformed"];

/// Counters of one generator (cumulative; cheap to read from another thread).
#[derive(Debug, Default)]
pub struct RemoteStats {
    /// Items asked for.
    pub requests: AtomicU64,
    /// Items answered.
    pub succeeded: AtomicU64,
    /// HTTP attempts after the first, over all items.
    pub retries: AtomicU64,
    /// Items failed, by [`RemoteFailure::kind`] (in [`FAILURE_KINDS`] order).
    failures: [AtomicU64; 6],
}

impl RemoteStats {
    fn fail(&self, f: &RemoteFailure) {
        let i = FAILURE_KINDS.iter().position(|k| *k == f.kind()).expect("known kind");
        self.failures[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Failed items by kind (only kinds that occurred).
    pub fn failures(&self) -> BTreeMap<&'static str, u64> {
        FAILURE_KINDS
            .iter()
            .zip(&self.failures)
            .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Failed items, all kinds together.
    pub fn failed(&self) -> u64 {
        self.failures.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }

    /// `remote/requests`, `remote/succeeded`, `remote/retries`, `remote/failures/KIND`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut m = vec![
            ("remote/requests".to_string(), self.requests.load(Ordering::Relaxed) as f64),
            ("remote/succeeded".to_string(), self.succeeded.load(Ordering::Relaxed) as f64),
            ("remote/retries".to_string(), self.retries.load(Ordering::Relaxed) as f64),
        ];
        for (k, n) in self.failures() {
            m.push((format!("remote/failures/{k}"), n as f64));
        }
        m
    }
}

/// What the request tasks share.
struct Shared {
    client: reqwest::Client,
    base: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    max_retries: u32,
    mode: PrefillMode,
    /// For the `/v1/completions` prefill path.
    template: Option<ChatTemplate>,
    /// Set once the server rejected `continue_final_message` (mode `Auto`).
    use_completions: AtomicBool,
    /// Set once the server rejected `add_special_tokens` on `/v1/completions`.
    omit_add_special_tokens: AtomicBool,
    /// The text of the token the served model's tokenizer puts before every encoded text
    /// (e.g. `<|begin_of_text|>`), if any: cut from a rendered prompt sent without
    /// `add_special_tokens: false`.
    leading_special: Option<String>,
    stats: Arc<RemoteStats>,
}

/// A [`Generator`] over an OpenAI-compatible server (see the module doc).
pub struct RemoteGenerator {
    shared: Arc<Shared>,
    semaphore: Arc<Semaphore>,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for RemoteGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteGenerator")
            .field("base", &self.shared.base)
            .field("model", &self.shared.model)
            .field("api_key", &self.shared.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl RemoteGenerator {
    /// Reads the API key from the environment, builds the HTTP client and, without
    /// `model`, asks the server which model it serves.
    pub fn open(cfg: &RemoteModel) -> anyhow::Result<Self> {
        cfg.validate("models.judge")?;
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                anyhow!("the API key variable `{var}` (api_key_env) is not set in the environment")
            })?),
            None => None,
        };
        let template = match &cfg.tokenizer {
            Some(dir) => Some(ChatTemplate::from_dir(dir)?.ok_or_else(|| {
                anyhow!("{}: no chat template in this tokenizer folder", dir.display())
            })?),
            None => None,
        };
        let leading_special = match &cfg.tokenizer {
            Some(dir) => leading_special_token(dir)?,
            None => None,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .context("starting the async runtime of the remote model")?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(cfg.timeout_s.min(30.0)))
            .build()
            .context("building the HTTP client")?;
        let base = cfg.base_url();
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let model = match &cfg.model {
            Some(m) => m.clone(),
            None => runtime
                .block_on(first_model(&client, &base, api_key.as_deref(), timeout))
                .with_context(|| format!("asking {base}/models which model it serves"))?,
        };
        let shared = Arc::new(Shared {
            client,
            base,
            model,
            api_key,
            timeout,
            max_retries: cfg.max_retries,
            mode: cfg.prefill,
            template,
            use_completions: AtomicBool::new(cfg.prefill == PrefillMode::Completions),
            omit_add_special_tokens: AtomicBool::new(false),
            leading_special,
            stats: Arc::new(RemoteStats::default()),
        });
        Ok(Self { shared, semaphore: Arc::new(Semaphore::new(cfg.max_concurrency)), runtime })
    }

    /// The model id requests name.
    pub fn model(&self) -> &str {
        &self.shared.model
    }

    /// The counters, shared (read them while the generator works elsewhere).
    pub fn stats(&self) -> Arc<RemoteStats> {
        self.shared.stats.clone()
    }

    /// One result per request, in order; failures are typed.
    pub fn generate_typed(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> Vec<Result<Generation, RemoteFailure>> {
        let shared = self.shared.clone();
        let semaphore = self.semaphore.clone();
        let params = Arc::new(params.clone());
        self.runtime.block_on(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, req) in requests.iter().cloned().enumerate() {
                let (shared, semaphore, params) =
                    (shared.clone(), semaphore.clone(), params.clone());
                tasks.spawn(async move {
                    let _permit = semaphore.acquire_owned().await.expect("never closed");
                    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
                    let out = one(&shared, &req, &params).await;
                    if let Err(f) = &out {
                        shared.stats.fail(f);
                        tracing::warn!(model = %shared.model, "remote request {i} failed: {f}");
                    } else {
                        shared.stats.succeeded.fetch_add(1, Ordering::Relaxed);
                    }
                    (i, out)
                });
            }
            let mut out: Vec<Option<Result<Generation, RemoteFailure>>> =
                (0..requests.len()).map(|_| None).collect();
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok((i, r)) => out[i] = Some(r),
                    Err(e) => tracing::error!("a remote request task died: {e}"),
                }
            }
            out.into_iter()
                .map(|r| {
                    r.unwrap_or_else(|| {
                        Err(RemoteFailure::Connection("the request task died".into()))
                    })
                })
                .collect()
        })
    }
}

impl Generator for RemoteGenerator {
    /// All or nothing: the first failure (of how many) fails the batch. Per-item callers
    /// use [`Generator::generate_each`].
    fn generate(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> anyhow::Result<Vec<Generation>> {
        let results = self.generate_typed(requests, params);
        let failed = results.iter().filter(|r| r.is_err()).count();
        let mut out = Vec::with_capacity(results.len());
        for (i, r) in results.into_iter().enumerate() {
            match r {
                Ok(g) => out.push(g),
                Err(f) => {
                    bail!("{failed} of {} remote requests failed; request {i}: {f}", requests.len())
                }
            }
        }
        Ok(out)
    }

    fn generate_each(
        &mut self,
        requests: &[ChatRequest],
        params: &SamplingParams,
    ) -> Vec<Result<Generation, String>> {
        self.generate_typed(requests, params)
            .into_iter()
            .map(|r| r.map_err(|f| format!("{} ({}): {f}", self.shared.base, f.kind())))
            .collect()
    }

    fn metrics(&self) -> Vec<(String, f64)> {
        self.shared.stats.metrics()
    }
}

async fn first_model(
    client: &reqwest::Client,
    base: &str,
    api_key: Option<&str>,
    timeout: Duration,
) -> anyhow::Result<String> {
    let mut req = client.get(format!("{base}/models")).timeout(timeout);
    if let Some(key) = api_key {
        req = req.bearer_auth(key);
    }
    let resp = req.send().await.map_err(|e| anyhow!("{}", describe(&e)))?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| anyhow!("{}", describe(&e)))?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", error_message(&text));
    }
    let list: ModelList =
        serde_json::from_str(&text).map_err(|e| anyhow!("not a model list: {e}"))?;
    list.data.into_iter().next().map(|m| m.id).ok_or_else(|| anyhow!("the server lists no model"))
}

/// A reqwest error without anything but its kind and cause (reqwest messages hold only the
/// URL, which has no secret; the key travels in a header).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// The `error.message` of an OpenAI error body, the `detail` of a FastAPI one (e.g.
/// `transformers serve`: `{"detail": "Unexpected fields in the request: {...}"}`), else the
/// start of the body.
fn error_message(body: &str) -> String {
    if let Ok(e) = serde_json::from_str::<ErrorBody>(body) {
        return e.error.message;
    }
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(body) {
        match map.get("detail") {
            Some(serde_json::Value::String(s)) => return s.chars().take(300).collect(),
            Some(d @ serde_json::Value::Array(_)) => {
                return d.to_string().chars().take(300).collect();
            }
            _ => {}
        }
    }
    body.chars().take(300).collect()
}

/// The token a tokenizer puts before every text it encodes with special tokens (a BOS), as
/// text, read from `tokenizer.json` in `dir`; `None` when it adds none at the start or the
/// folder has no `tokenizer.json`.
fn leading_special_token(dir: &Path) -> anyhow::Result<Option<String>> {
    let path = dir.join("tokenizer.json");
    if !path.is_file() {
        return Ok(None);
    }
    let tok = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| anyhow!("{}: cannot load tokenizer: {e}", path.display()))?;
    let enc = |special| {
        tok.encode("a", special)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| anyhow!("{}: cannot encode: {e}", path.display()))
    };
    let (with, without) = (enc(true)?, enc(false)?);
    Ok(match (with.first(), without.first()) {
        (Some(w), Some(wo)) if with.len() > without.len() && w != wo => tok.id_to_token(*w),
        _ => None,
    })
}

fn finish_of(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    }
}

/// The completion cut before the first stop string, as the OpenAI API defines `stop` ("the
/// returned text will not contain the stop sequence"; vLLM's default too). Some servers
/// return the text up to the end of the token that completed the stop string instead
/// (`transformers serve` 5.x: `"...beauty,\n"` for `stop: ["\n"]`), so the client applies
/// the rule itself; on a server that follows it this changes nothing. A cut text finished
/// with `stop`.
fn cut_at_stop(text: String, reason: Option<&str>, stops: &[String]) -> (String, FinishReason) {
    let first = stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min();
    match first {
        Some(at) => (text[..at].to_string(), FinishReason::Stop),
        None => (text, finish_of(reason)),
    }
}

fn messages_of(req: &ChatRequest) -> Vec<ChatMessage> {
    let mut m = Vec::with_capacity(3);
    if let Some(system) = &req.system {
        m.push(ChatMessage::new("system", system));
    }
    m.push(ChatMessage::new("user", &req.user));
    m
}

fn stop_of(params: &SamplingParams) -> Option<Stop> {
    (!params.stop.is_empty()).then(|| Stop::Many(params.stop.clone()))
}

/// One item: chat (with `continue_final_message` for a prefill) or the completions path.
async fn one(
    shared: &Shared,
    req: &ChatRequest,
    params: &SamplingParams,
) -> Result<Generation, RemoteFailure> {
    let prefill = req.prefill.as_deref().filter(|p| !p.is_empty());
    if prefill.is_some() && shared.use_completions.load(Ordering::Relaxed) {
        return via_completions(shared, req, params).await;
    }
    let mut messages = messages_of(req);
    if let Some(p) = prefill {
        messages.push(ChatMessage::new("assistant", p));
    }
    let body = ChatCompletionRequest {
        model: Some(shared.model.clone()),
        messages,
        max_tokens: Some(params.max_new_tokens as i64),
        temperature: Some(f64::from(params.temperature)),
        top_p: (params.temperature > 0.0).then_some(f64::from(params.top_p)),
        seed: Some(params.seed as i64),
        stop: stop_of(params),
        continue_final_message: prefill.map(|_| true),
        add_generation_prompt: prefill.map(|_| false),
        ..Default::default()
    };
    let answer: Result<ChatCompletion, RemoteFailure> =
        post(shared, "chat/completions", &body).await;
    let answer = match answer {
        Err(RemoteFailure::Rejected(status, msg))
            if prefill.is_some()
                && shared.mode == PrefillMode::Auto
                && shared.template.is_some()
                && (400..500).contains(&status) =>
        {
            tracing::warn!(
                "{}: continue_final_message rejected ({msg}); using /v1/completions with the \
                 locally rendered chat template from now on",
                shared.base
            );
            shared.use_completions.store(true, Ordering::Relaxed);
            return via_completions(shared, req, params).await;
        }
        other => other?,
    };
    let choice = first_choice(answer.choices)?;
    let content = choice.message.content.unwrap_or_default();
    let (content, finish) = cut_at_stop(content, choice.finish_reason.as_deref(), &params.stop);
    Ok(Generation {
        text: format!("{}{content}", prefill.unwrap_or("")),
        token_ids: Vec::new(),
        finish,
        logprobs: Vec::new(),
    })
}

/// The prefill fallback: the chat template rendered here, sent to `/v1/completions`.
async fn via_completions(
    shared: &Shared,
    req: &ChatRequest,
    params: &SamplingParams,
) -> Result<Generation, RemoteFailure> {
    let template = shared.template.as_ref().ok_or_else(|| {
        RemoteFailure::Rejected(0, "the completions prefill path needs `tokenizer`".into())
    })?;
    let messages: Vec<Message> = ChatModel::messages(req);
    let mut prompt = template
        .render(&messages, true)
        .map_err(|e| RemoteFailure::Rejected(0, format!("rendering the chat template: {e:#}")))?;
    let prefill = req.prefill.clone().unwrap_or_default();
    prompt.push_str(&prefill);
    let body = |prompt: String, with_field: bool| CompletionRequest {
        model: Some(shared.model.clone()),
        prompt: Some(Prompt::One(prompt)),
        max_tokens: Some(params.max_new_tokens as i64),
        temperature: Some(f64::from(params.temperature)),
        top_p: (params.temperature > 0.0).then_some(f64::from(params.top_p)),
        seed: Some(params.seed as i64),
        stop: stop_of(params),
        // The template already holds the special tokens.
        add_special_tokens: with_field.then_some(false),
        ..Default::default()
    };
    // Without the field the server adds its tokenizer's leading special token itself.
    let without_field = |prompt: &str| match &shared.leading_special {
        Some(t) => prompt.strip_prefix(t.as_str()).unwrap_or(prompt).to_string(),
        None => prompt.to_string(),
    };
    let answer: Completion = if shared.omit_add_special_tokens.load(Ordering::Relaxed) {
        post(shared, "completions", &body(without_field(&prompt), false)).await?
    } else {
        match post(shared, "completions", &body(prompt.clone(), true)).await {
            Err(RemoteFailure::Rejected(status, msg))
                if (400..500).contains(&status) && msg.contains("add_special_tokens") =>
            {
                tracing::warn!(
                    "{}: add_special_tokens rejected ({msg}); sending completions without it \
                     from now on",
                    shared.base
                );
                shared.omit_add_special_tokens.store(true, Ordering::Relaxed);
                post(shared, "completions", &body(without_field(&prompt), false)).await?
            }
            other => other?,
        }
    };
    let choice = first_choice(answer.choices)?;
    let (text, finish) = cut_at_stop(choice.text, choice.finish_reason.as_deref(), &params.stop);
    Ok(Generation {
        text: format!("{prefill}{text}"),
        token_ids: Vec::new(),
        finish,
        logprobs: Vec::new(),
    })
}

/// POSTs `body` to `base/path`, retrying per the module doc, and parses the answer.
async fn post<B: Serialize, T: serde::de::DeserializeOwned>(
    shared: &Shared,
    path: &str,
    body: &B,
) -> Result<T, RemoteFailure> {
    let url = format!("{}/{path}", shared.base);
    let mut attempt = 0u32;
    loop {
        let retry_after = match attempt_once(shared, &url, body).await {
            Ok(text) => {
                return serde_json::from_str(&text).map_err(|e| {
                    let start: String = text.chars().take(200).collect();
                    RemoteFailure::Malformed(format!("{e} (body starts {start:?})"))
                });
            }
            Err((failure, retry_after)) => {
                if !failure.retryable() || attempt >= shared.max_retries {
                    return Err(failure);
                }
                retry_after
            }
        };
        // 0.25 s, 0.5 s, 1 s, ... capped at 8 s, with jitter; Retry-After (capped at 30 s)
        // wins when the server sends one.
        let backoff = 0.25 * 2f64.powi(attempt.min(5) as i32);
        let jitter = 0.5 + rand::random::<f64>();
        let wait = retry_after.unwrap_or((backoff * jitter).min(8.0));
        shared.stats.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        attempt += 1;
    }
}

/// One HTTP attempt: the body text on 2xx, else the failure and the server's Retry-After.
async fn attempt_once<B: Serialize>(
    shared: &Shared,
    url: &str,
    body: &B,
) -> Result<String, (RemoteFailure, Option<f64>)> {
    let mut req = shared.client.post(url).timeout(shared.timeout).json(body);
    if let Some(key) = &shared.api_key {
        req = req.bearer_auth(key);
    }
    let secs = shared.timeout.as_secs_f64();
    let resp = req.send().await.map_err(|e| {
        if e.is_timeout() {
            (RemoteFailure::Timeout(secs), None)
        } else {
            (RemoteFailure::Connection(describe(&e)), None)
        }
    })?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.min(30.0));
    let text = resp.text().await.map_err(|e| {
        if e.is_timeout() {
            (RemoteFailure::Timeout(secs), None)
        } else {
            (RemoteFailure::Connection(format!("reading the body: {}", describe(&e))), None)
        }
    })?;
    match status {
        200..=299 => Ok(text),
        429 => Err((RemoteFailure::RateLimited(error_message(&text)), retry_after)),
        500..=599 => Err((RemoteFailure::Server(status, error_message(&text)), retry_after)),
        _ => Err((RemoteFailure::Rejected(status, error_message(&text)), None)),
    }
}

/// The first choice of an answer (requests ask for one).
fn first_choice<T>(choices: Vec<T>) -> Result<T, RemoteFailure> {
    choices
        .into_iter()
        .next()
        .ok_or_else(|| RemoteFailure::Malformed("no choices in the response".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Holder {
        judge: Option<ModelRef>,
    }

    #[test]
    fn stop_strings_cut_the_text_as_the_openai_api_defines() {
        let stops = vec!["\n".to_string(), "</score>".to_string()];
        let cut = |t: &str, r| cut_at_stop(t.to_string(), r, &stops);
        assert_eq!(cut("a beauty,\n", Some("stop")), ("a beauty,".into(), FinishReason::Stop));
        // The earliest stop string wins, also inside the last token's text.
        assert_eq!(cut(" 7</score>\n\nok", Some("length")), (" 7".into(), FinishReason::Stop));
        assert_eq!(cut("no stop", Some("length")), ("no stop".into(), FinishReason::Length));
        assert_eq!(cut_at_stop("x".into(), None, &[String::new()]).0, "x");
    }

    #[test]
    fn fastapi_error_bodies_give_their_detail() {
        let body = r#"{"detail":"Unexpected fields in the request: {'add_special_tokens'}"}"#;
        assert!(
            error_message(body).starts_with("Unexpected fields")
                && error_message(body).contains("add_special_tokens")
        );
        let openai =
            r#"{"error":{"message":"no","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(error_message(openai), "no");
        assert_eq!(error_message("plain text"), "plain text");
    }

    #[test]
    fn the_leading_special_token_is_read_from_the_tokenizer() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let data = std::env::var_os("ADVGAME_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("data"));
        // SmolLM2 (GPT-2 style) adds nothing before a text.
        let smol = data.join("models/SmolLM2-135M-Instruct");
        if smol.join("tokenizer.json").is_file() {
            assert_eq!(leading_special_token(&smol).unwrap(), None);
        }
        assert_eq!(leading_special_token(Path::new("/nonexistent")).unwrap(), None);
        // A tokenizer whose post-processor puts `<s>` first (Llama-style).
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"version":"1.0","truncation":null,"padding":null,
          "added_tokens":[{"id":0,"content":"<s>","single_word":false,"lstrip":false,
            "rstrip":false,"normalized":false,"special":true}],
          "normalizer":null,"pre_tokenizer":{"type":"Whitespace"},
          "post_processor":{"type":"TemplateProcessing",
            "single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],
            "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
            "special_tokens":{"<s>":{"id":"<s>","ids":[0],"tokens":["<s>"]}}},
          "decoder":null,
          "model":{"type":"WordLevel","vocab":{"<s>":0,"a":1,"[UNK]":2},"unk_token":"[UNK]"}}"#;
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        assert_eq!(leading_special_token(dir.path()).unwrap().as_deref(), Some("<s>"));
    }

    #[test]
    fn a_string_is_a_folder_and_a_table_is_a_server() {
        let h: Holder = toml::from_str(r#"judge = "data/models/x""#).unwrap();
        assert_eq!(h.judge.unwrap().local_dir().unwrap(), Path::new("data/models/x"));
        let h: Holder = toml::from_str(
            "[judge]\nurl = \"http://127.0.0.1:8011\"\nmodel = \"m\"\nmax_concurrency = 4\n",
        )
        .unwrap();
        let ModelRef::Remote(r) = h.judge.unwrap() else { panic!("expected a server") };
        assert_eq!(r.max_concurrency, 4);
        assert_eq!(r.max_retries, 3);
        assert_eq!(r.base_url(), "http://127.0.0.1:8011/v1");
    }

    #[test]
    fn a_typo_in_the_server_table_names_the_field() {
        let err = toml::from_str::<Holder>("[judge]\nurl = \"http://x\"\nmax_concurency = 4\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_concurency") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_http_example_config_names_a_server() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let c = crate::game::config::Config::load(&root.join("examples/llm-judge-http.toml"), &[])
            .unwrap();
        let Some(ModelRef::Remote(r)) = &c.models.judge else { panic!("expected a server") };
        assert_eq!(r.base_url(), "http://127.0.0.1:8011/v1");
        assert_eq!(c.plugins.judge, "llm");
        // --set reaches into the table, and the resolved config round-trips.
        let c = crate::game::config::Config::load(
            &root.join("examples/llm-judge-http.toml"),
            &["models.judge.model=big".into()],
        )
        .unwrap();
        let back =
            crate::game::config::Config::parse(&c.to_toml().unwrap(), "resolved", &[]).unwrap();
        assert_eq!(back.models.judge, c.models.judge);
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = RemoteModel::at("ftp://x");
        assert!(r.validate("models.judge").unwrap_err().to_string().contains("models.judge.url"));
        r.url = "http://x/v1/".into();
        assert_eq!(r.base_url(), "http://x/v1");
        r.prefill = PrefillMode::Completions;
        assert!(r.validate("models.judge").unwrap_err().to_string().contains("tokenizer"));
    }

    #[test]
    fn a_missing_key_variable_is_an_error_and_debug_never_shows_the_key() {
        let mut r = RemoteModel::at("http://127.0.0.1:9");
        r.model = Some("m".into());
        r.api_key_env = Some("ADVGAME_TEST_UNSET_KEY_VARIABLE".into());
        let err = RemoteGenerator::open(&r).unwrap_err().to_string();
        assert!(err.contains("ADVGAME_TEST_UNSET_KEY_VARIABLE"), "{err}");
        r.api_key_env = Some("PATH".into());
        let g = RemoteGenerator::open(&r).unwrap();
        let shown = format!("{g:?}");
        assert!(shown.contains("<redacted>") && !shown.contains(&std::env::var("PATH").unwrap()));
    }

    #[test]
    fn connection_refused_is_a_counted_per_item_failure() {
        let mut r = RemoteModel::at("http://127.0.0.1:9");
        r.model = Some("m".into());
        r.max_retries = 1;
        let mut g = RemoteGenerator::open(&r).unwrap();
        let out = g.generate_each(
            &[ChatRequest::user("a"), ChatRequest::user("b")],
            &SamplingParams::default(),
        );
        assert!(out.iter().all(|r| r.as_ref().unwrap_err().contains("connection")), "{out:?}");
        let stats = g.stats();
        assert_eq!(stats.failures().get("connection"), Some(&2));
        assert_eq!(stats.retries.load(Ordering::Relaxed), 2);
    }
}
