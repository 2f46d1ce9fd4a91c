//! Whole answers (chat completions, completions, images), read up to
//! `inspect.max_body_bytes` and given the kind their body shows.

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::Response;

use crate::attempt::{AnswerBody, Attempt};
use crate::classify::{self, TransportFailure};
use crate::facts::RequestFacts;
use crate::inspect::{inspect_whole as inspect_whole_body, Findings};
use crate::outcome::Outcome;
use crate::proxy::body::{prefixed, read_capped, Read};
use crate::taxonomy::Kind;

use super::state::InspectState;

/// A whole answer, read and found not to be an error, or the attempt's
/// end (a failure, or a body too large to inspect, forwarded as it is).
pub enum Answer {
    Read(http::response::Parts, Bytes, Attempt),
    Done(Attempt),
}

/// Reads a whole answer up to `inspect.max_body_bytes` and runs the one
/// classifier every whole 2xx goes through: a body that is only an error
/// object (or HTML, or broken JSON) is that failure, on every endpoint read
/// here. A stall or a cut while reading is a failed attempt.
pub async fn read_answer(
    state: &Arc<InspectState>,
    facts: &RequestFacts,
    mut attempt: Attempt,
    resp: Response<Body>,
) -> Answer {
    let (parts, body) = resp.into_parts();
    match read_capped(body, state.inspect.max_body_bytes).await {
        Read::Whole(bytes) => {
            let classified = classify::classify(parts.status, &parts.headers, &bytes);
            if classified.is_ok() {
                return Answer::Read(parts, bytes, attempt);
            }
            let upstream_request_id = attempt
                .outcome
                .upstream_request_id
                .take()
                .or(classified.upstream_request_id.clone());
            Answer::Done(Attempt {
                outcome: Outcome {
                    upstream_request_id,
                    ..classified
                },
                response: None,
                ..attempt
            })
        }
        Read::TooLarge(prefix, rest) => {
            state.uninspected(facts.route);
            attempt.response = Some(Response::from_parts(
                parts,
                AnswerBody::Plain(prefixed(prefix, rest)),
            ));
            Answer::Done(attempt)
        }
        Read::Stalled(t) => Answer::Done(Attempt {
            outcome: classify::transport(TransportFailure::Stalled, &t.to_string()),
            response: None,
            ..attempt
        }),
        Read::Broken(detail) => Answer::Done(Attempt {
            outcome: classify::transport(TransportFailure::Reset, &detail),
            response: None,
            ..attempt
        }),
    }
}

/// Reads and judges a whole answer by its endpoint's rules.
pub async fn inspect_whole(
    state: &Arc<InspectState>,
    facts: &RequestFacts,
    attempt: Attempt,
    resp: Response<Body>,
) -> Attempt {
    let (parts, bytes, mut attempt) = match read_answer(state, facts, attempt, resp).await {
        Answer::Read(parts, bytes, attempt) => (parts, bytes, attempt),
        Answer::Done(attempt) => return attempt,
    };
    let findings = inspect_whole_body(&facts.expect, &bytes);
    state.record_findings(facts, &findings);
    apply(&mut attempt.outcome, &findings);
    attempt.response = Some(Response::from_parts(
        parts,
        AnswerBody::Plain(Body::from(bytes)),
    ));
    attempt.findings = Some(findings);
    attempt
}

/// Gives the outcome the kind the body shows, with its details.
pub fn apply(outcome: &mut Outcome, findings: &Findings) {
    if let Some(error) = &findings.error {
        // The answer reported a failure: it is that error's, classified.
        let failed = classify::classify_error_object(error, None);
        *outcome = Outcome {
            upstream_status: outcome.upstream_status,
            upstream_request_id: outcome
                .upstream_request_id
                .take()
                .or(failed.upstream_request_id.clone()),
            model: findings.model.clone(),
            ..failed
        };
        return;
    }
    outcome.kind = findings.kind;
    outcome.subject = findings.subject;
    outcome.model = findings.model.clone();
    outcome.finish_reason = findings.notable_finish_reason();
    if findings.kind != Kind::Ok {
        outcome.message = Some(describe(outcome, findings.detail.as_deref()));
    }
}

/// The envelope message for a soft or silent failure: what it is, then the
/// inspector's detail (which choice, the JSON or schema error).
pub fn describe(outcome: &Outcome, detail: Option<&str>) -> String {
    let what = crate::envelope::default_message(outcome);
    match detail {
        Some(d) if !d.is_empty() => format!("{what}: {d}"),
        Some(_) | None => what,
    }
}
