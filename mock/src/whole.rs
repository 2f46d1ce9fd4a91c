//! Whole (non-streamed) 200 JSON bodies sent the way a step asks, on every
//! route: `cut:N` sends the first N bytes (at most all but one), `cut_body`
//! the first half, `drop_after_headers` nothing, each under the full
//! `Content-Length` before the connection drops; `stall:MS` sends the first
//! half, pauses, then the rest; `hold:MS` (and `first_token:MS`) pause
//! before the first byte; `gzip` compresses; `malformed`, `error_event`
//! and `garbage` replace the body. Anything else sends it as it is.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderValue, Response, StatusCode};

use super::body::{json, response, End, MockBody, JSON};
use super::gzip;
use super::scenario::Step;
use super::stream::{garbage, ERROR_JSON};

/// A 200 JSON response whose body is `frames` under a `Content-Length` of
/// `len`, ending with `end`.
fn announced(len: usize, frames: Vec<(Duration, Bytes)>, end: End) -> Response<MockBody> {
    let frames = frames.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    let mut resp = response(StatusCode::OK, Some(JSON), MockBody::frames(frames, end));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// `body` as `step` sends a whole 200 JSON answer.
pub fn reply(body: impl Into<Vec<u8>>, step: &Step) -> Response<MockBody> {
    let bytes = Bytes::from(body.into());
    let len = bytes.len();
    let now = Duration::ZERO;
    match step {
        Step::Cut(n) => announced(
            len,
            vec![(now, bytes.slice(..(*n).min(len.saturating_sub(1))))],
            End::Abort,
        ),
        Step::CutBody => announced(len, vec![(now, bytes.slice(..len / 2))], End::Abort),
        Step::DropAfterHeaders => announced(len, Vec::new(), End::Abort),
        Step::Stall(pause) => announced(
            len,
            vec![
                (now, bytes.slice(..len / 2)),
                (*pause, bytes.slice(len / 2..)),
            ],
            End::Clean,
        ),
        Step::Hold(pause) | Step::FirstToken(pause) => {
            response(StatusCode::OK, Some(JSON), MockBody::after(*pause, bytes))
        }
        Step::Gzip => {
            let mut resp = json(StatusCode::OK, gzip::compress(&bytes));
            resp.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            resp
        }
        Step::Malformed => json(StatusCode::OK, Bytes::from_static(b"{not json")),
        Step::ErrorEvent => json(StatusCode::OK, Bytes::from_static(ERROR_JSON)),
        Step::Garbage(_) => json(StatusCode::OK, garbage()),
        _ => json(StatusCode::OK, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_step;
    use http_body_util::BodyExt;

    /// Status, Content-Length, content-encoding, the bytes sent, whether
    /// the body ended with an error.
    async fn sent(step: &str) -> (u16, Option<String>, Option<String>, Vec<u8>, bool) {
        let resp = reply(b"0123456789".to_vec(), &parse_step(step).unwrap());
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (status, length, encoding) = (
            resp.status().as_u16(),
            header(CONTENT_LENGTH),
            header(CONTENT_ENCODING),
        );
        let mut body = resp.into_body();
        let length = length.or_else(|| {
            http_body::Body::size_hint(&body)
                .exact()
                .map(|n| n.to_string())
        });
        let mut out = Vec::new();
        let mut failed = false;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => out.extend_from_slice(&f.into_data().unwrap_or_default()),
                Err(_) => failed = true,
            }
        }
        (status, length, encoding, out, failed)
    }

    #[tokio::test]
    async fn shapes_by_step() {
        let ten = Some("10".to_owned());
        let cases: Vec<(&str, Option<String>, &[u8], bool)> = vec![
            ("ok", ten.clone(), b"0123456789", false),
            ("cut:3", ten.clone(), b"012", true),
            ("cut:99", ten.clone(), b"012345678", true),
            ("cut_body", ten.clone(), b"01234", true),
            ("drop_after_headers", ten.clone(), b"", true),
            ("stall:1", ten.clone(), b"0123456789", false),
            ("hold:1", ten.clone(), b"0123456789", false),
            ("first_token:1", ten.clone(), b"0123456789", false),
            ("malformed", Some("9".into()), b"{not json", false),
        ];
        for (step, length, want, failed) in cases {
            let got = sent(step).await;
            assert_eq!(
                (got.0, got.1, got.2, got.3.as_slice(), got.4),
                (200, length, None, want, failed),
                "{step}"
            );
        }
        let got = sent("garbage").await;
        assert_eq!(got.3, garbage().to_vec());
    }

    #[tokio::test]
    async fn gzip_compresses_the_whole_body() {
        use std::io::Read;
        let (status, length, encoding, bytes, failed) = sent("gzip").await;
        assert_eq!(
            (status, encoding.as_deref(), failed),
            (200, Some("gzip"), false)
        );
        assert_eq!(length, Some(bytes.len().to_string()));
        let mut out = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "0123456789");
    }
}
