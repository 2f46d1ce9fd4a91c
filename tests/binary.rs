//! The `backstop` binary as users run it: bad configuration exits non-zero
//! naming the key; logs at every level never carry an API key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use common::scripted::{Answer, Scripted};

const BIN: &str = env!("CARGO_BIN_EXE_backstop");

fn run_to_exit(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_env_value_exits_2_naming_the_key_and_the_variable() {
    let (code, stderr) = run_to_exit(&[], &[("BACKSTOP_RETRY__MAX_ATTEMPTS", "0")]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "backstop: invalid config (environment variable BACKSTOP_RETRY__MAX_ATTEMPTS): retry.max_attempts: must be between 1 and 10, got 0"
    );
}

#[test]
fn an_unknown_key_in_the_file_exits_2_naming_the_key_and_the_file() {
    let path = std::env::temp_dir().join(format!("backstop-bad-{}.toml", std::process::id()));
    std::fs::File::create(&path)
        .unwrap()
        .write_all(b"[upstream]\nurll = \"http://x/v1\"\n")
        .unwrap();
    let (code, stderr) = run_to_exit(&["--config", path.to_str().unwrap()], &[]);
    std::fs::remove_file(&path).ok();
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("upstream.urll"), "{stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
}

#[test]
fn a_missing_config_file_exits_2() {
    let (code, stderr) = run_to_exit(&["--config", "/nonexistent/backstop.toml"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/backstop.toml"), "{stderr}");
}

struct Gateway {
    child: Child,
    base: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Starts the binary and reads its address from the first stdout line.
fn spawn(env: &[(&str, &str)]) -> Gateway {
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(env.iter().copied())
        .env("BACKSTOP_LISTEN", "127.0.0.1:0")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = common::listening_on(&mut child);
    Gateway { child, base }
}

fn sigterm(child: &Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
}

#[tokio::test]
async fn keys_never_reach_the_logs_at_trace_level_in_either_format() {
    const CLIENT_KEY: &str = "sk-client-SECRET-4f1d";
    const CONFIG_KEY: &str = "sk-config-SECRET-9a2b";
    let up = Scripted::start(|seen, _| {
        // Echo the key back in an error message, as some providers do.
        let auth = seen
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Answer::json(
            401,
            &format!(r#"{{"error":{{"message":"bad key {auth}","code":"invalid_api_key"}}}}"#),
        )
    })
    .await;
    for format in ["text", "json"] {
        let mut gw = spawn(&[
            ("BACKSTOP_UPSTREAM", &up.base_url()),
            ("BACKSTOP_UPSTREAM__API_KEY", CONFIG_KEY),
            ("BACKSTOP_LOG__FORMAT", format),
            ("RUST_LOG", "trace"),
        ]);
        let c = common::client();
        for auth in [
            Some(format!("Bearer {CLIENT_KEY}")),
            None,
            Some(CLIENT_KEY.to_string()),
        ] {
            let mut req = c
                .post(format!("{}/v1/chat/completions", gw.base))
                .json(&common::chat(false));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap();
            let text = resp.text().await.unwrap();
            assert!(
                !text.contains(CLIENT_KEY) && !text.contains(CONFIG_KEY),
                "{text}"
            );
        }
        sigterm(&gw.child);
        let status = gw.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
        let mut logs = String::new();
        gw.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut logs)
            .unwrap();
        assert!(
            logs.contains("request failed"),
            "the failures were logged: {logs}"
        );
        assert!(!logs.contains(CLIENT_KEY), "client key in {format} logs");
        assert!(
            !logs.contains(CONFIG_KEY),
            "configured key in {format} logs"
        );
        assert!(!logs.contains("SECRET"), "a key fragment in {format} logs");
        if format == "json" {
            for line in logs.lines() {
                assert!(
                    serde_json::from_str::<serde_json::Value>(line).is_ok(),
                    "not JSON: {line}"
                );
            }
        }
    }
}

#[test]
fn in_json_mode_every_line_on_stdout_and_stderr_is_json() {
    // A start that warns (a URL without /v1), serves, and stops.
    let mut child = Command::new(BIN)
        .env_clear()
        .env("BACKSTOP_LISTEN", "127.0.0.1:0")
        .env("BACKSTOP_UPSTREAM", "http://127.0.0.1:9")
        .env("BACKSTOP_LOG__FORMAT", "json")
        .env("RUST_LOG", "debug")
        .current_dir(std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut first).unwrap();
    let record: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(record["level"], "INFO");
    let url = record["url"].as_str().unwrap().to_string();
    assert_eq!(record["message"], format!("backstop listening on {url}"));
    sigterm(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut logs = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    for line in rest.lines().chain(logs.lines()) {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not JSON: {line}"
        );
    }
    assert!(logs.contains("does not end in a version segment"), "{logs}");
    // A configuration error before the logs start is a JSON record too.
    let out = Command::new(BIN)
        .env_clear()
        .env("BACKSTOP_LOG__FORMAT", "json")
        .env("BACKSTOP_RETRI__MAX_ATTEMPTS", "2")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let record: serde_json::Value = serde_json::from_str(stderr.trim()).unwrap();
    assert_eq!(record["level"], "ERROR");
    assert!(
        record["message"].as_str().unwrap().starts_with(
            "backstop: invalid config (environment variable BACKSTOP_RETRI__MAX_ATTEMPTS): retri.max_attempts: no such config table"
        ),
        "{record}"
    );
}

#[test]
fn a_key_written_as_an_unexpanded_variable_is_refused() {
    let (code, stderr) = run_to_exit(&[], &[("BACKSTOP_UPSTREAM__API_KEY", "$OPENAI_API_KEY")]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "backstop: invalid config (environment variable BACKSTOP_UPSTREAM__API_KEY): upstream.api_key: `$OPENAI_API_KEY` is not expanded (only `${OPENAI_API_KEY}` is): write `${OPENAI_API_KEY}` (the shell did not expand it)"
    );
}

#[test]
fn an_open_port_with_a_key_and_no_token_refuses_to_start() {
    let (code, stderr) = run_to_exit(
        &[],
        &[
            ("BACKSTOP_LISTEN", "0.0.0.0:0"),
            ("BACKSTOP_UPSTREAM__API_KEY", "sk-operator-key-1"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("auth.tokens"),
        "names the first fix: {stderr}"
    );
    assert!(
        stderr.contains("127.0.0.1"),
        "names the second fix: {stderr}"
    );
    assert!(
        stderr.contains("allow_unauthenticated"),
        "names the opt-out: {stderr}"
    );
    assert!(!stderr.contains("sk-operator-key-1"), "{stderr}");
}

#[test]
fn with_a_token_or_the_opt_out_an_open_port_with_a_key_starts() {
    for extra in [
        ("BACKSTOP_AUTH__TOKENS", "gw-token-1"),
        ("BACKSTOP_AUTH__ALLOW_UNAUTHENTICATED", "true"),
    ] {
        let mut child = Command::new(BIN)
            .env_clear()
            .env("BACKSTOP_LISTEN", "0.0.0.0:0")
            .env("BACKSTOP_UPSTREAM__API_KEY", "sk-operator-key-1")
            .env(extra.0, extra.1)
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(line.contains("listening on"), "{extra:?}: {line:?}");
    }
}
