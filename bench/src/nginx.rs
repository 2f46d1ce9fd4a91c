//! nginx as the reference proxy: a plain keep-alive reverse proxy with
//! `proxy_buffering off`, one worker, one `server` per upstream mock, every
//! path (pid, logs, temp files) inside the bench's work directory.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;

use anyhow::{Context, Result};
use tokio::process::Command;

use crate::procs::Proc;

/// A free 127.0.0.1 port (bound, then released for nginx to take).
pub fn free_port() -> Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// The config: server `listen[i]` proxies to `upstreams[i]`.
pub fn config(dir: &Path, pairs: &[(SocketAddr, SocketAddr)]) -> String {
    let d = dir.display();
    let mut upstreams = String::new();
    let mut servers = String::new();
    for (i, (listen, upstream)) in pairs.iter().enumerate() {
        upstreams.push_str(&format!(
            "    upstream mock{i} {{\n        server {upstream};\n        keepalive 64;\n        keepalive_requests 1000000;\n    }}\n"
        ));
        servers.push_str(&format!(
            r#"    server {{
        listen {listen};
        location / {{
            proxy_pass http://mock{i};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
"#
        ));
    }
    format!(
        r#"# Written by backstop-bench; see bench/README.md.
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    # Reconnecting every 1000 requests (the default) would show up at p99.9.
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{upstreams}{servers}}}
"#
    )
}

/// Writes the config into `dir` and starts `nginx` with it.
pub fn start(nginx: &Path, dir: &Path, pairs: &[(SocketAddr, SocketAddr)]) -> Result<Proc> {
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config(dir, pairs))
        .with_context(|| format!("write {}", conf.display()))?;
    let mut cmd = Command::new(nginx);
    cmd.arg("-p").arg(dir).arg("-c").arg(&conf);
    Proc::spawn_quiet("nginx", cmd, &dir.join("nginx-stdout.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_required_directives() {
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2000".parse().unwrap();
        let text = config(Path::new("/tmp/x"), &[(a, b)]);
        for want in [
            "worker_processes 1;",
            "pid /tmp/x/nginx.pid;",
            "access_log off;",
            "keepalive 64;",
            "listen 127.0.0.1:1000;",
            "server 127.0.0.1:2000;",
            "proxy_http_version 1.1;",
            "proxy_set_header Connection \"\";",
            "proxy_buffering off;",
        ] {
            assert!(text.contains(want), "{want} missing from\n{text}");
        }
    }
}
