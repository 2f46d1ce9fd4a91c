//! The soak's slow clients, on raw TCP: a bounded population of each kind
//! (see [`POPULATIONS`]), every client a slot that opens a connection, does
//! its slow thing until the server closes it, its lifetime ends or the soak
//! ends, and starts over (recycled). What each connection came to is
//! recorded: closed by the server (after how long, with which status if it
//! answered), recycled by the client, finished (a planned disconnect), or
//! still open at the end of the soak.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::chat_body;
use crate::slow_stats::{SlowKind, SlowStats};
use crate::soak::Live;
use crate::stream::{DoneSeen, EventSplitter};

/// How many clients of each kind.
pub const POPULATIONS: [(SlowKind, usize); 5] = [
    (SlowKind::Idle, 50),
    (SlowKind::HalfHead, 10),
    (SlowKind::DripBody, 10),
    (SlowKind::SlowReader, 10),
    (SlowKind::DropMidStream, 10),
];

/// How long an idle, half-head or drip connection is kept before the client
/// recycles it (plus one second per slot, so they do not all turn at once).
pub const HOLD_LIFETIME: Duration = Duration::from_secs(90);
/// How long a slow reader reads before recycling.
pub const READER_LIFETIME: Duration = Duration::from_secs(60);
/// A slow reader takes `READ_BYTES` every `READ_EVERY`.
pub const READ_BYTES: usize = 64;
pub const READ_EVERY: Duration = Duration::from_secs(1);
/// Stream content chunks a slow reader asks for (a few MB, more than the
/// socket buffers hold, so the gateway feels the back-pressure).
pub const READER_CHUNKS: u32 = 20_000;
/// A drip client sends one body byte every `DRIP_EVERY`.
pub const DRIP_EVERY: Duration = Duration::from_secs(3);
/// A mid-stream client reads this many events, then disconnects.
pub const DROP_AFTER_EVENTS: u32 = 3;
/// Pause before a slot reconnects after its connection ended.
const PAUSE: Duration = Duration::from_millis(500);

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed (or reset) it; `answered` = the status it sent first.
    ServerClosed { answered: Option<u16> },
    /// The client's lifetime for it ran out; still open.
    Recycled,
    /// It did what it came for (a mid-stream disconnect, a whole stream).
    Finished,
    /// The soak ended with it open.
    StillOpen,
    /// It could not be opened.
    ConnectFailed,
}

/// The head of a POST of `len` body bytes to `path`, with `extra` headers.
pub fn request_head(addr: SocketAddr, path: &str, extra: &[(&str, String)], len: usize) -> String {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         authorization: Bearer sk-bench-0000\r\ncontent-length: {len}\r\n"
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// The status of an HTTP/1.x response that starts with `bytes`.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let rest = bytes.strip_prefix(b"HTTP/1.")?.get(2..5)?;
    std::str::from_utf8(rest).ok()?.parse().ok()
}

/// A streamed chat completion of `chunks` events `delay_ms` apart, step `ok`.
fn stream_request(addr: SocketAddr, chunks: u32, delay_ms: u64) -> Vec<u8> {
    let body = chat_body(true);
    let extra = [
        ("accept", "text/event-stream".to_owned()),
        ("x-mock-scenario", "ok".to_owned()),
        ("x-mock-chunks", chunks.to_string()),
        ("x-mock-chunk-delay-ms", delay_ms.to_string()),
    ];
    let mut req = request_head(addr, "/v1/chat/completions", &extra, body.len()).into_bytes();
    req.extend_from_slice(&body);
    req
}

/// Holds `s` open until `until`, dripping `drip` one byte per `DRIP_EVERY`
/// when given, reading whatever the server sends.
async fn hold(s: &mut TcpStream, until: Instant, drip: &[u8]) -> (End, Option<u16>) {
    let mut first = Vec::new();
    let mut buf = [0u8; 1024];
    let mut next_drip = Instant::now() + DRIP_EVERY;
    let mut dripped = 0;
    loop {
        let answered = status_of(&first);
        let drip_at = if dripped < drip.len() {
            next_drip
        } else {
            until
        };
        tokio::select! {
            read = s.read(&mut buf) => match read {
                Ok(0) | Err(_) => return (End::ServerClosed { answered }, answered),
                Ok(n) => {
                    if first.len() < 16 {
                        first.extend_from_slice(&buf[..n.min(16)]);
                    }
                }
            },
            () = tokio::time::sleep_until(drip_at.min(until).into()) => {
                if Instant::now() >= until {
                    return (End::Recycled, answered);
                }
                if s.write_all(&drip[dripped..=dripped]).await.is_err() {
                    return (End::ServerClosed { answered }, answered);
                }
                dripped += 1;
                next_drip += DRIP_EVERY;
            }
        }
    }
}

/// Reads a stream `READ_BYTES` at a time, `READ_EVERY` apart, until `until`.
async fn read_slowly(s: &mut TcpStream, until: Instant) -> End {
    let mut buf = [0u8; READ_BYTES];
    let mut first = Vec::new();
    let mut done = DoneSeen::default();
    loop {
        match tokio::time::timeout_at(until.into(), s.read(&mut buf)).await {
            Err(_) => return End::Recycled,
            Ok(Ok(0)) | Ok(Err(_)) if done.seen => return End::Finished,
            Ok(Ok(0)) | Ok(Err(_)) => {
                let answered = status_of(&first);
                return End::ServerClosed { answered };
            }
            Ok(Ok(n)) => {
                if first.len() < 16 {
                    first.extend_from_slice(&buf[..n.min(16)]);
                }
                done.feed(&buf[..n]);
            }
        }
        let next = Instant::now() + READ_EVERY;
        if next >= until {
            return End::Recycled;
        }
        tokio::time::sleep_until(next.into()).await;
    }
}

/// Reads until `DROP_AFTER_EVENTS` events came, then lets go of the socket.
async fn drop_mid_stream(s: &mut TcpStream, until: Instant) -> End {
    let mut buf = [0u8; 4096];
    let mut first = Vec::new();
    let mut split = EventSplitter::default();
    let mut events = 0;
    loop {
        match tokio::time::timeout_at(until.into(), s.read(&mut buf)).await {
            Err(_) => return End::Recycled,
            Ok(Ok(0)) | Ok(Err(_)) => {
                let answered = status_of(&first);
                return End::ServerClosed { answered };
            }
            Ok(Ok(n)) => {
                if first.len() < 16 {
                    first.extend_from_slice(&buf[..n.min(16)]);
                }
                events += split.feed(&buf[..n]);
                if events >= DROP_AFTER_EVENTS {
                    return End::Finished;
                }
            }
        }
    }
}

/// One connection of `kind`, until its end or `deadline`. One still open at
/// the deadline (`StillOpen`) is held until `release` says so, so that the
/// last sample still sees it.
async fn connection(
    kind: SlowKind,
    addr: SocketAddr,
    slot: usize,
    deadline: Instant,
    release: &mut watch::Receiver<bool>,
) -> End {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
    else {
        return End::ConnectFailed;
    };
    let _ = s.set_nodelay(true);
    let jitter = Duration::from_secs(slot as u64);
    let chat = chat_body(false);
    let (end, until) = match kind {
        SlowKind::Idle | SlowKind::HalfHead | SlowKind::DripBody => {
            let until = (Instant::now() + HOLD_LIFETIME + jitter).min(deadline);
            let head = match kind {
                SlowKind::Idle => String::new(),
                SlowKind::HalfHead => {
                    "POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-ty".into()
                }
                _ => request_head(addr, "/v1/chat/completions", &[], chat.len()),
            };
            if s.write_all(head.as_bytes()).await.is_err() {
                return End::ServerClosed { answered: None };
            }
            let drip: &[u8] = if kind == SlowKind::DripBody {
                &chat
            } else {
                &[]
            };
            (hold(&mut s, until, drip).await.0, until)
        }
        SlowKind::SlowReader | SlowKind::DropMidStream => {
            let (req, lifetime) = if kind == SlowKind::SlowReader {
                (
                    stream_request(addr, READER_CHUNKS, 0),
                    READER_LIFETIME + jitter,
                )
            } else {
                (stream_request(addr, 64, 20), Duration::from_secs(10))
            };
            let until = (Instant::now() + lifetime).min(deadline);
            if s.write_all(&req).await.is_err() {
                return End::ServerClosed { answered: None };
            }
            let end = if kind == SlowKind::SlowReader {
                read_slowly(&mut s, until).await
            } else {
                drop_mid_stream(&mut s, until).await
            };
            (end, until)
        }
    };
    if end == End::Recycled && until >= deadline {
        let _ = release.wait_for(|r| *r).await;
        End::StillOpen
    } else {
        end
    }
}

/// One slot: connections of `kind`, one after another, until `deadline`.
async fn slot(
    kind: SlowKind,
    addr: SocketAddr,
    slot: usize,
    deadline: Instant,
    live: Arc<Live>,
    mut release: watch::Receiver<bool>,
) -> SlowStats {
    let mut stats = SlowStats::new(kind, 0);
    tokio::time::sleep(Duration::from_millis(100) * slot as u32).await;
    while Instant::now() < deadline {
        let opened = Instant::now();
        live.slow_open.fetch_add(1, Ordering::Relaxed);
        let end = connection(kind, addr, slot, deadline, &mut release).await;
        live.slow_open.fetch_sub(1, Ordering::Relaxed);
        let open_for = if end == End::StillOpen {
            deadline.saturating_duration_since(opened)
        } else {
            opened.elapsed()
        };
        stats.record(end, open_for);
        if end != End::StillOpen {
            tokio::time::sleep(PAUSE).await;
        }
    }
    stats
}

/// Runs every population against `addr` until `deadline`; per kind.
pub async fn run(
    addr: SocketAddr,
    deadline: Instant,
    live: Arc<Live>,
    release: watch::Receiver<bool>,
) -> BTreeMap<SlowKind, SlowStats> {
    let mut set = JoinSet::new();
    for (kind, count) in POPULATIONS {
        for i in 0..count {
            set.spawn(slot(kind, addr, i, deadline, live.clone(), release.clone()));
        }
    }
    let mut out: BTreeMap<SlowKind, SlowStats> = POPULATIONS
        .iter()
        .map(|(k, n)| (*k, SlowStats::new(*k, *n)))
        .collect();
    while let Some(joined) = set.join_next().await {
        if let Ok(s) = joined {
            if let Some(agg) = out.get_mut(&s.kind) {
                agg.add(&s);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_statuses() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let head = request_head(addr, "/v1/x", &[("x-a", "1".into())], 12);
        assert!(head.starts_with("POST /v1/x HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n"));
        assert!(head.contains("content-length: 12\r\nx-a: 1\r\n\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
        let req = stream_request(addr, 5, 0);
        let text = String::from_utf8_lossy(&req);
        assert!(text.contains("x-mock-chunks: 5\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(status_of(b"HTTP/1.1 408 Request Timeout\r\n"), Some(408));
        assert_eq!(status_of(b"HTTP/1.0 200 OK"), Some(200));
        assert_eq!(status_of(b"HTTP/1.1 4"), None);
        assert_eq!(status_of(b"garbage"), None);
    }
}
