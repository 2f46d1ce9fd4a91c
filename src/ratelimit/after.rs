//! How long an upstream answer asks us to wait before the next attempt.
//!
//! A pure function of the response headers and the current time, read by
//! `classify` (which stores the result in `Outcome::retry_after`) and, through
//! it, by the retry decision and the client's `retry-after` header; the
//! pacer reads one reset header at a time through [`reset_of`]. Sources, in
//! order of precedence:
//!
//! 1. `retry-after-ms`: milliseconds, possibly fractional (OpenAI, Azure);
//! 2. `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3);
//! 3. the longer of `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`:
//!    a Go duration (`6m0s`, `20ms`, `1h2m3.5s`) as OpenAI sends, or a bare
//!    number of seconds — or, above 10⁹, a Unix timestamp (above 10¹², in
//!    milliseconds).
//!
//! A header whose value does not parse is skipped (the next source is tried);
//! nothing here panics or overflows. Times in the past are a zero wait.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderMap;

/// A bare number above this is a Unix timestamp in seconds, not a delay.
const EPOCH_SECONDS_THRESHOLD: u128 = 1_000_000_000;
/// A bare number above this is a Unix timestamp in milliseconds.
const EPOCH_MILLIS_THRESHOLD: u128 = 1_000_000_000_000;

const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MILLI: u128 = 1_000_000;

/// The wait the answer asks for, from the first source that parses:
/// `retry-after-ms`, then `Retry-After`, then the `x-ratelimit-reset-*`
/// headers. `None` when no header says anything usable.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    explicit(headers, now).or_else(|| ratelimit_reset(headers, now))
}

/// Only the headers that explicitly ask for a wait (`retry-after-ms`,
/// `Retry-After`). The `x-ratelimit-reset-*` headers ride on every OpenAI
/// answer, successes included, and say when a bucket refills, not that the
/// client must wait: callers use this for answers that are not rate limits.
pub fn explicit(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    header(headers, "retry-after-ms")
        .and_then(|v| decimal_nanos(v, NANOS_PER_MILLI))
        .and_then(from_nanos)
        .or_else(|| header(headers, "retry-after").and_then(|v| parse_retry_after(v, now)))
}

/// The longer of `x-ratelimit-reset-requests` and `x-ratelimit-reset-tokens`
/// (the ones that parse).
pub fn ratelimit_reset(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .into_iter()
        .filter_map(|name| header(headers, name).and_then(|v| parse_reset(v, now)))
        .max()
}

/// The wait one `x-ratelimit-reset-*` header announces, in any form this
/// module reads (Go duration, seconds, Unix timestamp).
pub fn reset_of(headers: &HeaderMap, name: &str, now: SystemTime) -> Option<Duration> {
    header(headers, name).and_then(|v| parse_reset(v, now))
}

/// The most the gateway ever tells a client to wait, in seconds.
pub const CLIENT_RETRY_AFTER_MAX_SECS: u64 = 60;
/// The least: a `retry-after: 0` invites a hot loop.
pub const CLIENT_RETRY_AFTER_MIN_SECS: u64 = 1;

/// The `retry-after` value (whole seconds) for a client asked to wait `wait`:
/// rounded up, clamped to `[1, 60]` (CONTRACT.md §3: never `0`, never above
/// 60 s).
pub fn client_retry_after(wait: Duration) -> u64 {
    let secs = wait
        .as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0));
    secs.clamp(CLIENT_RETRY_AFTER_MIN_SECS, CLIENT_RETRY_AFTER_MAX_SECS)
}

/// A header's value as trimmed text, when it is UTF-8 (not only ASCII: Go
/// spells microseconds `µs`).
fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .map(str::trim)
}

/// `Retry-After`: delta-seconds (a fraction is tolerated) or an HTTP-date.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Some(nanos) = decimal_nanos(value, NANOS_PER_SEC) {
        return from_nanos(nanos);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(until(at, now))
}

/// `x-ratelimit-reset-*`: a bare number (seconds, or a Unix timestamp when
/// large) or a Go duration.
fn parse_reset(value: &str, now: SystemTime) -> Option<Duration> {
    match decimal_nanos(value, NANOS_PER_SEC) {
        Some(nanos) if nanos > EPOCH_MILLIS_THRESHOLD * NANOS_PER_SEC => {
            let at = UNIX_EPOCH.checked_add(from_nanos(nanos / 1000)?)?;
            Some(until(at, now))
        }
        Some(nanos) if nanos > EPOCH_SECONDS_THRESHOLD * NANOS_PER_SEC => {
            let at = UNIX_EPOCH.checked_add(from_nanos(nanos)?)?;
            Some(until(at, now))
        }
        Some(nanos) => from_nanos(nanos),
        None => go_duration(value),
    }
}

/// The time from `now` until `at`; zero when `at` is past.
fn until(at: SystemTime, now: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

/// A Go `time.Duration` string: one or more `<decimal><unit>` with units
/// `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`; a lone `0` is zero. No sign allowed
/// (a negative wait means nothing).
fn go_duration(value: &str) -> Option<Duration> {
    if value == "0" {
        return Some(Duration::ZERO);
    }
    let is_number = |c: char| c.is_ascii_digit() || c == '.';
    let mut rest = value;
    let mut total: u128 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !is_number(c)).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after.find(is_number).unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_nanos = match unit {
            "h" => 3600 * NANOS_PER_SEC,
            "m" => 60 * NANOS_PER_SEC,
            "s" => NANOS_PER_SEC,
            "ms" => NANOS_PER_MILLI,
            "us" | "µs" | "μs" => 1_000,
            "ns" => 1,
            _ => return None,
        };
        total = total.checked_add(decimal_nanos(number, unit_nanos)?)?;
        rest = next;
    }
    from_nanos(total)
}

/// An unsigned decimal (`12`, `0.5`, `.5`, `3.`) times `unit_nanos`, in whole
/// nanoseconds (digits beyond nanosecond precision are dropped). `None` for
/// anything else, or on overflow.
fn decimal_nanos(text: &str, unit_nanos: u128) -> Option<u128> {
    let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return None;
    }
    let mut nanos: u128 = 0;
    for digit in int_part.bytes() {
        nanos = nanos
            .checked_mul(10)?
            .checked_add(u128::from(digit - b'0'))?;
    }
    nanos = nanos.checked_mul(unit_nanos)?;
    // Fractional digits: value = Σ dᵢ·unit/10ⁱ, accumulated exactly up to 19
    // digits (10¹⁹·unit still fits a u128 for every unit above).
    let mut scale: u128 = 1;
    let mut frac: u128 = 0;
    for digit in frac_part.bytes().take(19) {
        scale *= 10;
        frac = frac * 10 + u128::from(digit - b'0');
    }
    nanos.checked_add(frac.checked_mul(unit_nanos)? / scale)
}

/// Nanoseconds into a `Duration`, `None` beyond what one holds.
fn from_nanos(nanos: u128) -> Option<Duration> {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).ok()?;
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).ok()?;
    Some(Duration::new(secs, subsec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    /// 2022-01-01T00:00:00Z, the timestamp in seeds/004's example.
    const SEED_EPOCH: u64 = 1_640_995_200;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(SEED_EPOCH - 100)
    }

    type Pairs = &'static [(&'static str, &'static str)];

    fn headers(pairs: Pairs) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let value = HeaderValue::from_bytes(value.as_bytes()).expect("valid header value");
            map.append(*name, value);
        }
        map
    }

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn each_header_form_parses_to_its_exact_wait() {
        let cases: &[(Pairs, Option<Duration>)] = &[
            (&[], None),
            // retry-after-ms: float milliseconds
            (&[("retry-after-ms", "1500")], ms(1500)),
            (
                &[("retry-after-ms", "20.5")],
                Some(Duration::from_micros(20_500)),
            ),
            (&[("retry-after-ms", "0")], ms(0)),
            // Retry-After: delta-seconds
            (&[("retry-after", "60")], ms(60_000)),
            (&[("retry-after", " 7 ")], ms(7_000)),
            (&[("retry-after", "0.5")], ms(500)),
            (&[("retry-after", "0")], ms(0)),
            // Retry-After: HTTP-date, relative to now
            (
                &[("retry-after", "Sat, 01 Jan 2022 00:00:00 GMT")],
                ms(100_000),
            ),
            (&[("retry-after", "Fri, 31 Dec 2021 23:00:00 GMT")], ms(0)),
            // x-ratelimit-reset-*: Go durations
            (&[("x-ratelimit-reset-requests", "1s")], ms(1_000)),
            (&[("x-ratelimit-reset-requests", "6m0s")], ms(360_000)),
            (&[("x-ratelimit-reset-tokens", "20ms")], ms(20)),
            (&[("x-ratelimit-reset-tokens", "1h2m3.5s")], ms(3_723_500)),
            (&[("x-ratelimit-reset-tokens", "0.5s")], ms(500)),
            (
                &[("x-ratelimit-reset-tokens", "1.5us")],
                Some(Duration::from_nanos(1_500)),
            ),
            (
                &[("x-ratelimit-reset-tokens", "3µs250ns")],
                Some(Duration::from_nanos(3_250)),
            ),
            (&[("x-ratelimit-reset-tokens", "0")], ms(0)),
            // x-ratelimit-reset-*: bare seconds, Unix timestamps
            (&[("x-ratelimit-reset-requests", "30")], ms(30_000)),
            (&[("x-ratelimit-reset-requests", "1.25")], ms(1_250)),
            (&[("x-ratelimit-reset-requests", "1640995200")], ms(100_000)),
            (
                &[("x-ratelimit-reset-requests", "1640995200000")],
                ms(100_000),
            ),
            (&[("x-ratelimit-reset-requests", "1600000000")], ms(0)),
            // the max of both reset headers
            (
                &[
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-reset-tokens", "6m0s"),
                ],
                ms(360_000),
            ),
            (
                &[
                    ("x-ratelimit-reset-requests", "45"),
                    ("x-ratelimit-reset-tokens", "2s"),
                ],
                ms(45_000),
            ),
        ];
        for (pairs, expected) in cases {
            assert_eq!(retry_after(&headers(pairs), now()), *expected, "{pairs:?}");
        }
    }

    #[test]
    fn precedence_is_ms_then_retry_after_then_reset() {
        let all = headers(&[
            ("retry-after-ms", "250"),
            ("retry-after", "3"),
            ("x-ratelimit-reset-requests", "9s"),
        ]);
        assert_eq!(retry_after(&all, now()), ms(250));
        let no_ms = headers(&[("retry-after", "3"), ("x-ratelimit-reset-requests", "9s")]);
        assert_eq!(retry_after(&no_ms, now()), ms(3_000));
        // The seeds/004 answer: Retry-After wins over the (past) reset stamp.
        let seed = headers(&[
            ("x-ratelimit-reset-requests", "1640995200"),
            ("retry-after", "60"),
        ]);
        assert_eq!(retry_after(&seed, now()), ms(60_000));
    }

    #[test]
    fn explicit_ignores_the_reset_headers() {
        let reset_only = headers(&[("x-ratelimit-reset-tokens", "6m0s")]);
        assert_eq!(explicit(&reset_only, now()), None);
        assert_eq!(ratelimit_reset(&reset_only, now()), ms(360_000));
    }

    #[test]
    fn garbage_is_none_or_falls_through_never_panics() {
        let garbage = [
            "",
            " ",
            "-1",
            "-1s",
            "abc",
            "1x",
            "s",
            "1.2.3s",
            "1e3",
            "NaN",
            "inf",
            "1 s",
            "..",
            "99999999999999999999999999999999999999999999",
            "999999999999999999999h",
            "Sun, 99 Foo 2022 25:61:61 GMT",
        ];
        for value in garbage {
            let v = HeaderValue::from_str(value).expect("valid header value");
            for name in [
                "retry-after-ms",
                "retry-after",
                "x-ratelimit-reset-requests",
                "x-ratelimit-reset-tokens",
            ] {
                let mut map = HeaderMap::new();
                map.insert(name, v.clone());
                assert_eq!(retry_after(&map, now()), None, "{name}: {value:?}");
            }
        }
        // A garbage source is skipped, the next one is used.
        let fall_through = headers(&[("retry-after-ms", "soon"), ("retry-after", "2")]);
        assert_eq!(retry_after(&fall_through, now()), ms(2_000));
        // Non-ASCII bytes in a value are skipped too.
        let mut opaque = HeaderMap::new();
        opaque.insert(
            "retry-after",
            HeaderValue::from_bytes(b"\xff\xfe").expect("opaque bytes are allowed"),
        );
        assert_eq!(retry_after(&opaque, now()), None);
    }

    #[test]
    fn fractions_are_exact_not_floating_point() {
        assert_eq!(decimal_nanos("0.3", NANOS_PER_SEC), Some(300_000_000));
        assert_eq!(decimal_nanos(".5", NANOS_PER_SEC), Some(500_000_000));
        assert_eq!(decimal_nanos("3.", NANOS_PER_SEC), Some(3_000_000_000));
        assert_eq!(decimal_nanos("0.0000000019", NANOS_PER_SEC), Some(1));
        assert_eq!(decimal_nanos("1.123456789123456789123", 1), Some(1));
    }

    #[test]
    fn client_retry_after_rounds_up_and_clamps() {
        const MS: fn(u64) -> Duration = Duration::from_millis;
        let cases = [
            (Duration::ZERO, 1),
            (Duration::from_nanos(1), 1),
            (MS(999), 1),
            (MS(1000), 1),
            (MS(1001), 2),
            (MS(1500), 2),
            (MS(20_000), 20),
            (MS(59_001), 60),
            (MS(60_000), 60),
            (MS(61_000), 60),
            (Duration::from_secs(86_400), 60),
            (Duration::MAX, 60),
        ];
        for (wait, expected) in cases {
            assert_eq!(client_retry_after(wait), expected, "{wait:?}");
        }
    }
}
