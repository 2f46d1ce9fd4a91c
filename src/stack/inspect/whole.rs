//! Whole answers (chat completions, completions, images), read up to
//! `inspect.max_body_bytes` and given the kind their body shows.

use std::sync::Arc;

use axum::body::Body;
use http::Response;

use crate::attempt::{AnswerBody, Attempt};
use crate::classify::{self, TransportFailure};
use crate::facts::RequestFacts;
use crate::inspect::{inspect_body, inspect_images, Endpoint, Findings};
use crate::outcome::Outcome;
use crate::proxy::body::{prefixed, read_capped, Read};
use crate::taxonomy::Kind;

use super::state::InspectState;

/// Reads and judges a whole answer.
pub async fn inspect_whole(
    state: &Arc<InspectState>,
    facts: &RequestFacts,
    mut attempt: Attempt,
    resp: Response<Body>,
) -> Attempt {
    let (parts, body) = resp.into_parts();
    match read_capped(body, state.inspect.max_body_bytes).await {
        Read::Whole(bytes) => {
            let findings = if facts.expect.endpoint == Endpoint::ImagesGenerations {
                inspect_images(&bytes)
            } else {
                inspect_body(&facts.expect, &bytes)
            };
            state.record_findings(facts, &findings);
            apply(&mut attempt.outcome, &findings);
            attempt.response = Some(Response::from_parts(
                parts,
                AnswerBody::Plain(Body::from(bytes)),
            ));
            attempt
        }
        Read::TooLarge(prefix, rest) => {
            state.uninspected(facts.route);
            attempt.response = Some(Response::from_parts(
                parts,
                AnswerBody::Plain(prefixed(prefix, rest)),
            ));
            attempt
        }
        Read::Stalled(t) => Attempt {
            outcome: classify::transport(TransportFailure::Stalled, &t.to_string()),
            response: None,
            ..attempt
        },
        Read::Broken(detail) => Attempt {
            outcome: classify::transport(TransportFailure::Reset, &detail),
            response: None,
            ..attempt
        },
    }
}

/// Gives the outcome the kind the body shows, with its details.
pub fn apply(outcome: &mut Outcome, findings: &Findings) {
    outcome.kind = findings.kind;
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
