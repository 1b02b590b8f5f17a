//! Test fixtures shared by the model's unit tests.

use tch::{Device, Kind};

use crate::model::causal_lm::CausalLm;

/// A 2-layer Llama of random weights (seed 3) with an untied head (so the head has its own
/// gradient), a 257-word vocabulary and, when `attention_bias`, q/k/v biases. The folder
/// holds only its `config.json` and must outlive the model.
pub(crate) fn tiny_llama(attention_bias: bool) -> (tempfile::TempDir, CausalLm) {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
        "vocab_size": 257, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "tie_word_embeddings": false, "max_position_embeddings": 128,
        "attention_bias": attention_bias
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let lm = CausalLm::from_config(dir.path(), Device::Cpu, Kind::Float, 3).unwrap();
    (dir, lm)
}
