//! The gateway image and the compose example (`deploy/compose`), started for real: the image is
//! built from this test's own airlock binary (`images/gateway.sh`), PostgreSQL and the init step
//! run as the example has them, and a request from the host goes through EACH of the two
//! replicas' proxies to a local HTTPS upstream that the containers reach on the Docker bridge.
//! The credential is injected; neither it nor the placeholder appears in any container's log.
//!
//! Needs the Docker engine, a compose tool (`docker compose` or Debian's `docker-compose`) and
//! airlock-base:bookworm from `bash images/build.sh` (CI runs it first); anything missing fails
//! the test loudly. The project is always removed with its volumes (`down -v`), also on failure.
mod support;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{BIN, text};

const SECRET: &str = "ghp_compose-real-credential-6b1f0e";
const PLACEHOLDER: &str = "airlock-placeholder-github";
/// Starting PostgreSQL, the init step and two replicas on a busy 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(180);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn ok(cmd: &mut Command) -> String {
    let o = run(cmd);
    assert!(o.status.success(), "{cmd:?} failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `docker compose` when the plugin is there, else Debian's `docker-compose`.
fn compose_tool() -> Vec<&'static str> {
    let works = |c: &mut Command| c.output().is_ok_and(|o| o.status.success());
    if works(Command::new("docker").args(["compose", "version"])) {
        vec!["docker", "compose"]
    } else if works(Command::new("docker-compose").arg("version")) {
        vec!["docker-compose"]
    } else {
        panic!("neither `docker compose` nor `docker-compose` works: install Debian's docker-compose (.ci/run does)")
    }
}

/// A compose project of the example, removed with its volumes and image when dropped.
struct Project {
    tool: Vec<&'static str>,
    name: String,
    files: Vec<PathBuf>,
    env: Vec<(&'static str, String)>,
    image: String,
}

impl Project {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.tool[0]);
        c.args(&self.tool[1..]).args(["--project-name", &self.name]);
        for f in &self.files {
            c.arg("--file").arg(f);
        }
        c.args(args)
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// The host address a service's container port is published on.
    fn port(&self, service: &str, port: u16) -> SocketAddr {
        let out = ok(&mut self.cmd(&["port", service, &port.to_string()]));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("`port {service} {port}` printed {out:?}"))
    }

    fn logs(&self, service: Option<&str>) -> String {
        let mut args = vec!["logs", "--no-color"];
        args.extend(service);
        text(&run(&mut self.cmd(&args)))
    }

    fn container(&self, service: &str) -> String {
        ok(&mut self.cmd(&["ps", "-q", service])).trim().to_string()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("== compose logs ==\n{}", self.logs(None));
        }
        let down = run(&mut self.cmd(&["down", "--volumes", "--remove-orphans", "--timeout", "10"]));
        if !down.status.success() {
            eprintln!("compose down failed: {}", text(&down));
        }
        let _ = Command::new("docker").args(["rmi", "--force", &self.image]).output();
    }
}

/// The address containers reach the host on (`host-gateway`: the default bridge's gateway,
/// which `docker network inspect` leaves empty when the daemon chose it: then the bridge
/// interface's own address).
fn bridge_gateway() -> IpAddr {
    let inspect = |format: &str| ok(Command::new("docker").args(["network", "inspect", "bridge", "--format", format]));
    let named = inspect("{{range .IPAM.Config}}{{.Gateway}}{{end}}");
    if let Ok(ip) = named.trim().parse() {
        return ip;
    }
    let dev = inspect("{{index .Options \"com.docker.network.bridge.name\"}}");
    let dev = Some(dev.trim()).filter(|d| !d.is_empty()).unwrap_or("docker0");
    let out = ok(Command::new("ip").args(["-4", "-o", "addr", "show", "dev", dev]));
    // "3: docker0    inet 172.17.0.1/16 brd ... scope global docker0"
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|cidr| cidr.split('/').next())
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no IPv4 address on the Docker bridge {dev}: {out:?}"))
}

/// Polls `f` until it is true; panics naming `what` after `deadline`.
async fn until(what: &str, deadline: Duration, mut f: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < deadline, "{what}: not within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_from_the_compose_example_inject_the_credential_through_each_proxy() {
    let started = Instant::now();
    let tool = compose_tool();
    let unique = format!(
        "{}x{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let image = format!("airlock-gateway:test-{unique}");

    // Its upstream, where the containers reach the host, under a name only they resolve.
    let ip = bridge_gateway();
    let up = support::upstream_on(ip, "upstream.test", true, None).await;
    let dir = tempfile::tempdir().unwrap();
    let path = |f: &str| dir.path().join(f);
    std::fs::write(path("upstream-ca.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    std::fs::write(path("github-token"), SECRET).unwrap();
    // The example's agent and secret names (its init step seals and issues them), bound to the
    // test upstream instead of GitHub.
    std::fs::write(
        path("airlock.toml"),
        format!(
            "[gateway]\nlisten = \"0.0.0.0:3128\"\ncontrol = \"0.0.0.0:8080\"\ndata_dir = \"/var/lib/airlock\"\n\
             allow_private = [\"{ip}:{port}\"]\nupstream_ca = [\"/etc/airlock/upstream-ca.pem\"]\n\n\
             [[agents]]\nname = \"coder\"\nsecrets = [\"github\"]\n\n\
             [secrets.github]\nhosts = [\"upstream.test\"]\nheader = \"Authorization\"\n\
             format = \"Bearer {{secret}}\"\nplaceholder = \"{PLACEHOLDER}\"\n\n\
             [[rules]]\nname = \"all\"\nhosts = [\"upstream.test\"]\naction = \"allow\"\n",
            port = up.port
        ),
    )
    .unwrap();
    // What only the test adds to the example: the upstream's CA (its config names the file) and,
    // on the replicas, the upstream's name.
    let ca = path("upstream-ca.pem");
    std::fs::write(
        path("compose.test.yaml"),
        format!(
            "services:\n  init:\n    volumes: [&ca \"{}:/etc/airlock/upstream-ca.pem:ro\"]\n  \
             airlock-1: &t\n    extra_hosts: [\"upstream.test:host-gateway\"]\n    volumes: [*ca]\n  \
             airlock-2: *t\n",
            ca.display()
        ),
    )
    .unwrap();
    // The example's own policy is valid as shipped.
    let example = repo_root().join("deploy/compose");
    ok(Command::new(BIN)
        .arg("--config")
        .arg(example.join("airlock.toml"))
        .args(["policy", "check"]));

    let p = Project {
        tool,
        name: format!("airlocktest{unique}"),
        files: vec![example.join("compose.yaml"), path("compose.test.yaml")],
        env: vec![
            ("AIRLOCK_IMAGE", image.clone()),
            ("AIRLOCK_PG_PASSWORD", format!("pw{unique}")),
            ("AIRLOCK_CONFIG_FILE", path("airlock.toml").display().to_string()),
            ("AIRLOCK_GITHUB_TOKEN_FILE", path("github-token").display().to_string()),
            ("AIRLOCK_1_PROXY_PORT", "0".into()),
            ("AIRLOCK_1_CONTROL_PORT", "0".into()),
            ("AIRLOCK_2_PROXY_PORT", "0".into()),
            ("AIRLOCK_2_CONTROL_PORT", "0".into()),
        ],
        image: image.clone(),
    };

    // The image, from this binary (the guard above removes it again).
    let build = Instant::now();
    ok(Command::new("bash")
        .arg(repo_root().join("images/gateway.sh"))
        .arg(BIN)
        .env("GATEWAY_TAG", &image));
    eprintln!("images built in {:?}", build.elapsed());
    let cfg = ok(Command::new("docker").args([
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}}",
        &image,
    ]));
    assert!(cfg.starts_with("10001:10001 "), "not a non-root image: {cfg}");
    assert!(cfg.contains("\"/var/lib/airlock\""), "the data dir is no volume: {cfg}");
    assert!(cfg.contains("\"healthcheck\""), "no HEALTHCHECK: {cfg}");

    // `up` returns once init has completed and the replicas are started.
    let up_at = Instant::now();
    ok(&mut p.cmd(&["up", "--detach", "--no-build"]));
    let init = p.logs(Some("init"));
    let creds = init
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://coder:"))
        .and_then(|rest| rest.split_once('@'))
        .map(|(token, _)| format!("coder:{token}"))
        .unwrap_or_else(|| panic!("init printed no proxy URL for the agent: {init}"));

    let plain = reqwest::Client::new();
    let mut controls = Vec::new();
    for service in ["airlock-1", "airlock-2"] {
        let control = p.port(service, 8080);
        until(&format!("{service} /readyz"), START_DEADLINE, async || {
            let r = plain.get(format!("http://{control}/readyz")).send().await;
            r.is_ok_and(|r| r.status() == 200)
        })
        .await;
        controls.push(control);
    }
    eprintln!("replicas ready {:?} after `up`", up_at.elapsed());

    // Replicas share the CA (agents trust one, whichever replica they reach).
    let ca_pem = ok(&mut p.cmd(&["exec", "-T", "airlock-1", "airlock", "ca", "export"]));
    let ca2 = ok(&mut p.cmd(&["exec", "-T", "airlock-2", "airlock", "ca", "export"]));
    assert_eq!(ca_pem, ca2, "the replicas have different CAs");
    for (i, service) in ["airlock-1", "airlock-2"].into_iter().enumerate() {
        let proxy = p.port(service, 3128);
        let client = reqwest::Client::builder()
            .proxy(reqwest::Proxy::all(format!("http://{creds}@{proxy}")).unwrap())
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        let r = client
            .get(format!("https://upstream.test:{}/from/{service}", up.port))
            .header("authorization", format!("Bearer {PLACEHOLDER}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("through {service}: {e}"));
        assert_eq!(r.status(), 200, "through {service}");
        assert_eq!(r.text().await.unwrap(), "ok");
        let seen = up.last();
        assert_eq!(seen.target, format!("/from/{service}"));
        assert_eq!(seen.header("authorization"), Some(format!("Bearer {SECRET}").as_str()));
        // Each replica served its own request.
        let m = plain
            .get(format!("http://{}/metrics", controls[i]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            m.contains("airlock_requests_total{decision=\"allow\"} 1"),
            "{service}: {m}"
        );
    }
    assert_eq!(up.requests().len(), 2);

    // The image's HEALTHCHECK (`airlock healthcheck`) reports both replicas healthy.
    for service in ["airlock-1", "airlock-2"] {
        let id = p.container(service);
        until(&format!("{service} healthy"), START_DEADLINE, async || {
            let o = run(Command::new("docker").args(["inspect", "--format", "{{.State.Health.Status}}", &id]));
            String::from_utf8_lossy(&o.stdout).trim() == "healthy"
        })
        .await;
    }
    // One audit chain for both replicas, checked from inside a container.
    ok(&mut p.cmd(&["exec", "-T", "airlock-2", "airlock", "audit", "verify"]));

    let logs = p.logs(None);
    assert!(logs.contains("airlock-1"), "no replica logs: {logs}");
    assert!(!logs.contains(SECRET), "the real credential reached a container's log");
    assert!(!logs.contains(PLACEHOLDER), "the placeholder reached a container's log");
    assert!(!logs.contains("panicked"), "{logs}");
    eprintln!("compose test took {:?}", started.elapsed());
}
