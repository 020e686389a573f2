//! AWS keys through `airlock run`: an unmodified botocore inside a bubblewrap sandbox, holding only
//! what `airlock run` gives it (the placeholder `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, the
//! gateway as `HTTPS_PROXY`, the sandbox CA as `AWS_CA_BUNDLE`), reaches the fake AWS service
//! (which checks every signature with the real keys) re-signed by the gateway; the service's echo
//! of the real key id and secret reaches the sandbox as placeholders, and no real key is found
//! anywhere inside the sandbox.
mod fake_aws;
mod support;

use std::sync::{Arc, Mutex};

use fake_aws::*;
use support::bwrap::{bwrap_python, with_needle_scan};
use support::*;

const REAL_KEY_ID: &str = "AKIAREALRUNKEYID0001";
const REAL_SECRET: &str = "rEaLrUnSeCrEt/0123456789+abcdefghijKLMNOPQ";
const PLACEHOLDER: &str = "AKIAAIRLOCKRUNPLACEHOLDER";
const SECRET_PLACEHOLDER: &str = "airlock-aws-secret-placeholder-aws";

/// botocore with nothing but its environment: the default credential chain, proxy and CA bundle.
/// Prints the key id and secret it signs with, the DescribeTable answer, then whether the real
/// key id or secret (hex, so this script does not hold them) is in any file or environment it can read.
const AGENT: &str = r#"
import json, os, sys
import botocore.session
endpoint, needles = sys.argv[1], [bytes.fromhex(h) for h in sys.argv[2:]]
s = botocore.session.Session()
c = s.create_client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
creds = s.get_credentials()
print(json.dumps({"key_id": creds.access_key, "secret": creds.secret_key,
    "table": c.describe_table(TableName="orders")["Table"]}))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn botocore_inside_bwrap_is_resigned_with_the_real_keys() {
    // The Python that has botocore, mounted read-only at its own path.
    let prefix = bwrap_python("botocore");

    let up = fake_aws(Arc::new(Mutex::new(vec![Keys::new(REAL_KEY_ID, REAL_SECRET, None)]))).await;
    let config = format!(
        r#"
[[agents]]
name = "ops"
secrets = ["aws"]

[secrets.aws]
kind = "aws"
access_key_id = "env:AWS_REAL_KEY_ID"
hosts = ["localhost"]
placeholder = "{PLACEHOLDER}"

[[rules]]
name = "dynamodb reads"
hosts = ["localhost"]
aws = {{ service = "dynamodb", action = ["Describe*"] }}
action = "allow"
"#
    );
    let mut gw = Gateway::start_env(
        &[&up],
        &config,
        &[("aws", REAL_SECRET)],
        &[],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );
    let endpoint = format!("https://localhost:{}", up.port);
    let python = format!("{prefix}/bin/python3");
    let (id_hex, secret_hex) = (hex::encode(REAL_KEY_ID), hex::encode(REAL_SECRET));
    let o = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&gw.config)
        .args(["run", "--agent", "ops", "--runtime", "bwrap", "--mount"])
        .arg(format!("{prefix}:{prefix}:ro"))
        .args([
            "--",
            &python,
            "-c",
            &with_needle_scan(AGENT),
            &endpoint,
            &id_hex,
            &secret_hex,
        ])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let mut lines = out.lines();
    let r: serde_json::Value = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    // The agent signed with the placeholders airlock run gave it ...
    assert_eq!(r["key_id"], PLACEHOLDER, "{r}");
    assert_eq!(r["secret"], SECRET_PLACEHOLDER, "{r}");
    // ... the service saw the real key id's signature (and checked it with the real secret) ...
    let auth = up.last().header("authorization").unwrap().to_string();
    assert!(auth.contains(&format!("Credential={REAL_KEY_ID}/")), "{auth}");
    // ... and its echo of the real keys reached the sandbox as placeholders.
    assert_eq!(r["table"]["TableArn"], format!("{PLACEHOLDER} with "), "{r}");
    assert_eq!(r["table"]["TableId"], SECRET_PLACEHOLDER, "{r}");
    let found: Vec<String> = serde_json::from_str(lines.next().unwrap_or_default()).unwrap();
    assert!(found.is_empty(), "a real AWS key inside the sandbox: {found:?}");
    assert!(!text(&o).contains(REAL_SECRET) && !text(&o).contains(REAL_KEY_ID));

    gw.stop();
    let (logs, audit) = (gw.logs(), serde_json::to_string(&gw.audit()).unwrap());
    for real in [REAL_KEY_ID, REAL_SECRET] {
        assert!(!logs.contains(real), "a real AWS key in the gateway's logs");
        assert!(!audit.contains(real), "a real AWS key in the audit log");
    }
}
