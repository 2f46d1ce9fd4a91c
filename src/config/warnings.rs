//! What a configuration may mean by mistake, said at start (logged as
//! warnings, never fatal): an upstream URL whose path does not end in a
//! version segment (`/v1`) — the client's `/v1/chat/completions` goes to
//! `<url>/chat/completions`, so `https://api.openai.com` would send
//! `/chat/completions` and get a 404 or an HTML page.

use super::sections::Config;

/// The warnings for `config`, one line each.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let upstreams = std::iter::once((
        "upstream".to_string(),
        config.upstream.url.as_str(),
        config.upstream.expect_v1,
    ))
    .chain(
        config
            .upstreams
            .iter()
            .map(|(name, u)| (format!("upstreams.{name}"), u.url.as_str(), u.expect_v1)),
    );
    for (key, url, expect_v1) in upstreams {
        if expect_v1 && !ends_in_version(url) {
            out.push(format!(
                "{key}.url {} does not end in a version segment such as /v1: the client's \
                 /v1/chat/completions goes to <url>/chat/completions. Add /v1 (e.g. \
                 https://api.openai.com/v1), or set {key}.expect_v1 = false for a provider \
                 whose base URL differs",
                super::url::shown_url(url)
            ));
        }
    }
    out
}

/// Whether a base URL's path ends in `v1`, `v1beta`, `v2`, … (a trailing
/// slash allowed).
fn ends_in_version(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return true; // validation reports a bad URL
    };
    let last = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let Some(rest) = last.strip_prefix('v') else {
        return false;
    };
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    digits > 0 && rest[digits..].chars().all(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_segments() {
        let rows = [
            ("https://api.openai.com/v1", true),
            ("https://api.openai.com/v1/", true),
            (
                "https://generativelanguage.googleapis.com/v1beta/openai",
                false,
            ),
            ("https://generativelanguage.googleapis.com/v1beta", true),
            ("https://api.groq.com/openai/v1", true),
            ("https://api.openai.com", false),
            ("https://api.cometapi.com/", false),
            ("http://127.0.0.1:9090/v2", true),
            ("http://127.0.0.1:9090/video", false),
        ];
        for (url, want) in rows {
            assert_eq!(ends_in_version(url), want, "{url}");
        }
    }

    #[test]
    fn a_url_without_v1_is_named_with_the_way_to_silence_it() {
        let mut config = Config::default();
        config.upstream.url = "https://api.openai.com".into();
        assert_eq!(
            warnings(&config),
            ["upstream.url https://api.openai.com does not end in a version segment such as /v1: \
              the client's /v1/chat/completions goes to <url>/chat/completions. Add /v1 (e.g. \
              https://api.openai.com/v1), or set upstream.expect_v1 = false for a provider whose \
              base URL differs"]
        );
        config.upstream.expect_v1 = false;
        assert!(warnings(&config).is_empty());
        assert!(warnings(&Config::default()).is_empty());
    }
}
