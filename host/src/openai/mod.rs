//! The OpenAI HTTP API, both ways.
//!
//! - [`wire`]: the request/response JSON types, shared by the server (`crate::serve`) and
//!   the client, so the two sides cannot drift apart.
//! - [`remote`]: [`RemoteGenerator`], a [`crate::llm::Generator`] that sends each chat
//!   request to an OpenAI-compatible server (ours, vLLM, `transformers serve`, ...), and
//!   [`ModelRef`], the run-config value naming a model folder or such a server.

pub mod remote;
pub mod wire;

pub use remote::{ModelRef, PrefillMode, RemoteFailure, RemoteGenerator, RemoteModel, RemoteStats};
