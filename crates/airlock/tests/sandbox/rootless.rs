//! Rootless Podman: `airlock serve` and `airlock run --runtime podman` both as an unprivileged
//! user (`airlock-rootless`, created by .ci/run with its subordinate ids), the agent's uid 65534
//! mapped to one of that user's subordinate ids. The same seal as `reaches_nothing_but_the_gateway`
//! (each check with its positive control), and a request through the relay and the gateway.
use super::*;

const USER: &str = "airlock-rootless";

/// `program` as [`USER`], with that user's own environment only (HOME, PATH, USER).
fn as_user(program: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new("setpriv");
    c.args([&format!("--reuid={USER}"), &format!("--regid={USER}")])
        .args(["--init-groups", "--reset-env", "--"])
        .arg(program);
    c
}

/// `airlock serve`, as the user; killed when dropped.
struct Serving(std::process::Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rootless_podman_reaches_nothing_but_the_gateway() {
    use std::io::BufRead;
    let _shared = ALONE.read().await;
    let home = std::process::Command::new("getent")
        .args(["passwd", USER])
        .output()
        .unwrap();
    let home = String::from_utf8_lossy(&home.stdout)
        .split(':')
        .nth(5)
        .map(str::to_string);
    let home = home.unwrap_or_else(|| panic!("user {USER} is required for rootless Podman (.ci/run creates it)"));
    images("podman");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../images/to-podman.sh");
    let o = std::process::Command::new("bash")
        .arg(script)
        .env("PODMAN_USER", USER)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // Everything the user runs lives in a directory of its own (the test tree may not be
    // readable to it): the binary, the probe, the installation.
    let dir = tempfile::tempdir_in(&home).unwrap();
    let exe = dir.path().join("airlock");
    std::fs::copy(BIN, &exe).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sandbox/probe.py"),
        dir.path().join("probe.py"),
    )
    .unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{USER}:"), &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let inst = dir.path().join("al");
    let o = as_user(&exe).args(["init", "--dir"]).arg(&inst).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let config = inst.join("airlock.toml");
    std::fs::write(
        &config,
        "[gateway]\nlisten = \"127.0.0.1:0\"\ncontrol = \"127.0.0.1:0\"\ndata_dir = \"./airlock-data\"\n\n\
         [[agents]]\nname = \"mailbot\"\nsecrets = []\n\n[[rules]]\nname = \"no admin\"\npaths = [\"/admin/**\"]\n\
         action = \"deny\"\nreason = \"the admin API is off limits to agents\"\n",
    )
    .unwrap();

    let mut serve = as_user(&exe)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    let _serving = Serving(serve);
    let started = lines.by_ref().map_while(Result::ok).find(|l| l.contains("proxy on"));
    let started = started.expect("airlock serve (rootless) did not start");
    // Drain the rest, so the gateway never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let control: Vec<u16> = started
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
        .collect();

    let host = StdListener::bind("0.0.0.0:0").unwrap();
    let port = host.local_addr().unwrap().port();
    host.set_nonblocking(true).unwrap();
    let addrs = host_addresses();
    for a in &addrs {
        assert!(
            std::net::TcpStream::connect((a.as_str(), port)).is_ok(),
            "control: {a}:{port}"
        );
        while host.accept().is_ok() {}
    }
    let mut checks = vec![
        serde_json::json!(["tcp", "127.0.0.1", 3128]),
        serde_json::json!(["tcp", "169.254.169.254", 80]),
        serde_json::json!(["tcp", "127.0.0.1", port]),
        serde_json::json!(["dns", "deb.debian.org"]),
        serde_json::json!(["exists", "/var/run/docker.sock"]),
        serde_json::json!(["exists", "/run/podman/podman.sock"]),
    ];
    for p in &control {
        checks.push(serde_json::json!(["tcp", "127.0.0.1", p]));
    }
    for a in &addrs {
        checks.push(serde_json::json!(["tcp", a, port]));
        checks.push(serde_json::json!(["tcp", a, 22]));
        for p in &control {
            checks.push(serde_json::json!(["tcp", a, p]));
        }
    }
    let run = |cmd: &[&str]| {
        let mut c = as_user(&exe);
        c.arg("--config")
            .arg(&config)
            .args(["run", "--agent", "mailbot", "--runtime", "podman", "--mount"])
            .arg(format!("{}:/probe/probe.py:ro", dir.path().join("probe.py").display()))
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let o = run(&[
        "python3",
        "/probe/probe.py",
        &serde_json::Value::Array(checks.clone()).to_string(),
    ]);
    assert!(o.status.success(), "probe failed: {}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    let answers: Vec<serde_json::Value> =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("probe output {line:?}: {e}; {}", text(&o)));
    assert_eq!(
        answers[0], "connected",
        "the probe cannot reach its own relay: {answers:?}"
    );
    for (check, answer) in checks.iter().zip(&answers).skip(1) {
        let sealed = match check[0].as_str() {
            Some("exists") => answer == false,
            _ => answer.as_str().is_some_and(|a| a.starts_with("error")),
        };
        assert!(sealed, "rootless podman: {check} → {answer}");
    }
    assert!(host.accept().is_err(), "the host listener was reached from the sandbox");

    // Through the relay to the gateway, the airlock CA trusted (no -k): refused by the rule.
    // No uid inside is root on the host: the sandbox's root is the user, the rest its
    // subordinate ids (rootful: `0 0 4294967295`).
    let o = run(&[
        "sh",
        "-c",
        "curl -sS -w ' %{http_code}\\n' https://localhost:1/admin/x; echo ---; cat /proc/self/uid_map",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (answer, map) = out.split_once("---\n").unwrap_or_else(|| panic!("{}", text(&o)));
    assert!(
        answer.contains("the admin API is off limits to agents") && answer.trim_end().ends_with(" 403"),
        "{}",
        text(&o)
    );
    let host_ids: Vec<&str> = map.lines().filter_map(|l| l.split_whitespace().nth(1)).collect();
    assert!(!host_ids.is_empty() && !host_ids.contains(&"0"), "uid map: {map}");

    let o = as_user(std::path::Path::new("podman"))
        .args(["ps", "-a", "--filter", "label=airlock.run", "--format", "{{.Names}}"])
        .output()
        .unwrap();
    assert!(o.status.success() && o.stdout.is_empty(), "left behind: {}", text(&o));
}
