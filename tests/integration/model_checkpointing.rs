//! Activation checkpointing per decoder layer: the gradients of every parameter equal those
//! of the plain backward pass on the tiny fixture models (each family's features: biases,
//! q/k norms, sliding windows, tied and untied heads), with padded batches.

use std::collections::BTreeMap;

use advgame_host::model::{CausalLm, Completion, DropoutSeed, LoraAdapter, LoraConfig};
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
        let vars = lm.var_store().variables();
        let layer0 = vars.iter().find(|(n, _)| n.starts_with("model.layers.0.self_attn.q_proj."));
        let q = layer0.expect("a layer-0 q_proj parameter").1.grad();
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

/// A LoRA adapter whose every matrix is non-zero (B too), from a fixed formula rather than a
/// random generator, so the test draws nothing from any global state.
fn patterned_adapter(lm: &CausalLm, config: &LoraConfig) -> LoraAdapter {
    LoraAdapter::build(lm.spec(), config, Device::Cpu, Kind::Float, &mut |name, shape| {
        let n = shape.iter().product::<i64>();
        let phase = name.len() as f64;
        let t = Tensor::arange(n, (Kind::Float, Device::Cpu));
        Ok(((t * 0.37 + phase).sin() * 0.1).view(shape))
    })
    .unwrap()
}

/// With adapter dropout on, the layer walk must recompute each layer with the masks its
/// forward pass used (as `torch.utils.checkpoint` restores the RNG state): the gradients
/// equal the plain backward pass's. (With masks from libtorch's global generator the
/// recomputation drew new ones: max |diff| 9.0 on a lora_A gradient.)
#[test]
fn checkpointed_lora_gradients_with_dropout_equal_plain_gradients() {
    let base = CausalLm::load(&fixture("tiny-llama"), Device::Cpu, Kind::Float).unwrap();
    let vocab = base.spec().vocab_size;
    let items = vec![
        Completion::new(token_ids(1, 7, vocab), token_ids(2, 5, vocab)),
        Completion::new(token_ids(3, 3, vocab), token_ids(4, 9, vocab)),
    ];
    let config = LoraConfig { r: 4, lora_dropout: 0.3, ..Default::default() };
    let mut lm = base.with_adapter(patterned_adapter(&base, &config)).unwrap();
    let eval = grads(&lm, &items);
    // One training phase per backward pass, same seed: the passes use the same key.
    let phase = |lm: &mut CausalLm, seed| {
        lm.adapter_mut().unwrap().set_training(Some(DropoutSeed(seed)));
        grads(lm, &items)
    };
    let plain = phase(&mut lm, 1);
    let other_seed = phase(&mut lm, 2);
    lm.set_gradient_checkpointing(true);
    let checkpointed = phase(&mut lm, 1);
    let q = "model.layers.0.self_attn.q_proj.lora_B.weight";
    let moved = |a: &BTreeMap<String, Tensor>| (&plain[q] - &a[q]).abs().max().double_value(&[]);
    assert!(moved(&eval) > 1e-4, "dropout did not change the gradients");
    assert!(moved(&other_seed) > 1e-4, "another seed drew the same masks");
    for (param, g) in &plain {
        let diff = (g - &checkpointed[param]).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{param}: max |diff| {diff}");
    }
}
