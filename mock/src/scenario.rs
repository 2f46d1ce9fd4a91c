//! The step grammar of the chaos upstream: what one request is told to do
//! (`x-mock-scenario: STEP[,STEP...]`, `--mix STEP=WEIGHT,...`). Pure
//! parsing and selection only (the `--mix` draw is in `mix`); `respond`
//! carries the chosen step out.

use std::time::Duration;

/// The longest delay a step or header may ask for (one day): beyond it a
/// value is a typo, not a scenario.
pub const MAX_DELAY_MS: u64 = 86_400_000;

/// The most stream content chunks a step or header may ask for.
pub const MAX_CHUNKS: usize = 100_000;

/// The body format of a `status:CODE[:FORMAT]` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorFormat {
    /// `{"error":{"message","type","param":null,"code"}}` (the default).
    OpenAi,
    /// CometAPI's envelope: `type` `comet_api_error`, the request id in the message.
    Comet,
    /// `{"code","message","data":null}`.
    Code,
    /// An nginx-style `text/html` page.
    Html,
    /// No body at all.
    Empty,
    /// `text/plain`.
    Text,
}

impl ErrorFormat {
    fn from_name(name: &str) -> Option<ErrorFormat> {
        Some(match name {
            "openai" => ErrorFormat::OpenAi,
            "comet" => ErrorFormat::Comet,
            "code" => ErrorFormat::Code,
            "html" => ErrorFormat::Html,
            "empty" => ErrorFormat::Empty,
            "text" => ErrorFormat::Text,
            _ => return None,
        })
    }
}

/// A provider error row from the seeds (`error:NAME`); `errors::named`
/// holds each one's exact status, headers and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedError {
    InvalidApiKey,
    ExpiredApiKey,
    RevokedApiKey,
    InvalidToken,
    Forbidden,
    QuotaNotEnough,
    ModelNotFound,
    TaskNotFound,
    TaskNotExist,
    MissingModel,
    InvalidValue,
    ModelNotSupported,
    ContextLengthExceeded,
    InvalidRequest500,
    RateLimitExceeded,
    ConcurrentLimitExceeded,
    InsufficientQuota,
    ContentFiltered,
    InternalError,
    ServiceUnavailable,
    BadGateway,
    GatewayTimeout,
    Cloudflare524,
    PayloadTooLarge,
}

impl NamedError {
    /// Every row, in the order of the brief.
    pub const ALL: [NamedError; 24] = [
        NamedError::InvalidApiKey,
        NamedError::ExpiredApiKey,
        NamedError::RevokedApiKey,
        NamedError::InvalidToken,
        NamedError::Forbidden,
        NamedError::QuotaNotEnough,
        NamedError::ModelNotFound,
        NamedError::TaskNotFound,
        NamedError::TaskNotExist,
        NamedError::MissingModel,
        NamedError::InvalidValue,
        NamedError::ModelNotSupported,
        NamedError::ContextLengthExceeded,
        NamedError::InvalidRequest500,
        NamedError::RateLimitExceeded,
        NamedError::ConcurrentLimitExceeded,
        NamedError::InsufficientQuota,
        NamedError::ContentFiltered,
        NamedError::InternalError,
        NamedError::ServiceUnavailable,
        NamedError::BadGateway,
        NamedError::GatewayTimeout,
        NamedError::Cloudflare524,
        NamedError::PayloadTooLarge,
    ];

    /// The name used after `error:`.
    pub fn name(self) -> &'static str {
        match self {
            NamedError::InvalidApiKey => "invalid_api_key",
            NamedError::ExpiredApiKey => "expired_api_key",
            NamedError::RevokedApiKey => "revoked_api_key",
            NamedError::InvalidToken => "invalid_token",
            NamedError::Forbidden => "forbidden",
            NamedError::QuotaNotEnough => "quota_not_enough",
            NamedError::ModelNotFound => "model_not_found",
            NamedError::TaskNotFound => "task_not_found",
            NamedError::TaskNotExist => "task_not_exist",
            NamedError::MissingModel => "missing_model",
            NamedError::InvalidValue => "invalid_value",
            NamedError::ModelNotSupported => "model_not_supported",
            NamedError::ContextLengthExceeded => "context_length_exceeded",
            NamedError::InvalidRequest500 => "invalid_request_500",
            NamedError::RateLimitExceeded => "rate_limit_exceeded",
            NamedError::ConcurrentLimitExceeded => "concurrent_limit_exceeded",
            NamedError::InsufficientQuota => "insufficient_quota",
            NamedError::ContentFiltered => "content_filtered",
            NamedError::InternalError => "internal_error",
            NamedError::ServiceUnavailable => "service_unavailable",
            NamedError::BadGateway => "bad_gateway",
            NamedError::GatewayTimeout => "gateway_timeout",
            NamedError::Cloudflare524 => "cloudflare_524",
            NamedError::PayloadTooLarge => "payload_too_large",
        }
    }

    fn from_name(name: &str) -> Option<NamedError> {
        NamedError::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One scripted behaviour for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// 200 success for the route (a stream when the body asks for one).
    Ok,
    /// `status:CODE[:FORMAT]`.
    Status { code: u16, format: ErrorFormat },
    /// `error:NAME`.
    Error(NamedError),
    /// `retry_after:SECS[:ms]`: 429 with `Retry-After` (or `retry-after-ms`).
    RetryAfter { value: String, ms: bool },
    /// `ratelimit_reset:VALUE`: 429 with `x-ratelimit-reset-requests`.
    RatelimitReset(String),
    /// 301 to `https://example.invalid/...` with a small HTML body.
    Redirect,
    /// 200 `text/html` page.
    Html,
    /// `finish:REASON`: 200 with that `finish_reason`.
    Finish(String),
    /// stop, content null.
    Empty,
    /// stop, content `"   "`.
    Blank,
    /// content `{"answer": 42}`.
    Json,
    /// content `Sure! {"answer": 4`.
    BadJson,
    /// content `{"answer": "forty-two"}`.
    SchemaBad,
    /// finish `tool_calls` with arguments `{"city": `.
    BadArgs,
    /// images: `{"created":..,"data":[]}`.
    EmptyData,
    /// `cut:N`: N content chunks, then the connection is dropped.
    Cut(usize),
    /// A complete stream without `data: [DONE]`.
    NoDone,
    /// One `data: {not json` event among the content.
    Malformed,
    /// A 200 stream whose first event is an error, then the end.
    ErrorEvent,
    /// `stall:MS`: the first content chunk, then silence for MS.
    Stall(Duration),
    /// `slow:MS`: wait MS before the headers, then `ok`.
    Slow(Duration),
    /// Never answer.
    Hang,
    /// Close the connection without any response.
    Reset,
    /// Video poll: `{"status":"failed"}` without an error.
    VideoFailed,
    /// `task_not_exist:N`: the first N polls of a video answer 404 `task_not_exist`.
    TaskNotExist(u32),
}

/// The `ok` step, for callers that need a `&'static Step`.
pub static OK: Step = Step::Ok;

/// A step (or a header) that could not be parsed; it becomes a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad step '{step}': {reason}")]
pub struct StepError {
    /// The offending step text.
    pub step: String,
    /// Why it was refused.
    pub reason: String,
}

pub(crate) fn bad(step: &str, reason: impl Into<String>) -> StepError {
    StepError {
        step: step.to_owned(),
        reason: reason.into(),
    }
}

/// Parses one step (`name` or `name:arg[:arg]`).
pub fn parse_step(text: &str) -> Result<Step, StepError> {
    let text = text.trim();
    let mut parts = text.splitn(3, ':');
    let name = parts.next().unwrap_or_default();
    let arg = parts.next();
    let arg2 = parts.next();
    let none = |step: Step| match (arg, arg2) {
        (None, _) => Ok(step),
        (Some(_), _) => Err(bad(text, format!("'{name}' takes no argument"))),
    };
    let one = || match (arg, arg2) {
        (Some(a), None) if !a.is_empty() => Ok(a),
        (None, _) | (Some(_), None) => Err(bad(text, format!("'{name}' needs one argument"))),
        (Some(_), Some(_)) => Err(bad(text, format!("'{name}' takes one argument"))),
    };
    match name {
        "ok" => none(Step::Ok),
        "redirect" => none(Step::Redirect),
        "html" => none(Step::Html),
        "empty" => none(Step::Empty),
        "blank" => none(Step::Blank),
        "json" => none(Step::Json),
        "bad_json" => none(Step::BadJson),
        "schema_bad" => none(Step::SchemaBad),
        "bad_args" => none(Step::BadArgs),
        "empty_data" => none(Step::EmptyData),
        "nodone" => none(Step::NoDone),
        "malformed" => none(Step::Malformed),
        "error_event" => none(Step::ErrorEvent),
        "hang" => none(Step::Hang),
        "reset" => none(Step::Reset),
        "video_failed" => none(Step::VideoFailed),
        "status" => {
            let code = match arg.map(str::parse::<u16>) {
                Some(Ok(code)) if (200..=999).contains(&code) => code,
                _ => return Err(bad(text, "status needs a code from 200 to 999")),
            };
            let format = match arg2 {
                None => ErrorFormat::OpenAi,
                Some(f) => ErrorFormat::from_name(f).ok_or_else(|| {
                    bad(
                        text,
                        "format must be openai, comet, code, html, empty or text",
                    )
                })?,
            };
            Ok(Step::Status { code, format })
        }
        "error" => {
            let name = one()?;
            NamedError::from_name(name)
                .map(Step::Error)
                .ok_or_else(|| bad(text, format!("unknown error name '{name}'")))
        }
        "retry_after" => {
            let value = match arg {
                Some(v) if is_number(v) => v.to_owned(),
                _ => return Err(bad(text, "retry_after needs a number of seconds")),
            };
            match arg2 {
                None => Ok(Step::RetryAfter { value, ms: false }),
                Some("ms") => Ok(Step::RetryAfter { value, ms: true }),
                Some(_) => Err(bad(
                    text,
                    "the second argument of retry_after can only be 'ms'",
                )),
            }
        }
        "ratelimit_reset" => {
            let value = one()?;
            if value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(Step::RatelimitReset(value.to_owned()))
            } else {
                Err(bad(text, "the reset value must be printable ASCII"))
            }
        }
        "finish" => Ok(Step::Finish(one()?.to_owned())),
        "cut" => Ok(Step::Cut(count(text, one()?, MAX_CHUNKS)?)),
        "stall" => Ok(Step::Stall(millis(text, one()?)?)),
        "slow" => Ok(Step::Slow(millis(text, one()?)?)),
        "task_not_exist" => match arg {
            None => Ok(Step::TaskNotExist(1)),
            Some(_) => Ok(Step::TaskNotExist(
                count(text, one()?, u32::MAX as usize)? as u32
            )),
        },
        "" => Err(bad(text, "empty step")),
        _ => Err(bad(text, format!("unknown step '{name}'"))),
    }
}

fn is_number(v: &str) -> bool {
    !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|b| *b == b'.').count() <= 1
        && v != "."
}

fn count(step: &str, arg: &str, max: usize) -> Result<usize, StepError> {
    match arg.parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(bad(step, format!("'{arg}' is not a count from 0 to {max}"))),
    }
}

/// Parses a millisecond count up to [`MAX_DELAY_MS`].
pub(crate) fn parse_millis(arg: &str) -> Option<Duration> {
    match arg.trim().parse::<u64>() {
        Ok(ms) if ms <= MAX_DELAY_MS => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

fn millis(step: &str, arg: &str) -> Result<Duration, StepError> {
    parse_millis(arg).ok_or_else(|| {
        bad(
            step,
            format!("'{arg}' is not a number of milliseconds up to {MAX_DELAY_MS}"),
        )
    })
}

/// Parses an `x-mock-scenario` value: steps separated by commas.
pub fn parse_sequence(value: &str) -> Result<Vec<Step>, StepError> {
    value.split(',').map(parse_step).collect()
}

/// The step for a request: the k-th request (1-based) with the same key
/// gets step `min(k, len)`; without a key (`None`) the first one.
pub fn select(sequence: &[Step], nth: Option<u64>) -> Option<&Step> {
    let last = sequence.len().checked_sub(1)?;
    let index = match nth {
        None | Some(0) => 0,
        Some(k) => usize::try_from(k - 1).map_or(last, |i| i.min(last)),
    };
    sequence.get(index)
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
