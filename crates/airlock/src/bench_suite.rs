//! `airlock bench --local --suite [--json]`: every row of the gateway table in
//! `docs/performance.md`, from one setup, so a script can compare runs (`scripts/perf-table`
//! runs it three times and rewrites the table with the medians).

use std::time::Duration;

use serde_json::json;

use crate::bench_local::{Local, Pair};

/// The rows, as `docs/performance.md` names them.
const KEEPALIVE_CONNS: usize = 32;
const LATENCY_CONNS: usize = 1;
const NEW_TUNNEL_CONNS: usize = 8;
const IDLE: usize = 1_000;
const HELD: usize = 10_000;

fn throughput(p: &Pair) -> serde_json::Value {
    json!({
        "direct_rps": round(p.direct.rps(), 0),
        "proxied_rps": round(p.proxied.rps(), 0),
        "ratio": round(p.proxied.rps() / p.direct.rps().max(1.0), 3),
        "direct_p50_ms": round(p.direct.pct(0.5), 3),
        "proxied_p50_ms": round(p.proxied.pct(0.5), 3),
        "added_p50_ms": round(p.proxied.pct(0.5) - p.direct.pct(0.5), 3),
        "added_p99_ms": round(p.proxied.pct(0.99) - p.direct.pct(0.99), 3),
        "cpu_us_per_request": round(p.cpu_us, 1),
        "errors": p.direct.errors + p.proxied.errors,
    })
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

/// The machine, as the table's header names it.
fn machine() -> serde_json::Value {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    json!({ "cores": cores, "model": model })
}

pub async fn run(a: &crate::bench::BenchArgs) -> anyhow::Result<()> {
    let local = Local::start(a).await?;
    let dur = Duration::from_secs(a.duration);
    let say = |what: &str| {
        if !a.json {
            eprintln!("bench: {what}");
        }
    };
    say("keep-alive, 32 connections");
    let keepalive = local.pair(KEEPALIVE_CONNS, dur, false).await?;
    say("keep-alive, 1 connection");
    let latency = local.pair(LATENCY_CONNS, dur, false).await?;
    say("new CONNECT + TLS per request, 8 connections");
    let tunnels = local.pair(NEW_TUNNEL_CONNS, dur, true).await?;
    say("1,000 idle agent connections");
    let idle = local.idle_rss(IDLE).await?;
    say("10,000 held requests");
    let (before_held, held) = local.held_rss(HELD).await?;
    let report = json!({
        "machine": machine(),
        "command": format!("airlock bench --local --suite -d {}", a.duration),
        "setup": local.describe,
        "keepalive_c32": throughput(&keepalive),
        "keepalive_c1": throughput(&latency),
        "new_tunnel_c8": throughput(&tunnels),
        "idle_1000_rss_mb": round(idle, 1),
        "held_10000_rss_mb": round(held, 1),
        "held_10000_rss_before_mb": round(before_held, 1),
    });
    local.stop().await;
    if a.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "airlock bench --local --suite · {}s per measurement · {}",
        a.duration, report["setup"]
    );
    for (label, key) in [
        ("keep-alive, 32 connections", "keepalive_c32"),
        ("keep-alive, 1 connection", "keepalive_c1"),
        ("new CONNECT + TLS per request, 8 connections", "new_tunnel_c8"),
    ] {
        let r = &report[key];
        println!(
            "{label:<46} {:>9} req/s direct · {:>9} proxied · {:.3}× · added p50 {:+.3} ms · {:.1} µs CPU/request",
            r["direct_rps"],
            r["proxied_rps"],
            r["ratio"].as_f64().unwrap_or(0.0),
            r["added_p50_ms"].as_f64().unwrap_or(0.0),
            r["cpu_us_per_request"].as_f64().unwrap_or(0.0),
        );
    }
    println!("RSS with {IDLE} idle agent connections: {idle:.1} MB");
    println!("RSS with {HELD} held requests: {held:.1} MB (was {before_held:.1} MB)");
    Ok(())
}
