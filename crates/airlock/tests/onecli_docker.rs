//! A NanoClaw container, for real: the `docker run` arguments `@onecli-sh/sdk` 2.2.1's
//! `applyContainerConfig` derives from airlock's container config (`-e` per variable, the CA
//! mounted read-only at `caCertificateContainerPath`, the combined CA bundle), with NanoClaw's
//! options (`addHostMapping: false`, its own `--add-host=host.docker.internal:host-gateway`),
//! reaching a local HTTPS upstream through airlock with the real credential injected.
mod support;

use std::process::Command;

use serde_json::{Value, json};
use support::*;

const REAL: &str = "sk-ant-REAL-d0ck3r-key";
const IMAGE: &str = "airlock-agent:latest";

fn images() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../images/build.sh");
    let o = Command::new("bash").arg(script).output().expect("bash");
    assert!(o.status.success(), "images/build.sh failed: {}", text(&o));
}

/// The address `host-gateway` names inside a container (where the gateway must listen).
fn host_gateway() -> String {
    let o = Command::new("docker")
        .args(["run", "--rm", "--add-host=host.docker.internal:host-gateway", IMAGE])
        .args(["getent", "hosts", "host.docker.internal"])
        .output()
        .expect("docker is required by this test (.ci/run installs it)");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_started_with_the_sdk_arguments_gets_the_credential_injected() {
    images();
    let host = host_gateway();
    let up = upstream(true).await;
    // The proxy port must be known before start: it is in proxy_url.
    let port = std::net::TcpListener::bind((host.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let section = gateway_section(&[&up]).replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{host}:{port}\""));
    let config = format!(
        r#"{section}
[[agents]]
name = "ag-*"
secrets = ["anthropic"]

[secrets.anthropic]
hosts = ["localhost"]
header = "x-api-key"
placeholder = "airlock-anthropic-placeholder"
env = "ANTHROPIC_API_KEY"

[compat.onecli]
proxy_url = "http://host.docker.internal:{port}"

[[rules]]
name = "models"
hosts = ["localhost"]
paths = ["/v1/messages"]
action = "allow"
"#
    );
    let (dir, cfg_path) = setup(&config);
    std::fs::write(dir.path().join("upstream-0.pem"), up.ca_pem.as_ref().unwrap()).unwrap();
    let o = airlock(&cfg_path, &["secret", "set", "anthropic"], Some(REAL.as_bytes()), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let mut gw = Gateway::serving(dir, cfg_path, vec![]);
    let o = gw.cli(&["apikey", "add", "nanoclaw", "--scope", "provision"]);
    assert!(o.status.success(), "{}", text(&o));
    let key = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();

    // ensureAgent, then applyContainerConfig's fetch, as the SDK sends them.
    let http = reqwest::Client::new();
    let base = format!("http://{}/v1", gw.control);
    let r = http
        .post(format!("{base}/agents"))
        .header("Content-Type", "application/json")
        .header("Authorization", format!("Bearer {key}"))
        .body(json!({"name": "Team", "identifier": "ag-1765-abc123"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cfg: Value = http
        .get(format!("{base}/container-config?agent=ag-1765-abc123"))
        .header("Authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // applyContainerConfig(args, { addHostMapping: false, agent }), then NanoClaw's host mapping.
    let files = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    for (k, v) in cfg["env"].as_object().unwrap() {
        args.extend(["-e".into(), format!("{k}={}", v.as_str().unwrap())]);
    }
    let ca = cfg["caCertificate"].as_str().unwrap();
    let ca_file = files.path().join("onecli-proxy-ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let ca_at = cfg["caCertificateContainerPath"].as_str().unwrap();
    args.extend(["-v".into(), format!("{}:{ca_at}:ro", ca_file.display())]);
    let system = [
        "/etc/ssl/cert.pem",
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok());
    if let Some(sys) = system {
        let combined = files.path().join("onecli-combined-ca.pem");
        std::fs::write(&combined, format!("{}\n{}\n", sys.trim_end(), ca.trim_end())).unwrap();
        args.extend(["-e".into(), "SSL_CERT_FILE=/tmp/onecli-combined-ca.pem".into()]);
        args.extend(["-e".into(), "DENO_CERT=/tmp/onecli-combined-ca.pem".into()]);
        args.extend([
            "-v".into(),
            format!("{}:/tmp/onecli-combined-ca.pem:ro", combined.display()),
        ]);
    }
    args.push("--add-host=host.docker.internal:host-gateway".into());
    args.push(IMAGE.into());
    let script = format!(
        "curl -sS --fail-with-body -H \"x-api-key: $ANTHROPIC_API_KEY\" -d '{{\"model\":\"m\"}}' https://localhost:{}/v1/messages",
        up.port
    );
    args.extend(["sh".into(), "-c".into(), script]);
    let run = tokio::task::spawn_blocking(move || Command::new("docker").args(&args).output().unwrap())
        .await
        .unwrap();
    assert!(run.status.success(), "{}\n--- gateway ---\n{}", text(&run), gw.logs());
    let seen = up.last();
    assert_eq!(seen.target, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some(REAL));
    assert_eq!(seen.body, br#"{"model":"m"}"#);
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(audit.contains("ag-1765-abc123") && !audit.contains(REAL));
}
