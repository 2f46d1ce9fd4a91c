//! What became of the soak's slow-client connections, per kind: opened,
//! closed by the gateway (after how long, with which answer), recycled by
//! the client, finished as planned, or still open at the end. Pure counting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::slow::End;

/// The kinds of slow client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowKind {
    /// Connects and sends nothing.
    Idle,
    /// Sends half a request head, then nothing.
    HalfHead,
    /// Sends a whole head, then the body one byte every few seconds.
    DripBody,
    /// Asks for a long stream and reads a few bytes a second.
    SlowReader,
    /// Asks for a stream and disconnects after a few events.
    DropMidStream,
}

impl SlowKind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            SlowKind::Idle => "idle socket",
            SlowKind::HalfHead => "half a request head",
            SlowKind::DripBody => "body dripped 1 B / 3 s",
            SlowKind::SlowReader => "stream read 64 B / s",
            SlowKind::DropMidStream => "disconnect mid-stream",
        }
    }
}

/// Smallest, middle and largest of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Spread {
            min: *v.first()?,
            median: *v.get(v.len() / 2)?,
            max: *v.last()?,
        })
    }
}

/// What became of one population's connections.
#[derive(Debug, Clone, Serialize)]
pub struct SlowStats {
    pub kind: SlowKind,
    /// Clients of this kind at any time.
    pub clients: usize,
    /// Connections opened over the run.
    pub connections: u64,
    pub connect_failed: u64,
    /// Closed (or reset) by the gateway.
    pub closed_by_server: u64,
    /// Of those, the status the gateway sent first, when it answered.
    pub answered: BTreeMap<u16, u64>,
    /// How long the gateway kept them open, s.
    pub closed_after_s: Option<Spread>,
    #[serde(skip)]
    closed_after: Vec<f64>,
    /// Recycled by the client at the end of its lifetime, still open.
    pub recycled: u64,
    /// Ended as planned (disconnected mid-stream, or read a whole stream).
    pub finished: u64,
    /// Still open when the soak ended.
    pub open_at_end: u64,
    /// How long the oldest of those had been open, s.
    pub oldest_open_at_end_s: Option<f64>,
}

impl SlowStats {
    /// Nothing recorded yet.
    pub fn new(kind: SlowKind, clients: usize) -> SlowStats {
        SlowStats {
            kind,
            clients,
            connections: 0,
            connect_failed: 0,
            closed_by_server: 0,
            answered: BTreeMap::new(),
            closed_after_s: None,
            closed_after: Vec::new(),
            recycled: 0,
            finished: 0,
            open_at_end: 0,
            oldest_open_at_end_s: None,
        }
    }

    /// One connection that ended with `end` after `open_for`.
    pub fn record(&mut self, end: End, open_for: Duration) {
        let secs = open_for.as_secs_f64();
        if end != End::ConnectFailed {
            self.connections += 1;
        }
        match end {
            End::ConnectFailed => self.connect_failed += 1,
            End::ServerClosed { answered } => {
                self.closed_by_server += 1;
                self.closed_after.push(secs);
                if let Some(s) = answered {
                    *self.answered.entry(s).or_default() += 1;
                }
            }
            End::Recycled => self.recycled += 1,
            End::Finished => self.finished += 1,
            End::StillOpen => {
                self.open_at_end += 1;
                let old = self.oldest_open_at_end_s.unwrap_or(0.0);
                self.oldest_open_at_end_s = Some(old.max(secs));
            }
        }
        self.closed_after_s = Spread::of(&self.closed_after);
    }

    /// Adds another slot's record of the same kind.
    pub fn add(&mut self, o: &SlowStats) {
        self.connections += o.connections;
        self.connect_failed += o.connect_failed;
        self.closed_by_server += o.closed_by_server;
        for (k, v) in &o.answered {
            *self.answered.entry(*k).or_default() += v;
        }
        self.closed_after.extend_from_slice(&o.closed_after);
        self.closed_after_s = Spread::of(&self.closed_after);
        self.recycled += o.recycled;
        self.finished += o.finished;
        self.open_at_end += o.open_at_end;
        self.oldest_open_at_end_s = match (self.oldest_open_at_end_s, o.oldest_open_at_end_s) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
    }

    #[test]
    fn connections_are_counted_by_their_end() {
        let secs = Duration::from_secs;
        let mut a = SlowStats::new(SlowKind::DripBody, 10);
        a.record(
            End::ServerClosed {
                answered: Some(408),
            },
            secs(10),
        );
        a.record(End::ServerClosed { answered: None }, secs(30));
        a.record(End::ConnectFailed, secs(0));
        a.record(End::Recycled, secs(90));
        let mut b = SlowStats::new(SlowKind::DripBody, 0);
        b.record(End::StillOpen, secs(40));
        b.record(End::StillOpen, secs(55));
        b.record(End::Finished, secs(1));
        b.record(
            End::ServerClosed {
                answered: Some(408),
            },
            secs(20),
        );
        a.add(&b);
        assert_eq!(a.clients, 10);
        assert_eq!(a.connections, 7);
        assert_eq!(a.connect_failed, 1);
        assert_eq!(a.closed_by_server, 3);
        assert_eq!(a.answered.get(&408), Some(&2));
        let d = a.closed_after_s.unwrap();
        assert_eq!((d.min, d.median, d.max), (10.0, 20.0, 30.0));
        assert_eq!((a.recycled, a.finished, a.open_at_end), (1, 1, 2));
        assert_eq!(a.oldest_open_at_end_s, Some(55.0));
    }
}
