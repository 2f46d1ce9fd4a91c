//! One row per rule, asserting the exact kind, param and message; and the
//! guarantee that the Authorization value never appears in an outcome.

use http::HeaderValue;
use serde_json::json;

use super::*;

const CHAT: &str = "/v1/chat/completions";
const TOKEN: &str = "sk-secret-token-42";

fn auth(value: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(value).expect("header value"),
    );
    map
}

fn post(path: &str, body: &str, strict: bool) -> Result<(), Outcome> {
    check(
        &Method::POST,
        path,
        &HeaderMap::new(),
        body.as_bytes(),
        strict,
    )
}

fn rejected(kind: Kind, param: Option<&str>, message: &str) -> Result<(), Outcome> {
    Err(Outcome {
        kind,
        param: param.map(str::to_owned),
        message: Some(message.to_owned()),
        ..Outcome::default()
    })
}

fn unauthorized(problem: &str) -> Result<(), Outcome> {
    rejected(
        Kind::Unauthorized,
        Some("Authorization"),
        &format!("The Authorization header must be `Bearer <key>`: {problem}"),
    )
}

fn bad(param: Option<&str>, message: &str) -> Result<(), Outcome> {
    rejected(Kind::BadRequest, param, message)
}

const GOOD_CHAT: &str = r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn authorization_rules() {
    let rows: Vec<(String, Result<(), Outcome>)> = vec![
        (format!("Bearer {TOKEN}"), Ok(())),
        (format!("bearer {TOKEN}"), Ok(())),
        (format!("BEARER {TOKEN}"), Ok(())),
        (TOKEN.to_owned(), unauthorized("it does not start with `Bearer `")),
        (format!("Basic {TOKEN}"), unauthorized("it does not start with `Bearer `")),
        ("sk".to_owned(), unauthorized("it does not start with `Bearer `")),
        (format!("Bearer{TOKEN}"), unauthorized("it does not start with `Bearer ` (no space after `Bearer`)")),
        ("Bearer".to_owned(), unauthorized("the key after `Bearer` is empty")),
        ("Bearer    ".to_owned(), unauthorized("the key after `Bearer` is empty")),
        (format!("Bearer\t{TOKEN}"), unauthorized("use one plain space between `Bearer` and the key")),
        (format!("Bearer  {TOKEN}"), unauthorized("there is more than one space between `Bearer` and the key")),
        (format!("Bearer Bearer {TOKEN}"), unauthorized("`Bearer` appears twice")),
        (format!("Bearer {TOKEN} "), unauthorized("the key ends with whitespace (check how the key is loaded)")),
        (format!("Bearer {TOKEN}\t"), unauthorized("the key ends with whitespace (check how the key is loaded)")),
        (format!("Bearer sk-a b-{TOKEN}"), unauthorized("the key contains whitespace or a line break (check how the key is loaded)")),
        (format!("Bearer \"{TOKEN}\""), unauthorized("the key is wrapped in quotes")),
        ("Bearer $COMETAPI_KEY".to_owned(), unauthorized("the key looks like an unexpanded variable (`$NAME`)")),
        ("Bearer <key>".to_owned(), unauthorized("the key is still the `<key>` placeholder")),
        (
            format!("Bearer {TOKEN}\u{200b}"),
            unauthorized("the key contains non-ASCII characters (a pasted smart quote or invisible character?)"),
        ),
    ];
    for (value, expected) in rows {
        let headers = auth(value.as_bytes());
        assert_eq!(
            check(&Method::GET, "/v1/models", &headers, b"", false),
            expected,
            "{value:?}"
        );
    }
    // Not UTF-8 at all.
    assert_eq!(
        check(
            &Method::GET,
            "/v1/models",
            &auth(b"Bearer \xff\xfe"),
            b"",
            false
        ),
        unauthorized("it contains bytes that are not text")
    );
    // Twice.
    let mut twice = auth(format!("Bearer {TOKEN}").as_bytes());
    twice.append(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer other"),
    );
    assert_eq!(
        check(&Method::GET, "/v1/models", &twice, b"", false),
        unauthorized("send it once, not several times")
    );
    // Absent: the gateway may add its own key.
    assert_eq!(
        check(&Method::GET, "/v1/models", &HeaderMap::new(), b"", false),
        Ok(())
    );
}

#[test]
fn the_token_never_appears_in_an_outcome() {
    let values = [
        TOKEN.to_owned(),
        format!("Bearer{TOKEN}"),
        format!("Bearer  {TOKEN}"),
        format!("Bearer {TOKEN} "),
        format!("Bearer {TOKEN}\t"),
        format!("Basic {TOKEN}"),
        format!("Bearer \"{TOKEN}\""),
        format!("Bearer Bearer {TOKEN}"),
        format!("Bearer {TOKEN} {TOKEN}"),
        format!("Bearer ${TOKEN}"),
    ];
    for value in values {
        let outcome = check(
            &Method::POST,
            CHAT,
            &auth(value.as_bytes()),
            GOOD_CHAT.as_bytes(),
            true,
        )
        .expect_err("rejected");
        let shown = format!("{outcome:?}");
        assert!(!shown.contains(TOKEN) && !shown.contains("sk-"), "{shown}");
    }
}

#[test]
fn json_body_rules() {
    let rows: Vec<(&str, &str, Result<(), Outcome>)> = vec![
        (CHAT, GOOD_CHAT, Ok(())),
        ("/v1/embeddings", r#"{"model":"m","input":"x"}"#, Ok(())),
        ("/v1/embeddings", "", Ok(())),
        (
            "/v1/embeddings",
            "{\"model\":",
            bad(
                None,
                "The request body is not valid JSON: EOF while parsing a value at line 1 column 9",
            ),
        ),
        (
            "/v1/responses",
            "{'model': 'x'}",
            bad(
                None,
                "The request body is not valid JSON: key must be a string at line 1 column 2",
            ),
        ),
        (
            "/v1/moderations",
            "[1,2]",
            bad(None, "The request body must be a JSON object, not an array"),
        ),
        (
            "/v1/images/generations",
            "\"prompt\"",
            bad(None, "The request body must be a JSON object, not a string"),
        ),
        (
            "/v1/completions",
            "{\n  \"a\": 1,\n}",
            bad(
                None,
                "The request body is not valid JSON: trailing comma at line 3 column 1",
            ),
        ),
        (
            "/v1/chat/completions/",
            "nope",
            bad(
                None,
                "The request body is not valid JSON: expected ident at line 1 column 2",
            ),
        ),
        (
            "/v1/chat/completions?x=1",
            "nope",
            bad(
                None,
                "The request body is not valid JSON: expected ident at line 1 column 2",
            ),
        ),
        // Not a JSON endpoint, or not under /v1: not judged here.
        ("/v1/audio/transcriptions", "nope", Ok(())),
        ("/v1/images/edits", "nope", Ok(())),
        ("/chat/completions", "nope", Ok(())),
    ];
    for (path, body, expected) in rows {
        assert_eq!(post(path, body, false), expected, "{path} {body}");
    }
    // Only POST bodies are read.
    assert_eq!(
        check(&Method::GET, CHAT, &HeaderMap::new(), b"nope", false),
        Ok(())
    );
    // A multipart or compressed body is the upstream's to judge.
    let mut multipart = HeaderMap::new();
    multipart.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("multipart/form-data; boundary=x"),
    );
    assert_eq!(
        check(&Method::POST, CHAT, &multipart, b"--x", false),
        Ok(())
    );
    let mut gzip = HeaderMap::new();
    gzip.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    gzip.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    assert_eq!(
        check(&Method::POST, CHAT, &gzip, b"\x1f\x8b", false),
        Ok(())
    );
    gzip.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    assert_eq!(
        check(&Method::POST, CHAT, &gzip, b"[]", false),
        bad(None, "The request body must be a JSON object, not an array")
    );
}

#[test]
fn chat_completion_rules() {
    let rows: Vec<(String, Result<(), Outcome>)> = vec![
        (
            String::new(),
            bad(Some("model"), "The request body is empty: /v1/chat/completions needs a JSON object with `model` and `messages`"),
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}]}).to_string(),
            bad(Some("model"), "`model` is required: a model id such as gpt-4o-mini"),
        ),
        (
            json!({"model": 4, "messages": []}).to_string(),
            bad(Some("model"), "`model` must be a string, not a number"),
        ),
        (
            json!({"model": " ", "messages": []}).to_string(),
            bad(Some("model"), "`model` is empty: give a model id such as gpt-4o-mini"),
        ),
        (
            json!({"model": "m"}).to_string(),
            bad(Some("messages"), "`messages` is required: an array of objects with `role` and `content`"),
        ),
        (
            json!({"model": "m", "messages": "Hello"}).to_string(),
            bad(Some("messages"), "`messages` must be an array of objects with `role` and `content`, not a string"),
        ),
        (
            json!({"model": "m", "messages": []}).to_string(),
            bad(Some("messages"), "`messages` must contain at least one message"),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, "b"]}).to_string(),
            bad(Some("messages[1]"), "`messages[1]` must be an object with `role` and `content`, not a string"),
        ),
        (
            json!({"model": "m", "messages": [{"content": "a"}]}).to_string(),
            bad(Some("messages[0].role"), "`messages[0].role` is required: system, user, assistant, tool..."),
        ),
        (
            json!({"model": "m", "messages": [{"role": "user"}, {"role": null}]}).to_string(),
            bad(Some("messages[1].role"), "`messages[1].role` must be a string, not null"),
        ),
        // Tool-call messages with null content are fine; roles are not judged.
        (
            json!({"model": "m", "messages": [{"role": "developer", "content": null, "tool_calls": []}]}).to_string(),
            Ok(()),
        ),
    ];
    for (body, expected) in rows {
        assert_eq!(post(CHAT, &body, false), expected, "{body}");
    }
    // Other endpoints have no `messages`.
    assert_eq!(post("/v1/embeddings", r#"{"input":"x"}"#, false), Ok(()));
}

#[test]
fn strict_range_rules() {
    let with = |extra: serde_json::Value| {
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body.to_string()
    };
    let rows: Vec<(serde_json::Value, Result<(), Outcome>)> = vec![
        (
            json!({"temperature": 0, "top_p": 1, "max_tokens": 1, "max_completion_tokens": 100, "n": 2}),
            Ok(()),
        ),
        (json!({"temperature": 2.0, "top_p": 0.0}), Ok(())),
        (json!({"temperature": null, "max_tokens": null}), Ok(())),
        (
            json!({"temperature": 2.5}),
            bad(
                Some("temperature"),
                "`temperature` must be a number between 0 and 2, got 2.5",
            ),
        ),
        (
            json!({"temperature": -0.1}),
            bad(
                Some("temperature"),
                "`temperature` must be a number between 0 and 2, got -0.1",
            ),
        ),
        (
            json!({"temperature": "hot"}),
            bad(
                Some("temperature"),
                "`temperature` must be a number between 0 and 2, got a string",
            ),
        ),
        (
            json!({"top_p": 1.5}),
            bad(
                Some("top_p"),
                "`top_p` must be a number between 0 and 1, got 1.5",
            ),
        ),
        (
            json!({"max_tokens": 0}),
            bad(
                Some("max_tokens"),
                "`max_tokens` must be a positive integer, got 0",
            ),
        ),
        (
            json!({"max_tokens": -5}),
            bad(
                Some("max_tokens"),
                "`max_tokens` must be a positive integer, got -5",
            ),
        ),
        (
            json!({"max_tokens": 10.5}),
            bad(
                Some("max_tokens"),
                "`max_tokens` must be a positive integer, got 10.5",
            ),
        ),
        (
            json!({"max_completion_tokens": "100"}),
            bad(
                Some("max_completion_tokens"),
                "`max_completion_tokens` must be a positive integer, got a string",
            ),
        ),
        (
            json!({"n": 0}),
            bad(Some("n"), "`n` must be an integer of at least 1, got 0"),
        ),
    ];
    for (extra, expected) in rows {
        assert_eq!(post(CHAT, &with(extra.clone()), true), expected, "{extra}");
        // Without strict, ranges pass to the upstream.
        assert_eq!(post(CHAT, &with(extra.clone()), false), Ok(()), "{extra}");
    }
    // Strict applies to the other JSON endpoints too.
    assert_eq!(
        post("/v1/images/generations", r#"{"prompt":"x","n":0}"#, true),
        bad(Some("n"), "`n` must be an integer of at least 1, got 0")
    );
}
