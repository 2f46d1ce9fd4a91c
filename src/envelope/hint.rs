//! The hint: one line per kind of failure saying what to do about it, in
//! the words of the API that was called. It goes in `error.backstop.hint`
//! and, with `envelope.hint_in_message`, at the end of `error.message`.

use crate::inspect::Endpoint;
use crate::outcome::{Outcome, Subject};
use crate::taxonomy::Kind;

/// One line: what to do about a failure of this kind, in the words of the
/// API that was called (`max_output_tokens` on the Responses API, a tool
/// call's schema when its arguments failed, not JSON mode).
pub fn hint(outcome: &Outcome, endpoint: Endpoint) -> &'static str {
    let responses = endpoint == Endpoint::Responses;
    let tool_call = outcome.subject == Subject::ToolArguments;
    match outcome.kind {
        Kind::Ok => "Nothing to do: the request succeeded",
        Kind::BadRequest if responses => {
            "Fix the request before retrying: check error.param, then validate `model`, \
             `input`, `text.format`, the JSON shape and field types"
        }
        Kind::BadRequest if endpoint == Endpoint::Embeddings => {
            "Fix the request before retrying: check error.param, then validate `model` and \
             `input` (non-empty strings or token arrays, within the model's limits)"
        }
        Kind::BadRequest => {
            "Fix the request before retrying: check error.param, then validate `model`, \
             `messages`, the JSON shape and field types"
        }
        Kind::ContextLengthExceeded if responses => {
            "Shorten the input or lower max_output_tokens to fit the model's context window, \
             or send `truncation: \"auto\"`"
        }
        Kind::ContextLengthExceeded if endpoint == Endpoint::Embeddings => {
            "Split or shorten each input to fit the embedding model's token limit"
        }
        Kind::ContextLengthExceeded => {
            "Reduce the messages or max_tokens to fit the model's context window"
        }
        Kind::Unauthorized => {
            "Check the header is exactly `Authorization: Bearer <key>` and the key is current"
        }
        Kind::Forbidden => {
            "Retry with a simple request on a known-good model, then add advanced or \
             provider-specific fields back one by one; check the key may use this model"
        }
        Kind::QuotaExceeded => "Top up the account or raise its quota: retrying will not help",
        Kind::NotFound => {
            "Check the model id (GET /v1/models lists them), the endpoint path and the resource id"
        }
        Kind::PayloadTooLarge if outcome.upstream_status.is_none() => {
            "Send a smaller body: it exceeds the gateway's limits.max_request_body_bytes"
        }
        Kind::PayloadTooLarge => {
            "Send a smaller request: compress or drop inline images, audio or base64, or split the job"
        }
        Kind::RateLimited => {
            "Wait for retry-after, then back off exponentially with jitter and reduce concurrency"
        }
        Kind::ServerError => {
            "Retry later with backoff and keep the upstream request id; \
             try another model if it persists"
        }
        Kind::Timeout if responses => {
            "Retry; consider a faster model, a lower max_output_tokens or reasoning effort, \
             streaming, or `background: true` for long jobs"
        }
        Kind::Timeout => {
            "Retry; consider a faster model, a smaller max_tokens or streaming, or longer timeouts"
        }
        Kind::ConnectError => {
            "Check upstream.url, DNS and the network path to the upstream, then retry"
        }
        Kind::BadUpstreamResponse if outcome.upstream_status.is_some_and(is_redirect) => {
            "The upstream base URL is probably wrong: it must include /v1 \
             (e.g. https://api.cometapi.com/v1)"
        }
        Kind::BadUpstreamResponse => {
            "Check upstream.url points at an OpenAI-compatible API, including /v1 \
             (e.g. https://api.cometapi.com/v1)"
        }
        Kind::ContentFilter => {
            "Rephrase the prompt; avoid the specific names or topics the provider's \
             safety filter blocks"
        }
        Kind::Length if responses => {
            "Raise max_output_tokens (reasoning tokens count against it) or shorten the input"
        }
        Kind::Length if tool_call => {
            "Raise max_tokens: the tool call's arguments were cut before they closed"
        }
        Kind::Length => "Raise max_tokens or shorten the prompt",
        Kind::EmptyData if endpoint == Endpoint::Embeddings => {
            "Check every input is a non-empty string or token array, then retry; \
             send fewer inputs per request if it repeats"
        }
        Kind::EmptyData => {
            "The prompt was probably filtered: check revised_prompt and rephrase it"
        }
        Kind::EmptyContent if endpoint == Endpoint::Transcriptions => {
            "The audio may be silent, too short or in an unsupported format: check the file \
             and the `language` parameter"
        }
        Kind::EmptyContent if responses => {
            "The response has no output text and no function call: log the full response and \
             make the instructions more explicit; retrying may help"
        }
        Kind::EmptyContent => {
            "Log the full response and make the prompt more explicit; retrying may help"
        }
        Kind::InvalidJson if tool_call => {
            "The tool call's arguments are not valid JSON: set `strict: true` on the function \
             definition, or simplify its parameters"
        }
        Kind::InvalidJson if responses => {
            "Use text.format json_schema, or tell the model to answer with valid JSON only"
        }
        Kind::InvalidJson => {
            "Use response_format json_schema, or tell the model to answer with valid JSON only"
        }
        Kind::SchemaMismatch if tool_call => {
            "The tool call's arguments do not match the function's parameters: set \
             `strict: true` on the function definition, or simplify its schema"
        }
        Kind::SchemaMismatch if responses => {
            "Simplify the schema in text.format or set `strict: true`; check the instructions \
             describe every required field"
        }
        Kind::SchemaMismatch => {
            "Simplify the JSON schema or use strict structured outputs; check the prompt \
             describes every required field"
        }
        Kind::StreamTruncated => "Retry the request: a cut stream cannot be resumed",
        Kind::MalformedEvent => {
            "The upstream sent an SSE event that is not JSON; report it to the provider if it repeats"
        }
        Kind::Overloaded => {
            "The gateway is at its in-flight limit (limits.max_inflight): retry after retry-after \
             with backoff, or give the gateway more capacity"
        }
        Kind::ClientClosed => "Nothing to do for the client that left; check its own timeouts",
        Kind::Shutdown => "The gateway was shutting down: retry the request",
    }
}

fn is_redirect(status: u16) -> bool {
    (300..=399).contains(&status)
}
