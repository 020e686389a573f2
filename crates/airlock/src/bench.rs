//! `airlock bench`: drives concurrent HTTPS requests through a proxy and directly, side by
//! side in one run, and prints throughput and latency percentiles.
//!
//! `--local` builds the whole setup itself: an HTTPS upstream in this process and a real
//! `airlock serve` child process (so its CPU time and memory can be read from /proc),
//! with a secret injected into every proxied request.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::bench_load::{measure, mode};
use crate::client::Route;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// Proxy URL, e.g. http://agent:token@127.0.0.1:3128.
    #[arg(long)]
    pub proxy: Option<String>,
    /// The CA the proxy signs intercepted connections with (airlock ca path).
    #[arg(long)]
    pub proxy_ca: Option<PathBuf>,
    /// The HTTPS URL to request.
    #[arg(long)]
    pub target: Option<String>,
    /// A CA for the target's own certificate (for the direct measurement).
    #[arg(long)]
    pub target_ca: Option<PathBuf>,
    /// Also measure the direct path (side by side).
    #[arg(long)]
    pub direct: bool,
    /// Build a local upstream and an `airlock serve` child process, and measure both paths.
    #[arg(long)]
    pub local: bool,
    /// Concurrent connections.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub connections: usize,
    /// Seconds per measurement.
    #[arg(short = 'd', long, default_value_t = 5)]
    pub duration: u64,
    /// Open a new tunnel (CONNECT + TLS) for every request instead of keep-alive.
    #[arg(long)]
    pub new_tunnel: bool,
    /// (--local) The upstream writes headers and body in separate writes (a Nagle check).
    #[arg(long)]
    pub split_writes: bool,
    /// (--local) The upstream offers HTTP/1.1 only (ALPN), so the gateway pools HTTP/1.1 connections.
    #[arg(long)]
    pub upstream_http1: bool,
    /// (--local) Hold this many idle agent connections open and report the gateway's RSS.
    #[arg(long, default_value_t = 0)]
    pub idle: usize,
    /// (--local) Hold this many requests for approval at once (one agent connection each)
    /// and report the gateway's RSS.
    #[arg(long, default_value_t = 0)]
    pub held: usize,
    /// (--local) The store: a PostgreSQL URL naming an empty database (default: a SQLite file
    /// in the temporary directory).
    #[arg(long)]
    pub store: Option<String>,
    /// (--local) The whole table of docs/performance.md in one run: keep-alive at 32 and 1
    /// connections, new tunnels at 8, 1,000 idle connections, 10,000 held requests.
    #[arg(long)]
    pub suite: bool,
    /// (--local --suite) One JSON object instead of the table (every row; ratios, µs, MB).
    #[arg(long)]
    pub json: bool,
    /// (--local) Gateway replicas sharing the store (more than one needs --store); connections
    /// are spread over them round-robin.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    /// (--local) Measure nothing: print the setup (target, CAs, proxy, gateway pid) as one JSON
    /// line and keep it running until stdin closes, for a second load generator
    /// (scripts/oha-compare).
    #[arg(long)]
    pub keep: bool,
}

pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    if a.local {
        return crate::bench_local::run(&a).await;
    }
    let target = a
        .target
        .as_deref()
        .context("--target URL is required (or use --local)")?;
    let dur = Duration::from_secs(a.duration);
    let target_ca = match &a.target_ca {
        Some(p) => vec![std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?],
        None => vec![],
    };
    let roots: Vec<&[u8]> = target_ca.iter().map(|v| v.as_slice()).collect();
    println!(
        "target {target} · {} connections · {}s · {}",
        a.connections,
        a.duration,
        mode(a.new_tunnel)
    );
    if a.direct {
        let s = measure(&[Route::new(None, &roots)?], target, a.connections, dur, a.new_tunnel).await?;
        println!("{}", s.line("direct"));
    }
    if let Some(proxy) = &a.proxy {
        let ca = std::fs::read(
            a.proxy_ca
                .as_ref()
                .context("--proxy-ca FILE is required with --proxy")?,
        )?;
        let s = measure(
            &[Route::new(Some(proxy), &[&ca])?],
            target,
            a.connections,
            dur,
            a.new_tunnel,
        )
        .await?;
        println!("{}", s.line("proxied"));
    }
    Ok(())
}
