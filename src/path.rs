//! The client's path, read once at the edge: checked ([`check`]) into a
//! [`ClientPath`] the upstream leg appends to its base path without ever
//! normalizing it — a path with `.` or `..` segments (raw or
//! percent-encoded, any case), a backslash, an encoded slash, a double
//! encoding or an empty segment is refused, so a client can reach only the
//! API under the upstream's base URL — and its template (`/v1/videos/{id}`),
//! the `route` metric label and log field, never a raw path with ids, so
//! label values stay a closed set. Also which methods are forwarded, and
//! which requests create something.

use http::{Method, Uri};

use crate::secrets::is_credential_param;

/// A checked client path: what follows `/v1` (empty, or starting with
/// `/`), and the query string as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientPath {
    rest: String,
    query: Option<String>,
}

impl ClientPath {
    /// The path after `/v1` (`/chat/completions`), as sent.
    pub fn rest(&self) -> &str {
        &self.rest
    }

    /// The query string as sent (no `?`).
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The query without the parameters that carry a client credential
    /// (`key`, `api_key`, `api-key`), for an upstream that must not get
    /// them; `None` when nothing is left.
    pub fn query_without_credentials(&self) -> Option<String> {
        let kept: Vec<&str> = self
            .query
            .as_deref()?
            .split('&')
            .filter(|pair| !is_credential_param(pair.split('=').next().unwrap_or_default()))
            .collect();
        (!kept.is_empty()).then(|| kept.join("&"))
    }
}

/// Why a path is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    NotApi,
    DotSegment,
    Backslash,
    EncodedSeparator,
    DoubleEncoding,
    EmptySegment,
}

impl PathRefusal {
    /// What is wrong, for the envelope.
    pub fn describe(self) -> &'static str {
        match self {
            PathRefusal::NotApi => "the path is not under /v1",
            PathRefusal::DotSegment => {
                "the path has a `.` or `..` segment (raw or percent-encoded)"
            }
            PathRefusal::Backslash => "the path has a backslash",
            PathRefusal::EncodedSeparator => "the path has a percent-encoded `/` or `\\`",
            PathRefusal::DoubleEncoding => "the path has a percent-encoded `%` (double encoding)",
            PathRefusal::EmptySegment => "the path has an empty segment (`//`)",
        }
    }
}

/// Checks a client's `/v1` path (see the module doc).
pub fn check(uri: &Uri) -> Result<ClientPath, PathRefusal> {
    let path = uri.path();
    let rest = path.strip_prefix("/v1").ok_or(PathRefusal::NotApi)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return Err(PathRefusal::NotApi);
    }
    if path.contains('\\') {
        return Err(PathRefusal::Backslash);
    }
    // A trailing slash is harmless; an empty segment inside is not.
    let inner = rest.strip_suffix('/').unwrap_or(rest);
    for segment in inner.split('/').skip(1) {
        if segment.is_empty() {
            return Err(PathRefusal::EmptySegment);
        }
        // The common segment has no escapes: nothing to decode.
        if !segment.contains('%') {
            let name = segment.split(';').next().unwrap_or_default();
            if name == "." || name == ".." {
                return Err(PathRefusal::DotSegment);
            }
            continue;
        }
        let lower = segment.to_ascii_lowercase();
        if lower.contains("%25") {
            return Err(PathRefusal::DoubleEncoding);
        }
        if lower.contains("%2f") || lower.contains("%5c") {
            return Err(PathRefusal::EncodedSeparator);
        }
        let decoded = lower.replace("%2e", ".");
        let name = decoded.split(';').next().unwrap_or_default();
        if name == "." || name == ".." {
            return Err(PathRefusal::DotSegment);
        }
    }
    Ok(ClientPath {
        rest: rest.to_string(),
        query: uri.query().map(str::to_string),
    })
}

/// Whether a method is forwarded (`GET`, `POST`, `DELETE`, `HEAD`); any
/// other — `PUT`, `TRACE`, `CONNECT`, a lowercase `get` — is refused (405).
pub fn forwarded(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::POST | Method::DELETE | Method::HEAD
    )
}

/// The known `/v1` path templates; `{id}` matches one non-empty segment.
const TEMPLATES: &[&str] = &[
    "/v1/chat/completions",
    "/v1/chat/completions/{id}",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/responses/{id}",
    "/v1/responses/{id}/cancel",
    "/v1/responses/{id}/input_items",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/images/variations",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/audio/speech",
    "/v1/videos",
    "/v1/videos/{id}",
    "/v1/videos/{id}/content",
    "/v1/videos/{id}/remix",
    "/v1/models",
    "/v1/models/{id}",
    "/v1/moderations",
    "/v1/files",
    "/v1/files/{id}",
    "/v1/files/{id}/content",
    "/v1/batches",
    "/v1/batches/{id}",
    "/v1/batches/{id}/cancel",
];

/// Where a `POST` starts a job that exists even when its answer was lost
/// (CONTRACT.md §2, "requests that create something").
const CREATING: &[&str] = &[
    "/v1/videos",
    "/v1/files",
    "/v1/uploads",
    "/v1/batches",
    "/v1/fine_tuning/jobs",
    "/v1/vector_stores",
];

/// Whether a request may create something billed: a `POST` to one of the
/// creating collections (or below them), or a Responses request run in the
/// background. Such a request is sent again only when the upstream
/// certainly did not act on it.
pub fn creates_something(method: &Method, path: &str, background: bool) -> bool {
    if method != Method::POST {
        return false;
    }
    let path = path.strip_suffix('/').unwrap_or(path);
    let below = |root: &str| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    CREATING.iter().any(|root| below(root)) || (background && path == "/v1/responses")
}

/// The label for a path that matches no template.
pub const OTHER: &str = "other";

/// Maps a request path (no query) to its template, or [`OTHER`].
pub fn template(path: &str) -> &'static str {
    let path = path.strip_suffix('/').unwrap_or(path);
    TEMPLATES
        .iter()
        .copied()
        .find(|t| matches(t, path))
        .unwrap_or(OTHER)
}

fn matches(template: &str, path: &str) -> bool {
    let mut t = template.split('/');
    let mut p = path.split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some("{id}"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// All labels `template` can return, for pre-registering series.
pub fn all() -> impl Iterator<Item = &'static str> {
    TEMPLATES.iter().copied().chain(std::iter::once(OTHER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused_and_the_rest_kept_as_sent() {
        use PathRefusal::*;
        let rows: &[(&str, Result<&str, PathRefusal>)] = &[
            ("/v1/chat/completions", Ok("/chat/completions")),
            ("/v1", Ok("")),
            ("/v1/models/", Ok("/models/")),
            (
                "/v1/files/file-abc.txt/content",
                Ok("/files/file-abc.txt/content"),
            ),
            ("/v1/models/gpt-4o%3Alatest", Ok("/models/gpt-4o%3Alatest")),
            ("/v1/../../admin/keys", Err(DotSegment)),
            ("/v1/./models", Err(DotSegment)),
            ("/v1/%2e%2e/%2E%2E/admin/keys", Err(DotSegment)),
            ("/v1/%2e/models", Err(DotSegment)),
            ("/v1/.%2E/x", Err(DotSegment)),
            ("/v1/..;/admin", Err(DotSegment)),
            ("/v1/..%5c..%5cx", Err(EncodedSeparator)),
            ("/v1/files%2F..%2Fadmin", Err(EncodedSeparator)),
            ("/v1/a%2fb", Err(EncodedSeparator)),
            ("/v1/%252e%252e/admin", Err(DoubleEncoding)),
            ("/v1/%25", Err(DoubleEncoding)),
            ("/v1//models", Err(EmptySegment)),
            ("/v1/models//x", Err(EmptySegment)),
            ("/v1x/models", Err(NotApi)),
            ("/admin", Err(NotApi)),
        ];
        for (path, want) in rows {
            let uri: Uri = path.parse().unwrap();
            let got = check(&uri);
            assert_eq!(
                got.as_ref().map(ClientPath::rest).map_err(|e| *e),
                *want,
                "{path}"
            );
        }
        let uri: Uri = "/v1/models?key=a&b=c".parse().unwrap();
        assert_eq!(check(&uri).unwrap().query(), Some("key=a&b=c"));
    }

    #[test]
    fn a_raw_backslash_is_refused() {
        // http::Uri refuses a raw backslash; the check is for what gets past it.
        let built = http::uri::Builder::new()
            .path_and_query("/v1/..\\..\\x")
            .build();
        if let Ok(uri) = built {
            assert_eq!(check(&uri), Err(PathRefusal::Backslash));
        }
    }

    #[test]
    fn only_the_api_methods_are_forwarded() {
        for m in ["GET", "POST", "DELETE", "HEAD"] {
            assert!(forwarded(&Method::from_bytes(m.as_bytes()).unwrap()), "{m}");
        }
        for m in [
            "PUT", "PATCH", "TRACE", "CONNECT", "OPTIONS", "PROPFIND", "get",
        ] {
            assert!(
                !forwarded(&Method::from_bytes(m.as_bytes()).unwrap()),
                "{m}"
            );
        }
    }

    #[test]
    fn requests_that_create_something_are_known_by_method_and_path() {
        let rows = [
            (Method::POST, "/v1/videos", false, true),
            (Method::POST, "/v1/videos/", false, true),
            (Method::POST, "/v1/videos/abc/remix", false, true),
            (Method::GET, "/v1/videos/abc", false, false),
            (Method::POST, "/v1/videosx", false, false),
            (Method::POST, "/v1/files", false, true),
            (Method::POST, "/v1/uploads/u1/parts", false, true),
            (Method::POST, "/v1/batches", false, true),
            (Method::POST, "/v1/fine_tuning/jobs", false, true),
            (Method::POST, "/v1/vector_stores/vs1/files", false, true),
            (Method::DELETE, "/v1/files/f1", false, false),
            (Method::POST, "/v1/responses", true, true),
            (Method::POST, "/v1/responses", false, false),
            (Method::POST, "/v1/chat/completions", true, false),
            (Method::POST, "/v1/embeddings", false, false),
        ];
        for (method, path, background, want) in rows {
            assert_eq!(
                creates_something(&method, path, background),
                want,
                "{method} {path} background={background}"
            );
        }
    }

    #[test]
    fn paths_map_to_templates() {
        let cases = [
            ("/v1/chat/completions", "/v1/chat/completions"),
            ("/v1/chat/completions/", "/v1/chat/completions"),
            ("/v1/videos", "/v1/videos"),
            ("/v1/videos/video_123", "/v1/videos/{id}"),
            ("/v1/videos/abc/content", "/v1/videos/{id}/content"),
            ("/v1/models/gpt-4o", "/v1/models/{id}"),
            ("/v1/models", "/v1/models"),
            ("/v1/images/generations", "/v1/images/generations"),
            ("/v1/audio/transcriptions", "/v1/audio/transcriptions"),
            ("/v1/unknown/thing", "other"),
            ("/v1/videos//content", "other"),
            ("/v1", "other"),
            ("", "other"),
            ("/v1/chat/completions/x/y", "other"),
        ];
        for (path, want) in cases {
            assert_eq!(template(path), want, "{path}");
        }
    }
}
