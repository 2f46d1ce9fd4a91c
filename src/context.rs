//! What the layers learn about one client request and hand to each other
//! through request extensions:
//! - [`Ledger`], opened by the `observe` layer (outermost) and closed when the
//!   answer's last byte is gone: the final kind, attempts and status that
//!   metrics and the one log line per request are made from;
//! - [`RequestFacts`], read once from the buffered request by `admit`: the
//!   model, whether it streams, its deadline, what the retry layer may do.

use std::sync::{Arc, Mutex, MutexGuard};

use http::HeaderValue;
use tokio::time::Instant;

use crate::actions::Actions;
use crate::inspect::Expectation;
use crate::outcome::Outcome;
use crate::routing::Plan;
use crate::taxonomy::Kind;

/// The running account of one client request.
#[derive(Debug)]
pub struct Ledger {
    pub request_id: HeaderValue,
    pub method: http::Method,
    pub route: &'static str,
    pub started: Instant,
    entry: Mutex<LedgerEntry>,
}

/// The mutable part of a [`Ledger`].
#[derive(Debug, Clone, Default)]
pub struct LedgerEntry {
    /// Upstream attempts made so far.
    pub attempts: u32,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The final outcome (updated by the stream inspector when a stream ends
    /// differently than its first bytes promised).
    pub outcome: Outcome,
    /// The status the client got.
    pub status: u16,
    /// The sanitized request body, kept only when `log.request_bodies` is on.
    pub request_body: Option<serde_json::Value>,
    /// The position in the plan of the target the next (or last) attempt
    /// goes to.
    pub target: usize,
    /// The label of that target (`upstream/model`), once one was chosen.
    pub target_label: Option<String>,
    /// Every attempt's kind, in order (for the envelope of a failed chain).
    pub attempt_kinds: Vec<Kind>,
}

impl Ledger {
    pub fn new(request_id: HeaderValue, method: http::Method, route: &'static str) -> Arc<Ledger> {
        Arc::new(Ledger {
            request_id,
            method,
            route,
            started: Instant::now(),
            entry: Mutex::new(LedgerEntry::default()),
        })
    }

    /// The entry, for reading or updating. A poisoned lock (a panic while it
    /// was held) still yields the data: the ledger is bookkeeping, never a
    /// reason to fail the request.
    pub fn entry(&self) -> MutexGuard<'_, LedgerEntry> {
        self.entry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The request id as text (it was built from text or a UUID).
    pub fn request_id_str(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }

    /// Sets the final kind without touching the rest of the outcome.
    pub fn set_kind(&self, kind: Kind) {
        self.entry().outcome.kind = kind;
    }
}

/// Facts about the request body, parsed once.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub model: Option<String>,
    /// `"stream": true` in a JSON body.
    pub stream: bool,
    /// When the whole request must be over (config, or the client's own
    /// `x-stainless-timeout` when shorter).
    pub deadline: Instant,
    /// The client said it is retrying itself (`x-stainless-retry-count` > 0).
    pub client_retrying: bool,
    /// The targets this request may go to, in fallback order.
    pub plan: Arc<Plan>,
    /// The `[inspect]` actions for this request's route and model.
    pub actions: Actions,
    /// The parsed JSON body, when it was JSON.
    pub json: Option<Arc<serde_json::Value>>,
    /// What the request asked for (JSON mode, schema, stream), for the
    /// inspection rules; compiled once per request.
    pub expect: Arc<Expectation>,
    /// API keys to redact from anything passed on (the client's token, the
    /// configured key).
    pub secrets: Arc<Vec<String>>,
}
