//! Answers that carry no generated text: the model list (`/v1/models`,
//! pre-built once) and embeddings (eight fixed floats per input, as JSON
//! numbers or as base64 when `encoding_format` asks for it, as the OpenAI
//! SDKs do by default; or the silent failures [`Vectors`] asks for).

use std::fmt::Write;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::Value;

/// The three models `/v1/models` lists.
pub const MODELS: &str = r#"{"object":"list","data":[{"id":"mock-model","object":"model","created":1700000000,"owned_by":"backstop-mock"},{"id":"mock-model-mini","object":"model","created":1700000000,"owned_by":"backstop-mock"},{"id":"mock-embedding","object":"model","created":1700000000,"owned_by":"backstop-mock"}]}"#;

/// The embedding every input gets.
pub const EMBEDDING: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

const EMBEDDING_JSON: &str = "[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]";

/// The most inputs one embeddings answer carries.
pub const MAX_INPUTS: usize = 2048;

fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// `/v1/models/{id}`.
pub fn model(id: &str) -> String {
    format!(
        r#"{{"id":{},"object":"model","created":1700000000,"owned_by":"backstop-mock"}}"#,
        quoted(id)
    )
}

/// [`EMBEDDING`] as little-endian f32 bytes in base64, JSON-quoted.
fn embedding_base64() -> &'static str {
    static ENCODED: OnceLock<String> = OnceLock::new();
    ENCODED.get_or_init(|| {
        let bytes: Vec<u8> = EMBEDDING.iter().flat_map(|f| f.to_le_bytes()).collect();
        format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    })
}

/// How many embeddings an `input` asks for: one per string (or token
/// array) in a list, one for a single string or token array.
pub fn input_count(input: Option<&Value>) -> usize {
    match input {
        Some(Value::Array(items)) if !items.first().is_some_and(Value::is_number) => {
            items.len().min(MAX_INPUTS)
        }
        _ => 1,
    }
}

/// Which vectors an embeddings answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vectors {
    /// One [`EMBEDDING`] per input.
    All,
    /// One fewer than the inputs (`short_data`).
    Short,
    /// None at all: `data: []` (`empty_data`).
    None,
    /// One per input, each empty: `[]` or `""` in base64 (`empty_vector`).
    Empty,
}

/// The embeddings body.
pub fn embeddings(
    model: &str,
    input: Option<&Value>,
    encoding_format: Option<&str>,
    vectors: Vectors,
) -> String {
    let base64 = encoding_format == Some("base64");
    let embedding = match (vectors, base64) {
        (Vectors::Empty, true) => "\"\"",
        (Vectors::Empty, false) => "[]",
        (_, true) => embedding_base64(),
        (_, false) => EMBEDDING_JSON,
    };
    let count = match vectors {
        Vectors::All | Vectors::Empty => input_count(input),
        Vectors::Short => input_count(input).saturating_sub(1),
        Vectors::None => 0,
    };
    let mut out = String::with_capacity(128 + count * (embedding.len() + 48));
    out.push_str(r#"{"object":"list","data":["#);
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"object":"embedding","index":{index},"embedding":{embedding}}}"#
        );
    }
    let _ = write!(
        out,
        r#"],"model":{},"usage":{{"prompt_tokens":5,"total_tokens":5}}}}"#,
        quoted(model)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_inputs() {
        let cases = [
            (None, 1),
            (Some(json!("hi")), 1),
            (Some(json!(["a", "b", "c"])), 3),
            (Some(json!([1, 2, 3])), 1),
            (Some(json!([[1, 2], [3]])), 2),
            (Some(json!([])), 0),
        ];
        for (input, want) in cases {
            assert_eq!(input_count(input.as_ref()), want, "{input:?}");
        }
    }

    #[test]
    fn embeddings_body_is_exact() {
        let got = embeddings("emb-x", Some(&json!(["a", "b"])), None, Vectors::All);
        assert_eq!(
            got,
            r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]},{"object":"embedding","index":1,"embedding":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}],"model":"emb-x","usage":{"prompt_tokens":5,"total_tokens":5}}"#
        );
        let floats: Vec<f32> = serde_json::from_str(EMBEDDING_JSON).unwrap();
        assert_eq!(floats, EMBEDDING.to_vec());
    }

    #[test]
    fn silent_failures() {
        let two = json!(["a", "b"]);
        let cases = [
            (
                Vectors::Short,
                None,
                r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]}],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}"#,
            ),
            (
                Vectors::None,
                None,
                r#"{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}"#,
            ),
            (
                Vectors::Empty,
                None,
                r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[]},{"object":"embedding","index":1,"embedding":[]}],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}"#,
            ),
            (
                Vectors::Empty,
                Some("base64"),
                r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":""},{"object":"embedding","index":1,"embedding":""}],"model":"m","usage":{"prompt_tokens":5,"total_tokens":5}}"#,
            ),
        ];
        for (vectors, format, want) in cases {
            assert_eq!(
                embeddings("m", Some(&two), format, vectors),
                want,
                "{vectors:?}"
            );
        }
    }

    #[test]
    fn base64_embeddings_decode_to_the_floats() {
        let v: Value =
            serde_json::from_str(&embeddings("m", None, Some("base64"), Vectors::All)).unwrap();
        let text = v["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats, EMBEDDING.to_vec());
    }

    #[test]
    fn models_list_has_three() {
        let v: Value = serde_json::from_str(MODELS).unwrap();
        assert_eq!(v["data"].as_array().map(Vec::len), Some(3));
        assert_eq!(
            model("gpt-x"),
            r#"{"id":"gpt-x","object":"model","created":1700000000,"owned_by":"backstop-mock"}"#
        );
    }
}
