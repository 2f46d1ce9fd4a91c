//! Header rules for both legs: hop-by-hop headers never cross the proxy
//! (RFC 9110 §7.6.1), the upstream gets its own `Host`, each upstream gets
//! the credentials its rule allows ([`Credentials`]) and, with traces on,
//! the attempt's own trace context ([`TraceHeaders`]); the answer gets the
//! gateway's `x-request-id`.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::secrets::CREDENTIAL_HEADERS;

/// Headers that describe one connection, not the message.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The request id header, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Where the upstream's own request id goes in a forwarded answer.
pub const UPSTREAM_REQUEST_ID: HeaderName = HeaderName::from_static("x-upstream-request-id");

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// Which credentials an upstream receives (CONTRACT.md §3, Credentials).
#[derive(Debug, Clone)]
pub enum Credentials {
    /// The default upstream (`[upstream]`): the client's credentials go
    /// there; its `key` when the client sent none, or always with `replace`.
    Client {
        key: Option<HeaderValue>,
        replace: bool,
    },
    /// A named upstream: its own `key`, and never the client's credentials
    /// — unless `forward_client` (set only when it has no key).
    Own {
        key: Option<HeaderValue>,
        forward_client: bool,
    },
}

impl Credentials {
    /// Whether the client's credentials may reach this upstream.
    pub fn forwards_client(&self) -> bool {
        match self {
            Credentials::Client { .. } => true,
            Credentials::Own { forward_client, .. } => *forward_client,
        }
    }
}

/// Removes every client credential header.
pub fn strip_credentials(headers: &mut HeaderMap) {
    for name in CREDENTIAL_HEADERS {
        headers.remove(name);
    }
}

/// Whether the client sent a credential header.
pub fn has_credentials(headers: &HeaderMap) -> bool {
    CREDENTIAL_HEADERS.iter().any(|h| headers.contains_key(*h))
}

/// The headers sent upstream for a client request: the client's, less
/// hop-by-hop ones, `Host` (the HTTP client sets the upstream's) and
/// `Content-Length` (recomputed from the buffered body); with the request
/// id, the credentials the upstream's rule allows, and `Accept-Encoding:
/// identity` so answers arrive inspectable.
pub fn upstream_request(
    client: &HeaderMap,
    request_id: &HeaderValue,
    credentials: &Credentials,
) -> HeaderMap {
    let mut headers = client.clone();
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(REQUEST_ID, request_id.clone());
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    let key = match credentials {
        Credentials::Client { key, replace } => key
            .as_ref()
            .filter(|_| *replace || !has_credentials(&headers)),
        Credentials::Own {
            key,
            forward_client,
        } => {
            if !forward_client {
                strip_credentials(&mut headers);
            }
            key.as_ref()
        }
    };
    if let Some(key) = key {
        strip_credentials(&mut headers);
        headers.insert(header::AUTHORIZATION, key.clone());
    }
    headers
}

/// The W3C trace context one attempt sends upstream (its own span's), in
/// place of the client's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceHeaders {
    pub traceparent: HeaderValue,
    /// `None`: the trace carries no vendor state.
    pub tracestate: Option<HeaderValue>,
}

/// The W3C trace context headers.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Replaces the client's trace context with the attempt's.
pub fn set_trace(headers: &mut HeaderMap, trace: &TraceHeaders) {
    headers.insert(TRACEPARENT, trace.traceparent.clone());
    match &trace.tracestate {
        Some(state) => {
            headers.insert(TRACESTATE, state.clone());
        }
        None => {
            headers.remove(TRACESTATE);
        }
    }
}

/// The `Authorization` value for a configured key (`Bearer <key>`), marked
/// sensitive so it never prints in debug output. `None` when no key is set
/// or it cannot be a header value.
pub fn bearer(api_key: &str) -> Option<HeaderValue> {
    if api_key.is_empty() {
        return None;
    }
    let mut v = HeaderValue::from_str(&format!("Bearer {api_key}")).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// The headers of an upstream answer as forwarded to the client: less
/// hop-by-hop ones; the upstream's own request id moves aside to
/// `x-upstream-request-id` so `x-request-id` stays the gateway's.
pub fn downstream_response(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
    if let Some(upstream_id) = headers.remove(REQUEST_ID) {
        headers.insert(UPSTREAM_REQUEST_ID, upstream_id);
    }
}

/// The answer's media type, without parameters (compared case-blind).
fn mime(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .unwrap_or_default()
        .trim()
}

fn ends_with_ci(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Whether an answer says it is JSON (`application/json`, `…+json`).
pub fn is_json(headers: &HeaderMap) -> bool {
    let mime = mime(headers);
    ends_with_ci(mime, "/json") || ends_with_ci(mime, "+json")
}

/// Whether an answer is an HTML page (a wrong base URL, a WAF).
pub fn is_html(headers: &HeaderMap) -> bool {
    starts_with_ci(mime(headers), "text/html")
}

/// Whether an answer is an SSE stream (a stream request may be answered
/// with plain JSON: that is inspected and forwarded as JSON).
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    starts_with_ci(mime(headers), "text/event-stream")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = map(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("content-type", "application/json"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h, map(&[("content-type", "application/json")]));
    }

    #[test]
    fn each_upstream_gets_the_credentials_its_rule_allows() {
        let id = HeaderValue::from_static("req-1");
        let key = || bearer("sk-configured");
        let client = map(&[
            ("authorization", "Bearer sk-client"),
            ("x-api-key", "ak-client"),
            ("host", "gw"),
            ("content-length", "9"),
        ]);
        let bare = map(&[("content-type", "application/json")]);
        let sent = |h: &HeaderMap, c: Credentials| {
            let out = upstream_request(h, &id, &c);
            assert_eq!(out.get("x-request-id").unwrap(), "req-1");
            assert_eq!(out.get("accept-encoding").unwrap(), "identity");
            assert!(out.get("host").is_none() && out.get("content-length").is_none());
            (
                out.get("authorization")
                    .map(|v| v.to_str().unwrap().to_string()),
                out.get("x-api-key")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        };
        let s = |v: &str| Some(v.to_string());
        let rows = [
            // The default upstream: the client's, its key when the client sent none.
            (
                &client,
                Credentials::Client {
                    key: key(),
                    replace: false,
                },
                (s("Bearer sk-client"), s("ak-client")),
            ),
            (
                &bare,
                Credentials::Client {
                    key: key(),
                    replace: false,
                },
                (s("Bearer sk-configured"), None),
            ),
            (
                &client,
                Credentials::Client {
                    key: key(),
                    replace: true,
                },
                (s("Bearer sk-configured"), None),
            ),
            (
                &client,
                Credentials::Client {
                    key: None,
                    replace: true,
                },
                (s("Bearer sk-client"), s("ak-client")),
            ),
            // A named upstream: its own key, never the client's.
            (
                &client,
                Credentials::Own {
                    key: key(),
                    forward_client: false,
                },
                (s("Bearer sk-configured"), None),
            ),
            (
                &client,
                Credentials::Own {
                    key: None,
                    forward_client: false,
                },
                (None, None),
            ),
            (
                &client,
                Credentials::Own {
                    key: None,
                    forward_client: true,
                },
                (s("Bearer sk-client"), s("ak-client")),
            ),
        ];
        for (i, (h, c, want)) in rows.into_iter().enumerate() {
            assert_eq!(sent(h, c), want, "row {i}");
        }
    }

    #[test]
    fn configured_key_is_sensitive_and_empty_means_none() {
        assert!(bearer("").is_none());
        assert!(bearer("sk-1").unwrap().is_sensitive());
        assert!(bearer("bad\nkey").is_none());
    }

    #[test]
    fn the_attempts_trace_context_replaces_the_clients() {
        let mut h = map(&[
            (
                "traceparent",
                "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01",
            ),
            ("tracestate", "client=1"),
        ]);
        let ours = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-cccccccccccccccc-01";
        set_trace(
            &mut h,
            &TraceHeaders {
                traceparent: HeaderValue::from_static(ours),
                tracestate: None,
            },
        );
        assert_eq!(h, map(&[("traceparent", ours)]));
        set_trace(
            &mut h,
            &TraceHeaders {
                traceparent: HeaderValue::from_static(ours),
                tracestate: Some(HeaderValue::from_static("client=1")),
            },
        );
        assert_eq!(h, map(&[("traceparent", ours), ("tracestate", "client=1")]));
    }

    #[test]
    fn upstream_request_id_moves_aside() {
        let mut h = map(&[("x-request-id", "up-1"), ("connection", "keep-alive")]);
        downstream_response(&mut h);
        assert_eq!(h, map(&[("x-upstream-request-id", "up-1")]));
    }
}
