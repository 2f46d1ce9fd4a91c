//! Reading an upstream error body of any shape into [`ErrorFields`]: the
//! OpenAI / Comet `{"error": {"message", "type", "param", "code"}}`, the
//! `{"code", "message", "data"}` of seeds/004, `{"error": "text"}`, Gemini's
//! `[{"error": {...}}]`, HTML pages, plain text and empty bodies. Shared by
//! `classify` (HTTP answers) and `classify_error_object` (in-band SSE
//! errors), so both read codes and messages the same way.

use std::time::Duration;

use http::{header, HeaderMap};
use serde_json::{Map, Value};

/// The most characters of an unstructured body kept as the message.
pub const MESSAGE_CAP_CHARS: usize = 512;

/// What an error body says, each field only when present and non-empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    /// The upstream's message verbatim, or the trimmed, capped text of a
    /// body that is not structured (an HTML page's `<title>`).
    pub message: Option<String>,
    /// `error.type` (e.g. `invalid_request_error`, `comet_api_error`).
    pub error_type: Option<String>,
    /// `error.code` or the top-level `code`, a number written as text.
    pub code: Option<String>,
    /// `error.param`.
    pub param: Option<String>,
    /// A numeric code that is an HTTP status (Gemini: `"code": 429`).
    pub status_code: Option<u16>,
    /// A wait stated in the body (seeds/004: `"data": {"retry_after": 60}`).
    pub retry_after: Option<Duration>,
}

impl ErrorFields {
    /// The code, lowercased, for comparisons.
    pub fn code_lower(&self) -> String {
        self.code.as_deref().unwrap_or("").to_ascii_lowercase()
    }

    /// The type, lowercased, for comparisons.
    pub fn type_lower(&self) -> String {
        self.error_type
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    /// The message, lowercased, for phrase matching.
    pub fn message_lower(&self) -> String {
        self.message.as_deref().unwrap_or("").to_lowercase()
    }
}

/// Reads any upstream body. Never fails: what is not structured becomes the
/// message; an empty body gives empty fields.
pub fn parse(headers: &HeaderMap, body: &[u8]) -> ErrorFields {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return ErrorFields::default();
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Some(fields) = from_json(&value) {
            return fields;
        }
    }
    let message = if is_html(headers, text) {
        html_text(text)
    } else {
        cap(text)
    };
    ErrorFields {
        message: non_empty(message),
        ..ErrorFields::default()
    }
}

/// The fields of an in-band error value (`data: {"error": <this>}`): an
/// object or a plain string. A whole `{"error": {...}}` is unwrapped too.
pub fn from_error_value(error: &Value) -> ErrorFields {
    match error {
        Value::Object(map) => match map.get("error") {
            Some(inner @ (Value::Object(_) | Value::String(_))) if map.len() == 1 => {
                from_error_value(inner)
            }
            _ => from_error_object(map),
        },
        Value::String(s) => ErrorFields {
            message: non_empty(s.clone()),
            ..ErrorFields::default()
        },
        Value::Null | Value::Bool(_) | Value::Number(_) | Value::Array(_) => ErrorFields {
            message: non_empty(cap(&error.to_string())),
            ..ErrorFields::default()
        },
    }
}

/// The fields of a parsed JSON body, `None` when it has no recognizable
/// error shape (its raw text is then the message).
fn from_json(value: &Value) -> Option<ErrorFields> {
    let fields = match value {
        Value::Object(map) => match map.get("error") {
            Some(Value::Object(error)) => {
                let mut fields = from_error_object(error);
                fields.retry_after = fields.retry_after.or_else(|| data_retry_after(map));
                fields
            }
            Some(Value::String(message)) if !message.trim().is_empty() => ErrorFields {
                message: Some(message.clone()),
                ..top_level(map)
            },
            _ => top_level(map),
        },
        Value::Array(items) => return items.first().and_then(from_json),
        Value::String(message) => ErrorFields {
            message: non_empty(message.clone()),
            ..ErrorFields::default()
        },
        Value::Null | Value::Bool(_) | Value::Number(_) => return None,
    };
    let recognized =
        fields.message.is_some() || fields.code.is_some() || fields.error_type.is_some();
    recognized.then_some(fields)
}

/// `{"message", "type", "param", "code"}` (the OpenAI error object).
fn from_error_object(error: &Map<String, Value>) -> ErrorFields {
    let message = match error.get("message") {
        Some(Value::String(s)) => non_empty(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => non_empty(cap(&other.to_string())),
    };
    ErrorFields {
        message,
        error_type: string_field(error, "type"),
        code: code_text(error.get("code")),
        param: string_field(error, "param"),
        status_code: status_code(error.get("code")),
        retry_after: None,
    }
}

/// `{"code", "message", "data"}` (seeds/004) and other flat shapes.
fn top_level(map: &Map<String, Value>) -> ErrorFields {
    let message = ["message", "msg", "detail", "error_description"]
        .into_iter()
        .find_map(|key| string_field(map, key));
    ErrorFields {
        message,
        error_type: string_field(map, "type"),
        code: code_text(map.get("code")),
        param: string_field(map, "param"),
        status_code: status_code(map.get("code")),
        retry_after: data_retry_after(map),
    }
}

/// `data.retry_after` in seconds, when a non-negative number.
fn data_retry_after(map: &Map<String, Value>) -> Option<Duration> {
    let secs = map.get("data")?.get("retry_after")?.as_f64()?;
    Duration::try_from_secs_f64(secs).ok()
}

/// A string field, `None` when absent, not a string or blank.
fn string_field(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key)
        .and_then(Value::as_str)
        .and_then(|s| non_empty(s.to_owned()))
}

/// A code as text: strings as they are (blank → `None`), numbers written out.
fn code_text(code: Option<&Value>) -> Option<String> {
    match code? {
        Value::String(s) => non_empty(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// A numeric code that looks like an HTTP error status.
fn status_code(code: Option<&Value>) -> Option<u16> {
    let n = code?.as_u64()?;
    u16::try_from(n).ok().filter(|n| (400..=599).contains(n))
}

fn non_empty(s: String) -> Option<String> {
    (!s.trim().is_empty()).then_some(s)
}

/// Whether a body is HTML: by its content type or its first character.
pub fn is_html(headers: &HeaderMap, text: &str) -> bool {
    let html_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .as_bytes()
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"text/html"))
        });
    html_type || text.trim_start().starts_with('<')
}

/// The `<title>` of an HTML page, else its text without tags; whitespace
/// collapsed, capped.
pub fn html_text(html: &str) -> String {
    if let Some(title) = html_title(html) {
        return cap(&collapse_whitespace(&title));
    }
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    cap(&collapse_whitespace(&text))
}

fn html_title(html: &str) -> Option<String> {
    // ASCII lowercasing keeps byte offsets, so they index `html` too.
    let lower = html.to_ascii_lowercase();
    let open = lower.find("<title")?;
    let start = open + lower[open..].find('>')? + 1;
    let end = start + lower[start..].find("</title")?;
    let title = html[start..end]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'");
    non_empty(title)
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The trimmed text, at most [`MESSAGE_CAP_CHARS`] characters.
pub fn cap(text: &str) -> String {
    text.trim().chars().take(MESSAGE_CAP_CHARS).collect()
}

/// The id in a `(request id: X)` or `request id: X` inside a message.
pub fn request_id_in(message: &str) -> Option<String> {
    const MARKER: &str = "request id:";
    let at = message.to_ascii_lowercase().find(MARKER)? + MARKER.len();
    let id: String = message[at..]
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, ')' | ']' | ',' | ';'))
        .collect();
    id.chars().any(char::is_alphanumeric).then_some(id)
}
