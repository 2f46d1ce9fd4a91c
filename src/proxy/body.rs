//! Reading answer bodies: whole up to a cap (for inspection and for error
//! bodies), and putting bytes already read back in front of the rest.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};
use http_body_util::BodyExt;

/// A body read up to a cap.
pub enum Read {
    Whole(Bytes),
    /// Over the cap: what was read, and the rest still streaming.
    TooLarge(Bytes, Body),
    /// The upstream broke off the body.
    Broken(String),
}

/// Reads `body` whole, unless it grows past `cap`.
pub async fn read_capped(mut body: Body, cap: u64) -> Read {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut buf = BytesMut::new();
    loop {
        match body.frame().await {
            None => return Read::Whole(buf.freeze()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > cap {
                        return Read::TooLarge(buf.freeze(), body);
                    }
                }
            }
            Some(Err(e)) => {
                return Read::Broken(format!(
                    "the upstream broke off its answer after {} bytes: {e}",
                    buf.len()
                ))
            }
        }
    }
}

/// Reads at most `cap` bytes of an upstream answer; one that fails midway
/// yields what arrived (it is only used to say what broke).
pub async fn read_prefix(mut resp: reqwest::Response, cap: usize) -> Bytes {
    let mut buf = BytesMut::new();
    while buf.len() < cap {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(cap - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    buf.freeze()
}

/// `prefix` (bytes already read) followed by the rest of `body`, streamed.
pub fn prefixed(prefix: Bytes, body: Body) -> Body {
    if prefix.is_empty() {
        return body;
    }
    let rest = body.into_data_stream();
    Body::from_stream(stream::once(async move { Ok(prefix) }).chain(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_is_read_whole_or_handed_back_past_the_cap() {
        let Read::Whole(b) = read_capped(Body::from("hello"), 5).await else {
            panic!("whole");
        };
        assert_eq!(b, "hello");
        let Read::TooLarge(head, rest) = read_capped(Body::from("hello!"), 5).await else {
            panic!("too large");
        };
        let whole = prefixed(head, rest).collect().await.unwrap().to_bytes();
        assert_eq!(whole, "hello!");
    }
}
