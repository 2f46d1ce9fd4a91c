//! Stream repair, the decisions: which target may continue a stream that
//! was cut after content went out, and the request that asks it to — the
//! conversation plus the partial assistant text as a prefill. The retry
//! chain carries them out as an attempt like any other.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::routing::Plan;

/// The position of the target that continues a stream cut on the target
/// at `position`: that target itself when it accepts a prefill, else the
/// next one of the route that does.
pub fn continuation_target(plan: &Plan, position: usize) -> Option<usize> {
    plan.targets
        .iter()
        .enumerate()
        .skip(position)
        .find(|(_, t)| t.prefill)
        .map(|(i, _)| i)
}

/// The continuation request: the client's chat request with the partial
/// answer appended as an assistant message, and `model` set for the
/// target when it sends another one. `None` when the request is not a chat
/// request with `messages`.
pub fn continuation_body(request: &Value, partial: &str, model: Option<&str>) -> Option<Bytes> {
    let mut body = request.clone();
    let obj = body.as_object_mut()?;
    let messages = obj.get_mut("messages")?.as_array_mut()?;
    messages.push(json!({"role": "assistant", "content": partial}));
    if let Some(model) = model {
        obj.insert("model".into(), Value::String(model.to_string()));
    }
    serde_json::to_vec(&body).ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::{KindSet, Target};

    fn target(index: usize, prefill: bool) -> Target {
        Target {
            index,
            upstream: format!("u{index}"),
            model: None,
            context_window: 0,
            prefill,
            first_token_timeout: None,
        }
    }

    #[test]
    fn the_same_target_continues_when_it_accepts_a_prefill_else_the_next_that_does() {
        let plan = Plan {
            route: Some("r".into()),
            targets: vec![
                target(0, false),
                target(1, true),
                target(2, false),
                target(3, true),
            ],
            fallback_on: KindSet::empty(),
            repair_streams: true,
            attempts_per_target: 2,
            hedge_after: None,
        };
        let rows = [
            (0, Some(1)),
            (1, Some(1)),
            (2, Some(3)),
            (3, Some(3)),
            (4, None),
        ];
        for (cut_at, want) in rows {
            assert_eq!(continuation_target(&plan, cut_at), want, "cut at {cut_at}");
        }
    }

    #[test]
    fn the_continuation_appends_the_partial_answer_and_sets_the_model() {
        let request =
            json!({"model": "a", "messages": [{"role": "user", "content": "hi"}], "stream": true});
        let body = continuation_body(&request, "Hello fr", Some("b")).unwrap();
        let sent: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            sent,
            json!({"model": "b", "stream": true, "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Hello fr"}
            ]})
        );
        assert!(continuation_body(&json!({"prompt": "x"}), "p", None).is_none());
    }
}
