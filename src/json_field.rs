//! Reading and editing JSON text without parsing it into a tree: where a
//! member's value lies (a byte range), the text with one string member
//! replaced, and [`Json`], a borrowed view of a validated text that reads
//! members, array items, strings and numbers in place. The hot paths use it
//! — each SSE event, each whole answer, the fallback target's `model`
//! rewrite — where a `serde_json::Value` tree would allocate a string per
//! key and value.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;
use serde_json::value::RawValue;

/// A validated JSON value, read in place. Keys are matched as written (an
/// escaped key does not match its unescaped name); among duplicate keys
/// the last wins, as in `serde_json`.
#[derive(Debug, Clone, Copy)]
pub struct Json<'a>(&'a str);

impl<'a> Json<'a> {
    /// Validates `bytes` as one JSON value (UTF-8 included), without
    /// allocating.
    pub fn parse(bytes: &'a [u8]) -> Result<Json<'a>, serde_json::Error> {
        let raw: &'a RawValue = serde_json::from_slice(bytes)?;
        Ok(Json(raw.get()))
    }

    /// The text of the value.
    pub fn text(self) -> &'a str {
        self.0
    }

    fn first(self) -> Option<u8> {
        self.0.as_bytes().first().copied()
    }

    pub fn is_object(self) -> bool {
        self.first() == Some(b'{')
    }

    pub fn is_null(self) -> bool {
        self.0 == "null"
    }

    /// The values of the members `names`, in one pass (`None` for each when
    /// this is not an object).
    pub fn fields<const N: usize>(self, names: [&str; N]) -> [Option<Json<'a>>; N] {
        let mut out = [None; N];
        let b = self.0.as_bytes();
        let mut i = skip_ws(b, 0);
        if b.get(i) != Some(&b'{') {
            return out;
        }
        i += 1;
        loop {
            i = skip_ws(b, i);
            let Some(key_end) = (b.get(i) == Some(&b'"'))
                .then(|| skip_string(b, i))
                .flatten()
            else {
                return out;
            };
            let name = &b[i + 1..key_end - 1];
            i = skip_ws(b, key_end);
            if b.get(i) != Some(&b':') {
                return out;
            }
            let start = skip_ws(b, i + 1);
            let Some(end) = skip_value(b, start) else {
                return out;
            };
            if let Some(k) = names.iter().position(|n| n.as_bytes() == name) {
                out[k] = self.0.get(start..end).map(Json);
            }
            i = skip_ws(b, end);
            match b.get(i) {
                Some(b',') => i += 1,
                _ => return out,
            }
        }
    }

    /// One member's value.
    pub fn get(self, name: &str) -> Option<Json<'a>> {
        let [value] = self.fields([name]);
        value
    }

    /// The items of an array (none when this is not an array).
    pub fn items(self) -> Items<'a> {
        let b = self.0.as_bytes();
        let at = skip_ws(b, 0);
        Items {
            text: self.0,
            at: (b.get(at) == Some(&b'[')).then_some(at + 1),
        }
    }

    /// The string, borrowed when it has no escapes.
    pub fn as_str(self) -> Option<Cow<'a, str>> {
        let inner = self.0.strip_prefix('"')?.strip_suffix('"')?;
        if !inner.contains('\\') {
            return Some(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(self.0).ok().map(Cow::Owned)
    }

    pub fn as_u64(self) -> Option<u64> {
        match self.first() {
            Some(b'0'..=b'9') => self.0.parse().ok(),
            _ => None,
        }
    }

    /// A `serde_json::Value` of this value (for the rare paths that keep
    /// one: an in-band error).
    pub fn to_value(self) -> serde_json::Value {
        serde_json::from_str(self.0).unwrap_or_default()
    }
}

/// The items of a [`Json`] array.
#[derive(Debug, Clone)]
pub struct Items<'a> {
    text: &'a str,
    at: Option<usize>,
}

impl<'a> Iterator for Items<'a> {
    type Item = Json<'a>;

    fn next(&mut self) -> Option<Json<'a>> {
        let b = self.text.as_bytes();
        let at = skip_ws(b, self.at?);
        if b.get(at).is_none_or(|c| *c == b']') {
            self.at = None;
            return None;
        }
        let Some(end) = skip_value(b, at) else {
            self.at = None;
            return None;
        };
        let after = skip_ws(b, end);
        self.at = (b.get(after) == Some(&b',')).then_some(after + 1);
        self.text.get(at..end).map(Json)
    }
}

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
    fn a_view_reads_members_items_strings_and_numbers_in_place() {
        let text = br#" {"id": "c1", "n": 3, "s": "a\"b", "list": [ {"x": 1}, "two" ,3 ], "id": "c2", "nil": null} "#;
        let json = Json::parse(text).unwrap();
        assert!(json.is_object());
        let [id, n, s, list, nil, none] = json.fields(["id", "n", "s", "list", "nil", "none"]);
        assert_eq!(
            id.and_then(Json::as_str).as_deref(),
            Some("c2"),
            "the last duplicate wins"
        );
        assert_eq!(n.and_then(Json::as_u64), Some(3));
        assert_eq!(s.and_then(Json::as_str).as_deref(), Some("a\"b"));
        assert!(matches!(id.and_then(Json::as_str), Some(Cow::Borrowed(_))));
        let items: Vec<&str> = list.unwrap().items().map(Json::text).collect();
        assert_eq!(items, [r#"{"x": 1}"#, r#""two""#, "3"]);
        assert!(nil.unwrap().is_null());
        assert!(none.is_none());
        assert_eq!(Json::parse(b"[]").unwrap().items().count(), 0);
        assert!(Json::parse(b"7").unwrap().fields(["a"])[0].is_none());
        assert!(Json::parse(b"{not json").is_err());
        assert_eq!(Json::parse(b"-1").unwrap().as_u64(), None);
        assert_eq!(Json::parse(b"\"x\"").unwrap().as_u64(), None);
    }

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
