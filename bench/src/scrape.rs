//! Reading a gateway's `/metrics` (Prometheus text): one series summed
//! over its labels, or split by one label. Used for the allocation counts
//! (`backstop_allocations_total`) and fleet mode
//! (`backstop_fleet_operations_total`, `backstop_fleet_connected`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::client::{fetch_once, Call};

/// `GET /metrics` at `addr`.
pub async fn metrics(addr: SocketAddr) -> Result<String> {
    let (status, body) = fetch_once(addr, &Call::get("/metrics")).await?;
    if status != 200 {
        bail!("{addr}/metrics answered {status}");
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// The samples of `name`: (the text between its braces, value).
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = (&'a str, f64)> + 'a {
    text.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once('}')?,
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        Some((labels, value.trim().parse().ok()?))
    })
}

/// `name` summed over all its labels (0 when absent).
pub fn sum(text: &str, name: &str) -> f64 {
    samples(text, name).map(|(_, v)| v).sum()
}

/// `name` by the value of `label` (summed over the other labels).
pub fn by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for (labels, v) in samples(text, name) {
        let value = labels
            .split_once(&key)
            .and_then(|(_, r)| r.split_once('"'))
            .map_or("", |(v, _)| v);
        *out.entry(value.to_owned()).or_insert(0.0) += v;
    }
    out
}

/// Polls `addr`'s `/metrics` until `name` sums to `value` (at most `within`).
pub async fn wait_for(addr: SocketAddr, name: &str, value: f64, within: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let now = sum(&metrics(addr).await?, name);
        if now == value {
            return Ok(());
        }
        if start.elapsed() > within {
            bail!("{name} at {addr} is {now}, not {value}, after {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x\n\
        backstop_fleet_operations_total{op=\"publish\",result=\"ok\"} 3\n\
        backstop_fleet_operations_total{op=\"probe_take\",result=\"ok\"} 2\n\
        backstop_fleet_operations_total{op=\"publish\",result=\"error\"} 1\n\
        backstop_fleet_operations_total_x 100\n\
        backstop_fleet_connected 1\n";

    #[test]
    fn sums_and_splits() {
        assert_eq!(sum(TEXT, "backstop_fleet_operations_total"), 6.0);
        assert_eq!(sum(TEXT, "backstop_fleet_connected"), 1.0);
        assert_eq!(sum(TEXT, "backstop_missing"), 0.0);
        let ops = by_label(TEXT, "backstop_fleet_operations_total", "op");
        assert_eq!(ops.get("publish"), Some(&4.0));
        assert_eq!(ops.get("probe_take"), Some(&2.0));
    }
}
