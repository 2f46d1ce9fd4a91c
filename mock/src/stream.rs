//! SSE streams of the mock: [`Events`] (pre-built `data: ...\n\n` frames,
//! one per event) and [`Shape`], how a stream step bends them — cut the
//! connection, drop `[DONE]`, slip in a malformed event, stall.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::body::{End, MockBody};
use super::scenario::Step;

/// The `data: [DONE]` event.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// The event `malformed` slips in.
pub const MALFORMED: &[u8] = b"data: {not json\n\n";

/// The one event of `error_event`.
pub const ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}\n\n";

/// The JSON of `error_event`, for a non-stream request.
pub const ERROR_JSON: &[u8] =
    b"{\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}";

/// A stream's frames, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// One frame per event.
    pub frames: Vec<Bytes>,
    /// Frames before the first content event (role chunks, `response.created`).
    pub lead: usize,
    /// Content events, right after the lead ones.
    pub content: usize,
    /// Whether the last frame is `data: [DONE]`.
    pub done: bool,
}

/// `data: JSON\n\n` (with `event: NAME\n` first when named).
pub fn event(name: Option<&str>, value: &impl Serialize) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    if let Some(name) = name {
        buf.extend_from_slice(b"event: ");
        buf.extend_from_slice(name.as_bytes());
        buf.push(b'\n');
    }
    buf.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}

/// How a step bends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// As built.
    Whole,
    /// The lead events and N content events, then the connection drops.
    Cut(usize),
    /// Without `data: [DONE]`.
    NoDone,
    /// `data: {not json` after the first content event.
    Malformed,
    /// A pause of this length after the first content event.
    Stall(Duration),
}

impl Shape {
    /// The shape a step asks for.
    pub fn of(step: &Step) -> Shape {
        match step {
            Step::Cut(n) => Shape::Cut(*n),
            Step::NoDone => Shape::NoDone,
            Step::Malformed => Shape::Malformed,
            Step::Stall(pause) => Shape::Stall(*pause),
            _ => Shape::Whole,
        }
    }
}

/// The body of a stream: `events` bent by `shape`, with `delay` before every
/// event but the first.
pub fn body(events: Events, shape: Shape, delay: Duration) -> MockBody {
    let Events {
        mut frames,
        lead,
        content,
        done,
    } = events;
    let mut end = End::Clean;
    let mut stall = None;
    match shape {
        Shape::Whole => {}
        Shape::Cut(n) => {
            frames.truncate(lead + n.min(content));
            end = End::Abort;
        }
        Shape::NoDone => {
            if done {
                frames.pop();
            }
        }
        Shape::Malformed => {
            let at = (lead + content.min(1)).min(frames.len());
            frames.insert(at, Bytes::from_static(MALFORMED));
        }
        Shape::Stall(pause) => stall = Some((lead + 1, pause)),
    }
    let timed = frames
        .into_iter()
        .enumerate()
        .map(|(i, frame)| {
            let mut pause = if i == 0 { Duration::ZERO } else { delay };
            if let Some((at, extra)) = stall {
                if at == i {
                    pause += extra;
                }
            }
            (pause, frame)
        })
        .collect();
    MockBody::frames(timed, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn events() -> Events {
        let frames =
            ["role", "c1", "c2", "finish", "[DONE]"].map(|s| Bytes::from_static(s.as_bytes()));
        Events {
            frames: frames.to_vec(),
            lead: 1,
            content: 2,
            done: true,
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
        let cases: [(Shape, &[&str], bool); 6] = [
            (
                Shape::Whole,
                &["role", "c1", "c2", "finish", "[DONE]"],
                false,
            ),
            (Shape::Cut(1), &["role", "c1"], true),
            (Shape::Cut(0), &["role"], true),
            (Shape::Cut(9), &["role", "c1", "c2"], true),
            (Shape::NoDone, &["role", "c1", "c2", "finish"], false),
            (
                Shape::Malformed,
                &[
                    "role",
                    "c1",
                    "data: {not json\n\n",
                    "c2",
                    "finish",
                    "[DONE]",
                ],
                false,
            ),
        ];
        for (shape, want, aborted) in cases {
            let got = sent(body(events(), shape, Duration::ZERO)).await;
            assert_eq!(
                got,
                (want.iter().map(|s| s.to_string()).collect(), aborted),
                "{shape:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn stall_pauses_after_the_first_content_event() {
        let mut b = body(
            events(),
            Shape::Stall(Duration::from_millis(500)),
            Duration::from_millis(10),
        );
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        while let Some(Ok(_)) = b.frame().await {
            at.push(start.elapsed().as_millis());
        }
        assert_eq!(at, vec![0, 10, 20 + 500, 530, 540]);
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
}
