//! Prefill continuations, for a gateway's stream repair: when a chat
//! request's last message is the assistant's, the mock continues that text.
//! If the prefill is a prefix of the answer the step gives, only the rest
//! is said (the rest of the piece the prefill ends in, then the following
//! pieces), so that prefill + continuation is the answer exactly; if not,
//! the whole answer. The prefill counts in `prompt_tokens`, one token per
//! whitespace-separated word (at least one for a non-empty prefill).

use std::borrow::Cow;

use serde_json::Value;

use super::completion::Completion;

/// The text of a message's `content`: a string, or the `text` of its parts.
pub fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect(),
        ),
        _ => None,
    }
}

/// The prompt tokens of a prefill.
pub fn tokens(prefill: &str) -> u64 {
    let words = prefill.split_whitespace().count();
    words.max(usize::from(!prefill.is_empty())) as u64
}

fn rest_of(piece: Cow<'static, str>, at: usize) -> Cow<'static, str> {
    match piece {
        Cow::Borrowed(s) => Cow::Borrowed(s.get(at..).unwrap_or_default()),
        Cow::Owned(s) => Cow::Owned(s.get(at..).unwrap_or_default().to_owned()),
    }
}

/// Turns `comp` into the continuation of `prefill`.
pub fn continue_after(comp: &mut Completion<'_>, prefill: &str) {
    comp.prefill_tokens = tokens(prefill);
    let Some(pieces) = comp.pieces.as_mut() else {
        return;
    };
    if !pieces.concat().starts_with(prefill) {
        return;
    }
    let mut skip = prefill.len();
    let mut rest = Vec::with_capacity(pieces.len());
    for piece in pieces.drain(..) {
        if skip >= piece.len() {
            skip -= piece.len();
        } else if skip > 0 {
            rest.push(rest_of(piece, skip));
            skip = 0;
        } else {
            rest.push(piece);
        }
    }
    *pieces = rest;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::completion::completion;
    use crate::scenario::parse_step;
    use serde_json::json;

    fn continued(step: &str, prefill: &str) -> (Option<Vec<String>>, u64) {
        let step = parse_step(step).unwrap();
        let mut comp = completion(&step, 3, false);
        continue_after(&mut comp, prefill);
        let pieces = comp
            .pieces
            .map(|p| p.iter().map(|s| s.to_string()).collect());
        (pieces, comp.prefill_tokens)
    }

    fn strings(pieces: &[&str]) -> Option<Vec<String>> {
        Some(pieces.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn continues_after_a_prefix() {
        let cases: [(&str, &str, Option<Vec<String>>, u64); 8] = [
            ("ok", "Hello from", strings(&[" backstop-mock."]), 2),
            ("ok", "Hello", strings(&[" from", " backstop-mock."]), 1),
            ("ok", "Hel", strings(&["lo", " from", " backstop-mock."]), 1),
            ("ok", "Hello from backs", strings(&["top-mock."]), 3),
            ("ok", "Hello from backstop-mock.", strings(&[]), 3),
            ("ok", "", strings(&["Hello", " from", " backstop-mock."]), 0),
            // Not a prefix: the whole answer.
            (
                "ok",
                "Bonjour de",
                strings(&["Hello", " from", " backstop-mock."]),
                2,
            ),
            ("json", "{\"answer\"", strings(&[": 42}"]), 1),
        ];
        for (step, prefill, want, prefill_tokens) in cases {
            let got = continued(step, prefill);
            assert_eq!(got, (want, prefill_tokens), "{step} {prefill:?}");
        }
        // A null content stays null; the prefill still counts.
        assert_eq!(continued("empty", "Hi"), (None, 1));
    }

    #[test]
    fn reads_string_and_part_contents() {
        assert_eq!(content_text(&json!("Hello")), Some("Hello".to_owned()));
        assert_eq!(
            content_text(&json!([{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}])),
            Some("Hello".to_owned())
        );
        assert_eq!(content_text(&json!(null)), None);
        assert_eq!(tokens("   "), 1);
        assert_eq!(tokens(""), 0);
    }
}
