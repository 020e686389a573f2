//! `airlock bench --local`: a self-contained measurement. An HTTPS upstream runs in this
//! process; the gateway runs as a real `airlock serve` child, so its CPU time per request
//! and its resident memory come from /proc, apart from the client's and upstream's.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http::Response;
use http_body_util::StreamBody;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt;
use tokio::net::TcpListener;

use crate::bench_load::{Stats, measure, mode, print_pair};
use crate::client::Route;

/// A two-frame response body. With `split`, the second frame comes after a yield, so the
/// server writes headers and body separately: the pattern that Nagle's algorithm stalls.
struct Frames {
    parts: Vec<Bytes>,
    split: bool,
    yielded: bool,
}

impl futures_util::Stream for Frames {
    type Item = Result<hyper::body::Frame<Bytes>, std::convert::Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.split && !self.yielded && self.parts.len() == 1 {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.parts.is_empty() {
            return Poll::Ready(None);
        }
        Poll::Ready(Some(Ok(hyper::body::Frame::data(self.parts.remove(0)))))
    }
}

const BODY: &[u8] = b"{\"messages\":[{\"id\":\"m1\",\"subject\":\"benchmark\"}],\"ok\":true}";

async fn start_upstream(dir: &std::path::Path, split: bool, http1_only: bool) -> anyhow::Result<u16> {
    let alpn: &[&[u8]] = if http1_only {
        &[b"http/1.1"]
    } else {
        &[b"h2", b"http/1.1"]
    };
    let acceptor = crate::local::upstream_tls(dir, alpn)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            // Nodelay on: the stalls measured are the ones the gateway's own hops would add.
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let svc = hyper::service::service_fn(move |_req| async move {
                    let parts = vec![Bytes::from_static(&BODY[..20]), Bytes::from_static(&BODY[20..])];
                    let body = StreamBody::new(Frames {
                        parts,
                        split,
                        yielded: false,
                    });
                    // Like most APIs, the upstream declares the length of what it sends.
                    let mut resp = Response::new(body);
                    resp.headers_mut()
                        .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(BODY.len()));
                    Ok::<_, std::convert::Infallible>(resp)
                });
                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                let _ = builder.serve_connection(TokioIo::new(tls), svc).await;
            });
        }
    });
    Ok(port)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// (utime + stime) in clock ticks, and VmRSS in kB, of a process.
fn proc_usage(pid: u32) -> anyhow::Result<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("bad /proc stat")?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok((ticks, rss))
}

/// Linux reports CPU time in USER_HZ ticks, 100 per second on every mainstream kernel.
const TICKS_PER_SEC: f64 = 100.0;

/// The bench's config for a gateway listening on `ports` (proxy, control), with `store` appended.
fn config(ports: (u16, u16), api_port: u16, store: &str) -> String {
    let (proxy_port, control_port) = ports;
    format!(
        r#"[gateway]
listen = "127.0.0.1:{proxy_port}"
control = "127.0.0.1:{control_port}"
data_dir = "data"
allow_private = ["127.0.0.1:{api_port}"]
upstream_ca = ["upstream-ca.pem"]

[[agents]]
name = "bench"
secrets = ["api"]

[secrets.api]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {{secret}}"
placeholder = "airlock-bench"

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"

[people.alice]
roles = ["owner"]

[[rules]]
name = "sends need a human"
hosts = ["localhost"]
methods = ["POST"]
paths = ["/send"]
action = "approve"
approvers = ["owner"]
timeout = "30m"

[approvals]
# The held-requests measurement holds up to 10,000 from this one agent.
max_held_per_agent = 10000
{store}"#
    )
}

/// Starts `airlock serve --config cfg` and waits until it listens; its later output is shown.
async fn spawn_serve(cfg: &std::path::Path) -> anyhow::Result<(tokio::process::Child, u32)> {
    // AIRLOCK_BENCH_WRAP runs the gateway under a profiler (`heaptrack`, `perf record -g --`);
    // its pid is then the wrapper's, so CPU and RSS figures are not the gateway's alone.
    let wrap = std::env::var("AIRLOCK_BENCH_WRAP").unwrap_or_default();
    let mut argv: Vec<String> = wrap.split_whitespace().map(str::to_owned).collect();
    argv.push(std::env::current_exe()?.to_string_lossy().into_owned());
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .args(["--config", &cfg.to_string_lossy(), "serve"])
        .env("AIRLOCK_LOG", "warn")
        // The child serves the store this setup created, whatever the caller's store is.
        .env_remove(crate::home::STORE_URL_ENV)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start airlock serve")?;
    let pid = child.id().context("child has no pid")?;
    let mut lines = tokio::io::BufReader::new(child.stderr.take().context("no stderr")?).lines();
    loop {
        match lines.next_line().await? {
            Some(l) if l.contains("proxy on") => break,
            Some(l) => eprintln!("{l}"),
            None => bail!("airlock serve exited before listening"),
        }
    }
    // Whatever the gateway reports during the run (warnings and errors) is shown, not swallowed.
    tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            eprintln!("gateway: {l}");
        }
    });
    Ok((child, pid))
}

/// CPU ticks and RSS (kB) summed over `pids`.
fn usage(pids: &[u32]) -> anyhow::Result<(u64, u64)> {
    pids.iter().try_fold((0, 0), |(t, r), &pid| {
        let (ticks, rss) = proc_usage(pid)?;
        Ok((t + ticks, r + rss))
    })
}

/// A running setup: the upstream in this process, the gateway child(ren), the routes to both.
pub struct Local {
    /// Holds the temporary directory (config, data, CAs) for as long as the setup runs.
    _tmp: tempfile::TempDir,
    children: Vec<tokio::process::Child>,
    pids: Vec<u32>,
    direct: Vec<Route>,
    proxied: Vec<Route>,
    target: String,
    api_port: u16,
    store: crate::home::StoreAt,
    gateway_ca: std::path::PathBuf,
    /// How the run is described in the first line of the output.
    pub describe: String,
}

/// One direct and one proxied measurement, and the gateway's cost for the proxied one.
pub struct Pair {
    pub direct: Stats,
    pub proxied: Stats,
    /// Gateway CPU (user + system, all replicas) per proxied request, µs.
    pub cpu_us: f64,
    /// Gateway RSS (all replicas) after the proxied run, MB.
    pub rss_mb: f64,
}

impl Local {
    pub async fn start(a: &crate::bench::BenchArgs) -> anyhow::Result<Local> {
        let replicas = a.replicas;
        if replicas == 0 {
            bail!("--replicas must be at least 1");
        }
        if replicas > 1 && a.store.is_none() {
            bail!("--replicas {replicas} needs --store postgres://… (replicas share one database)");
        }
        if replicas > 1 && (a.idle > 0 || a.held > 0 || a.suite) {
            bail!("--idle, --held and --suite measure one gateway: use them without --replicas");
        }
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path();
        let api_port = start_upstream(dir, a.split_writes, a.upstream_http1).await?;
        let store = a
            .store
            .as_ref()
            .map_or(String::new(), |url| format!("\n[store]\nurl = {url:?}\n"));
        let ports = (0..replicas)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (home, opened, token) = crate::local::home(
            dir,
            &config(ports[0], api_port, &store),
            ("api", b"real-bench-key"),
            "bench",
        )
        .await?;
        opened.store.close().await;
        let mut children = vec![spawn_serve(&dir.join("airlock.toml")).await?];
        // Further replicas: a directory each, with the first one's CA, master key and control token.
        for (i, p) in ports.iter().enumerate().skip(1) {
            let replica = dir.join(format!("replica-{i}"));
            std::fs::create_dir_all(replica.join("data"))?;
            for f in ["ca.pem", "ca-key.pem", "master.key", "control.token"] {
                std::fs::copy(home.data_dir().join(f), replica.join("data").join(f))?;
            }
            std::fs::copy(dir.join("upstream-ca.pem"), replica.join("upstream-ca.pem"))?;
            std::fs::write(replica.join("airlock.toml"), config(*p, api_port, &store))?;
            children.push(spawn_serve(&replica.join("airlock.toml")).await?);
        }
        let pids: Vec<u32> = children.iter().map(|(_, pid)| *pid).collect();
        let target = format!("https://localhost:{api_port}/gmail/v1/users/me/messages");
        let up_ca = std::fs::read(dir.join("upstream-ca.pem"))?;
        let gw_ca = std::fs::read(home.ca_cert_path())?;
        let direct = vec![Route::new(None, &[&up_ca])?];
        let proxied = ports
            .iter()
            .map(|(proxy_port, _)| Route::new(Some(&format!("http://bench:{token}@127.0.0.1:{proxy_port}")), &[&gw_ca]))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let describe = format!(
            "upstream {} writes, {} · {replicas} gateway{} on {}",
            if a.split_writes { "split" } else { "single" },
            if a.upstream_http1 { "HTTP/1.1" } else { "HTTP/2 offered" },
            if replicas == 1 { "" } else { "s" },
            home.store.describe()
        );
        Ok(Local {
            _tmp: tmp,
            children: children.into_iter().map(|(c, _)| c).collect(),
            pids,
            direct,
            proxied,
            target,
            api_port,
            store: home.store.clone(),
            gateway_ca: home.ca_cert_path(),
            describe,
        })
    }

    /// Warms both paths up (pools, leaf certificates, session caches), then measures direct
    /// and proxied for `dur` each with `connections` workers.
    pub async fn pair(&self, connections: usize, dur: Duration, new_tunnel: bool) -> anyhow::Result<Pair> {
        let warm = connections.min(4).max(self.proxied.len());
        measure(&self.direct, &self.target, warm, Duration::from_millis(500), new_tunnel).await?;
        measure(
            &self.proxied,
            &self.target,
            warm,
            Duration::from_millis(500),
            new_tunnel,
        )
        .await?;
        let direct = measure(&self.direct, &self.target, connections, dur, new_tunnel).await?;
        let (t0, _) = usage(&self.pids)?;
        let proxied = measure(&self.proxied, &self.target, connections, dur, new_tunnel).await?;
        let (t1, rss) = usage(&self.pids)?;
        let cpu_us = (t1 - t0) as f64 / TICKS_PER_SEC * 1e6 / (proxied.requests.max(1) as f64);
        Ok(Pair {
            direct,
            proxied,
            cpu_us,
            rss_mb: rss as f64 / 1024.0,
        })
    }

    /// The gateway's RSS (MB) with `n` idle agent connections open (CONNECT + TLS done).
    pub async fn idle_rss(&self, n: usize) -> anyhow::Result<f64> {
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(self.proxied[0].connect("localhost", self.api_port).await?);
        }
        let (_, rss) = proc_usage(self.pids[0])?;
        drop(held);
        Ok(rss as f64 / 1024.0)
    }

    /// The gateway's RSS (MB) before and while `n` requests are held for approval.
    pub async fn held_rss(&self, n: usize) -> anyhow::Result<(f64, f64)> {
        held_rss(&self.proxied[0], self.api_port, n, self.pids[0], &self.store).await
    }

    /// Prints how to reach the setup as one JSON line, then keeps it until stdin closes.
    async fn keep(self) -> anyhow::Result<()> {
        let (hostport, credentials) = self.proxied[0]
            .proxy
            .clone()
            .context("the proxied route has no proxy")?;
        let basic = base64::engine::general_purpose::STANDARD.encode(credentials.unwrap_or_default());
        let line = serde_json::json!({
            "target": self.target,
            "target_ca": self._tmp.path().join("upstream-ca.pem"),
            "proxy": format!("http://{hostport}"),
            "proxy_authorization": format!("Basic {basic}"),
            "proxy_ca": self.gateway_ca,
            "gateway_pid": self.pids[0],
        });
        println!("{line}");
        // Until the caller closes stdin (or goes away): the setup is the measurement's subject.
        let _ =
            tokio::task::spawn_blocking(|| std::io::Read::read_to_end(&mut std::io::stdin(), &mut Vec::new())).await;
        self.stop().await;
        Ok(())
    }

    pub async fn stop(mut self) {
        for c in &mut self.children {
            let _ = c.kill().await;
        }
    }
}

pub async fn run(a: &crate::bench::BenchArgs) -> anyhow::Result<()> {
    if a.suite {
        return crate::bench_suite::run(a).await;
    }
    let local = Local::start(a).await?;
    if a.keep {
        return local.keep().await;
    }
    println!(
        "airlock bench --local · {} connections · {}s each · {} · {}",
        a.connections,
        a.duration,
        mode(a.new_tunnel),
        local.describe
    );
    let p = local
        .pair(a.connections, Duration::from_secs(a.duration), a.new_tunnel)
        .await?;
    print_pair(&p.direct, &p.proxied);
    println!(
        "gateway  {:.1} µs CPU per proxied request · RSS {:.1} MB{}",
        p.cpu_us,
        p.rss_mb,
        if a.replicas == 1 { "" } else { " (all replicas)" }
    );
    if a.idle > 0 {
        let rss = local.idle_rss(a.idle).await?;
        println!(
            "idle     {} open agent connections (CONNECT + TLS) · gateway RSS {rss:.1} MB",
            a.idle
        );
    }
    if a.held > 0 {
        let (before, rss) = local.held_rss(a.held).await?;
        println!(
            "held     {} requests waiting for approval (one agent connection each) · gateway RSS {rss:.1} MB (was {before:.1} MB)",
            a.held
        );
    }
    local.stop().await;
    Ok(())
}

/// Holds `n` requests for approval at once, each on its own agent connection (CONNECT + TLS,
/// a ~1 KB JSON body), waits until the gateway has persisted all of them, and reports its RSS.
async fn held_rss(
    proxied: &Route,
    port: u16,
    n: usize,
    pid: u32,
    at: &crate::home::StoreAt,
) -> anyhow::Result<(f64, f64)> {
    let (_, before) = proc_usage(pid)?;
    let body = format!(
        r#"{{"to":"bob@example.com","subject":"report","text":"{}"}}"#,
        "x".repeat(900)
    );
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let mut conn = proxied.connect("localhost", port).await?;
        let req = http::Request::builder()
            .method("POST")
            .uri("/send")
            .header("host", format!("localhost:{port}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(Bytes::from(body.clone())))?;
        tasks.push(tokio::spawn(async move { crate::client::send(&mut conn, req).await }));
    }
    let store = at.open().await?;
    let started = std::time::Instant::now();
    loop {
        let pending = store.list_approvals(Some("pending"), i64::MAX).await?.len();
        if pending >= n {
            break;
        }
        if started.elapsed() > Duration::from_secs(300) {
            bail!("only {pending} of {n} requests were held after 300 s");
        }
        // A measurement tool polling the database, not a test waiting on an event.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (_, rss) = proc_usage(pid)?;
    for t in tasks {
        t.abort();
    }
    Ok((before as f64 / 1024.0, rss as f64 / 1024.0))
}
