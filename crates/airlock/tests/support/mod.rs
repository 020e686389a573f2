//! Test harness: real processes, real sockets, real TLS. A local HTTPS (or plain) upstream
//! that records what it receives, and an `airlock serve` child configured per test.
#![allow(dead_code)]

pub mod bwrap;
pub mod replicas;
pub mod time;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");
/// Removed from every child's environment (a developer's own would redirect the tests' store);
/// tests of the PostgreSQL store set it explicitly.
pub const STORE_URL_ENV: &str = "AIRLOCK_STORE_URL";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct Upstream {
    pub port: u16,
    /// PEM of the CA that signed the upstream's certificate (None for plain HTTP).
    pub ca_pem: Option<String>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<AtomicUsize>,
}

impl Upstream {
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    pub fn last(&self) -> Seen {
        self.requests()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }
    pub fn contacted(&self) -> bool {
        self.connections.load(Ordering::SeqCst) > 0
    }
}

pub type TestBody = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

/// A test's own answers: given the recorded request, a response, or `None` for the
/// standard ones below.
pub type Custom = Arc<dyn Fn(&Seen) -> Option<Response<TestBody>> + Send + Sync>;

async fn respond(
    mut req: Request<Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
    custom: Option<Custom>,
) -> Response<TestBody> {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let path = req.uri().path().to_string();
    let upgrade = if path == "/ws" {
        Some(hyper::upgrade::on(&mut req))
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        target: parts.uri.path_and_query().map_or("/".into(), |p| p.to_string()),
        version: format!("{:?}", parts.version),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.clone(),
    });
    let last = seen.lock().unwrap().last().cloned();
    if let Some(r) = custom.zip(last).and_then(|(c, s)| c(&s)) {
        return r;
    }
    let full = |b: Vec<u8>| Full::new(Bytes::from(b)).boxed();
    match path.as_str() {
        // Echoes the credential in a header and in the body, one byte per frame, so a
        // scrubber must work across chunk boundaries.
        "/echo-auth" => {
            let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
                format!("you sent: {auth} (twice: {auth})")
                    .into_bytes()
                    .into_iter()
                    .map(|b| Ok(Frame::data(Bytes::from(vec![b]))))
                    .collect();
            let mut r = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            r.headers_mut()
                .insert("x-echo", auth.parse().unwrap_or(http::HeaderValue::from_static("-")));
            r
        }
        "/echo-body" => Response::new(full(body)),
        "/redirect" => {
            let mut r = Response::new(full(b"moved".to_vec()));
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut()
                .insert("location", http::HeaderValue::from_static("https://elsewhere.example/"));
            r
        }
        "/ws" => {
            if let Some(up) = upgrade {
                tokio::spawn(async move {
                    if let Ok(io) = up.await {
                        let mut io = TokioIo::new(io);
                        let (mut r, mut w) = tokio::io::split(&mut io);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    }
                });
            }
            let mut r = Response::new(full(vec![]));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut()
                .insert("upgrade", http::HeaderValue::from_static("websocket"));
            r.headers_mut()
                .insert("connection", http::HeaderValue::from_static("upgrade"));
            r.headers_mut().insert(
                "sec-websocket-accept",
                http::HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            );
            r
        }
        _ => Response::new(full(b"ok".to_vec())),
    }
}

/// Serves `localhost`'s certificate, or the `127.0.0.1` one when the client sends no SNI
/// (clients send none for IP addresses).
#[derive(Debug)]
pub struct BySni {
    pub name: Arc<rustls::sign::CertifiedKey>,
    pub ip: Arc<rustls::sign::CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(if hello.server_name().is_some() {
            self.name.clone()
        } else {
            self.ip.clone()
        })
    }
}

/// An upstream on 127.0.0.1:0. With `tls`, its certificate names `localhost` and
/// `127.0.0.1`, signed by its own CA; it speaks HTTP/1.1 and HTTP/2 (ALPN).
pub async fn upstream(tls: bool) -> Upstream {
    upstream_custom(tls, None).await
}

/// [`upstream`], answering first with `custom`.
pub async fn upstream_custom(tls: bool, custom: Option<Custom>) -> Upstream {
    upstream_on([127, 0, 0, 1].into(), "localhost", tls, custom).await
}

/// [`upstream_custom`] listening on `ip` (a free port), its certificate naming `name` and `ip`.
pub async fn upstream_on(ip: std::net::IpAddr, name: &str, tls: bool, custom: Option<Custom>) -> Upstream {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let connections = Arc::new(AtomicUsize::new(0));
    let (acceptor, ca_pem) = if tls {
        let (ca, files) = airlock_tls::CertificateAuthority::generate("test upstream CA").unwrap();
        let leaves = airlock_tls::LeafCache::new(Arc::new(ca), 4);
        let resolver = BySni {
            name: leaves.get(name).unwrap(),
            ip: leaves.get(&ip.to_string()).unwrap(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver));
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        (
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(cfg))),
            Some(files.cert_pem.clone()),
        )
    } else {
        (None, None)
    };
    let (s, c) = (seen.clone(), connections.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let (acceptor, seen, custom) = (acceptor.clone(), s.clone(), custom.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let (seen, custom) = (seen.clone(), custom.clone());
                    async move { Ok::<_, std::convert::Infallible>(respond(req, seen, custom).await) }
                });
                let b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                match acceptor {
                    Some(a) => {
                        if let Ok(tls) = a.accept(tcp).await {
                            let _ = b.serve_connection_with_upgrades(TokioIo::new(tls), svc).await;
                        }
                    }
                    None => {
                        let _ = b.serve_connection_with_upgrades(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    });
    Upstream {
        port,
        ca_pem,
        seen,
        connections,
    }
}

/// A running `airlock serve` with its own data directory.
pub struct Gateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub child: Option<Child>,
    pub proxy: SocketAddr,
    pub control: SocketAddr,
    /// `gateway.postgres_listen`, when the config sets it.
    pub databases: Option<SocketAddr>,
    pub log: PathBuf,
    /// Copies the serve process's stderr to `log`; done once the process has exited.
    log_writer: Option<std::thread::JoinHandle<()>>,
    /// Proxy URLs by agent name.
    pub agents: Vec<(String, String)>,
}

/// Runs the CLI; `stdin` is piped when given.
pub fn airlock(config: &Path, args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env_remove(STORE_URL_ENV)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn airlock");
    if let Some(data) = stdin {
        child.stdin.take().unwrap().write_all(data).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `airlock init` in a temporary directory, then the test's own airlock.toml.
pub fn setup(config_body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir.path())
        .env_remove(STORE_URL_ENV)
        .output()
        .unwrap();
    assert!(out.status.success(), "init failed: {}", text(&out));
    let config = dir.path().join("airlock.toml");
    std::fs::write(&config, config_body).unwrap();
    (dir, config)
}

/// An initialized `dir` whose store is the PostgreSQL database `store_url`, configured with
/// [`ONE_SECRET`] for `up`, the secret sealed as `value` and agent `a` issued: serving.
pub fn serve_one_secret_on(dir: tempfile::TempDir, store_url: &str, up: &Upstream, value: &str) -> Gateway {
    let config = dir.path().join("airlock.toml");
    let body = format!("{}{ONE_SECRET}\n[store]\nurl = {store_url:?}\n", gateway_section(&[up]));
    std::fs::write(&config, body).unwrap();
    std::fs::write(dir.path().join("upstream-0.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let o = airlock(&config, &["secret", "set", "k"], Some(value.as_bytes()), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = airlock(&config, &["agent", "add", "a"], None, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
    Gateway::serving(dir, config, vec![("a".into(), url)])
}

/// Agent `a` with secret `k` (header X-Key) for the local upstream, and a rule allowing it all.
pub const ONE_SECRET: &str = "[[agents]]\nname = \"a\"\nsecrets = [\"k\"]\n[secrets.k]\nhosts = [\"localhost\"]\n\
    header = \"X-Key\"\nplaceholder = \"airlock-k-placeholder\"\n[[rules]]\nname = \"all\"\nhosts = [\"localhost\"]\n\
    action = \"allow\"\n";

/// The `[gateway]` table every test uses: free ports, the test upstream trusted and allowed.
pub fn gateway_section(upstreams: &[&Upstream]) -> String {
    let mut allow = Vec::new();
    let mut cas = Vec::new();
    for (i, u) in upstreams.iter().enumerate() {
        allow.push(format!("\"127.0.0.1:{}\"", u.port));
        if u.ca_pem.is_some() {
            cas.push(format!("\"upstream-{i}.pem\""));
        }
    }
    format!(
        "[gateway]\nlisten = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\ndata_dir = \"./airlock-data\"\nallow_private = [{}]\nupstream_ca = [{}]\n\n",
        allow.join(", "),
        cas.join(", ")
    )
}

impl Gateway {
    /// Sets up, seals `secrets`, issues tokens for `agents`, and starts serving.
    pub fn start(upstreams: &[&Upstream], config_rest: &str, secrets: &[(&str, &str)], agents: &[&str]) -> Gateway {
        Gateway::start_env(upstreams, config_rest, secrets, agents, &[])
    }

    /// [`Gateway::start`] with environment variables for the serve process (channel
    /// credentials are read from the environment).
    pub fn start_env(
        upstreams: &[&Upstream],
        config_rest: &str,
        secrets: &[(&str, &str)],
        agents: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let body = format!("{}{config_rest}", gateway_section(upstreams));
        let (dir, config) = setup(&body);
        for (i, u) in upstreams.iter().enumerate() {
            if let Some(pem) = &u.ca_pem {
                std::fs::write(dir.path().join(format!("upstream-{i}.pem")), pem).unwrap();
            }
        }
        for (name, value) in secrets {
            let o = airlock(&config, &["secret", "set", name], Some(value.as_bytes()), &[]);
            assert!(o.status.success(), "secret set: {}", text(&o));
        }
        let mut urls = Vec::new();
        for a in agents {
            let o = airlock(&config, &["agent", "add", a], None, &[]);
            assert!(o.status.success(), "agent add: {}", text(&o));
            let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
            urls.push((a.to_string(), url));
        }
        Gateway::serving_env(dir, config, urls, env)
    }

    /// Starts `airlock serve` on an already set-up directory.
    pub fn serving(dir: tempfile::TempDir, config: PathBuf, agents: Vec<(String, String)>) -> Gateway {
        Gateway::serving_env(dir, config, agents, &[])
    }

    fn serving_env(
        dir: tempfile::TempDir,
        config: PathBuf,
        agents: Vec<(String, String)>,
        env: &[(&str, &str)],
    ) -> Gateway {
        let mut g = Gateway {
            dir,
            config,
            child: None,
            proxy: "0.0.0.0:0".parse().unwrap(),
            control: "0.0.0.0:0".parse().unwrap(),
            databases: None,
            log: PathBuf::new(),
            log_writer: None,
            agents,
        };
        g.serve(env);
        g
    }

    /// Starts `airlock serve` and waits for the line naming its listeners. Its log is text
    /// (the tests read it as a person would); [`Gateway::serve_with`] chooses otherwise.
    pub fn serve(&mut self, env: &[(&str, &str)]) {
        let mut env = env.to_vec();
        env.insert(0, ("AIRLOCK_LOG_FORMAT", "text"));
        self.serve_with(&env, &[]);
    }

    /// [`Gateway::serve`] with more arguments after `serve` (e.g. `--log-format json`), the log
    /// format left to them, to `env` and to airlock's own default.
    pub fn serve_with(&mut self, env: &[(&str, &str)], args: &[&str]) {
        self.log = self.dir.path().join(format!(
            "serve-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let mut cmd = Command::new(BIN);
        cmd.arg("--config")
            .arg(&self.config)
            .arg("serve")
            .args(args)
            .env_remove(STORE_URL_ENV)
            .env_remove("AIRLOCK_LOG_FORMAT")
            .env("AIRLOCK_LOG", "debug")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut file = std::fs::File::create(&self.log).unwrap();
        let writer = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if line.contains("proxy on") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(std::time::Duration::from_secs(30)).unwrap_or_else(|_| {
            panic!(
                "airlock serve did not start: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
        // "airlock: proxy on A, control plane on B"
        let addrs: Vec<SocketAddr> = line
            .split_whitespace()
            .filter_map(|w| w.trim_end_matches(',').parse().ok())
            .collect();
        self.proxy = addrs[0];
        self.control = addrs[1];
        self.databases = addrs.get(2).copied();
        self.child = Some(child);
        self.log_writer = Some(writer);
    }

    pub fn url(&self, agent: &str) -> String {
        let u = self.agents.iter().find(|(a, _)| a == agent).unwrap().1.clone();
        // agent add prints the configured listen address; the test gateway listens on port 0.
        let (creds, _) = u.trim_start_matches("http://").rsplit_once('@').unwrap();
        format!("http://{creds}@{}", self.proxy)
    }

    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("airlock-data/ca.pem")).unwrap()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("airlock-data/ca.pem")
    }

    /// A reqwest client for `agent`, trusting only the airlock CA.
    pub fn client(&self, agent: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(self.url(agent)).unwrap())
            .add_root_certificate(reqwest::Certificate::from_pem(&self.ca_pem()).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// With [`ONE_SECRET`]: a GET by agent `a` carrying the placeholder reaches `up` with `real`
    /// injected.
    pub async fn assert_injects(&self, up: &Upstream, real: &str) {
        let r = self
            .client("a")
            .get(format!("https://localhost:{}/", up.port))
            .header("x-key", "airlock-k-placeholder")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(up.last().header("x-key"), Some(real));
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        airlock(&self.config, args, None, &[])
    }

    /// The CLI pointed at this gateway's control plane (it listens on a port chosen at start).
    pub fn control_cli(&self, args: &[&str]) -> Output {
        let url = format!("http://{}", self.control);
        airlock(&self.config, args, None, &[("AIRLOCK_CONTROL_URL", &url)])
    }

    /// The control token, for calling the control plane's API directly.
    pub fn control_token(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("airlock-data/control.token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// SIGTERM and wait: the gateway flushes its audit log on the way out, and all it
    /// wrote is in `logs()` afterwards.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_free_kill(c.id());
            let _ = c.wait();
        }
        if let Some(w) = self.log_writer.take() {
            let _ = w.join();
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (10 s at most) until the log says `needle`: signals and reloads are handled on
    /// the gateway's own time.
    pub async fn wait_log(&self, needle: &str) {
        for _ in 0..500 {
            if self.logs().contains(needle) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the gateway never logged {needle:?}: {}", self.logs());
    }

    /// Audit records as JSON values (after `stop`).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        let o = self.cli(&["audit", "tail", "-n", "100000", "--json"]);
        assert!(o.status.success(), "{}", text(&o));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn unsafe_free_kill(pid: u32) {
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs a Python 3 script (stdlib only) with arguments; returns (exit ok, stdout+stderr).
pub fn python(script: &str, args: &[&str]) -> (bool, String) {
    let o = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 is required by the tests");
    (o.status.success(), text(&o))
}

/// Runs curl; returns its output.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(args)
        .output()
        .expect("curl is required by the tests")
}

/// Follows the control plane's event stream; `next` returns the id of the next approval
/// reaching `state`.
pub struct Events(reqwest::Response, String);

impl Events {
    pub async fn open(gw: &Gateway) -> Events {
        let r = reqwest::Client::new()
            .get(format!("http://{}/api/v1/events", gw.control))
            .bearer_auth(gw.control_token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        Events(r, String::new())
    }

    pub async fn next(&mut self, state: &str) -> String {
        let fut = async {
            loop {
                while let Some(end) = self.1.find("\n\n") {
                    let frame: String = self.1.drain(..end + 2).collect();
                    if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data:")) {
                        let v: serde_json::Value = serde_json::from_str(data.trim()).unwrap();
                        if v["state"] == state {
                            return v["id"].as_str().unwrap().to_string();
                        }
                    }
                }
                let chunk = self.0.chunk().await.unwrap().expect("event stream ended");
                self.1.push_str(&String::from_utf8_lossy(&chunk));
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), fut)
            .await
            .unwrap_or_else(|_| panic!("no {state} event"))
    }
}
