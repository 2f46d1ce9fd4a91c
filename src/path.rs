//! The client's path: its template (`/v1/videos/{id}`), which is the
//! `route` metric label and log field — never a raw path with ids, so label
//! values stay a closed set.

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
pub fn creates_something(method: &http::Method, path: &str, background: bool) -> bool {
    if method != http::Method::POST {
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
    use super::{creates_something, template};
    use http::Method;

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
