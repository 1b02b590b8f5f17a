//! Integration tests: one binary, one module per area.
mod model_cli;
mod model_errors;
mod model_generation;
mod model_parity;
mod model_support;
mod model_template;
