//! HTTP handlers: authentication, request validation (each problem one OpenAI error naming
//! the field), prompt rendering with the model's chat template, and the JSON or
//! server-sent-event responses.
//!
//! Rules borrowed from other servers, so clients behave the same here:
//! - `add_generation_prompt` defaults to true; `continue_final_message` renders the chat
//!   without the generation prompt and cuts it right after the final message's content, the
//!   way transformers' `apply_chat_template(continue_final_message=True)` does; both set to
//!   true is a 400 (vLLM). The response holds only the continuation, not the final message.
//! - A request without `max_tokens` gets the server's `--default-max-tokens`, capped by
//!   what the context leaves; prompt + `max_tokens` beyond the context is a 400 (vLLM's
//!   check), as are `temperature` outside [0, 2], `top_p` outside (0, 1] and `n` < 1.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::engine::{Event, Job, JobParams};
use super::{ApiError, AppState, ENDPOINTS};
use crate::llm::FinishReason;
use crate::model::Message;
use crate::openai::wire::{
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest,
    ChunkChoice, Completion, CompletionChoice, CompletionRequest, Delta, ModelCard, ModelList,
    Prompt, Usage, unix_now,
};

/// Choices per request at most (`n` times the number of prompts).
const MAX_CHOICES: usize = 128;
/// Stop strings per request at most.
const MAX_STOPS: usize = 16;

type Reply = Result<Response, ApiError>;

/// `GET /health`: 200 `{"status": "ok"}` while the model thread runs, else 503 with an
/// OpenAI error object. No authentication, so load balancers can probe it.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.is_alive() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ok"}))).into_response()
    } else {
        ApiError::unavailable().into_response()
    }
}

/// Any other path: 404 `invalid_request_error` with code `not_found`, listing the endpoints.
pub async fn not_found(method: Method, uri: Uri) -> ApiError {
    let all: Vec<String> = ENDPOINTS.iter().map(|(m, p)| format!("{m} {p}")).collect();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("no such endpoint: {method} {}; this server has {}", uri.path(), all.join(", ")),
    )
    .with_code("not_found")
}

/// A method a route does not take (`GET /v1/chat/completions`): 405 `invalid_request_error`
/// with code `method_not_allowed`, naming the method the route takes; axum adds the `Allow`
/// header (RFC 9110, section 15.5.6) from the route's methods.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    let allowed: Vec<&str> =
        ENDPOINTS.iter().filter(|(_, p)| *p == path).map(|(m, _)| *m).collect();
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("{method} is not allowed on {path}; use {}", allowed.join(" or ")),
    )
    .with_code("method_not_allowed")
}

/// `GET /v1/models`: the one served model as a `list` of one model card (401 without the
/// API key when one is set).
pub async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Reply {
    check_auth(&state, &headers)?;
    let card = ModelCard {
        id: state.model_name.clone(),
        object: "model".into(),
        created: state.created,
        owned_by: "advgame-host".into(),
        max_model_len: Some(state.context_len as u64),
    };
    Ok(Json(ModelList { object: "list".into(), data: vec![card] }).into_response())
}

fn check_auth(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(key) = &state.api_key else { return Ok(()) };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the key never leaks through response timing.
    let matches = given.is_some_and(|g| {
        g.len() == key.len()
            && g.bytes().zip(key.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "missing or invalid API key (send `Authorization: Bearer KEY`)",
        )
        .with_code("invalid_api_key"))
    }
}

/// Body bytes -> request struct, with 413 for oversized bodies and a 400 naming the field
/// for malformed ones.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let bytes = body.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(status, "invalid_request_error", "request body too large")
                .with_code("request_too_large")
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                format!("cannot read the request body: {rejection}"),
            )
        }
    })?;
    // A UTF-8 byte-order mark (Windows tools write one) is not JSON, but it is not the
    // client's JSON being wrong either: skip it rather than report "line 1 column 1".
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(&bytes);
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid("", format!("the request body is not valid JSON: {e}"))
            .with_code("invalid_json")
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("", "the request body must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        // A missing top-level field has the root path "."; name the field instead.
        let param = if path == "." {
            message.split('`').nth(1).filter(|_| message.starts_with("missing field")).unwrap_or("")
        } else {
            path.as_str()
        };
        ApiError::invalid(param, format!("`{param}`: {message}"))
    })
}

fn check_model(state: &AppState, model: Option<&str>) -> Result<(), ApiError> {
    match model {
        None => Ok(()),
        Some(m) if m == state.model_name || m == state.model_path => Ok(()),
        Some(m) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("the model `{m}` does not exist; this server serves `{}`", state.model_name),
        )
        .with_code("model_not_found")),
    }
    .map_err(|mut e| {
        e.body.error.param = Some("model".into());
        e
    })
}

/// The sampling fields shared by both endpoints, validated.
struct Sampling {
    temperature: f32,
    top_p: f32,
    n: usize,
    seed: Option<u64>,
    stop: Vec<String>,
}

fn sampling(
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<i64>,
    seed: Option<i64>,
    stop: Option<crate::openai::wire::Stop>,
) -> Result<Sampling, ApiError> {
    let temperature = temperature.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature",
            format!("temperature {temperature}: expected a number from 0 to 2"),
        ));
    }
    let top_p = top_p.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            "top_p",
            format!("top_p {top_p}: expected a number in (0, 1]"),
        ));
    }
    let n = n.unwrap_or(1);
    if n < 1 || n as usize > MAX_CHOICES {
        return Err(ApiError::invalid("n", format!("n {n}: expected 1 to {MAX_CHOICES}")));
    }
    let stop = stop.map(|s| s.into_vec()).unwrap_or_default();
    if stop.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("{} stop strings: at most {MAX_STOPS}", stop.len()),
        ));
    }
    Ok(Sampling {
        temperature: temperature as f32,
        top_p: top_p as f32,
        n: n as usize,
        // OpenAI's seed is a signed integer; the bits are the seed.
        seed: seed.map(|s| s as u64),
        stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
    })
}

/// `max_tokens` checked against the context left after the longest prompt.
fn max_tokens(
    state: &AppState,
    requested: Option<i64>,
    param: &str,
    prompt_tokens: usize,
) -> Result<usize, ApiError> {
    let left = state.context_len.saturating_sub(prompt_tokens);
    if left == 0 {
        return Err(ApiError::invalid(
            "messages",
            format!(
                "the prompt has {prompt_tokens} tokens: this model's maximum context length is \
                 {} tokens",
                state.context_len
            ),
        )
        .with_code("context_length_exceeded"));
    }
    match requested {
        None => Ok(state.default_max_tokens.min(left)),
        Some(m) if m < 1 => {
            Err(ApiError::invalid(param, format!("{param} {m}: expected at least 1")))
        }
        Some(m) if m as u64 > left as u64 => Err(ApiError::invalid(
            param,
            format!(
                "this model's maximum context length is {} tokens; you requested {} tokens \
                 ({prompt_tokens} in the prompt, {m} in the completion)",
                state.context_len,
                prompt_tokens as u64 + m as u64
            ),
        )
        .with_code("context_length_exceeded")),
        Some(m) => Ok(m as usize),
    }
}

fn encode(state: &AppState, text: &str, add_special_tokens: bool) -> Result<Vec<i64>, ApiError> {
    let enc = state.tokenizer.encode(text, add_special_tokens).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("tokenizing the prompt failed: {e}"),
        )
    })?;
    Ok(enc.get_ids().iter().map(|&i| i64::from(i)).collect())
}

/// The prompt text of a chat request (see the module doc for the prefill rules).
fn render_chat(state: &AppState, req: &ChatCompletionRequest) -> Result<String, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` must hold at least one message"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "developer" => "system",
            r @ ("system" | "user" | "assistant") => r,
            other => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].role"),
                    format!(
                        "messages[{i}].role `{other}`: expected system, developer, user or \
                         assistant"
                    ),
                ));
            }
        };
        let content = match &m.content {
            Some(c) => c.text().map_err(|kind| {
                ApiError::invalid(
                    &format!("messages[{i}].content"),
                    format!("messages[{i}].content: parts of type `{kind}` are not supported (text only)"),
                )
            })?,
            None => {
                return Err(ApiError::invalid(
                    &format!("messages[{i}].content"),
                    format!("messages[{i}].content: missing (expected a string)"),
                ));
            }
        };
        messages.push(Message::new(role, &content));
    }
    let continue_final = req.continue_final_message.unwrap_or(false);
    if continue_final && req.add_generation_prompt == Some(true) {
        return Err(ApiError::invalid(
            "continue_final_message",
            "`continue_final_message` and `add_generation_prompt` cannot both be true",
        ));
    }
    let add_generation_prompt = !continue_final && req.add_generation_prompt.unwrap_or(true);
    let template = state.template.as_ref().ok_or_else(|| {
        ApiError::invalid(
            "messages",
            "this model has no chat template: use /v1/completions with a plain prompt",
        )
    })?;
    let rendered = template
        .render(&messages, add_generation_prompt)
        .map_err(|e| ApiError::invalid("messages", format!("the chat template failed: {e:#}")))?;
    if !continue_final {
        return Ok(rendered);
    }
    // transformers: cut right after the last occurrence of the final message's content
    // (its stripped form when the template trims whitespace).
    let last = &messages[messages.len() - 1].content;
    let cut = [last.as_str(), last.trim()]
        .into_iter()
        .find_map(|c| rendered.rfind(c).map(|at| at + c.len()))
        .ok_or_else(|| {
            ApiError::invalid(
                "continue_final_message",
                "the final message does not appear in the rendered chat template",
            )
        })?;
    Ok(rendered[..cut].to_string())
}

/// `POST /v1/chat/completions`: validates the request (400 naming the field), renders the
/// messages with the chat template, queues one row per choice, and answers with a
/// `chat.completion` or, with `stream`, server-sent `chat.completion.chunk` events.
pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (req, s) = accept::<ChatCompletionRequest>(&state, &headers, body)?;
    let prompt = render_chat(&state, &req)?;
    let ids = encode(&state, &prompt, false)?;
    let (requested, param) = match (req.max_completion_tokens, req.max_tokens) {
        (Some(m), _) => (Some(m), "max_completion_tokens"),
        (None, m) => (m, "max_tokens"),
    };
    let max = max_tokens(&state, requested, param, ids.len())?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let prompt_tokens = ids.len() as u64;
    let rx = queue(&state, vec![ids; s.n], max, &s, stream)?;
    let meta = Meta::new(&state, "chatcmpl", prompt_tokens);
    if stream {
        return Ok(stream_chat(rx, meta, s.n, include_usage));
    }
    let (choices, usage) = choices(rx, s.n, &meta, |index, o| ChatChoice {
        index,
        message: AssistantMessage { role: "assistant".into(), content: Some(o.text) },
        finish_reason: Some(finish_str(o.finish).into()),
        logprobs: None,
    })
    .await?;
    Ok(Json(ChatCompletion {
        id: meta.id,
        object: "chat.completion".into(),
        created: meta.created,
        model: meta.model,
        choices,
        usage: Some(usage),
    })
    .into_response())
}

/// `POST /v1/completions`: like [`chat_completions`] for raw prompts (no chat template),
/// `n` rows per prompt, answering with a `text_completion`.
pub async fn completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let (req, s) = accept::<CompletionRequest>(&state, &headers, body)?;
    let prompts = match req.prompt.clone() {
        Some(Prompt::One(p)) => vec![p],
        Some(Prompt::Many(ps)) if !ps.is_empty() => ps,
        _ => {
            return Err(ApiError::invalid(
                "prompt",
                "`prompt` must be a string or a non-empty list of strings",
            ));
        }
    };
    if prompts.len() * s.n > MAX_CHOICES {
        return Err(ApiError::invalid(
            "n",
            format!("{} prompts x n {} is over {MAX_CHOICES} choices", prompts.len(), s.n),
        ));
    }
    // vLLM's `add_special_tokens` defaults to true, as a plain tokenizer call does.
    let add_special = req.add_special_tokens.unwrap_or(true);
    let mut rows = Vec::with_capacity(prompts.len() * s.n);
    let mut prompt_tokens = 0u64;
    let mut longest = 0;
    for (i, p) in prompts.iter().enumerate() {
        let ids = encode(&state, p, add_special)?;
        if ids.is_empty() {
            return Err(ApiError::invalid("prompt", format!("prompt {i} is empty")));
        }
        prompt_tokens += ids.len() as u64;
        longest = longest.max(ids.len());
        rows.extend(std::iter::repeat_n(ids, s.n));
    }
    // OpenAI's default for this endpoint is 16 tokens.
    let max = max_tokens(&state, Some(req.max_tokens.unwrap_or(16)), "max_tokens", longest)?;
    let stream = req.stream.unwrap_or(false);
    let include_usage = req.stream_options.as_ref().is_some_and(|o| o.include_usage);
    let total = rows.len();
    let rx = queue(&state, rows, max, &s, stream)?;
    let meta = Meta::new(&state, "cmpl", prompt_tokens);
    if stream {
        return Ok(stream_completion(rx, meta, total, include_usage));
    }
    let (choices, usage) = choices(rx, total, &meta, |index, o| CompletionChoice {
        index,
        text: o.text,
        finish_reason: Some(finish_str(o.finish).into()),
        logprobs: None,
    })
    .await?;
    Ok(Json(Completion {
        id: meta.id,
        object: "text_completion".into(),
        created: meta.created,
        model: meta.model,
        choices,
        usage: Some(usage),
    })
    .into_response())
}

/// What `/v1/chat/completions` and `/v1/completions` requests share: the model name and the
/// OpenAI sampling fields, checked the same way for both.
trait GenerationRequest: DeserializeOwned {
    /// The requested model name, if any.
    fn model(&self) -> Option<&str>;
    /// `temperature`, `top_p`, `n`, `seed` and `stop`, checked (400 naming the field).
    fn sampling(&self) -> Result<Sampling, ApiError>;
}

macro_rules! generation_request {
    ($($request:ty),+) => {$(
        impl GenerationRequest for $request {
            fn model(&self) -> Option<&str> {
                self.model.as_deref()
            }
            fn sampling(&self) -> Result<Sampling, ApiError> {
                sampling(self.temperature, self.top_p, self.n, self.seed, self.stop.clone())
            }
        }
    )+};
}
generation_request!(ChatCompletionRequest, CompletionRequest);

/// The opening both generation endpoints share: bearer token, JSON body, model name and
/// sampling fields, in that order (the first failure answers).
fn accept<R: GenerationRequest>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(R, Sampling), ApiError> {
    check_auth(state, headers)?;
    let req: R = parse_body(body)?;
    check_model(state, req.model())?;
    let s = req.sampling()?;
    Ok((req, s))
}

/// Waits for the `n` rows of a non-streamed answer and numbers them as choices (`index` 0..n,
/// in row order), with the answer's token usage.
async fn choices<C>(
    rx: UnboundedReceiver<Event>,
    n: usize,
    meta: &Meta,
    choice: impl Fn(u32, Output) -> C,
) -> Result<(Vec<C>, Usage), ApiError> {
    let outs = collect(rx, n).await?;
    let usage = meta.usage(&outs);
    let choices = outs.into_iter().enumerate().map(|(i, o)| choice(i as u32, o)).collect();
    Ok((choices, usage))
}

fn queue(
    state: &AppState,
    prompts: Vec<Vec<i64>>,
    max_tokens: usize,
    s: &Sampling,
    stream: bool,
) -> Result<UnboundedReceiver<Event>, ApiError> {
    let (tx, rx) = unbounded_channel();
    let params = JobParams {
        max_tokens,
        temperature: s.temperature,
        top_p: s.top_p,
        seed: s.seed,
        stop: s.stop.clone(),
        stream,
    };
    state.submit(Job { prompts, params, events: tx })?;
    Ok(rx)
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    prompt_tokens: u64,
}

impl Meta {
    /// A fresh response id `PREFIX-random`, created now, for the served model.
    fn new(state: &AppState, prefix: &str, prompt_tokens: u64) -> Self {
        Self {
            id: format!("{prefix}-{}", random_id()),
            created: unix_now(),
            model: state.model_name.clone(),
            prompt_tokens,
        }
    }

    fn usage(&self, outs: &[Output]) -> Usage {
        let completion: u64 = outs.iter().map(|o| o.tokens as u64).sum();
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: completion,
            total_tokens: self.prompt_tokens + completion,
        }
    }
}

struct Output {
    text: String,
    finish: FinishReason,
    tokens: usize,
}

/// Waits for every choice of a job that does not stream.
async fn collect(mut rx: UnboundedReceiver<Event>, n: usize) -> Result<Vec<Output>, ApiError> {
    let mut outs: Vec<Option<Output>> = (0..n).map(|_| None).collect();
    let mut left = n;
    while left > 0 {
        match rx.recv().await {
            Some(Event::Done { choice, rest, finish, completion_tokens }) => {
                if outs[choice]
                    .replace(Output { text: rest, finish, tokens: completion_tokens })
                    .is_none()
                {
                    left -= 1;
                }
            }
            Some(Event::Delta { .. }) => {}
            Some(Event::Failed(message)) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    message,
                ));
            }
            None => return Err(ApiError::unavailable()),
        }
    }
    Ok(outs.into_iter().map(|o| o.expect("every choice finished")).collect())
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn sse_json<T: serde::Serialize>(value: &T) -> SseEvent {
    SseEvent::default().data(serde_json::to_string(value).unwrap_or_else(|_| "{}".into()))
}

fn sse_error(message: &str) -> SseEvent {
    let body = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message).body;
    sse_json(&body)
}

/// Server-sent events for a streamed chat completion: a role chunk per choice, content
/// deltas, a finish chunk per choice, the usage chunk if asked, then `data: [DONE]`.
fn stream_chat(
    rx: UnboundedReceiver<Event>,
    meta: Meta,
    n: usize,
    include_usage: bool,
) -> Response {
    let chunk =
        move |meta: &Meta, choices: Vec<ChunkChoice>, usage: Option<Usage>| ChatCompletionChunk {
            id: meta.id.clone(),
            object: "chat.completion.chunk".into(),
            created: meta.created,
            model: meta.model.clone(),
            choices,
            usage,
        };
    let choice = |index: usize, delta: Delta, finish: Option<FinishReason>| ChunkChoice {
        index: index as u32,
        delta,
        finish_reason: finish.map(|f| finish_str(f).to_string()),
        logprobs: None,
    };
    let stream = async_stream(rx, n, move |event| match event {
        StreamItem::Start => (0..n)
            .map(|i| {
                let d = Delta { role: Some("assistant".into()), content: Some(String::new()) };
                sse_json(&chunk(&meta, vec![choice(i, d, None)], None))
            })
            .collect(),
        StreamItem::Delta(i, text) => {
            let d = Delta { role: None, content: Some(text) };
            vec![sse_json(&chunk(&meta, vec![choice(i, d, None)], None))]
        }
        StreamItem::Done(i, rest, finish) => {
            let mut out = Vec::new();
            if !rest.is_empty() {
                let d = Delta { role: None, content: Some(rest) };
                out.push(sse_json(&chunk(&meta, vec![choice(i, d, None)], None)));
            }
            out.push(sse_json(&chunk(
                &meta,
                vec![choice(i, Delta::default(), Some(finish))],
                None,
            )));
            out
        }
        StreamItem::End(completion_tokens) => {
            if include_usage {
                let usage = Usage {
                    prompt_tokens: meta.prompt_tokens,
                    completion_tokens,
                    total_tokens: meta.prompt_tokens + completion_tokens,
                };
                vec![sse_json(&chunk(&meta, vec![], Some(usage)))]
            } else {
                vec![]
            }
        }
        StreamItem::Failed(message) => vec![sse_error(&message)],
    });
    sse_response(stream)
}

fn stream_completion(
    rx: UnboundedReceiver<Event>,
    meta: Meta,
    n: usize,
    include_usage: bool,
) -> Response {
    let chunk =
        move |meta: &Meta, index: usize, text: String, finish: Option<FinishReason>| Completion {
            id: meta.id.clone(),
            object: "text_completion".into(),
            created: meta.created,
            model: meta.model.clone(),
            choices: vec![CompletionChoice {
                index: index as u32,
                text,
                finish_reason: finish.map(|f| finish_str(f).to_string()),
                logprobs: None,
            }],
            usage: None,
        };
    let stream = async_stream(rx, n, move |event| match event {
        StreamItem::Start => vec![],
        StreamItem::Delta(i, text) => vec![sse_json(&chunk(&meta, i, text, None))],
        StreamItem::Done(i, rest, finish) => vec![sse_json(&chunk(&meta, i, rest, Some(finish)))],
        StreamItem::End(completion_tokens) => {
            if include_usage {
                let mut c = chunk(&meta, 0, String::new(), None);
                c.choices.clear();
                c.usage = Some(Usage {
                    prompt_tokens: meta.prompt_tokens,
                    completion_tokens,
                    total_tokens: meta.prompt_tokens + completion_tokens,
                });
                vec![sse_json(&c)]
            } else {
                vec![]
            }
        }
        StreamItem::Failed(message) => vec![sse_error(&message)],
    });
    sse_response(stream)
}

/// What a stream renderer is asked to turn into events.
enum StreamItem {
    Start,
    Delta(usize, String),
    Done(usize, String, FinishReason),
    /// All choices done; the completion tokens of all choices.
    End(u64),
    Failed(String),
}

type SseStream =
    tokio_stream::wrappers::UnboundedReceiverStream<Result<SseEvent, std::convert::Infallible>>;

/// Pumps model events through `render` into an SSE stream that ends with `[DONE]`. A task
/// does the pumping so that a client hanging up only closes the channel.
fn async_stream(
    mut rx: UnboundedReceiver<Event>,
    n: usize,
    mut render: impl FnMut(StreamItem) -> Vec<SseEvent> + Send + 'static,
) -> SseStream {
    let (tx, out) = unbounded_channel();
    tokio::spawn(async move {
        let send_all = |events: Vec<SseEvent>| events.into_iter().all(|e| tx.send(Ok(e)).is_ok());
        if !send_all(render(StreamItem::Start)) {
            return;
        }
        let (mut left, mut tokens) = (n, 0u64);
        while left > 0 {
            let item = match rx.recv().await {
                Some(Event::Delta { choice, text }) => StreamItem::Delta(choice, text),
                Some(Event::Done { choice, rest, finish, completion_tokens }) => {
                    left -= 1;
                    tokens += completion_tokens as u64;
                    StreamItem::Done(choice, rest, finish)
                }
                Some(Event::Failed(message)) => {
                    left = 0;
                    StreamItem::Failed(message)
                }
                None => {
                    left = 0;
                    StreamItem::Failed("the model worker stopped".into())
                }
            };
            let failed = matches!(item, StreamItem::Failed(_));
            if !send_all(render(item)) {
                return;
            }
            if failed {
                let _ = tx.send(Ok(SseEvent::default().data("[DONE]")));
                return;
            }
        }
        send_all(render(StreamItem::End(tokens)));
        let _ = tx.send(Ok(SseEvent::default().data("[DONE]")));
    });
    tokio_stream::wrappers::UnboundedReceiverStream::new(out)
}

fn sse_response(stream: SseStream) -> Response {
    Sse::new(stream).into_response()
}
