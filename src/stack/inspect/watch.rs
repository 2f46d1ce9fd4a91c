//! The stream watcher: an SSE body passes through it event by event, as
//! fast as it comes, while a [`StreamInspector`] reads each event. It
//! - forwards every event's bytes unchanged (zero-copy: the parser's slices);
//! - drops an event whose data is not JSON (`malformed_event`, counted);
//! - ends the stream on an upstream stall longer than the idle timeout;
//! - at the end, decides: a clean answer gets its `[DONE]` (appended if the
//!   upstream forgot it); a truncation, an in-band error or a soft/silent
//!   kind whose action is not `pass` ends with one `data: {"error": …}`
//!   event and no `[DONE]`, so SDKs raise instead of returning a cut answer.
//!
//! Before any byte goes out it may look ahead ([`watch`]): while the
//! answer's fate is not visible (no content, not finished) the first events
//! are held, so a stream that opens with a content filter or finishes empty
//! is answered like a whole body — retried, or the envelope with its status.
//!
//! Once released, the watcher holds the request's [`Chain`]: its tally goes
//! into the closing error event, and a cut stream is continued through it
//! when the route repairs streams. The final outcome is recorded through
//! the request's [`Finish`] when the last bytes go out.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, Response};

use crate::actions::Actions;
use crate::attempt::{AnswerBody, Attempt, Chain, Continuation, WatchedStream};
use crate::classify;
use crate::config::Action;
use crate::envelope::{self, EnvelopeContext};
use crate::facts::RequestFacts;
use crate::inspect::{EventVerdict, Findings, StreamEnd, StreamInspector};
use crate::outcome::Outcome;
use crate::record::Finish;
use crate::sse::{Oversized, SseParser};
use crate::taxonomy::{Class, Kind};

use super::state::InspectState;
use super::whole::{apply, describe};

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Puts a streamed success under watch, looking ahead first when an early
/// verdict could still change the answer (an action other than `pass` for
/// the kinds visible before any content).
pub async fn watch(
    state: &Arc<InspectState>,
    facts: &Arc<RequestFacts>,
    attempt: Attempt,
    resp: Response<Body>,
) -> Attempt {
    let (mut parts, body) = resp.into_parts();
    let mut watch = StreamWatch::new(body, facts.clone(), state.clone(), &attempt.outcome);
    let lookahead = state.inspect.stream_lookahead
        && [Kind::ContentFilter, Kind::EmptyContent]
            .into_iter()
            .any(|k| facts.actions.get(k) != Action::Pass);
    if lookahead {
        while !watch.decided() {
            if !watch.hold_next().await {
                break;
            }
        }
        if !watch.content_seen() {
            let findings = watch
                .findings
                .clone()
                .unwrap_or_else(|| watch.findings_so_far());
            // Nothing has reached the client yet: a failure seen now is
            // answered like a whole body's (retried, or the envelope with
            // its status), not as an error event inside a 200.
            let early = matches!(findings.kind, Kind::ContentFilter | Kind::EmptyContent)
                && facts.actions.get(findings.kind) != Action::Pass;
            if early {
                let mut failed = attempt.outcome;
                apply(&mut failed, &findings);
                return Attempt {
                    outcome: failed,
                    response: None,
                    ..attempt
                };
            }
        }
    }
    // The body is re-framed (a [DONE] or an error event may be added).
    parts.headers.remove(header::CONTENT_LENGTH);
    Attempt {
        response: Some(Response::from_parts(
            parts,
            AnswerBody::Watched(Box::new(watch)),
        )),
        ..attempt
    }
}

/// Where a watched stream stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Flowing,
    /// The end was decided; the queue holds the last bytes.
    Ended,
}

/// What goes out next.
enum Out {
    Bytes(Bytes),
    /// The last bytes: `[DONE]` (the upstream's own, or ours).
    Done(Bytes),
    /// The closing error event, rendered when it goes out (with the
    /// chain's tally as it is then).
    Error,
}

/// A streamed answer under watch.
pub struct StreamWatch {
    upstream: BodyDataStream,
    parser: SseParser,
    inspector: StreamInspector,
    queue: VecDeque<Out>,
    /// The upstream's own `[DONE]` event, held until the verdict.
    done: Option<Bytes>,
    state: State,
    idle: Duration,
    inspect: Arc<InspectState>,
    facts: Arc<RequestFacts>,
    upstream_status: u16,
    upstream_request_id: Option<String>,
    /// The findings once the stream ended (for the lookahead).
    findings: Option<Findings>,
    /// How the stream ended, once it did.
    ending: Option<Outcome>,
    /// Given when the stream is released to the client.
    finish: Option<Finish>,
    chain: Option<Box<dyn Chain>>,
}

impl StreamWatch {
    fn new(
        body: Body,
        facts: Arc<RequestFacts>,
        inspect: Arc<InspectState>,
        upstream: &Outcome,
    ) -> StreamWatch {
        let inspector = if facts.plan.repair_streams {
            StreamInspector::new(&facts.expect).capturing_content()
        } else {
            StreamInspector::new(&facts.expect)
        };
        StreamWatch {
            upstream: body.into_data_stream(),
            parser: SseParser::new(),
            inspector,
            queue: VecDeque::new(),
            done: None,
            state: State::Flowing,
            idle: inspect.stream_idle_timeout,
            inspect,
            facts,
            upstream_status: upstream.upstream_status.unwrap_or(200),
            upstream_request_id: upstream.upstream_request_id.clone(),
            findings: None,
            ending: None,
            finish: None,
            chain: None,
        }
    }

    /// Whether the answer's fate is visible yet: content flowed, every
    /// choice finished, or the stream ended.
    fn decided(&self) -> bool {
        self.inspector.content_seen() || self.inspector.all_finished() || self.state == State::Ended
    }

    /// Whether any content or tool-call delta was seen.
    fn content_seen(&self) -> bool {
        self.inspector.content_seen()
    }

    /// What the events so far amount to if the stream ended now cleanly
    /// (for the pre-first-byte retry decision).
    fn findings_so_far(&self) -> Findings {
        self.inspector.finish(StreamEnd::Done)
    }

    /// Reads on until something is queued or the stream ended; the queued
    /// bytes stay held. `false` at the end.
    async fn hold_next(&mut self) -> bool {
        let before = self.queue.len();
        while self.queue.len() == before {
            if self.state == State::Ended {
                return false;
            }
            self.read().await;
        }
        true
    }

    /// The next bytes for the client, or `None` at the end.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            match self.queue.pop_front() {
                Some(Out::Bytes(bytes)) => return Some(bytes),
                Some(Out::Done(bytes)) => {
                    self.finish();
                    return Some(bytes);
                }
                Some(Out::Error) => {
                    let event = self.error_event();
                    self.finish();
                    return Some(event);
                }
                None if self.state == State::Ended => return None,
                None => self.read().await,
            }
        }
    }

    /// Reads one chunk from the upstream (or its end, or its silence).
    async fn read(&mut self) {
        match tokio::time::timeout(self.idle, self.upstream.next()).await {
            Ok(Some(Ok(chunk))) => {
                self.parser.push(chunk);
                self.drain();
            }
            Ok(Some(Err(_))) => self.broken(StreamEnd::Cut).await,
            Ok(None) => {
                // Release an event held back for a possible CRLF.
                self.parser.finish();
                self.drain();
                if self.state == State::Ended {
                    return;
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

    /// The upstream broke off before every choice finished: continue
    /// through the chain when the route repairs streams and one choice of
    /// plain text went out; else end with the original failure.
    async fn broken(&mut self, end: StreamEnd) {
        let (choices, tools) = self.inspector.shape();
        let partial = self.inspector.content_of(0).map(str::to_string);
        if let (Some(chain), 1, false, Some(partial)) =
            (self.chain.as_mut(), choices, tools, partial)
        {
            if !partial.is_empty() {
                let cut = Continuation {
                    partial,
                    cause: end,
                };
                if let Some(resumed) = chain.resume(cut).await {
                    self.upstream = resumed.body.into_data_stream();
                    // Whatever half event was pending belongs to the cut stream.
                    self.parser = SseParser::new();
                    return;
                }
            }
        }
        self.end(end, None);
    }

    /// Handles every complete event the parser holds.
    fn drain(&mut self) {
        while let Some(event) = self.parser.next_event() {
            if let Some(part) = event.oversized {
                // An event past the parser's cap arrives in pieces: none is
                // forwarded, and the whole counts as one malformed event.
                if part == Oversized::End {
                    self.inspect.malformed(self.facts.route);
                }
                continue;
            }
            let Some(data) = event.data.as_deref() else {
                // Comments and keep-alives carry no data: forward as they are.
                self.queue.push_back(Out::Bytes(event.raw));
                continue;
            };
            match self.inspector.observe(data) {
                EventVerdict::Forward => self.queue.push_back(Out::Bytes(event.raw)),
                EventVerdict::Drop => self.inspect.malformed(self.facts.route),
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

    /// Decides how the stream ends and queues its last bytes.
    fn end(&mut self, end: StreamEnd, in_band: Option<Outcome>) {
        self.state = State::Ended;
        // An incomplete trailing event is never forwarded: half a JSON
        // object would break the client's parser before it saw our error.
        let _partial = self.parser.take_pending();
        let findings = self.inspector.finish(end);
        self.inspect.record_findings(&self.facts, &findings);
        let outcome = match in_band {
            Some(o) => o,
            None => Outcome {
                kind: findings.kind,
                upstream_status: Some(self.upstream_status),
                message: Some(describe(
                    &Outcome::of(findings.kind),
                    findings.detail.as_deref(),
                )),
                model: findings.model.clone(),
                finish_reason: findings.notable_finish_reason(),
                upstream_request_id: self.upstream_request_id.clone(),
                ..Outcome::default()
            },
        };
        if fails(&outcome, &self.facts.actions) {
            self.queue.push_back(Out::Error);
        } else {
            let done = self.done.take().unwrap_or(Bytes::from_static(DONE));
            self.queue.push_back(Out::Done(done));
        }
        self.ending = Some(outcome);
        self.findings = Some(findings);
    }

    /// The closing error event, with the attempts as the chain counts them.
    fn error_event(&self) -> Bytes {
        let mut outcome = self.ending.clone().unwrap_or_default();
        let secrets: Vec<&str> = self.facts.secrets.iter().map(String::as_str).collect();
        outcome.redact(&secrets);
        let tally = self
            .chain
            .as_ref()
            .map(|c| c.tally().clone())
            .unwrap_or_default();
        let ctx = EnvelopeContext {
            attempts: tally.attempts,
            request_id: self.facts.request_id.to_str().unwrap_or(""),
            secrets: &secrets,
            max_attempts: self.chain.as_ref().map_or(1, |c| c.max_attempts()),
            target: tally.target.as_deref(),
            attempt_kinds: &tally.kinds,
        };
        envelope::sse_error_event(&outcome, &ctx)
    }

    /// Records the final outcome (once).
    fn finish(&mut self) {
        if let Some(finish) = self.finish.take() {
            let mut outcome = self.ending.clone().unwrap_or_default();
            let secrets: Vec<&str> = self.facts.secrets.iter().map(String::as_str).collect();
            outcome.redact(&secrets);
            finish.done(outcome, 200);
        }
    }
}

/// Whether a stream's ending is a failure the client must see as an error
/// event: hard kinds always; soft and silent ones unless their action is
/// `pass` — after the first byte a `retry` can no longer act and degrades
/// to `fail`, as the README says.
fn fails(outcome: &Outcome, actions: &Actions) -> bool {
    match outcome.kind.class() {
        Class::None => false,
        Class::Hard => true,
        Class::Soft | Class::Silent => {
            outcome.kind == Kind::StreamTruncated || actions.get(outcome.kind) != Action::Pass
        }
    }
}

impl WatchedStream for StreamWatch {
    fn into_body(mut self: Box<Self>, finish: Finish, chain: Box<dyn Chain>) -> Body {
        self.finish = Some(finish);
        self.chain = Some(chain);
        let stream = futures_util::stream::unfold(self, |mut w| async move {
            w.next()
                .await
                .map(|b| (Ok::<_, std::convert::Infallible>(b), w))
        });
        Body::from_stream(stream)
    }
}
