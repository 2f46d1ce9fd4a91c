//! The machine the figures come from: cores, CPU model, kernel, memory and
//! load average (the machine is shared; a high load explains noisy figures),
//! plus the versions of what was measured.

use std::path::Path;

use serde::Serialize;

/// What the report says about the machine and the software.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Usable cores (`nproc`).
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// Kernel release.
    pub kernel: String,
    /// MemTotal, MiB.
    pub mem_total_mib: u64,
    /// /proc/loadavg when the bench started.
    pub loadavg_start: String,
    /// /proc/loadavg when it ended.
    pub loadavg_end: String,
    /// `nginx -v` (empty when nginx is not part of the run).
    pub nginx_version: String,
    /// The backstop commit (`git rev-parse --short HEAD`).
    pub backstop_commit: String,
    /// Seconds since the epoch at start.
    pub started_unix: u64,
    /// Clock ticks per second used for CPU time.
    pub clk_tck: u64,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn output(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_owned()
        })
        .unwrap_or_default()
}

/// The current load average (first three fields of /proc/loadavg).
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Machine {
    /// Describes this machine.
    pub fn describe(repo: &Path, nginx: Option<&Path>, clk_tck: u64) -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let mem_total_mib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let repo = repo.display().to_string();
        Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            mem_total_mib,
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            nginx_version: nginx
                .map(|n| output(&n.display().to_string(), &["-v"]))
                .unwrap_or_default(),
            backstop_commit: output("git", &["-C", &repo, "rev-parse", "--short", "HEAD"]),
            started_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            clk_tck,
        }
    }
}
