//! [`Expectation`]: what the client's request asked for (endpoint, stream,
//! JSON mode or schema, usage in the stream, model), read once from the
//! parsed request body before the first attempt, and handed to the body and
//! stream inspectors of every attempt.

use std::sync::Arc;

use serde_json::Value;

/// The API a request is for, as far as inspection cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Endpoint {
    ChatCompletions,
    Completions,
    /// `images/generations`, and `images/edits` / `images/variations`,
    /// which answer with the same `data` array.
    ImagesGenerations,
    /// Video tasks: `videos` and everything under it (`/v1/videos/{id}`,
    /// Kling's `/kling/v1/videos/text2video/{id}`), and `video/...`.
    Videos,
    /// The Responses API: a create (`responses`) or a poll
    /// (`responses/{id}`).
    Responses,
    Embeddings,
    /// `audio/transcriptions` and `audio/translations`.
    Transcriptions,
    #[default]
    Other,
}

impl Endpoint {
    /// Recognizes a request path (query string ignored). The part after the
    /// last `v1` segment decides; a path without `v1` is read whole.
    pub fn from_path(path: &str) -> Endpoint {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest = match segments.iter().rposition(|s| *s == "v1") {
            Some(v1) => &segments[v1 + 1..],
            None => &segments[..],
        };
        match rest {
            ["chat", "completions"] => Endpoint::ChatCompletions,
            ["completions"] => Endpoint::Completions,
            ["images", "generations" | "edits" | "variations"] => Endpoint::ImagesGenerations,
            ["videos" | "video", ..] => Endpoint::Videos,
            ["responses"] | ["responses", _] => Endpoint::Responses,
            ["embeddings"] => Endpoint::Embeddings,
            ["audio", "transcriptions" | "translations"] => Endpoint::Transcriptions,
            _ => Endpoint::Other,
        }
    }
}

/// Whether the request asked for JSON output, and against which schema.
#[derive(Debug, Clone, Default)]
pub enum JsonMode {
    #[default]
    None,
    /// `response_format: {"type": "json_object"}`, or a `json_schema` whose
    /// schema is missing or does not compile (the output must still parse).
    Object,
    /// `response_format: {"type": "json_schema", "json_schema": {"schema": ..}}`,
    /// compiled once. Validated whether or not `strict` was set: the client
    /// asked for that shape either way.
    Schema(Arc<jsonschema::Validator>),
}

/// What one request asked for.
#[derive(Debug, Clone, Default)]
pub struct Expectation {
    pub endpoint: Endpoint,
    /// `"stream": true`.
    pub stream: bool,
    /// JSON mode, only for chat completions and completions (the images
    /// API's `response_format` is a string and means something else).
    pub json: JsonMode,
    /// `"stream_options": {"include_usage": true}`.
    pub include_usage: bool,
    /// The `model` the client asked for.
    pub model: Option<String>,
    /// Embeddings: how many inputs were sent (a string is one).
    pub inputs: Option<usize>,
}

impl Expectation {
    /// Reads the expectation from the request path and its parsed JSON body
    /// (any value: a non-object body just expects nothing in particular).
    pub fn from_request(path: &str, body: &Value) -> Expectation {
        Expectation::checking(path, body, true)
    }

    /// [`Expectation::from_request`], compiling a requested JSON schema
    /// only when `schema` is true — its action is not `pass`: compiling
    /// costs more than proxying a request, for a check nobody acts on. The
    /// output is still checked for being JSON.
    pub fn checking(path: &str, body: &Value, schema: bool) -> Expectation {
        let endpoint = Endpoint::from_path(path);
        let json_mode = |format| json_mode(format, schema);
        let json = match endpoint {
            Endpoint::ChatCompletions | Endpoint::Completions => {
                json_mode(body.get("response_format"))
            }
            // The Responses API says it as `text.format`, with the schema
            // inline (`{"type": "json_schema", "name": …, "schema": …}`).
            Endpoint::Responses => json_mode(
                body.get("text")
                    .and_then(|t| t.get("format"))
                    .map(responses_format)
                    .as_ref(),
            ),
            Endpoint::ImagesGenerations
            | Endpoint::Videos
            | Endpoint::Embeddings
            | Endpoint::Transcriptions
            | Endpoint::Other => JsonMode::None,
        };
        let inputs = match (endpoint, body.get("input")) {
            (Endpoint::Embeddings, Some(Value::String(_))) => Some(1),
            (Endpoint::Embeddings, Some(Value::Array(items))) => {
                // A list of numbers is one tokenized input.
                match items.first() {
                    Some(Value::Number(_)) => Some(1),
                    _ => Some(items.len()),
                }
            }
            _ => None,
        };
        let include_usage = body
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Expectation {
            endpoint,
            stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
            json,
            include_usage,
            model: body.get("model").and_then(Value::as_str).map(str::to_owned),
            inputs,
        }
    }
}

/// A Responses `text.format` in the chat's `response_format` shape (the
/// schema nested under `json_schema`), so one reader serves both.
fn responses_format(format: &Value) -> Value {
    match format.get("schema") {
        Some(schema) => serde_json::json!({
            "type": format.get("type").cloned().unwrap_or(Value::Null),
            "json_schema": {"schema": schema},
        }),
        None => format.clone(),
    }
}

fn json_mode(response_format: Option<&Value>, compile: bool) -> JsonMode {
    let Some(format) = response_format else {
        return JsonMode::None;
    };
    match format.get("type").and_then(Value::as_str) {
        Some("json_object") => JsonMode::Object,
        Some("json_schema") if !compile => JsonMode::Object,
        Some("json_schema") => {
            let schema = format.get("json_schema").and_then(|s| s.get("schema"));
            match schema.map(jsonschema::validator_for) {
                Some(Ok(validator)) => JsonMode::Schema(Arc::new(validator)),
                Some(Err(_)) | None => JsonMode::Object,
            }
        }
        _ => JsonMode::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_from_paths() {
        let rows = [
            ("/v1/chat/completions", Endpoint::ChatCompletions),
            ("/v1/chat/completions/", Endpoint::ChatCompletions),
            (
                "/v1/chat/completions?api-version=2024-02-01",
                Endpoint::ChatCompletions,
            ),
            ("/chat/completions", Endpoint::ChatCompletions),
            ("/v1/completions", Endpoint::Completions),
            ("/v1/images/generations", Endpoint::ImagesGenerations),
            ("/v1/images/edits", Endpoint::ImagesGenerations),
            ("/v1/videos", Endpoint::Videos),
            ("/v1/videos/abc", Endpoint::Videos),
            ("/v1/videos/abc/content", Endpoint::Videos),
            ("/kling/v1/videos/text2video/task-1", Endpoint::Videos),
            ("/v1/video/generations", Endpoint::Videos),
            ("/v1/models", Endpoint::Other),
            ("/v1/chat/completions/extra", Endpoint::Other),
            ("/v1/embeddings", Endpoint::Embeddings),
            ("/v1/responses", Endpoint::Responses),
            ("/v1/responses/", Endpoint::Responses),
            ("/v1/responses/resp_1", Endpoint::Responses),
            ("/v1/responses/resp_1/input_items", Endpoint::Other),
            ("/v1/audio/transcriptions", Endpoint::Transcriptions),
            ("/v1/audio/translations", Endpoint::Transcriptions),
            ("", Endpoint::Other),
        ];
        for (path, expected) in rows {
            assert_eq!(Endpoint::from_path(path), expected, "{path}");
        }
    }

    fn mode(json: &JsonMode) -> &'static str {
        match json {
            JsonMode::None => "none",
            JsonMode::Object => "object",
            JsonMode::Schema(_) => "schema",
        }
    }

    #[test]
    fn json_mode_from_response_format() {
        let schema =
            json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
        let rows = [
            (json!({}), "none"),
            (json!({"response_format": {"type": "text"}}), "none"),
            (
                json!({"response_format": {"type": "json_object"}}),
                "object",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": true}}}),
                "schema",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}),
                "schema",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
                "object",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 12}}}}),
                "object",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"schema": {"$ref": "https://example.com/s.json"}}}}),
                "object",
            ),
            (json!({"response_format": "json_object"}), "none"),
        ];
        for (body, expected) in rows {
            let got = Expectation::from_request("/v1/chat/completions", &body);
            assert_eq!(mode(&got.json), expected, "{body}");
        }
        let images = json!({"response_format": {"type": "json_object"}});
        assert_eq!(
            mode(&Expectation::from_request("/v1/images/generations", &images).json),
            "none"
        );
        assert_eq!(
            mode(&Expectation::from_request("/v1/completions", &images).json),
            "object"
        );
    }

    #[test]
    fn stream_usage_and_model() {
        let body =
            json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true}});
        let e = Expectation::from_request("/v1/chat/completions", &body);
        assert_eq!(
            (e.endpoint, e.stream, e.include_usage, e.model.as_deref()),
            (Endpoint::ChatCompletions, true, true, Some("gpt-4o"))
        );
        let e = Expectation::from_request(
            "/v1/chat/completions",
            &json!({"stream": "yes", "model": 4}),
        );
        assert_eq!((e.stream, e.include_usage, e.model), (false, false, None));
        let e = Expectation::from_request("/v1/chat/completions", &json!([1, 2]));
        assert_eq!((e.stream, mode(&e.json)), (false, "none"));
    }
}
