//! The padding and alignment contract of `Policy::token_logprobs` (stated in
//! `host/src/game/policy.rs`), checked through the trait on the tiny fixture models: rows in
//! input order, completion-aligned columns, right padding with exact zeros, a mask of real
//! tokens, and rows that equal the same completion scored alone.

use advgame_host::game::policy::Policy;
use advgame_host::model::{ChatModel, Completion};
use tch::{Device, Kind, Tensor};

use crate::model_support::{fixture, token_ids};

/// Row `r` of a `[B, C]` f32 tensor as a vector.
fn row(t: &Tensor, r: i64) -> Vec<f32> {
    Vec::<f32>::try_from(t.get(r).contiguous()).unwrap()
}

#[test]
fn token_logprobs_pads_right_and_aligns_completions() {
    for name in ["tiny-llama", "tiny-qwen2"] {
        let model = ChatModel::load(&fixture(name), Device::Cpu, Kind::Float).unwrap();
        let vocab = model.lm().spec().vocab_size;
        // Prompts and completions of different lengths (left and right padding inside), and
        // one empty completion (an all-padding row).
        let items = vec![
            Completion::new(token_ids(21, 4, vocab), token_ids(22, 6, vocab)),
            Completion::new(token_ids(23, 9, vocab), token_ids(24, 2, vocab)),
            Completion::new(token_ids(25, 1, vocab), Vec::new()),
        ];
        let batch = tch::no_grad(|| Policy::token_logprobs(&model, &items)).unwrap();
        assert_eq!(batch.logprobs.size(), vec![3, 6], "{name}: [B, C], C the longest completion");
        assert_eq!(batch.mask.size(), vec![3, 6]);
        assert_eq!(batch.logprobs.kind(), Kind::Float);
        assert_eq!(batch.mask.kind(), Kind::Float);
        for (r, item) in items.iter().enumerate() {
            let r64 = r as i64;
            let n = item.completion_ids.len();
            let (values, mask) = (row(&batch.logprobs, r64), row(&batch.mask, r64));
            let want_mask: Vec<f32> = (0..6).map(|j| if j < n { 1.0 } else { 0.0 }).collect();
            assert_eq!(mask, want_mask, "{name} row {r}: the mask marks the real tokens");
            assert!(values[n..].iter().all(|&v| v == 0.0), "{name} row {r}: padding is 0.0");
            assert!(values[..n].iter().all(|&v| v < 0.0), "{name} row {r}: real log-probs < 0");
            if n == 0 {
                continue;
            }
            // Scored alone: same values in the same (completion-aligned) columns.
            let alone = tch::no_grad(|| Policy::token_logprobs(&model, &items[r..=r])).unwrap();
            assert_eq!(alone.logprobs.size(), vec![1, n as i64]);
            assert_eq!(row(&alone.mask, 0), vec![1.0; n]);
            for (j, (a, b)) in row(&alone.logprobs, 0).iter().zip(&values).enumerate() {
                assert!((a - b).abs() <= 1e-4, "{name} row {r} token {j}: alone {a}, batched {b}");
            }
        }
        // Row sums of the log-probs are the sequence log-probs the engine reports.
        let sums = tch::no_grad(|| model.sequence_logprobs(&items)).unwrap();
        let masked = (&batch.logprobs * &batch.mask).sum_dim_intlist(1, false, Kind::Float);
        assert!(sums.allclose(&masked, 1e-5, 1e-5, false), "{name}: sums over the mask");
        // A batch of empty completions is [B, 0].
        let empty = vec![Completion::new(vec![1, 2], Vec::new()); 2];
        let none = Policy::token_logprobs(&model, &empty).unwrap();
        assert_eq!((none.logprobs.size(), none.mask.size()), (vec![2, 0], vec![2, 0]));
    }
}
