//! AWS presigned URLs end to end: botocore in the agent's seat, holding only the placeholder
//! keys, presigns an S3 GetObject; curl fetches the URL through a real `airlock serve`; the local
//! fake S3 checks the query signature with the REAL keys (its own verifier, written from AWS's
//! documentation, not the gateway's signer).
//!
//! Invariants 2/3 for presigned URLs: the agent's URL, checked against the placeholder keys, is
//! signed again in its query with the real keys and session token toward the bound host only; a
//! URL changed after it was signed is refused before anything is dialed; an upstream echoing the
//! URL it received hands the agent the placeholder key id and the agent's own signature back —
//! never the real key id, session token or signature (a real presigned URL is a bearer credential).
mod fake_aws;
mod support;

use std::sync::{Arc, Mutex};

use fake_aws::*;
use support::*;

const REAL_KEY_ID: &str = "AKIAREALPRESIGNKEY01";
const REAL_SECRET: &str = "pReSiGnReAlSeCrEt/0123456789+abcdefghijKL";
// With characters a URL must percent-encode: the scrubber must find it in that form too.
const REAL_TOKEN: &str = "FwoGZXIvYXdzEPRESIGN/SESSION+TOKEN0123456789=";
const PLACEHOLDER: &str = "AKIAAIRLOCKPLACEHOLDER";
const SECRET_PLACEHOLDER: &str = "airlock-aws-secret-placeholder-aws";

fn config() -> String {
    format!(
        r#"
[[agents]]
name = "ops"
secrets = ["aws"]

[secrets.aws]
kind = "aws"
access_key_id = "env:AWS_REAL_KEY_ID"
session_token = "vault:aws-session"
hosts = ["localhost"]
placeholder = "{PLACEHOLDER}"

[[rules]]
name = "s3 reads"
hosts = ["localhost"]
aws = {{ service = "s3", action = ["GetObject"] }}
action = "allow"
"#
    )
}

/// The fake S3 accepting the real keys, and a gateway serving `cfg` with them sealed.
async fn start(cfg: &str) -> (Upstream, Gateway) {
    let accepted = Arc::new(Mutex::new(vec![Keys::new(REAL_KEY_ID, REAL_SECRET, Some(REAL_TOKEN))]));
    let up = fake_aws(accepted).await;
    let gw = Gateway::start_env(
        &[&up],
        cfg,
        &[("aws", REAL_SECRET), ("aws-session", REAL_TOKEN)],
        &["ops"],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );
    (up, gw)
}

/// botocore's `generate_presigned_url`, as an agent's tool calls it (no request is made).
const PRESIGN: &str = r#"
import json, sys
import botocore.session
from botocore.config import Config
endpoint, op, params, key_id, secret = sys.argv[1:6]
c = botocore.session.Session().create_client("s3", region_name="us-east-1", endpoint_url=endpoint,
    aws_access_key_id=key_id, aws_secret_access_key=secret,
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
print(c.generate_presigned_url(op, Params=json.loads(params), ExpiresIn=900))
"#;

fn presign(up: &Upstream, op: &str, params: &str, key_id: &str) -> String {
    let endpoint = format!("https://localhost:{}", up.port);
    let o = std::process::Command::new("python3")
        .args(["-c", PRESIGN, &endpoint, op, params, key_id, SECRET_PLACEHOLDER])
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("python3 with botocore is required by the tests (.ci/run installs it)");
    assert!(o.status.success(), "botocore failed: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Fetches `url` with curl through the gateway as agent `ops`: (status, body).
fn fetch(gw: &Gateway, url: &str) -> (u16, String) {
    let ca = gw.ca_path().display().to_string();
    let o = curl(&[
        "-sS",
        "--proxy",
        &gw.url("ops"),
        "--cacert",
        &ca,
        "-w",
        "\n%{http_code}",
        url,
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", "0"));
    (status.parse().unwrap_or(0), body.to_string())
}

fn param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presigned_urls_are_checked_and_signed_again_with_the_real_keys() {
    let (up, gw) = start(&config()).await;

    // The agent presigns with the placeholders and fetches: the fake verified the real keys' signature.
    let url = presign(
        &up,
        "get_object",
        r#"{"Bucket": "backups", "Key": "2025/db.dump"}"#,
        PLACEHOLDER,
    );
    assert!(url.contains(&format!("X-Amz-Credential={PLACEHOLDER}%2F")), "{url}");
    let (status, body) = fetch(&gw, &url);
    assert_eq!((status, body.as_str()), (200, "object bytes"));
    let sent = up.last();
    assert!(sent.target.starts_with("/backups/2025/db.dump?"), "{}", sent.target);
    let sent_url = format!("https://localhost{}", sent.target);
    let credential = param(&sent_url, "X-Amz-Credential").unwrap();
    assert!(credential.starts_with(&format!("{REAL_KEY_ID}/")), "{credential}");
    assert_eq!(param(&sent_url, "X-Amz-Security-Token").as_deref(), Some(REAL_TOKEN));
    // Valid when the agent's URL is: its date and lifetime are kept.
    for kept in ["X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders"] {
        assert_eq!(param(&sent_url, kept), param(&url, kept), "{kept}");
    }
    let agent_signature = param(&url, "X-Amz-Signature").unwrap();
    let real_signature = param(&sent_url, "X-Amz-Signature").unwrap();
    assert_ne!(agent_signature, real_signature);
    assert!(
        !sent.target.contains(PLACEHOLDER),
        "the placeholder reached the service"
    );

    // The service echoes the URL it received: the agent reads the placeholder key id and its own
    // signature, never the real key id, session token or signature.
    let echo_url = presign(
        &up,
        "get_object",
        r#"{"Bucket": "backups", "Key": "echo/url"}"#,
        PLACEHOLDER,
    );
    let (status, echoed) = fetch(&gw, &echo_url);
    assert_eq!(status, 200, "{echoed}");
    let real_echo_signature = param(&format!("https://localhost{}", up.last().target), "X-Amz-Signature").unwrap();
    assert!(
        echoed.contains(&format!("X-Amz-Credential={PLACEHOLDER}%2F")),
        "{echoed}"
    );
    assert!(
        echoed.contains(&param(&echo_url, "X-Amz-Signature").unwrap()),
        "{echoed}"
    );
    for real in [
        REAL_KEY_ID,
        REAL_TOKEN,
        "EPRESIGN%2FSESSION",
        real_echo_signature.as_str(),
    ] {
        assert!(!echoed.contains(real), "{real} reached the agent: {echoed}");
    }

    // Changed after it was signed (another object): refused before anything is dialed.
    let before = up.requests().len();
    let tampered = url.replacen("/backups/2025/db.dump?", "/backups/2025/other.dump?", 1);
    let (status, body) = fetch(&gw, &tampered);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("presigned URL"), "{body}");
    // Another lifetime than the one signed.
    let longer = url.replacen("X-Amz-Expires=900", "X-Amz-Expires=604800", 1);
    assert_eq!(fetch(&gw, &longer).0, 403);
    assert_eq!(
        up.requests().len(),
        before,
        "a changed presigned URL reached the service"
    );

    // Presigned with another key id (keys the agent brought): forwarded untouched, so the service
    // refuses the signature it cannot verify.
    let foreign = presign(
        &up,
        "get_object",
        r#"{"Bucket": "backups", "Key": "k"}"#,
        "AKIAIOSFODNN7EXAMPLE",
    );
    let (status, _) = fetch(&gw, &foreign);
    assert_eq!(status, 403);
    assert_eq!(
        up.last().target,
        foreign.trim_start_matches(&format!("https://localhost:{}", up.port))
    );

    // The policy sees the presigned call: PutObject is no `s3 reads` action (default deny).
    let before = up.requests().len();
    let put = presign(&up, "put_object", r#"{"Bucket": "backups", "Key": "x"}"#, PLACEHOLDER);
    let ca = gw.ca_path().display().to_string();
    let o = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--proxy",
        &gw.url("ops"),
        "--cacert",
        &ca,
        "-X",
        "PUT",
        "--data-binary",
        "hi",
        &put,
    ]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "403");
    assert_eq!(
        up.requests().len(),
        before,
        "a denied presigned PUT reached the service"
    );

    let (logs, audit) = (gw.logs(), serde_json::to_string(&gw.audit()).unwrap());
    for real in [REAL_KEY_ID, REAL_SECRET, REAL_TOKEN, real_signature.as_str()] {
        assert!(
            !logs.contains(real),
            "a real AWS credential or signature in the gateway's logs"
        );
        assert!(
            !audit.contains(real),
            "a real AWS credential or signature in the audit log"
        );
    }
}

/// A presigned URL naming the placeholder, toward a host its secret is not bound to: refused as
/// exfiltration, nothing dialed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_presigned_placeholder_toward_an_unbound_host_is_refused() {
    let cfg = config().replace(
        "hosts = [\"localhost\"]\nplaceholder",
        "hosts = [\"s3.example\"]\nplaceholder",
    );
    let (up, gw) = start(&cfg).await;
    let url = presign(
        &up,
        "get_object",
        r#"{"Bucket": "backups", "Key": "2025/db.dump"}"#,
        PLACEHOLDER,
    );
    let (status, body) = fetch(&gw, &url);
    assert_eq!(status, 403, "{body}");
    assert!(!up.contacted(), "an exfiltration attempt reached the upstream");
}
