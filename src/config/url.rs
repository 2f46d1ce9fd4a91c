//! The one check of an http(s) URL in the configuration (upstream base
//! URLs, OTLP endpoints): a leaf, so that every section can use it.

/// An http(s) URL with a host.
pub fn check_http_url(url: &str) -> Result<http::Uri, String> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    }
    if parsed.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(parsed)
}
