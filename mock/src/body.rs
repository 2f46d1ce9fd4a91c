//! [`MockBody`]: the one response body type of the mock. A queue of
//! pre-built frames (or [`Run`]s of one frame repeated, sent lazily), each
//! with the pause to take before it, optionally gzip-compressed on the way
//! out, ending cleanly or with an error (which makes hyper drop the
//! connection mid-body: the `cut` steps). Plus small builders for whole
//! responses; `whole` shapes them by step.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::gzip::Gzip;

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

/// A run of identical frames: `bytes`, sent `times` times, each after
/// `pause` (so a long run costs one frame of memory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The pause before each frame.
    pub pause: Duration,
    /// The frame.
    pub bytes: Bytes,
    /// How many times it is sent.
    pub times: usize,
}

impl Run {
    /// One frame after `pause`.
    pub fn once(pause: Duration, bytes: Bytes) -> Run {
        Run {
            pause,
            bytes,
            times: 1,
        }
    }
}

/// A response body made of frames sent one by one, each after its pause.
#[derive(Debug)]
pub struct MockBody {
    runs: VecDeque<Run>,
    end: Option<End>,
    exact: Option<u64>,
    /// Reused across pauses; allocated on the first one.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    /// Whether the body already yielded once before aborting, so that hyper
    /// flushes what was sent before it drops the connection.
    flushed: bool,
    /// Compresses every frame on its way out (`gzip` streams).
    gzip: Option<Box<Gzip>>,
}

impl MockBody {
    /// One frame, sent at once, with its exact length.
    pub fn full(bytes: impl Into<Bytes>) -> MockBody {
        MockBody::after(Duration::ZERO, bytes)
    }

    /// One frame sent after `pause`, with its exact length announced at
    /// once (`hold`).
    pub fn after(pause: Duration, bytes: impl Into<Bytes>) -> MockBody {
        let bytes: Bytes = bytes.into();
        let len = bytes.len() as u64;
        let frames = if bytes.is_empty() {
            Vec::new()
        } else {
            vec![(pause, bytes)]
        };
        MockBody::frames(frames, End::Clean).exact(len)
    }

    /// Frames with the pause before each, then `end`.
    pub fn frames(frames: Vec<(Duration, Bytes)>, end: End) -> MockBody {
        MockBody::runs(
            frames
                .into_iter()
                .map(|(pause, bytes)| Run::once(pause, bytes))
                .collect(),
            end,
        )
    }

    /// Runs of frames, then `end`.
    pub fn runs(runs: Vec<Run>, end: End) -> MockBody {
        MockBody {
            runs: runs.into(),
            end: Some(end),
            exact: None,
            timer: None,
            armed: false,
            flushed: false,
            gzip: None,
        }
    }

    /// Compresses the frames as a gzip stream, flushed per frame.
    pub fn gzipped(mut self) -> MockBody {
        self.gzip = Some(Box::new(Gzip::new()));
        self.exact = None;
        self
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
            Some(End::Clean) => match self.gzip.take() {
                // The gzip trailer is the last frame of a clean end.
                Some(gzip) => {
                    self.end = None;
                    Some(Ok(Frame::data(gzip.finish())))
                }
                None => None,
            },
            None => None,
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
        while this.runs.front().is_some_and(|run| run.times == 0) {
            this.runs.pop_front();
        }
        let Some(Run { pause, .. }) = this.runs.front() else {
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
        let Some(run) = this.runs.front_mut() else {
            return Poll::Ready(this.finish());
        };
        run.times -= 1;
        let bytes = if run.times == 0 {
            this.runs
                .pop_front()
                .map_or_else(Bytes::new, |run| run.bytes)
        } else {
            run.bytes.clone()
        };
        let bytes = match this.gzip.as_mut() {
            Some(gzip) => gzip.frame(&bytes),
            None => bytes,
        };
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.runs.iter().all(|run| run.times == 0)
            && self.end != Some(End::Abort)
            && self.gzip.is_none()
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

    #[tokio::test(start_paused = true)]
    async fn runs_repeat_one_frame_lazily() {
        let runs = vec![
            Run {
                pause: Duration::from_millis(5),
                bytes: Bytes::from_static(b"r"),
                times: 3,
            },
            Run {
                pause: Duration::ZERO,
                bytes: Bytes::from_static(b"x"),
                times: 0,
            },
            Run::once(Duration::ZERO, Bytes::from_static(b"end")),
        ];
        let mut body = MockBody::runs(runs, End::Clean);
        let start = Instant::now();
        let mut got = Vec::new();
        while let Some(Ok(frame)) = body.frame().await {
            let data = frame.into_data().unwrap_or_default();
            got.push((
                String::from_utf8_lossy(&data).into_owned(),
                start.elapsed().as_millis(),
            ));
        }
        let want: Vec<(String, u128)> = [("r", 5), ("r", 10), ("r", 15), ("end", 15)]
            .iter()
            .map(|(s, t)| (s.to_string(), *t))
            .collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn gzipped_frames_end_with_the_trailer() {
        use std::io::Read;
        let frames = vec![
            (Duration::ZERO, Bytes::from_static(b"data: a\n\n")),
            (Duration::ZERO, Bytes::from_static(b"data: b\n\n")),
        ];
        let body = MockBody::frames(frames, End::Clean).gzipped();
        assert_eq!(http_body::Body::size_hint(&body).exact(), None);
        let bytes = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "data: a\n\ndata: b\n\n");
    }
}
