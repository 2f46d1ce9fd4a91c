use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::ratelimit::advertised::Advertised;

/// 2022-01-01T00:00:00Z.
const EPOCH: u64 = 1_640_995_200;

fn wall() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EPOCH - 100)
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn pacer(reserve: u64, max_wait_ms: u64, max_queue: usize) -> Pacer {
    Pacer::new(&PacingConfig {
        enabled: true,
        reserve,
        max_wait_ms,
        max_queue,
    })
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn requests(remaining: &str, reset: &str) -> HeaderMap {
    headers(&[
        ("x-ratelimit-remaining-requests", remaining),
        ("x-ratelimit-reset-requests", reset),
    ])
}

#[test]
fn ten_remaining_lets_exactly_ten_through_before_the_reset() {
    let t0 = Instant::now();
    let far = at(t0, 3_600_000);
    let p = pacer(0, 60_000, 256);
    p.observe(&Advertised::read(&requests("10", "60s"), wall()), t0);
    let reset = at(t0, 60_000);
    for i in 0..10 {
        assert_eq!(p.reserve(at(t0, i), far), Reservation::Go, "request {i}");
    }
    assert_eq!(p.snapshot(at(t0, 10)), (Some(0), None));
    assert_eq!(p.reserve(at(t0, 10), far), Reservation::Wait(reset));
    assert_eq!(p.reserve(at(t0, 11), far), Reservation::Wait(reset));
    assert_eq!(p.waiting(at(t0, 11)), 2);
    // At the reset the count is unknown: everyone goes, waiters included.
    for _ in 0..20 {
        assert_eq!(p.reserve(reset, far), Reservation::Go);
    }
    assert_eq!(p.waiting(reset), 0);
    assert_eq!(p.snapshot(reset), (None, None));
    // The next answer starts a new count.
    p.observe(&Advertised::read(&requests("1", "1s"), wall()), reset);
    assert_eq!(p.reserve(reset, far), Reservation::Go);
    assert_eq!(p.reserve(reset, far), Reservation::Wait(at(t0, 61_000)));
}

#[test]
fn a_reset_beyond_max_wait_or_the_deadline_is_refused() {
    let t0 = Instant::now();
    let p = pacer(0, 10_000, 256);
    p.observe(&Advertised::read(&requests("0", "60s"), wall()), t0);
    let until = at(t0, 60_000);
    let cases: &[(u64, u64, Reservation)] = &[
        // (now, deadline) in ms from t0
        (0, 3_600_000, Reservation::Refuse { until }), // 60 s > max_wait
        (49_999, 3_600_000, Reservation::Refuse { until }),
        (50_000, 3_600_000, Reservation::Wait(until)), // exactly max_wait
        (55_000, 60_000, Reservation::Refuse { until }), // would go at the deadline
        (55_000, 60_001, Reservation::Wait(until)),
    ];
    for (now, deadline, expected) in cases {
        assert_eq!(
            p.reserve(at(t0, *now), at(t0, *deadline)),
            *expected,
            "now {now} deadline {deadline}"
        );
    }
}

#[test]
fn the_queue_is_bounded_and_a_cancelled_wait_frees_its_place() {
    let t0 = Instant::now();
    let far = at(t0, 3_600_000);
    let p = pacer(0, 10_000, 2);
    p.observe(&Advertised::read(&requests("0", "5s"), wall()), t0);
    let until = at(t0, 5_000);
    assert_eq!(p.reserve(t0, far), Reservation::Wait(until));
    assert_eq!(p.reserve(t0, far), Reservation::Wait(until));
    assert_eq!(p.reserve(t0, far), Reservation::Refuse { until });
    p.cancel_wait(until);
    p.cancel_wait(at(t0, 1)); // no one waits until then: no effect
    assert_eq!(p.waiting(t0), 1);
    assert_eq!(p.reserve(t0, far), Reservation::Wait(until));
    assert_eq!(p.reserve(t0, far), Reservation::Refuse { until });
}

#[test]
fn reserve_keeps_requests_in_hand() {
    let t0 = Instant::now();
    let far = at(t0, 3_600_000);
    let p = pacer(2, 10_000, 256);
    p.observe(&Advertised::read(&requests("5", "2s"), wall()), t0);
    let got: Vec<Reservation> = (0..4).map(|_| p.reserve(t0, far)).collect();
    let wait = Reservation::Wait(at(t0, 2_000));
    assert_eq!(
        got,
        [Reservation::Go, Reservation::Go, Reservation::Go, wait]
    );
    assert_eq!(p.snapshot(t0), (Some(2), None));
}

#[test]
fn answers_only_lower_the_count_within_a_window() {
    let t0 = Instant::now();
    let far = at(t0, 3_600_000);
    let p = pacer(0, 60_000, 256);
    p.observe(&Advertised::read(&requests("10", "60s"), wall()), t0);
    for _ in 0..3 {
        assert_eq!(p.reserve(t0, far), Reservation::Go);
    }
    // A late answer (sent before those three) says 9: the count stays 7,
    // the reset is the latest word.
    p.observe(
        &Advertised::read(&requests("9", "59s"), wall()),
        at(t0, 100),
    );
    assert_eq!(p.snapshot(at(t0, 100)), (Some(7), None));
    p.observe(
        &Advertised::read(&requests("2", "59s"), wall()),
        at(t0, 200),
    );
    assert_eq!(p.snapshot(at(t0, 200)), (Some(2), None));
    assert_eq!(p.reserve(at(t0, 300), far), Reservation::Go);
    assert_eq!(p.reserve(at(t0, 300), far), Reservation::Go);
    assert_eq!(
        p.reserve(at(t0, 300), far),
        Reservation::Wait(at(t0, 59_200))
    );
}

#[test]
fn every_reset_form_sets_the_reset_instant() {
    let cases: &[(&str, u64)] = &[
        ("6m0s", 360_000),
        ("1s", 1_000),
        ("20ms", 20),
        ("1h2m3.5s", 3_723_500),
        ("30", 30_000),
        ("1.25", 1_250),
        ("1640995200", 100_000),    // Unix seconds, 100 s after `wall`
        ("1640995200000", 100_000), // Unix milliseconds
    ];
    for (reset, ms) in cases {
        let t0 = Instant::now();
        let p = pacer(0, 7_200_000, 256);
        p.observe(&Advertised::read(&requests("0", reset), wall()), t0);
        assert_eq!(
            p.reserve(t0, at(t0, 7_200_001)),
            Reservation::Wait(at(t0, *ms)),
            "{reset}"
        );
    }
}

#[test]
fn unusable_headers_leave_the_pacer_as_it_was() {
    let t0 = Instant::now();
    let cases: &[&[(&'static str, &str)]] = &[
        &[],
        &[("x-ratelimit-remaining-requests", "0")], // no reset
        &[("x-ratelimit-reset-requests", "60s")],   // no remaining
        &[
            ("x-ratelimit-remaining-requests", "-1"),
            ("x-ratelimit-reset-requests", "60s"),
        ],
        &[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "soon"),
        ],
        &[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "0s"), // already reset
        ],
        &[
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "60s"), // the other bucket's reset
        ],
    ];
    for pairs in cases {
        let p = pacer(0, 60_000, 256);
        p.observe(&Advertised::read(&headers(pairs), wall()), t0);
        assert_eq!(p.snapshot(t0), (None, None), "{pairs:?}");
        assert_eq!(p.reserve(t0, at(t0, 1_000)), Reservation::Go, "{pairs:?}");
    }
}

#[test]
fn tokens_hold_requests_back_only_at_zero() {
    let t0 = Instant::now();
    let far = at(t0, 3_600_000);
    let p = pacer(0, 10_000, 256);
    let tokens = |n: &str, reset: &str| {
        headers(&[
            ("x-ratelimit-remaining-tokens", n),
            ("x-ratelimit-reset-tokens", reset),
        ])
    };
    p.observe(&Advertised::read(&tokens("1", "2s"), wall()), t0);
    for _ in 0..5 {
        assert_eq!(p.reserve(t0, far), Reservation::Go);
    }
    assert_eq!(p.snapshot(t0), (None, Some(1)));
    p.observe(&Advertised::read(&tokens("0", "2s"), wall()), at(t0, 10));
    assert_eq!(p.reserve(at(t0, 10), far), Reservation::Wait(at(t0, 2_010)));
    // Both buckets blocked: the later reset wins.
    p.observe(&Advertised::read(&requests("0", "4s"), wall()), at(t0, 20));
    assert_eq!(p.reserve(at(t0, 20), far), Reservation::Wait(at(t0, 4_020)));
    assert_eq!(p.reserve(at(t0, 4_020), far), Reservation::Go);
}

#[test]
fn disabled_pacing_always_goes_but_still_reports() {
    let t0 = Instant::now();
    let p = Pacer::new(&PacingConfig {
        enabled: false,
        ..PacingConfig::default()
    });
    p.observe(&Advertised::read(&requests("0", "60s"), wall()), t0);
    assert_eq!(p.reserve(t0, at(t0, 1)), Reservation::Go);
    assert_eq!(p.snapshot(t0), (Some(0), None));
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Pacer>();
}
