//! [`EventInspector`]: what the stream watcher asks of an inspector, so one
//! watcher serves every streamed API — chat completions and completions
//! ([`StreamInspector`], `data:` chunks ending with `[DONE]`) and the
//! Responses API ([`ResponsesInspector`], named events ending with a
//! terminal event and no `[DONE]`).

use super::expect::{Endpoint, Expectation};
use super::findings::Findings;
use super::responses::ResponsesInspector;
use super::stream::{EventVerdict, StreamEnd, StreamInspector};

/// The closing error event of a stream, as its API's clients parse it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// Chat: `data: {"error": {...}}`.
    Data,
    /// The Responses API: `event: error` whose data is an error event of
    /// that API (`type`, `sequence_number`, `code`, `message`, `param`)
    /// carrying the envelope's `error` too.
    Named { sequence_number: u64 },
}

/// `data: [DONE]`, the end of a chat stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// One streamed answer's inspector, whatever its API.
pub trait EventInspector: Send {
    /// Reads one event (its `event:` name, when it has one, and its data).
    fn observe(&mut self, event: Option<&str>, data: &[u8]) -> EventVerdict;
    /// Whether the output started (content, a tool call, reasoning).
    fn output_started(&self) -> bool;
    /// Whether the answer is complete (every choice finished; the terminal
    /// event came).
    fn all_finished(&self) -> bool;
    /// The findings, given how the stream ended.
    fn finish(&self, end: StreamEnd) -> Findings;
    /// The answer's text so far when it is one plain-text choice (what a
    /// stream repair continues from).
    fn repairable_text(&self) -> Option<&str>;
    /// What a complete stream ends with when the upstream forgot it.
    fn done_event(&self) -> Option<&'static [u8]>;
    /// How the stream's closing error event is shaped.
    fn error_style(&self) -> ErrorStyle;
}

/// The inspector for a streamed answer to `expect`; `capture` keeps the
/// text a stream repair needs.
pub fn stream_inspector(expect: &Expectation, capture: bool) -> Box<dyn EventInspector> {
    match expect.endpoint {
        Endpoint::Responses => Box::new(ResponsesInspector::new(expect)),
        Endpoint::ChatCompletions
        | Endpoint::Completions
        | Endpoint::ImagesGenerations
        | Endpoint::Videos
        | Endpoint::Embeddings
        | Endpoint::Transcriptions
        | Endpoint::Other => {
            let inspector = StreamInspector::new(expect);
            Box::new(if capture {
                inspector.capturing_content()
            } else {
                inspector
            })
        }
    }
}

impl EventInspector for StreamInspector {
    fn observe(&mut self, _event: Option<&str>, data: &[u8]) -> EventVerdict {
        StreamInspector::observe(self, data)
    }

    fn output_started(&self) -> bool {
        StreamInspector::output_started(self)
    }

    fn all_finished(&self) -> bool {
        StreamInspector::all_finished(self)
    }

    fn finish(&self, end: StreamEnd) -> Findings {
        StreamInspector::finish(self, end)
    }

    fn repairable_text(&self) -> Option<&str> {
        match self.shape() {
            (1, false) => self.content_of(0).filter(|t| !t.is_empty()),
            _ => None,
        }
    }

    fn done_event(&self) -> Option<&'static [u8]> {
        Some(DONE)
    }

    fn error_style(&self) -> ErrorStyle {
        ErrorStyle::Data
    }
}

impl EventInspector for ResponsesInspector {
    fn observe(&mut self, event: Option<&str>, data: &[u8]) -> EventVerdict {
        ResponsesInspector::observe(self, event, data)
    }

    fn output_started(&self) -> bool {
        ResponsesInspector::output_started(self)
    }

    fn all_finished(&self) -> bool {
        self.finished()
    }

    fn finish(&self, end: StreamEnd) -> Findings {
        ResponsesInspector::finish(self, end)
    }

    fn repairable_text(&self) -> Option<&str> {
        None
    }

    fn done_event(&self) -> Option<&'static [u8]> {
        None
    }

    fn error_style(&self) -> ErrorStyle {
        ErrorStyle::Named {
            sequence_number: self.next_sequence_number(),
        }
    }
}
