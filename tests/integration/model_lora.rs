//! LoRA adapters against the `peft` library: same logits for the same adapter, PEFT files both
//! ways, the merged export in transformers, and gradients that reach only the adapter.

use std::path::Path;
use std::process::Command;

use advgame_host::model::lora::{LoraAdapter, LoraConfig, Target};
use advgame_host::model::{CausalLm, ChatModel, Completion};
use tch::{Device, Kind, Tensor};

use crate::model_support::{fixture, reference_logits, repo_root, token_ids};

/// Runs `scripts/peft_reference.py` with `args`.
fn peft(args: &[&str]) {
    let py =
        std::env::var_os("ADVGAME_PYTHON").map(std::path::PathBuf::from).unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/advgame/torch-2.11.0/bin/python")
        });
    let status = Command::new(py)
        .arg(repo_root().join("scripts/peft_reference.py"))
        .args(args)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .status()
        .expect("cannot start peft_reference.py (run scripts/setup.sh)");
    assert!(status.success(), "peft_reference.py {args:?} failed ({status})");
}

/// Two rows, the second left-padded by 4.
fn batch(vocab: i64) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let len = 16;
    let mut short = token_ids(22, len - 4, vocab);
    short.splice(0..0, std::iter::repeat_n(0, 4));
    let mask_short: Vec<i64> = (0..len).map(|i| i64::from(i >= 4)).collect();
    (vec![token_ids(21, len, vocab), short], vec![vec![1; len], mask_short])
}

fn tensor(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1])
}

fn ours(lm: &CausalLm, ids: &[Vec<i64>], mask: &[Vec<i64>]) -> Tensor {
    tch::no_grad(|| lm.forward(&tensor(ids), &tensor(mask)))
}

/// Max |a - b| over the unpadded positions.
fn diff(a: &Tensor, b: &Tensor, mask: &[Vec<i64>]) -> f64 {
    assert_eq!(a.size(), b.size());
    let valid = tensor(mask).to_kind(Kind::Float).unsqueeze(-1);
    ((a - b).abs() * valid).max().double_value(&[])
}

fn peft_logits(base: &Path, adapter: &Path, ids: &[Vec<i64>], mask: &[Vec<i64>]) -> Tensor {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("in.json");
    let out = work.path().join("logits.safetensors");
    let req = serde_json::json!({"input_ids": ids, "attention_mask": mask});
    std::fs::write(&input, serde_json::to_vec(&req).unwrap()).unwrap();
    let (b, a, i, o) = (base.to_str(), adapter.to_str(), input.to_str(), out.to_str());
    peft(
        &["logits", "--model", b.unwrap(), "--adapter", a.unwrap(), "--input", i.unwrap()]
            .into_iter()
            .chain(["--out", o.unwrap()])
            .collect::<Vec<_>>(),
    );
    let tensors = Tensor::read_safetensors(&out).unwrap();
    tensors.into_iter().find(|(n, _)| n == "logits").unwrap().1
}

/// An adapter with every matrix random (B too, unlike PEFT's zero init), so it moves logits.
fn random_adapter(lm: &CausalLm, config: &LoraConfig, seed: i64) -> LoraAdapter {
    let _rng = crate::model_support::torch_global_rng();
    tch::manual_seed(seed);
    LoraAdapter::build(lm.spec(), config, Device::Cpu, Kind::Float, &mut |_, shape| {
        Ok(Tensor::randn(shape, (Kind::Float, Device::Cpu)) * 0.1)
    })
    .unwrap()
}

fn check_logits_match_peft(name: &str, config: &LoraConfig) {
    let dir = fixture(name);
    let base = CausalLm::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let lm = base.with_adapter(random_adapter(&base, config, 3)).unwrap();
    let saved = tempfile::tempdir().unwrap();
    lm.save_pretrained(saved.path()).unwrap();
    let (ids, mask) = batch(base.spec().vocab_size);
    let (with, without) = (ours(&lm, &ids, &mask), ours(&base, &ids, &mask));
    assert!(diff(&with, &without, &mask) > 1e-2, "{name}: the adapter does not move the logits");
    let d = diff(&with, &peft_logits(&dir, saved.path(), &ids, &mask), &mask);
    assert!(d <= 1e-5, "{name}: max |logit diff| vs peft = {d:e} > 1e-5");
}

#[test]
fn lora_logits_match_peft_all_projections() {
    let config = LoraConfig { r: 4, lora_alpha: 16.0, ..Default::default() };
    check_logits_match_peft("tiny-qwen2", &config);
}

#[test]
fn lora_logits_match_peft_some_projections_rslora() {
    let config = LoraConfig {
        r: 2,
        lora_alpha: 3.0,
        target_modules: vec!["v_proj".into(), "down_proj".into(), "q_proj".into()],
        use_rslora: true,
        ..Default::default()
    };
    check_logits_match_peft("tiny-llama", &config);
}

#[test]
fn peft_saved_adapter_loads_and_round_trips() {
    let dir = fixture("tiny-qwen3");
    let from_peft = tempfile::tempdir().unwrap();
    let (b, o) = (dir.to_str().unwrap(), from_peft.path().to_str().unwrap());
    peft(&["random-adapter", "--model", b, "--out", o, "--seed", "5", "--r", "3"]);
    let base = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let player = base.load_adapter(from_peft.path(), None).unwrap();
    assert_eq!(player.lm().adapter().unwrap().config().r, 3);
    let (ids, mask) = batch(base.lm().spec().vocab_size);
    let theirs = peft_logits(&dir, from_peft.path(), &ids, &mask);
    let d = diff(&ours(player.lm(), &ids, &mask), &theirs, &mask);
    assert!(d <= 1e-5, "peft-saved adapter: max |logit diff| = {d:e}");
    // Saved again by us, peft still reads the same model.
    let again = tempfile::tempdir().unwrap();
    player.save_pretrained(again.path()).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(again.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["adapter_config.json", "adapter_model.safetensors"]);
    let keys: Vec<String> =
        Tensor::read_safetensors(again.path().join("adapter_model.safetensors"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
    assert!(keys.contains(&"base_model.model.model.layers.1.mlp.down_proj.lora_B.weight".into()));
    let d = diff(&theirs, &peft_logits(&dir, again.path(), &ids, &mask), &mask);
    assert!(d <= 1e-6, "round trip: max |logit diff| = {d:e}");
}

#[test]
fn merged_export_loads_in_transformers_with_the_adapter_logits() {
    let dir = fixture("tiny-qwen2");
    let base = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let config = LoraConfig { r: 4, lora_alpha: 8.0, ..Default::default() };
    let player = base.with_adapter(random_adapter(base.lm(), &config, 9)).unwrap();
    let adapter_dir = tempfile::tempdir().unwrap();
    player.save_pretrained(adapter_dir.path()).unwrap();
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_advgame-host"))
        .args(["export", "--adapter"])
        .arg(adapter_dir.path())
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "export failed");
    assert!(out.path().join("tokenizer.json").is_file());
    let (ids, mask) = batch(base.lm().spec().vocab_size);
    let work = tempfile::tempdir().unwrap();
    let merged = reference_logits(work.path(), out.path(), &ids, &mask);
    let d = diff(&ours(player.lm(), &ids, &mask), &merged, &mask);
    assert!(d <= 1e-5, "merged export vs adapter: max |logit diff| = {d:e}");
    // An adapter folder loads as a model (AutoPeftModel): base from the adapter's config.
    let auto = ChatModel::load(adapter_dir.path(), Device::Cpu, Kind::Float).unwrap();
    assert!(auto.lm().adapter().is_some());
    let d = diff(&ours(player.lm(), &ids, &mask), &ours(auto.lm(), &ids, &mask), &mask);
    assert_eq!(d, 0.0, "adapter folder loaded as a model differs");
}

#[test]
fn gradients_reach_only_the_adapter_and_views_share_the_base() {
    let dir = fixture("tiny-llama");
    let base = ChatModel::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let config = LoraConfig { r: 2, ..Default::default() };
    let spec = base.lm().spec().clone();
    let fresh = |seed| LoraAdapter::new(&spec, &config, Device::Cpu, Kind::Float, seed).unwrap();
    let attacker = base.with_adapter(fresh(1)).unwrap();
    let defender = base.with_adapter(fresh(2)).unwrap();
    let ema = attacker.adapter_copy(Kind::Float).unwrap();
    let reference = attacker.without_adapter().unwrap();
    for view in [&defender, &ema, &reference] {
        assert!(view.lm().shares_base_with(attacker.lm()));
    }
    // The base is not copied: every view's projections read the same storage.
    let name = "model.layers.0.self_attn.q_proj.weight";
    let ptr = base.lm().base_var_store().variables()[name].data_ptr();
    assert_eq!(defender.lm().base_var_store().variables()[name].data_ptr(), ptr);
    // The trainable store of a player is its adapter alone.
    let vars = attacker.lm().var_store().variables();
    assert_eq!(vars.len(), spec.num_layers as usize * 7 * 2);
    assert!(vars.keys().all(|k| k.contains(".lora_A.") || k.contains(".lora_B.")));
    // A fresh adapter (B = 0) is the base model.
    let vocab = spec.vocab_size;
    let items = vec![Completion::new(token_ids(1, 6, vocab), token_ids(2, 4, vocab))];
    let sum = |m: &ChatModel| m.sequence_logprobs(&items).unwrap();
    let (a, r) = (sum(&attacker), tch::no_grad(|| sum(&reference)));
    assert!((a.double_value(&[0]) - r.double_value(&[0])).abs() < 1e-6);
    a.sum(Kind::Float).backward();
    for (name, t) in base.lm().base_var_store().variables() {
        assert!(!t.requires_grad(), "{name} is trainable");
        assert!(!t.grad().defined(), "{name} got a gradient");
    }
    for (name, t) in &vars {
        assert!(t.grad().defined(), "{name} got no gradient");
    }
    // With B = 0 only B's gradients are non-zero (dL/dA = B^T ...), as in PEFT.
    let b_grad = &vars["model.layers.1.mlp.down_proj.lora_B.weight"].grad();
    assert!(b_grad.abs().sum(Kind::Float).double_value(&[]) > 0.0);
    for (name, t) in defender.lm().var_store().variables() {
        assert!(!t.grad().defined(), "the other player's {name} got a gradient");
    }
    let _ = Target::ALL;
}

#[test]
fn bf16_base_with_f32_adapter_matches_peft_dtype_rules() {
    // PEFT casts the input to the adapter's dtype and the sum back to the base layer's: an f32
    // EMA adapter on a bf16 base gives bf16 outputs close to the f32 model's.
    let dir = fixture("tiny-llama");
    let base32 = CausalLm::load(&dir, Device::Cpu, Kind::Float).unwrap();
    let base16 = CausalLm::load(&dir, Device::Cpu, Kind::BFloat16).unwrap();
    let config = LoraConfig { r: 4, ..Default::default() };
    let adapter = random_adapter(&base32, &config, 4);
    let f32_copy = adapter.try_clone(Kind::Float).unwrap();
    let lm32 = base32.with_adapter(adapter).unwrap();
    let lm16 = base16.with_adapter(f32_copy).unwrap();
    assert_eq!(lm16.adapter().unwrap().kind(), Kind::Float);
    let (ids, mask) = batch(base32.spec().vocab_size);
    let (a, b) = (ours(&lm32, &ids, &mask), ours(&lm16, &ids, &mask));
    assert_eq!(b.kind(), Kind::BFloat16);
    let with = diff(&a, &b.to_kind(Kind::Float), &mask);
    // The adapter adds no more than bf16's own rounding of the base model.
    let (a, b) = (ours(&base32, &ids, &mask), ours(&base16, &ids, &mask));
    let without = diff(&a, &b.to_kind(Kind::Float), &mask);
    assert!(
        with <= 2.0 * without + 0.05,
        "bf16 base + f32 adapter drifts {with} (base alone {without})"
    );
}
