//! The bench's `redis-server` (Debian's, for fleet mode): started on a free
//! 127.0.0.1 port without persistence, and asked `PING` (until it answers)
//! and `INFO commandstats` (how many calls of each command it served) over
//! a bare RESP connection, so no Redis client library is needed here.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::nginx::free_port;
use crate::procs::{Proc, START_TIMEOUT};

/// How long one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts `redis-server` on a free port (no RDB, no AOF, files in `work`)
/// and waits until it answers `PING`.
pub async fn start(bin: &Path, work: &Path) -> Result<(Proc, SocketAddr)> {
    let addr = free_port()?;
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(work);
    let mut proc = Proc::spawn_quiet("redis-server", cmd, &work.join("redis.log"))?;
    let start = Instant::now();
    loop {
        proc.check_alive()?;
        match command(addr, &["PING"]).await {
            Ok(reply) if reply == b"PONG" => return Ok((proc, addr)),
            Ok(_) | Err(_) if start.elapsed() < START_TIMEOUT => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(reply) => bail!("redis-server answered PING with {reply:?}"),
            Err(e) => return Err(e.context("redis-server never answered PING")),
        }
    }
}

/// `redis-server --version`, trimmed.
pub fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Sends one command on a fresh connection; answers a simple string's or a
/// bulk string's bytes (an error reply is an error).
pub async fn command(addr: SocketAddr, args: &[&str]) -> Result<Vec<u8>> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    tokio::time::timeout(COMMAND_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        loop {
            if let Some(reply) = parse_reply(&buf)? {
                return Ok(reply);
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                bail!("redis closed the connection mid-reply");
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .map_err(|_| anyhow!("redis {args:?} took longer than {COMMAND_TIMEOUT:?}"))?
}

/// One complete reply in `buf`, `None` while it is incomplete.
fn parse_reply(buf: &[u8]) -> Result<Option<Vec<u8>>> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = &buf[1..end];
    match buf.first() {
        Some(b'+' | b':') => Ok(Some(line.to_vec())),
        Some(b'-') => bail!("redis error: {}", String::from_utf8_lossy(line)),
        Some(b'$') => {
            let len: usize = std::str::from_utf8(line)?
                .parse()
                .context("bulk string length")?;
            let start = end + 2;
            Ok((buf.len() >= start + len + 2).then(|| buf[start..start + len].to_vec()))
        }
        _ => bail!("unexpected redis reply {:?}", String::from_utf8_lossy(buf)),
    }
}

/// Calls per command from `INFO commandstats` (`cmdstat_get:calls=5,...`).
pub fn parse_commandstats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let (name, rest) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Calls per command served so far (`INFO` itself left out: that is the
/// bench asking).
pub async fn commandstats(addr: SocketAddr) -> Result<BTreeMap<String, u64>> {
    let reply = command(addr, &["INFO", "commandstats"]).await?;
    let mut stats = parse_commandstats(&String::from_utf8_lossy(&reply));
    stats.remove("info");
    Ok(stats)
}

/// `after − before`, command by command (commands with no new calls left out).
pub fn delta(
    after: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.saturating_sub(before.get(k).copied().unwrap_or(0)),
            )
        })
        .filter(|(_, v)| *v > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_only_when_complete() {
        assert_eq!(parse_reply(b"+PONG\r\n").unwrap(), Some(b"PONG".to_vec()));
        assert_eq!(parse_reply(b"+PON").unwrap(), None);
        assert_eq!(parse_reply(b"$5\r\nab").unwrap(), None);
        assert_eq!(parse_reply(b"$5\r\nabcde\r").unwrap(), None);
        assert_eq!(
            parse_reply(b"$5\r\nabcde\r\n").unwrap(),
            Some(b"abcde".to_vec())
        );
        assert!(parse_reply(b"-ERR unknown\r\n").is_err());
    }

    #[test]
    fn commandstats_lines() {
        let text = "# Commandstats\r\ncmdstat_set:calls=3,usec=10,usec_per_call=3.33,rejected_calls=0,failed_calls=0\r\ncmdstat_publish:calls=2,usec=4\r\ncmdstat_info:calls=7,usec=1\r\n";
        let stats = parse_commandstats(text);
        assert_eq!(stats.get("set"), Some(&3));
        assert_eq!(stats.get("publish"), Some(&2));
        assert_eq!(stats.get("info"), Some(&7));
        let before = BTreeMap::from([("set".to_owned(), 1u64), ("publish".to_owned(), 2)]);
        assert_eq!(
            delta(&stats, &before),
            BTreeMap::from([("info".to_owned(), 7u64), ("set".to_owned(), 2)])
        );
    }
}
