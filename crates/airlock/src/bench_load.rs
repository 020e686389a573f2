//! The load generator behind `airlock bench`: concurrent HTTPS requests over a route (direct,
//! or through a proxy), with throughput and latency percentiles.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::client::{Route, send};

pub struct Stats {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub lat_us: Vec<u32>,
}

impl Stats {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    pub fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((self.lat_us.len() - 1) as f64 * p).round() as usize;
        f64::from(self.lat_us[i]) / 1000.0
    }
    pub fn line(&self, label: &str) -> String {
        format!(
            "{label:<8} {:>10.0} req/s   p50 {:>7.3} ms   p90 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} errors)",
            self.rps(),
            self.pct(0.50),
            self.pct(0.90),
            self.pct(0.99),
            self.requests,
            self.errors
        )
    }
}

/// Runs `connections` workers against `url` for `duration`, worker `i` on `routes[i % len]`.
pub async fn measure(
    routes: &[Route],
    url: &str,
    connections: usize,
    duration: Duration,
    new_tunnel: bool,
) -> anyhow::Result<Stats> {
    let uri: http::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("the target must be an https:// URL");
    }
    let host = uri.host().context("target has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(443);
    let path = uri.path_and_query().map_or("/".to_string(), |p| p.to_string());
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_default();
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for i in 0..connections {
        let route = routes
            .get(i % routes.len().max(1))
            .context("no route to measure")?
            .clone();
        let (host, path, authority) = (host.clone(), path.clone(), authority.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut conn = None;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                if conn.is_none() || new_tunnel {
                    match route.connect(&host, port).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let req = Request::get(path.as_str())
                    .header("host", authority.as_str())
                    .header("authorization", "Bearer airlock-bench")
                    .body(Full::new(Bytes::new()));
                let ok = match req {
                    Ok(req) => matches!(send(c, req).await, Ok((r, _)) if r.status().is_success()),
                    Err(_) => false,
                };
                if ok {
                    lat.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                } else {
                    errors += 1;
                    conn = None;
                }
            }
            (lat, errors)
        }));
    }
    let mut lat_us = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        lat_us.extend(l);
        errors += e;
    }
    lat_us.sort_unstable();
    Ok(Stats {
        requests: lat_us.len() as u64,
        errors,
        elapsed: start.elapsed(),
        lat_us,
    })
}

pub fn mode(new_tunnel: bool) -> &'static str {
    if new_tunnel {
        "new CONNECT + TLS per request"
    } else {
        "keep-alive"
    }
}

pub fn print_pair(direct: &Stats, proxied: &Stats) {
    println!("{}", direct.line("direct"));
    println!("{}", proxied.line("proxied"));
    println!(
        "ratio    {:.2}× direct throughput · added p50 {:+.3} ms · added p99 {:+.3} ms",
        proxied.rps() / direct.rps().max(1.0),
        proxied.pct(0.5) - direct.pct(0.5),
        proxied.pct(0.99) - direct.pct(0.99)
    );
}
