//! Reads the `x-mock-*` request headers (the per-request scripting protocol)
//! into [`Directives`]. Pure: the server only acts on the result.

use std::time::Duration;

use http::HeaderMap;

use super::scenario::{parse_millis, parse_sequence, Step, StepError, MAX_CHUNKS};

/// `x-mock-scenario: STEP[,STEP...]`.
pub const SCENARIO: &str = "x-mock-scenario";
/// `x-mock-key: K`: requests with the same key walk the scenario's steps.
pub const KEY: &str = "x-mock-key";
/// `x-mock-chunks: N`: stream content chunks.
pub const CHUNKS: &str = "x-mock-chunks";
/// `x-mock-chunk-delay-ms: D`: delay between stream events.
pub const CHUNK_DELAY: &str = "x-mock-chunk-delay-ms";
/// `x-mock-first-byte-delay-ms: D`: delay before the response headers.
pub const FIRST_BYTE_DELAY: &str = "x-mock-first-byte-delay-ms";
/// `x-mock-echo: 1`: answer with what was received.
pub const ECHO: &str = "x-mock-echo";

/// What the headers of one request ask for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Directives {
    /// The scripted steps, when the request carries a scenario.
    pub scenario: Option<Vec<Step>>,
    /// Stream content chunks asked for by header.
    pub chunks: Option<usize>,
    /// Delay between stream events asked for by header.
    pub chunk_delay: Option<Duration>,
    /// Delay before the response headers.
    pub first_byte_delay: Duration,
    /// Echo the request instead of answering it.
    pub echo: bool,
}

/// A header that could not be read; answered with a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{header}: {reason}")]
pub struct DirectiveError {
    /// The header at fault.
    pub header: &'static str,
    /// Why.
    pub reason: String,
}

impl DirectiveError {
    fn new(header: &'static str, reason: impl Into<String>) -> DirectiveError {
        DirectiveError {
            header,
            reason: reason.into(),
        }
    }
}

impl From<StepError> for DirectiveError {
    fn from(e: StepError) -> DirectiveError {
        DirectiveError::new(SCENARIO, e.to_string())
    }
}

/// The `x-mock-key` of a request, if any (read apart so that a request with
/// a bad directive is still counted under its key).
pub fn key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

fn text<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<Option<&'h str>, DirectiveError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim()))
            .map_err(|_| DirectiveError::new(name, "not visible ASCII")),
    }
}

fn delay(headers: &HeaderMap, name: &'static str) -> Result<Option<Duration>, DirectiveError> {
    match text(headers, name)? {
        None => Ok(None),
        Some(v) => parse_millis(v).map(Some).ok_or_else(|| {
            DirectiveError::new(name, format!("'{v}' is not a number of milliseconds"))
        }),
    }
}

/// Reads every `x-mock-*` header but the key.
pub fn parse(headers: &HeaderMap) -> Result<Directives, DirectiveError> {
    let scenario = text(headers, SCENARIO)?.map(parse_sequence).transpose()?;
    let chunks = match text(headers, CHUNKS)? {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= MAX_CHUNKS => Some(n),
            _ => {
                return Err(DirectiveError::new(
                    CHUNKS,
                    format!("'{v}' is not a count from 0 to {MAX_CHUNKS}"),
                ))
            }
        },
    };
    let echo = match text(headers, ECHO)? {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(v) => return Err(DirectiveError::new(ECHO, format!("'{v}' is not 1 or 0"))),
    };
    Ok(Directives {
        scenario,
        chunks,
        chunk_delay: delay(headers, CHUNK_DELAY)?,
        first_byte_delay: delay(headers, FIRST_BYTE_DELAY)?.unwrap_or_default(),
        echo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn reads_every_header() {
        let h = headers(&[
            (SCENARIO, "status:503,ok"),
            (KEY, " k1 "),
            (CHUNKS, "5"),
            (CHUNK_DELAY, "10"),
            (FIRST_BYTE_DELAY, "20"),
            (ECHO, "1"),
        ]);
        let want = Directives {
            scenario: Some(vec![
                Step::Status {
                    code: 503,
                    format: super::super::scenario::ErrorFormat::OpenAi,
                },
                Step::Ok,
            ]),
            chunks: Some(5),
            chunk_delay: Some(Duration::from_millis(10)),
            first_byte_delay: Duration::from_millis(20),
            echo: true,
        };
        assert_eq!(parse(&h), Ok(want));
        assert_eq!(key(&h), Some("k1"));
    }

    #[test]
    fn no_headers_is_the_default() {
        assert_eq!(parse(&HeaderMap::new()), Ok(Directives::default()));
        assert_eq!(key(&HeaderMap::new()), None);
        assert_eq!(key(&headers(&[(KEY, "")])), None);
    }

    #[test]
    fn bad_headers_are_named() {
        let cases = [
            (
                SCENARIO,
                "bogus",
                "x-mock-scenario: bad step 'bogus': unknown step 'bogus'",
            ),
            (
                CHUNKS,
                "many",
                "x-mock-chunks: 'many' is not a count from 0 to 100000",
            ),
            (
                CHUNK_DELAY,
                "-3",
                "x-mock-chunk-delay-ms: '-3' is not a number of milliseconds",
            ),
            (
                FIRST_BYTE_DELAY,
                "x",
                "x-mock-first-byte-delay-ms: 'x' is not a number of milliseconds",
            ),
            (ECHO, "yes", "x-mock-echo: 'yes' is not 1 or 0"),
        ];
        for (name, value, want) in cases {
            let got = parse(&headers(&[(name, value)]))
                .err()
                .map(|e| e.to_string());
            assert_eq!(got.as_deref(), Some(want), "{name}");
        }
    }
}
