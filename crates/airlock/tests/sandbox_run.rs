//! Invariants 1–3 in real sandboxes: `airlock run` under Docker, Podman (rootful; rootless in
//! `sandbox/rootless.rs`) and bubblewrap, against a real `airlock serve`, a real TLS upstream
//! and real listeners. A probe inside the sandbox reports what it can reach and find; each check
//! has a positive control, so a probe that cannot connect at all would not pass for a sealed sandbox.
mod support;
use support::*;

#[path = "sandbox/leaks.rs"]
mod leaks;
#[path = "sandbox/network.rs"]
mod network;
#[path = "sandbox/rootless.rs"]
mod rootless;
use network::{OtherNamespace, host_addresses};

use std::net::TcpListener as StdListener;
use std::process::{Output, Stdio};
use std::sync::OnceLock;

const REAL: &str = "sk-live-REAL-sandbox-7d3e9a41";
const PLACEHOLDER: &str = "airlock-gmail-placeholder";

fn rules() -> String {
    format!(
        r#"
[[agents]]
name = "mailbot"
secrets = ["gmail"]

[secrets.gmail]
hosts = ["localhost"]
header = "Authorization"
format = "Bearer {{secret}}"
placeholder = "{PLACEHOLDER}"
env = "GMAIL_TOKEN"

[[rules]]
name = "no admin"
paths = ["/admin/**"]
action = "deny"
reason = "the admin API is off limits to agents"

[[rules]]
name = "local api"
hosts = ["localhost", "127.0.0.1"]
action = "allow"
"#
    )
}

/// Builds the test images once per test binary (fast when they are current), and for a
/// Podman run loads them into Podman's storage too (no registry: from Docker's).
fn images(engine: &str) {
    static BUILT: OnceLock<()> = OnceLock::new();
    static PODMAN: OnceLock<()> = OnceLock::new();
    let script = |name: &str| {
        let path = format!("{}/../../images/{name}", env!("CARGO_MANIFEST_DIR"));
        let o = std::process::Command::new("bash").arg(path).output().unwrap();
        assert!(o.status.success(), "images/{name} failed: {}", text(&o));
    };
    BUILT.get_or_init(|| script("build.sh"));
    if engine == "podman" {
        PODMAN.get_or_init(|| script("to-podman.sh"));
    }
}

fn require(runtime: &str) {
    let (bin, args): (&str, &[&str]) = match runtime {
        "bwrap" => ("bwrap", &["--version"]),
        engine => (engine, &["version", "--format", "{{.Server.Version}}"]),
    };
    let ok = std::process::Command::new(bin)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "{runtime} is required for these tests (.ci/run installs it)");
    if runtime != "bwrap" {
        images(runtime);
    }
}

fn probe_mount() -> String {
    format!(
        "{}:/probe/probe.py:ro",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/probe.py")
    )
}

async fn start(runtime: &str) -> (Upstream, Upstream, Gateway) {
    require(runtime);
    let up = upstream(true).await;
    let elsewhere = upstream(true).await;
    let gw = Gateway::start(&[&up, &elsewhere], &rules(), &[("gmail", REAL)], &[]);
    (up, elsewhere, gw)
}

/// `run --agent mailbot --runtime RUNTIME` and `rest`.
fn run_args<'a>(runtime: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["run", "--agent", "mailbot", "--runtime", runtime];
    a.extend_from_slice(rest);
    a
}

fn airlock_run(gw: &Gateway, runtime: &str, cmd: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(BIN);
    c.arg("--config")
        .arg(&gw.config)
        .args(["run", "--agent", "mailbot", "--runtime", runtime, "--mount"])
        .arg(probe_mount())
        .arg("--")
        .args(cmd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

async fn run(gw: &Gateway, runtime: &str, cmd: &[&str]) -> Output {
    airlock_run(gw, runtime, cmd).output().await.unwrap()
}

/// `airlock run` of the probe with `checks`.
fn probe_command(gw: &Gateway, runtime: &str, checks: &serde_json::Value) -> tokio::process::Command {
    airlock_run(gw, runtime, &["python3", "/probe/probe.py", &checks.to_string()])
}

/// Runs a [`probe_command`]; returns its answers and all it printed.
async fn answers(mut probe: tokio::process::Command) -> (Vec<serde_json::Value>, String) {
    let o = probe.output().await.unwrap();
    assert!(o.status.success(), "probe failed: {}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let answers = serde_json::from_str(&line).unwrap_or_else(|e| panic!("probe output {line:?}: {e}; {}", text(&o)));
    (answers, text(&o))
}

/// Runs the probe with `checks` and returns its answers.
async fn probe(gw: &Gateway, runtime: &str, checks: serde_json::Value) -> Vec<serde_json::Value> {
    answers(probe_command(gw, runtime, &checks)).await.0
}

async fn only_way_out(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    let host = StdListener::bind("0.0.0.0:0").unwrap();
    let port = host.local_addr().unwrap().port();
    host.set_nonblocking(true).unwrap();
    let mut peers = vec![OtherNamespace::start("docker")];
    if runtime == "podman" {
        peers.push(OtherNamespace::start("podman"));
    }
    let addrs = host_addresses();
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect((a.as_str(), port)).is_ok(),
            "control: {a}:{port}"
        );
        while host.accept().is_ok() {}
    }
    let mut checks = vec![
        // Positive control: the relay, on the sandbox's loopback, answers.
        serde_json::json!(["tcp", "127.0.0.1", 3128]),
        serde_json::json!(["tcp", "169.254.169.254", 80]),
        serde_json::json!(["tcp", "127.0.0.1", gw.control.port()]),
        serde_json::json!(["tcp", "127.0.0.1", gw.proxy.port()]),
        serde_json::json!(["tcp", "127.0.0.1", port]),
        serde_json::json!(["dns", "deb.debian.org"]),
        serde_json::json!(["dns", "example.com"]),
        serde_json::json!(["exists", "/var/run/docker.sock"]),
        serde_json::json!(["exists", "/run/docker.sock"]),
        serde_json::json!(["exists", "/run/podman/podman.sock"]),
    ];
    for p in &peers {
        checks.push(serde_json::json!(["tcp", p.ip, 8000]));
    }
    for a in &addrs {
        checks.push(serde_json::json!(["tcp", a, port]));
        checks.push(serde_json::json!(["tcp", a, gw.control.port()]));
        checks.push(serde_json::json!(["tcp", a, 22]));
    }
    let answers = probe(&gw, runtime, serde_json::Value::Array(checks.clone())).await;
    assert_eq!(
        answers[0], "connected",
        "the probe cannot reach its own relay: {answers:?}"
    );
    for (check, answer) in checks.iter().zip(&answers).skip(1) {
        let sealed = match check[0].as_str() {
            Some("exists") => answer == false,
            _ => answer.as_str().is_some_and(|a| a.starts_with("error")),
        };
        assert!(sealed, "{runtime}: {check} → {answer}");
    }
    assert!(host.accept().is_err(), "the host listener was reached from the sandbox");
}

async fn secrets_stay_home(runtime: &str) {
    let (up, _else, gw) = start(runtime).await;
    let url = format!("https://localhost:{}/messages", up.port);
    let script = format!(
        "curl -sS --fail-with-body -H \"Authorization: Bearer $GMAIL_TOKEN\" {url} && echo && \
         python3 /probe/probe.py '[[\"search\", \"{}\"], [\"search\", \"{}\"]]'",
        hex::encode(REAL),
        hex::encode(PLACEHOLDER)
    );
    let o = run(&gw, runtime, &["sh", "-c", &script]).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("ok"), "{}", text(&o));
    // The upstream got the real key; verified against the airlock CA (curl without -k).
    assert_eq!(
        up.last().header("authorization"),
        Some(format!("Bearer {REAL}").as_str())
    );
    let found: Vec<Vec<String>> = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    assert!(
        found[0].is_empty(),
        "{runtime}: the real key is in the sandbox: {:?}",
        found[0]
    );
    assert!(
        found[1].iter().any(|p| p.ends_with("/environ")),
        "{runtime}: the placeholder should be in the agent's environment: {:?}",
        found[1]
    );
    assert!(!text(&o).contains(REAL));
}

async fn denied_and_exfiltration(runtime: &str) {
    let (up, elsewhere, gw) = start(runtime).await;
    let script = format!(
        "curl -sS -w ' %{{http_code}}' https://localhost:{}/admin/users; echo '\n---'; \
         curl -sS -w ' %{{http_code}}' -H \"Authorization: Bearer $GMAIL_TOKEN\" https://127.0.0.1:{}/",
        up.port, elsewhere.port
    );
    let o = run(&gw, runtime, &["sh", "-c", &script]).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let lines: Vec<&str> = out.split("\n---\n").map(str::trim).collect();
    assert_eq!(lines.len(), 2, "{}", text(&o));
    assert!(
        lines[0].ends_with(" 403") && lines[0].contains("the admin API is off limits to agents"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with(" 403") && lines[1].contains("exfiltration blocked"),
        "{}",
        lines[1]
    );
    assert!(up.requests().iter().all(|s| !s.target.starts_with("/admin")));
    assert!(!elsewhere.contacted(), "the placeholder's request was dialed");
}

async fn exit_code_streams_and_signals(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    let o = run(
        &gw,
        runtime,
        &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"],
    )
    .await;
    assert_eq!(o.status.code(), Some(7), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "to-stdout\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("to-stderr"));

    // Ctrl-C (SIGINT to `airlock run`) reaches the agent, which exits its own way.
    let marker = marker();
    let (mut child, pid) = start_waiting_agent(&gw, runtime, &marker).await;
    signal(pid, "INT");
    let status = child.wait().await.unwrap();
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stdout.take().unwrap(), &mut rest)
        .await
        .unwrap();
    assert_eq!(rest, "got SIGINT\n");
    assert_eq!(status.code(), Some(42));
    assert_cleaned_up(runtime, pid, &marker);
}

/// Nothing of run `pid` is left: no container labelled with it, no process carrying
/// `marker` (the agent, bwrap, the engine's CLI). Processes end asynchronously after a
/// SIGKILL, so this waits for them, up to a bound.
fn assert_cleaned_up(runtime: &str, pid: u32, marker: &str) {
    let gone = (0..100).any(|_| {
        let o = std::process::Command::new("pgrep")
            .args(["-f", marker])
            .output()
            .unwrap();
        o.stdout.is_empty() || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            false
        }
    });
    assert!(gone, "{runtime}: processes of the run are still alive");
    if runtime == "bwrap" {
        return;
    }
    // Docker and Podman print labels differently; each reads one by name.
    let owner = match runtime {
        "podman" => "{{index .Labels \"airlock.owner\"}}",
        _ => "{{.Label \"airlock.owner\"}}",
    };
    let o = std::process::Command::new(runtime)
        .args(["ps", "-a", "--filter", "label=airlock.run", "--format"])
        .arg(format!("{{{{.Names}}}} {owner}"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mine: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| {
            l.split_once(' ')
                .is_some_and(|(_, o)| o.starts_with(&format!("{pid}:")))
        })
        .map(str::to_string)
        .collect();
    assert!(mine.is_empty(), "{runtime}: containers left behind: {mine:?}");
}

fn marker() -> String {
    format!(
        "airlock-test-marker-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// A python agent that prints `ready`, then waits; `marker` rides along in its argv.
async fn start_waiting_agent(gw: &Gateway, runtime: &str, marker: &str) -> (tokio::process::Child, u32) {
    // "ready" is printed inside the `try`, so a SIGINT sent on reading it meets the handler.
    let agent = "import sys, time\ntry:\n    print('ready', flush=True)\n    time.sleep(120)\nexcept KeyboardInterrupt:\n    print('got SIGINT', flush=True)\n    sys.exit(42)\n";
    let mut child = airlock_run(gw, runtime, &["python3", "-c", agent, marker])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut line = String::new();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    assert_eq!(line, "ready\n");
    // Hand the reader back so the caller can read what follows.
    child.stdout = Some(out.into_inner());
    (child, pid)
}

async fn a_crashed_run_is_cleaned_up(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    let marker = marker();
    let (mut child, pid) = start_waiting_agent(&gw, runtime, &marker).await;
    signal(pid, "KILL");
    let _ = child.wait().await;
    if runtime != "bwrap" {
        // The next run sweeps what the dead one left (found by label, owner not alive).
        let o = run(&gw, runtime, &["true"]).await;
        assert!(o.status.success(), "{}", text(&o));
    }
    assert_cleaned_up(runtime, pid, &marker);
}

async fn mounts_are_checked(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    let data = gw.dir.path().join("airlock-data");
    for (mount, why) in [
        (format!("{}/.ssh:/x", home.path().display()), "SSH keys"),
        (format!("{}:/x:ro", data.display()), "data directory"),
        (format!("{}:/x", gw.config.display()), "configuration"),
    ] {
        let o = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&gw.config)
            .args(run_args(runtime, &["--mount", &mount, "--", "true"]))
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("refused") && err.contains(why), "{mount}: {err}");
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// An interactive agent: it finds a terminal on stdin and stdout, and Ctrl-C typed on the
/// operator's terminal reaches it.
async fn terminal_and_ctrl_c(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    // "ready" is printed inside the `try`: the driver types ^C the moment it reads it, and a
    // KeyboardInterrupt raised between the print and the `try` would escape the handler.
    let agent = "import os, sys\nprint('tty' if os.isatty(0) and os.isatty(1) else 'no tty')\ntry:\n    print('ready', flush=True)\n    input()\nexcept KeyboardInterrupt:\n    print('got SIGINT', flush=True)\n    sys.exit(42)\n";
    let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/terminal.py");
    // A container engine's CLI puts the terminal in raw mode while the container starts; bwrap
    // leaves it to the agent.
    let wait_raw: &[&str] = if runtime == "bwrap" { &[] } else { &["--wait-raw"] };
    let o = tokio::process::Command::new("python3")
        .arg(driver)
        .args(wait_raw)
        .arg(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(run_args(runtime, &["--", "python3", "-c", agent]))
        .output()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    let out = report["out"].as_str().unwrap_or_default();
    assert!(
        out.contains("tty\r\n") && !out.contains("no tty"),
        "{runtime}: {report}"
    );
    assert!(out.contains("got SIGINT"), "{runtime}: {report}");
    assert_eq!(report["code"], 42, "{runtime}: {report}");
}

macro_rules! runtime_tests {
    ($m:ident, $rt:expr) => {
        mod $m {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn reaches_nothing_but_the_gateway() {
                let _shared = ALONE.read().await;
                only_way_out($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn upstream_gets_the_real_key_sandbox_holds_only_the_placeholder() {
                let _shared = ALONE.read().await;
                secrets_stay_home($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn denied_and_exfiltrating_requests_are_refused() {
                let _shared = ALONE.read().await;
                denied_and_exfiltration($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exit_code_output_and_ctrl_c_pass_through() {
                let _shared = ALONE.read().await;
                exit_code_streams_and_signals($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_interactive_agent_gets_the_terminal_and_ctrl_c() {
                // Alone: while other runs start and stop containers beside it, its Ctrl-C was lost
                // (terminal.py also presses again after 10 s without an exit).
                let _alone = ALONE.write().await;
                terminal_and_ctrl_c($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_killed_run_leaves_nothing_behind() {
                let _shared = ALONE.read().await;
                a_crashed_run_is_cleaned_up($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_operators_environment_is_nowhere_inside() {
                let _shared = ALONE.read().await;
                leaks::operator_environment_stays_out($rt).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn credentials_and_airlock_state_cannot_be_mounted() {
                let _shared = ALONE.read().await;
                mounts_are_checked($rt).await;
            }
        }
    };
}

/// The interactive test runs with no other run beside it (write lock); the others share (read).
static ALONE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

runtime_tests!(docker, "docker");
runtime_tests!(podman, "podman");
runtime_tests!(bwrap, "bwrap");

fn run_err(config: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .arg("run")
        .args(args)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_errors_say_what_to_fix() {
    // No gateway serving: said so, with the command that fixes it.
    let (_dir, config) = setup(&format!("{}{}", gateway_section(&[]), rules()));
    let e = run_err(&config, &["--agent", "mailbot", "--runtime", "bwrap", "--", "true"]);
    assert!(e.contains("start `airlock serve` first"), "{e}");
    let e = run_err(&config, &["--agent", "ghost", "--", "true"]);
    assert!(e.contains("\"ghost\" is not declared"), "{e}");

    let (_up, _else, gw) = start("bwrap").await;
    let e = run_err(&gw.config, &["--agent", "mailbot", "--runtime", "lxc", "--", "true"]);
    assert!(e.contains("expected docker, podman or bwrap"), "{e}");
    let e = run_err(
        &gw.config,
        &["--agent", "mailbot", "--env", "HTTPS_PROXY=http://evil", "--", "true"],
    );
    assert!(e.contains("cannot be overridden"), "{e}");
    let e = run_err(
        &gw.config,
        &["--agent", "mailbot", "--env", "GMAIL_TOKEN=x", "--", "true"],
    );
    assert!(e.contains("cannot be overridden"), "{e}");
    // Proxy variables in any case; code for the loader.
    for (var, why) in [
        ("No_Proxy=*", "cannot be overridden"),
        ("hTTps_proxy=http://evil", "cannot be overridden"),
        ("socks_proxy=socks5://evil", "names a proxy"),
        ("LD_PRELOAD=/tmp/x.so", "dynamic loader"),
        ("LD_LIBRARY_PATH=/tmp", "dynamic loader"),
        ("LD_AUDIT=/tmp/x.so", "dynamic loader"),
    ] {
        let e = run_err(&gw.config, &["--agent", "mailbot", "--env", var, "--", "true"]);
        assert!(e.contains(why), "{var}: {e}");
    }
    // An unavailable runtime is an error, never a fallback to another one (or to none): here
    // podman is installed, but not on the PATH `airlock run` is given.
    let empty = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(run_args("podman", &["--", "true"]))
        .env("PATH", empty.path())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("podman runtime is not available") && e.contains("not installed"),
        "{e}"
    );
    // A missing image names the script that builds it.
    let e = run_err(
        &gw.config,
        &[
            "--agent",
            "mailbot",
            "--runtime",
            "docker",
            "--image",
            "airlock-no-such:image",
            "--",
            "true",
        ],
    );
    assert!(
        e.contains("airlock-no-such:image") && e.contains("images/build.sh"),
        "{e}"
    );
}
