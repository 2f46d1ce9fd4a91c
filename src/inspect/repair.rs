//! Stream repair (opt-in per route, `repair_streams = true`): when a stream
//! is cut or stalls after content went out, the conversation plus the
//! partial assistant text is sent again as a prefill — to the same target
//! when it accepts one (`prefill = true` on its upstream), else to the next
//! target of the route that does — and the continuation is forwarded as if
//! it were the same stream. When no such target exists or the continuation
//! fails before it produced a stream, the caller closes with the original
//! failure, never the continuation's error.

use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri};
use serde_json::{json, Value};

use crate::proxy::targets::Targets;
use crate::routing::Plan;

/// What a continuation needs from the original request.
pub struct Repair {
    pub targets: Arc<Targets>,
    pub plan: Arc<Plan>,
    /// The position in the plan of the target that was cut.
    pub position: usize,
    pub json: Arc<Value>,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub request_id: HeaderValue,
}

impl Repair {
    /// The continuation's stream, or `None` when no prefill-capable target
    /// exists or it did not answer with a success.
    pub async fn continue_with(&self, partial: &str) -> Option<(BodyDataStream, String)> {
        let (position, target) = self
            .plan
            .targets
            .iter()
            .enumerate()
            .skip(self.position)
            .find(|(_, t)| t.prefill)?;
        let upstream = self.targets.upstream(target)?;
        let mut body = (*self.json).clone();
        let obj = body.as_object_mut()?;
        let messages = obj.get_mut("messages")?.as_array_mut()?;
        messages.push(json!({"role": "assistant", "content": partial}));
        if let Some(model) = &target.model {
            obj.insert("model".into(), Value::String(model.clone()));
        }
        let bytes = Bytes::from(serde_json::to_vec(&body).ok()?);
        let mut req = Request::new(Bytes::new());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        let send = upstream.send(&req, bytes, &self.request_id);
        let resp = tokio::time::timeout(upstream.first_byte_timeout, send)
            .await
            .ok()?
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let label = self.targets.label(target).to_string();
        tracing::info!(to = %label, position, "continuing a cut stream with a prefill");
        let resp: http::Response<reqwest::Body> = resp.into();
        Some((Body::new(resp.into_body()).into_data_stream(), label))
    }
}
