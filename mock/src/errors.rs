//! Error answers of the mock, as pure data: `status:CODE[:FORMAT]` bodies,
//! the provider rows of the seeds (`error:NAME`, each body exactly as the
//! seeds show it), rate-limit steps, redirects and HTML pages. `respond`
//! turns an [`ErrorReply`] into a response.

use std::borrow::Cow;

use http::StatusCode;

use super::body::{HTML, JSON, TEXT};
use super::scenario::{ErrorBodyFormat, ErrorFormat, NamedError};

/// A fully described error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The HTTP status.
    pub status: u16,
    /// `None` for no body at all.
    pub content_type: Option<&'static str>,
    /// The body text.
    pub body: Cow<'static, str>,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
}

impl ErrorReply {
    fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, str>>,
    ) -> ErrorReply {
        ErrorReply {
            status,
            content_type: Some(content_type),
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> ErrorReply {
        self.headers.push((name, value.into()));
        self
    }
}

/// The reason phrase of a status, or `Error` for one without.
fn reason(code: u16) -> &'static str {
    match code {
        520 => "Web Server Returned an Unknown Error",
        521 => "Web Server Is Down",
        522 => "Connection Timed Out",
        523 => "Origin Is Unreachable",
        524 => "A Timeout Occurred",
        _ => StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error"),
    }
}

/// The machine code of a status: its reason phrase in snake case.
fn snake_code(code: u16) -> String {
    reason(code)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect::<String>()
        .replace("__", "_")
}

/// The OpenAI error `type` that goes with a status.
fn openai_type(code: u16) -> &'static str {
    match code {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        400..=499 => "invalid_request_error",
        500..=999 => "server_error",
        _ => "api_error",
    }
}

/// An nginx-style HTML error page.
pub fn html_page(code: u16) -> String {
    let title = format!("{code} {}", reason(code));
    format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// `status:CODE[:FORMAT]`; `n` is the request's sequence number.
pub fn status(code: u16, format: ErrorFormat, n: u64) -> ErrorReply {
    match format {
        ErrorFormat::OpenAi => ErrorReply::new(
            code,
            JSON,
            format!(
                r#"{{"error":{{"message":"mock error {code}","type":"{}","param":null,"code":"{}"}}}}"#,
                openai_type(code),
                snake_code(code)
            ),
        ),
        ErrorFormat::Comet => {
            ErrorReply::new(code, JSON, comet(&format!("mock error {code}"), "", n))
        }
        ErrorFormat::Code => ErrorReply::new(
            code,
            JSON,
            format!(
                r#"{{"code":"{}","message":"mock error {code}","data":null}}"#,
                snake_code(code)
            ),
        ),
        ErrorFormat::Html => ErrorReply::new(code, HTML, html_page(code)),
        ErrorFormat::Empty => ErrorReply {
            status: code,
            content_type: None,
            body: Cow::Borrowed(""),
            headers: Vec::new(),
        },
        ErrorFormat::Text => ErrorReply::new(code, TEXT, format!("mock error {code}")),
    }
}

fn comet(message: &str, code: &str, n: u64) -> String {
    format!(
        r#"{{"error":{{"message":"{message} (request id: mock-{n})","type":"comet_api_error","param":"","code":"{code}"}}}}"#
    )
}

fn openai(message: &str, kind: &str, param: Option<&str>, code: &str) -> String {
    let param = param.map_or_else(|| "null".to_owned(), |p| format!("\"{p}\""));
    let message = quoted(message);
    format!(
        r#"{{"error":{{"message":{message},"type":"{kind}","param":{param},"code":"{code}"}}}}"#
    )
}

/// A JSON string literal (quotes included) of any text.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

const CLOUDFLARE_524: &str = "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head><title>api.example.invalid | 524: A timeout occurred</title></head>\n<body>\n<h1>Error 524</h1>\n<h2>A timeout occurred</h2>\n<p>The origin web server timed out responding to this request.</p>\n<p>Cloudflare Ray ID: 0000000000000000</p>\n</body>\n</html>\n";

/// `error:NAME`: `n` is the request's sequence number, `model` the
/// request's model, `task` the task id in the path (if any).
pub fn named(e: NamedError, n: u64, model: &str, task: &str) -> ErrorReply {
    let code_format = |status: u16, code: &str, message: &str| {
        ErrorReply::new(
            status,
            JSON,
            format!(
                r#"{{"code":"{code}","message":{},"data":null}}"#,
                quoted(message)
            ),
        )
    };
    match e {
        NamedError::InvalidApiKey => code_format(401, "invalid_api_key", "Invalid API key provided"),
        NamedError::ExpiredApiKey => {
            ErrorReply::new(401, JSON, openai("API Key expired", "authentication_error", None, "expired_api_key"))
        }
        NamedError::RevokedApiKey => {
            ErrorReply::new(401, JSON, openai("API Key revoked", "authentication_error", None, "revoked_api_key"))
        }
        NamedError::InvalidToken => ErrorReply::new(
            401,
            JSON,
            format!(r#"{{"error":{{"code":"","message":"invalid token (request id: mock-{n})","type":"comet_api_error"}}}}"#),
        ),
        NamedError::Forbidden => ErrorReply::new(403, JSON, comet("request blocked by WAF", "", n)),
        NamedError::QuotaNotEnough => code_format(403, "quota_not_enough", "user quota is not enough"),
        NamedError::ModelNotFound => code_format(404, "model_not_found", &format!("model '{model}' not found")),
        NamedError::TaskNotFound => code_format(404, "task_not_found", &format!("Task with id '{task}' not found")),
        NamedError::TaskNotExist => task_not_exist(),
        NamedError::MissingModel => ErrorReply::new(
            400,
            JSON,
            openai("model is required", "invalid_request_error", Some("model"), "missing_required_field"),
        ),
        NamedError::InvalidValue => {
            ErrorReply::new(400, JSON, openai("Parameter value invalid", "invalid_request_error", None, "invalid_value"))
        }
        NamedError::ModelNotSupported => {
            ErrorReply::new(400, JSON, openai("Unsupported model", "invalid_request_error", None, "model_not_supported"))
        }
        NamedError::ContextLengthExceeded => ErrorReply::new(
            400,
            JSON,
            openai(
                "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens. Please reduce the length of the messages.",
                "invalid_request_error",
                Some("messages"),
                "context_length_exceeded",
            ),
        ),
        NamedError::InvalidRequest500 => {
            ErrorReply::new(500, JSON, comet("field messages is required", "invalid_request", n))
        }
        NamedError::RateLimitExceeded => ErrorReply::new(
            429,
            JSON,
            r#"{"code":"rate_limit_exceeded","message":"Rate limit exceeded. Please try again later.","data":{"retry_after":1}}"#,
        )
        .header("retry-after", "1")
        .header("x-ratelimit-limit-requests", "60")
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", "1s"),
        NamedError::ConcurrentLimitExceeded => ErrorReply::new(
            429,
            JSON,
            openai("Concurrent limit exceeded", "rate_limit_error", None, "concurrent_limit_exceeded"),
        ),
        NamedError::InsufficientQuota => ErrorReply::new(
            429,
            JSON,
            openai(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                None,
                "insufficient_quota",
            ),
        ),
        NamedError::ContentFiltered => ErrorReply::new(
            400,
            JSON,
            r#"{"code":"content_filtered","message":"Your request was rejected due to content policy","data":{"reason":"inappropriate_content"}}"#,
        ),
        NamedError::InternalError => {
            ErrorReply::new(500, JSON, openai("Internal error", "server_error", None, "internal_error"))
        }
        NamedError::ServiceUnavailable => {
            ErrorReply::new(503, JSON, openai("Service unavailable", "server_error", None, "service_unavailable"))
        }
        NamedError::BadGateway => ErrorReply::new(
            502,
            JSON,
            openai("Upstream service temporarily unavailable", "server_error", None, "bad_gateway"),
        ),
        NamedError::GatewayTimeout => {
            ErrorReply::new(504, JSON, openai("Gateway timeout", "server_error", None, "gateway_timeout"))
        }
        NamedError::Cloudflare524 => ErrorReply::new(524, HTML, CLOUDFLARE_524),
        NamedError::PayloadTooLarge => ErrorReply::new(413, HTML, html_page(413)),
    }
}

/// 404 `task_not_exist` (a video task polled too early).
pub fn task_not_exist() -> ErrorReply {
    ErrorReply::new(
        404,
        JSON,
        r#"{"code":"task_not_exist","message":"task not exist","data":null}"#,
    )
}

fn rate_limited(message: &str) -> ErrorReply {
    ErrorReply::new(
        429,
        JSON,
        openai(message, "requests", None, "rate_limit_exceeded"),
    )
}

/// `retry_after:SECS[:ms]`.
pub fn retry_after(value: &str, ms: bool) -> ErrorReply {
    let unit = if ms { "ms" } else { "s" };
    let reply = rate_limited(&format!(
        "Rate limit reached. Please try again in {value}{unit}."
    ));
    if ms {
        reply.header("retry-after-ms", value)
    } else {
        reply.header("retry-after", value)
    }
}

/// `retry_after_5xx:SECS`: 503 with `Retry-After`.
pub fn retry_after_5xx(value: &str) -> ErrorReply {
    ErrorReply::new(
        503,
        JSON,
        openai(
            &format!("Service unavailable. Please try again in {value}s."),
            "server_error",
            None,
            "service_unavailable",
        ),
    )
    .header("retry-after", value)
}

/// `error_body[:FORMAT]`: a 200 whose whole body is an error object.
pub fn error_body(format: &ErrorBodyFormat) -> ErrorReply {
    const MESSAGE: &str = "mock error in a 200";
    let body = match format {
        ErrorBodyFormat::OpenAi => format!(
            r#"{{"error":{{"message":"{MESSAGE}","type":"server_error","code":"server_error"}}}}"#
        ),
        ErrorBodyFormat::Code => {
            format!(r#"{{"code":"server_error","message":"{MESSAGE}","data":null}}"#)
        }
        ErrorBodyFormat::Named(code) => format!(
            r#"{{"error":{{"message":"{MESSAGE}","type":{0},"code":{0}}}}}"#,
            quoted(code)
        ),
    };
    ErrorReply::new(200, JSON, body)
}

/// 404 for a response id the mock never created (OpenAI's wording).
pub fn response_not_found(id: &str) -> ErrorReply {
    ErrorReply::new(
        404,
        JSON,
        format!(
            r#"{{"error":{{"message":{},"type":"invalid_request_error","param":null,"code":null}}}}"#,
            quoted(&format!("Response with id '{id}' not found."))
        ),
    )
}

/// `ratelimit_reset:VALUE`.
pub fn ratelimit_reset(value: &str) -> ErrorReply {
    rate_limited(&format!("Rate limit reached. Limit resets in {value}."))
        .header("x-ratelimit-limit-requests", "60")
        .header("x-ratelimit-remaining-requests", "0")
        .header("x-ratelimit-reset-requests", value)
}

/// `redirect`: where a wrong base URL typically lands.
pub fn redirect(path_and_query: &str) -> ErrorReply {
    ErrorReply::new(301, HTML, html_page(301)).header(
        "location",
        format!("https://example.invalid{path_and_query}"),
    )
}

/// `html`: a 200 web page where JSON was due.
pub fn html() -> ErrorReply {
    ErrorReply::new(
        200,
        HTML,
        "<!doctype html>\n<html><head><title>Console</title></head><body><h1>Welcome</h1><p>Sign in to continue.</p></body></html>\n",
    )
}

/// A `/v1` path the mock does not serve (OpenAI's own wording).
pub fn unknown_url(method: &str, path: &str) -> ErrorReply {
    ErrorReply::new(
        404,
        JSON,
        openai(
            &format!("Invalid URL ({method} {path})"),
            "invalid_request_error",
            None,
            "unknown_url",
        ),
    )
}

/// A step or header the mock could not read.
pub fn bad_directive(header: &str, reason: &str) -> ErrorReply {
    ErrorReply::new(
        400,
        JSON,
        format!(
            r#"{{"error":{{"message":{},"type":"invalid_request_error","param":{},"code":"mock_bad_directive"}}}}"#,
            quoted(&format!("backstop-mock: {reason}")),
            quoted(header)
        ),
    )
}

#[cfg(test)]
mod tests;
