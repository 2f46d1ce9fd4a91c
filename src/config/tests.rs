//! Config loading and validation, by table.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn file(contents: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("backstop-test-{}.toml", uuid::Uuid::new_v4()));
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    TempFile(path)
}

fn load_str(contents: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let f = file(contents);
    load(Some(&f.0), &env(vars))
}

#[test]
fn no_file_and_no_env_gives_the_contract_defaults() {
    let c = load(Some(Path::new("/nonexistent/none.toml")), &[]);
    assert!(c.is_err(), "an explicit missing file is an error");
    let c = load_str("", &[]).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.listen, "0.0.0.0:8080");
    assert_eq!(c.upstream.url, "https://api.openai.com/v1");
    assert_eq!(c.retry.max_attempts, 3);
    assert_eq!(c.retry.budget_ratio, 0.2);
    assert_eq!(c.inspect.content_filter, Action::Fail);
    assert_eq!(c.inspect.empty_content, Action::Retry);
    assert_eq!(c.shutdown.drain_timeout_ms, 25_000);
    assert_eq!(c.limits.max_request_body_bytes, 20_971_520);
}

#[test]
fn file_values_and_env_overrides_with_env_winning() {
    let c = load_str(
        "listen = \"127.0.0.1:9000\"\n[retry]\nmax_attempts = 5\nbudget_ratio = 0.5\n",
        &[
            ("BACKSTOP_RETRY__MAX_ATTEMPTS", "2"),
            ("BACKSTOP_UPSTREAM__API_KEY", "12345"),
            ("BACKSTOP_UPSTREAM", "http://127.0.0.1:1/v1"),
            ("BACKSTOP_INSPECT__LENGTH", "fail"),
            ("BACKSTOP_PREFLIGHT__STRICT", "true"),
            ("BACKSTOP_RETRY__BUDGET_RATIO", "1"),
            ("UNRELATED", "x"),
            ("BACKSTOP_BIN_DIR", "not a config key: ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.listen, "127.0.0.1:9000");
    assert_eq!(c.retry.max_attempts, 2);
    assert_eq!(c.retry.budget_ratio, 1.0);
    assert_eq!(
        c.upstream.api_key.expose(),
        "12345",
        "a numeric-looking key stays a string"
    );
    assert_eq!(c.upstream.url, "http://127.0.0.1:1/v1");
    assert_eq!(c.inspect.length, Action::Fail);
    assert!(c.preflight.strict);
}

#[test]
fn listen_env_and_full_url_key_beat_the_shorthand() {
    let c = load_str(
        "",
        &[
            ("BACKSTOP_UPSTREAM__URL", "http://b.example/v1"),
            ("BACKSTOP_UPSTREAM", "http://a.example/v1"),
            ("BACKSTOP_LISTEN", "127.0.0.1:0"),
        ],
    )
    .unwrap();
    assert_eq!(c.upstream.url, "http://b.example/v1");
    assert_eq!(c.listen, "127.0.0.1:0");
}

#[test]
fn variables_expand_in_strings() {
    let c = load_str(
        "listen = \"127.0.0.1:8080\"\n[upstream]\napi_key = \"${MY_KEY}\"\nurl = \"${BASE:-http://fallback.example/v1}\"\n",
        &[("MY_KEY", "sk-from-env")],
    )
    .unwrap();
    assert_eq!(c.upstream.api_key.expose(), "sk-from-env");
    assert_eq!(c.upstream.url, "http://fallback.example/v1");
}

#[test]
fn expand_table() {
    let vars: std::collections::HashMap<&str, &str> = [("A", "1"), ("EMPTY", "")].into();
    let cases: [(&str, Result<&str, &str>); 8] = [
        ("plain", Ok("plain")),
        ("${A}", Ok("1")),
        ("x${A}y${A}", Ok("x1y1")),
        ("${EMPTY:-d}", Ok("d")),
        ("${EMPTY}", Ok("")),
        ("$${A}", Ok("${A}")),
        ("${MISSING}", Err("environment variable MISSING is not set")),
        ("${A", Err("unterminated `${` in \"${A\"")),
    ];
    for (input, want) in cases {
        let got = load::expand(input, &vars);
        assert_eq!(got.as_deref().map_err(String::as_str), want, "{input}");
    }
}

/// (file, env, expected key, expected origin is env?, message fragment)
type ErrorCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, bool, &'a str);

#[test]
fn errors_name_the_key_and_where_it_came_from() {
    let cases: &[ErrorCase] = &[
        (
            "[retry]\nmax_attempts = 0\n",
            &[],
            "retry.max_attempts",
            false,
            "between 1 and 10",
        ),
        (
            "[retry]\nmax_atempts = 2\n",
            &[],
            "retry.max_atempts",
            false,
            "unknown field `max_atempts`",
        ),
        ("bogus = 1\n", &[], "bogus", false, "unknown field `bogus`"),
        (
            "[inspect]\nlength = \"maybe\"\n",
            &[],
            "inspect.length",
            false,
            "unknown variant `maybe`",
        ),
        (
            "[upstream]\nurl = \"ftp://x/v1\"\n",
            &[],
            "upstream.url",
            false,
            "http://",
        ),
        (
            "[upstream]\nconnect_timeout_ms = 0\n",
            &[],
            "upstream.connect_timeout_ms",
            false,
            "greater than 0",
        ),
        (
            "listen = \"nowhere\"\n",
            &[],
            "listen",
            false,
            "not an address",
        ),
        (
            "[retry]\nbase_delay_ms = 100\nmax_delay_ms = 50\n",
            &[],
            "retry.max_delay_ms",
            false,
            "at least",
        ),
        (
            "",
            &[("BACKSTOP_RETRY__MAX_ATTEMPTS", "lots")],
            "retry.max_attempts",
            true,
            "expected an integer",
        ),
        (
            "",
            &[("BACKSTOP_RETRY__MAX_ATTEMPTS", "0")],
            "retry.max_attempts",
            true,
            "between 1 and 10",
        ),
        (
            "",
            &[("BACKSTOP_RETRY__NOPE", "1")],
            "retry.nope",
            true,
            "no such config key",
        ),
        ("", &[("BACKSTOP_RETRY", "1")], "retry", true, "is a table"),
        (
            "[upstream]\napi_key = \"${NOT_SET_ANYWHERE}\"\n",
            &[],
            "upstream.api_key",
            false,
            "NOT_SET_ANYWHERE is not set",
        ),
        (
            "[log]\nformat = \"xml\"\n",
            &[],
            "log.format",
            false,
            "unknown variant",
        ),
        ("[retry\n", &[], "", false, "TOML parse error"),
    ];
    for (text, vars, key, from_env, fragment) in cases {
        let err = load_str(text, vars).unwrap_err();
        assert_eq!(&err.key, key, "{text:?} {vars:?}: {err}");
        assert_eq!(matches!(err.origin, Source::Env(_)), *from_env, "{err}");
        assert!(
            err.to_string().contains(fragment),
            "{err} should contain {fragment}"
        );
    }
}

#[test]
fn every_file_in_config_dir_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            load(Some(&path), &env(&[("OPENAI_API_KEY", "sk-test")]))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1, "config/ holds at least the example");
}

#[test]
fn the_example_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/backstop.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    let mut missing = vec![];
    for (section, v) in defaults.as_table().unwrap() {
        match v.as_table() {
            Some(t) => {
                assert!(
                    text.contains(&format!("[{section}]")),
                    "[{section}] missing"
                );
                for key in t.keys() {
                    if !text.contains(&format!("{key} =")) {
                        missing.push(format!("{section}.{key}"));
                    }
                }
            }
            None => {
                if !text.contains(&format!("{section} =")) {
                    missing.push(section.clone());
                }
            }
        }
    }
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
}

#[test]
fn bad_inspect_overrides_are_named() {
    let cases = [
        ("[[inspect.overrides]]\nlength = \"fail\"\n", "inspect.overrides[0]"),
        (
            "[[inspect.overrides]]\nroutes = [\"chat\"]\nlength = \"fail\"\n",
            "inspect.overrides[0].routes[0]",
        ),
        (
            "[[inspect.overrides]]\nmodels = [\"a\"]\n[[inspect.overrides]]\nmodels = [\"gpt-[4\"]\nlength = \"fail\"\n",
            "inspect.overrides[1].models[0]",
        ),
    ];
    for (toml, key) in cases {
        let err = load_str(toml, &[]).unwrap_err();
        assert_eq!(err.key, key, "{toml}");
    }
}

#[test]
fn an_open_port_with_a_key_and_no_token_is_refused_unless_allowed() {
    let key = &[("K", "sk-live-1")];
    let rows: &[(&str, bool)] = &[
        ("listen = \"0.0.0.0:8080\"\n[upstream]\napi_key = \"${K}\"\n", false),
        ("listen = \"127.0.0.1:8080\"\n[upstream]\napi_key = \"${K}\"\n", true),
        ("listen = \"[::1]:8080\"\n[upstream]\napi_key = \"${K}\"\n", true),
        ("listen = \"0.0.0.0:8080\"\n", true),
        ("listen = \"0.0.0.0:8080\"\n[upstreams.b]\nurl = \"http://b/v1\"\napi_key = \"${K}\"\n", false),
        ("listen = \"0.0.0.0:8080\"\n[upstream]\napi_key = \"${K}\"\n[auth]\ntokens = [\"gw-token\"]\n", true),
        ("listen = \"0.0.0.0:8080\"\n[upstream]\napi_key = \"${K}\"\n[auth]\ntokens = [\"${UNSET:-}\"]\n", false),
        ("listen = \"0.0.0.0:8080\"\n[upstream]\napi_key = \"${K}\"\n[auth]\nallow_unauthenticated = true\n", true),
    ];
    for (toml, starts) in rows {
        let got = load_str(toml, key);
        assert_eq!(got.is_ok(), *starts, "{toml}: {got:?}");
        if let Err(e) = got {
            assert_eq!(e.key, "auth.tokens");
            assert!(
                e.message.contains("auth.tokens") && e.message.contains("127.0.0.1"),
                "{e}"
            );
        }
    }
    // Tokens from the environment, as a list or comma-separated.
    let c = load_str("", &[("BACKSTOP_AUTH__TOKENS", "t-one, t-two")]).unwrap();
    assert_eq!(
        c.auth_tokens()
            .iter()
            .map(|t| t.expose())
            .collect::<Vec<_>>(),
        ["t-one", "t-two"]
    );
    let c = load_str("", &[("BACKSTOP_AUTH__TOKENS", "[\"t-3\"]")]).unwrap();
    assert_eq!(c.auth_tokens()[0].expose(), "t-3");
}
