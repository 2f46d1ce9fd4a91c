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
    use super::template;

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
