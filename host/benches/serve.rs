//! `advgame-host serve` under load, all in one run: 1 client sending requests one after
//! another (the sequential baseline), then 8 and 32 concurrent clients, each against the
//! same server process. Prints requests/s, completion tokens/s and the ratio to the
//! baseline; with batching, 8 clients should reach at least 3x the tokens/s of one.
//!
//! Run: `source scripts/env.sh && cd host && cargo bench --bench serve` (release; uses
//! `data/models/SmolLM2-135M-Instruct` or `$ADVGAME_DATA/models/...`).
//! `ADVGAME_BENCH_REQUESTS` sets the requests per client level (default 32),
//! `ADVGAME_BENCH_TOKENS` the `max_tokens` of each (default 32).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use advgame_host::openai::wire::{ChatCompletion, ChatCompletionRequest, ChatMessage};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn model_dir() -> PathBuf {
    let data = std::env::var_os("ADVGAME_DATA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("data")
    });
    data.join("models/SmolLM2-135M-Instruct")
}

const TOPICS: [&str; 8] =
    ["rain", "a lighthouse", "bread", "a fox", "winter", "the sea", "a city", "tea"];

/// `total` requests from `clients` concurrent clients; returns (seconds, completion tokens).
async fn run_level(url: &str, clients: usize, total: usize, max_tokens: i64) -> (f64, u64) {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (client, next, url) = (client.clone(), next.clone(), url.to_string());
        tasks.spawn(async move {
            let mut tokens = 0u64;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= total {
                    return tokens;
                }
                let body = ChatCompletionRequest {
                    messages: vec![ChatMessage::new(
                        "user",
                        &format!("Write a short poem about {} (number {i}).", TOPICS[i % 8]),
                    )],
                    max_tokens: Some(max_tokens),
                    temperature: Some(0.0),
                    ..Default::default()
                };
                let resp = client.post(format!("{url}/chat/completions")).json(&body).send().await;
                let answer: ChatCompletion =
                    resp.expect("request").json().await.expect("JSON answer");
                tokens += answer.usage.map(|u| u.completion_tokens).unwrap_or(0);
            }
        });
    }
    let mut tokens = 0;
    while let Some(t) = tasks.join_next().await {
        tokens += t.expect("client task");
    }
    (start.elapsed().as_secs_f64(), tokens)
}

fn main() {
    let total = env_or("ADVGAME_BENCH_REQUESTS", 32);
    let max_tokens = env_or("ADVGAME_BENCH_TOKENS", 32) as i64;
    let dir = model_dir();
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run scripts/setup.sh",
        dir.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_advgame-host"))
        .args(["serve", "--port", "0", "--max-batch", "32", "--model"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting advgame-host serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = tx.send(addr.trim().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(300)).expect("serve did not start");
    let url = format!("http://{addr}/v1");
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "serve SmolLM2-135M-Instruct, {total} chat requests per level, max_tokens {max_tokens}, greedy, OMP_NUM_THREADS={}",
        std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    // Warm-up (first-call allocations), not counted.
    runtime.block_on(run_level(&url, 2, 2, 4));
    let mut base = None;
    println!(
        "{:<26} {:>10} {:>12} {:>14} {:>10}",
        "clients", "seconds", "requests/s", "tokens/s", "vs 1"
    );
    for clients in [1usize, 8, 32] {
        let (secs, tokens) = runtime.block_on(run_level(&url, clients, total, max_tokens));
        let tps = tokens as f64 / secs;
        let ratio = tps / *base.get_or_insert(tps);
        let label = if clients == 1 { "1 (sequential)".to_string() } else { clients.to_string() };
        println!(
            "{label:<26} {secs:>10.2} {:>12.2} {tps:>14.1} {ratio:>9.2}x",
            total as f64 / secs
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
