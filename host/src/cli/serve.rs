//! `advgame-host serve --model DIR`: an OpenAI-compatible HTTP server for a model folder
//! (see `crate::serve`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::serve::engine::BatchOptions;
use crate::serve::{ServeOptions, run as serve};

/// Arguments of `advgame-host serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Hugging Face model folder (Llama, Mistral, Qwen2 or Qwen3 family).
    #[arg(long)]
    pub model: PathBuf,
    /// The model id clients send (default: the folder's name).
    #[arg(long)]
    pub served_model_name: Option<String>,
    /// Address to listen on. Only this machine by default; use 0.0.0.0 to listen on every
    /// interface (then also set --api-key-env).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0 picks a free one; the address is printed as `listening on http://...`).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Name of an environment variable holding the API key: requests to /v1/* must then
    /// send `Authorization: Bearer KEY`. The key itself is never a command-line argument.
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// cpu, cuda or cuda:N. CUDA runs in bf16, the CPU in f32.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Rows (choices) decoded together at most.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Milliseconds to wait for more requests before a batch starts.
    #[arg(long, default_value_t = 10)]
    pub batch_window_ms: u64,
    /// Requests waiting for the model at most; more are answered 429.
    #[arg(long, default_value_t = 256)]
    pub queue_capacity: usize,
    /// Largest request body in bytes (413 beyond).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// `max_tokens` of requests that give none (capped by the context left).
    #[arg(long, default_value_t = 512)]
    pub default_max_tokens: usize,
}

/// Runs `serve`: loads the model, binds the address, and serves until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let api_key = match &args.api_key_env {
        Some(var) => {
            let key = std::env::var(var)
                .map_err(|_| anyhow::anyhow!("--api-key-env {var}: the variable is not set"))?;
            anyhow::ensure!(!key.is_empty(), "--api-key-env {var}: the variable is empty");
            Some(key)
        }
        None => None,
    };
    // A wrong folder is one line naming it, before the server starts.
    anyhow::Context::context(crate::model::chat::check_loadable(&args.model), "--model")?;
    serve(ServeOptions {
        model_dir: args.model,
        served_model_name: args.served_model_name,
        device: args.device,
        addr: SocketAddr::new(args.host, args.port),
        api_key,
        batch: BatchOptions {
            max_batch: args.max_batch,
            batch_window: Duration::from_millis(args.batch_window_ms),
        },
        queue_capacity: args.queue_capacity,
        max_body_bytes: args.max_body_bytes,
        default_max_tokens: args.default_max_tokens,
    })
}
