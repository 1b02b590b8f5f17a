//! Activation checkpointing per decoder layer: the gradients of every parameter equal those
//! of the plain backward pass on the tiny fixture models (each family's features: biases,
//! q/k norms, sliding windows, tied and untied heads), with padded batches.

use std::collections::BTreeMap;

use advgame_host::model::{CausalLm, Completion};
use tch::{Device, Kind, Tensor};

use crate::model_support::{fixture, token_ids};

/// Gradients of a weighted sum of completion log-probs, by parameter name.
fn grads(lm: &CausalLm, items: &[Completion]) -> BTreeMap<String, Tensor> {
    for (_, mut t) in lm.var_store().variables() {
        t.zero_grad();
    }
    let t = lm.token_logprobs(items).unwrap();
    let weights = Tensor::arange(t.logprobs.size()[1], (Kind::Float, Device::Cpu)) + 1.0;
    let loss = (t.logprobs * weights).sum(Kind::Float);
    loss.backward();
    if lm.gradient_checkpointing() {
        // The loss's own backward pass stops at the last layer's output: no layer has a
        // gradient until the layer walk.
        let q = lm.var_store().variables()["model.layers.0.self_attn.q_proj.weight"].grad();
        assert!(!q.defined() || q.abs().sum(Kind::Float).double_value(&[]) == 0.0);
    }
    lm.finish_backward();
    lm.var_store().variables().into_iter().map(|(n, t)| (n, t.grad().copy())).collect()
}

#[test]
fn checkpointed_gradients_equal_plain_gradients() {
    for name in ["tiny-llama", "tiny-qwen2", "tiny-qwen3", "tiny-mistral", "tiny-llama3"] {
        let mut lm = CausalLm::load(&fixture(name), Device::Cpu, Kind::Float).unwrap();
        let vocab = lm.spec().vocab_size;
        // Different prompt and completion lengths: left and right padding in one batch.
        let items = vec![
            Completion::new(token_ids(1, 7, vocab), token_ids(2, 5, vocab)),
            Completion::new(token_ids(3, 3, vocab), token_ids(4, 9, vocab)),
            Completion::new(token_ids(5, 12, vocab), token_ids(6, 2, vocab)),
        ];
        let plain = grads(&lm, &items);
        lm.set_gradient_checkpointing(true);
        assert!(lm.gradient_checkpointing());
        let checkpointed = grads(&lm, &items);
        assert_eq!(plain.len(), checkpointed.len());
        for (param, g) in &plain {
            let c = &checkpointed[param];
            assert!(g.defined() && c.defined(), "{name} {param}: no gradient");
            let diff = (g - c).abs().max().double_value(&[]);
            let scale = g.abs().max().double_value(&[]);
            assert!(diff <= 1e-5, "{name} {param}: max |diff| {diff} (max |grad| {scale})");
        }
        // Under no_grad the plain path runs and nothing is kept for a backward pass.
        let reference = tch::no_grad(|| lm.token_logprobs(&items).unwrap());
        assert!(!reference.logprobs.requires_grad());
        lm.finish_backward();
        // A second checkpointed pass accumulates like a plain one (gradient accumulation
        // over micro-batches).
        let t = lm.token_logprobs(&items[..1]).unwrap();
        t.logprobs.sum(Kind::Float).backward();
        lm.finish_backward();
    }
}
