//! The stream watcher: an SSE body passes through it event by event, as
//! fast as it comes, while a [`StreamInspector`] reads each event. It
//! - forwards every event's bytes unchanged (zero-copy: the parser's slices);
//! - drops an event whose data is not JSON (`malformed_event`, counted);
//! - ends the stream on an upstream stall longer than the idle timeout;
//! - at the end, decides: a clean answer gets its `[DONE]` (appended if the
//!   upstream forgot it); a truncation, an in-band error or a soft/silent
//!   kind whose policy is not `pass` ends with one `data: {"error": …}`
//!   event and no `[DONE]`, so SDKs raise instead of returning a cut answer.
//!
//! The final kind goes into the request's ledger, so metrics and the log
//! line count what the client actually got.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures_util::StreamExt;

use crate::actions::Actions;
use crate::classify;
use crate::config::Action;
use crate::context::{Ledger, RequestFacts};
use crate::envelope::{self, EnvelopeContext};
use crate::outcome::Outcome;
use crate::sse::SseParser;
use crate::taxonomy::{Class, Kind};

use super::layer::Shared;
use super::repair::Repair;
use super::{EventVerdict, Findings, StreamEnd, StreamInspector};

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Where a watched stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flowing,
    /// The end was decided; the queue holds the last bytes.
    Ended,
}

/// A streamed answer under watch.
pub struct StreamWatch {
    upstream: BodyDataStream,
    parser: SseParser,
    inspector: StreamInspector,
    queue: VecDeque<Bytes>,
    /// The upstream's own `[DONE]` event, held until the verdict.
    done: Option<Bytes>,
    state: State,
    idle: Duration,
    shared: Arc<Shared>,
    ledger: Arc<Ledger>,
    secrets: Arc<Vec<String>>,
    upstream_status: u16,
    upstream_request_id: Option<String>,
    /// The findings once the stream ended (for the lookahead).
    pub findings: Option<Findings>,
    /// Set when the route repairs cut streams; taken by the one repair.
    repair: Option<Repair>,
    /// The request's `[inspect]` actions.
    actions: Actions,
}

impl StreamWatch {
    /// Watches `body`, the streamed answer of `upstream` to the request
    /// `facts` describe.
    pub(super) fn new(
        body: Body,
        facts: &RequestFacts,
        shared: Arc<Shared>,
        ledger: Arc<Ledger>,
        upstream: &Outcome,
        repair: Option<Repair>,
    ) -> StreamWatch {
        let inspector = match repair {
            Some(_) => StreamInspector::new(&facts.expect).capturing_content(),
            None => StreamInspector::new(&facts.expect),
        };
        let (secrets, actions) = (facts.secrets.clone(), facts.actions);
        StreamWatch {
            upstream: body.into_data_stream(),
            parser: SseParser::new(),
            inspector,
            queue: VecDeque::new(),
            done: None,
            state: State::Flowing,
            idle: shared.stream_idle_timeout,
            shared,
            ledger,
            secrets,
            upstream_status: upstream.upstream_status.unwrap_or(200),
            upstream_request_id: upstream.upstream_request_id.clone(),
            findings: None,
            repair,
            actions,
        }
    }

    /// Whether the answer's fate is visible yet: content flowed, every
    /// choice finished, or the stream ended.
    pub fn decided(&self) -> bool {
        self.inspector.content_seen() || self.inspector.all_finished() || self.state == State::Ended
    }

    /// Whether any content or tool-call delta was seen.
    pub fn content_seen(&self) -> bool {
        self.inspector.content_seen()
    }

    /// What the events so far amount to if the stream ended now cleanly
    /// (for the pre-first-byte retry decision).
    pub fn findings_so_far(&self) -> Findings {
        self.inspector.finish(StreamEnd::Done)
    }

    /// The next bytes for the client, or `None` at the end.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(bytes) = self.queue.pop_front() {
                return Some(bytes);
            }
            if self.state == State::Ended {
                return None;
            }
            match tokio::time::timeout(self.idle, self.upstream.next()).await {
                Ok(Some(Ok(chunk))) => self.feed(chunk),
                Ok(Some(Err(_))) => self.broken(StreamEnd::Cut).await,
                Ok(None) => {
                    // Release an event held back for a possible CRLF.
                    self.parser.finish();
                    self.drain();
                    if self.state == State::Ended {
                        continue;
                    }
                    if self.done.is_some() {
                        self.end(StreamEnd::Done, None);
                    } else if self.inspector.all_finished() {
                        self.end(StreamEnd::Eof, None);
                    } else {
                        self.broken(StreamEnd::Eof).await;
                    }
                }
                Err(_) => self.broken(StreamEnd::Idle).await,
            }
        }
    }

    /// The upstream broke off before every choice finished: continue on a
    /// prefill-capable target when the route repairs streams and one choice
    /// of plain text went out; else end with the original failure.
    async fn broken(&mut self, end: StreamEnd) {
        let (choices, tools) = self.inspector.shape();
        let partial = self.inspector.content_of(0).map(str::to_string);
        if let (Some(repair), 1, false, Some(partial)) =
            (self.repair.take(), choices, tools, partial)
        {
            if !partial.is_empty() {
                if let Some((stream, label)) = repair.continue_with(&partial).await {
                    {
                        let mut entry = self.ledger.entry();
                        entry.attempts += 1;
                        entry.target_label = Some(label);
                    }
                    self.shared
                        .metrics
                        .stream_repairs
                        .with_label_values(&[self.ledger.route])
                        .inc();
                    self.upstream = stream;
                    // Whatever half event was pending belongs to the cut stream.
                    self.parser = SseParser::new();
                    return;
                }
            }
        }
        self.end(end, None);
    }

    fn feed(&mut self, chunk: Bytes) {
        self.parser.push(chunk);
        self.drain();
    }

    /// Handles every complete event the parser holds.
    fn drain(&mut self) {
        while let Some(event) = self.parser.next_event() {
            if let Some(part) = event.oversized {
                // An event past the parser's cap arrives in pieces: none is
                // forwarded, and the whole counts as one malformed event.
                if part == crate::sse::Oversized::End {
                    self.count_malformed();
                }
                continue;
            }
            let Some(data) = event.data.as_deref() else {
                // Comments and keep-alives carry no data: forward as they are.
                self.queue.push_back(event.raw);
                continue;
            };
            match self.inspector.observe(data) {
                EventVerdict::Forward => self.queue.push_back(event.raw),
                EventVerdict::Drop => self.count_malformed(),
                EventVerdict::Done => self.done = Some(event.raw),
                EventVerdict::Error(error) => {
                    let mut outcome = classify::classify_error_object(&error, None);
                    outcome.upstream_status = Some(self.upstream_status);
                    self.end(StreamEnd::Cut, Some(outcome));
                    return;
                }
            }
        }
    }

    fn count_malformed(&self) {
        self.shared
            .metrics
            .malformed_events
            .with_label_values(&[self.ledger.route])
            .inc();
    }

    /// Decides how the stream ends and queues its last bytes.
    fn end(&mut self, end: StreamEnd, in_band: Option<Outcome>) {
        self.state = State::Ended;
        // An incomplete trailing event is never forwarded: half a JSON
        // object would break the client's parser before it saw our error.
        let _partial = self.parser.take_pending();
        let findings = self.inspector.finish(end);
        self.shared.record_findings(&self.ledger, &findings);
        let outcome = match in_band {
            Some(o) => o,
            None => Outcome {
                kind: findings.kind,
                upstream_status: Some(self.upstream_status),
                message: Some(super::layer::describe(
                    &Outcome::of(findings.kind),
                    findings.detail.as_deref(),
                )),
                model: findings.model.clone(),
                finish_reason: findings.notable_finish_reason(),
                upstream_request_id: self.upstream_request_id.clone(),
                ..Outcome::default()
            },
        };
        let fails = match outcome.kind.class() {
            Class::None => false,
            Class::Hard => true,
            // After the first byte a `retry` policy can no longer act: it
            // degrades to `fail`, as the README says.
            Class::Soft | Class::Silent => {
                outcome.kind == Kind::StreamTruncated
                    || self.actions.get(outcome.kind) != Action::Pass
            }
        };
        if fails {
            let mut outcome = outcome;
            let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            outcome.redact(&secrets);
            let (attempts, target, kinds) = {
                let entry = self.ledger.entry();
                (
                    entry.attempts,
                    entry.target_label.clone(),
                    entry.attempt_kinds.clone(),
                )
            };
            let ctx = EnvelopeContext {
                attempts,
                request_id: self.ledger.request_id_str(),
                secrets: &secrets,
                max_attempts: self.shared.max_attempts,
                target: target.as_deref(),
                attempt_kinds: &kinds,
            };
            self.queue
                .push_back(envelope::sse_error_event(&outcome, &ctx));
            self.ledger.entry().outcome = outcome;
        } else {
            self.queue
                .push_back(self.done.take().unwrap_or(Bytes::from_static(DONE)));
            self.ledger.set_kind(outcome.kind);
        }
        self.findings = Some(findings);
    }
}

/// The client-facing body: `held` bytes (read during the lookahead) first,
/// then the rest of the watched stream.
pub fn into_body(held: Vec<Bytes>, watch: StreamWatch) -> Body {
    let held = futures_util::stream::iter(held.into_iter().map(Ok::<_, std::convert::Infallible>));
    let rest =
        futures_util::stream::unfold(
            watch,
            |mut w| async move { w.next().await.map(|b| (Ok(b), w)) },
        );
    Body::from_stream(held.chain(rest))
}
