//! Differentiable log-probabilities of completions given prompts, for preference and
//! policy-gradient losses.
//!
//! Batch layout: prompts are left-padded to a common length `P` and completions right-padded
//! to `C`, so completion token `j` of every row sits at column `P + j` and is predicted by
//! column `P - 1 + j`. Only those `C` columns go through the LM head, a few rows at a time
//! ([`LOGIT_CHUNK_ELEMENTS`]), which keeps the `[B, C, vocab]` logits and their backward
//! temporaries (the head's memory cost) small.

use anyhow::{Result, bail};
use tch::{Kind, Tensor};

use crate::model::causal_lm::CausalLm;

/// One completion to score: the token ids of its full prompt (chat template, generation
/// prompt, prefill) and the token ids sampled after it. Both are ids in the model's vocabulary;
/// the prompt must not be empty (the first completion token needs a context), the completion
/// may be (its row is then all padding).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Completion {
    /// Token ids of the prompt, in order.
    pub prompt_ids: Vec<i64>,
    /// Token ids of the completion that followed the prompt, in order.
    pub completion_ids: Vec<i64>,
}

impl Completion {
    /// A completion of `prompt_ids` by `completion_ids`.
    pub fn new(prompt_ids: Vec<i64>, completion_ids: Vec<i64>) -> Self {
        Self { prompt_ids, completion_ids }
    }
}

/// Logits computed at once by [`CausalLm::token_logprobs`]: rows are taken in chunks of
/// `max(1, LOGIT_CHUNK_ELEMENTS / (C x vocab))`, so the f32 `[rows, C, vocab]` temporaries of
/// the head (the logits, `exp(logits - lse)` and the gather's scattered gradient in backward)
/// exist for one chunk at a time: 16M elements is 64 MiB in f32 (8 rows of SmolLM2's
/// 49152-word vocabulary at C = 40), instead of ~4 x 94 MiB for its 12-row DPO micro-batch.
/// With gradients, each chunk's logits are still kept for the log-sum-exp's backward (one
/// f32 `[B, C, vocab]` in all); without (reference models), only one chunk's. Measured by
/// `ADVGAME_MEMORY_PROBE` (BENCHMARKS.md, "Memory plan").
///
/// Why 16M and not less: a batch that fits one chunk is computed exactly as without chunking
/// (one GEMM over all rows), bit for bit; split into chunks, the GEMM shapes and the head's
/// weight-gradient sum over rows change, and so do the last bits (measured on the quickstart
/// at 8M: 15 of 91 step-1 metrics moved, by at most 9.5e-6). The quickstart's micro-batches
/// (at most 8 defender rows of C <= 40, 6 attacker rows of C <= 48: 15.7M elements) fit one
/// chunk, so its metrics stay identical for the same seed.
pub const LOGIT_CHUNK_ELEMENTS: i64 = 16 << 20;

/// Per-token log-probs `[B, C]` of the completion tokens and a 0/1 `mask` `[B, C]` (f32) that
/// marks real (non-padding) completion positions. Padding entries of `logprobs` are 0.
#[derive(Debug)]
pub struct TokenLogprobs {
    /// Log-prob (natural log, f32) of completion token `j` of item `b` at `[b, j]`; 0 on padding.
    pub logprobs: Tensor,
    /// 1.0 where `[b, j]` is a real completion token (`j < completion_ids.len()`), else 0.0.
    pub mask: Tensor,
}

impl CausalLm {
    /// Log-prob of each completion token given its prompt and the completion tokens before it.
    /// Runs with gradients unless the caller wraps it in `tch::no_grad`.
    pub fn token_logprobs(&self, items: &[Completion]) -> Result<TokenLogprobs> {
        let vocab = self.spec().vocab_size;
        for (i, Completion { prompt_ids: prompt, completion_ids: completion }) in
            items.iter().enumerate()
        {
            if prompt.is_empty() {
                bail!("item {i}: the prompt is empty (the first completion token needs a context)");
            }
            if let Some(bad) = prompt.iter().chain(completion).find(|&&t| t < 0 || t >= vocab) {
                bail!("item {i}: token id {bad} is outside the vocabulary (size {vocab})");
            }
        }
        let device = self.device();
        let b = items.len();
        let p = items.iter().map(|x| x.prompt_ids.len()).max().unwrap_or(0);
        let c = items.iter().map(|x| x.completion_ids.len()).max().unwrap_or(0);
        let (b64, c64) = (b as i64, c as i64);
        if b == 0 || c == 0 {
            let zeros = Tensor::zeros([b64, c64], (Kind::Float, device));
            return Ok(TokenLogprobs { logprobs: zeros.shallow_clone(), mask: zeros });
        }
        let width = p + c;
        let mut ids = vec![0i64; b * width];
        let mut mask = vec![0i64; b * width];
        let mut targets = vec![0i64; b * c];
        let mut target_mask = vec![0f32; b * c];
        for (r, Completion { prompt_ids: prompt, completion_ids: completion }) in
            items.iter().enumerate()
        {
            let row = r * width;
            let start = row + p - prompt.len();
            ids[start..row + p].copy_from_slice(prompt);
            ids[row + p..row + p + completion.len()].copy_from_slice(completion);
            mask[start..row + p + completion.len()].iter_mut().for_each(|m| *m = 1);
            targets[r * c..r * c + completion.len()].copy_from_slice(completion);
            target_mask[r * c..r * c + completion.len()].iter_mut().for_each(|m| *m = 1.0);
        }
        let shape = [b64, width as i64];
        let ids = Tensor::from_slice(&ids).view(shape).to_device(device);
        let mask = Tensor::from_slice(&mask).view(shape).to_device(device);
        let targets = Tensor::from_slice(&targets).view([b64, c64]).to_device(device);
        let target_mask = Tensor::from_slice(&target_mask).view([b64, c64]).to_device(device);
        let hidden = self.hidden_states(&ids, &mask).narrow(1, p as i64 - 1, c64);
        let logprobs = self.head_logprobs(&hidden, &targets, LOGIT_CHUNK_ELEMENTS) * &target_mask;
        Ok(TokenLogprobs { logprobs, mask: target_mask })
    }

    /// Log-prob `[B, C]` of `targets` `[B, C]` under the LM head applied to `hidden`
    /// `[B, C, hidden]`: per token, the target's logit minus the log-sum-exp over the
    /// vocabulary (in f32), never a full log-softmax; rows go through the head in chunks of
    /// `max(1, chunk_elements / (C x vocab))` (see [`LOGIT_CHUNK_ELEMENTS`]).
    fn head_logprobs(&self, hidden: &Tensor, targets: &Tensor, chunk_elements: i64) -> Tensor {
        let (b, c) = (hidden.size()[0], hidden.size()[1]);
        let vocab = self.spec().vocab_size;
        let rows = (chunk_elements / (c * vocab).max(1)).clamp(1, b.max(1));
        let mut parts = Vec::with_capacity((b / rows + 1) as usize);
        let mut start = 0;
        while start < b {
            let n = rows.min(b - start);
            let logits = self.logits(&hidden.narrow(0, start, n)).to_kind(Kind::Float);
            let target = targets.narrow(0, start, n).unsqueeze(-1);
            let picked = logits.gather(2, &target, false).squeeze_dim(-1);
            parts.push(picked - logits.logsumexp([-1], false));
            start += n;
        }
        Tensor::cat(&parts, 0)
    }

    /// Sum of completion-token log-probs per item, shape `[B]`, differentiable.
    pub fn sequence_logprobs(&self, items: &[Completion]) -> Result<Tensor> {
        let t = self.token_logprobs(items)?;
        Ok(t.logprobs.sum_dim_intlist(1, false, Kind::Float))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn tiny() -> (tempfile::TempDir, CausalLm) {
        crate::model::testkit::tiny_llama(false)
    }

    /// Chunking the head over rows changes neither the log-probs nor the gradients (of the
    /// hidden states and of the head's weight) against a full `log_softmax` + gather.
    #[test]
    fn chunked_head_equals_full_log_softmax_with_gradients() {
        let (_dir, lm) = tiny();
        let (b, c, v) = (5i64, 7i64, 257i64);
        let opts = (Kind::Float, Device::Cpu);
        tch::manual_seed(11);
        let hidden = Tensor::randn([b, c, 32], opts).set_requires_grad(true);
        let targets = Tensor::randint(v, [b, c], (Kind::Int64, Device::Cpu));
        let weights = Tensor::rand([b, c], opts);
        let head = lm.var_store().variables()["lm_head.weight"].shallow_clone();
        let run = |chunk: Option<i64>, unchunked: bool| -> (Tensor, Tensor, Tensor) {
            let mut h = hidden.grad();
            if h.defined() {
                let _ = h.zero_();
            }
            let mut w = head.grad();
            if w.defined() {
                let _ = w.zero_();
            }
            let lp = match chunk {
                Some(n) => lm.head_logprobs(&hidden, &targets, n),
                // The head before chunking: target logit minus log-sum-exp over all rows.
                None if unchunked => {
                    let logits = lm.logits(&hidden).to_kind(Kind::Float);
                    let picked = logits.gather(2, &targets.unsqueeze(-1), false).squeeze_dim(-1);
                    picked - logits.logsumexp([-1], false)
                }
                None => lm
                    .logits(&hidden)
                    .log_softmax(-1, Kind::Float)
                    .gather(2, &targets.unsqueeze(-1), false)
                    .squeeze_dim(-1),
            };
            (&lp * &weights).sum(Kind::Float).backward();
            (lp.detach(), hidden.grad().copy(), head.grad().copy())
        };
        let full = run(None, false);
        // 2 rows per chunk (chunks of 2, 2, 1), 1 row per chunk, and all rows at once.
        for chunk in [2 * c * v, 1, LOGIT_CHUNK_ELEMENTS] {
            let got = run(Some(chunk), false);
            for (what, a, b) in [
                ("log-probs", &got.0, &full.0),
                ("d hidden", &got.1, &full.1),
                ("d lm_head", &got.2, &full.2),
            ] {
                let diff = (a - b).abs().max().double_value(&[]);
                assert!(diff <= 1e-5, "chunk {chunk}: {what} differ by {diff}");
            }
        }
        assert!(full.2.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        // A batch that fits one chunk is computed bit for bit as without chunking (one GEMM
        // over all rows): why small runs such as the quickstart keep identical metrics.
        let (one, unchunked) = (run(Some(LOGIT_CHUNK_ELEMENTS), false), run(None, true));
        assert!(one.0.equal(&unchunked.0), "one chunk: log-probs differ in their bits");
        assert!(one.1.equal(&unchunked.1), "one chunk: d hidden differs in its bits");
        assert!(one.2.equal(&unchunked.2), "one chunk: d lm_head differs in its bits");
    }
}
