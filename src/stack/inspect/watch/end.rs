//! The watcher's ending: how the stream ends (the verdict on what was
//! read, or the failure that ended it), the last bytes it queues — its
//! `[DONE]`, the closing error event, or nothing — and the final outcome
//! recorded when they went out.

use bytes::Bytes;

use crate::envelope::{self, EnvelopeContext};
use crate::inspect::{Findings, StreamEnd};
use crate::outcome::Outcome;
use crate::taxonomy::{Class, Kind};

use super::super::whole::apply;
use super::{fails, Out, State, StreamWatch};

impl StreamWatch {
    /// Decides how the stream ends and queues its last bytes.
    pub(super) fn end(&mut self, end: StreamEnd, in_band: Option<Outcome>) {
        self.state = State::Ended;
        // An incomplete trailing event is never forwarded: half a JSON
        // object would break the client's parser before it saw our error.
        let _partial = self.parser.take_pending();
        let mut findings = self.inspector.finish(end);
        if self.unread {
            unread(&mut findings, end);
        }
        self.inspect.record_findings(&self.facts, &findings);
        if let Some(span) = self.span.as_mut() {
            span.answered(&findings);
        }
        let outcome = in_band.unwrap_or_else(|| {
            let mut outcome = Outcome {
                upstream_status: Some(self.upstream_status),
                upstream_request_id: self.upstream_request_id.clone(),
                ..Outcome::default()
            };
            apply(&mut outcome, &findings);
            outcome
        });
        if fails(&outcome, &self.facts.actions) {
            self.queue.push_back(Out::Error);
        } else if outcome.kind == Kind::StreamTruncated {
            // `pass` only annotates: no error event, and no [DONE] either —
            // the stream was not complete.
            self.queue.push_back(Out::Close);
        } else {
            match (self.done.take(), self.inspector.done_event()) {
                (Some(done), _) => self.queue.push_back(Out::Done(done)),
                (None, Some(done)) => self.queue.push_back(Out::Done(Bytes::from_static(done))),
                // The API ends without one (the Responses API).
                (None, None) => self.queue.push_back(Out::Close),
            }
        }
        if let Some(span) = self.span.take() {
            span.end(&outcome, &self.facts.secrets);
        }
        self.ending = Some((outcome, end));
    }

    /// The closing error event, with the attempts as the chain counts them.
    pub(super) fn error_event(&self) -> Bytes {
        let mut outcome = self.ending.clone().map(|(o, _)| o).unwrap_or_default();
        let secrets = &self.facts.secrets;
        outcome.redact(secrets);
        let tally = self
            .chain
            .as_ref()
            .map(|c| c.tally().clone())
            .unwrap_or_default();
        let ctx = EnvelopeContext {
            attempts: tally.attempts,
            request_id: self.facts.request_id.to_str().unwrap_or(""),
            secrets,
            max_attempts: self.chain.as_ref().map_or(1, |c| c.max_attempts()),
            target: tally.target.as_deref(),
            attempt_kinds: &tally.kinds,
            endpoint: self.facts.expect.endpoint,
            actions: self.facts.actions,
            hint_in_message: self.inspect.hint_in_message,
        };
        envelope::sse_error_event(&outcome, &ctx, self.inspector.error_style())
    }

    /// Records the final outcome (once).
    pub(super) fn finish(&mut self) {
        if let Some(finish) = self.finish.take() {
            let mut outcome = self.ending.clone().map(|(o, _)| o).unwrap_or_default();
            outcome.redact(&self.facts.secrets);
            finish.done(outcome, 200);
        }
    }
}

/// Findings of a stream that had an event go out unread: what rests on the
/// whole content — empty, JSON, schema, an end that never came, at a clean
/// close — is unknown, not failed. What was read stays: finish reasons,
/// usage, an error, and a cut or a stall (the transport's own facts).
fn unread(findings: &mut Findings, end: StreamEnd) {
    let clean = matches!(end, StreamEnd::Done | StreamEnd::Eof);
    if clean && findings.error.is_none() && findings.kind.class() == Class::Silent {
        findings.kind = Kind::Ok;
        findings.detail = None;
        findings.subject = Default::default();
    }
}
