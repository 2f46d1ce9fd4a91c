//! [`Outcome`]: what one upstream attempt (or the gateway itself) came to —
//! the classifier's result, read by the retry policy, the envelope, headers,
//! logs and metrics alike.

use std::time::Duration;

use crate::taxonomy::{Class, Kind};

/// The classification of one answer plus the upstream details the envelope
/// and the logs need. Built by `classify` (hard failures) and `inspect`
/// (soft / silent ones); never by hand elsewhere except for the gateway's own
/// failures (timeouts, connect errors, 413).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub kind: Kind,
    /// The upstream's HTTP status, when there was an answer at all.
    pub upstream_status: Option<u16>,
    /// The wait the upstream asked for (`Retry-After`, `retry-after-ms`,
    /// `x-ratelimit-reset-*`), as parsed.
    pub retry_after: Option<Duration>,
    /// The upstream's `error.code` (or top-level `code`), when non-empty.
    pub code: Option<String>,
    /// The upstream's message verbatim (or the trimmed, capped body text).
    pub message: Option<String>,
    /// The upstream's `error.param`, when non-empty.
    pub param: Option<String>,
    /// From the upstream's `x-request-id` header or a `(request id: …)`
    /// inside its message.
    pub upstream_request_id: Option<String>,
    /// Soft/silent details for the envelope and logs: e.g. the model and the
    /// finish_reason the upstream reported.
    pub model: Option<String>,
    pub finish_reason: Option<String>,
}

impl Outcome {
    /// An outcome of the given kind with nothing else known.
    pub fn of(kind: Kind) -> Self {
        Outcome {
            kind,
            ..Outcome::default()
        }
    }

    /// A successful answer with the given upstream status.
    pub fn ok(status: u16) -> Self {
        Outcome {
            upstream_status: Some(status),
            ..Outcome::default()
        }
    }

    /// The gateway's own failure (no upstream answer), with a message.
    pub fn gateway(kind: Kind, message: impl Into<String>) -> Self {
        Outcome {
            kind,
            message: Some(message.into()),
            ..Outcome::default()
        }
    }

    pub fn class(&self) -> Class {
        self.kind.class()
    }

    pub fn is_ok(&self) -> bool {
        self.kind == Kind::Ok
    }
}
