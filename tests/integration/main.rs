//! Integration tests: one binary, one module per area.

mod plugin_builtin;
mod plugin_hostile;
mod plugin_python;
mod plugin_refusal_eval;
mod plugin_support;
