//! Soft and silent failure inspection: pure functions that read a 200
//! answer (a whole body, or a stream event by event) and say which
//! [`Kind`] it is, given what the request asked for ([`Expectation`]).
//!
//! Sits after the hard-failure classifier: the proxy calls these only on a
//! success status, then applies the `[inspect]` policy (pass / retry / fail)
//! to the kind found. No I/O, no logging, no metrics here.
//!
//! | where | rule | kind |
//! | --- | --- | --- |
//! | chat / completions body | not JSON (or not an object) | `bad_upstream_response` |
//! | | no `choices` | `ok`, no finish reasons (not ours to judge) |
//! | per choice | `finish_reason: content_filter`, or a non-blank `refusal` | `content_filter` |
//! | | `finish_reason: length` | `length` (content not checked further) |
//! | | tool-call / `function_call` arguments not JSON (blank arguments count as none) | `invalid_json` |
//! | | tool calls present and well formed (content may be null) | `ok` |
//! | | no tool calls and content null / blank, whatever the finish_reason | `empty_content` |
//! | | JSON mode, content does not parse (whitespace around it is fine, a Markdown ```` ``` ```` fence is not: the client's parser would choke on it) | `invalid_json` |
//! | | `json_schema`, content parses but fails the schema | `schema_mismatch` |
//! | | any other finish_reason (`stop`, `tool_calls`, unknown, null) | `ok`, counted as sent |
//! | several choices | the most severe: `content_filter` > `invalid_json` = `schema_mismatch` > `empty_content` > `length` > `ok`; ties go to the lowest index | |
//! | stream | any end before every choice seen has a finish_reason | `stream_truncated` |
//! | | otherwise the per-choice rules above | |
//! | | an event whose data is not JSON: dropped and counted apart ([`StreamInspector::malformed_events`]); it does not change the kind | |
//! | images | 200 with `data` missing, null or empty (and no `error`) | `empty_data`, detail = `revised_prompt` if any |
//! | videos | `status` (or `data.status` / `data.task_status`) `succeed` | rewritten to `succeeded` ([`normalize_video`]) |

mod chat;
mod choice;
mod embeddings;
mod events;
mod expect;
mod findings;
mod media;
mod responses;
mod stream;
mod whole;

pub use chat::inspect_body;
pub use embeddings::{inspect_embeddings, inspect_transcription};
pub use events::{stream_inspector, ErrorStyle, EventInspector, DONE};
pub use expect::{Endpoint, Expectation, JsonMode};
pub use findings::{Findings, Usage};
pub use media::{inspect_images, is_task_not_ready, normalize_video, VideoBody, VideoVerdict};
pub use responses::{inspect_response, judge_response, ResponsesInspector};
pub use stream::{EventVerdict, StreamEnd, StreamInspector};
pub use whole::inspect_whole;
