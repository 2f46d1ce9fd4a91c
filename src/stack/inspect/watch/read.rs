//! The watcher's reading side: one chunk at a time from the upstream (or
//! its end, its silence, the deadline, the drain deadline), every complete
//! event in it judged and queued, and a stream that broke off continued
//! through the chain when the route repairs streams.

use bytes::Bytes;
use futures_util::StreamExt;

use crate::attempt::Continuation;
use crate::classify::{self, TransportFailure};
use crate::inspect::{EventVerdict, StreamEnd};
use crate::outcome::Outcome;
use crate::proxy::body::{timeout_of, BodyTimeout};
use crate::sse::SseParser;
use crate::taxonomy::Kind;

use super::{Out, State, StreamWatch};

impl StreamWatch {
    /// Reads one chunk from the upstream (or its end, its silence, the
    /// deadline, or the drain deadline).
    pub(super) async fn read(&mut self) {
        let next = tokio::select! {
            next = self.upstream.next() => next,
            () = self.cut.as_mut() => {
                let cut = Outcome::gateway(
                    Kind::Shutdown,
                    "the gateway shut down before the stream ended (drain deadline)",
                );
                self.end(StreamEnd::Cut, Some(cut));
                return;
            }
        };
        match next {
            Some(Ok(chunk)) => {
                self.parser.push(chunk);
                self.drain();
            }
            Some(Err(e)) => match timeout_of(&e) {
                Some(BodyTimeout::Idle(_)) => self.broken(StreamEnd::Idle).await,
                Some(BodyTimeout::Deadline) => {
                    let late = Outcome {
                        upstream_status: Some(self.upstream_status),
                        ..classify::transport(
                            TransportFailure::Stalled,
                            &BodyTimeout::Deadline.to_string(),
                        )
                    };
                    self.end(StreamEnd::Cut, Some(late));
                }
                None => self.broken(StreamEnd::Cut).await,
            },
            None => {
                // Release an event held back for a possible CRLF.
                self.parser.finish();
                self.drain();
                if self.state == State::Ended {
                    return;
                }
                if self.done.is_some() {
                    self.end(StreamEnd::Done, None);
                } else if self.inspector.all_finished() || self.unread {
                    // (An unread event may have been the terminal one: a
                    // clean close is the end.)
                    self.end(StreamEnd::Eof, None);
                } else {
                    self.broken(StreamEnd::Eof).await;
                }
            }
        }
    }

    /// The upstream broke off before every choice finished: continue
    /// through the chain when the route repairs streams and one choice of
    /// plain text went out; else end with the original failure.
    async fn broken(&mut self, end: StreamEnd) {
        // Released as a success, it failed after all: its target counts it.
        if let Some(chain) = self.chain.as_mut() {
            chain.broke(end);
        }
        // Not after an unread event: the text so far is not known whole.
        let partial = (!self.unread)
            .then(|| self.inspector.repairable_text().map(str::to_string))
            .flatten();
        if let (Some(chain), Some(partial)) = (self.chain.as_mut(), partial) {
            let cut = Continuation {
                partial,
                cause: end,
            };
            if let Some(resumed) = chain.resume(cut).await {
                // This attempt's stream broke off; the continuation's
                // attempt has its own span (the request's still takes the
                // answer's findings at the end).
                if let Some(span) = self.span.as_mut() {
                    let cut = Outcome::gateway(
                        Kind::StreamTruncated,
                        format!("the stream {}; a continuation went on", end.describe()),
                    );
                    span.end_here(&cut, &self.facts.secrets);
                }
                if let Some(splice) = self.splice.as_mut() {
                    splice.resume();
                }
                self.upstream = resumed.body.into_data_stream();
                // Whatever half event was pending belongs to the cut stream.
                self.parser = SseParser::new();
                return;
            }
        }
        self.end(end, None);
    }

    /// Handles every complete event the parser holds.
    fn drain(&mut self) {
        while let Some(event) = self.parser.next_event() {
            if event.oversized.is_some() {
                // An event past the parser's cap arrives in pieces, each
                // forwarded as it comes; the stream counts once as
                // uninspected.
                if !self.unread {
                    self.unread = true;
                    self.inspect.uninspected(self.facts.route);
                }
                self.push(event.raw);
                continue;
            }
            let Some(data) = event.data.as_deref() else {
                // Comments and keep-alives carry no data: forward as they are.
                self.push(event.raw);
                continue;
            };
            match self.inspector.observe(event.event.as_deref(), data) {
                EventVerdict::Forward => match self.splice.as_mut() {
                    Some(splice) => {
                        if let Some(bytes) = splice.pass(event.raw.clone(), data) {
                            self.push(bytes);
                        }
                    }
                    None => self.push(event.raw),
                },
                EventVerdict::Drop => self.inspect.malformed(self.facts.route),
                // The end event(s), held until the verdict: chat's `[DONE]`,
                // a Responses terminal event (and a `[DONE]` after it).
                EventVerdict::Done => {
                    self.done = Some(match self.done.take() {
                        Some(held) => [held, event.raw].concat().into(),
                        None => event.raw,
                    })
                }
                EventVerdict::Error(error) => {
                    let mut outcome = classify::classify_error_object(&error, None);
                    outcome.upstream_status = Some(self.upstream_status);
                    if outcome.upstream_request_id.is_none() {
                        outcome.upstream_request_id = self.upstream_request_id.clone();
                    }
                    self.end(StreamEnd::Cut, Some(outcome));
                    return;
                }
            }
        }
    }

    fn push(&mut self, bytes: Bytes) {
        self.held += bytes.len();
        self.queue.push_back(Out::Bytes(bytes));
    }
}
