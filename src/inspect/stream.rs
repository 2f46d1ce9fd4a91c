//! [`StreamInspector`]: the per-choice rules of [`super`] watched over a
//! streamed chat completion (or completion), one SSE event's `data` at a
//! time, without holding the stream. The streaming body wrapper feeds it each
//! event as it passes, drops what it says to drop, and asks for the
//! [`Findings`] when the stream ends.
//!
//! Kept per choice: the finish_reason, whether non-blank content came, the
//! refusal (first characters only), the content itself only when JSON mode
//! is on, and each tool call's arguments (to check they parse). Buffers are
//! capped at [`MAX_BUFFER_BYTES`]; content past the cap is not checked as
//! JSON (documented blind spot rather than unbounded memory).
//!
//! A malformed event (data that is not JSON) is dropped and counted in
//! [`StreamInspector::malformed_events`]; the stream's kind is still decided
//! by its other findings, so the caller reports the malformed count apart
//! (e.g. as its own metric / log field) and a stream that was otherwise fine
//! is `ok`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;

use crate::json_field::Json;

use super::chat::{content_text, tool_label};
use super::choice::{judge_all, ChoiceView, ToolCallView};
use super::expect::{Expectation, JsonMode};
use super::findings::{Findings, Usage};
use crate::outcome::Subject;
use crate::taxonomy::Kind;

/// Cap on each buffered text (JSON-mode content, one tool call's
/// arguments): 8 MiB.
pub const MAX_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Cap on the refusal text kept for the detail.
const REFUSAL_KEEP_BYTES: usize = 512;

/// Key of a legacy `function_call` among a choice's tool calls.
const FUNCTION_CALL: u64 = u64::MAX;

/// What to do with one event.
#[derive(Debug, Clone, PartialEq)]
pub enum EventVerdict {
    /// Pass it on unchanged.
    Forward,
    /// Its data is not valid JSON (`malformed_event`): leave it out of the
    /// stream so the client's parser does not choke; it has been counted.
    Drop,
    /// An in-band `{"error": ...}` event: the error object, for the caller
    /// to classify and end the stream with the envelope.
    Error(Value),
    /// `data: [DONE]`.
    Done,
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `[DONE]` was seen.
    Done,
    /// The upstream closed cleanly without `[DONE]`.
    Eof,
    /// The upstream connection failed or was reset.
    Cut,
    /// No event came within the idle timeout.
    Idle,
}

impl StreamEnd {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            StreamEnd::Done => "sent [DONE]",
            StreamEnd::Eof => "closed",
            StreamEnd::Cut => "was cut",
            StreamEnd::Idle => "went idle",
        }
    }
}

/// A text built from deltas, up to a cap.
#[derive(Debug, Default)]
struct Capped {
    text: String,
    overflow: bool,
}

impl Capped {
    fn push(&mut self, piece: &str, cap: usize) {
        if self.overflow {
            return;
        }
        if self.text.len() + piece.len() > cap {
            self.overflow = true;
            self.text = String::new();
            return;
        }
        self.text.push_str(piece);
    }

    /// The whole text, or `None` when it outgrew the cap.
    fn get(&self) -> Option<&str> {
        (!self.overflow).then_some(self.text.as_str())
    }
}

#[derive(Debug, Default)]
struct ToolState {
    name: Option<String>,
    arguments: Capped,
    /// Arguments came as a JSON object instead of text: nothing to check.
    structured: bool,
}

#[derive(Debug, Default)]
struct ChoiceState {
    finish_reason: Option<String>,
    has_text: bool,
    content: Capped,
    refusal: String,
    tools: BTreeMap<u64, ToolState>,
}

/// Watches one streamed answer; see the module doc.
#[derive(Debug)]
pub struct StreamInspector {
    json: JsonMode,
    choices: BTreeMap<u64, ChoiceState>,
    model: Option<String>,
    usage: Option<Usage>,
    malformed: u32,
    content_seen: bool,
    /// Reasoning deltas (`reasoning_content`, `reasoning`) went by.
    reasoning_seen: bool,
    /// Keep every choice's text (for stream repair), not only in JSON mode.
    capture: bool,
}

impl StreamInspector {
    /// Also keeps each choice's text (capped like JSON-mode content), so a
    /// cut stream can be continued from it.
    pub fn capturing_content(mut self) -> Self {
        self.capture = true;
        self
    }

    /// The text of a choice so far, when captured and within the cap.
    pub fn content_of(&self, index: u64) -> Option<&str> {
        self.choices.get(&index).and_then(|c| c.content.get())
    }

    /// How many choices appeared, and whether any carried tool calls.
    pub fn shape(&self) -> (usize, bool) {
        let tools = self.choices.values().any(|c| !c.tools.is_empty());
        (self.choices.len(), tools)
    }

    /// A fresh inspector for one attempt's stream.
    pub fn new(expect: &Expectation) -> Self {
        StreamInspector {
            json: expect.json.clone(),
            choices: BTreeMap::new(),
            model: None,
            usage: None,
            malformed: 0,
            content_seen: false,
            reasoning_seen: false,
            capture: false,
        }
    }

    /// Reads one event's `data` and says what to do with the event.
    pub fn observe(&mut self, data: &[u8]) -> EventVerdict {
        if data.trim_ascii() == b"[DONE]" {
            return EventVerdict::Done;
        }
        // Read in place: no tree per event.
        let Ok(chunk) = Json::parse(data) else {
            self.malformed = self.malformed.saturating_add(1);
            return EventVerdict::Drop;
        };
        if !chunk.is_object() {
            return EventVerdict::Forward; // valid JSON, not a chunk: not ours to judge
        }
        let [error, model, usage, choices] = chunk.fields(["error", "model", "usage", "choices"]);
        if let Some(error) = error.filter(|e| !e.is_null()) {
            return EventVerdict::Error(error.to_value());
        }
        if self.model.is_none() {
            self.model = model
                .and_then(Json::as_str)
                .filter(|m| !m.is_empty())
                .map(Cow::into_owned);
        }
        if let Some(usage) = usage.and_then(Usage::from_view) {
            self.usage = Some(usage);
        }
        for (pos, choice) in choices.into_iter().flat_map(Json::items).enumerate() {
            self.observe_choice(pos as u64, choice);
        }
        EventVerdict::Forward
    }

    fn observe_choice(&mut self, pos: u64, choice: Json<'_>) {
        let [index, delta, text, finish_reason] =
            choice.fields(["index", "delta", "text", "finish_reason"]);
        let index = index.and_then(Json::as_u64).unwrap_or(pos);
        let json_on = !matches!(self.json, JsonMode::None) || self.capture;
        let state = self.choices.entry(index).or_default();
        let [content, reasoning_content, reasoning, refusal, tool_calls, function_call] =
            match delta {
                Some(d) => d.fields([
                    "content",
                    "reasoning_content",
                    "reasoning",
                    "refusal",
                    "tool_calls",
                    "function_call",
                ]),
                None => [None; 6],
            };
        let text = match delta {
            Some(_) => content.and_then(content_text),
            None => text.and_then(Json::as_str),
        };
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            self.content_seen = true;
            state.has_text |= !text.trim().is_empty();
            if json_on {
                state.content.push(&text, MAX_BUFFER_BYTES);
            }
        }
        let reasoning = [reasoning_content, reasoning]
            .into_iter()
            .filter_map(|r| r.and_then(Json::as_str))
            .any(|r| !r.is_empty());
        self.reasoning_seen |= reasoning;
        if let Some(refusal) = refusal.and_then(Json::as_str) {
            self.content_seen |= !refusal.is_empty();
            if state.refusal.len() < REFUSAL_KEEP_BYTES {
                state.refusal.push_str(&refusal);
            }
        }
        for (pos, call) in tool_calls.into_iter().flat_map(Json::items).enumerate() {
            let [key, function] = call.fields(["index", "function"]);
            let key = key.and_then(Json::as_u64).unwrap_or(pos as u64);
            self.content_seen = true;
            observe_function(state.tools.entry(key).or_default(), function);
        }
        if let Some(call) = function_call.filter(|c| c.is_object()) {
            self.content_seen = true;
            observe_function(state.tools.entry(FUNCTION_CALL).or_default(), Some(call));
        }
        // Some providers send "" instead of null on chunks that do not finish.
        if let Some(reason) = finish_reason
            .and_then(Json::as_str)
            .filter(|r| !r.is_empty())
        {
            state.finish_reason = Some(reason.into_owned());
        }
    }

    /// Whether any content, refusal or tool-call delta went by.
    pub fn content_seen(&self) -> bool {
        self.content_seen
    }

    /// Whether the answer's output started: content, a refusal, a tool call
    /// or a reasoning delta (a reasoning model thinks before it answers;
    /// its thoughts are output the client waits for).
    pub fn output_started(&self) -> bool {
        self.content_seen || self.reasoning_seen
    }

    /// At least one choice was seen and every choice seen has finished.
    pub fn all_finished(&self) -> bool {
        !self.choices.is_empty() && self.choices.values().all(|c| c.finish_reason.is_some())
    }

    /// Events dropped because their data was not JSON.
    pub fn malformed_events(&self) -> u32 {
        self.malformed
    }

    /// The findings for the stream, given how it ended: `stream_truncated`
    /// if it ended (however) before every choice finished, else the
    /// per-choice rules.
    pub fn finish(&self, end: StreamEnd) -> Findings {
        let finish_reasons = self
            .choices
            .values()
            .map(|c| c.finish_reason.clone().unwrap_or_default())
            .collect();
        let (kind, subject, detail) = if self.all_finished() {
            judge_all(
                &self.json,
                self.choices.iter().map(|(index, c)| self.view(*index, c)),
            )
        } else {
            let detail = match self.choices.iter().find(|(_, c)| c.finish_reason.is_none()) {
                Some((index, _)) => format!(
                    "the stream {} before choice {index} had a finish_reason",
                    end.describe()
                ),
                None => format!("the stream {} before any choice", end.describe()),
            };
            (Kind::StreamTruncated, Subject::Content, Some(detail))
        };
        Findings {
            kind,
            finish_reasons,
            model: self.model.clone(),
            usage: self.usage,
            detail,
            subject,
            error: None,
        }
    }

    fn view<'a>(&self, index: u64, c: &'a ChoiceState) -> ChoiceView<'a> {
        let tool_calls = c
            .tools
            .iter()
            .map(|(key, tool)| ToolCallView {
                label: match *key {
                    FUNCTION_CALL => "function_call".to_string(),
                    pos => tool_label(pos, tool.name.as_deref()),
                },
                arguments: if tool.structured {
                    None
                } else {
                    tool.arguments.get().map(Into::into)
                },
            })
            .collect();
        ChoiceView {
            index,
            finish_reason: Cow::Borrowed(c.finish_reason.as_deref().unwrap_or_default()),
            has_text: c.has_text,
            json_text: match self.json {
                JsonMode::None => None,
                JsonMode::Object | JsonMode::Schema(_) => c.content.get().map(Into::into),
            },
            refusal: (!c.refusal.is_empty()).then(|| c.refusal.as_str().into()),
            tool_calls,
        }
    }
}

/// Accumulates one tool call's (or `function_call`'s) name and arguments.
fn observe_function(tool: &mut ToolState, function: Option<Json<'_>>) {
    let Some(function) = function.filter(|f| f.is_object()) else {
        return;
    };
    let [name, arguments] = function.fields(["name", "arguments"]);
    if let Some(name) = name.and_then(Json::as_str).filter(|n| !n.is_empty()) {
        tool.name.get_or_insert_with(|| name.into_owned());
    }
    match arguments {
        Some(a) if a.text().starts_with('"') => {
            if let Some(piece) = a.as_str() {
                tool.arguments.push(&piece, MAX_BUFFER_BYTES);
            }
        }
        Some(a) if a.text().starts_with(['{', '[']) => tool.structured = true,
        Some(_) | None => {}
    }
}

#[cfg(test)]
mod tests;
