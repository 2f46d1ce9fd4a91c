//! The soak report: spans, thinning, and what the markdown must say.

use std::time::Duration;

use super::*;
use crate::slow::End;
use crate::slow_stats::SlowKind;
use crate::soak_clients::LostRequest;

fn at(t: f64, rss: Option<f64>, fds: Option<u64>) -> Sample {
    Sample {
        t_s: t,
        rss_mib: rss,
        fds,
        ..Sample::default()
    }
}

#[test]
fn spans_skip_missing_readings() {
    let s = [
        at(0.0, Some(10.0), Some(20)),
        at(5.0, Some(14.0), None),
        at(10.0, Some(12.0), Some(120)),
        at(15.0, None, Some(30)),
    ];
    let rss = Span::of(&s, |x| x.rss_mib);
    assert_eq!(
        rss,
        Some(Span {
            min: 10.0,
            max: 14.0,
            last: 12.0
        })
    );
    let fds = Span::of(&s, |x| x.fds.map(|f| f as f64));
    assert_eq!(
        fds.map(|f| (f.min, f.max, f.last)),
        Some((20.0, 120.0, 30.0))
    );
    assert_eq!(Span::of(&[], |x| x.rss_mib), None);
    let json = serde_json::to_value(rss).unwrap();
    assert_eq!(json["final"], 12.0);
}

#[test]
fn thinning_keeps_both_ends() {
    let s: Vec<Sample> = (0..121)
        .map(|i| at(f64::from(i) * 5.0, None, None))
        .collect();
    let t = thin(&s, 13);
    assert_eq!(t.len(), 13);
    assert_eq!(t.first().map(|x| x.t_s), Some(0.0));
    assert_eq!(t.last().map(|x| x.t_s), Some(600.0));
    assert_eq!(thin(&s[..5], 13).len(), 5);
}

fn report() -> SoakReport {
    let machine = Machine::describe(std::path::Path::new("."), None, 100);
    let mut idle = SlowStats::new(SlowKind::Idle, 50);
    idle.record(End::StillOpen, Duration::from_secs(60));
    let mut drop = SlowStats::new(SlowKind::DropMidStream, 10);
    drop.record(End::Finished, Duration::from_millis(80));
    let mut normal = NormalStats {
        connections: 16,
        sent: 100,
        success: 80,
        error_answers: 20,
        ..NormalStats::default()
    };
    normal.statuses.insert(200, 80);
    normal.statuses.insert(502, 20);
    let chat = crate::soak_clients::KindCounts {
        sent: 100,
        success: 80,
        error_answers: 20,
        lost: 0,
    };
    normal.by_kind.insert("chat", chat);
    let mut r = SoakReport {
        machine,
        setup: SoakSetup {
            minutes: 1.0,
            mock_mix: "ok=80,reset=20".into(),
            mock_chunks: 16,
            mock_chunk_delay_ms: 10,
            backstop: "defaults".into(),
            normal_connections: 16,
            request_timeout_s: 120,
            sample_every_s: 5,
        },
        duration_s: 61.0,
        normal,
        slow: vec![idle, drop],
        samples: vec![at(0.0, Some(9.0), Some(12)), at(60.0, Some(11.0), Some(90))],
        rss_mib: None,
        fds: None,
        after_clients_left: Some(at(62.0, Some(10.5), Some(12))),
        backstop_exit: None,
    };
    r.summarize();
    r
}

#[test]
fn markdown_says_what_matters() {
    let md = report().markdown();
    for want in [
        "# backstop soak (1 min)",
        "| **lost** (must be 0) | **0** |",
        "| answered: success / error envelope | 80 / 20 |",
        "| answered by status | 200: 80, 502: 20 |",
        "| by kind: sent / success / error envelope / lost | chat 100 / 80 / 20 / 0 |",
        "| backstop RSS min / max / final (MiB) | 9.0 / 11.0 / 11.0 |",
        "| backstop open fds min / max / final | 12 / 90 / 90 |",
        "| after every client left: RSS (MiB), fds | 10.5, 12 |",
        "| backstop at the end | running |",
        "| idle socket | 50 | 1 | 0 | — | 0 | 0 | 1 (60) |",
        "Still open when the soak ended: 1 × idle socket.",
        "| 60 | 11.0 | 90 |",
    ] {
        assert!(md.contains(want), "{want:?} missing from\n{md}");
    }
    assert!(!md.contains("First lost requests"));
}

#[test]
fn markdown_lists_lost_requests() {
    let mut r = report();
    r.normal.lost = 2;
    r.normal.lost_by_reason.insert("timeout", 1);
    r.normal.lost_by_reason.insert("body_broken", 1);
    r.normal.lost_examples.push(LostRequest {
        t_s: 3.0,
        kind: "stream",
        reason: "timeout",
        detail: "no answer".into(),
    });
    r.backstop_exit = Some("backstop exited: signal 9".into());
    let md = r.markdown();
    assert!(md.contains("| **lost** (must be 0) | **2** (body_broken: 1, timeout: 1) |"));
    assert!(md.contains("- t=3.0 s, stream, timeout: `no answer`"));
    assert!(md.contains("| backstop at the end | backstop exited: signal 9 |"));
}
