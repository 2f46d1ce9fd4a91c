//! The one check of an http(s) URL in the configuration (upstream base
//! URLs, OTLP endpoints), and the one way a URL is shown: a leaf, so that
//! every section (and the secrets module) can use it.

/// An http(s) URL with a host. The error shows the URL without its
/// userinfo or query ([`shown_url`]): a startup error is a log line too.
pub fn check_http_url(url: &str) -> Result<http::Uri, String> {
    let shown = shown_url(url);
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("{shown:?} is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{shown:?} must start with http:// or https://")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(format!("{shown:?} has no host"));
    }
    Ok(parsed)
}

/// A URL as it may be shown (a log line, an error): no userinfo, no query,
/// no fragment.
pub fn shown_url(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        // No scheme: whatever precedes an '@' may still be a password.
        None => without_query
            .rsplit_once('@')
            .map_or(without_query, |(_, h)| h)
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_is_shown_without_userinfo_or_query() {
        let rows = [
            ("https://u:p@host:8443/v1?key=s", "https://host:8443/v1"),
            ("http://host/v1", "http://host/v1"),
            ("http://host", "http://host"),
            ("http://host/v1#frag", "http://host/v1"),
            ("u:p@host/v1", "host/v1"),
            ("ftp://u:p@host", "ftp://host"),
        ];
        for (url, shown) in rows {
            assert_eq!(shown_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_bad_url_error_never_shows_the_password() {
        let rows = [
            (
                "ftp://user:s3cret@host/v1",
                "\"ftp://host/v1\" must start with http:// or https://",
            ),
            (
                "https://user:s3cret@/v1",
                "\"https:///v1\" is not a URL: invalid authority",
            ),
            (
                "user:s3cret@host/v1",
                "\"host/v1\" is not a URL: invalid format",
            ),
        ];
        for (url, want) in rows {
            assert_eq!(check_http_url(url).unwrap_err(), want, "{url}");
        }
        let err = check_http_url("https://user:s3cret@ho st/v1").unwrap_err();
        assert!(
            !err.contains("s3cret") && err.starts_with("\"https://ho st/v1\" is not a URL"),
            "{err}"
        );
    }
}
