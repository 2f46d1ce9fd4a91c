//! The step grammar of the chaos upstream: what one request is told to do
//! (`x-mock-scenario: STEP[,STEP...]`, `--mix STEP=WEIGHT,...`). Pure
//! data and selection only: the parser is in `grammar`, the argument names
//! in `names`, the `--mix` draw in `mix`; `respond` carries a step out.
//!
//! Every step, one line each ("whole" is a non-streamed answer; a step that
//! does not apply to a route answers there as `ok`):
//!
//! | step | what it does |
//! | --- | --- |
//! | `ok` | 200 success for the route (a stream when the body asks for one) |
//! | `status:CODE[:FORMAT]` | CODE (200–999) with an error body: `openai`, `comet`, `code`, `html`, `empty`, `text` |
//! | `error:NAME` | a provider error row of the seeds ([`NamedError`]), exact status, headers and body |
//! | `retry_after:SECS[:ms]` | 429 with `Retry-After: SECS` (or `retry-after-ms`) |
//! | `retry_after_5xx:SECS` | 503 with `Retry-After: SECS` |
//! | `ratelimit_reset:VALUE` | 429 with `x-ratelimit-reset-requests: VALUE` |
//! | `redirect` | 301 to `https://example.invalid/...` |
//! | `html` | 200 `text/html` page where JSON was due |
//! | `error_body[:FORMAT]` | 200 whose whole body is an error object (`openai`, `code`, or a code name), on every route, streamed or not |
//! | `finish:REASON` | the answer ends with that `finish_reason` (Responses: `length` and `content_filter` are `incomplete`) |
//! | `empty` | content null (Responses: `output: []`; transcriptions: `text: ""`) |
//! | `blank` | content `"   "` (transcriptions: `text: "   "`) |
//! | `json` / `bad_json` / `schema_bad` | content `{"answer": 42}` / `Sure! {"answer": 4` / `{"answer": "forty-two"}` |
//! | `bad_args` | a tool call whose arguments are `{"city": ` |
//! | `reasoning:N[:FIELD]` | chat: N deltas `"thinking…"` in `reasoning_content` (or `reasoning`) before the content, the whole text in the message; counted as completion tokens (Responses: only in `reasoning_tokens`) |
//! | `empty_data` | images and embeddings: `data: []` |
//! | `short_data` | embeddings: one vector fewer than the inputs |
//! | `empty_vector` | embeddings: every vector is `[]` (base64: `""`) |
//! | `failed:CODE` | Responses: 200, `status: "failed"`, `error: {code, message}`; stream ends `response.failed` (elsewhere: as `error_body:CODE`) |
//! | `pending` | Responses: a create or a poll answers `status: "in_progress"` |
//! | `cut:N` | stream: N content events, then the connection drops; whole: the first N bytes, then the drop |
//! | `cut_body` | the first half of the bytes under the full `Content-Length` (a stream: half its bytes), then the drop |
//! | `drop_after_headers` | 200 headers, then the drop before any body byte |
//! | `nodone` / `no_done` | stream: complete but without the terminal event (`[DONE]`, `response.completed`) |
//! | `malformed` | stream: a `data: {not json` event after the first content one; whole: body `{not json` |
//! | `error_event` | stream: the first event is an in-band error, then the end; whole: a 200 error body |
//! | `error_after:N` | stream: N content events, an in-band error event, then the end |
//! | `garbage[:AFTER]` | stream: AFTER content events, then bytes that are not SSE, then the end; whole: such bytes as the body |
//! | `oversized:BYTES[:AFTER]` | stream: after AFTER content events, one more content event (`x` repeated) whose `data:` line is BYTES long |
//! | `role_only:N` | chat stream: first N chunks that carry only `delta: {"role": "assistant"}` (sent lazily) |
//! | `keepalive:N` | stream: first N `: keep-alive` comment lines (sent lazily) |
//! | `json_for_stream` | a stream request answered with the whole JSON body |
//! | `gzip` | the answer gzip-compressed (`content-encoding: gzip`), a stream flushed per event |
//! | `hold:MS` | 200 headers at once, MS of silence before the first body byte, then the answer |
//! | `first_token:MS` | stream: headers and lead events at once, MS of silence before the first content event; whole: as `hold` |
//! | `stall:MS` | stream: the first content event, then MS of silence, then the rest; whole: half, silence, half |
//! | `slow:MS` | MS before the headers, then `ok` |
//! | `hang` | never answer |
//! | `reset` | close the connection (RST) without any response |
//! | `video_failed` | video poll: `{"status":"failed"}` without an error |
//! | `task_not_exist[:N]` | video poll: the first N polls (default 1) answer 404 `task_not_exist` |
//!
//! Every wait and count has a bound ([`MAX_DELAY_MS`], [`MAX_CHUNKS`],
//! [`MAX_REPEAT`], [`MAX_OVERSIZED`]): beyond it a value is a typo.

use std::time::Duration;

pub use super::grammar::{parse_millis, parse_sequence, parse_step};
pub use super::names::{ErrorBodyFormat, ErrorFormat, NamedError, ReasoningField};

/// The longest delay a step or header may ask for (one day).
pub const MAX_DELAY_MS: u64 = 86_400_000;

/// The most stream content chunks a step or header may ask for (they are
/// built in memory).
pub const MAX_CHUNKS: usize = 100_000;

/// The most repeated frames `role_only` and `keepalive` may ask for (they
/// are sent lazily, never held in memory).
pub const MAX_REPEAT: usize = 100_000_000;

/// The longest `oversized` event, in bytes (64 MiB).
pub const MAX_OVERSIZED: usize = 64 << 20;

/// One scripted behaviour for one request (see the table above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// 200 success for the route (a stream when the body asks for one).
    Ok,
    /// `status:CODE[:FORMAT]`.
    Status { code: u16, format: ErrorFormat },
    /// `error:NAME`.
    Error(NamedError),
    /// `retry_after:SECS[:ms]`: 429 with `Retry-After` (or `retry-after-ms`).
    RetryAfter { value: String, ms: bool },
    /// `retry_after_5xx:SECS`: 503 with `Retry-After`.
    RetryAfter5xx(String),
    /// `ratelimit_reset:VALUE`: 429 with `x-ratelimit-reset-requests`.
    RatelimitReset(String),
    /// 301 to `https://example.invalid/...` with a small HTML body.
    Redirect,
    /// 200 `text/html` page.
    Html,
    /// `error_body[:FORMAT]`: a 200 whose body is an error object.
    ErrorBody(ErrorBodyFormat),
    /// `finish:REASON`: 200 with that `finish_reason`.
    Finish(String),
    /// stop, content null.
    Empty,
    /// stop, content `"   "`.
    Blank,
    /// content `{"answer": 42}`.
    Json,
    /// content `Sure! {"answer": 4`.
    BadJson,
    /// content `{"answer": "forty-two"}`.
    SchemaBad,
    /// finish `tool_calls` with arguments `{"city": `.
    BadArgs,
    /// `reasoning:N[:FIELD]`: N reasoning deltas before the content.
    Reasoning { n: usize, field: ReasoningField },
    /// images and embeddings: `data: []`.
    EmptyData,
    /// embeddings: one vector fewer than the inputs.
    ShortData,
    /// embeddings: every vector empty.
    EmptyVector,
    /// `failed:CODE`: a Responses API answer with `status: "failed"`.
    Failed(String),
    /// Responses API: `status: "in_progress"`.
    Pending,
    /// `cut:N`: N content chunks, then the connection is dropped.
    Cut(usize),
    /// Half the body under its full length, then the connection is dropped.
    CutBody,
    /// 200 headers, then the connection is dropped.
    DropAfterHeaders,
    /// A complete stream without its terminal event.
    NoDone,
    /// One `data: {not json` event among the content.
    Malformed,
    /// A 200 stream whose first event is an error, then the end.
    ErrorEvent,
    /// `error_after:N`: N content events, an in-band error, the end.
    ErrorAfter(usize),
    /// `garbage[:AFTER]`: AFTER content events, then bytes that are not SSE.
    Garbage(usize),
    /// `oversized:BYTES[:AFTER]`: one content event BYTES long after AFTER.
    Oversized { bytes: usize, after: usize },
    /// `role_only:N`: N chunks with only the role before the content.
    RoleOnly(usize),
    /// `keepalive:N`: N `: keep-alive` comments before the first event.
    Keepalive(usize),
    /// A stream request answered with the whole JSON body.
    JsonForStream,
    /// The answer gzip-compressed whatever the request accepts.
    Gzip,
    /// `hold:MS`: headers, MS of silence, then the body.
    Hold(Duration),
    /// `first_token:MS`: headers and lead events, MS of silence, the content.
    FirstToken(Duration),
    /// `stall:MS`: the first content chunk, then silence for MS.
    Stall(Duration),
    /// `slow:MS`: wait MS before the headers, then `ok`.
    Slow(Duration),
    /// Never answer.
    Hang,
    /// Close the connection without any response.
    Reset,
    /// Video poll: `{"status":"failed"}` without an error.
    VideoFailed,
    /// `task_not_exist:N`: the first N polls of a video answer 404 `task_not_exist`.
    TaskNotExist(u32),
}

/// The `ok` step, for callers that need a `&'static Step`.
pub static OK: Step = Step::Ok;

/// A step (or a header) that could not be parsed; it becomes a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad step '{step}': {reason}")]
pub struct StepError {
    /// The offending step text.
    pub step: String,
    /// Why it was refused.
    pub reason: String,
}

pub(crate) fn bad(step: &str, reason: impl Into<String>) -> StepError {
    StepError {
        step: step.to_owned(),
        reason: reason.into(),
    }
}

/// The step for a request: the k-th request (1-based) with the same key
/// gets step `min(k, len)`; without a key (`None`) the first one.
pub fn select(sequence: &[Step], nth: Option<u64>) -> Option<&Step> {
    let last = sequence.len().checked_sub(1)?;
    let index = match nth {
        None | Some(0) => 0,
        Some(k) => usize::try_from(k - 1).map_or(last, |i| i.min(last)),
    };
    sequence.get(index)
}

#[cfg(test)]
mod tests;
