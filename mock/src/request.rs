//! What the mock reads from one request: its [`Route`] (a pure function of
//! method and path), the few body [`Fields`] the answers depend on, and the
//! [`Ctx`] handed to the answer builders.

use std::time::Duration;

use http::Method;
use serde::Deserialize;

/// The model named in answers when the request names none.
pub const DEFAULT_MODEL: &str = "mock-model";

/// The most choices (`"n"`) an answer carries.
pub const MAX_CHOICES: u32 = 128;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// POST /v1/chat/completions
    Chat,
    /// POST /v1/completions
    Completions,
    /// POST /v1/embeddings
    Embeddings,
    /// GET /v1/models
    Models,
    /// GET /v1/models/{id}
    Model,
    /// POST /v1/responses
    Responses,
    /// GET /v1/responses/{id}
    ResponseGet,
    /// POST /v1/responses/{id}/cancel
    ResponseCancel,
    /// POST /v1/images/generations
    Images,
    /// POST /v1/audio/transcriptions
    Transcriptions,
    /// POST /v1/videos
    VideoCreate,
    /// GET /v1/videos/{id}
    VideoGet,
    /// Any other /v1 path or method.
    UnknownV1,
    /// GET /mock/stats
    Stats,
    /// POST /mock/reset
    Reset,
    /// GET /healthz
    Health,
    /// Anything else (not counted).
    Outside,
}

/// Routes a request.
pub fn route(method: &Method, path: &str) -> Route {
    let Some(rest) = path.strip_prefix("/v1/") else {
        return match (method, path) {
            (&Method::GET, "/mock/stats") => Route::Stats,
            (&Method::POST, "/mock/reset") => Route::Reset,
            (&Method::GET, "/healthz") => Route::Health,
            (_, "/v1") => Route::UnknownV1,
            _ => Route::Outside,
        };
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let post = method == Method::POST;
    let get = method == Method::GET;
    match rest {
        "chat/completions" if post => Route::Chat,
        "completions" if post => Route::Completions,
        "embeddings" if post => Route::Embeddings,
        "models" if get => Route::Models,
        "responses" if post => Route::Responses,
        "images/generations" if post => Route::Images,
        "audio/transcriptions" if post => Route::Transcriptions,
        "videos" if post => Route::VideoCreate,
        _ if get && single_segment(rest, "models/") => Route::Model,
        _ if get && single_segment(rest, "videos/") => Route::VideoGet,
        _ if get && single_segment(rest, "responses/") => Route::ResponseGet,
        _ if post
            && rest
                .strip_suffix("/cancel")
                .is_some_and(|r| single_segment(r, "responses/")) =>
        {
            Route::ResponseCancel
        }
        _ => Route::UnknownV1,
    }
}

fn single_segment(rest: &str, prefix: &str) -> bool {
    rest.strip_prefix(prefix)
        .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// The last path segment (the id of `/v1/videos/{id}`, `/v1/models/{id}`).
pub fn last_segment(path: &str) -> &str {
    let path = path.strip_suffix('/').unwrap_or(path);
    path.rsplit('/').next().unwrap_or(path)
}

/// The id in `/v1/responses/{id}` or `/v1/responses/{id}/cancel`.
pub fn response_id_in(path: &str) -> &str {
    let path = path.strip_suffix('/').unwrap_or(path);
    last_segment(path.strip_suffix("/cancel").unwrap_or(path))
}

/// The last message of a chat request, as far as a prefill needs it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct LastMessage {
    /// `role`.
    pub role: Option<String>,
    /// `content` (a string, or parts).
    pub content: Option<serde_json::Value>,
}

/// Keeps only the last element of `messages` (or none for `null`).
fn last_message<'de, D>(d: D) -> Result<Option<LastMessage>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Last;
    impl<'de> serde::de::Visitor<'de> for Last {
        type Value = Option<LastMessage>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of messages")
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut last = None;
            while let Some(message) = seq.next_element::<serde_json::Value>()? {
                last = Some(message);
            }
            Ok(last.and_then(|m| serde_json::from_value(m).ok()))
        }
    }
    d.deserialize_any(Last)
}

/// `stream_options` of a request.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct StreamOptions {
    /// Ask for a final usage chunk.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// The body fields the answers depend on; anything else is ignored, and a
/// body that is not a JSON object reads as all defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct Fields {
    /// `model` (echoed in answers).
    pub model: Option<String>,
    /// `stream`.
    pub stream: Option<bool>,
    /// `n`: choices (chat, completions) or images.
    pub n: Option<u32>,
    /// `stream_options`.
    pub stream_options: Option<StreamOptions>,
    /// `prompt` (images: the `revised_prompt`).
    pub prompt: Option<serde_json::Value>,
    /// `input` (embeddings: one vector per input).
    pub input: Option<serde_json::Value>,
    /// `encoding_format` (embeddings: `float` or `base64`).
    pub encoding_format: Option<String>,
    /// `background` (Responses API).
    pub background: Option<bool>,
    /// The last of `messages` (chat: a prefill when it is the assistant's).
    #[serde(rename = "messages", deserialize_with = "last_message")]
    pub last_message: Option<LastMessage>,
}

impl Fields {
    /// The prefill: the text of the last message when it is the assistant's.
    pub fn prefill(&self) -> Option<String> {
        let last = self.last_message.as_ref()?;
        if last.role.as_deref() != Some("assistant") {
            return None;
        }
        last.content.as_ref().and_then(super::prefill::content_text)
    }
}

impl Fields {
    /// Reads a request body.
    pub fn parse(body: &[u8]) -> Fields {
        if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            serde_json::from_slice(body).unwrap_or_default()
        } else {
            Fields::default()
        }
    }
}

/// The value of a plain multipart form field (`name="model"`), if present.
pub fn multipart_field<'b>(body: &'b [u8], name: &str) -> Option<&'b str> {
    let needle = format!("name=\"{name}\"");
    let start = find(body, needle.as_bytes())? + needle.len();
    let value_start = start + find(body.get(start..)?, b"\r\n\r\n")? + 4;
    let rest = body.get(value_start..)?;
    let value = rest.get(..find(rest, b"\r\n")?)?;
    std::str::from_utf8(value).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Everything an answer builder needs to know about the request.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    /// The request's sequence number (`x-request-id: mock-<n>`).
    pub n: u64,
    /// Unix seconds for `created` fields.
    pub created: u64,
    /// The request's model, or [`DEFAULT_MODEL`].
    pub model: &'a str,
    /// The request method.
    pub method: &'a str,
    /// `"stream": true`.
    pub stream: bool,
    /// `"n"`, from 1 to [`MAX_CHOICES`].
    pub choices: u32,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// Stream content chunks.
    pub chunks: usize,
    /// Whether `chunks` came from `x-mock-chunks`.
    pub chunks_from_header: bool,
    /// Pause between stream events.
    pub chunk_delay: Duration,
    /// The request path.
    pub path: &'a str,
    /// The request path and query.
    pub path_and_query: &'a str,
    /// The parsed body fields.
    pub fields: &'a Fields,
    /// The raw body.
    pub body: &'a [u8],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let cases = [
            ("POST", "/v1/chat/completions", Route::Chat),
            ("POST", "/v1/chat/completions/", Route::Chat),
            ("GET", "/v1/chat/completions", Route::UnknownV1),
            ("POST", "/v1/completions", Route::Completions),
            ("POST", "/v1/embeddings", Route::Embeddings),
            ("GET", "/v1/models", Route::Models),
            ("GET", "/v1/models/gpt-4o", Route::Model),
            ("POST", "/v1/responses", Route::Responses),
            ("POST", "/v1/images/generations", Route::Images),
            ("POST", "/v1/audio/transcriptions", Route::Transcriptions),
            ("POST", "/v1/videos", Route::VideoCreate),
            ("GET", "/v1/videos/video-3", Route::VideoGet),
            ("GET", "/v1/videos/video-3/content", Route::UnknownV1),
            ("GET", "/v1/responses/resp_mock_3", Route::ResponseGet),
            (
                "POST",
                "/v1/responses/resp_mock_3/cancel",
                Route::ResponseCancel,
            ),
            (
                "POST",
                "/v1/responses/resp_mock_3/cancel/",
                Route::ResponseCancel,
            ),
            ("GET", "/v1/responses/resp_mock_3/cancel", Route::UnknownV1),
            ("POST", "/v1/responses//cancel", Route::UnknownV1),
            ("POST", "/v1/responses/resp_mock_3", Route::UnknownV1),
            ("POST", "/v1/nope", Route::UnknownV1),
            ("GET", "/v1", Route::UnknownV1),
            ("GET", "/mock/stats", Route::Stats),
            ("POST", "/mock/reset", Route::Reset),
            ("GET", "/healthz", Route::Health),
            ("GET", "/", Route::Outside),
            ("POST", "/chat/completions", Route::Outside),
        ];
        for (method, path, want) in cases {
            let method = Method::from_bytes(method.as_bytes()).unwrap_or_default();
            assert_eq!(route(&method, path), want, "{method} {path}");
        }
    }

    #[test]
    fn last_segments() {
        assert_eq!(last_segment("/v1/videos/video-3"), "video-3");
        assert_eq!(last_segment("/v1/videos/video-3/"), "video-3");
        assert_eq!(response_id_in("/v1/responses/resp_mock_3"), "resp_mock_3");
        assert_eq!(
            response_id_in("/v1/responses/resp_mock_3/cancel/"),
            "resp_mock_3"
        );
    }

    #[test]
    fn reads_fields() {
        let f = Fields::parse(
            br#" {"model":"gpt-x","stream":true,"n":2,"stream_options":{"include_usage":true},"messages":[]}"#,
        );
        assert_eq!(f.model.as_deref(), Some("gpt-x"));
        assert_eq!((f.stream, f.n), (Some(true), Some(2)));
        assert_eq!(
            f.stream_options,
            Some(StreamOptions {
                include_usage: Some(true)
            })
        );
        assert_eq!(Fields::parse(b"--boundary\r\n"), Fields::default());
        assert_eq!(Fields::parse(br#"{"stream":"yes"}"#), Fields::default());
        assert_eq!(Fields::parse(br#"{"stream":null}"#), Fields::default());
        assert_eq!(Fields::parse(br#"{"messages":null}"#), Fields::default());
    }

    #[test]
    fn reads_the_prefill() {
        let cases = [
            (
                r#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"Hello from"}]}"#,
                Some("Hello from"),
            ),
            (
                r#"{"messages":[{"role":"assistant","content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}]}]}"#,
                Some("Hello"),
            ),
            (
                r#"{"messages":[{"role":"assistant","content":"x"},{"role":"user","content":"hi"}]}"#,
                None,
            ),
            (r#"{"messages":[]}"#, None),
            (r#"{"messages":["odd", 3]}"#, None),
            (r#"{"model":"m"}"#, None),
        ];
        for (body, want) in cases {
            let f = Fields::parse(body.as_bytes());
            assert_eq!(f.prefill().as_deref(), want, "{body}");
        }
        let f = Fields::parse(br#"{"model":"m","messages":["odd"],"background":true}"#);
        assert_eq!((f.model.as_deref(), f.background), (Some("m"), Some(true)));
    }

    #[test]
    fn reads_multipart_fields() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\na cat\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nkling-v1\r\n--b--\r\n";
        assert_eq!(multipart_field(body, "model"), Some("kling-v1"));
        assert_eq!(multipart_field(body, "prompt"), Some("a cat"));
        assert_eq!(multipart_field(body, "size"), None);
    }
}
