//! `advgame-host serve` and the remote generator over real loopback HTTP: answers match the
//! local engine token for token (greedy), streaming gives the same text, errors have
//! OpenAI's shape and status, the queue pushes back with 429, SIGTERM drains, and the
//! client turns 429s, timeouts, malformed bodies and a killed server into counted per-item
//! failures. The official `openai` Python package is checked against the server too.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use advgame_host::llm::{ChatRequest, Generator, SamplingParams};
use advgame_host::model::ChatModel;
use advgame_host::openai::{PrefillMode, RemoteGenerator, RemoteModel};
use serde_json::json;

use crate::model_support::{fixture, smollm2};
use crate::serve_support::{Server, request};

fn greedy(max: usize) -> SamplingParams {
    SamplingParams { max_new_tokens: max, temperature: 0.0, top_p: 1.0, seed: 0, stop: vec![] }
}

fn local(dir: &std::path::Path) -> ChatModel {
    ChatModel::load(dir, tch::Device::Cpu, tch::Kind::Float).unwrap()
}

fn remote(server: &Server, concurrency: usize) -> RemoteModel {
    let mut r = RemoteModel::at(&server.url());
    r.max_concurrency = concurrency;
    // A guard against hangs, not a timing check: generous for a loaded CI box.
    r.timeout_s = 900.0;
    r
}

#[test]
fn chat_answers_match_the_local_engine_and_stream_the_same_text() {
    let dir = smollm2();
    let server = Server::start(&dir, &["--served-model-name", "smol"], &[]);
    let mut model = local(&dir);
    let question = ChatRequest::user("What is the capital of France?");
    let want = model.generate(std::slice::from_ref(&question), &greedy(20)).unwrap().remove(0);
    assert!(want.text.contains("Paris"), "{}", want.text);

    let body = json!({"model": "smol", "max_tokens": 20, "temperature": 0,
        "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let r = server.post("/v1/chat/completions", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "smol");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], want.text.as_str());
    let finish =
        if want.finish == advgame_host::llm::FinishReason::Stop { "stop" } else { "length" };
    assert_eq!(v["choices"][0]["finish_reason"], finish);
    let prompt_len = model.encode(&model.render_prompt(&question).unwrap()).unwrap().len();
    assert_eq!(v["usage"]["prompt_tokens"], prompt_len as u64);
    assert_eq!(v["usage"]["completion_tokens"], want.token_ids.len() as u64);
    assert_eq!(v["usage"]["total_tokens"], (prompt_len + want.token_ids.len()) as u64);

    // Streamed: role first, deltas that add up to the same text, a finish chunk, the usage
    // chunk, then [DONE].
    let mut sbody = body.clone();
    sbody["stream"] = json!(true);
    sbody["stream_options"] = json!({"include_usage": true});
    let r = server.post("/v1/chat/completions", &sbody.to_string());
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.to_ascii_lowercase().contains("text/event-stream"), "{}", r.headers);
    let events = r.events();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let chunks: Vec<serde_json::Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    let text: String = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, want.text);
    assert!(chunks.len() > 3, "the answer came in one piece: {chunks:?}");
    let finishes: Vec<&str> = chunks
        .iter()
        .flat_map(|c| c["choices"].as_array().unwrap().iter())
        .filter_map(|c| c["finish_reason"].as_str())
        .collect();
    assert_eq!(finishes, vec![finish]);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], want.token_ids.len() as u64);

    // n = 3 greedy: three identical choices.
    let mut nbody = body.clone();
    nbody["n"] = json!(3);
    let v = server.post("/v1/chat/completions", &nbody.to_string()).json();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i as u64);
        assert_eq!(c["message"]["content"], want.text.as_str());
    }

    // vLLM's continue_final_message: the answer continues the assistant prefill, exactly as
    // the engine's own prefill does, and holds only the continuation.
    let prefilled = ChatRequest { prefill: Some("The capital of France is".into()), ..question };
    let want = model.generate(std::slice::from_ref(&prefilled), &greedy(8)).unwrap().remove(0);
    let body = json!({"max_tokens": 8, "temperature": 0,
        "continue_final_message": true, "add_generation_prompt": false,
        "messages": [{"role": "user", "content": "What is the capital of France?"},
                     {"role": "assistant", "content": "The capital of France is"}]});
    let v = server.post("/v1/chat/completions", &body.to_string()).json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert_eq!(format!("The capital of France is{content}"), want.text);

    // The same prompt, rendered here, through /v1/completions.
    let prompt = model.render_prompt(&prefilled).unwrap();
    let body = json!({"model": "smol", "prompt": prompt, "max_tokens": 8, "temperature": 0,
        "add_special_tokens": false});
    let v = server.post("/v1/completions", &body.to_string()).json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"].as_str().unwrap(), content);
}

#[test]
fn our_client_gets_what_the_local_engine_gives() {
    let dir = smollm2();
    let server = Server::start(&dir, &[], &[]);
    let mut model = local(&dir);
    let requests = vec![
        ChatRequest::user("Name a colour."),
        ChatRequest {
            system: Some("You grade answers.".into()),
            user: "Is 2+2=4 correct? Answer yes or no.".into(),
            prefill: Some("<score>".into()),
        },
        ChatRequest { prefill: Some("Sure, here".into()), ..ChatRequest::user("Write a haiku.") },
    ];
    let params = SamplingParams { stop: vec!["\n".into()], ..greedy(10) };
    let want: Vec<String> = requests
        .iter()
        .map(|r| model.generate(std::slice::from_ref(r), &params).unwrap().remove(0).text)
        .collect();
    // One request at a time: each is decoded alone, like the local calls.
    let mut client = RemoteGenerator::open(&remote(&server, 1)).unwrap();
    assert_eq!(client.model(), "SmolLM2-135M-Instruct");
    let got: Vec<String> =
        client.generate(&requests, &params).unwrap().into_iter().map(|g| g.text).collect();
    assert_eq!(got, want);
    // The prefill fallback: the template rendered on our side, sent to /v1/completions.
    let mut cfg = remote(&server, 1);
    cfg.prefill = PrefillMode::Completions;
    cfg.tokenizer = Some(dir.clone());
    let mut fallback = RemoteGenerator::open(&cfg).unwrap();
    let got: Vec<String> =
        fallback.generate(&requests, &params).unwrap().into_iter().map(|g| g.text).collect();
    assert_eq!(got, want);
    // Fan-out: 12 requests under a limit of 8 are batched by the server; all succeed.
    let many: Vec<ChatRequest> =
        (0..12).map(|i| ChatRequest::user(format!("Count to {i}."))).collect();
    let mut wide = RemoteGenerator::open(&remote(&server, 8)).unwrap();
    let out = wide.generate_each(&many, &greedy(6));
    assert!(out.iter().all(|r| r.is_ok()), "{out:?}");
    let stats = wide.stats();
    assert_eq!(stats.succeeded.load(Ordering::Relaxed), 12);
    assert_eq!(stats.failed(), 0);
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_stays_up() {
    let server = Server::start(
        &fixture("tiny-qwen2"),
        &["--max-body-bytes", "2000", "--api-key-env", "ADVGAME_TEST_KEY"],
        &[("ADVGAME_TEST_KEY", "sesame")],
    );
    let auth = [("Authorization", "Bearer sesame")];
    let post =
        |body: &str| request(server.addr, "POST", "/v1/chat/completions", &auth, body.as_bytes());
    let msgs = r#""messages":[{"role":"user","content":"hi"}]"#;
    let cases: Vec<(String, u16, &str, &str, &str)> = vec![
        ("{\"messages\": [".into(), 400, "invalid_request_error", "", "invalid_json"),
        ("[1, 2]".into(), 400, "invalid_request_error", "", ""),
        (
            format!("{{\"model\":\"gpt-9\",{msgs}}}"),
            404,
            "invalid_request_error",
            "model",
            "model_not_found",
        ),
        ("{\"messages\":[]}".into(), 400, "invalid_request_error", "messages", ""),
        // A byte-order mark is skipped: the body is read and its real problem named.
        ("\u{feff}{\"messages\":[]}".into(), 400, "invalid_request_error", "messages", ""),
        ("{\"max_tokens\":3}".into(), 400, "invalid_request_error", "messages", ""),
        (
            "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}".into(),
            400,
            "invalid_request_error",
            "messages[0].role",
            "",
        ),
        (
            "{\"messages\":[{\"role\":\"user\"}]}".into(),
            400,
            "invalid_request_error",
            "messages[0].content",
            "",
        ),
        (
            "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}".into(),
            400,
            "invalid_request_error",
            "messages[0].content",
            "",
        ),
        (
            format!("{{\"temperature\":2.5,{msgs}}}"),
            400,
            "invalid_request_error",
            "temperature",
            "",
        ),
        (format!("{{\"top_p\":0,{msgs}}}"), 400, "invalid_request_error", "top_p", ""),
        (format!("{{\"n\":0,{msgs}}}"), 400, "invalid_request_error", "n", ""),
        (format!("{{\"max_tokens\":0,{msgs}}}"), 400, "invalid_request_error", "max_tokens", ""),
        (
            format!("{{\"max_tokens\":5000,{msgs}}}"),
            400,
            "invalid_request_error",
            "max_tokens",
            "context_length_exceeded",
        ),
        (
            format!("{{\"max_completion_tokens\":99999999999,{msgs}}}"),
            400,
            "invalid_request_error",
            "max_completion_tokens",
            "context_length_exceeded",
        ),
        (
            format!("{{\"max_tokens\":\"ten\",{msgs}}}"),
            400,
            "invalid_request_error",
            "max_tokens",
            "",
        ),
        (
            format!("{{\"continue_final_message\":true,\"add_generation_prompt\":true,{msgs}}}"),
            400,
            "invalid_request_error",
            "continue_final_message",
            "",
        ),
        (format!("{{\"stop\":5,{msgs}}}"), 400, "invalid_request_error", "stop", ""),
        (
            format!(
                "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}]}}",
                "x".repeat(5000)
            ),
            413,
            "invalid_request_error",
            "",
            "request_too_large",
        ),
    ];
    for (body, status, kind, param, code) in &cases {
        let r = post(body);
        let (s, k, p, c) = r.error();
        assert_eq!((s, k.as_str(), p.as_str()), (*status, *kind, *param), "{body}: {}", r.body);
        if !code.is_empty() {
            assert_eq!(c, *code, "{body}: {}", r.body);
        }
    }
    // Completions: no prompt, an empty prompt list.
    for body in ["{\"max_tokens\":2}", "{\"prompt\":[]}"] {
        let r = request(server.addr, "POST", "/v1/completions", &auth, body.as_bytes());
        assert_eq!(r.error().2, "prompt", "{}", r.body);
    }
    // Authentication: none, wrong, then right.
    let r = server.post("/v1/chat/completions", &format!("{{{msgs}}}"));
    assert_eq!(
        r.error(),
        (401, "invalid_request_error".into(), String::new(), "invalid_api_key".into())
    );
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(request(server.addr, "GET", "/v1/models", &wrong, b"").status, 401);
    assert_eq!(request(server.addr, "GET", "/v1/nothing", &auth, b"").error().0, 404);
    // Unknown paths and methods a route does not take: OpenAI error objects too, the 405 with
    // the `Allow` header (the method the route takes), with or without the key.
    for (method, path, allow) in [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/completions", "POST"),
        ("DELETE", "/v1/models", "GET,HEAD"),
        ("POST", "/health", "GET,HEAD"),
    ] {
        for headers in [&auth[..], &[]] {
            let r = request(server.addr, method, path, headers, b"");
            let (status, kind, _, code) = r.error();
            assert_eq!(
                (status, kind.as_str(), code.as_str()),
                (405, "invalid_request_error", "method_not_allowed"),
                "{method} {path}: {}",
                r.body
            );
            let message = r.json()["error"]["message"].as_str().unwrap().to_string();
            assert!(
                message.starts_with(&format!("{method} is not allowed on {path}; use ")),
                "{message}"
            );
            let headers = r.headers.to_ascii_lowercase();
            assert!(
                headers.contains(&format!("\r\nallow: {}\r\n", allow.to_ascii_lowercase())),
                "{method} {path}: {}",
                r.headers
            );
            assert!(headers.contains("content-type: application/json"), "{}", r.headers);
        }
    }
    // The endpoint list those errors name is the router's.
    for (method, path) in advgame_host::serve::ENDPOINTS {
        let status = request(server.addr, method, path, &auth, b"{}").status;
        assert!(status != 404 && status != 405, "{method} {path}: {status}");
    }
    for (method, path) in [("GET", "/v1/nothing"), ("POST", "/v1/chat/completions/"), ("GET", "/")]
    {
        let r = request(server.addr, method, path, &auth, b"");
        let (status, kind, _, code) = r.error();
        assert_eq!(
            (status, kind.as_str(), code.as_str()),
            (404, "invalid_request_error", "not_found"),
            "{}",
            r.body
        );
        assert!(r.body.contains("POST /v1/chat/completions"), "lists the endpoints: {}", r.body);
    }
    // Still up, still answering.
    assert_eq!(server.get("/health").status, 200);
    let r = post(&format!("{{\"max_tokens\":3,{msgs}}}"));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["usage"]["completion_tokens"], 3);
    assert!(!server.log.lock().unwrap().contains("panicked"));
}

#[test]
fn a_full_queue_answers_429_and_sigterm_drains_requests_in_flight() {
    let mut server = Server::start(
        &fixture("tiny-qwen2"),
        &["--queue-capacity", "1", "--max-batch", "1", "--batch-window-ms", "0"],
        &[],
    );
    let addr = server.addr;
    let body = json!({"max_tokens": 300, "temperature": 0,
        "messages": [{"role": "user", "content": "go"}]})
    .to_string();
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                request(addr, "POST", "/v1/chat/completions", &[], body.as_bytes())
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = answers.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + busy.len(), answers.len(), "{answers:?}");
    assert!(ok >= 1 && !busy.is_empty(), "{ok} answered, {} turned away", busy.len());
    assert_eq!(busy[0].error().1, "rate_limit_error");

    // SIGTERM while a request is in flight: it is answered, then the process exits 0.
    let inflight = {
        let body = body.clone();
        std::thread::spawn(move || {
            request(addr, "POST", "/v1/chat/completions", &[], body.as_bytes())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    server.terminate();
    let answer = inflight.join().unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert_eq!(server.wait_exit(60), Some(0), "{}", server.log.lock().unwrap());
}

/// A loopback peer that answers every connection with `respond(n)` (n = connection count).
fn fake_server(
    respond: impl Fn(usize) -> Option<String> + Send + 'static,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 65536];
            let _ = stream.read(&mut buf);
            match respond(n) {
                Some(answer) => {
                    let _ = stream.write_all(answer.as_bytes());
                }
                // Never answer (the client's timeout must fire); keep the socket open.
                None => held.push(stream),
            }
        }
    });
    (url, count)
}

fn http(status: &str, extra: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

const GOOD: &str = r#"{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":" 7</score>"},"finish_reason":"stop"}]}"#;

fn client_for(url: &str, retries: u32, timeout: f64) -> RemoteGenerator {
    let mut r = RemoteModel::at(url);
    r.model = Some("m".into());
    r.max_retries = retries;
    r.timeout_s = timeout;
    r.max_concurrency = 4;
    RemoteGenerator::open(&r).unwrap()
}

#[test]
fn the_client_retries_429_and_5xx_then_counts_each_failure_by_kind() {
    // Always 429: every item fails as rate_limited after 2 retries each.
    let (url, hits) = fake_server(|_| {
        Some(http(
            "429 Too Many Requests",
            "Retry-After: 0\r\n",
            r#"{"error":{"message":"slow down","type":"rate_limit_error","param":null,"code":null}}"#,
        ))
    });
    let mut c = client_for(&url, 2, 10.0);
    let reqs = vec![ChatRequest::user("a"), ChatRequest::user("b"), ChatRequest::user("c")];
    let out = c.generate_each(&reqs, &greedy(4));
    assert!(out.iter().all(|r| r.as_ref().unwrap_err().contains("rate_limited")), "{out:?}");
    assert!(out[0].as_ref().unwrap_err().contains("slow down"));
    assert_eq!(hits.load(Ordering::SeqCst), 9);
    assert_eq!(c.stats().failures().get("rate_limited"), Some(&3));
    assert_eq!(c.stats().retries.load(Ordering::Relaxed), 6);
    assert!(c.generate(&reqs, &greedy(4)).unwrap_err().to_string().contains("3 of 3"));

    // 503 twice, then an answer: the item succeeds after 2 retries, with the prefill kept.
    let (url, _) = fake_server(|n| {
        Some(if n < 2 {
            http("503 Service Unavailable", "Retry-After: 0\r\n", "{}")
        } else {
            http("200 OK", "", GOOD)
        })
    });
    let mut c = client_for(&url, 3, 10.0);
    let req = ChatRequest { prefill: Some("<score>".into()), ..ChatRequest::user("grade") };
    let g = c.generate(&[req], &greedy(4)).unwrap().remove(0);
    assert_eq!(g.text, "<score> 7</score>");
    assert_eq!(c.stats().retries.load(Ordering::Relaxed), 2);
    assert_eq!(c.stats().failed(), 0);

    // A 400 is not retried.
    let (url, hits) = fake_server(|_| {
        Some(http(
            "400 Bad Request",
            "",
            r#"{"error":{"message":"no","type":"invalid_request_error","param":null,"code":null}}"#,
        ))
    });
    let mut c = client_for(&url, 3, 10.0);
    let out = c.generate_each(&[ChatRequest::user("a")], &greedy(4));
    assert!(out[0].as_ref().unwrap_err().contains("rejected"), "{out:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn timeouts_and_malformed_bodies_are_per_item_failures() {
    let (url, _) = fake_server(|_| None);
    let mut c = client_for(&url, 3, 0.5);
    let out = c.generate_each(&[ChatRequest::user("a"), ChatRequest::user("b")], &greedy(4));
    assert!(out.iter().all(|r| r.as_ref().unwrap_err().contains("timeout")), "{out:?}");
    assert_eq!(c.stats().failures().get("timeout"), Some(&2));
    assert_eq!(c.stats().retries.load(Ordering::Relaxed), 0);

    // Every other answer is broken: the good ones still come through, in order.
    let (url, _) = fake_server(|n| {
        Some(match n % 3 {
            0 => http("200 OK", "", GOOD),
            1 => http("200 OK", "", "{\"choices\": [oops"),
            _ => http(
                "200 OK",
                "",
                r#"{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[]}"#,
            ),
        })
    });
    // One at a time: the peer sees 6 connections, 2 good answers and 4 broken ones, and
    // which request gets which depends on scheduling.
    let mut r = RemoteModel::at(&url);
    r.model = Some("m".into());
    r.max_retries = 0;
    r.max_concurrency = 1;
    let mut c = RemoteGenerator::open(&r).unwrap();
    let reqs: Vec<ChatRequest> = (0..6).map(|i| ChatRequest::user(format!("{i}"))).collect();
    let out = c.generate_each(&reqs, &greedy(4));
    assert_eq!(out.len(), 6);
    let good: Vec<&String> = out.iter().filter_map(|r| r.as_ref().ok()).map(|g| &g.text).collect();
    assert_eq!(good, vec![" 7</score>", " 7</score>"], "{out:?}");
    let errors: Vec<&String> = out.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(errors.iter().filter(|e| e.contains("no choices")).count(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| e.contains("malformed")), "{errors:?}");
    assert_eq!(c.stats().failures().get("malformed"), Some(&4));
    assert_eq!(c.stats().succeeded.load(Ordering::Relaxed), 2);
}

#[test]
fn a_server_killed_mid_batch_fails_each_item_as_connection() {
    let mut server = Server::start(&fixture("tiny-qwen2"), &[], &[]);
    let mut cfg = remote(&server, 4);
    cfg.max_retries = 1;
    let mut client = RemoteGenerator::open(&cfg).unwrap();
    let pid = server.child.id();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    });
    let reqs: Vec<ChatRequest> = (0..4).map(|i| ChatRequest::user(format!("story {i}"))).collect();
    let out = client.generate_each(&reqs, &greedy(4000));
    killer.join().unwrap();
    assert_eq!(out.len(), 4);
    assert!(out.iter().all(|r| r.as_ref().unwrap_err().contains("connection")), "{out:?}");
    assert_eq!(client.stats().failures().get("connection"), Some(&4));
    assert!(server.wait_exit(10).is_none(), "killed, so no exit code");
}

#[test]
fn the_official_openai_client_works_against_serve() {
    let server = Server::start(&fixture("tiny-qwen2"), &["--served-model-name", "tiny"], &[]);
    let py = std::env::var("ADVGAME_PYTHON").expect("ADVGAME_PYTHON (source scripts/env.sh)");
    let out = std::process::Command::new(py)
        .arg(crate::model_support::repo_root().join("scripts/openai_client_check.py"))
        .arg(server.url())
        .arg("tiny")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seed files and the config of a 2-step game on tiny models whose judge model is the server
/// at `url`; `judge_extra` goes into `[models.judge]`, `share` is the failure policy's
/// `max_step_failure_share`.
fn http_judged_run(d: &std::path::Path, url: &str, judge_extra: &str, share: f64) -> String {
    let line = |cat: &str, i: usize, text: &str| {
        format!("{{\"id\":\"{cat}-{i}\",\"category\":\"{cat}\",\"text\":\"{text}\"}}\n")
    };
    std::fs::write(
        d.join("h.jsonl"),
        line("harmful", 0, "pick a lock") + &line("harmful", 1, "forge a note"),
    )
    .unwrap();
    std::fs::write(
        d.join("b.jsonl"),
        line("benign", 0, "bake bread") + &line("benign", 1, "write a haiku"),
    )
    .unwrap();
    let root = crate::model_support::repo_root();
    let config = format!(
        r#"
[models]
attacker = "{llama}"
defender = "{qwen}"
[models.judge]
url = "{url}"
{judge_extra}
max_concurrency = 4
timeout_s = 60
[data]
harmful = "{d}/h.jsonl"
benign = "{d}/b.jsonl"
harmful_val = "{d}/h.jsonl"
benign_val = "{d}/b.jsonl"
[game]
attacks_per_seed = 2
replies_per_prompt = 2
attacker_max_tokens = 12
defender_max_tokens = 10
judge_max_tokens = 6
temperature = 1.0
top_p = 1.0
faithfulness_gate = false
penalize_truncated_replies = false
attacker_prompt_harmful = "{root}/examples/prompts/attacker_harmful_short.txt"
attacker_prompt_benign = "{root}/examples/prompts/attacker_benign_short.txt"
attacker_prefill = "<think>ok</think> <prompt>"
attacker_stop = ["e", "a"]
[algorithm]
steps = 2
seeds_per_category = 2
seed = 3
[plugins]
dir = "{plugins}"
judge = "llm"
curriculum = "uniform"
[plugins.failure_policy]
max_step_failure_share = {share:?}
[validation]
every = 0
[checkpoint]
every = 0
[output]
dir = "{d}/runs"
name = "http"
"#,
        llama = fixture("tiny-llama3").display(),
        qwen = fixture("tiny-qwen2").display(),
        d = d.display(),
        root = root.display(),
        plugins = crate::plugin_support::plugin_dir().display(),
    );
    std::fs::write(d.join("run.toml"), &config).unwrap();
    config
}

fn train(config: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_advgame-host"));
    cmd.args(["train", "--config"]).arg(config).env("OMP_NUM_THREADS", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A 2-step game whose judge model is served over HTTP by another process (with an API key):
/// judge-model time and request counts are recorded, and the key is nowhere in the run.
#[test]
fn a_two_step_run_is_judged_over_http() {
    let judge = fixture("tiny-qwen2");
    let key = "k3y-that-must-not-leak";
    let server = Server::start(
        &judge,
        &["--api-key-env", "ADVGAME_TEST_JUDGE_KEY"],
        &[("ADVGAME_TEST_JUDGE_KEY", key)],
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    http_judged_run(d, &server.url(), "api_key_env = \"ADVGAME_TEST_JUDGE_KEY\"", 1.0);
    let out = train(&d.join("run.toml"), &[("ADVGAME_TEST_JUDGE_KEY", key)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(key));
    assert!(!server.log.lock().unwrap().contains(key), "the server logged the key");
    let run = d.join("runs/http-001");
    let lines = advgame_host::game::metrics::read_metrics(&run.join("metrics.jsonl")).unwrap();
    let last = &lines.last().unwrap().1;
    assert_eq!(lines.last().unwrap().0, 2);
    assert!(last["time/judge_generation"] > 0.0, "{last:?}");
    assert!(last["judge/remote/requests"] > 0.0, "{last:?}");
    assert_eq!(last["judge/remote/requests"], last["judge/remote/succeeded"], "{last:?}");
    for entry in walk(&run) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(key),
            "the key leaked into {}",
            entry.display()
        );
    }
    assert!(
        std::fs::read_to_string(run.join("config.toml"))
            .unwrap()
            .contains("ADVGAME_TEST_JUDGE_KEY")
    );
}

/// A judge server that answers every request with 503: each judgment is a counted per-item
/// failure (after the configured retry), the run goes on when the failure policy allows it
/// and stops at the first step when it does not, with that step's rollouts kept.
#[test]
fn a_failing_judge_server_is_counted_and_the_failure_policy_decides() {
    let (url, hits) = fake_server(|_| {
        Some(http(
            "503 Service Unavailable",
            "Retry-After: 0\r\n",
            r#"{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}"#,
        ))
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Tolerant policy: both steps run, every judge request failed and was counted.
    http_judged_run(d, &url, "model = \"m\"\nmax_retries = 1", 1.0);
    let out = train(&d.join("run.toml"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let run = d.join("runs/http-001");
    let lines = advgame_host::game::metrics::read_metrics(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let last = &lines.last().unwrap().1;
    let requests = last["judge/remote/requests"];
    assert!(requests > 0.0, "{last:?}");
    assert_eq!(last["judge/remote/failures/server_error"], requests, "{last:?}");
    assert_eq!(last["judge/remote/retries"], requests, "one retry per request: {last:?}");
    assert_eq!(hits.load(Ordering::SeqCst) as f64, 2.0 * requests);
    assert!(last.get("judge/remote/succeeded").is_none_or(|n| *n == 0.0), "{last:?}");

    // Default-like strict policy: the run stops at step 1 naming the policy; the step's
    // rollouts are on disk.
    http_judged_run(d, &url, "model = \"m\"\nmax_retries = 0", 0.5);
    let out = train(&d.join("run.toml"), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run went on: {stderr}");
    assert!(stderr.contains("step 1") && stderr.contains("max_step_failure_share"), "{stderr}");
    let rollouts = std::fs::read_to_string(d.join("runs/http-002/rollouts.jsonl")).unwrap();
    assert!(!rollouts.trim().is_empty(), "the failed step's rollouts were lost");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

/// `judge --judge-url`: the `llm` judge plugin's generations come from a served model; every
/// input line gets a result (scores, or a typed failure when the tiny model breaks format).
#[test]
fn the_judge_command_takes_a_served_judge_model() {
    let server = Server::start(&fixture("tiny-qwen2"), &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let extra = ["--config", "max-tokens=4"];
    let (lines, _) = crate::serve_support::judge_over_http(dir.path(), &server.url(), &extra);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.get("failure").is_some()
            || l.get("score").is_some()
            || l.get("a").is_some())
    );
    // The judge really asked the server: any failure is about the answer, not the transport.
    for l in &lines {
        if let Some(f) = l.get("failure") {
            assert_ne!(f["kind"], "host", "{l}");
        }
    }
}
