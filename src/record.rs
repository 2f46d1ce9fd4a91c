//! [`Record`]: the account of one client request that metrics and the one
//! log line per request are made from. The `observe` layer opens it and is
//! its only reader; the layers below only append to it — each upstream
//! attempt's kind as it happens, the model and (opt-in) the sanitized body
//! once at admission — and the final outcome is set once, through the one
//! [`Finish`] handle admission hands to whoever ends the answer (the
//! renderer for a whole body, the stream watcher for a stream).
//!
//! Nothing decides by reading it: the target, the attempt number and the
//! tally travel down with each attempt and up in its result.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use http::HeaderValue;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::outcome::Outcome;
use crate::taxonomy::Kind;

/// One upstream attempt, as the record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptNote {
    pub kind: Kind,
    /// The target's label (`upstream/model`).
    pub target: Arc<str>,
}

/// How the answer ended for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Final {
    pub outcome: Outcome,
    /// The status the client got.
    pub status: u16,
}

/// The running account of one client request.
#[derive(Debug)]
pub struct Record {
    pub request_id: HeaderValue,
    pub method: http::Method,
    /// The path template (the `route` label).
    pub route: &'static str,
    pub started: Instant,
    model: OnceLock<Option<Arc<str>>>,
    request_body: OnceLock<serde_json::Value>,
    attempts: Mutex<Vec<AttemptNote>>,
    last: OnceLock<Final>,
}

/// What `observe` reads when the answer is over.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub model: Option<String>,
    pub request_body: Option<serde_json::Value>,
    pub attempts: Vec<AttemptNote>,
    /// `None`: nobody finished the answer (the client went away, or the
    /// request path broke off).
    pub last: Option<Final>,
}

impl Record {
    pub fn new(request_id: HeaderValue, method: http::Method, route: &'static str) -> Arc<Record> {
        Arc::new(Record {
            request_id,
            method,
            route,
            started: Instant::now(),
            model: OnceLock::new(),
            request_body: OnceLock::new(),
            attempts: Mutex::new(Vec::new()),
            last: OnceLock::new(),
        })
    }

    /// The request id as text (it was built from text or a UUID).
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }

    /// The model the client asked for (set once, at admission).
    pub fn set_model(&self, model: Option<Arc<str>>) {
        let _ = self.model.set(model);
    }

    /// The sanitized request body, kept when `log.request_bodies` is on.
    pub fn set_request_body(&self, body: serde_json::Value) {
        let _ = self.request_body.set(body);
    }

    /// Appends one attempt, in the order they were made.
    pub fn push_attempt(&self, note: AttemptNote) {
        self.attempts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(note);
    }

    /// The model the client asked for, read in place.
    pub fn model(&self) -> Option<&str> {
        self.model.get().and_then(Option::as_deref)
    }

    /// The sanitized request body, when kept.
    pub fn request_body(&self) -> Option<&serde_json::Value> {
        self.request_body.get()
    }

    /// How many attempts were made, and the last one's target.
    pub fn attempts_made(&self) -> (u32, Option<Arc<str>>) {
        let attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
        (
            attempts.len() as u32,
            attempts.last().map(|a| a.target.clone()),
        )
    }

    /// The final outcome, once set.
    pub fn last(&self) -> Option<&Final> {
        self.last.get()
    }

    /// Everything recorded so far, copied (for tests and diagnostics;
    /// `observe` reads in place).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            model: self.model().map(str::to_string),
            request_body: self.request_body.get().cloned(),
            attempts: self
                .attempts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
            last: self.last.get().cloned(),
        }
    }
}

/// The one right to set a request's final outcome. Consumed when used, so
/// it is set once; dropped unused, the record shows the answer never ended.
#[derive(Debug)]
pub struct Finish {
    record: Arc<Record>,
    /// The request's in-flight permit (`limits.max_inflight`), when it
    /// holds one: released when the answer is finished or dropped.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Finish {
    /// Admission makes the one handle of a request.
    pub fn of(record: Arc<Record>) -> Finish {
        Finish {
            record,
            _permit: None,
        }
    }

    /// The handle holds the request's in-flight permit until the answer's
    /// last byte went out (or the client left): an answer counts against
    /// the limit for as long as it is being delivered, without a wrapper
    /// around its body.
    pub fn holding(self, permit: Option<OwnedSemaphorePermit>) -> Finish {
        Finish {
            _permit: permit,
            ..self
        }
    }

    /// The request's record (for its id and route).
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Sets the final outcome and the status the client got.
    pub fn done(self, outcome: Outcome, status: u16) {
        let _ = self.record.last.set(Final { outcome, status });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_append_in_order_and_the_final_outcome_is_set_once() {
        let record = Record::new(
            HeaderValue::from_static("req-1"),
            http::Method::POST,
            "/v1/chat/completions",
        );
        record.set_model(Some("m".into()));
        record.set_model(Some("other".into()));
        for kind in [Kind::ServerError, Kind::Ok] {
            record.push_attempt(AttemptNote {
                kind,
                target: Arc::from("default"),
            });
        }
        assert_eq!(record.snapshot().last, None);
        Finish::of(record.clone()).done(Outcome::ok(200), 200);
        Finish::of(record.clone()).done(Outcome::of(Kind::Timeout), 504);
        let snap = record.snapshot();
        assert_eq!(snap.model.as_deref(), Some("m"));
        assert_eq!(
            snap.attempts.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [Kind::ServerError, Kind::Ok]
        );
        assert_eq!(
            snap.last,
            Some(Final {
                outcome: Outcome::ok(200),
                status: 200
            })
        );
    }
}
