//! What replicas tell each other on the fleet's channel, and the clock
//! conversions it needs: events carry times as Unix milliseconds, which
//! every replica turns into an `Instant` of its own.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What replicas tell each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Event {
    /// The target's circuit opened until `until_ms` (Unix ms); the next
    /// failed probe waits `next_cooldown_ms`.
    Open {
        target: String,
        until_ms: u64,
        next_cooldown_ms: u64,
    },
    /// The target's circuit closed (a probe succeeded).
    Closed { target: String },
    /// The target's window is tight until `reset_ms` (Unix ms): take each
    /// request from the shared count.
    Tight { target: String, reset_ms: u64 },
}

/// A message on the channel: the event and who sent it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Message {
    pub(super) from: String,
    #[serde(flatten)]
    pub(super) event: Event,
}

/// Now, in Unix milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A Unix-ms time as an `Instant` of this process.
pub fn instant_of(unix: u64) -> Instant {
    let now = unix_ms();
    if unix >= now {
        Instant::now() + Duration::from_millis(unix - now)
    } else {
        Instant::now()
            .checked_sub(Duration::from_millis(now - unix))
            .unwrap_or_else(Instant::now)
    }
}

/// An `Instant` of this process as Unix ms.
pub fn unix_of(at: Instant) -> u64 {
    let now = Instant::now();
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if at >= now {
        unix_ms().saturating_add(ms(at - now))
    } else {
        unix_ms().saturating_sub(ms(now - at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_as_the_wire_shows_them() {
        let m = Message {
            from: "r1".into(),
            event: Event::Open {
                target: "comet/gpt-4o".into(),
                until_ms: 5,
                next_cooldown_ms: 10_000,
            },
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"from":"r1","t":"open","target":"comet/gpt-4o","until_ms":5,"next_cooldown_ms":10000}"#
        );
        let back: Message = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, m.event);
        let tight: Event =
            serde_json::from_str(r#"{"t":"tight","target":"a","reset_ms":9}"#).unwrap();
        assert_eq!(
            tight,
            Event::Tight {
                target: "a".into(),
                reset_ms: 9
            }
        );
    }

    #[tokio::test]
    async fn times_convert_both_ways() {
        let at = Instant::now() + Duration::from_secs(3);
        let back = instant_of(unix_of(at));
        let diff = if back > at { back - at } else { at - back };
        assert!(diff < Duration::from_millis(5), "{diff:?}");
    }
}
