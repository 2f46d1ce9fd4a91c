//! The parser of the step grammar (`name` or `name:arg[:arg]`), checking
//! every argument against its bound; the steps themselves are documented in
//! `scenario`.

use std::time::Duration;

use super::names::{is_code_name, ErrorBodyFormat, ErrorFormat, NamedError, ReasoningField};
use super::scenario::{bad, Step, StepError, MAX_CHUNKS, MAX_DELAY_MS, MAX_OVERSIZED, MAX_REPEAT};

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
    let first = || {
        arg.filter(|a| !a.is_empty())
            .ok_or_else(|| bad(text, format!("'{name}' needs a count")))
    };
    // An optional count (`garbage[:AFTER]`), 0 when absent.
    let optional = |max| match (arg, arg2) {
        (None, _) => Ok(0),
        (Some(a), None) => count(text, a, max),
        (Some(_), Some(_)) => Err(bad(text, format!("'{name}' takes at most one argument"))),
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
        "short_data" => none(Step::ShortData),
        "empty_vector" => none(Step::EmptyVector),
        "pending" => none(Step::Pending),
        "cut_body" => none(Step::CutBody),
        "drop_after_headers" => none(Step::DropAfterHeaders),
        "nodone" | "no_done" => none(Step::NoDone),
        "malformed" => none(Step::Malformed),
        "error_event" => none(Step::ErrorEvent),
        "json_for_stream" => none(Step::JsonForStream),
        "gzip" => none(Step::Gzip),
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
        "error_body" => match (arg, arg2) {
            (None, _) | (Some("openai"), None) => Ok(Step::ErrorBody(ErrorBodyFormat::OpenAi)),
            (Some("code"), None) => Ok(Step::ErrorBody(ErrorBodyFormat::Code)),
            (Some(code), None) if is_code_name(code) => {
                Ok(Step::ErrorBody(ErrorBodyFormat::Named(code.to_owned())))
            }
            _ => Err(bad(
                text,
                "the format of error_body is openai, code, or a code name of [a-z0-9_]",
            )),
        },
        "failed" => {
            let code = one()?;
            if is_code_name(code) {
                Ok(Step::Failed(code.to_owned()))
            } else {
                Err(bad(text, "the code of failed is a name of [a-z0-9_]"))
            }
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
        "retry_after_5xx" => match (arg, arg2) {
            (Some(v), None) if is_number(v) => Ok(Step::RetryAfter5xx(v.to_owned())),
            _ => Err(bad(text, "retry_after_5xx needs a number of seconds")),
        },
        "ratelimit_reset" => {
            let value = one()?;
            if value.bytes().all(|b| b.is_ascii_graphic()) {
                Ok(Step::RatelimitReset(value.to_owned()))
            } else {
                Err(bad(text, "the reset value must be printable ASCII"))
            }
        }
        "finish" => Ok(Step::Finish(one()?.to_owned())),
        "reasoning" => {
            let n = count(text, first()?, MAX_CHUNKS)?;
            let field = match arg2 {
                None => ReasoningField::ReasoningContent,
                Some(f) => ReasoningField::from_name(f).ok_or_else(|| {
                    bad(
                        text,
                        "the field of reasoning is reasoning_content or reasoning",
                    )
                })?,
            };
            Ok(Step::Reasoning { n, field })
        }
        "oversized" => {
            let bytes = count(text, first()?, MAX_OVERSIZED)?;
            let after = match arg2 {
                None => 0,
                Some(a) => count(text, a, MAX_CHUNKS)?,
            };
            Ok(Step::Oversized { bytes, after })
        }
        "cut" => Ok(Step::Cut(count(text, one()?, MAX_CHUNKS)?)),
        "error_after" => Ok(Step::ErrorAfter(count(text, one()?, MAX_CHUNKS)?)),
        "garbage" => Ok(Step::Garbage(optional(MAX_CHUNKS)?)),
        "role_only" => Ok(Step::RoleOnly(count(text, one()?, MAX_REPEAT)?)),
        "keepalive" => Ok(Step::Keepalive(count(text, one()?, MAX_REPEAT)?)),
        "hold" => Ok(Step::Hold(millis(text, one()?)?)),
        "first_token" => Ok(Step::FirstToken(millis(text, one()?)?)),
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
pub fn parse_millis(arg: &str) -> Option<Duration> {
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
