//! Nothing of the operator's reaches the sandbox: neither the environment `airlock run` was
//! started with (its tokens, `AIRLOCK_MASTER_KEY`, the Docker CLI's proxy settings), searched
//! for from inside in every process's environment and command line, PID 1 included, nor a
//! container engine's socket through `--mount`.
use super::*;

/// The operator's shell: a token, the master key itself, proxies, and a Docker CLI
/// configuration whose `proxies` the CLI would copy into containers.
struct OperatorShell {
    vars: Vec<(&'static str, String)>,
    _docker_config: tempfile::TempDir,
}

impl OperatorShell {
    fn new(gw: &Gateway) -> OperatorShell {
        let canary = marker().replace("airlock-test-marker", "operator-canary");
        let key = std::fs::read_to_string(gw.dir.path().join("airlock-data/master.key")).unwrap();
        let proxy = format!("http://user:{canary}-proxy-password@proxy.example:3128");
        let docker_config = tempfile::tempdir().unwrap();
        let proxies = serde_json::json!({"proxies": {"default": {
            "httpProxy": proxy, "httpsProxy": proxy, "ftpProxy": proxy, "allProxy": proxy, "noProxy": "*"
        }}});
        std::fs::write(docker_config.path().join("config.json"), proxies.to_string()).unwrap();
        let vars = vec![
            // Not needed by `airlock run` (the gateway reads its key from the file): an
            // operator who exported it for `airlock serve` in the same shell.
            ("AIRLOCK_MASTER_KEY", key.trim().to_string()),
            ("GITHUB_TOKEN", format!("ghp_{canary}")),
            ("AIRLOCK_TEST_OPERATOR_CANARY", canary),
            ("HTTPS_PROXY", proxy.clone()),
            ("ftp_proxy", proxy),
            ("DOCKER_CONFIG", docker_config.path().display().to_string()),
        ];
        OperatorShell {
            vars,
            _docker_config: docker_config,
        }
    }

    /// Values that must be found nowhere inside (the proxies share one).
    fn values(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.vars.iter().map(|(_, v)| v.as_str()).collect();
        v.dedup();
        v
    }
}

pub(crate) async fn operator_environment_stays_out(runtime: &str) {
    let (_up, _else, gw) = start(runtime).await;
    let shell = OperatorShell::new(&gw);
    let mut checks = vec![
        serde_json::json!(["processes"]),
        // Positive control: the search finds what is there.
        serde_json::json!(["search", hex::encode(PLACEHOLDER)]),
    ];
    for v in shell.values() {
        checks.push(serde_json::json!(["search", hex::encode(v)]));
    }
    let mut cmd = probe_command(&gw, runtime, &serde_json::Value::Array(checks));
    cmd.envs(shell.vars.iter().map(|(k, v)| (k, v)));
    let (answers, printed) = answers(cmd).await;

    let processes = answers[0].as_array().unwrap();
    let pid1 = processes.iter().find(|p| p["pid"] == 1);
    assert!(
        pid1.is_some_and(|p| p["environ"].is_array() && p["cmdline"].is_array()),
        "{runtime}: PID 1's environment and command line must be readable for this test to mean anything: {processes:?}"
    );
    assert!(
        processes.len() >= 2,
        "{runtime}: the probe should see PID 1 and itself: {processes:?}"
    );
    for p in processes {
        let names: Vec<&str> = p["environ"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
            .unwrap_or_default();
        for banned in [
            "AIRLOCK_MASTER_KEY",
            "GITHUB_TOKEN",
            "AIRLOCK_TEST_OPERATOR_CANARY",
            "DOCKER_CONFIG",
        ] {
            assert!(
                !names.contains(&banned),
                "{runtime}: {banned} is in the environment of {p}"
            );
        }
    }
    assert!(
        answers[1]
            .as_array()
            .is_some_and(|f| f.iter().any(|p| p.as_str().is_some_and(|p| p.ends_with("/environ")))),
        "{runtime}: the placeholder should be in the agent's environment: {}",
        answers[1]
    );
    for (value, found) in shell.values().iter().zip(&answers[2..]) {
        assert_eq!(
            found,
            &serde_json::json!([]),
            "{runtime}: the operator's {value:?} is visible in the sandbox"
        );
    }
    for v in shell.values() {
        assert!(!printed.contains(v), "{runtime}: {v:?} in airlock run's output");
    }
}

/// Every container engine's and runtime's socket and state, rootful and rootless, reached
/// directly, through a parent directory or a symlink, refused before any sandbox starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_sockets_cannot_be_mounted() {
    let (dir, config) = setup(&format!("{}{}", gateway_section(&[]), rules()));
    let runtime_dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(runtime_dir.path().join("podman")).unwrap();
    let _podman = std::os::unix::net::UnixListener::bind(runtime_dir.path().join("podman/podman.sock")).unwrap();
    std::fs::create_dir_all(runtime_dir.path().join("buildkit")).unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(project.join("sockets")).unwrap();
    std::os::unix::fs::symlink("/run/containerd", project.join("innocent")).unwrap();
    let rt = runtime_dir.path().display().to_string();
    let engine = "container engine's socket";
    let mut cases = vec![
        ("/run/docker".to_string(), engine), // holds Docker's containerd socket
        ("/run/containerd".into(), engine),
        ("/var/lib/docker".into(), engine),
        ("/run".into(), engine), // all of them at once
        ("/var/run".into(), engine),
        ("/var/run/docker.sock".into(), engine),
        ("/proc".into(), "/proc"),
        (format!("{rt}/podman"), engine),
        (format!("{rt}/podman/podman.sock"), engine),
        (format!("{rt}/buildkit"), engine),
        (rt.clone(), engine),
        (project.join("innocent").display().to_string(), engine),
    ];
    // Any socket, whatever its name: a service on the host outside the gateway.
    let _other = std::os::unix::net::UnixListener::bind(project.join("sockets/agent.sock")).unwrap();
    cases.push((project.join("sockets/agent.sock").display().to_string(), "Unix socket"));
    cases.push((project.display().to_string(), "Unix socket"));
    for (src, why) in cases {
        let mount = format!("{src}:/x");
        let o = std::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(run_args("bwrap", &["--mount", &mount, "--", "true"]))
            .env("XDG_RUNTIME_DIR", runtime_dir.path())
            .output()
            .unwrap();
        assert!(!o.status.success(), "{mount} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("refused") && err.contains(why), "{mount}: {err}");
    }
    // `--workdir` goes through the same check.
    let o = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(run_args("bwrap", &["--workdir", "/run/docker", "--", "true"]))
        .output()
        .unwrap();
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains(engine),
        "{}",
        text(&o)
    );
}
