//! The soak's normal clients: a steady population of closed-loop workers,
//! each on its own keep-alive connection, sending chat completions (half of
//! the requests), streamed chat completions (35 %) and embeddings (15 %)
//! back to back until the soak's deadline. Every request ends in a
//! [`Verdict`]: answered (success or the error envelope) or lost, with the
//! reason (see [`crate::soak_check`]). A request under way at the deadline
//! is finished, within the client's generous timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Method;
use serde::Serialize;

use crate::client::{chat_body, Call, Conn};
use crate::load::histogram;
use crate::soak::Live;
use crate::soak_check::{classify, Kind, Lost, Verdict};

/// How long a normal client waits for a whole answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Lost requests described in the report, at most.
const EXAMPLES: usize = 20;

/// The kind of the `n`th request: 10 chat, 7 streams, 3 embeddings in 20.
pub fn kind_of(n: u64) -> Kind {
    match n % 20 {
        0..10 => Kind::Chat,
        10..17 => Kind::Stream,
        _ => Kind::Embeddings,
    }
}

/// The request of a kind (no `x-mock-*` header: the mock's fault mix and
/// stream shape apply).
pub fn call_of(kind: Kind) -> Call {
    let mut call = Call::chat();
    match kind {
        Kind::Chat => {}
        Kind::Stream => {
            call.body = chat_body(true);
            call.headers.push(("accept", "text/event-stream".into()));
        }
        Kind::Embeddings => {
            call.method = Method::POST;
            call.path = "/v1/embeddings".into();
            let body = serde_json::json!({
                "model": "text-embedding-3-small",
                "input": ["soak one", "soak two"],
            });
            call.body = Bytes::from(body.to_string());
        }
    }
    call
}

/// One lost request, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct LostRequest {
    /// Seconds from the start of the soak to sending it.
    pub t_s: f64,
    pub kind: &'static str,
    pub reason: &'static str,
    /// The status and start of the body, or the error.
    pub detail: String,
}

/// Counts of one kind of request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct KindCounts {
    pub sent: u64,
    pub success: u64,
    pub error_answers: u64,
    pub lost: u64,
}

/// What the normal clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NormalStats {
    /// Concurrent clients (one connection each).
    pub connections: usize,
    pub sent: u64,
    /// The expected success.
    pub success: u64,
    /// The gateway's error envelope (or a stream ending in an error event).
    pub error_answers: u64,
    /// Answered requests by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that did not end in an answer: must be 0.
    pub lost: u64,
    pub lost_by_reason: BTreeMap<&'static str, u64>,
    /// The first lost requests (at most 20), in time order.
    pub lost_examples: Vec<LostRequest>,
    pub by_kind: BTreeMap<&'static str, KindCounts>,
    /// Send to the end of the answer, answered requests, ms.
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    pub latency_max_ms: Option<f64>,
    /// Connections given up after a lost request (the next one opens anew).
    pub reconnects: u64,
}

/// One request's outcome, with the status when a response came.
struct Outcome {
    kind: Kind,
    verdict: Verdict,
    status: Option<u16>,
    detail: String,
}

/// Sends `call` on `conn` (opening it when needed) and reads the whole body.
async fn exchange(
    conn: &mut Option<Conn>,
    addr: SocketAddr,
    call: &Call,
) -> Result<(u16, Bytes), (Lost, String)> {
    let mut c = match conn.take() {
        Some(c) => c,
        None => Conn::open(addr)
            .await
            .map_err(|e| (Lost::Connect, format!("{e:#}")))?,
    };
    c.ready()
        .await
        .map_err(|e| (Lost::Connect, format!("{e:#}")))?;
    let resp = c
        .send(call)
        .await
        .map_err(|e| (Lost::Send, format!("{e:#}")))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| (Lost::Body, format!("{status}, then {e:#}")))?
        .to_bytes();
    *conn = Some(c);
    Ok((status, body))
}

async fn one(conn: &mut Option<Conn>, addr: SocketAddr, kind: Kind) -> Outcome {
    let call = call_of(kind);
    let (verdict, status, detail) =
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange(conn, addr, &call)).await {
            Ok(Ok((status, body))) => {
                let verdict = classify(kind, status, &body);
                let head = String::from_utf8_lossy(&body[..body.len().min(160)]).into_owned();
                (verdict, Some(status), format!("{status}: {head}"))
            }
            Ok(Err((lost, why))) => (Verdict::Lost(lost), None, why),
            Err(_) => {
                *conn = None;
                (
                    Verdict::Lost(Lost::Timeout),
                    None,
                    format!("no answer within {REQUEST_TIMEOUT:?}"),
                )
            }
        };
    Outcome {
        kind,
        verdict,
        status,
        detail,
    }
}

/// One worker: requests back to back until `deadline`.
async fn worker(
    id: u64,
    addr: SocketAddr,
    started: Instant,
    deadline: Instant,
    live: Arc<Live>,
) -> Result<(NormalStats, hdrhistogram::Histogram<u64>)> {
    let mut stats = NormalStats::default();
    let mut hist = histogram()?;
    let mut conn: Option<Conn> = None;
    // Workers start at different places in the kind cycle.
    let mut n = id * 7;
    while Instant::now() < deadline {
        let kind = kind_of(n);
        n += 1;
        let t0 = Instant::now();
        let had_conn = conn.is_some();
        let out = one(&mut conn, addr, kind).await;
        if had_conn && conn.is_none() {
            stats.reconnects += 1;
        }
        let k = stats.by_kind.entry(out.kind.name()).or_default();
        k.sent += 1;
        stats.sent += 1;
        match out.verdict {
            Verdict::Success | Verdict::ErrorAnswer => {
                if out.verdict == Verdict::Success {
                    stats.success += 1;
                    k.success += 1;
                } else {
                    stats.error_answers += 1;
                    k.error_answers += 1;
                }
                if let Some(s) = out.status {
                    *stats.statuses.entry(s).or_default() += 1;
                }
                let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                hist.saturating_record(ns.max(1));
                live.completed.fetch_add(1, Ordering::Relaxed);
            }
            Verdict::Lost(why) => {
                stats.lost += 1;
                k.lost += 1;
                *stats.lost_by_reason.entry(why.name()).or_default() += 1;
                if stats.lost_examples.len() < EXAMPLES {
                    stats.lost_examples.push(LostRequest {
                        t_s: t0.duration_since(started).as_secs_f64(),
                        kind: out.kind.name(),
                        reason: why.name(),
                        detail: out.detail,
                    });
                }
                live.lost.fetch_add(1, Ordering::Relaxed);
                if why == Lost::Connect {
                    // The gateway is gone or refusing: don't spin.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    Ok((stats, hist))
}

/// Runs `connections` workers against `addr` until `deadline`.
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    started: Instant,
    deadline: Instant,
    live: Arc<Live>,
) -> Result<NormalStats> {
    let mut set = tokio::task::JoinSet::new();
    for id in 0..connections {
        set.spawn(worker(id as u64, addr, started, deadline, live.clone()));
    }
    let mut all = NormalStats {
        connections,
        ..NormalStats::default()
    };
    let mut hist = histogram()?;
    while let Some(joined) = set.join_next().await {
        let (s, h) = joined??;
        hist.add(&h)?;
        all.merge(s);
    }
    let ms = |q: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(q) as f64 / 1e6);
    all.latency_p50_ms = ms(0.5);
    all.latency_p99_ms = ms(0.99);
    all.latency_max_ms = (!hist.is_empty()).then(|| hist.max() as f64 / 1e6);
    Ok(all)
}

impl NormalStats {
    fn merge(&mut self, s: NormalStats) {
        self.sent += s.sent;
        self.success += s.success;
        self.error_answers += s.error_answers;
        self.lost += s.lost;
        self.reconnects += s.reconnects;
        for (k, v) in s.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in s.lost_by_reason {
            *self.lost_by_reason.entry(k).or_default() += v;
        }
        for (k, v) in s.by_kind {
            let e = self.by_kind.entry(k).or_default();
            e.sent += v.sent;
            e.success += v.success;
            e.error_answers += v.error_answers;
            e.lost += v.lost;
        }
        // Each worker kept its first ones: the first of all are among them.
        self.lost_examples.extend(s.lost_examples);
        self.lost_examples.sort_by(|a, b| a.t_s.total_cmp(&b.t_s));
        self.lost_examples.truncate(EXAMPLES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cycle_in_the_stated_shares() {
        let mut counts = BTreeMap::new();
        for n in 0..200 {
            *counts.entry(kind_of(n)).or_insert(0) += 1;
        }
        assert_eq!(counts.get(&Kind::Chat), Some(&100));
        assert_eq!(counts.get(&Kind::Stream), Some(&70));
        assert_eq!(counts.get(&Kind::Embeddings), Some(&30));
        assert!(call_of(Kind::Embeddings).path.ends_with("/embeddings"));
        let stream = call_of(Kind::Stream);
        assert!(String::from_utf8_lossy(&stream.body).contains("\"stream\":true"));
        assert!(stream.headers.iter().all(|(k, _)| !k.starts_with("x-mock")));
    }
}
