//! Reading and editing one member of a JSON text in place, without parsing
//! it into a tree: where a value lies (a byte range), and the text with one
//! string member replaced. For a body already known to be valid JSON — the
//! fallback target's `model` rewrite, Kling's status — this is a scan, not a
//! parse and a re-serialization of the whole.

use std::ops::Range;

use bytes::Bytes;

/// `body` with the top-level member `key` — a string — set to `value`,
/// everything else byte for byte as it was; `None` when `body` has no such
/// member (or is not an object).
pub fn with_string(body: &[u8], key: &str, value: &str) -> Option<Bytes> {
    let range = locate(body, &[], key)?;
    if body.get(range.start) != Some(&b'"') {
        return None;
    }
    let quoted = serde_json::to_string(value).ok()?;
    let mut out = Vec::with_capacity(body.len() - range.len() + quoted.len());
    out.extend_from_slice(&body[..range.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[range.end..]);
    Some(Bytes::from(out))
}

/// The byte range of the value of member `key` in the object reached by
/// `path` from the top of `body` (valid JSON). The last duplicate wins, as
/// in `serde_json`.
pub fn locate(body: &[u8], path: &[&str], key: &str) -> Option<Range<usize>> {
    let mut start = 0;
    for name in path {
        start = member(body, start, name)?.start;
    }
    member(body, start, key)
}

/// The value range of member `key` of the object that starts (after
/// whitespace) at `at`.
fn member(b: &[u8], at: usize, key: &str) -> Option<Range<usize>> {
    let mut i = skip_ws(b, at);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i += 1;
    let mut found = None;
    loop {
        i = skip_ws(b, i);
        if b.get(i)? != &b'"' {
            return None; // `}` of an empty object, or not JSON
        }
        let key_end = skip_string(b, i)?;
        let name = &b[i + 1..key_end - 1];
        i = skip_ws(b, key_end);
        if b.get(i)? != &b':' {
            return None;
        }
        let value_start = skip_ws(b, i + 1);
        let value_end = skip_value(b, value_start)?;
        if name == key.as_bytes() {
            found = Some(value_start..value_end);
        }
        i = skip_ws(b, value_end);
        match b.get(i)? {
            b',' => i += 1,
            b'}' => return found,
            _ => return None,
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b
        .get(i)
        .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
    {
        i += 1;
    }
    i
}

/// From the opening quote to just past the closing one.
fn skip_string(b: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match b.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// From the first byte of a value to just past it.
fn skip_value(b: &[u8], at: usize) -> Option<usize> {
    match b.get(at)? {
        b'"' => skip_string(b, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match b.get(i)? {
                    b'"' => {
                        i = skip_string(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = b[at..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(b.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_string_member_is_replaced_and_nothing_else_moves() {
        let rows = [
            (
                r#"{"model":"a","messages":[]}"#,
                Some(r#"{"model":"gpt-\"b\"","messages":[]}"#),
            ),
            (
                r#"{ "messages": [{"model": "inner"}], "model" : "a" }"#,
                Some(r#"{ "messages": [{"model": "inner"}], "model" : "gpt-\"b\"" }"#),
            ),
            // The last duplicate wins, as in serde_json.
            (
                r#"{"model":"x","model":"a"}"#,
                Some(r#"{"model":"x","model":"gpt-\"b\""}"#),
            ),
            (r#"{"messages":[]}"#, None),
            (r#"{"model":7}"#, None),
            (r#"["model"]"#, None),
        ];
        for (body, want) in rows {
            let got = with_string(body.as_bytes(), "model", "gpt-\"b\"");
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{body}");
        }
    }

    #[test]
    fn the_member_scanner_finds_values_and_tolerates_garbage() {
        let body = br#" { "a" : [1, {"b": "}"}], "b": {"c": true}, "b": 7 } "#;
        assert_eq!(
            member(body, 0, "a").map(|r| &body[r]),
            Some(&br#"[1, {"b": "}"}]"#[..])
        );
        assert_eq!(member(body, 0, "b").map(|r| &body[r]), Some(&b"7"[..]));
        assert_eq!(member(body, 0, "zz"), None);
        for garbage in [
            &b""[..],
            b"{",
            b"{\"a\"",
            b"{\"a\":",
            b"{\"a\":\"x",
            b"[1]",
            b"{\"a\":1 2}",
            b"{\"a\\",
        ] {
            assert_eq!(member(garbage, 0, "a"), None, "{garbage:?}");
        }
    }
}
