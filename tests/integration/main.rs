//! Integration tests: one binary, one module per area.

mod data_files;
mod eval_cli;
mod game_train;
mod model_cli;
mod model_errors;
mod model_generation;
mod model_parity;
mod model_support;
mod model_template;
mod plugin_builtin;
mod plugin_cli;
mod plugin_hostile;
mod plugin_python;
mod plugin_refusal_eval;
mod plugin_support;
