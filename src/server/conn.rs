//! One client connection, under watch. The socket is read through a
//! [`Watched`] wrapper that notes when a request head starts arriving; the
//! service notes when a request begins and when its answer's body is done;
//! a watchdog closes the connection when a peer holds it without using it:
//! - a request head (the first, or the next on a keep-alive connection)
//!   not complete within `limits.header_read_timeout_ms` of its first byte
//!   — or, on a new connection, of the accept;
//! - a keep-alive connection idle (no request in flight, no head started)
//!   for `limits.client_idle_timeout_ms`;
//! - under pressure (the connection cap is reached), any connection idle
//!   for a second, so that a waiting client — a liveness probe — gets a
//!   slot.
//!
//! HTTP/2 connections (recognized by their preface) are only closed when
//! idle; their streams carry no head timeout of ours.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The HTTP/2 connection preface's first bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// Under pressure, a connection idle this long is closed.
const IDLE_UNDER_PRESSURE: Duration = Duration::from_secs(1);

/// The connection timeouts in force.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

#[derive(Debug)]
struct State {
    /// Requests whose answer is not done yet.
    inflight: usize,
    /// Since when the connection waits for a request head (accept, or the
    /// end of the last answer); `None` while a request is in flight.
    waiting_since: Option<Instant>,
    /// When the head being waited for sent its first byte.
    head_started: Option<Instant>,
    /// The connection is HTTP/2.
    h2: bool,
    /// Bytes seen so far (to recognize the HTTP/2 preface).
    seen: usize,
    /// The last time anything happened (HTTP/2's idle clock).
    last_activity: Instant,
    /// A new connection has not finished its first head yet.
    fresh: bool,
}

/// What the socket wrapper, the service and the watchdog share.
#[derive(Debug)]
pub struct ConnState {
    state: Mutex<State>,
}

/// Why the watchdog closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// A request head took too long.
    HeadTimeout,
    /// Idle too long.
    Idle,
}

impl ConnState {
    pub fn new(now: Instant) -> Arc<ConnState> {
        Arc::new(ConnState {
            state: Mutex::new(State {
                inflight: 0,
                waiting_since: Some(now),
                head_started: None,
                h2: false,
                seen: 0,
                last_activity: now,
                fresh: true,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived from the client.
    fn read(&self, bytes: &[u8], now: Instant) {
        let mut s = self.lock();
        if s.seen < H2_PREFACE.len() {
            let start = s.seen;
            let take = bytes.len().min(H2_PREFACE.len() - start);
            s.h2 = bytes[..take] == H2_PREFACE[start..start + take];
            s.seen += take;
        }
        s.last_activity = now;
        if s.waiting_since.is_some() && s.head_started.is_none() && !bytes.is_empty() {
            s.head_started = Some(now);
        }
    }

    /// A request was parsed and reaches the service.
    pub fn request_started(&self, now: Instant) {
        let mut s = self.lock();
        s.inflight += 1;
        s.waiting_since = None;
        s.head_started = None;
        s.fresh = false;
        s.last_activity = now;
    }

    /// A request's answer is done (its body sent, or dropped).
    pub fn request_done(&self, now: Instant) {
        let mut s = self.lock();
        s.inflight = s.inflight.saturating_sub(1);
        s.last_activity = now;
        if s.inflight == 0 {
            s.waiting_since = Some(now);
        }
    }

    /// What the watchdog does now.
    pub fn verdict(&self, now: Instant, t: Timeouts, pressure: bool) -> Verdict {
        let s = self.lock();
        if s.h2 {
            let idle = s.inflight == 0 && now.duration_since(s.last_activity) >= t.idle;
            return if idle { Verdict::Idle } else { Verdict::Keep };
        }
        let Some(since) = s.waiting_since else {
            return Verdict::Keep;
        };
        match s.head_started {
            Some(started) if now.duration_since(started) >= t.header_read => Verdict::HeadTimeout,
            Some(_) => Verdict::Keep,
            // A new connection owes its first head within the head timeout.
            None if s.fresh && now.duration_since(since) >= t.header_read => Verdict::HeadTimeout,
            None if now.duration_since(since) >= t.idle => Verdict::Idle,
            None if pressure && now.duration_since(since) >= IDLE_UNDER_PRESSURE => Verdict::Idle,
            None => Verdict::Keep,
        }
    }
}

/// Whether the connection cap is reached (shared by every watchdog).
#[derive(Debug, Default)]
pub struct Pressure(AtomicBool);

impl Pressure {
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    pub fn on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

pin_project_lite::pin_project! {
    /// A client socket whose reads tell the connection's state.
    pub struct Watched<T> {
        #[pin]
        io: T,
        state: Arc<ConnState>,
    }
}

impl<T> Watched<T> {
    pub fn new(io: T, state: Arc<ConnState>) -> Watched<T> {
        Watched { io, state }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.io.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let fresh = &buf.filled()[before..];
            if !fresh.is_empty() {
                this.state.read(fresh, Instant::now());
            }
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn at(t0: Instant, secs: u64) -> Instant {
        t0 + Duration::from_secs(secs)
    }

    #[test]
    fn a_new_connection_owes_its_head_within_the_head_timeout() {
        let t0 = Instant::now();
        let c = ConnState::new(t0);
        assert_eq!(c.verdict(at(t0, 9), T, false), Verdict::Keep);
        assert_eq!(c.verdict(at(t0, 10), T, false), Verdict::HeadTimeout);
    }

    #[test]
    fn a_head_that_started_must_finish_within_the_head_timeout() {
        let t0 = Instant::now();
        let c = ConnState::new(t0);
        c.request_started(at(t0, 1));
        c.request_done(at(t0, 2));
        // Idle keep-alive: the idle timeout, not the head timeout.
        assert_eq!(c.verdict(at(t0, 30), T, false), Verdict::Keep);
        c.read(b"POST /v1/chat", at(t0, 30));
        assert_eq!(c.verdict(at(t0, 39), T, false), Verdict::Keep);
        assert_eq!(c.verdict(at(t0, 40), T, false), Verdict::HeadTimeout);
    }

    #[test]
    fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout_or_sooner_under_pressure() {
        let t0 = Instant::now();
        let c = ConnState::new(t0);
        c.request_started(at(t0, 0));
        // In flight, however long: the body timeouts are admission's.
        assert_eq!(c.verdict(at(t0, 500), T, true), Verdict::Keep);
        c.request_done(at(t0, 500));
        assert_eq!(c.verdict(at(t0, 559), T, false), Verdict::Keep);
        assert_eq!(c.verdict(at(t0, 560), T, false), Verdict::Idle);
        assert_eq!(c.verdict(at(t0, 501), T, true), Verdict::Idle);
    }

    #[test]
    fn http2_is_recognized_and_only_closed_when_idle() {
        let t0 = Instant::now();
        let c = ConnState::new(t0);
        c.read(b"PRI * HTTP/", at(t0, 0));
        c.read(b"2.0\r\n\r\nSM\r\n\r\n", at(t0, 0));
        assert_eq!(c.verdict(at(t0, 59), T, false), Verdict::Keep);
        assert_eq!(c.verdict(at(t0, 60), T, false), Verdict::Idle);
        c.request_started(at(t0, 61));
        assert_eq!(c.verdict(at(t0, 999), T, false), Verdict::Keep);
    }
}
