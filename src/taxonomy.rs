//! The one failure taxonomy (CONTRACT.md §2): every answer is a [`Kind`], and
//! every kind belongs to exactly one [`Class`]. Retries, the error envelope,
//! response headers, logs and metric labels all read these two enums, so a
//! new kind forces every consumer (each `match` is exhaustive) to decide.

use std::fmt;

/// How badly an answer failed: not at all, with an HTTP error, with a 200
/// that carries no usable output, with a 200 whose output is wrong — or the
/// answer never ended because the client left or the gateway shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    None,
    Hard,
    Soft,
    Silent,
    Aborted,
}

impl Class {
    /// Every class, for metrics pre-registration and tests.
    pub const ALL: [Class; 5] = [
        Class::None,
        Class::Hard,
        Class::Soft,
        Class::Silent,
        Class::Aborted,
    ];

    /// The label / header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::None => "none",
            Class::Hard => "hard",
            Class::Soft => "soft",
            Class::Silent => "silent",
            Class::Aborted => "aborted",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What exactly happened to an answer (the `kind` label and the
/// `x-backstop-kind` header value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    #[default]
    Ok,
    // hard
    BadRequest,
    ContextLengthExceeded,
    Unauthorized,
    Forbidden,
    QuotaExceeded,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Timeout,
    ConnectError,
    BadUpstreamResponse,
    /// The gateway's own load shedding (`503`, `retry-after`, no attempt).
    Overloaded,
    // soft
    ContentFilter,
    Length,
    EmptyData,
    // silent
    EmptyContent,
    InvalidJson,
    SchemaMismatch,
    StreamTruncated,
    MalformedEvent,
    // aborted
    /// The client went away before the answer ended.
    ClientClosed,
    /// The drain deadline cut the answer while the gateway shut down.
    Shutdown,
}

impl Kind {
    /// Every kind, in the order of CONTRACT.md §2.
    pub const ALL: [Kind; 24] = [
        Kind::Ok,
        Kind::BadRequest,
        Kind::ContextLengthExceeded,
        Kind::Unauthorized,
        Kind::Forbidden,
        Kind::QuotaExceeded,
        Kind::NotFound,
        Kind::PayloadTooLarge,
        Kind::RateLimited,
        Kind::ServerError,
        Kind::Timeout,
        Kind::ConnectError,
        Kind::BadUpstreamResponse,
        Kind::Overloaded,
        Kind::ContentFilter,
        Kind::Length,
        Kind::EmptyData,
        Kind::EmptyContent,
        Kind::InvalidJson,
        Kind::SchemaMismatch,
        Kind::StreamTruncated,
        Kind::MalformedEvent,
        Kind::ClientClosed,
        Kind::Shutdown,
    ];

    /// The class this kind belongs to.
    pub fn class(self) -> Class {
        match self {
            Kind::Ok => Class::None,
            Kind::BadRequest
            | Kind::ContextLengthExceeded
            | Kind::Unauthorized
            | Kind::Forbidden
            | Kind::QuotaExceeded
            | Kind::NotFound
            | Kind::PayloadTooLarge
            | Kind::RateLimited
            | Kind::ServerError
            | Kind::Timeout
            | Kind::ConnectError
            | Kind::BadUpstreamResponse
            | Kind::Overloaded => Class::Hard,
            Kind::ContentFilter | Kind::Length | Kind::EmptyData => Class::Soft,
            Kind::EmptyContent
            | Kind::InvalidJson
            | Kind::SchemaMismatch
            | Kind::StreamTruncated
            | Kind::MalformedEvent => Class::Silent,
            Kind::ClientClosed | Kind::Shutdown => Class::Aborted,
        }
    }

    /// The label / header value (snake_case, as in CONTRACT.md).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::BadRequest => "bad_request",
            Kind::ContextLengthExceeded => "context_length_exceeded",
            Kind::Unauthorized => "unauthorized",
            Kind::Forbidden => "forbidden",
            Kind::QuotaExceeded => "quota_exceeded",
            Kind::NotFound => "not_found",
            Kind::PayloadTooLarge => "payload_too_large",
            Kind::RateLimited => "rate_limited",
            Kind::ServerError => "server_error",
            Kind::Timeout => "timeout",
            Kind::ConnectError => "connect_error",
            Kind::BadUpstreamResponse => "bad_upstream_response",
            Kind::Overloaded => "overloaded",
            Kind::ContentFilter => "content_filter",
            Kind::Length => "length",
            Kind::EmptyData => "empty_data",
            Kind::EmptyContent => "empty_content",
            Kind::InvalidJson => "invalid_json",
            Kind::SchemaMismatch => "schema_mismatch",
            Kind::StreamTruncated => "stream_truncated",
            Kind::MalformedEvent => "malformed_event",
            Kind::ClientClosed => "client_closed",
            Kind::Shutdown => "shutdown",
        }
    }

    /// Parses a label value back into a kind (config keys, tests).
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a failure of this kind is worth another attempt on the same
    /// request (CONTRACT.md §2): the transient hard kinds; `overloaded` and
    /// `shutdown` by the client, later (the gateway never retries them
    /// itself). Soft and silent kinds are never retryable by nature: their
    /// fate is the `[inspect]` action's.
    pub fn is_retryable(self) -> bool {
        match self {
            Kind::RateLimited
            | Kind::ServerError
            | Kind::Timeout
            | Kind::ConnectError
            | Kind::Overloaded
            | Kind::Shutdown => true,
            Kind::Ok
            | Kind::BadRequest
            | Kind::ContextLengthExceeded
            | Kind::Unauthorized
            | Kind::Forbidden
            | Kind::QuotaExceeded
            | Kind::NotFound
            | Kind::PayloadTooLarge
            | Kind::BadUpstreamResponse
            | Kind::ContentFilter
            | Kind::Length
            | Kind::EmptyData
            | Kind::EmptyContent
            | Kind::InvalidJson
            | Kind::SchemaMismatch
            | Kind::StreamTruncated
            | Kind::MalformedEvent
            | Kind::ClientClosed => false,
        }
    }

    /// The OpenAI-style `error.type` for an envelope of this kind
    /// (CONTRACT.md §3).
    pub fn openai_type(self) -> &'static str {
        match self {
            Kind::BadRequest
            | Kind::ContextLengthExceeded
            | Kind::PayloadTooLarge
            | Kind::ContentFilter => "invalid_request_error",
            Kind::Unauthorized => "authentication_error",
            Kind::Forbidden => "permission_error",
            Kind::QuotaExceeded => "insufficient_quota",
            Kind::NotFound => "not_found_error",
            Kind::RateLimited => "rate_limit_error",
            Kind::Timeout => "timeout_error",
            Kind::Ok
            | Kind::ServerError
            | Kind::ConnectError
            | Kind::BadUpstreamResponse
            | Kind::Length
            | Kind::EmptyData
            | Kind::EmptyContent
            | Kind::InvalidJson
            | Kind::SchemaMismatch
            | Kind::StreamTruncated
            | Kind::MalformedEvent
            | Kind::Overloaded
            | Kind::ClientClosed
            | Kind::Shutdown => "server_error",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_label() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::parse("nonsense"), None);
    }

    #[test]
    fn classes_match_the_contract_table() {
        let by_class = |c: Class| -> Vec<&str> {
            Kind::ALL
                .into_iter()
                .filter(|k| k.class() == c)
                .map(Kind::as_str)
                .collect()
        };
        assert_eq!(by_class(Class::None), ["ok"]);
        assert_eq!(
            by_class(Class::Soft),
            ["content_filter", "length", "empty_data"]
        );
        assert_eq!(
            by_class(Class::Silent),
            [
                "empty_content",
                "invalid_json",
                "schema_mismatch",
                "stream_truncated",
                "malformed_event"
            ]
        );
        assert_eq!(by_class(Class::Hard).len(), 13);
        assert_eq!(by_class(Class::Aborted), ["client_closed", "shutdown"]);
    }

    #[test]
    fn only_transient_hard_kinds_are_retryable() {
        let retryable: Vec<&str> = Kind::ALL
            .into_iter()
            .filter(|k| k.is_retryable())
            .map(Kind::as_str)
            .collect();
        assert_eq!(
            retryable,
            [
                "rate_limited",
                "server_error",
                "timeout",
                "connect_error",
                "overloaded",
                "shutdown"
            ]
        );
    }
}
