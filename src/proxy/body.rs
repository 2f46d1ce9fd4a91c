//! Upstream answer bodies: every one is [`Bounded`] where it enters the
//! gateway — by the request's deadline and by the upstream's idle timeout
//! (`stream_idle_timeout_ms` of silence between two frames), tower-http's
//! body timeout being the model — so that whoever reads it (the inspector
//! reading a whole body, the stream watcher, the client through a
//! pass-through) can never wait on it forever. Also: reading a body whole
//! up to a cap, and putting bytes already read back in front of the rest.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a [`Bounded`] body stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyTimeout {
    /// No frame within the idle timeout.
    Idle(Duration),
    /// The request's deadline came.
    Deadline,
}

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyTimeout::Idle(idle) => write!(
                f,
                "the upstream sent nothing for {} ms (stream_idle_timeout_ms)",
                idle.as_millis()
            ),
            BodyTimeout::Deadline => f.write_str(
                "the request's deadline (request_timeout_ms) came before the upstream's answer ended",
            ),
        }
    }
}

impl std::error::Error for BodyTimeout {}

/// The [`BodyTimeout`] behind a body error, if that is what it was.
pub fn timeout_of(error: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(*t);
        }
        current = e.source();
    }
    None
}

pin_project_lite::pin_project! {
    /// A body that fails with [`BodyTimeout`] when a frame takes longer than
    /// `idle`, or the deadline comes, whichever is first.
    pub struct Bounded<B> {
        #[pin]
        inner: B,
        #[pin]
        timer: Sleep,
        deadline: Instant,
        idle: Duration,
    }
}

impl<B> Bounded<B> {
    pub fn new(inner: B, idle: Duration, deadline: Instant) -> Bounded<B> {
        let first = (Instant::now() + idle).min(deadline);
        Bounded {
            inner,
            timer: tokio::time::sleep_until(first),
            deadline,
            idle,
        }
    }
}

impl<B> http_body::Body for Bounded<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = (Instant::now() + *this.idle).min(*this.deadline);
                this.timer.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.timer.poll(cx) {
                Poll::Ready(()) => {
                    let why = if Instant::now() >= *this.deadline {
                        BodyTimeout::Deadline
                    } else {
                        BodyTimeout::Idle(*this.idle)
                    };
                    Poll::Ready(Some(Err(Box::new(why))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body read up to a cap.
pub enum Read {
    Whole(Bytes),
    /// Over the cap: what was read, and the rest still streaming.
    TooLarge(Bytes, Body),
    /// The upstream went silent, or the deadline came.
    Stalled(BodyTimeout),
    /// The upstream broke off the body.
    Broken(String),
}

/// Reads `body` whole, unless it grows past `cap`.
pub async fn read_capped(mut body: Body, cap: u64) -> Read {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > cap {
                        return Read::TooLarge(buf.freeze(), body);
                    }
                }
            }
            Some(Err(e)) => {
                if let Some(t) = timeout_of(&e) {
                    return Read::Stalled(t);
                }
                return Read::Broken(format!(
                    "the upstream broke off its answer after {} bytes: {e}",
                    buf.len()
                ));
            }
        }
    }
}

/// Reads at most `cap` bytes of an upstream answer; one that fails midway
/// yields what arrived (it is only used to say what broke).
pub async fn read_prefix(mut body: Body, cap: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < cap {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    let take = chunk.len().min(cap - buf.len());
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            Some(Err(_)) | None => break,
        }
    }
    buf.freeze()
}

/// `prefix` (bytes already read) followed by the rest of `body`, streamed.
pub fn prefixed(prefix: Bytes, body: Body) -> Body {
    if prefix.is_empty() {
        return body;
    }
    let rest = body.into_data_stream();
    Body::from_stream(stream::once(async move { Ok(prefix) }).chain(rest))
}

/// Waits for `body`'s first data frame: the bytes (empty at a clean end)
/// and the body to read on, or the error that came first.
pub async fn first_bytes(mut body: Body) -> Result<(Bytes, Body), axum::Error> {
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() {
                        return Ok((data, body));
                    }
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok((Bytes::new(), body)),
        }
    }
}

/// A future that never resolves, for a cut signal that was not given.
pub fn never() -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(std::future::pending())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::testing::timed_body;

    #[tokio::test]
    async fn a_body_is_read_whole_or_handed_back_past_the_cap() {
        let Read::Whole(b) = read_capped(Body::from("hello"), 5).await else {
            panic!("whole");
        };
        assert_eq!(b, "hello");
        let Read::TooLarge(head, rest) = read_capped(Body::from("hello!"), 5).await else {
            panic!("too large");
        };
        let whole = prefixed(head, rest).collect().await.unwrap().to_bytes();
        assert_eq!(whole, "hello!");
    }

    fn bounded(chunks: Vec<(u64, &str)>, hang: bool, idle: u64, deadline: u64) -> Body {
        let chunks = chunks
            .into_iter()
            .map(|(ms, c)| (Duration::from_millis(ms), c.to_string()))
            .collect();
        Body::new(Bounded::new(
            timed_body(chunks, hang),
            Duration::from_millis(idle),
            Instant::now() + Duration::from_millis(deadline),
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn silence_longer_than_the_idle_timeout_stalls_the_body() {
        let start = Instant::now();
        let read = read_capped(bounded(vec![(0, "a"), (400, "b")], true, 1000, 60_000), 100).await;
        assert!(matches!(read, Read::Stalled(BodyTimeout::Idle(_))));
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(1400),
            "1 s after the last frame"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_coming_still_ends_at_the_deadline() {
        let start = Instant::now();
        let chunks: Vec<(u64, &str)> = (0..100).map(|_| (100, "x")).collect();
        let read = read_capped(bounded(chunks, false, 1000, 2500), 1 << 20).await;
        assert!(matches!(read, Read::Stalled(BodyTimeout::Deadline)));
        assert_eq!(start.elapsed(), Duration::from_millis(2500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_within_its_bounds_is_untouched() {
        let read = read_capped(
            bounded(vec![(900, "a"), (900, "b")], false, 1000, 5000),
            100,
        )
        .await;
        let Read::Whole(b) = read else {
            panic!("whole")
        };
        assert_eq!(b, "ab");
    }
}
