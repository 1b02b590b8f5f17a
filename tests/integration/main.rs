//! Integration tests: one binary, one module per area.

mod data_files;
mod eval_cli;
mod game_train;
mod model_cases;
mod model_checkpointing;
mod model_cli;
mod model_errors;
mod model_generation;
mod model_lora;
mod model_parity;
mod model_scoring;
mod model_support;
mod model_template;
mod model_variants;
mod plugin_budget;
mod plugin_builtin;
mod plugin_cli;
mod plugin_hostile;
mod plugin_python;
mod plugin_refusal_eval;
mod plugin_reward_hacking;
mod plugin_support;
mod serve_http;
mod serve_support;
mod serve_thirdparty;
