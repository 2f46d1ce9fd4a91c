//! The last word on an answer: an [`Attempt`] becomes what the client gets.
//! Successes (and soft/silent failures under `pass`) are forwarded with the
//! `x-backstop-*` headers; everything else becomes the CONTRACT.md §3
//! envelope via [`crate::envelope`], the one mapping from outcome to error.

use axum::body::Body;
use http::{HeaderValue, Response};

use crate::actions::Actions;
use crate::config::Action;
use crate::context::Ledger;
use crate::envelope::{
    self, EnvelopeContext, X_BACKSTOP_ATTEMPTS, X_BACKSTOP_CLASS, X_BACKSTOP_KIND,
    X_BACKSTOP_TARGET,
};
use crate::outcome::Outcome;
use crate::proxy::attempt::Attempt;
use crate::taxonomy::Class;

/// What rendering needs besides the attempt.
pub struct RenderContext<'a> {
    pub ledger: &'a Ledger,
    /// The request's `[inspect]` actions.
    pub actions: Actions,
    pub max_attempts: u32,
    /// Values to redact from upstream messages (the client's token, the
    /// configured key).
    pub secrets: &'a [&'a str],
}

/// Turns the final attempt into the client's response and notes the result
/// in the ledger.
pub fn render(attempt: Attempt, ctx: &RenderContext<'_>) -> Response<Body> {
    let Attempt { outcome, response } = attempt;
    let kind = outcome.kind;
    let forward = match kind.class() {
        Class::None => true,
        Class::Hard => false,
        Class::Soft | Class::Silent => ctx.actions.get(kind) == Action::Pass,
    };
    let attempts = ctx.ledger.entry().attempts;
    match response {
        Some(mut resp) if forward => {
            annotate(resp.headers_mut(), &outcome, attempts);
            if let Some(label) = ctx.ledger.entry().target_label.as_deref() {
                if let Ok(v) = HeaderValue::from_str(label) {
                    resp.headers_mut().insert(X_BACKSTOP_TARGET, v);
                }
            }
            note(ctx.ledger, outcome, resp.status().as_u16());
            resp
        }
        _ => error(outcome, attempts, ctx),
    }
}

/// The envelope answer for an outcome (also used for the gateway's own
/// failures: 413, pre-flight, panics).
pub fn error(outcome: Outcome, attempts: u32, ctx: &RenderContext<'_>) -> Response<Body> {
    let (target, kinds) = {
        let entry = ctx.ledger.entry();
        (entry.target_label.clone(), entry.attempt_kinds.clone())
    };
    let env = EnvelopeContext {
        attempts,
        request_id: ctx.ledger.request_id_str(),
        secrets: ctx.secrets,
        max_attempts: ctx.max_attempts,
        target: target.as_deref(),
        attempt_kinds: &kinds,
    };
    let resp = envelope::response(&outcome, &env).map(Body::from);
    note(ctx.ledger, outcome, resp.status().as_u16());
    resp
}

/// Adds `x-backstop-attempts/class/kind` to a forwarded answer.
pub fn annotate(headers: &mut http::HeaderMap, outcome: &Outcome, attempts: u32) {
    headers.insert(X_BACKSTOP_ATTEMPTS, HeaderValue::from(attempts));
    headers.insert(
        X_BACKSTOP_CLASS,
        HeaderValue::from_static(outcome.class().as_str()),
    );
    headers.insert(
        X_BACKSTOP_KIND,
        HeaderValue::from_static(outcome.kind.as_str()),
    );
}

fn note(ledger: &Ledger, outcome: Outcome, status: u16) {
    let mut entry = ledger.entry();
    entry.outcome = outcome;
    entry.status = status;
}
