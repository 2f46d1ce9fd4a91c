//! How each [`Shape`] bends a stream, frame by frame and in time.

use super::*;
use http_body_util::BodyExt;

fn events() -> Events {
    let frames = ["role", "c1", "c2", "finish", "[DONE]"].map(|s| Bytes::from_static(s.as_bytes()));
    Events {
        frames: frames.to_vec(),
        lead: 1,
        content: 2,
        done: true,
        api: Api::Chat,
        filler: Bytes::from_static(b"fill"),
    }
}

async fn sent(body: MockBody) -> (Vec<String>, bool) {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => out.extend(
                f.into_data()
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).into_owned()),
            ),
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

#[tokio::test]
async fn shapes() {
    let garbage = String::from_utf8_lossy(&garbage()).into_owned();
    let in_band = String::from_utf8_lossy(CHAT_ERROR_EVENT).into_owned();
    let cases: Vec<(Shape, Vec<&str>, bool)> = vec![
        (
            Shape::Whole,
            vec!["role", "c1", "c2", "finish", "[DONE]"],
            false,
        ),
        (Shape::Cut(1), vec!["role", "c1"], true),
        (Shape::Cut(0), vec!["role"], true),
        (Shape::Cut(9), vec!["role", "c1", "c2"], true),
        // 4 + 2 + 2 + 6 + 6 = 20 bytes: the first 10.
        (Shape::Tear, vec!["role", "c1", "c2", "fi"], true),
        (Shape::DropAfterHeaders, vec![], true),
        (Shape::NoDone, vec!["role", "c1", "c2", "finish"], false),
        (
            Shape::Malformed,
            vec![
                "role",
                "c1",
                "data: {not json\n\n",
                "c2",
                "finish",
                "[DONE]",
            ],
            false,
        ),
        (Shape::ErrorAfter(1), vec!["role", "c1", &in_band], false),
        (Shape::ErrorAfter(0), vec!["role", &in_band], false),
        (Shape::Garbage(2), vec!["role", "c1", "c2", &garbage], false),
        (
            Shape::RoleOnly(2),
            vec!["fill", "fill", "role", "c1", "c2", "finish", "[DONE]"],
            false,
        ),
        (
            Shape::Keepalive(1),
            vec![": keep-alive\n\n", "role", "c1", "c2", "finish", "[DONE]"],
            false,
        ),
        (
            Shape::RoleOnly(0),
            vec!["role", "c1", "c2", "finish", "[DONE]"],
            false,
        ),
    ];
    for (shape, want, aborted) in cases {
        let got = sent(body(events(), shape, Duration::ZERO, false)).await;
        assert_eq!(
            got,
            (want.iter().map(|s| s.to_string()).collect(), aborted),
            "{shape:?}"
        );
    }
}

#[test]
fn garbage_is_not_sse() {
    let g = garbage();
    assert_eq!(g.len(), 16 * 12);
    assert!(g.starts_with(b"\x00\xff not sse \x01\x00\xff"));
    assert!(!g.windows(2).any(|w| w == b"\n\n"));
}

#[test]
fn responses_error_event_is_exact() {
    assert_eq!(
        responses_error_event(0),
        Bytes::from_static(b"event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock in-band error\",\"param\":null,\"sequence_number\":0}\n\n")
    );
}

/// When each frame arrives, in ms since the start.
async fn times(mut b: MockBody) -> Vec<u128> {
    let start = tokio::time::Instant::now();
    let mut at = Vec::new();
    while let Some(Ok(_)) = b.frame().await {
        at.push(start.elapsed().as_millis());
    }
    at
}

#[tokio::test(start_paused = true)]
async fn pauses_by_shape() {
    let ms = Duration::from_millis;
    let cases = [
        // Stall: after the first content event.
        (Shape::Stall(ms(500)), vec![0, 10, 20 + 500, 530, 540]),
        // Hold: before the first byte.
        (Shape::Hold(ms(500)), vec![500, 510, 520, 530, 540]),
        // First token: before the first content event.
        (Shape::FirstToken(ms(500)), vec![0, 10 + 500, 520, 530, 540]),
        // Repeats are paced like events.
        (Shape::Keepalive(2), vec![0, 10, 20, 30, 40, 50, 60]),
    ];
    for (shape, want) in cases {
        let got = times(body(events(), shape, ms(10), false)).await;
        assert_eq!(got, want, "{shape:?}");
    }
}

#[tokio::test]
async fn a_long_run_is_lazy() {
    // 100 000 role-only chunks are one frame in memory, sent 100 000 times.
    let b = body(events(), Shape::RoleOnly(100_000), Duration::ZERO, false);
    let got = sent(b).await.0;
    assert_eq!(got.len(), 100_000 + 5);
    assert_eq!(got.iter().filter(|f| *f == "fill").count(), 100_000);
}

#[tokio::test]
async fn gzip_compresses_each_event_on_its_own() {
    use std::io::Write;
    let (got, aborted) = sent(body(events(), Shape::Whole, Duration::ZERO, true)).await;
    assert!(!aborted);
    // Five events and the trailer.
    assert_eq!(got.len(), 6);
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    let mut plain = Vec::new();
    let mut b = body(events(), Shape::Whole, Duration::ZERO, true);
    while let Some(Ok(frame)) = b.frame().await {
        let data = frame.into_data().unwrap_or_default();
        decoder.write_all(&data).unwrap();
        decoder.flush().unwrap();
        plain.push(String::from_utf8(std::mem::take(decoder.get_mut())).unwrap());
    }
    assert_eq!(plain, vec!["role", "c1", "c2", "finish", "[DONE]", ""]);
}

#[test]
fn events_are_data_lines() {
    let e = event(None, &serde_json::json!({"a": 1}));
    assert_eq!(e, Bytes::from_static(b"data: {\"a\":1}\n\n"));
    let e = event(Some("response.created"), &serde_json::json!({}));
    assert_eq!(
        e,
        Bytes::from_static(b"event: response.created\ndata: {}\n\n")
    );
}
