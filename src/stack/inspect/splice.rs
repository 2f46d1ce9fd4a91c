//! One stream out of a repaired one. When a cut chat stream is continued
//! on another attempt (stream repair), the client must still read one
//! answer: every event of the continuation is rewritten to carry the first
//! stream's `id`, `model` and `created`; its opening role delta is dropped
//! (the client has one already); and its final `usage` covers the whole
//! answer — the prompt once, the completion tokens summed. The tokens of
//! the text sent before the cut are counted as the content deltas it came
//! in (one token per delta, as OpenAI-compatible streams send them); the
//! continuation's provider billed that text as prompt (the prefill), so it
//! moves from its `prompt_tokens` to `completion_tokens`.
//!
//! Only routes with `repair_streams` pay for this: each event is parsed
//! once more here.

use bytes::Bytes;
use serde_json::{Map, Value};

/// The first stream's identity and what was sent so far.
#[derive(Debug, Default)]
pub struct Splice {
    /// `id`, `model`, `created` of the first stream's first event.
    identity: Option<Map<String, Value>>,
    /// Content (or refusal) deltas forwarded so far, over every attempt.
    deltas: u64,
    /// A continuation is being read.
    resumed: bool,
}

impl Splice {
    /// A continuation starts: its events are rewritten from now on.
    pub fn resume(&mut self) {
        self.resumed = true;
    }

    /// An event about to be forwarded (`data` its data): the bytes to send
    /// instead, or `None` to leave it out.
    pub fn pass(&mut self, raw: Bytes, data: &[u8]) -> Option<Bytes> {
        let Ok(Value::Object(mut event)) = serde_json::from_slice::<Value>(data) else {
            return Some(raw);
        };
        let content = count_content(&event);
        if !self.resumed {
            if self.identity.is_none() {
                self.identity = Some(identity(&event));
            }
            self.deltas += content;
            return Some(raw);
        }
        if is_role_only(&event) {
            return None;
        }
        self.deltas += content;
        if let Some(identity) = &self.identity {
            for (key, value) in identity {
                event.insert(key.clone(), value.clone());
            }
        }
        if let Some(choices) = event.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices {
                if let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) {
                    delta.remove("role");
                }
            }
        }
        if let Some(usage) = event.get_mut("usage").and_then(Value::as_object_mut) {
            self.whole_usage(usage);
        }
        let json = serde_json::to_vec(&event).ok()?;
        let mut out = Vec::with_capacity(json.len() + 8);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&json);
        out.extend_from_slice(b"\n\n");
        Some(Bytes::from(out))
    }

    /// The continuation's usage made the whole answer's.
    fn whole_usage(&self, usage: &mut Map<String, Value>) {
        let get = |usage: &Map<String, Value>, key| usage.get(key).and_then(Value::as_u64);
        let (Some(prompt), Some(completion)) =
            (get(usage, "prompt_tokens"), get(usage, "completion_tokens"))
        else {
            return;
        };
        // What came before the cut was sent as the continuation's prefill.
        let before = self.deltas.saturating_sub(completion).min(prompt);
        let prompt = prompt - before;
        let completion = completion + before;
        usage.insert("prompt_tokens".into(), prompt.into());
        usage.insert("completion_tokens".into(), completion.into());
        usage.insert("total_tokens".into(), (prompt + completion).into());
    }
}

fn identity(event: &Map<String, Value>) -> Map<String, Value> {
    ["id", "model", "created"]
        .into_iter()
        .filter_map(|k| event.get(k).map(|v| (k.to_string(), v.clone())))
        .collect()
}

/// Content deltas in an event (one per choice that carries text).
fn count_content(event: &Map<String, Value>) -> u64 {
    choices(event)
        .filter(|delta| {
            ["content", "refusal"].iter().any(|k| {
                delta
                    .get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.is_empty())
            })
        })
        .count() as u64
}

/// An event that only opens the message: a role, nothing else.
fn is_role_only(event: &Map<String, Value>) -> bool {
    let Some(list) = event.get("choices").and_then(Value::as_array) else {
        return false;
    };
    !list.is_empty()
        && event.get("usage").is_none_or(Value::is_null)
        && list.iter().all(|choice| {
            choice.get("finish_reason").is_none_or(Value::is_null)
                && choice
                    .get("delta")
                    .and_then(Value::as_object)
                    .is_some_and(|d| {
                        d.iter().all(|(k, v)| {
                            k == "role" || v.is_null() || v.as_str().is_some_and(str::is_empty)
                        })
                    })
        })
}

fn choices(event: &Map<String, Value>) -> impl Iterator<Item = &Map<String, Value>> {
    event
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("delta").and_then(Value::as_object))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: Value) -> (Bytes, Vec<u8>) {
        let data = serde_json::to_vec(&v).unwrap();
        (Bytes::from(format!("data: {v}\n\n")), data)
    }

    fn chunk(id: &str, model: &str, created: u64, delta: Value) -> Value {
        json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": null}]})
    }

    fn sent(splice: &mut Splice, v: Value) -> Option<Value> {
        let (raw, data) = event(v);
        splice.pass(raw, &data).map(|b| {
            serde_json::from_slice(b.strip_prefix(b"data: ").unwrap().trim_ascii()).unwrap()
        })
    }

    #[test]
    fn a_continuation_reads_as_the_first_stream() {
        let mut s = Splice::default();
        let first = [
            chunk(
                "c1",
                "gpt-a",
                100,
                json!({"role": "assistant", "content": ""}),
            ),
            chunk("c1", "gpt-a", 100, json!({"content": "Hello"})),
            chunk("c1", "gpt-a", 100, json!({"content": " from"})),
        ];
        for e in first.clone() {
            assert_eq!(
                sent(&mut s, e.clone()),
                Some(e),
                "before the cut: untouched"
            );
        }
        s.resume();
        assert_eq!(
            sent(
                &mut s,
                chunk(
                    "c2",
                    "gpt-b",
                    200,
                    json!({"role": "assistant", "content": ""})
                )
            ),
            None
        );
        assert_eq!(
            sent(
                &mut s,
                chunk(
                    "c2",
                    "gpt-b",
                    200,
                    json!({"role": "assistant", "content": " backstop"})
                )
            ),
            Some(chunk("c1", "gpt-a", 100, json!({"content": " backstop"})))
        );
        let mut last = chunk("c2", "gpt-b", 200, json!({}));
        last["choices"][0]["finish_reason"] = json!("stop");
        let mut want = chunk("c1", "gpt-a", 100, json!({}));
        want["choices"][0]["finish_reason"] = json!("stop");
        assert_eq!(sent(&mut s, last), Some(want));
        // The continuation billed the two tokens sent before the cut as
        // prompt; the client sees them as completion.
        let usage = json!({"id": "c2", "object": "chat.completion.chunk", "created": 200, "model": "gpt-b",
            "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}});
        let got = sent(&mut s, usage).unwrap();
        assert_eq!(
            got["usage"],
            json!({"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8})
        );
        assert_eq!(
            (got["id"].clone(), got["model"].clone()),
            (json!("c1"), json!("gpt-a"))
        );
    }
}
