//! What crosses the layers of the proxy stack. Data goes down in the
//! request, results come up in the answer:
//!
//! - down to admission: [`ClientRequest`] — the client's HTTP request with
//!   the record `observe` opened for it (and its trace span);
//! - down below admission: [`Call`] — the admitted client request (buffered, with its
//!   facts), the same for every attempt; and per attempt an
//!   [`AttemptRequest`] — which attempt this is, the target and its
//!   upstream, the body for that target, why it is made;
//! - up: [`Attempt`] — what one attempt came to (its outcome, the answer
//!   when there is one to forward, the time to the first byte, the rate
//!   limits the answer advertised); and from the retry chain an
//!   [`Exchange`] — the final attempt and the [`Chain`] that made it.
//!
//! A watched stream outlives the chain's loop: once the answer goes out,
//! the stream watcher holds the [`Chain`], which counts the attempts
//! ([`Tally`]) and makes a continuation attempt when the stream is cut
//! (stream repair) — through the same target choice, circuits, pacing,
//! budget, deadline and metrics as any other attempt.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, Uri};

use crate::facts::RequestFacts;
use crate::inspect::{Findings, StreamEnd};
use crate::otel::{AttemptSpan, RequestTrace};
use crate::outcome::Outcome;
use crate::path::ClientPath;
use crate::proxy::headers::TraceHeaders;
use crate::proxy::upstream::Upstream;
use crate::ratelimit::advertised::Advertised;
use crate::record::{Finish, Record};
use crate::taxonomy::Kind;

/// A client's request as `observe` hands it down: typed fields rather than
/// request extensions (each of which costs allocations, and a missing one
/// could only be found at run time).
pub struct ClientRequest {
    pub http: Request<Body>,
    /// The request's record, opened by `observe`.
    pub record: Arc<Record>,
    /// The request's trace, when traces are on.
    pub trace: Option<RequestTrace>,
}

/// The admitted client request: read-only below admission.
#[derive(Debug)]
pub struct Call {
    pub method: Method,
    pub uri: Uri,
    /// The checked path the upstream URI is built from.
    pub path: ClientPath,
    /// The client's headers, as received.
    pub headers: HeaderMap,
    /// The buffered body, replayed by every attempt.
    pub body: Bytes,
    pub facts: Arc<RequestFacts>,
    /// Where the attempts are appended (read by `observe` only).
    pub record: Arc<Record>,
    /// The request's trace, when traces are on: each attempt's span opens
    /// under it.
    pub trace: Option<RequestTrace>,
}

/// Why an attempt is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An answer to the client's request: a first attempt, a retry, a
    /// fallback.
    Answer,
    /// The continuation of a stream cut after content went out (stream
    /// repair): its events extend the stream the client is reading, whose
    /// watcher inspects them.
    Continuation,
}

/// One upstream attempt, as the retry chain hands it down.
#[derive(Debug)]
pub struct AttemptRequest {
    pub call: Arc<Call>,
    /// 1 for the request's first attempt.
    pub number: u32,
    /// The target's position in the request's plan.
    pub position: usize,
    /// The target's label (`upstream/model`).
    pub label: Arc<str>,
    pub upstream: Arc<Upstream>,
    /// What to send: the client's body, with the model rewritten for the
    /// target, or a continuation's prefill.
    pub body: Bytes,
    pub purpose: Purpose,
    /// The longest wait for the answer's headers (a stream: its first
    /// event); the exchange also stops at the request's deadline.
    pub first_byte_timeout: Duration,
    /// A stream only: the longest wait for its first content or reasoning
    /// delta (the target's first-token limit); past it the attempt fails as
    /// a `timeout` if nothing went out yet.
    pub first_token_timeout: Option<Duration>,
    /// A stream only: come back only once the first token arrived (or the
    /// attempt failed) — a hedged attempt wins by its first token.
    pub await_first_token: bool,
    /// The trace context to send upstream in place of the client's (the
    /// attempt's span), when traces are on.
    pub trace: Option<TraceHeaders>,
}

/// The body of an answer to forward.
pub enum AnswerBody {
    /// Forwarded as it is.
    Plain(Body),
    /// A stream under watch: it becomes the client's body once it is given
    /// the request's [`Finish`] and the [`Chain`].
    Watched(Box<dyn WatchedStream>),
}

impl std::fmt::Debug for AnswerBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnswerBody::Plain(_) => f.write_str("Plain"),
            AnswerBody::Watched(_) => f.write_str("Watched"),
        }
    }
}

/// A stream whose end the gateway decides (the inspection layer's watcher).
pub trait WatchedStream: Send {
    /// The client's body: the stream's bytes as they arrive, its ending as
    /// the watcher decides it. `finish` records the final outcome when the
    /// stream ends; `chain` tallies the attempts (for a closing error
    /// event) and continues a cut stream when the route repairs streams.
    fn into_body(self: Box<Self>, finish: Finish, chain: Box<dyn Chain>) -> Body;
    /// The span of the attempt whose stream this is: the watcher ends it
    /// when the stream ends, with what the stream came to.
    fn follow(&mut self, span: AttemptSpan);
}

/// What one attempt came to.
#[derive(Debug, Default)]
pub struct Attempt {
    pub outcome: Outcome,
    /// The answer to forward (success, or a soft/silent kind under `pass`);
    /// `None` when the client is to get the envelope.
    pub response: Option<Response<AnswerBody>>,
    /// From sending until the headers (a stream: its first event), when an
    /// answer came.
    pub first_byte: Option<Duration>,
    /// The rate limits the answer's headers advertised.
    pub advertised: Advertised,
    /// What inspecting a whole answer found (a stream's findings come at
    /// its end, to its watcher).
    pub findings: Option<Findings>,
}

impl Attempt {
    /// An attempt that produced no forwardable answer.
    pub fn failed(outcome: Outcome) -> Attempt {
        Attempt {
            outcome,
            ..Attempt::default()
        }
    }
}

/// The attempts made for a request so far, as the client is told.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub attempts: u32,
    /// Every attempt's kind, in order.
    pub kinds: Vec<Kind>,
    /// The last attempt's target label.
    pub target: Option<Arc<str>>,
}

/// A cut stream to continue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuation {
    /// The text the client already has (one choice).
    pub partial: String,
    /// How the stream broke off.
    pub cause: StreamEnd,
}

/// A continuation that answered: its body's events extend the stream.
pub struct Resumed {
    pub body: Body,
    /// The target that continues.
    pub target: Arc<str>,
}

/// The retry chain of one request, as the stream watcher holds it.
pub trait Chain: Send {
    /// The attempts made so far.
    fn tally(&self) -> &Tally;
    /// `retry.max_attempts` (for the envelope's `x-should-retry` rule).
    fn max_attempts(&self) -> u32;
    /// Continues a cut stream on a target that accepts a prefill, as the
    /// route and what is left of the attempts, budget and deadline allow.
    /// `None`: nothing could continue it; the original failure stands.
    fn resume(&mut self, cut: Continuation) -> BoxFuture<'_, Option<Resumed>>;
    /// The answer that went out broke off (cut, or silent past the idle
    /// timeout): its target's circuit counts it as the failure it is,
    /// although the attempt was released as a success.
    fn broke(&mut self, cause: StreamEnd) {
        let _ = cause;
    }
}

/// What the retry chain came to: the final attempt, and the chain itself
/// for a stream that may need it after the answer went out.
pub struct Exchange {
    pub attempt: Attempt,
    pub chain: Box<dyn Chain>,
}
