//! backstop — a reverse-proxy resilience gateway for OpenAI-compatible LLM
//! APIs. [`app`] assembles the stack (and documents its order); [`server`]
//! serves it; `main.rs` only wires configuration and logging to them.
//!
//! The crate, from the edge in: [`server`] and [`app`]; the layers of the
//! proxy stack in [`stack`], and the data that crosses them ([`attempt`],
//! [`facts`], [`record`]); pure decisions — [`classify`], [`envelope`],
//! [`inspect`], [`retry`], [`routing`], [`repair`], [`ratelimit`],
//! [`preflight`], [`actions`], [`path`] — over the shared vocabulary of
//! [`taxonomy`] and [`outcome`]; the upstream leg in [`proxy`]; [`config`],
//! [`metrics`], [`support`], [`telemetry`] (logs) and [`otel`] (traces)
//! around them; [`fleet`] shares what replicas learn about upstreams
//! through Redis.

pub mod actions;
pub mod app;
pub mod attempt;
pub mod classify;
pub mod config;
pub mod drain;
pub mod envelope;
pub mod facts;
pub mod fleet;
pub mod inspect;
pub mod json_field;
pub mod metrics;
pub mod otel;
pub mod outcome;
pub mod path;
pub mod pattern;
pub mod preflight;
pub mod proxy;
pub mod ratelimit;
pub mod record;
pub mod repair;
pub mod retry;
pub mod routing;
pub mod secrets;
pub mod server;
pub mod sse;
pub mod stack;
pub mod support;
pub mod taxonomy;
pub mod telemetry;
