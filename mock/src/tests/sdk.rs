//! The Responses API as the official `openai` Python SDK parses it: runs
//! `mock/sdk/responses_check.py` against an in-process mock. It needs a
//! Python with `openai`: `$BACKSTOP_MOCK_PYTHON`, or the workspace's
//! `.venv` (which `scripts/test` creates); without one it says so and
//! checks nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::http::start;

fn python() -> Option<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("BACKSTOP_MOCK_PYTHON").map(PathBuf::from),
        Some(manifest.join("../.venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import openai"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[tokio::test]
async fn sdk_check() {
    let Some(python) = python() else {
        eprintln!("sdk_check: no Python with openai ($BACKSTOP_MOCK_PYTHON or .venv): not checked");
        return;
    };
    let server = start().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/responses_check.py");
    let url = server.base_url();
    let out =
        tokio::task::spawn_blocking(move || Command::new(python).arg(script).arg(url).output())
            .await
            .unwrap()
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 passed, 0 failed"), "{stdout}");
}
