//! The model thread: the one place the served [`ChatModel`] lives. libtorch calls block for
//! seconds, so they never run on a tokio worker; HTTP handlers hand [`Job`]s to this thread
//! through a bounded queue and read [`Event`]s back.
//!
//! Batching: the thread waits for a first job, then keeps collecting for `batch_window`
//! (or until `max_batch` rows are waiting), and decodes the collected rows together. Rows of
//! one `decode` call share temperature, top-p and seed (one sampling RNG per call), so jobs
//! are grouped by those; `max_tokens` and stop strings stay per row (checked in the decode
//! callback), so requests with different lengths still share a batch.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::llm::FinishReason;
use crate::model::ChatModel;
use crate::model::generate::{DecodeOptions, decode};

/// Sampling settings of one job (validated by the handler).
#[derive(Debug, Clone, PartialEq)]
pub struct JobParams {
    /// New tokens per row at most (>= 1).
    pub max_tokens: usize,
    /// 0 = greedy.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]; 1 keeps every token.
    pub top_p: f32,
    /// `None`: a seed is drawn per batch.
    pub seed: Option<u64>,
    /// Stop strings, none empty; a row ends before the first one it generates.
    pub stop: Vec<String>,
    /// Send [`Event::Delta`]s while decoding (streamed responses).
    pub stream: bool,
}

/// One request's rows (one per choice), queued for the model thread.
#[derive(Debug)]
pub struct Job {
    /// Prompt token ids, one entry per choice (`n` copies of a chat prompt, or every
    /// prompt x `n` for the Completions API).
    pub prompts: Vec<Vec<i64>>,
    /// How to sample.
    pub params: JobParams,
    /// Where the model thread sends this job's [`Event`]s; the handler drops the receiver
    /// when the client goes away, and the thread then drops the job before decoding it.
    pub events: UnboundedSender<Event>,
}

/// What the model thread reports about a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// New text of choice `choice` (streamed jobs only). The deltas of a choice, joined,
    /// are a prefix of its final text.
    Delta {
        /// Index of the choice (row of the job), 0-based.
        choice: usize,
        /// Newly decoded text; a tail that could still begin a stop string or be half of a
        /// multi-byte character is held back for the next delta.
        text: String,
    },
    /// Choice `choice` is finished: `rest` is the text not yet sent as deltas (the whole
    /// text for jobs that do not stream).
    Done {
        /// Index of the choice (row of the job), 0-based.
        choice: usize,
        /// Text not yet sent as deltas, stop string excluded.
        rest: String,
        /// `Stop` (EOS or a stop string) or `Length` (`max_tokens` reached).
        finish: FinishReason,
        /// Tokens generated for this choice, for `usage`.
        completion_tokens: usize,
    },
    /// The whole job failed (the message is safe to show to the client).
    Failed(String),
}

/// Batching knobs.
#[derive(Debug, Clone)]
pub struct BatchOptions {
    /// Rows decoded together at most.
    pub max_batch: usize,
    /// How long to wait for more jobs after the first one arrives.
    pub batch_window: Duration,
}

/// Runs until every job sender is dropped; `alive` turns false when the thread stops.
pub fn run(model: ChatModel, jobs: Receiver<Job>, opts: BatchOptions, alive: Arc<AtomicBool>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        let mut rows = batch[0].prompts.len();
        let deadline = Instant::now() + opts.batch_window;
        while rows < opts.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => {
                    rows += job.prompts.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        // Clients that hung up while queued are not decoded.
        batch.retain(|j| !j.events.is_closed());
        for group in group_by_sampling(batch) {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| run_group(&model, &group)));
            let message = match outcome {
                Ok(Ok(())) => continue,
                Ok(Err(err)) => format!("generation failed: {err:#}"),
                Err(_) => "generation failed: the model engine panicked".to_string(),
            };
            tracing::error!("{message}");
            for job in &group {
                let _ = job.events.send(Event::Failed(message.clone()));
            }
        }
    }
    alive.store(false, Ordering::SeqCst);
}

/// Splits jobs into groups that can share one decode call (same temperature, top-p, seed).
fn group_by_sampling(batch: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: BTreeMap<(u32, u32, Option<u64>), Vec<Job>> = BTreeMap::new();
    for job in batch {
        let p = &job.params;
        let top_p = if p.temperature == 0.0 { 1.0 } else { p.top_p };
        groups.entry((p.temperature.to_bits(), top_p.to_bits(), p.seed)).or_default().push(job);
    }
    groups.into_values().collect()
}

/// Per-row bookkeeping during one decode call.
struct RowState {
    job: usize,
    choice: usize,
    /// Text already sent as deltas.
    sent: String,
    /// The row was ended by its own `max_tokens` (reported as `length`).
    capped: bool,
}

fn run_group(model: &ChatModel, group: &[Job]) -> anyhow::Result<()> {
    let mut prompts = Vec::new();
    let mut rows = Vec::new();
    for (j, job) in group.iter().enumerate() {
        for (c, prompt) in job.prompts.iter().enumerate() {
            prompts.push(prompt.clone());
            rows.push(RowState { job: j, choice: c, sent: String::new(), capped: false });
        }
    }
    let params = &group[0].params;
    let seed = params.seed.unwrap_or_else(rand::random);
    let opts = DecodeOptions {
        max_new_tokens: group.iter().map(|j| j.params.max_tokens).max().unwrap_or(1),
        temperature: params.temperature,
        top_p: if params.temperature == 0.0 { 1.0 } else { params.top_p },
        seed,
        stop_token_ids: model.stop_token_ids().to_vec(),
        pad_token_id: model.pad_token_id(),
    };
    let decoded = decode(model.lm(), &prompts, &opts, |r, tokens| {
        let row = &mut rows[r];
        let job = &group[row.job];
        let wants_text = !job.params.stop.is_empty() || job.params.stream;
        if let Some(text) =
            wants_text.then(|| model.decode(strip_stop_token(model, tokens)).ok()).flatten()
        {
            if stop_at(&text, &job.params.stop).is_some() {
                return true;
            }
            if job.params.stream {
                stream_delta(job, row, &text);
            }
        }
        if tokens.len() >= job.params.max_tokens {
            row.capped = true;
            return true;
        }
        false
    })?;
    for (row, out) in rows.iter().zip(decoded) {
        let job = &group[row.job];
        let mut text = model.decode(strip_stop_token(model, &out.tokens))?;
        let mut finish = out.finish;
        if let Some(cut) = stop_at(&text, &job.params.stop) {
            text.truncate(cut);
            finish = FinishReason::Stop;
        } else if row.capped {
            finish = FinishReason::Length;
        }
        let rest = match text.strip_prefix(row.sent.as_str()) {
            Some(rest) => rest.to_string(),
            // Cannot happen for prefix-stable tokenizers; never resend what was sent.
            None => String::new(),
        };
        let _ = job.events.send(Event::Done {
            choice: row.choice,
            rest,
            finish,
            completion_tokens: out.tokens.len(),
        });
    }
    Ok(())
}

/// Sends the part of `text` that is safe to show: a stop string could still start in the
/// last `longest stop - 1` bytes, and a trailing U+FFFD may be half of a multi-byte
/// character.
fn stream_delta(job: &Job, row: &mut RowState, text: &str) {
    let hold = job.params.stop.iter().map(String::len).max().unwrap_or(1).saturating_sub(1);
    let mut end = text.len().saturating_sub(hold);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let safe = text[..end].trim_end_matches('\u{FFFD}');
    if safe.len() > row.sent.len() && safe.starts_with(row.sent.as_str()) {
        let delta = safe[row.sent.len()..].to_string();
        row.sent.push_str(&delta);
        let _ = job.events.send(Event::Delta { choice: row.choice, text: delta });
    }
}

fn strip_stop_token<'a>(model: &ChatModel, tokens: &'a [i64]) -> &'a [i64] {
    match tokens.split_last() {
        Some((last, rest)) if model.stop_token_ids().contains(last) => rest,
        _ => tokens,
    }
}

/// Byte offset of the earliest stop string in `text`.
pub fn stop_at(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_stop_wins() {
        let stops = vec!["b".to_string(), "cd".to_string(), String::new()];
        assert_eq!(stop_at("xxcdb", &stops), Some(2));
        assert_eq!(stop_at("xx", &stops), None);
    }

    #[test]
    fn deltas_hold_back_a_possible_stop_prefix_and_half_characters() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let params = JobParams {
            max_tokens: 4,
            temperature: 0.0,
            top_p: 1.0,
            seed: None,
            stop: vec!["END".into()],
            stream: true,
        };
        let job = Job { prompts: vec![vec![1]], params, events: tx };
        let mut row = RowState { job: 0, choice: 0, sent: String::new(), capped: false };
        stream_delta(&job, &mut row, "hello E");
        stream_delta(&job, &mut row, "hello EN\u{FFFD}");
        assert_eq!(rx.try_recv().unwrap(), Event::Delta { choice: 0, text: "hello".into() });
        assert_eq!(rx.try_recv().unwrap(), Event::Delta { choice: 0, text: " EN".into() });
        assert!(rx.try_recv().is_err());
        assert_eq!(row.sent, "hello EN");
    }

    #[test]
    fn greedy_jobs_share_a_group_whatever_their_top_p() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let job = |top_p: f32, temperature: f32| Job {
            prompts: vec![vec![1]],
            params: JobParams {
                max_tokens: 1,
                temperature,
                top_p,
                seed: None,
                stop: vec![],
                stream: false,
            },
            events: tx.clone(),
        };
        let groups = group_by_sampling(vec![job(0.5, 0.0), job(1.0, 0.0), job(0.5, 1.0)]);
        let mut sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, vec![1, 2]);
    }
}
