//! [`Outcome`]: what one upstream attempt (or the gateway itself) came to —
//! the classifier's result, read by the retry policy, the envelope, headers,
//! logs and metrics alike.

use std::time::Duration;

use crate::taxonomy::{Class, Kind};

use crate::secrets::Secrets;
pub use crate::secrets::REDACTED;

/// What part of an answer a soft or silent failure is about (the hint
/// differs: a tool call's arguments are fixed another way than JSON mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subject {
    /// The answer's content (or the whole answer).
    #[default]
    Content,
    /// A tool call's (function call's) arguments.
    ToolArguments,
}

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
    /// Known to be passing although its kind is not retryable by nature
    /// (a video task polled before the upstream registered it): the retry
    /// layer may try again after `retry_after`.
    pub transient: bool,
    /// The request certainly never reached the upstream (the connection
    /// failed before it was sent, or the gateway held it back): even a
    /// request that creates something may be sent again.
    pub unsent: bool,
    /// The status of the gateway's own answer when its kind's usual one is
    /// not the right one (408 for a request body that came too slowly).
    pub status: Option<u16>,
    /// What part of the answer a soft or silent kind is about.
    pub subject: Subject,
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

impl Outcome {
    /// Replaces every secret (the request's: the client's credentials,
    /// every configured key) in the upstream-supplied texts, so neither the
    /// envelope nor a log line can carry a key an upstream echoed back.
    pub fn redact(&mut self, secrets: &Secrets) {
        for text in [
            &mut self.message,
            &mut self.code,
            &mut self.param,
            &mut self.upstream_request_id,
            &mut self.model,
            &mut self.finish_reason,
        ]
        .into_iter()
        .flatten()
        {
            if secrets.found_in(text) {
                *text = secrets.redact(text).into_owned();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_covers_every_upstream_text() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "authorization",
            http::HeaderValue::from_static("Bearer sk-abc"),
        );
        let secrets = Secrets::default().with_client(&h, &http::Uri::from_static("/v1/x"));
        let mut o = Outcome {
            message: Some("Incorrect API key provided: sk-abc".into()),
            code: Some("sk-abc".into()),
            param: None,
            ..Outcome::of(Kind::Unauthorized)
        };
        o.redact(&secrets);
        assert_eq!(
            o.message.as_deref(),
            Some("Incorrect API key provided: [REDACTED]")
        );
        assert_eq!(o.code.as_deref(), Some("[REDACTED]"));
    }
}
