//! SSE streams of the mock: [`Events`] (pre-built `data: ...\n\n` frames,
//! one per event) and [`Shape`], how a stream step bends them — cut the
//! connection, tear an event, drop the terminal event, slip in a malformed
//! event, an in-band error or bytes that are not SSE, lead with role-only
//! chunks or keep-alive comments (sent lazily), hold, stall, gzip.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::body::{End, MockBody, Run};
use super::scenario::Step;

/// The `data: [DONE]` event.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// The event `malformed` slips in.
pub const MALFORMED: &[u8] = b"data: {not json\n\n";

/// The one event of `error_event` (chat, completions).
pub const ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}\n\n";

/// The JSON of `error_event`, for a non-stream request.
pub const ERROR_JSON: &[u8] =
    b"{\"error\":{\"message\":\"upstream overloaded\",\"type\":\"server_error\",\"code\":\"internal_error\"}}";

/// The in-band error event of `error_after` (chat, completions).
pub const CHAT_ERROR_EVENT: &[u8] = b"data: {\"error\":{\"message\":\"mock in-band error\",\"type\":\"server_error\",\"code\":\"server_error\"}}\n\n";

/// One `keepalive` comment.
pub const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// The unit `garbage` repeats ([`GARBAGE_REPEAT`] times, no blank line).
pub const GARBAGE_UNIT: &[u8] = b"\x00\xff not sse \x01";

/// How many times `garbage` repeats [`GARBAGE_UNIT`].
pub const GARBAGE_REPEAT: usize = 16;

/// The bytes of `garbage`.
pub fn garbage() -> Bytes {
    Bytes::from(GARBAGE_UNIT.repeat(GARBAGE_REPEAT))
}

/// The Responses API's in-band error event, numbered `sequence_number`.
pub fn responses_error_event(sequence_number: usize) -> Bytes {
    Bytes::from(format!(
        "event: error\ndata: {{\"type\":\"error\",\"code\":\"server_error\",\"message\":\"mock in-band error\",\"param\":null,\"sequence_number\":{sequence_number}}}\n\n"
    ))
}

/// Which API's events a stream carries (for its in-band error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Api {
    /// Chat and legacy completions: `data:` lines, `[DONE]`.
    #[default]
    Chat,
    /// The Responses API: named events with sequence numbers.
    Responses,
}

/// A stream's frames, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Events {
    /// One frame per event.
    pub frames: Vec<Bytes>,
    /// Frames before the first content event (role and reasoning chunks,
    /// `response.created` ... `response.content_part.added`).
    pub lead: usize,
    /// Content events, right after the lead ones.
    pub content: usize,
    /// Whether the last frame is the terminal event (`data: [DONE]`,
    /// `response.completed` and the like).
    pub done: bool,
    /// The API, for the in-band error of `error_after`.
    pub api: Api,
    /// A chunk that says nothing, for `role_only` (chat: the role alone;
    /// empty where the API has none).
    pub filler: Bytes,
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
    /// The first half of the stream's bytes (mid-event), then the drop.
    Tear,
    /// No event at all: the connection drops after the headers.
    DropAfterHeaders,
    /// Without the terminal event.
    NoDone,
    /// `data: {not json` after the first content event.
    Malformed,
    /// The lead events and N content events, the in-band error, the end.
    ErrorAfter(usize),
    /// The lead events and N content events, bytes that are not SSE, the end.
    Garbage(usize),
    /// N role-only chunks before everything.
    RoleOnly(usize),
    /// N keep-alive comments before everything.
    Keepalive(usize),
    /// A pause of this length before the first byte.
    Hold(Duration),
    /// A pause of this length before the first content event.
    FirstToken(Duration),
    /// A pause of this length after the first content event.
    Stall(Duration),
}

impl Shape {
    /// The shape a step asks for.
    pub fn of(step: &Step) -> Shape {
        match step {
            Step::Cut(n) => Shape::Cut(*n),
            Step::CutBody => Shape::Tear,
            Step::DropAfterHeaders => Shape::DropAfterHeaders,
            Step::NoDone => Shape::NoDone,
            Step::Malformed => Shape::Malformed,
            Step::ErrorAfter(n) => Shape::ErrorAfter(*n),
            Step::Garbage(n) => Shape::Garbage(*n),
            Step::RoleOnly(n) => Shape::RoleOnly(*n),
            Step::Keepalive(n) => Shape::Keepalive(*n),
            Step::Hold(pause) => Shape::Hold(*pause),
            Step::FirstToken(pause) => Shape::FirstToken(*pause),
            Step::Stall(pause) => Shape::Stall(*pause),
            _ => Shape::Whole,
        }
    }
}

/// The first `len` bytes of `frames`, the last one torn if need be.
fn tear(frames: &mut Vec<Bytes>, len: usize) {
    let mut kept = 0;
    let mut keep = 0;
    for frame in frames.iter_mut() {
        if kept >= len {
            break;
        }
        if kept + frame.len() > len {
            *frame = frame.slice(..len - kept);
        }
        kept += frame.len();
        keep += 1;
    }
    frames.truncate(keep);
}

/// The body of a stream: `events` bent by `shape`, with `delay` before every
/// event but the first; gzip-compressed per event when `gzip`.
pub fn body(events: Events, shape: Shape, delay: Duration, gzip: bool) -> MockBody {
    let Events {
        mut frames,
        lead,
        content,
        done,
        api,
        filler,
    } = events;
    let mut end = End::Clean;
    // An extra pause before frame `at`, and a run before everything.
    let mut pause_at: Option<(usize, Duration)> = None;
    let mut repeat: Option<(Bytes, usize)> = None;
    let upto = |n: usize| lead + n.min(content);
    match shape {
        Shape::Whole => {}
        Shape::Cut(n) => {
            frames.truncate(upto(n));
            end = End::Abort;
        }
        Shape::Tear => {
            let total: usize = frames.iter().map(Bytes::len).sum();
            tear(&mut frames, total / 2);
            end = End::Abort;
        }
        Shape::DropAfterHeaders => {
            frames.clear();
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
        Shape::ErrorAfter(n) => {
            let at = upto(n);
            frames.truncate(at);
            frames.push(match api {
                Api::Chat => Bytes::from_static(CHAT_ERROR_EVENT),
                Api::Responses => responses_error_event(at),
            });
        }
        Shape::Garbage(n) => {
            frames.truncate(upto(n));
            frames.push(garbage());
        }
        Shape::RoleOnly(n) => repeat = Some((filler, n)),
        Shape::Keepalive(n) => repeat = Some((Bytes::from_static(KEEPALIVE), n)),
        Shape::Hold(pause) => pause_at = Some((0, pause)),
        Shape::FirstToken(pause) => pause_at = Some((lead, pause)),
        Shape::Stall(pause) => pause_at = Some((lead + 1, pause)),
    }
    let mut runs = Vec::with_capacity(frames.len() + 2);
    if let Some((bytes, times)) = repeat.filter(|(b, n)| !b.is_empty() && *n > 0) {
        runs.push(Run::once(Duration::ZERO, bytes.clone()));
        runs.push(Run {
            pause: delay,
            bytes,
            times: times - 1,
        });
    }
    for (i, frame) in frames.into_iter().enumerate() {
        let mut pause = if i == 0 && runs.is_empty() {
            Duration::ZERO
        } else {
            delay
        };
        if let Some((at, extra)) = pause_at {
            if at == i {
                pause += extra;
            }
        }
        runs.push(Run::once(pause, frame));
    }
    let body = MockBody::runs(runs, end);
    if gzip {
        body.gzipped()
    } else {
        body
    }
}

#[cfg(test)]
mod tests;
