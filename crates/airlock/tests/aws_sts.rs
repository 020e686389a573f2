//! AWS keys that assume a role: the secret's keys only sign STS `AssumeRole` (checked by a fake STS
//! with those keys); requests are re-signed with the role's temporary keys, which the fake service
//! accepts until they expire — base keys are refused there. Real botocore in the agent's seat,
//! through a real `airlock serve`.
//!
//! Invariants 2-3 for an assumed role: one `AssumeRole` serves a burst of concurrent requests; the
//! keys are replaced before they expire; a refusing STS gives the agent a 502 naming the secret,
//! audited; the temporary key id, secret and session token echoed by the service are scrubbed; no
//! base or temporary key appears in the gateway's logs, the audit log or a response.
mod fake_aws;
mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_aws::*;
use support::*;

const BASE_KEY_ID: &str = "AKIABASEKEYID0000001";
const BASE_SECRET: &str = "bAsEsEcReTkEy/0123456789+abcdefghijKLMNOP";
const PLACEHOLDER: &str = "AKIAAIRLOCKPLACEHOLDER";
const SECRET_PLACEHOLDER: &str = "airlock-aws-secret-placeholder-aws";
const SESSION_NAME: &str = "airlock-e2e";
const EXTERNAL_ID: &str = "tenant:airlock-tests";

struct World {
    sts: FakeSts,
    up: Upstream,
    gw: Gateway,
}

/// The fake STS and service (which accepts only what STS issued) and a gateway whose `aws` secret
/// assumes [`ROLE_ARN`] with the base keys.
async fn world(ttl: Duration) -> World {
    let accepted: Accepted = Arc::new(Mutex::new(Vec::new()));
    let base = Keys::new(BASE_KEY_ID, BASE_SECRET, None);
    let sts = FakeSts::start(base, accepted.clone(), SESSION_NAME, EXTERNAL_ID).await;
    *sts.st.ttl.lock().unwrap() = ttl;
    let up = fake_aws(accepted).await;
    let config = format!(
        r#"
[[agents]]
name = "ops"
secrets = ["aws"]

[secrets.aws]
kind = "aws"
access_key_id = "env:AWS_BASE_KEY_ID"
hosts = ["localhost"]
placeholder = "{PLACEHOLDER}"
role_arn = "{ROLE_ARN}"
external_id = "{EXTERNAL_ID}"
session_name = "{SESSION_NAME}"
duration = "15m"
sts_endpoint = "{}"

[[rules]]
name = "dynamodb reads"
hosts = ["localhost"]
aws = {{ service = "dynamodb", action = ["List*", "Describe*"] }}
action = "allow"
"#,
        sts.url()
    );
    let gw = Gateway::start_env(
        &[&up],
        &config,
        &[("aws", BASE_SECRET)],
        &["ops"],
        &[("AWS_BASE_KEY_ID", BASE_KEY_ID)],
    );
    World { sts, up, gw }
}

const LIST: (&str, &str, &str) = ("dynamodb", "list_tables", "{}");
const KEYS: (&str, &str) = (PLACEHOLDER, SECRET_PLACEHOLDER);

/// Stops the gateway: neither the base keys nor any key STS issued is in its logs or audit log
/// (returned, as JSON).
fn assert_no_keys(w: &mut World) -> String {
    w.gw.stop();
    let logs = w.gw.logs();
    let audit = serde_json::to_string(&w.gw.audit()).unwrap();
    let mut secrets = vec![BASE_KEY_ID.to_string(), BASE_SECRET.to_string()];
    for k in w.sts.issued() {
        secrets.extend([k.key_id, k.secret, k.token.unwrap()]);
    }
    for s in &secrets {
        assert!(!logs.contains(s.as_str()), "an AWS key in the gateway's logs");
        assert!(!audit.contains(s.as_str()), "an AWS key in the audit log");
    }
    assert_eq!(w.sts.violations(), Vec::<String>::new());
    audit
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_botocore_calls_is_resigned_with_one_assumed_role() {
    let mut w = world(Duration::from_secs(3600)).await;
    // STS takes its time, so the burst's requests wait for the one AssumeRole in flight.
    *w.sts.st.delay.lock().unwrap() = Duration::from_millis(500);
    let results = boto_parallel(&w.gw, &w.up, LIST, KEYS, 100);
    assert_eq!(results.len(), 100);
    for r in &results {
        assert_eq!(r["ok"]["TableNames"][0], "orders", "{r}");
    }
    assert_eq!(w.sts.calls(), 1, "one AssumeRole for 100 concurrent requests");
    let issued = w.sts.issued().remove(0);
    let seen = w.up.requests();
    assert_eq!(seen.len(), 100);
    for s in &seen {
        let auth = s.header("authorization").unwrap();
        assert!(auth.contains(&format!("Credential={}/", issued.key_id)), "{auth}");
        assert_eq!(s.header("x-amz-security-token"), issued.token.as_deref());
    }

    // The service echoes the temporary key id, session token and secret: the agent sees placeholders.
    let r = boto(
        &w.gw,
        &w.up,
        ("dynamodb", "describe_table", r#"{"TableName": "orders"}"#),
        KEYS,
    );
    assert_eq!(
        r["ok"]["Table"]["TableArn"],
        format!("{PLACEHOLDER} with {PLACEHOLDER}"),
        "{r}"
    );
    assert_eq!(r["ok"]["Table"]["TableId"], SECRET_PLACEHOLDER, "{r}");
    assert_eq!(w.sts.calls(), 1, "the assumed keys are cached");
    assert_no_keys(&mut w);
}

/// Keys near their expiry are replaced by a new AssumeRole before a request needs them; the
/// service refuses the old ones once they have expired, so only a refresh lets the call pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn role_keys_are_assumed_again_before_they_expire() {
    let ttl = Duration::from_secs(2);
    let mut w = world(ttl).await;
    let r = boto(&w.gw, &w.up, LIST, KEYS);
    assert_eq!(r["ok"]["TableNames"][0], "orders", "{r}");
    assert_eq!(w.sts.calls(), 1);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let r = boto(&w.gw, &w.up, LIST, KEYS);
    assert_eq!(r["ok"]["TableNames"][0], "orders", "{r}");
    assert_eq!(w.sts.calls(), 2, "the expired keys were replaced");
    let issued = w.sts.issued();
    assert_ne!(issued[0].key_id, issued[1].key_id);
    let auth = w.up.last().header("authorization").unwrap().to_string();
    assert!(auth.contains(&format!("Credential={}/", issued[1].key_id)), "{auth}");
    assert_no_keys(&mut w);
}

/// A placeholder-signed DynamoDB ListTables, as an SDK sends it (the gateway does not check the
/// placeholder signature itself: it replaces it).
async fn list_tables(w: &World) -> (u16, String) {
    let r =
        w.gw.client("ops")
            .post(format!("https://localhost:{}/", w.up.port))
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={PLACEHOLDER}/20260101/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-target, Signature={}",
                    "0".repeat(64)
                ),
            )
            .header("x-amz-date", "20260101T000000Z")
            .header("x-amz-target", "DynamoDB_20120810.ListTables")
            .header("content-type", "application/x-amz-json-1.0")
            .body("{}")
            .send()
            .await
            .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// STS refuses: the agent gets a 502 naming the secret and STS's reason (never a key), the
/// refusal is audited, nothing reaches the service; once STS agrees again, requests pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refusing_sts_gives_a_502_naming_the_secret() {
    let mut w = world(Duration::from_secs(3600)).await;
    w.sts.st.deny.store(true, Ordering::SeqCst);
    let (status, body) = list_tables(&w).await;
    assert_eq!(status, 502, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    let reason = answer["airlock"]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("credential \"aws\" could not be refreshed"),
        "{body}"
    );
    assert!(reason.contains("AccessDenied"), "{body}");
    assert!(!w.up.contacted(), "a request without keys reached the service");
    // botocore sees the same 502.
    let r = boto(&w.gw, &w.up, LIST, KEYS);
    assert_eq!(r["error"]["status"], 502, "{r}");

    w.sts.st.deny.store(false, Ordering::SeqCst);
    let (status, body) = list_tables(&w).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("orders"), "{body}");

    let audit = assert_no_keys(&mut w);
    assert!(
        audit.contains("could not be refreshed") && audit.contains("AccessDenied"),
        "the refusal is audited: {audit}"
    );
}
