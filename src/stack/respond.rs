//! The last word on an answer: the retry chain's [`Exchange`] becomes what
//! the client gets. Successes (and soft/silent failures under `pass`) are
//! forwarded with the `x-backstop-*` headers; everything else becomes the
//! CONTRACT.md §3 envelope via [`crate::envelope`], the one mapping from
//! outcome to error. The final outcome is recorded here for a whole
//! answer; a watched stream records its own when it ends.

use axum::body::Body;
use http::{HeaderValue, Response};

use crate::actions::Actions;
use crate::attempt::{AnswerBody, Attempt, Exchange, Tally};
use crate::config::{Action, Config};
use crate::drain::Drain;
use crate::envelope::{
    self, EnvelopeContext, X_BACKSTOP_ATTEMPTS, X_BACKSTOP_CLASS, X_BACKSTOP_KIND,
    X_BACKSTOP_TARGET,
};
use crate::inspect::Endpoint;
use crate::outcome::Outcome;
use crate::record::{Finish, Record};
use crate::secrets::Secrets;
use crate::taxonomy::Class;

use super::deliver::Delivered;

/// What rendering needs besides the exchange.
pub struct RenderContext<'a> {
    pub request_id: &'a str,
    /// The request's `[inspect]` actions.
    pub actions: Actions,
    pub max_attempts: u32,
    /// The credentials to redact from anything passed on.
    pub secrets: &'a Secrets,
    /// Cuts a forwarded body at the drain deadline.
    pub drain: &'a Drain,
    /// The API called, for the hint's wording.
    pub endpoint: Endpoint,
    /// `envelope.hint_in_message`.
    pub hint_in_message: bool,
}

impl<'a> RenderContext<'a> {
    /// For the request of `record`, under `config`.
    pub fn of(
        record: &'a Record,
        config: &Config,
        drain: &'a Drain,
        endpoint: Endpoint,
        actions: Actions,
        secrets: &'a Secrets,
    ) -> RenderContext<'a> {
        RenderContext {
            request_id: record.request_id_str(),
            actions,
            max_attempts: config.retry.max_attempts,
            secrets,
            drain,
            endpoint,
            hint_in_message: config.envelope.hint_in_message,
        }
    }
}

/// Turns the chain's final attempt into the client's response.
pub fn render(exchange: Exchange, ctx: &RenderContext<'_>, finish: Finish) -> Response<Body> {
    let Exchange { attempt, chain } = exchange;
    let Attempt {
        mut outcome,
        response,
        ..
    } = attempt;
    outcome.redact(ctx.secrets);
    let tally = chain.tally().clone();
    let kind = outcome.kind;
    let forward = match kind.class() {
        Class::None => true,
        Class::Hard | Class::Aborted => false,
        Class::Soft | Class::Silent => ctx.actions.get(kind) == Action::Pass,
    };
    match response {
        Some(resp) if forward => {
            let (mut parts, body) = resp.into_parts();
            redact_headers(&mut parts.headers, ctx.secrets);
            annotate(&mut parts.headers, &outcome, &tally);
            match body {
                AnswerBody::Plain(body) => {
                    let status = parts.status.as_u16();
                    let length = parts
                        .headers
                        .get(http::header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok());
                    let body = Delivered::body(body, length, finish, outcome, status, ctx.drain);
                    Response::from_parts(parts, body)
                }
                AnswerBody::Watched(watched) => {
                    Response::from_parts(parts, watched.into_body(finish, chain))
                }
            }
        }
        _ => error(outcome, &tally, ctx, finish),
    }
}

/// The envelope answer for an outcome (also used for the gateway's own
/// failures: 413, pre-flight).
pub fn error(
    outcome: Outcome,
    tally: &Tally,
    ctx: &RenderContext<'_>,
    finish: Finish,
) -> Response<Body> {
    let env = EnvelopeContext {
        attempts: tally.attempts,
        request_id: ctx.request_id,
        secrets: ctx.secrets,
        max_attempts: ctx.max_attempts,
        target: tally.target.as_deref(),
        attempt_kinds: &tally.kinds,
        endpoint: ctx.endpoint,
        actions: ctx.actions,
        hint_in_message: ctx.hint_in_message,
    };
    let resp = envelope::response(&outcome, &env).map(Body::from);
    finish.done(outcome, resp.status().as_u16());
    resp
}

/// An upstream that echoes a credential in a header of its answer does not
/// get it past the gateway.
fn redact_headers(headers: &mut http::HeaderMap, secrets: &Secrets) {
    if secrets.is_empty() {
        return;
    }
    for value in headers.values_mut() {
        if let Ok(text) = value.to_str() {
            if secrets.found_in(text) {
                if let Ok(v) = HeaderValue::from_str(&secrets.redact(text)) {
                    *value = v;
                }
            }
        }
    }
}

/// Adds `x-backstop-attempts/class/kind/target` to a forwarded answer.
fn annotate(headers: &mut http::HeaderMap, outcome: &Outcome, tally: &Tally) {
    headers.insert(
        X_BACKSTOP_ATTEMPTS,
        envelope::attempts_value(tally.attempts),
    );
    headers.insert(
        X_BACKSTOP_CLASS,
        HeaderValue::from_static(outcome.class().as_str()),
    );
    headers.insert(
        X_BACKSTOP_KIND,
        HeaderValue::from_static(outcome.kind.as_str()),
    );
    if let Some(v) = tally
        .target
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
    {
        headers.insert(X_BACKSTOP_TARGET, v);
    }
}
