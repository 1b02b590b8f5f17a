//! Differentiable log-probabilities of completions given prompts, for preference and
//! policy-gradient losses.
//!
//! Batch layout: prompts are left-padded to a common length `P` and completions right-padded
//! to `C`, so completion token `j` of every row sits at column `P + j` and is predicted by
//! column `P - 1 + j`. Only those `C` columns go through the LM head, which keeps the
//! `[B, C, vocab]` logits (the dominant memory cost) as small as possible.

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
        let hidden = self.hidden_states(&ids, &mask);
        let logits = self.logits(&hidden.narrow(1, p as i64 - 1, c64)).to_kind(Kind::Float);
        let picked = logits.gather(2, &targets.unsqueeze(-1), false).squeeze_dim(-1);
        let logprobs = (picked - logits.logsumexp([-1], false)) * &target_mask;
        Ok(TokenLogprobs { logprobs, mask: target_mask })
    }

    /// Sum of completion-token log-probs per item, shape `[B]`, differentiable.
    pub fn sequence_logprobs(&self, items: &[Completion]) -> Result<Tensor> {
        let t = self.token_logprobs(items)?;
        Ok(t.logprobs.sum_dim_intlist(1, false, Kind::Float))
    }
}
