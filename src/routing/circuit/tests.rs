use super::*;

use CircuitState::{Closed, HalfOpen, Open};

fn config(consecutive: u32, ratio: f64, window: usize, min: usize) -> CircuitConfig {
    CircuitConfig {
        consecutive_failures: consecutive,
        failure_ratio: ratio,
        window,
        min_requests: min,
        cooldown_ms: 30_000,
        max_cooldown_ms: 30_000,
    }
}

fn at(t0: Instant, ms: u64) -> Instant {
    t0 + Duration::from_millis(ms)
}

fn moved(from: CircuitState, to: CircuitState) -> Option<Transition> {
    Some(Transition { from, to })
}

#[test]
fn states_have_gauge_values_and_labels() {
    let shown: Vec<(i64, &str)> = [Closed, Open, HalfOpen]
        .into_iter()
        .map(|s| (s.as_gauge(), s.as_str()))
        .collect();
    assert_eq!(shown, [(0, "closed"), (2, "open"), (1, "half_open")]);
}

#[test]
fn the_cooldown_doubles_per_failed_probe_and_resets_on_success() {
    let t0 = Instant::now();
    let c = Circuit::new(&CircuitConfig {
        cooldown_ms: 5_000,
        max_cooldown_ms: 20_000,
        ..config(1, 1.0, 20, 20)
    });
    assert_eq!(c.record(false, t0), moved(Closed, Open));
    // (probe at, the cool-down that follows its failure)
    let mut now = t0;
    let mut until = at(t0, 5_000);
    for wait in [10_000, 20_000, 20_000] {
        assert_eq!(
            c.admit(at(until, 0) - Duration::from_millis(1)),
            Admission::Reject { until }
        );
        now = until;
        assert_eq!(c.admit(now), Admission::Probe);
        assert_eq!(c.record(false, now), moved(HalfOpen, Open));
        until = at(now, wait);
    }
    // Recovered: the next probe closes it, and the next outage starts short again.
    assert_eq!(c.admit(until), Admission::Probe);
    assert_eq!(c.record(true, until), moved(HalfOpen, Closed));
    let later = at(until, 1_000);
    assert_eq!(c.record(false, later), moved(Closed, Open));
    assert_eq!(
        c.admit(at(later, 4_999)),
        Admission::Reject {
            until: at(later, 5_000)
        }
    );
    assert_eq!(c.admit(at(later, 5_000)), Admission::Probe);
    let _ = now;
}

#[test]
fn a_run_of_failures_opens_then_a_probe_closes() {
    let t0 = Instant::now();
    let c = Circuit::new(&config(3, 1.0, 20, 20));
    assert_eq!(c.admit(t0), Admission::Pass);
    assert_eq!(c.record(false, at(t0, 1)), None);
    assert_eq!(c.record(false, at(t0, 2)), None);
    assert_eq!(c.record(true, at(t0, 3)), None); // the run is broken
    assert_eq!(c.record(false, at(t0, 4)), None);
    assert_eq!(c.record(false, at(t0, 5)), None);
    assert_eq!(c.record(false, at(t0, 6)), moved(Closed, Open));
    assert_eq!(c.state(), Open);
    let until = at(t0, 30_006);
    assert_eq!(c.admit(at(t0, 7)), Admission::Reject { until });
    assert_eq!(c.admit(at(t0, 30_005)), Admission::Reject { until });
    // Late answers of requests admitted before it opened change nothing.
    assert_eq!(c.record(true, at(t0, 100)), None);
    assert_eq!(c.record(false, at(t0, 200)), None);
    assert_eq!(c.state(), Open);
    // Cool-down over: one probe, everyone else rejected meanwhile.
    assert_eq!(c.admit(until), Admission::Probe);
    assert_eq!(c.state(), HalfOpen);
    let later = at(t0, 30_010);
    assert_eq!(c.admit(later), Admission::Reject { until: later });
    assert_eq!(c.record(true, at(t0, 30_500)), moved(HalfOpen, Closed));
    assert_eq!(c.state(), Closed);
    assert_eq!(c.admit(at(t0, 30_501)), Admission::Pass);
    // Counts were reset: two failures do not reopen.
    assert_eq!(c.record(false, at(t0, 30_600)), None);
    assert_eq!(c.record(false, at(t0, 30_700)), None);
    assert_eq!(c.state(), Closed);
}

#[test]
fn a_failed_probe_reopens_with_a_new_cooldown() {
    let t0 = Instant::now();
    let c = Circuit::new(&config(1, 1.0, 1, 1));
    assert_eq!(c.record(false, t0), moved(Closed, Open));
    assert_eq!(c.admit(at(t0, 30_000)), Admission::Probe);
    assert_eq!(c.record(false, at(t0, 31_000)), moved(HalfOpen, Open));
    assert_eq!(
        c.admit(at(t0, 31_001)),
        Admission::Reject {
            until: at(t0, 61_000)
        }
    );
    assert_eq!(c.admit(at(t0, 61_000)), Admission::Probe);
    assert_eq!(c.record(true, at(t0, 61_100)), moved(HalfOpen, Closed));
}

#[test]
fn a_released_probe_lets_the_next_caller_probe() {
    let t0 = Instant::now();
    let c = Circuit::new(&config(1, 1.0, 1, 1));
    c.release_probe(); // closed: nothing to release
    assert_eq!(c.state(), Closed);
    assert_eq!(c.record(false, t0), moved(Closed, Open));
    c.release_probe(); // open: nothing either
    assert_eq!(
        c.admit(at(t0, 29_999)),
        Admission::Reject {
            until: at(t0, 30_000)
        }
    );
    assert_eq!(c.admit(at(t0, 30_000)), Admission::Probe);
    assert_eq!(
        c.admit(at(t0, 30_001)),
        Admission::Reject {
            until: at(t0, 30_001)
        }
    );
    c.release_probe();
    assert_eq!(c.state(), HalfOpen);
    assert_eq!(c.admit(at(t0, 30_002)), Admission::Probe);
    assert_eq!(
        c.admit(at(t0, 30_003)),
        Admission::Reject {
            until: at(t0, 30_003)
        }
    );
}

/// Each row: the outcomes recorded (true = success), and the 0-based
/// position of the one that opens the circuit, if any.
#[test]
fn the_failure_ratio_counts_once_the_window_holds_min_requests() {
    let f = false;
    let s = true;
    let cases: &[(CircuitConfig, &[bool], Option<usize>)] = &[
        // Alternating: the 10th outcome fills the window but is a success
        // (only failures trip); the 11th pushes a failure out and one in:
        // 5/10 ≥ 0.5.
        (
            config(100, 0.5, 10, 10),
            &[f, s, f, s, f, s, f, s, f, s, f],
            Some(10),
        ),
        // Failures first: 5/10 reached on the 10th only if it fails.
        (
            config(100, 0.5, 10, 10),
            &[s, s, s, s, s, f, f, f, f, f],
            Some(9),
        ),
        // Below min_requests the ratio does not count (4/4 failures).
        (config(100, 0.5, 10, 5), &[f, f, f, f], None),
        (config(100, 0.5, 10, 5), &[f, f, f, f, f], Some(4)),
        // The window slides: old failures fall out.
        (
            config(100, 0.5, 4, 4),
            &[f, s, s, s, s, f, s, s, s, f, s],
            None,
        ),
        (config(100, 0.5, 4, 4), &[s, s, s, s, f, s, f], Some(6)),
        // ratio 1.0: every outcome in the window must fail.
        (config(100, 1.0, 3, 3), &[s, f, f, s, f, f, f], Some(6)),
        // min_requests 0: the ratio counts from the start (1/2).
        (config(100, 0.5, 10, 0), &[s, f], Some(1)),
        // consecutive wins before the ratio can count.
        (config(2, 0.9, 20, 20), &[s, f, f], Some(2)),
    ];
    for (cfg, outcomes, opens_at) in cases {
        let t0 = Instant::now();
        let c = Circuit::new(cfg);
        let mut opened = None;
        for (i, ok) in outcomes.iter().enumerate() {
            if c.record(*ok, at(t0, i as u64)) == moved(Closed, Open) {
                opened = Some(i);
                break;
            }
        }
        assert_eq!(opened, *opens_at, "{cfg:?} {outcomes:?}");
    }
}

#[test]
fn shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Circuit>();
}
