//! [`inspect_whole`]: the rules for a whole (non-streamed) answer, by
//! endpoint. Video tasks are read by their own rules ([`super::media`]);
//! any other endpoint has none here (its body is still checked for being an
//! error, by the classifier).

use super::chat::inspect_body;
use super::embeddings::{inspect_embeddings, inspect_transcription};
use super::expect::{Endpoint, Expectation};
use super::findings::Findings;
use super::media::inspect_images;
use super::responses::inspect_response;

/// Inspects a whole answer to the request `expect` describes.
pub fn inspect_whole(expect: &Expectation, body: &[u8]) -> Findings {
    match expect.endpoint {
        Endpoint::ChatCompletions | Endpoint::Completions => inspect_body(expect, body),
        Endpoint::ImagesGenerations => inspect_images(body),
        Endpoint::Responses => inspect_response(expect, body),
        Endpoint::Embeddings => inspect_embeddings(expect, body),
        Endpoint::Transcriptions => inspect_transcription(body),
        Endpoint::Videos | Endpoint::Other => Findings::default(),
    }
}
