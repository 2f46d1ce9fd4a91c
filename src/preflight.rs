//! Pre-flight checks: request mistakes the gateway can see for itself, so it
//! answers them at once (with the offending field in `param`) instead of
//! spending an upstream call and a retry budget on a certain failure.
//!
//! Runs on the client's request before the retry layer; a rejection is an
//! [`Outcome`] (`bad_request` or `unauthorized`, no upstream status) that
//! goes through the envelope like any other. It only rejects what is wrong
//! for every OpenAI-compatible provider; anything it is unsure of passes.
//! No message ever contains the `Authorization` value.

#![allow(
    clippy::result_large_err,
    reason = "the error is the Outcome the envelope renders, once per request"
)]

use http::{header, HeaderMap, Method};

use crate::json_field::{Json, Kind as JsonKind};

use crate::outcome::Outcome;
use crate::taxonomy::Kind;

/// Path endings (under `/v1`) whose POST body must be a JSON object.
const JSON_ENDPOINTS: [&str; 6] = [
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/responses",
    "/images/generations",
    "/moderations",
];

/// Checks a client request. `strict` adds the parameter range checks
/// (`temperature`, `top_p`, `max_tokens`, `max_completion_tokens`, `n`).
pub fn check(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    strict: bool,
) -> Result<(), Outcome> {
    check_parsed(method, path, headers, body, strict).map(|_| ())
}

/// [`check`], handing back the body it read (a JSON endpoint's object, as a
/// view into `body`), so the caller need not read it a second time.
pub fn check_parsed<'a>(
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &'a [u8],
    strict: bool,
) -> Result<Option<Json<'a>>, Outcome> {
    check_authorization(headers)?;
    if method != Method::POST || !is_json_endpoint(path) || !may_read_json(headers) {
        return Ok(None);
    }
    let chat = path_of(path).ends_with("/chat/completions");
    if body.trim_ascii().is_empty() {
        if chat {
            return Err(bad_request(
                Some("model"),
                "The request body is empty: /v1/chat/completions needs a JSON object with \
                 `model` and `messages`"
                    .to_owned(),
            ));
        }
        return Ok(None);
    }
    let value = Json::parse(body).map_err(|e| {
        // The tree parser words some mistakes better ("trailing comma").
        let e = serde_json::from_slice::<serde_json::Value>(body)
            .err()
            .map_or(e.to_string(), |e| e.to_string());
        bad_request(None, format!("The request body is not valid JSON: {e}"))
    })?;
    if value.kind() != JsonKind::Object {
        return Err(bad_request(
            None,
            format!(
                "The request body must be a JSON object, not {}",
                value.kind().name()
            ),
        ));
    }
    if chat {
        check_chat(value)?;
    }
    if strict {
        check_ranges(value)?;
    }
    Ok(Some(value))
}

/// `Authorization`, when present, must be `Bearer <key>` with a clean key.
fn check_authorization(headers: &HeaderMap) -> Result<(), Outcome> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(());
    };
    let problem = if values.next().is_some() {
        Some("send it once, not several times")
    } else {
        authorization_problem(value.as_bytes())
    };
    match problem {
        Some(problem) => Err(Outcome {
            kind: Kind::Unauthorized,
            param: Some("Authorization".to_owned()),
            message: Some(format!(
                "The Authorization header must be `Bearer <key>`: {problem}"
            )),
            ..Outcome::default()
        }),
        None => Ok(()),
    }
}

/// What is wrong with an `Authorization` value, in words that never quote
/// it. The scheme is case-insensitive (RFC 9110 §11.1).
fn authorization_problem(value: &[u8]) -> Option<&'static str> {
    let Ok(text) = std::str::from_utf8(value) else {
        return Some("it contains bytes that are not text");
    };
    let has_scheme = text
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer"));
    if !has_scheme {
        return Some("it does not start with `Bearer `");
    }
    let rest = &text[6..];
    if rest.trim().is_empty() {
        return Some("the key after `Bearer` is empty");
    }
    let Some(key) = rest.strip_prefix(' ') else {
        return Some(if rest.starts_with(char::is_whitespace) {
            "use one plain space between `Bearer` and the key"
        } else {
            "it does not start with `Bearer ` (no space after `Bearer`)"
        });
    };
    let problem = if key.starts_with(char::is_whitespace) {
        "there is more than one space between `Bearer` and the key"
    } else if key
        .get(..7)
        .is_some_and(|k| k.eq_ignore_ascii_case("bearer "))
    {
        "`Bearer` appears twice"
    } else if key.ends_with(char::is_whitespace) {
        "the key ends with whitespace (check how the key is loaded)"
    } else if key.contains(|c: char| c.is_whitespace() || c.is_control()) {
        "the key contains whitespace or a line break (check how the key is loaded)"
    } else if key.starts_with(['"', '\'']) || key.ends_with(['"', '\'']) {
        "the key is wrapped in quotes"
    } else if key.starts_with('$') {
        "the key looks like an unexpanded variable (`$NAME`)"
    } else if key.starts_with('<') && key.ends_with('>') {
        "the key is still the `<key>` placeholder"
    } else if !key.is_ascii() {
        "the key contains non-ASCII characters (a pasted smart quote or invisible character?)"
    } else {
        return None;
    };
    Some(problem)
}

/// The path without its query, without a trailing slash.
fn path_of(path: &str) -> &str {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    path.strip_suffix('/').unwrap_or(path)
}

fn is_json_endpoint(path: &str) -> bool {
    let path = path_of(path);
    path.starts_with("/v1/") && JSON_ENDPOINTS.iter().any(|end| path.ends_with(end))
}

/// Whether the body can be read as JSON here: no content type or a JSON
/// one, and no content encoding. (Multipart uploads and compressed bodies
/// are the upstream's to judge.)
fn may_read_json(headers: &HeaderMap) -> bool {
    let json_type = match headers.get(header::CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim().as_bytes();
                mime.len() >= 4 && mime[mime.len() - 4..].eq_ignore_ascii_case(b"json")
            }),
    };
    let plain = headers
        .get(header::CONTENT_ENCODING)
        .is_none_or(|enc| enc.as_bytes().eq_ignore_ascii_case(b"identity"));
    json_type && plain
}

/// `model` is a non-empty string; `messages` a non-empty array of objects
/// that each have a string `role`.
fn check_chat(object: Json<'_>) -> Result<(), Outcome> {
    let [model, messages] = object.fields(["model", "messages"]);
    match model {
        Some(m) if m.kind() == JsonKind::String => {
            if m.as_str().is_none_or(|m| m.trim().is_empty()) {
                return Err(bad_request(
                    Some("model"),
                    "`model` is empty: give a model id such as gpt-4o-mini".to_owned(),
                ));
            }
        }
        None => {
            return Err(bad_request(
                Some("model"),
                "`model` is required: a model id such as gpt-4o-mini".to_owned(),
            ))
        }
        Some(other) => {
            return Err(bad_request(
                Some("model"),
                format!("`model` must be a string, not {}", other.kind().name()),
            ))
        }
    }
    let messages = match messages {
        Some(m) if m.kind() == JsonKind::Array => m,
        None => {
            return Err(bad_request(
                Some("messages"),
                "`messages` is required: an array of objects with `role` and `content`".to_owned(),
            ))
        }
        Some(other) => {
            return Err(bad_request(
                Some("messages"),
                format!(
                    "`messages` must be an array of objects with `role` and `content`, not {}",
                    other.kind().name()
                ),
            ))
        }
    };
    let mut count = 0;
    for (i, message) in messages.items().enumerate() {
        count += 1;
        if message.kind() != JsonKind::Object {
            return Err(bad_request(
                Some(&format!("messages[{i}]")),
                format!(
                    "`messages[{i}]` must be an object with `role` and `content`, not {}",
                    message.kind().name()
                ),
            ));
        }
        match message.get("role").map(Json::kind) {
            Some(JsonKind::String) => {}
            None => {
                let param = format!("messages[{i}].role");
                return Err(bad_request(
                    Some(&param),
                    format!("`{param}` is required: system, user, assistant, tool..."),
                ));
            }
            Some(other) => {
                let param = format!("messages[{i}].role");
                return Err(bad_request(
                    Some(&param),
                    format!("`{param}` must be a string, not {}", other.name()),
                ));
            }
        }
    }
    if count == 0 {
        return Err(bad_request(
            Some("messages"),
            "`messages` must contain at least one message".to_owned(),
        ));
    }
    Ok(())
}

/// Strict mode: sampling parameters within the ranges OpenAI documents.
/// `null` means "the default" and passes.
fn check_ranges(object: Json<'_>) -> Result<(), Outcome> {
    let [temperature, top_p, max_tokens, max_completion_tokens, n] = object.fields([
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "n",
    ]);
    for (field, max, value) in [("temperature", 2.0, temperature), ("top_p", 1.0, top_p)] {
        match value {
            None => {}
            Some(v) if v.kind() == JsonKind::Null => {}
            Some(v) if v.as_f64().is_some_and(|x| (0.0..=max).contains(&x)) => {}
            Some(other) => {
                return Err(bad_request(
                    Some(field),
                    format!(
                        "`{field}` must be a number between 0 and {max}, got {}",
                        shown(other)
                    ),
                ))
            }
        }
    }
    for (field, what, value) in [
        ("max_tokens", "a positive integer", max_tokens),
        (
            "max_completion_tokens",
            "a positive integer",
            max_completion_tokens,
        ),
        ("n", "an integer of at least 1", n),
    ] {
        match value {
            None => {}
            Some(v) if v.kind() == JsonKind::Null => {}
            Some(v) if v.as_u64().is_some_and(|x| x >= 1) => {}
            Some(other) => {
                return Err(bad_request(
                    Some(field),
                    format!("`{field}` must be {what}, got {}", shown(other)),
                ))
            }
        }
    }
    Ok(())
}

fn bad_request(param: Option<&str>, message: String) -> Outcome {
    Outcome {
        kind: Kind::BadRequest,
        param: param.map(str::to_owned),
        message: Some(message),
        ..Outcome::default()
    }
}

/// A number as written, anything else by its type (client text is not
/// echoed).
fn shown(value: Json<'_>) -> String {
    match value.kind() {
        JsonKind::Number => value.text().to_owned(),
        other => other.name().to_owned(),
    }
}

#[cfg(test)]
mod tests;
