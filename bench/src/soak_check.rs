//! Whether one request of the soak's normal clients was answered, and if not
//! why it counts as lost. Pure: the client hands over what it got.
//!
//! Answered: any status whose body is the expected success (`choices` for a
//! chat completion, `data` for embeddings) or the gateway's JSON error
//! envelope (`{"error": {...}}`); for a stream answered 200, an SSE body
//! whose last event is `data: [DONE]` or an error event (`data:
//! {"error": {...}}`). Anything else is lost: no connection, no answer, a
//! broken body, the client's timeout, an empty or garbled body, a stream
//! that ends without its last event.

use serde_json::Value;

/// What a normal client asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /v1/chat/completions`, not streamed.
    Chat,
    /// The same, `"stream": true`.
    Stream,
    /// `POST /v1/embeddings`.
    Embeddings,
}

impl Kind {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Stream => "stream",
            Kind::Embeddings => "embeddings",
        }
    }
}

/// Why a request counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Lost {
    /// No connection could be opened (or reopened).
    Connect,
    /// The request went out but no response head came back.
    Send,
    /// The response body broke off (connection closed or reset).
    Body,
    /// No complete answer within the client's timeout.
    Timeout,
    /// A response with an empty body.
    Empty,
    /// A body that is neither the expected success nor the error envelope.
    Garbled,
    /// A stream answered 200 whose last event is neither `[DONE]` nor an error.
    Unterminated,
}

impl Lost {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Lost::Connect => "connect",
            Lost::Send => "no_response",
            Lost::Body => "body_broken",
            Lost::Timeout => "timeout",
            Lost::Empty => "empty_body",
            Lost::Garbled => "garbled_body",
            Lost::Unterminated => "stream_unterminated",
        }
    }
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The expected success.
    Success,
    /// The error envelope (or a stream ending with an error event).
    ErrorAnswer,
    /// Not answered.
    Lost(Lost),
}

/// `{"error": {...}}`.
fn is_envelope(v: &Value) -> bool {
    v.get("error").is_some_and(Value::is_object)
}

/// The verdict on a response of `status` with `body` to a request of `kind`.
pub fn classify(kind: Kind, status: u16, body: &[u8]) -> Verdict {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Verdict::Lost(Lost::Empty);
    }
    let json_like = body
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{');
    if kind == Kind::Stream && status == 200 && !json_like {
        return classify_stream(body);
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Verdict::Lost(Lost::Garbled);
    };
    if is_envelope(&v) {
        return Verdict::ErrorAnswer;
    }
    let want = match kind {
        Kind::Chat | Kind::Stream => "choices",
        Kind::Embeddings => "data",
    };
    if status == 200 && v.get(want).is_some_and(Value::is_array) {
        Verdict::Success
    } else {
        Verdict::Lost(Lost::Garbled)
    }
}

/// A stream's verdict from its last event.
fn classify_stream(body: &[u8]) -> Verdict {
    let Some(last) = last_event_data(body) else {
        return Verdict::Lost(Lost::Unterminated);
    };
    if last == "[DONE]" {
        return Verdict::Success;
    }
    match serde_json::from_str::<Value>(&last) {
        Ok(v) if is_envelope(&v) => Verdict::ErrorAnswer,
        _ => Verdict::Lost(Lost::Unterminated),
    }
}

/// The `data` of the last complete SSE event that has any (its `data:`
/// lines joined by `\n`); `None` when there is none, or when the body ends
/// in the middle of an event.
pub fn last_event_data(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body).replace("\r\n", "\n");
    let mut events: Vec<&str> = text.split("\n\n").collect();
    // What follows the last blank line is an unfinished event.
    let tail = events.pop().unwrap_or_default();
    if !tail.trim().is_empty() {
        return None;
    }
    events.iter().rev().find_map(|event| {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        (!data.is_empty()).then(|| data.join("\n"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENVELOPE: &str = r#"{"error":{"message":"upstream 503","type":"server_error","backstop":{"kind":"server_error"}}}"#;

    #[test]
    fn whole_answers() {
        let chat = br#"{"id":"chatcmpl-mock-1","choices":[{"message":{"content":"hi"}}]}"#;
        assert_eq!(classify(Kind::Chat, 200, chat), Verdict::Success);
        let emb = br#"{"object":"list","data":[{"embedding":[0.1]}]}"#;
        assert_eq!(classify(Kind::Embeddings, 200, emb), Verdict::Success);
        assert_eq!(
            classify(Kind::Chat, 503, ENVELOPE.as_bytes()),
            Verdict::ErrorAnswer
        );
        assert_eq!(
            classify(Kind::Embeddings, 429, ENVELOPE.as_bytes()),
            Verdict::ErrorAnswer
        );
        // A stream refused before its first byte answers with the envelope.
        assert_eq!(
            classify(Kind::Stream, 502, ENVELOPE.as_bytes()),
            Verdict::ErrorAnswer
        );
    }

    #[test]
    fn lost_answers() {
        assert_eq!(classify(Kind::Chat, 200, b""), Verdict::Lost(Lost::Empty));
        assert_eq!(
            classify(Kind::Chat, 502, b" \n"),
            Verdict::Lost(Lost::Empty)
        );
        assert_eq!(
            classify(Kind::Chat, 200, br#"{"id":"x","choi"#),
            Verdict::Lost(Lost::Garbled)
        );
        assert_eq!(
            classify(Kind::Chat, 503, b"<html>Service Unavailable</html>"),
            Verdict::Lost(Lost::Garbled)
        );
        // An error that is not the gateway's envelope.
        assert_eq!(
            classify(Kind::Chat, 503, br#"{"error":"busy"}"#),
            Verdict::Lost(Lost::Garbled)
        );
        // Success of the wrong shape.
        assert_eq!(
            classify(Kind::Embeddings, 200, br#"{"choices":[]}"#),
            Verdict::Lost(Lost::Garbled)
        );
    }

    #[test]
    fn streams() {
        let done = "data: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        assert_eq!(
            classify(Kind::Stream, 200, done.as_bytes()),
            Verdict::Success
        );
        let crlf = done.replace('\n', "\r\n");
        assert_eq!(
            classify(Kind::Stream, 200, crlf.as_bytes()),
            Verdict::Success
        );
        let error = format!("data: {{\"choices\":[]}}\n\ndata: {ENVELOPE}\n\n");
        assert_eq!(
            classify(Kind::Stream, 200, error.as_bytes()),
            Verdict::ErrorAnswer
        );
        let named = format!("data: {{\"choices\":[]}}\n\nevent: error\ndata: {ENVELOPE}\n\n");
        assert_eq!(
            classify(Kind::Stream, 200, named.as_bytes()),
            Verdict::ErrorAnswer
        );
        let cut = "data: {\"choices\":[]}\n\ndata: {\"choices\":[]}\n\n";
        assert_eq!(
            classify(Kind::Stream, 200, cut.as_bytes()),
            Verdict::Lost(Lost::Unterminated)
        );
        let mid_event = "data: {\"choices\":[]}\n\ndata: [DO";
        assert_eq!(
            classify(Kind::Stream, 200, mid_event.as_bytes()),
            Verdict::Lost(Lost::Unterminated)
        );
        // Comments and blank events after [DONE] do not hide it.
        let trailing = "data: [DONE]\n\n: bye\n\n";
        assert_eq!(
            classify(Kind::Stream, 200, trailing.as_bytes()),
            Verdict::Success
        );
        // A stream request answered with a whole JSON body.
        let whole = br#"{"choices":[{"message":{"content":"hi"}}]}"#;
        assert_eq!(classify(Kind::Stream, 200, whole), Verdict::Success);
    }

    #[test]
    fn event_data() {
        assert_eq!(
            last_event_data(b"data: a\ndata: b\n\n").as_deref(),
            Some("a\nb")
        );
        assert_eq!(last_event_data(b"data:x\n\n").as_deref(), Some("x"));
        assert_eq!(last_event_data(b": only a comment\n\n"), None);
        assert_eq!(last_event_data(b"data: a"), None);
    }
}
