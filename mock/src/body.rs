//! [`MockBody`]: the one response body type of the mock. A queue of
//! pre-built frames, each with the pause to take before it, ending cleanly
//! or with an error (which makes hyper drop the connection mid-body: the
//! `cut` steps). Plus small builders for whole responses.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// `application/json`.
pub const JSON: &str = "application/json";
/// `text/event-stream`.
pub const SSE: &str = "text/event-stream";
/// `text/html; charset=utf-8`.
pub const HTML: &str = "text/html; charset=utf-8";
/// `text/plain; charset=utf-8`.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// How a body ends once its frames are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Normally.
    Clean,
    /// With an error: the connection is closed without the body's end.
    Abort,
}

/// A response body made of frames sent one by one, each after its pause.
#[derive(Debug)]
pub struct MockBody {
    frames: VecDeque<(Duration, Bytes)>,
    end: Option<End>,
    exact: Option<u64>,
    /// Reused across pauses; allocated on the first one.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// Whether the body already yielded once before aborting, so that hyper
    /// flushes what was sent before it drops the connection.
    flushed: bool,
}

impl MockBody {
    /// One frame, sent at once, with its exact length.
    pub fn full(bytes: impl Into<Bytes>) -> MockBody {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        let frames = if bytes.is_empty() {
            Vec::new()
        } else {
            vec![(Duration::ZERO, bytes)]
        };
        MockBody::frames(frames, End::Clean).exact(len)
    }

    /// Frames with the pause before each, then `end`.
    pub fn frames(frames: Vec<(Duration, Bytes)>, end: End) -> MockBody {
        MockBody {
            frames: frames.into(),
            end: Some(end),
            exact: None,
            timer: None,
            armed: false,
            flushed: false,
        }
    }

    fn exact(mut self, len: u64) -> MockBody {
        self.exact = Some(len);
        self
    }

    fn finish(&mut self) -> Option<Result<Frame<Bytes>, io::Error>> {
        match self.end.take() {
            Some(End::Abort) => Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "backstop-mock: connection cut on purpose",
            ))),
            Some(End::Clean) | None => None,
        }
    }
}

impl http_body::Body for MockBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let Some((pause, _)) = this.frames.front() else {
            if this.end == Some(End::Abort) && !this.flushed {
                // Pending makes hyper flush the frames and headers it holds.
                this.flushed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            return Poll::Ready(this.finish());
        };
        if !pause.is_zero() {
            if !this.armed {
                let deadline = Instant::now() + *pause;
                match this.timer.as_mut() {
                    Some(timer) => timer.as_mut().reset(deadline),
                    None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                }
                this.armed = true;
            }
            if let Some(timer) = this.timer.as_mut() {
                ready!(timer.as_mut().poll(cx));
            }
            this.armed = false;
        }
        match this.frames.pop_front() {
            Some((_, bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            None => Poll::Ready(this.finish()),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.end != Some(End::Abort)
    }

    fn size_hint(&self) -> SizeHint {
        self.exact
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

/// A response with a status, an optional content type and a body.
pub fn response(
    status: StatusCode,
    content_type: Option<&'static str>,
    body: MockBody,
) -> Response<MockBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    if let Some(ct) = content_type {
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    resp
}

/// A whole JSON body.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<MockBody> {
    response(status, Some(JSON), MockBody::full(body))
}

/// An SSE stream (no buffering hints for proxies in between).
pub fn sse(body: MockBody) -> Response<MockBody> {
    let mut resp = response(StatusCode::OK, Some(SSE), body);
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    resp
}

/// A 200 JSON body sent the way a non-stream step asks: `cut:N` sends the
/// first N bytes (at most all but one) under the full `Content-Length`, then
/// drops the connection; `stall:MS` sends the first half, pauses, then the
/// rest; anything else sends it whole.
pub fn json_shaped(
    body: Vec<u8>,
    cut: Option<usize>,
    stall: Option<Duration>,
) -> Response<MockBody> {
    let len = body.len();
    let bytes = Bytes::from(body);
    match (cut, stall) {
        (Some(n), _) => {
            let sent = bytes.slice(..n.min(len.saturating_sub(1)));
            let frames = if sent.is_empty() {
                Vec::new()
            } else {
                vec![(Duration::ZERO, sent)]
            };
            let mut resp = response(
                StatusCode::OK,
                Some(JSON),
                MockBody::frames(frames, End::Abort),
            );
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            resp
        }
        (None, Some(pause)) => {
            let half = len / 2;
            let frames = vec![
                (Duration::ZERO, bytes.slice(..half)),
                (pause, bytes.slice(half..)),
            ];
            let mut resp = response(
                StatusCode::OK,
                Some(JSON),
                MockBody::frames(frames, End::Clean),
            );
            resp.headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(len));
            resp
        }
        (None, None) => json(StatusCode::OK, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn frames_come_after_their_pause_then_the_end() {
        let frames = vec![
            (Duration::ZERO, Bytes::from_static(b"a")),
            (Duration::from_millis(50), Bytes::from_static(b"b")),
        ];
        let mut body = MockBody::frames(frames, End::Abort);
        let start = Instant::now();
        let first = body
            .frame()
            .await
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok());
        assert_eq!(first, Some(Bytes::from_static(b"a")));
        assert_eq!(start.elapsed(), Duration::ZERO);
        let second = body
            .frame()
            .await
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok());
        assert_eq!(second, Some(Bytes::from_static(b"b")));
        assert_eq!(start.elapsed(), Duration::from_millis(50));
        let end = body
            .frame()
            .await
            .map(|f| f.map(|_| ()).map_err(|e| e.kind()));
        assert_eq!(end, Some(Err(io::ErrorKind::ConnectionAborted)));
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn full_body_has_its_exact_length() {
        let body = MockBody::full("hello");
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        let bytes = body.collect().await.map(|c| c.to_bytes()).ok();
        assert_eq!(bytes, Some(Bytes::from_static(b"hello")));
        assert!(http_body::Body::is_end_stream(&MockBody::full("")));
    }
}
