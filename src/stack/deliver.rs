//! Delivering a forwarded answer that is not watched (a whole body, a
//! pass-through such as embeddings, audio or files, a video poll): its
//! bytes pass untouched, and its end is what the request's record is told —
//! the answer's own outcome when the last byte went out; `timeout` when the
//! upstream stalled or the deadline came mid-body (the body is cut: a
//! client never mistakes half a body for a whole one); `connect_error` when
//! the upstream broke it off; `shutdown` when the drain deadline cut it. A
//! client that leaves first leaves the record unfinished (`client_closed`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::drain::Drain;
use crate::outcome::Outcome;
use crate::proxy::body::timeout_of;
use crate::record::Finish;
use crate::taxonomy::Kind;

pin_project_lite::pin_project! {
    /// A forwarded body that records how it ended.
    pub struct Delivered {
        #[pin]
        inner: Body,
        #[pin]
        cut: WaitForCancellationFutureOwned,
        finish: Option<(Finish, Outcome, u16)>,
        // Bytes still due when the answer has a Content-Length: a body that
        // reached it is over, whether or not it is polled again.
        remaining: Option<u64>,
    }
}

impl Delivered {
    /// Delivers `inner`, the answer to forward with `outcome` and `status`
    /// (and `length` bytes, when its Content-Length says so), as the
    /// client's body.
    pub fn body(
        inner: Body,
        length: Option<u64>,
        finish: Finish,
        outcome: Outcome,
        status: u16,
        drain: &Drain,
    ) -> Body {
        if http_body::Body::is_end_stream(&inner) {
            // An empty body is never polled: it is delivered now.
            finish.done(outcome, status);
            return inner;
        }
        Body::new(Delivered {
            inner,
            cut: drain.cut_owned(),
            finish: Some((finish, outcome, status)),
            remaining: length,
        })
    }
}

/// How a body that broke off is counted.
fn broken(error: &axum::Error, outcome: &Outcome) -> Outcome {
    let (kind, what) = match timeout_of(error) {
        Some(t) => (Kind::Timeout, t.to_string()),
        None => (
            Kind::ConnectError,
            format!("the upstream broke off its answer: {error}"),
        ),
    };
    Outcome {
        kind,
        message: Some(what),
        ..outcome.clone()
    }
}

impl http_body::Body for Delivered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        if this.finish.is_some() && this.cut.poll(cx).is_ready() {
            if let Some((finish, outcome, status)) = this.finish.take() {
                let message = "the gateway shut down before the answer ended (drain deadline)";
                let cut = Outcome {
                    kind: Kind::Shutdown,
                    message: Some(message.into()),
                    ..outcome
                };
                finish.done(cut, status);
            }
            return Poll::Ready(Some(Err(axum::Error::new("cut at the drain deadline"))));
        }
        let mut inner = this.inner;
        let polled = inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(left), Some(data)) = (this.remaining.as_mut(), frame.data_ref()) {
                    *left = left.saturating_sub(data.len() as u64);
                }
                *this.remaining == Some(0) || inner.is_end_stream()
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some((finish, outcome, status)) = this.finish.take() {
                    finish.done(broken(e, &outcome), status);
                }
                false
            }
            Poll::Pending => false,
        };
        if ended {
            if let Some((finish, outcome, status)) = this.finish.take() {
                finish.done(outcome, status);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == Some(0) || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
