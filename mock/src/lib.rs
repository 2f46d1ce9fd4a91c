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
//! [`MockConfig::mix`], or is `ok`. The grammar, with what each step does on
//! each kind of route, is the table in [`scenario`]; in one line each:
//!
//! - errors: `status:CODE[:FORMAT]` (an error status and body),
//!   `error:NAME` (a provider's exact error), `retry_after:SECS[:ms]` (429
//!   with Retry-After), `retry_after_5xx:SECS` (503 with Retry-After),
//!   `ratelimit_reset:VALUE` (429 with a reset header), `redirect` (301),
//!   `html` (a 200 web page), `error_body[:FORMAT]` (a 200 whose body is an
//!   error object);
//! - content: `ok`, `finish:REASON` (that finish reason; Responses:
//!   incomplete for length and content_filter), `empty` (null content),
//!   `blank` (`"   "`), `json` / `bad_json` / `schema_bad` (JSON, broken
//!   JSON, JSON of the wrong shape), `bad_args` (broken tool arguments),
//!   `reasoning:N[:FIELD]` (N reasoning deltas first), `empty_data`
//!   (`data: []`), `short_data` (one embedding fewer than the inputs),
//!   `empty_vector` (empty embeddings), `failed:CODE` (a failed response),
//!   `pending` (a response in progress);
//! - streams: `cut:N` (N content events, then the drop), `nodone` /
//!   `no_done` (no terminal event), `malformed` (an event that is not
//!   JSON), `error_event` (an in-band error first), `error_after:N` (an
//!   in-band error after N content events), `garbage[:AFTER]` (bytes that
//!   are not SSE), `oversized:BYTES[:AFTER]` (one event BYTES long),
//!   `role_only:N` (N role-only chunks first), `keepalive:N` (N comment
//!   lines first), `first_token:MS` (silence before the first content
//!   event), `json_for_stream` (a whole JSON body for a stream request);
//! - bodies and connections: `hold:MS` (headers, then silence before the
//!   body), `stall:MS` (silence mid-answer), `cut_body` (half the body,
//!   then the drop), `drop_after_headers` (headers, then the drop), `gzip`
//!   (compressed whatever was accepted), `slow:MS` (silence before the
//!   headers), `hang` (no answer), `reset` (a TCP reset);
//! - tasks: `video_failed` (a failed video without detail),
//!   `task_not_exist[:N]` (404 on the first N polls).
//!
//! The text routes say "Hello from backstop-mock." in the pieces `Hello`,
//! ` from`, ` backstop-mock.` (with `x-mock-chunks: N`: `tok0 `, `tok1 `,
//! ...). Chat ids are `chatcmpl-mock-N`, Responses ids `resp_mock_N` (items
//! `msg_mock_N`, `fc_mock_N`), N the request's number (`x-request-id:
//! mock-N`). A chat whose last message is the assistant's (a prefill) gets
//! only the rest of the answer.
//!
//! Layout: `scenario` (with `grammar`, `names`) / `mix` / `directives` /
//! `request` read a request (pure); `respond` picks the step and answers
//! errors; `success` builds 200 answers from `completion` (with `prefill`)
//! in the wire format of `chat`, `text` (legacy completions), `responses`
//! (with `responses_stream`, `background`), or from `catalog` and `tasks`;
//! `stream` and `whole` send them bent by the step (`gzip` compresses);
//! `body` is the response body type; `state` holds counters; `server` owns
//! connections.

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
mod tests;
