//! `backstop-mock`, the chaos upstream: an OpenAI-compatible server that
//! fails on demand. The gateway's integration tests run it in-process
//! ([`MockServer`]); the SDK tests, the benchmark and the docker-compose demo
//! run the `backstop-mock` binary ([`serve`]). It is not part of the
//! gateway's request path.
//!
//! Each request is scripted by headers (the gateway forwards them
//! untouched): `x-mock-scenario: STEP[,STEP...]` with `x-mock-key: K` walks
//! the steps request by request; `x-mock-chunks`, `x-mock-chunk-delay-ms`,
//! `x-mock-first-byte-delay-ms` shape streams and timing; `x-mock-echo: 1`
//! answers with what was received. Without a scenario a step is drawn from
//! [`MockConfig::mix`], or is `ok`. The step grammar is in [`scenario`].
//!
//! Layout: `scenario` / `mix` / `directives` / `request` read a request (pure);
//! `respond` picks and builds the answer from `errors`, `chat`, `text`,
//! `catalog`, `tasks` and `stream`; `body` is the response body type;
//! `state` holds counters; `server` owns connections.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

mod background;
mod body;
mod catalog;
mod chat;
mod completion;
pub mod directives;
mod errors;
mod grammar;
mod gzip;
pub mod mix;
mod names;
mod prefill;
mod request;
mod respond;
mod responses;
mod responses_stream;
pub mod scenario;
mod server;
mod state;
mod stream;
mod success;
mod tasks;
mod text;
mod whole;

pub use mix::parse_mix;
pub use scenario::{
    parse_sequence, parse_step, ErrorBodyFormat, ErrorFormat, NamedError, ReasoningField, Step,
    StepError,
};
pub use server::{serve, MockServer, DRAIN};

/// How a mock server behaves when a request says nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockConfig {
    /// Steps drawn by weight for requests without `x-mock-scenario`
    /// (`("status:429".into(), 5)`); empty: always `ok`. See [`parse_mix`].
    pub mix: Vec<(String, u32)>,
    /// Stream content chunks when the request has no `x-mock-chunks`.
    pub chunks: usize,
    /// Pause between stream events when the request has no
    /// `x-mock-chunk-delay-ms`.
    pub chunk_delay: Duration,
}

impl Default for MockConfig {
    /// No mix (always `ok`), 3 chunks, no delay.
    fn default() -> MockConfig {
        MockConfig {
            mix: Vec::new(),
            chunks: 3,
            chunk_delay: Duration::ZERO,
        }
    }
}

/// A request as the mock received it (kept per `x-mock-key`).
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// The method.
    pub method: Method,
    /// The path and query.
    pub path: String,
    /// Every header, as received.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

#[cfg(test)]
mod tests_events;
#[cfg(test)]
mod tests_faults;
#[cfg(test)]
mod tests_http;
#[cfg(test)]
mod tests_responses;
#[cfg(test)]
mod tests_routes;
#[cfg(test)]
mod tests_sdk;
#[cfg(test)]
mod tests_stream;
