//! The processes under test: starting them (each on a 127.0.0.1 port it
//! picks or is given), reading the one `... listening on http://ADDR` line,
//! stopping them by pid, and what `/proc` says about them — CPU time
//! (utime + stime) and resident memory (VmRSS, VmHWM), summed over a process
//! and its direct children (nginx's master and worker), and its open file
//! descriptors.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a process gets to print its listening line or to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A process the bench started; stopped (SIGTERM, then SIGKILL) by [`Proc::stop`],
/// killed if dropped.
pub struct Proc {
    /// A short name for messages ("backstop", "nginx"...).
    pub name: String,
    /// Its pid.
    pub pid: u32,
    child: Child,
}

impl Proc {
    /// Starts `cmd` with stderr appended to `log` and waits for the stdout line
    /// `"{prefix} listening on http://ADDR"`; the rest of stdout is drained.
    pub async fn spawn_listening(
        name: &str,
        mut cmd: Command,
        prefix: &str,
        log: &Path,
    ) -> Result<(Proc, SocketAddr)> {
        let err =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("start {name}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("{name}: no stdout"))?;
        let mut lines = BufReader::new(stdout);
        let mut line = String::new();
        let read = tokio::time::timeout(START_TIMEOUT, lines.read_line(&mut line)).await;
        let want = format!("{prefix} listening on http://");
        let addr = match read {
            Ok(Ok(n)) if n > 0 => line
                .trim()
                .strip_prefix(&want)
                .ok_or_else(|| anyhow!("{name} printed {line:?}, not {want:?}"))?
                .parse::<SocketAddr>()
                .with_context(|| format!("{name}: address in {line:?}"))?,
            Ok(Ok(_)) => bail!(
                "{name} closed stdout before listening (see {})",
                log.display()
            ),
            Ok(Err(e)) => bail!("{name}: reading stdout: {e}"),
            Err(_) => bail!("{name} did not print its listening line within {START_TIMEOUT:?}"),
        };
        // Nothing else is expected on stdout; drain it so a write never blocks.
        tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink).await;
        });
        let proc = Proc {
            name: name.to_owned(),
            pid,
            child,
        };
        Ok((proc, addr))
    }

    /// Starts `cmd` (which prints nothing useful) with stdout and stderr to `log`.
    pub fn spawn_quiet(name: &str, mut cmd: Command, log: &Path) -> Result<Proc> {
        let err =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let out = err.try_clone()?;
        cmd.stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {name}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("{name} exited at once"))?;
        Ok(Proc {
            name: name.to_owned(),
            pid,
            child,
        })
    }

    /// Fails when the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("{} exited: {status}", self.name),
        }
    }

    /// SIGTERM (by pid, with `kill`), up to `grace` to exit, then SIGKILL.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The process and its direct children (nginx: master and workers).
    pub fn tree(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        pids.extend(children(self.pid));
        pids
    }
}

/// Pids whose parent is `parent`, from `/proc/*/stat`.
pub fn children(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()))
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f.get(1) == Some(&parent.to_string())))
        .collect()
}

/// The fields of `/proc/<pid>/stat` after the `(comm)` one: index 0 is the
/// state (field 3), 1 the ppid (field 4), 11 utime (field 14), 12 stime (15).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of one process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> Result<u64> {
    let f = stat_fields(pid).ok_or_else(|| anyhow!("no /proc/{pid}/stat"))?;
    let num = |i: usize| -> Result<u64> {
        f.get(i)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| anyhow!("/proc/{pid}/stat field {}", i + 3))
    };
    Ok(num(11)? + num(12)?)
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("/proc/{pid}/status"))?;
    parse_status_kib(&text, key).ok_or_else(|| anyhow!("no {key} in /proc/{pid}/status"))
}

fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Open file descriptors of one process (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Result<u64> {
    let dir =
        std::fs::read_dir(format!("/proc/{pid}/fd")).with_context(|| format!("/proc/{pid}/fd"))?;
    Ok(dir.count() as u64)
}

/// CPU ticks and memory of a group of processes, summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
    /// VmRSS, KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS), KiB.
    pub hwm_kib: u64,
}

/// The summed [`Usage`] of `pids`.
pub fn usage(pids: &[u32]) -> Result<Usage> {
    let mut u = Usage::default();
    for &pid in pids {
        u.cpu_ticks += cpu_ticks(pid)?;
        u.rss_kib += status_kib(pid, "VmRSS")?;
        u.hwm_kib += status_kib(pid, "VmHWM")?;
    }
    Ok(u)
}

/// Clock ticks per second (`getconf CLK_TCK`, read once; 100 if that fails).
pub fn clk_tck() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let text = "Name:\tx\nVmHWM:\t   12345 kB\nVmRSS:\t    6789 kB\n";
        assert_eq!(parse_status_kib(text, "VmRSS"), Some(6789));
        assert_eq!(parse_status_kib(text, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(text, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_ok());
        assert!(status_kib(pid, "VmRSS").is_ok_and(|k| k > 0));
        assert!(status_kib(pid, "Threads").is_ok_and(|n| n > 0));
        assert!(fd_count(pid).is_ok_and(|n| n >= 3));
    }
}
