//! `advgame-host serve`: an OpenAI-compatible HTTP server (axum on tokio) for any model folder
//! the engine loads, so the tools people already use (the `openai` client, garak, PyRIT,
//! lm-eval-harness, our own remote judge) can reach it.
//!
//! - [`engine`]: the model thread, which batches queued jobs into shared decode calls.
//! - [`handlers`]: request validation, prompt rendering, responses and server-sent events.
//!
//! Endpoints: `GET /v1/models`, `POST /v1/chat/completions`, `POST /v1/completions`,
//! `GET /health` ([`ENDPOINTS`]). Every error is an OpenAI error object (`{"error":
//! {"message", "type", "param", "code"}}`) with the matching HTTP status, unknown paths (404)
//! and methods a route does not take (405, with `Allow`) included; a full queue answers 429,
//! a stopped model thread 503. Shutdown on SIGINT/SIGTERM stops accepting connections, lets requests
//! in flight finish, then returns.

pub mod engine;
pub mod handlers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokenizers::Tokenizer;

use crate::model::{ChatModel, ChatTemplate, ModelConfig};
use crate::openai::wire::{ErrorBody, ErrorDetail};
use engine::{BatchOptions, Job};

/// Everything `serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Hugging Face model folder.
    pub model_dir: PathBuf,
    /// The `model` id clients use; the folder name by default.
    pub served_model_name: Option<String>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Address to bind (127.0.0.1:8000 style); port 0 picks a free port.
    pub addr: SocketAddr,
    /// Bearer token required on `/v1/*` (taken from the environment by the CLI).
    pub api_key: Option<String>,
    /// How the model thread groups queued jobs into shared decode calls.
    pub batch: BatchOptions,
    /// Jobs waiting for the model thread at most; one more is answered 429.
    pub queue_capacity: usize,
    /// Request bodies larger than this are answered 413.
    pub max_body_bytes: usize,
    /// `max_tokens` used when a request gives none (further capped by the context).
    pub default_max_tokens: usize,
}

/// What the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The id `GET /v1/models` lists and requests may name as `model`.
    pub model_name: String,
    /// The folder path as given on the command line, also accepted as `model`.
    pub model_path: String,
    /// The model's tokenizer (`tokenizer.json`), used to count and encode prompts.
    pub tokenizer: Tokenizer,
    /// The chat template from `tokenizer_config.json`; `None` for a base model, whose chat
    /// requests are then refused with a 400 (the Completions API still works).
    pub template: Option<ChatTemplate>,
    /// `max_position_embeddings`: prompt + completion tokens at most.
    pub context_len: usize,
    /// `max_tokens` when a request gives none, further capped by the context left.
    pub default_max_tokens: usize,
    /// Bearer token required on `/v1/*`; `None`: no authentication.
    pub api_key: Option<String>,
    /// The bounded queue into the model thread.
    pub jobs: SyncSender<Job>,
    /// Size of `jobs`, repeated in the 429 message.
    pub queue_capacity: usize,
    /// False once the model thread has stopped.
    pub alive: Arc<AtomicBool>,
    /// Server start time in seconds since the Unix epoch (`created` of the model card).
    pub created: u64,
}

impl AppState {
    /// Queues a job: 429 when the queue is full, 503 when the model thread is gone.
    pub fn submit(&self, job: Job) -> Result<(), ApiError> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                format!(
                    "the server is busy: {} requests are already waiting; retry later",
                    self.queue_capacity
                ),
            )),
            Err(TrySendError::Disconnected(_)) => Err(ApiError::unavailable()),
        }
    }

    /// Whether the model thread still runs (false after it stopped or panicked); `/health`
    /// answers 503 when not.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }
}

/// An OpenAI-shaped error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The HTTP status: 400, 401, 404, 413, 429, 500 or 503.
    pub status: StatusCode,
    /// The OpenAI error object sent as the body.
    pub body: ErrorBody,
}

impl ApiError {
    /// An error with `status`, OpenAI error `type` `kind` (e.g. `invalid_request_error`) and a
    /// message for the client; `param` and `code` unset.
    pub fn new(status: StatusCode, kind: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: ErrorDetail {
                    message: message.into(),
                    kind: Some(kind.into()),
                    param: None,
                    code: None,
                },
            },
        }
    }

    /// A 400 `invalid_request_error` about request field `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message);
        if !param.is_empty() {
            e.body.error.param = Some(param.into());
        }
        e
    }

    /// Sets the error object's machine-readable `code` (e.g. `invalid_api_key`, `not_found`,
    /// `request_too_large`).
    pub fn with_code(mut self, code: &str) -> Self {
        self.body.error.code = Some(code.into());
        self
    }

    /// 503 `server_error`: the model thread has stopped.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model is not available (its worker stopped); try again later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Every endpoint as `(method, path)`, as [`router`] routes them: what the 404 and 405 errors
/// name (a test checks that the router answers each).
pub const ENDPOINTS: [(&str, &str); 4] = [
    ("GET", "/health"),
    ("GET", "/v1/models"),
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/completions"),
];

/// The routes over a shared state (also used by tests in-process). Another path answers 404,
/// another method 405 (with `Allow`), both as OpenAI error objects.
pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/health", get(handlers::health))
        .route("/v1/models", get(handlers::models))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .fallback(handlers::not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// The context length of a model folder (`max_position_embeddings`).
fn context_len(config: &ModelConfig) -> usize {
    let n = config.max_position_embeddings();
    n.max(1) as usize
}

/// Loads the model, binds, prints `listening on http://ADDR` on standard error, serves until
/// SIGINT/SIGTERM, lets requests in flight finish, then returns `Ok`.
pub fn run(opts: ServeOptions) -> anyhow::Result<()> {
    let dir = &opts.model_dir;
    let device = crate::model::parse_device(&opts.device)?;
    let kind = crate::model::default_kind(device);
    let model = ChatModel::load(dir, device, kind)
        .with_context(|| format!("loading the model {}", dir.display()))?;
    let context = context_len(model.lm().config());
    let tokenizer = model.tokenizer().clone();
    let template = ChatTemplate::from_dir(dir)?;
    let name = match &opts.served_model_name {
        Some(n) => n.clone(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                anyhow!("{}: cannot name the model; pass --served-model-name", dir.display())
            })?,
    };
    anyhow::ensure!(opts.queue_capacity >= 1, "--queue-capacity must be at least 1");
    anyhow::ensure!(opts.batch.max_batch >= 1, "--max-batch must be at least 1");

    let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(opts.queue_capacity);
    let alive = Arc::new(AtomicBool::new(true));
    let worker = {
        let alive = alive.clone();
        let batch = opts.batch.clone();
        std::thread::Builder::new()
            .name("model".into())
            .spawn(move || engine::run(model, rx, batch, alive))
            .context("starting the model thread")?
    };
    let state = Arc::new(AppState {
        model_name: name.clone(),
        model_path: dir.display().to_string(),
        tokenizer,
        template,
        context_len: context,
        default_max_tokens: opts.default_max_tokens.max(1),
        api_key: opts.api_key.clone(),
        jobs: tx,
        queue_capacity: opts.queue_capacity,
        alive,
        created: crate::openai::wire::unix_now(),
    });
    let app = router(state, opts.max_body_bytes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.addr)
            .await
            .with_context(|| format!("cannot bind {}", opts.addr))?;
        let local = listener.local_addr()?;
        eprintln!("serving `{name}` on http://{local}/v1 (context {context} tokens)");
        eprintln!("listening on http://{local}");
        axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
        eprintln!("shutting down: requests in flight finished");
        anyhow::Ok(())
    })?;
    // The router (and with it the last job sender) is gone: the model thread ends after
    // the jobs it holds.
    runtime.shutdown_timeout(Duration::from_secs(5));
    worker.join().map_err(|_| anyhow!("the model thread panicked"))?;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
