//! Batched autoregressive decoding over token ids: left-padded prompts, one prefill, then one
//! cached step per new token, with greedy or seeded temperature/top-p sampling.
//!
//! Everything runs under `no_grad`; per step the host sees only the chosen ids and their
//! log-probs (plus, when sampling, the top-p nucleus), never whole vocab rows in a loop.

use anyhow::{Result, bail};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Kind, Tensor};

use crate::llm::FinishReason;
use crate::model::causal_lm::CausalLm;
use crate::model::decoder::positions_from_mask;

/// Decoding settings over token ids (the chat layer maps `SamplingParams` onto this).
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    /// New tokens per row at most, stop token included; a row that reaches it ends with
    /// [`FinishReason::Length`].
    pub max_new_tokens: usize,
    /// 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass in (0, 1]: sample among the most likely tokens whose probabilities
    /// sum to at least `top_p`; 1 disables it. Ignored when greedy.
    pub top_p: f32,
    /// Seed of the one sampling RNG shared by every row of the call: the same seed, prompts and
    /// weights give the same tokens.
    pub seed: u64,
    /// Tokens that end a sequence (kept as its last token).
    pub stop_token_ids: Vec<i64>,
    /// Token fed for padding and for rows that already finished.
    pub pad_token_id: i64,
}

/// One decoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRow {
    /// New tokens, including the stop token that ended the row, if any.
    pub tokens: Vec<i64>,
    /// Log-probability of each token under the model (before temperature/top-p).
    pub logprobs: Vec<f32>,
    /// `Stop` when a stop token ended the row or `stopped` returned true, `Length` when
    /// `max_new_tokens` was reached.
    pub finish: FinishReason,
}

/// Rows that repeat a prompt (a player's D replies to one prompt, the attacker's A rewrites
/// of one seed) share one prefill, as a serving engine's prefix cache shares the prompt's
/// KV blocks between its `n` samples: the prefill, which for short replies to long prompts
/// is most of a rollout's cost, runs on the distinct prompts only. The tokens are those of a
/// prefill of every row, up to floating-point summation order.
struct SharedPrefill {
    /// Row of each distinct prompt's first occurrence, in order: the prefill's batch.
    first: Vec<i64>,
    /// For every row, the index into `first` of its prompt.
    owner: Vec<i64>,
}

impl SharedPrefill {
    /// The sharing plan, or `None` when every prompt is distinct (nothing to share).
    fn of(prompts: &[Vec<i64>]) -> Option<Self> {
        let mut index: std::collections::HashMap<&[i64], i64> = Default::default();
        let mut first = Vec::new();
        let owner = prompts
            .iter()
            .enumerate()
            .map(|(r, prompt)| {
                *index.entry(prompt.as_slice()).or_insert_with(|| {
                    first.push(r as i64);
                    first.len() as i64 - 1
                })
            })
            .collect();
        (first.len() < prompts.len()).then_some(Self { first, owner })
    }
}

/// Decodes continuations of `prompts`. `stopped(row, tokens)` is asked after each new token
/// of a row (e.g. to look for stop strings) and ends that row when it returns true.
///
/// A model with a LoRA adapter decodes on merged weights made for this call and freed when
/// it returns, when the call is large enough ([`CausalLm::sampling`]).
pub fn decode(
    lm: &CausalLm,
    prompts: &[Vec<i64>],
    opts: &DecodeOptions,
    mut stopped: impl FnMut(usize, &[i64]) -> bool,
) -> Result<Vec<DecodedRow>> {
    validate(prompts, opts, lm.spec().vocab_size)?;
    let mut rows: Vec<DecodedRow> = prompts
        .iter()
        .map(|_| DecodedRow {
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: FinishReason::Length,
        })
        .collect();
    if prompts.is_empty() || opts.max_new_tokens == 0 {
        return Ok(rows);
    }
    let device = lm.device();
    let b = prompts.len();
    let p = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = vec![opts.pad_token_id; b * p];
    let mut mask = vec![0i64; b * p];
    for (r, prompt) in prompts.iter().enumerate() {
        let start = r * p + (p - prompt.len());
        ids[start..start + prompt.len()].copy_from_slice(prompt);
        mask[start..start + prompt.len()].iter_mut().for_each(|m| *m = 1);
    }
    let (b64, p64) = (b as i64, p as i64);
    let capacity = p64 + opts.max_new_tokens as i64;
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let shared = SharedPrefill::of(prompts);
    tch::no_grad(|| -> Result<()> {
        let ids_t = Tensor::from_slice(&ids).view([b64, p64]).to_device(device);
        let mask_t = Tensor::from_slice(&mask).view([b64, p64]).to_device(device);
        let key_valid = Tensor::zeros([b64, capacity], (Kind::Bool, device));

        key_valid.narrow(1, 0, p64).copy_(&mask_t.to_kind(Kind::Bool));
        // The call's weights: with a LoRA adapter, a merged copy freed when this call ends.
        let weights = lm.sampling(b64 * capacity);
        let positions = positions_from_mask(&mask_t);
        let mut next_pos = mask_t.sum_dim_intlist(1, true, Kind::Int64);
        let (mut cache, mut logits) = match &shared {
            None => {
                let mut cache = weights.new_cache(b64, capacity);
                let logits =
                    weights.step(&ids_t, &positions, &key_valid.narrow(1, 0, p64), &mut cache);
                (cache, logits)
            }
            Some(s) => {
                // Prefill each distinct prompt once, then give every row its prompt's cache
                // rows and next-token logits.
                let first = Tensor::from_slice(&s.first).to_device(device);
                let owner = Tensor::from_slice(&s.owner).to_device(device);
                let mut cache = weights.new_cache(s.first.len() as i64, capacity);
                let logits = weights.step(
                    &ids_t.index_select(0, &first),
                    &positions.index_select(0, &first),
                    &key_valid.narrow(1, 0, p64).index_select(0, &first),
                    &mut cache,
                );
                cache.select_rows(&owner);
                (cache, logits.index_select(0, &owner))
            }
        };
        // `live[i]` is the original row of batch slot `i`. Finished rows are fed padding
        // until they are a quarter of the batch, then leave it (their cache rows dropped),
        // so a long tail of unfinished rows runs narrow.
        let mut live: Vec<usize> = (0..b).collect();
        let mut done = vec![false; b];
        let mut key_valid = key_valid;
        for step in 0..opts.max_new_tokens {
            let (chosen, logprobs) = pick(&logits, opts, &mut rng)?;
            for (slot, &r) in live.iter().enumerate() {
                if done[r] {
                    continue;
                }
                let row = &mut rows[r];
                row.tokens.push(chosen[slot]);
                row.logprobs.push(logprobs[slot]);
                if opts.stop_token_ids.contains(&chosen[slot]) || stopped(r, &row.tokens) {
                    row.finish = FinishReason::Stop;
                    done[r] = true;
                }
            }
            let n_done = live.iter().filter(|&&r| done[r]).count();
            if n_done == live.len() || step + 1 == opts.max_new_tokens {
                break;
            }
            let mut feed: Vec<i64> = live
                .iter()
                .enumerate()
                .map(|(slot, &r)| if done[r] { opts.pad_token_id } else { chosen[slot] })
                .collect();
            if n_done * 4 >= live.len() {
                let keep: Vec<i64> =
                    (0..live.len()).filter(|&s| !done[live[s]]).map(|s| s as i64).collect();
                let index = Tensor::from_slice(&keep).to_device(device);
                cache.select_rows(&index);
                key_valid = key_valid.index_select(0, &index);
                next_pos = next_pos.index_select(0, &index);
                feed = keep.iter().map(|&s| feed[s as usize]).collect();
                live = keep.iter().map(|&s| live[s as usize]).collect();
            }
            let input = Tensor::from_slice(&feed).view([feed.len() as i64, 1]).to_device(device);
            let filled = cache.len() + 1;
            let _ = key_valid.narrow(1, filled - 1, 1).fill_(1);
            logits = weights.step(&input, &next_pos, &key_valid.narrow(1, 0, filled), &mut cache);
            next_pos += 1;
        }
        Ok(())
    })?;
    Ok(rows)
}

fn validate(prompts: &[Vec<i64>], opts: &DecodeOptions, vocab: i64) -> Result<()> {
    if !(opts.temperature >= 0.0 && opts.temperature.is_finite()) {
        bail!("temperature must be a finite number >= 0, got {}", opts.temperature);
    }
    if opts.temperature > 0.0 && !(opts.top_p > 0.0 && opts.top_p <= 1.0) {
        bail!("top_p must be in (0, 1], got {}", opts.top_p);
    }
    for (i, prompt) in prompts.iter().enumerate() {
        if prompt.is_empty() {
            bail!("prompt {i} is empty: generation needs at least one prompt token");
        }
        if let Some(bad) = prompt.iter().find(|&&t| t < 0 || t >= vocab) {
            bail!("prompt {i}: token id {bad} is outside the vocabulary (size {vocab})");
        }
    }
    if opts.pad_token_id < 0 || opts.pad_token_id >= vocab {
        bail!("pad token id {} is outside the vocabulary (size {vocab})", opts.pad_token_id);
    }
    Ok(())
}

/// Chooses one token per row from `[B, V]` logits; returns the ids and their log-probs
/// under the unmodified model distribution.
fn pick(
    logits: &Tensor,
    opts: &DecodeOptions,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<i64>, Vec<f32>)> {
    let logits = logits.to_kind(Kind::Float);
    let log_probs = logits.log_softmax(-1, Kind::Float);
    let chosen_t = if opts.temperature == 0.0 {
        logits.argmax(-1, false)
    } else {
        let probs = (&logits / f64::from(opts.temperature)).softmax(-1, Kind::Float);
        let (sorted, order) = probs.sort(-1, true);
        // Keep the smallest prefix whose mass reaches top_p (always at least one token).
        let before = sorted.cumsum(-1, Kind::Float) - &sorted;
        let keep = before.lt(f64::from(opts.top_p));
        let counts: Vec<i64> = Vec::try_from(keep.sum_dim_intlist(1, false, Kind::Int64))?;
        let k = counts.iter().copied().max().unwrap_or(1).max(1);
        let probs_k: Vec<f32> = Vec::try_from(sorted.narrow(1, 0, k).contiguous().view(-1))?;
        let ids_k: Vec<i64> = Vec::try_from(order.narrow(1, 0, k).contiguous().view(-1))?;
        let ku = k as usize;
        let mut chosen = Vec::with_capacity(counts.len());
        for (r, &count) in counts.iter().enumerate() {
            let n = (count.max(1) as usize).min(ku);
            let row = &probs_k[r * ku..r * ku + n];
            let total: f32 = row.iter().sum();
            let mut u = rng.random::<f32>() * total;
            let mut pick = n - 1;
            for (j, &p) in row.iter().enumerate() {
                if u < p {
                    pick = j;
                    break;
                }
                u -= p;
            }
            chosen.push(ids_k[r * ku + pick]);
        }
        Tensor::from_slice(&chosen).to_device(logits.device())
    };
    let lp = log_probs.gather(1, &chosen_t.unsqueeze(1), false).squeeze_dim(1);
    let both = Tensor::stack(&[chosen_t.to_kind(Kind::Double), lp.to_kind(Kind::Double)], 0)
        .to_device(tch::Device::Cpu);
    let flat: Vec<f64> = Vec::try_from(both.view(-1))?;
    let b = flat.len() / 2;
    let ids = flat[..b].iter().map(|&x| x as i64).collect();
    let lps = flat[b..].iter().map(|&x| x as f32).collect();
    Ok((ids, lps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::causal_lm::MERGED_FORWARD_MIN_TOKENS;
    use crate::model::lora::{LoraAdapter, LoraConfig, Target};
    use tch::Device;

    fn tiny() -> (tempfile::TempDir, CausalLm) {
        crate::model::testkit::tiny_llama(true)
    }

    /// An adapter whose `A` and `B` are both random (a trained one: `B != 0`).
    fn trained_adapter(lm: &CausalLm, targets: &[&str], seed: i64) -> LoraAdapter {
        let config = LoraConfig {
            r: 4,
            lora_alpha: 8.0,
            target_modules: targets.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        };
        tch::manual_seed(seed);
        LoraAdapter::build(lm.spec(), &config, Device::Cpu, Kind::Float, &mut |_, shape| {
            Ok(Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.2)
        })
        .unwrap()
    }

    fn options(max_new_tokens: usize, temperature: f32) -> DecodeOptions {
        DecodeOptions {
            max_new_tokens,
            temperature,
            top_p: 0.9,
            seed: 5,
            stop_token_ids: Vec::new(),
            pad_token_id: 0,
        }
    }

    fn prompts() -> Vec<Vec<i64>> {
        vec![vec![5, 17, 99, 3, 250], vec![7, 8], vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]]
    }

    /// With `B = 0` every merged projection equals the base's bit for bit, in both layouts,
    /// and the base is left as it was.
    #[test]
    fn merged_weights_of_a_fresh_adapter_equal_the_base() {
        let (_dir, lm) = tiny();
        let config = LoraConfig { r: 4, ..Default::default() };
        let adapter = LoraAdapter::new(lm.spec(), &config, Device::Cpu, Kind::Float, 1).unwrap();
        let vars = lm.base_var_store().variables();
        for l in 0..2 {
            for t in Target::ALL {
                let w = &vars[&format!("model.layers.{l}.{}.weight", t.path())];
                let before = w.copy();
                for transposed in [false, true] {
                    let m = adapter.merged_weight(l, t, w, transposed).unwrap();
                    assert!(m.equal(w), "layer {l} {t:?} transposed {transposed}");
                    assert_ne!(m.data_ptr(), w.data_ptr(), "a new tensor, not the base");
                    assert_eq!(m.is_contiguous(), !transposed);
                    assert!(m.tr().is_contiguous() || !transposed);
                }
                assert!(w.equal(&before), "the base was written");
            }
        }
    }

    /// Decoding on merged weights gives the side paths' tokens and log-probs (f32 rounding
    /// apart), for all projections and for some (the rest from the base's own layout), with
    /// greedy and sampled decoding; merging twice gives the same bits.
    #[test]
    fn merged_decoding_matches_the_side_paths() {
        let (_dir, lm) = tiny();
        for targets in [&Target::ALL.map(Target::module)[..], &["q_proj", "down_proj"]] {
            let mut view = lm.with_adapter(trained_adapter(&lm, targets, 4)).unwrap();
            assert_eq!(view.merged_sampling(), Some(MERGED_FORWARD_MIN_TOKENS));
            for temperature in [0.0, 1.0] {
                let opts = options(12, temperature);
                view.set_merged_sampling(None);
                let side = decode(&view, &prompts(), &opts, |_, _| false).unwrap();
                view.set_merged_sampling(Some(0));
                let merged = decode(&view, &prompts(), &opts, |_, _| false).unwrap();
                let again = decode(&view, &prompts(), &opts, |_, _| false).unwrap();
                assert_eq!(merged, again, "merging is deterministic");
                for (s, m) in side.iter().zip(&merged) {
                    assert_eq!(s.tokens, m.tokens, "{targets:?} T={temperature}");
                    for (a, b) in s.logprobs.iter().zip(&m.logprobs) {
                        assert!((a - b).abs() <= 1e-5, "{targets:?}: log-prob {a} vs {b}");
                    }
                }
                // The adapter changes the model: the base alone decodes differently.
                let base = decode(&lm, &prompts(), &opts, |_, _| false).unwrap();
                assert_ne!(base, merged);
            }
        }
    }

    /// A forward pass without gradients of at least `MERGED_FORWARD_MIN_TOKENS` tokens (a
    /// DPO reference forward) runs on merged weights with the side paths' logits; with
    /// gradients it keeps the side paths (the adapter must get its gradients).
    #[test]
    fn large_no_grad_forward_on_merged_weights_matches_the_side_paths() {
        let (_dir, lm) = tiny();
        let mut view = lm.with_adapter(trained_adapter(&lm, &["q_proj", "up_proj"], 6)).unwrap();
        let t = MERGED_FORWARD_MIN_TOKENS / 2;
        let ids = Tensor::randint(257, [2, t], (Kind::Int64, Device::Cpu));
        let mask = Tensor::ones([2, t], (Kind::Int64, Device::Cpu));
        let _ = mask.get(1).narrow(0, 0, 9).fill_(0);
        let merged = tch::no_grad(|| view.forward(&ids, &mask));
        view.set_merged_sampling(None);
        let side = tch::no_grad(|| view.forward(&ids, &mask));
        view.set_merged_sampling(Some(MERGED_FORWARD_MIN_TOKENS + 1));
        assert!(tch::no_grad(|| view.forward(&ids, &mask)).equal(&side), "below: side paths");
        let diff = (&merged - &side).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "logits differ by {diff}");
        assert!(!merged.equal(&side), "the merged path ran (different rounding)");
        assert_eq!(view.merged_sets_alive(), 0);
        // With gradients: the side paths, so the adapter gets its gradients.
        view.set_merged_sampling(Some(0));
        let with_grad = view.forward(&ids, &mask);
        assert!(with_grad.requires_grad());
        assert!(with_grad.detach().equal(&side), "side paths bit for bit");
    }

    /// The merged copy exists only during a generation call, and only when merging applies.
    #[test]
    fn generation_frees_the_merged_copy() {
        let (_dir, lm) = tiny();
        let mut view = lm.with_adapter(trained_adapter(&lm, &["v_proj"], 2)).unwrap();
        let opts = options(4, 0.0);
        // 3 rows x (11 + 4) positions: below the default threshold, the side paths.
        let rows = decode(&view, &prompts(), &opts, |_, _| view.merged_sets_alive() != 0);
        assert!(rows.unwrap().iter().all(|r| r.tokens.len() == 4));
        view.set_merged_sampling(Some(3 * 15));
        let mut seen = Vec::new();
        decode(&view, &prompts(), &opts, |_, _| {
            seen.push(view.merged_sets_alive());
            false
        })
        .unwrap();
        assert!(!seen.is_empty() && seen.iter().all(|&n| n == 1), "{seen:?}");
        assert_eq!(view.merged_sets_alive(), 0, "freed when the call returned");
        // Merged sampling off, training mode (dropout), or no adapter: no copy.
        view.set_merged_sampling(None);
        let rows = decode(&view, &prompts(), &opts, |_, _| view.merged_sets_alive() != 0);
        assert!(rows.unwrap().iter().all(|r| r.tokens.len() == 4));
        view.set_merged_sampling(Some(0));
        view.adapter_mut().unwrap().set_training(Some(crate::model::DropoutSeed(1)));
        let rows = decode(&view, &prompts(), &opts, |_, _| view.merged_sets_alive() != 0);
        assert!(rows.unwrap().iter().all(|r| r.tokens.len() == 4));
        let rows = decode(&lm, &prompts(), &opts, |_, _| lm.merged_sets_alive() != 0).unwrap();
        assert!(rows.iter().all(|r| r.tokens.len() == 4));
    }
}
