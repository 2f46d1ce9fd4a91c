//! The stream watcher: an SSE body passes through it event by event, as
//! fast as it comes, while a [`StreamInspector`] reads each event. It
//! - forwards every event's bytes unchanged (zero-copy: the parser's slices);
//! - drops an event whose data is not JSON (`malformed_event`, counted);
//! - forwards an event too large to read (past the parser's cap) unread, as
//!   a whole body too large to inspect is: counted uninspected, and from
//!   then on no verdict rests on the content (see [`StreamWatch::end`]);
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
//!
//! Here: the lookahead ([`watch`]) and the watcher's state and output;
//! its reading side is in `read`, its ending in `end`.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use http::{header, Response};
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::actions::Actions;
use crate::attempt::{AnswerBody, Attempt, Chain, WatchedStream};
use crate::classify::{self, TransportFailure};
use crate::config::{ms, Action};
use crate::facts::RequestFacts;
use crate::inspect::{stream_inspector, EventInspector, StreamEnd};
use crate::otel::AttemptSpan;
use crate::outcome::Outcome;
use crate::record::Finish;
use crate::sse::SseParser;
use crate::taxonomy::{Class, Kind};

mod end;
mod read;

use super::splice::Splice;
use super::state::InspectState;
use super::whole::apply;

/// Puts a streamed success under watch, looking ahead first when an early
/// verdict could still change the answer (an action other than `pass` for
/// the kinds visible before any content). The lookahead holds the first
/// events until the output starts (content, a tool call, reasoning), every
/// choice finished or the stream ended — at most
/// `inspect.stream_lookahead_max_ms` and `stream_lookahead_max_bytes`.
/// Whatever fails while nothing was released is a failed attempt, for the
/// chain to retry or answer with a status and the envelope.
pub async fn watch(
    state: &Arc<InspectState>,
    facts: &Arc<RequestFacts>,
    attempt: Attempt,
    resp: Response<Body>,
    first_token: FirstToken,
) -> Attempt {
    let (mut parts, body) = resp.into_parts();
    let mut watch = StreamWatch::new(body, facts.clone(), state.clone(), &attempt.outcome);
    let inspect = &state.inspect;
    let lookahead = inspect.stream_lookahead
        && [Kind::ContentFilter, Kind::EmptyContent]
            .into_iter()
            .any(|k| facts.actions.get(k) != Action::Pass);
    // A first-token limit (or a hedge waiting for the first token) holds
    // the stream until then; the lookahead alone for its own while.
    let until = match first_token {
        FirstToken {
            limit: Some((at, _)),
            ..
        } => Some(at),
        FirstToken { wait: true, .. } => Some(facts.deadline),
        _ if lookahead => Some(Instant::now() + ms(inspect.stream_lookahead_max_ms)),
        _ => None,
    };
    if let Some(until) = until {
        let max_bytes = usize::try_from(inspect.stream_lookahead_max_bytes).unwrap_or(usize::MAX);
        while !watch.decided() && watch.held_bytes() < max_bytes {
            match tokio::time::timeout_at(until, watch.hold_next()).await {
                Ok(true) => {}
                // The stream ended, or the time is up.
                Ok(false) | Err(_) => break,
            }
        }
        if let Some(failed) = watch.failed_before_release() {
            return Attempt {
                outcome: failed,
                response: None,
                ..attempt
            };
        }
        if let FirstToken {
            limit: Some((at, limit)),
            ..
        } = first_token
        {
            if !watch.decided() && Instant::now() >= at {
                let detail = format!("nothing after {} ms", limit.as_millis());
                return Attempt {
                    outcome: Outcome {
                        upstream_status: attempt.outcome.upstream_status,
                        upstream_request_id: attempt.outcome.upstream_request_id.clone(),
                        ..classify::transport(TransportFailure::NoFirstToken, &detail)
                    },
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

/// What an attempt waits for its first token (a content or reasoning
/// delta, a tool call): a limit — the time it must come by, and the limit
/// itself for the message — and whether the attempt comes back only once it
/// came (a hedge's).
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstToken {
    pub limit: Option<(Instant, std::time::Duration)>,
    pub wait: bool,
}

impl FirstToken {
    /// For an attempt started at `started`.
    pub fn of(req: &crate::attempt::AttemptRequest, started: Instant) -> FirstToken {
        FirstToken {
            limit: req.first_token_timeout.map(|l| (started + l, l)),
            wait: req.await_first_token,
        }
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
    /// The end, with nothing added (a truncation under `pass`).
    Close,
}

/// A streamed answer under watch.
pub struct StreamWatch {
    upstream: BodyDataStream,
    parser: SseParser,
    inspector: Box<dyn EventInspector>,
    queue: VecDeque<Out>,
    /// Bytes queued and not yet sent (what the lookahead holds).
    held: usize,
    /// The upstream's own `[DONE]` event, held until the verdict.
    done: Option<Bytes>,
    state: State,
    inspect: Arc<InspectState>,
    facts: Arc<RequestFacts>,
    /// Resolves at the drain deadline.
    cut: Pin<Box<WaitForCancellationFutureOwned>>,
    upstream_status: u16,
    upstream_request_id: Option<String>,
    /// How the stream ended, once it did: the outcome and the end.
    ending: Option<(Outcome, StreamEnd)>,
    /// Given when the stream is released to the client.
    finish: Option<Finish>,
    chain: Option<Box<dyn Chain>>,
    /// On a route that repairs chat streams: makes a continuation read as
    /// the first stream.
    splice: Option<Splice>,
    /// An event too large to read went out: the content is not known whole.
    unread: bool,
    /// The span of the attempt whose stream this is, when traced: ended
    /// with the stream.
    span: Option<AttemptSpan>,
}

impl StreamWatch {
    fn new(
        body: Body,
        facts: Arc<RequestFacts>,
        inspect: Arc<InspectState>,
        upstream: &Outcome,
    ) -> StreamWatch {
        let inspector = stream_inspector(&facts.expect, facts.plan.repair_streams);
        let splice = (facts.plan.repair_streams
            && facts.expect.endpoint == crate::inspect::Endpoint::ChatCompletions)
            .then(Splice::default);
        StreamWatch {
            upstream: body.into_data_stream(),
            parser: SseParser::new(),
            inspector,
            queue: VecDeque::new(),
            held: 0,
            done: None,
            state: State::Flowing,
            cut: Box::pin(inspect.drain.cut_owned()),
            inspect,
            facts,
            upstream_status: upstream.upstream_status.unwrap_or(200),
            upstream_request_id: upstream.upstream_request_id.clone(),
            ending: None,
            finish: None,
            chain: None,
            splice,
            unread: false,
            span: None,
        }
    }

    /// Whether the answer's fate is visible yet: its output started, every
    /// choice finished, the stream ended — or it cannot be seen (an event
    /// went out unread).
    fn decided(&self) -> bool {
        self.unread
            || self.inspector.output_started()
            || self.inspector.all_finished()
            || self.state == State::Ended
    }

    /// Bytes held so far.
    fn held_bytes(&self) -> usize {
        self.held
    }

    /// After the lookahead, before anything went out: the failure the
    /// stream already shows, as a failed attempt's outcome. A stream that
    /// ended is judged whole (a cut or a silence before its output is a
    /// transport failure, retryable like one before the headers); one whose
    /// every choice finished is judged on its findings so far; one whose
    /// output started, or that ran out of lookahead, goes out. A stream cut
    /// by the drain deadline goes out too, to close with its event.
    fn failed_before_release(&self) -> Option<Outcome> {
        let failed = match &self.ending {
            Some((outcome, end)) => match outcome.kind {
                Kind::Shutdown => return None,
                Kind::StreamTruncated => {
                    let (failure, what) = match end {
                        StreamEnd::Idle => (
                            TransportFailure::Stalled,
                            "the stream went silent before its output",
                        ),
                        StreamEnd::Cut | StreamEnd::Eof | StreamEnd::Done => (
                            TransportFailure::Reset,
                            "the stream broke off before its output",
                        ),
                    };
                    Outcome {
                        upstream_request_id: outcome.upstream_request_id.clone(),
                        ..classify::transport(failure, what)
                    }
                }
                _ => outcome.clone(),
            },
            None if self.inspector.all_finished() => {
                let findings = self.inspector.finish(StreamEnd::Done);
                let mut outcome = Outcome::ok(self.upstream_status);
                outcome.upstream_request_id = self.upstream_request_id.clone();
                apply(&mut outcome, &findings);
                outcome
            }
            None => return None,
        };
        fails(&failed, &self.facts.actions).then_some(failed)
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
                Some(Out::Bytes(bytes)) => {
                    self.held = self.held.saturating_sub(bytes.len());
                    return Some(bytes);
                }
                Some(Out::Done(bytes)) => {
                    self.finish();
                    return Some(bytes);
                }
                Some(Out::Error) => {
                    let event = self.error_event();
                    self.finish();
                    return Some(event);
                }
                Some(Out::Close) => {
                    self.finish();
                    return None;
                }
                None if self.state == State::Ended => return None,
                None => self.read().await,
            }
        }
    }
}

/// Whether a stream's ending is a failure: hard and aborted kinds always;
/// soft and silent ones unless their action is `pass` — after the first
/// byte a `retry` can no longer act and degrades to `fail`, as the README
/// says.
fn fails(outcome: &Outcome, actions: &Actions) -> bool {
    match outcome.kind.class() {
        Class::None => false,
        Class::Hard | Class::Aborted => true,
        Class::Soft | Class::Silent => actions.get(outcome.kind) != Action::Pass,
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

    fn follow(&mut self, span: AttemptSpan) {
        self.span = Some(span);
    }
}
