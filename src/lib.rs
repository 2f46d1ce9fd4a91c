//! backstop — a reverse-proxy resilience gateway for OpenAI-compatible LLM
//! APIs. [`app`] assembles the stack (and documents its order); [`server`]
//! serves it; `main.rs` only wires configuration and logging to them.

pub mod actions;
pub mod admit;
pub mod app;
pub mod classify;
pub mod config;
pub mod context;
pub mod envelope;
pub mod inspect;
pub mod metrics;
pub mod observe;
pub mod outcome;
pub mod path;
pub mod pattern;
pub mod preflight;
pub mod proxy;
pub mod ratelimit;
pub mod respond;
pub mod retry;

pub mod routing;
pub mod server;
pub mod sse;
pub mod support;
pub mod taxonomy;
pub mod telemetry;
