//! The config.json variants people bring, per family: every layout transformers versions
//! write (legacy `type`, `rope_type`, both; v5 `rope_parameters`), explicit `head_dim`,
//! unset pad ids, missing optional keys, sliding windows. Each variant either gives the
//! logits transformers gives for the same checkpoint (within the parity tolerance) or is
//! refused with a [`LoadError`] that names `config.json` and the field (or, for shapes the
//! config implies, the tensor).

use std::path::Path;

use advgame_host::model::{CausalLm, LoadError};
use serde_json::{Value, json};
use tch::{Device, Kind, Tensor};

use crate::model_support::{clone_dir, fixture, reference, token_ids};

const Q_PROJ: &str = "model.layers.0.self_attn.q_proj.weight";

/// Same tolerance as the parity tests.
const TOLERANCE: f64 = 1e-4;

enum Want {
    /// Our logits must match transformers' on the same checkpoint with this config.json
    /// (`None`: the variant itself; transformers 4.57 reads every v4 layout).
    Logits { reference: Option<fn(&mut Value)>, changes_math: bool },
    /// Loading must fail with a `config.json` field error naming this field.
    Field(&'static str),
    /// Loading must fail with a weights error about this tensor (its shape does not fit).
    Tensor(&'static str),
}

struct Variant {
    name: &'static str,
    edit: fn(&mut Value),
    want: Want,
}

fn same(changes_math: bool) -> Want {
    Want::Logits { reference: None, changes_math }
}

fn remove(c: &mut Value, keys: &[&str]) {
    let obj = c.as_object_mut().unwrap();
    for k in keys {
        obj.remove(*k);
    }
}

/// The variants every family must handle.
fn common_variants() -> Vec<Variant> {
    vec![
        Variant { name: "as saved", edit: |_| {}, want: same(false) },
        Variant {
            name: "rope_scaling with the legacy `type` only",
            edit: |c| c["rope_scaling"] = json!({"type": "linear", "factor": 4.0}),
            want: same(true),
        },
        Variant {
            name: "rope_scaling with `rope_type` only",
            edit: |c| c["rope_scaling"] = json!({"rope_type": "linear", "factor": 4.0}),
            want: same(true),
        },
        Variant {
            name: "rope_scaling with both `type` and `rope_type` (a re-saved legacy config)",
            edit: |c| {
                c["rope_scaling"] = json!({"type": "linear", "rope_type": "linear", "factor": 4.0})
            },
            want: same(true),
        },
        Variant {
            name: "llama3 rope scaling",
            edit: |c| {
                c["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0,
                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": 16})
            },
            want: same(true),
        },
        Variant {
            name: "transformers v5 rope_parameters (base only)",
            edit: |c| {
                remove(c, &["rope_theta", "rope_scaling"]);
                c["rope_parameters"] = json!({"rope_theta": 500000.0, "rope_type": "default"});
                c["transformers_version"] = "5.0.0".into();
            },
            want: Want::Logits {
                reference: Some(|c| {
                    c["rope_theta"] = 500000.0.into();
                    remove(c, &["rope_scaling"]);
                }),
                changes_math: true,
            },
        },
        Variant {
            name: "transformers v5 rope_parameters (base and linear scaling)",
            edit: |c| {
                remove(c, &["rope_theta", "rope_scaling"]);
                c["rope_parameters"] =
                    json!({"rope_theta": 500000.0, "rope_type": "linear", "factor": 2.0});
            },
            want: Want::Logits {
                reference: Some(|c| {
                    c["rope_theta"] = 500000.0.into();
                    c["rope_scaling"] = json!({"rope_type": "linear", "factor": 2.0});
                }),
                changes_math: true,
            },
        },
        Variant {
            name: "pad_token_id -1",
            edit: |c| c["pad_token_id"] = json!(-1),
            want: same(false),
        },
        Variant {
            name: "pad_token_id null",
            edit: |c| c["pad_token_id"] = Value::Null,
            want: same(false),
        },
        Variant {
            name: "eos_token_id as a list",
            edit: |c| c["eos_token_id"] = json!([2, 0, 1]),
            want: same(false),
        },
        Variant {
            name: "optional keys missing (transformers' defaults apply)",
            edit: |c| {
                remove(
                    c,
                    &[
                        "rope_theta",
                        "rope_scaling",
                        "rms_norm_eps",
                        "hidden_act",
                        "max_position_embeddings",
                        "attention_bias",
                        "mlp_bias",
                        "bos_token_id",
                        "eos_token_id",
                        "pad_token_id",
                        "tie_word_embeddings",
                        "use_cache",
                        "initializer_range",
                        "attention_dropout",
                        "dtype",
                        "torch_dtype",
                        "transformers_version",
                        "pretraining_tp",
                    ],
                )
            },
            want: same(true),
        },
        Variant {
            name: "unknown rope type yarn",
            edit: |c| c["rope_scaling"] = json!({"rope_type": "yarn", "factor": 4.0}),
            want: Want::Field("rope_scaling.rope_type"),
        },
        Variant {
            name: "dynamic NTK rope (legacy key)",
            edit: |c| c["rope_scaling"] = json!({"type": "dynamic", "factor": 2.0}),
            want: Want::Field("rope_scaling.rope_type"),
        },
        Variant {
            name: "v5 rope_parameters with an unknown type",
            edit: |c| {
                remove(c, &["rope_theta", "rope_scaling"]);
                c["rope_parameters"] = json!({"rope_theta": 1e6, "rope_type": "longrope"});
            },
            want: Want::Field("rope_parameters.rope_type"),
        },
        Variant {
            name: "`type` and `rope_type` disagree",
            edit: |c| {
                c["rope_scaling"] = json!({"type": "dynamic", "rope_type": "linear", "factor": 2.0})
            },
            want: Want::Field("rope_scaling"),
        },
        Variant {
            name: "v4 and v5 bases disagree",
            edit: |c| {
                c["rope_theta"] = 10000.0.into();
                c["rope_parameters"] = json!({"rope_theta": 1e6});
            },
            want: Want::Field("rope_parameters.rope_theta"),
        },
        Variant {
            name: "linear scaling without factor",
            edit: |c| c["rope_scaling"] = json!({"rope_type": "linear"}),
            want: Want::Field("rope_scaling.factor"),
        },
        Variant {
            name: "another activation",
            edit: |c| c["hidden_act"] = "gelu".into(),
            want: Want::Field("hidden_act"),
        },
        Variant {
            name: "pad_token_id outside the vocabulary",
            edit: |c| c["pad_token_id"] = json!(10_000_000),
            want: Want::Field("pad_token_id"),
        },
        Variant {
            name: "a field of the wrong type",
            edit: |c| c["num_hidden_layers"] = "2".into(),
            want: Want::Field("num_hidden_layers"),
        },
        Variant {
            name: "quantized checkpoint",
            edit: |c| c["quantization_config"] = json!({"quant_method": "gptq", "bits": 4}),
            want: Want::Field("quantization_config"),
        },
        Variant {
            name: "head_dim that does not fit the weights",
            edit: |c| c["head_dim"] = json!(64),
            want: Want::Tensor(Q_PROJ),
        },
    ]
}

fn qwen_window_variants() -> Vec<Variant> {
    vec![
        Variant {
            name: "use_sliding_window on the upper layers (max_window_layers)",
            edit: |c| {
                remove(c, &["layer_types"]);
                c["use_sliding_window"] = true.into();
                c["sliding_window"] = 6.into();
                c["max_window_layers"] = 1.into();
            },
            want: same(true),
        },
        Variant {
            name: "use_sliding_window with explicit layer_types",
            edit: |c| {
                c["use_sliding_window"] = true.into();
                c["sliding_window"] = 5.into();
                c["layer_types"] = json!(["sliding_attention", "full_attention"]);
            },
            want: same(true),
        },
        Variant {
            name: "sliding window configured but off",
            edit: |c| {
                remove(c, &["layer_types"]);
                c["use_sliding_window"] = false.into();
                c["sliding_window"] = 4.into();
                c["max_window_layers"] = 0.into();
            },
            want: same(false),
        },
        Variant {
            name: "layer_types of an unknown kind",
            edit: |c| c["layer_types"] = json!(["chunked_attention", "full_attention"]),
            want: Want::Field("layer_types[0]"),
        },
    ]
}

/// A batch of two 24-token rows, the second left-padded by 5.
fn batch(vocab: i64) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let len = 24;
    let full = token_ids(21, len, vocab);
    let mut short = token_ids(22, len - 5, vocab);
    short.splice(0..0, std::iter::repeat_n(0, 5));
    let mask_short: Vec<i64> = (0..len).map(|i| i64::from(i >= 5)).collect();
    (vec![full, short], vec![vec![1; len], mask_short])
}

fn rows_tensor(rows: &[Vec<i64>]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1])
}

fn edited(src: &Path, edit: impl FnOnce(&mut Value)) -> tempfile::TempDir {
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    edit(&mut config);
    let dir = clone_dir(src, &["config.json"]);
    std::fs::write(dir.path().join("config.json"), serde_json::to_vec_pretty(&config).unwrap())
        .unwrap();
    dir
}

fn max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f64 {
    let valid = mask.to_kind(Kind::Float).unsqueeze(-1);
    ((a - b).abs() * valid).max().double_value(&[])
}

/// Runs every variant on `base`; one transformers process computes all the references.
fn check_family(base: &Path, variants: Vec<Variant>) {
    let vocab = CausalLm::load(base, Device::Cpu, Kind::Float).unwrap().spec().vocab_size;
    let (ids, mask) = batch(vocab);
    let (ids_t, mask_t) = (rows_tensor(&ids), rows_tensor(&mask));
    let mut failures = Vec::new();
    let mut keep = Vec::new(); // temp dirs alive until the reference ran
    let mut compare = Vec::new(); // (variant, our logits, index of reference dir)
    let baseline_dir = edited(base, |_| {});
    let mut reference_dirs = vec![baseline_dir.path().to_path_buf()];
    for v in &variants {
        let ours_dir = edited(base, v.edit);
        let loaded = CausalLm::load(ours_dir.path(), Device::Cpu, Kind::Float);
        let config_path = ours_dir.path().join("config.json");
        match (&v.want, loaded) {
            (Want::Field(want) | Want::Tensor(want), Ok(_)) => {
                failures.push(format!("{}: loaded, but should be refused ({want})", v.name))
            }
            (Want::Field(want), Err(e)) => match LoadError::of(&e) {
                Some(LoadError::Field { path, error })
                    if *path == config_path && error.field == *want => {}
                _ => failures.push(format!("{}: wanted field `{want}`, got {e:#}", v.name)),
            },
            (Want::Tensor(want), Err(e)) => match LoadError::of(&e) {
                Some(LoadError::Weights { tensor: Some(t), .. }) if t == want => {}
                _ => failures.push(format!("{}: wanted tensor `{want}`, got {e:#}", v.name)),
            },
            (Want::Logits { .. }, Err(e)) => failures.push(format!("{}: refused: {e:#}", v.name)),
            (Want::Logits { reference, changes_math }, Ok(lm)) => {
                let logits = tch::no_grad(|| lm.forward(&ids_t, &mask_t));
                let ref_dir = match reference {
                    None => edited(base, v.edit),
                    Some(r) => edited(base, |c| {
                        (v.edit)(c);
                        remove(c, &["rope_parameters"]);
                        r(c);
                    }),
                };
                reference_dirs.push(ref_dir.path().to_path_buf());
                compare.push((v.name, *changes_math, logits, reference_dirs.len() - 1));
                keep.push(ref_dir);
            }
        }
        keep.push(ours_dir);
    }
    let work = tempfile::tempdir().unwrap();
    let input = json!({"input_ids": ids, "attention_mask": mask, "models": reference_dirs});
    let out = reference(work.path(), "logits", base, &input, &[]);
    let theirs: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&out).unwrap().into_iter().collect();
    let baseline = &theirs["logits.0"];
    for (name, changes_math, ours, i) in compare {
        let want = &theirs[&format!("logits.{i}")];
        let diff = max_diff(&ours, want, &mask_t);
        if diff.is_nan() || diff > TOLERANCE {
            failures.push(format!("{name}: max |logit diff| vs transformers = {diff:e}"));
        }
        let moved = max_diff(want, baseline, &mask_t);
        if changes_math && (moved.is_nan() || moved <= 1e-3) {
            failures.push(format!("{name}: the variant does not change transformers' logits"));
        }
    }
    assert!(failures.is_empty(), "{}:\n{}", base.display(), failures.join("\n"));
}

#[test]
fn llama_config_variants() {
    check_family(&fixture("tiny-llama-head-dim"), common_variants());
}

#[test]
fn qwen2_config_variants() {
    let mut variants = common_variants();
    variants.push(Variant {
        name: "explicit head_dim equal to hidden_size / num_attention_heads",
        edit: |c| c["head_dim"] = 16.into(),
        want: same(false),
    });
    variants.extend(qwen_window_variants());
    check_family(&fixture("tiny-qwen2"), variants);
}

#[test]
fn qwen3_config_variants() {
    let mut variants = common_variants();
    variants.push(Variant {
        name: "head_dim missing: Qwen3's default is 128, not hidden/heads",
        edit: |c| remove(c, &["head_dim"]),
        want: Want::Tensor(Q_PROJ),
    });
    variants.extend(qwen_window_variants());
    check_family(&fixture("tiny-qwen3"), variants);
}

#[test]
fn mistral_config_variants() {
    let mut variants = common_variants();
    variants.extend([
        Variant {
            name: "sliding_window null (Mistral v0.2+)",
            edit: |c| c["sliding_window"] = Value::Null,
            want: same(true),
        },
        Variant {
            name: "a smaller sliding window",
            edit: |c| c["sliding_window"] = 3.into(),
            want: same(true),
        },
        Variant {
            name: "explicit head_dim equal to hidden_size / num_attention_heads",
            edit: |c| c["head_dim"] = 16.into(),
            want: same(false),
        },
    ]);
    check_family(&fixture("tiny-mistral"), variants);
}
