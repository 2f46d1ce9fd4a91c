//! Embeddings and transcriptions, where a silent failure exists too: an
//! embeddings answer with fewer vectors than inputs, or an empty vector
//! (`empty_data`); a transcription (or translation) whose text is empty
//! (`empty_content`).

use serde_json::Value;

use super::expect::Expectation;
use super::findings::{Findings, Usage};
use crate::taxonomy::Kind;

/// Inspects a whole embeddings answer.
pub fn inspect_embeddings(expect: &Expectation, body: &[u8]) -> Findings {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Findings::default();
    };
    let data = value.get("data").and_then(Value::as_array);
    let vectors = data.map_or(0, Vec::len);
    let empty = data
        .into_iter()
        .flatten()
        .position(|item| match item.get("embedding") {
            Some(Value::Array(v)) => v.is_empty(),
            Some(Value::String(b64)) => b64.is_empty(),
            _ => true,
        });
    let detail = match (expect.inputs, empty) {
        (Some(inputs), _) if vectors < inputs => Some(format!(
            "{inputs} inputs were sent, {vectors} embeddings came back"
        )),
        (_, Some(i)) => Some(format!("embedding {i} is empty")),
        _ => None,
    };
    Findings {
        kind: if detail.is_some() {
            Kind::EmptyData
        } else {
            Kind::Ok
        },
        detail,
        model: value
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned),
        usage: value.get("usage").and_then(Usage::from_json),
        ..Findings::default()
    }
}

/// Inspects a whole transcription (or translation) answer in JSON.
pub fn inspect_transcription(body: &[u8]) -> Findings {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Findings::default();
    };
    match value.get("text").and_then(Value::as_str) {
        Some(text) if text.trim().is_empty() => Findings {
            kind: Kind::EmptyContent,
            detail: Some("the transcription's text is empty".into()),
            ..Findings::default()
        },
        _ => Findings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn expect(input: Value) -> Expectation {
        Expectation::from_request("/v1/embeddings", &json!({"model": "e", "input": input}))
    }

    #[test]
    fn missing_or_empty_vectors_are_empty_data() {
        let two = expect(json!(["a", "b"]));
        let rows = [
            (
                json!({"data": [{"embedding": [0.1]}, {"embedding": [0.2]}]}),
                Kind::Ok,
                None,
            ),
            (
                json!({"data": [{"embedding": [0.1]}]}),
                Kind::EmptyData,
                Some("2 inputs were sent, 1 embeddings came back"),
            ),
            (
                json!({"data": [{"embedding": [0.1]}, {"embedding": []}]}),
                Kind::EmptyData,
                Some("embedding 1 is empty"),
            ),
            (
                json!({"data": [{"embedding": "AAAA"}, {"embedding": ""}]}),
                Kind::EmptyData,
                Some("embedding 1 is empty"),
            ),
        ];
        for (body, kind, detail) in rows {
            let f = inspect_embeddings(&two, body.to_string().as_bytes());
            assert_eq!((f.kind, f.detail.as_deref()), (kind, detail), "{body}");
        }
        assert_eq!(expect(json!("one")).inputs, Some(1));
        assert_eq!(
            expect(json!([1, 2, 3])).inputs,
            Some(1),
            "one tokenized input"
        );
        assert_eq!(expect(json!([[1, 2], [3]])).inputs, Some(2));
    }

    #[test]
    fn an_empty_transcription_is_empty_content() {
        assert_eq!(
            inspect_transcription(br#"{"text": ""}"#).kind,
            Kind::EmptyContent
        );
        assert_eq!(
            inspect_transcription(br#"{"text": "  "}"#).kind,
            Kind::EmptyContent
        );
        assert_eq!(
            inspect_transcription(br#"{"text": "hello"}"#).kind,
            Kind::Ok
        );
        assert_eq!(inspect_transcription(b"plain text format").kind, Kind::Ok);
    }
}
