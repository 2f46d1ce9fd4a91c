//! What an answer says is left of the upstream's rate limit: the
//! `x-ratelimit-remaining-*` / `x-ratelimit-reset-*` pairs OpenAI (and most
//! compatible providers) send on every answer. A pure read of the headers,
//! done once per attempt by the exchange; the pacer and the gauges use it.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

use super::after::reset_of;

const REMAINING_REQUESTS: &str = "x-ratelimit-remaining-requests";
const REMAINING_TOKENS: &str = "x-ratelimit-remaining-tokens";
const RESET_REQUESTS: &str = "x-ratelimit-reset-requests";
const RESET_TOKENS: &str = "x-ratelimit-reset-tokens";

/// One limit's remainder and when it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub remaining: u64,
    /// From the answer's arrival until the reset.
    pub reset_in: Duration,
}

/// The request and token limits an answer advertised (each only when both
/// of its headers parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Advertised {
    pub requests: Option<Bucket>,
    pub tokens: Option<Bucket>,
}

impl Advertised {
    /// Reads the headers; `now` is the wall clock the epoch forms of a
    /// reset are read against.
    pub fn read(headers: &HeaderMap, now: SystemTime) -> Advertised {
        Advertised {
            requests: bucket(headers, REMAINING_REQUESTS, RESET_REQUESTS, now),
            tokens: bucket(headers, REMAINING_TOKENS, RESET_TOKENS, now),
        }
    }

    /// Whether the answer advertised anything.
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }
}

fn bucket(headers: &HeaderMap, remaining: &str, reset: &str, now: SystemTime) -> Option<Bucket> {
    let remaining = headers
        .get(remaining)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()?;
    Some(Bucket {
        remaining,
        reset_in: reset_of(headers, reset, now)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn each_bucket_needs_both_of_its_headers() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let rows: &[(&[(&'static str, &'static str)], Advertised)] = &[
            (&[], Advertised::default()),
            (
                &[(REMAINING_REQUESTS, "10"), (RESET_REQUESTS, "6m0s")],
                Advertised {
                    requests: Some(Bucket {
                        remaining: 10,
                        reset_in: Duration::from_secs(360),
                    }),
                    tokens: None,
                },
            ),
            (&[(REMAINING_REQUESTS, "10")], Advertised::default()),
            (
                &[(REMAINING_REQUESTS, "x"), (RESET_REQUESTS, "1s")],
                Advertised::default(),
            ),
            (
                &[(REMAINING_TOKENS, " 0 "), (RESET_TOKENS, "20ms")],
                Advertised {
                    requests: None,
                    tokens: Some(Bucket {
                        remaining: 0,
                        reset_in: Duration::from_millis(20),
                    }),
                },
            ),
        ];
        for (pairs, expected) in rows {
            assert_eq!(
                Advertised::read(&headers(pairs), now),
                *expected,
                "{pairs:?}"
            );
        }
    }
}
