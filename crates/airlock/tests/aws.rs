//! AWS Signature V4 end to end: real botocore in the agent's seat, holding only placeholder keys,
//! through a real `airlock serve`, to a local fake AWS endpoint (TLS on 127.0.0.1) that checks
//! every signature with the REAL keys — its own SigV4 verifier, written from AWS's documentation,
//! not the gateway's signer.
//!
//! Invariant 2/3 for AWS keys: the agent's signature with the placeholder is replaced by one made
//! with the real keys (and the real session token), toward the bound host only; `aws` rules
//! decide on the call's service and action; an upstream that echoes the real key id or session
//! token has it scrubbed; no real key appears in the gateway's logs, the audit log or a response.
mod fake_aws;
mod support;

use std::sync::{Arc, Mutex};

use fake_aws::*;
use sha2::{Digest, Sha256};
use support::*;

const REAL_KEY_ID: &str = "AKIAREALKEYID0000001";
const REAL_SECRET: &str = "rEaLsEcReTkEy/0123456789+abcdefghijKLMNOP";
const REAL_TOKEN: &str = "FwoGZXIvYXdzEREALSESSIONTOKEN0123456789abcdef";
const PLACEHOLDER: &str = "AKIAAIRLOCKPLACEHOLDER";
const SECRET_PLACEHOLDER: &str = "airlock-aws-secret-placeholder-aws";

/// The keys the fake service accepts: the real ones, with their session token.
fn real_keys() -> Accepted {
    Arc::new(Mutex::new(vec![Keys::new(REAL_KEY_ID, REAL_SECRET, Some(REAL_TOKEN))]))
}

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
name = "dynamodb reads"
hosts = ["localhost"]
aws = {{ service = "dynamodb", action = ["List*", "Describe*", "Get*"] }}
action = "allow"

[[rules]]
name = "no table deletes"
hosts = ["localhost"]
aws = {{ service = "dynamodb", action = ["Delete*"] }}
action = "deny"
reason = "tables are not deleted by agents"

[[rules]]
name = "s3 reads"
hosts = ["localhost"]
aws = {{ service = "s3", action = ["GetObject", "ListBucket"] }}
action = "allow"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn botocore_with_placeholder_keys_is_resigned_with_the_real_ones() {
    let up = fake_aws(real_keys()).await;
    let mut gw = Gateway::start_env(
        &[&up],
        &config(),
        &[("aws", REAL_SECRET), ("aws-session", REAL_TOKEN)],
        &["ops"],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );

    // Allowed by the `aws` rule; re-signed; the fake accepted the real signature.
    let r = boto(
        &gw,
        &up,
        ("dynamodb", "list_tables", "{}"),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    assert_eq!(r["ok"]["TableNames"][0], "orders", "{r}");
    let sent = up.last();
    assert!(
        sent.header("authorization")
            .unwrap()
            .contains(&format!("Credential={REAL_KEY_ID}/"))
    );
    assert_eq!(sent.header("x-amz-target"), Some("DynamoDB_20120810.ListTables"));

    // The service echoes the real key id, session token and secret: the agent sees placeholders.
    let r = boto(
        &gw,
        &up,
        ("dynamodb", "describe_table", r#"{"TableName": "orders"}"#),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    let echoed = r["ok"]["Table"]["TableArn"].as_str().unwrap_or_default().to_string();
    assert_eq!(echoed, format!("{PLACEHOLDER} with {PLACEHOLDER}"), "{r}");
    assert_eq!(r["ok"]["Table"]["TableId"], SECRET_PLACEHOLDER, "{r}");

    // An `aws` deny rule on the action: the request never reaches the service.
    let before = up.requests().len();
    let r = boto(
        &gw,
        &up,
        ("dynamodb", "delete_table", r#"{"TableName": "orders"}"#),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    assert_eq!(r["error"]["status"], 403, "{r}");
    assert_eq!(up.requests().len(), before, "a denied call reached the service");

    // S3 (path style, single-encoded path, x-amz-content-sha256): GetObject allowed.
    let r = boto(
        &gw,
        &up,
        ("s3", "get_object", r#"{"Bucket": "backups", "Key": "2025/db.dump"}"#),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    assert_eq!(r["ok"]["Body"], "object bytes", "{r}");
    assert_eq!(up.last().target, "/backups/2025/db.dump");
    // PutObject is no `s3 reads` action: the default (deny) applies.
    let r = boto(
        &gw,
        &up,
        ("s3", "put_object", r#"{"Bucket": "backups", "Key": "x", "Body": "hi"}"#),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    assert_eq!(r["error"]["status"], 403, "{r}");

    // Signed with a key id that is not the placeholder: nothing is injected, so the agent's own
    // signature reaches the service, which refuses it.
    let r = boto(
        &gw,
        &up,
        ("dynamodb", "list_tables", "{}"),
        ("AKIAIOSFODNN7EXAMPLE", SECRET_PLACEHOLDER),
    );
    assert_eq!(r["error"]["status"], 403, "{r}");
    assert!(
        up.last()
            .header("authorization")
            .unwrap()
            .contains("Credential=AKIAIOSFODNN7EXAMPLE/")
    );

    gw.stop();
    let logs = gw.logs();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for real in [REAL_SECRET, REAL_TOKEN, REAL_KEY_ID] {
        assert!(!logs.contains(real), "a real AWS credential in the gateway's logs");
        assert!(!audit.contains(real), "a real AWS credential in the audit log");
    }
    assert!(
        audit.contains("tables are not deleted by agents"),
        "the deny is audited"
    );
}

/// The placeholder key id is bound to its hosts: sent anywhere else, the request is refused as
/// an exfiltration attempt before anything is dialed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_placeholder_signature_toward_an_unbound_host_is_refused() {
    let up = fake_aws(real_keys()).await;
    let cfg = config().replace(
        "hosts = [\"localhost\"]\nplaceholder",
        "hosts = [\"dynamodb.example\"]\nplaceholder",
    );
    let gw = Gateway::start_env(
        &[&up],
        &cfg,
        &[("aws", REAL_SECRET), ("aws-session", REAL_TOKEN)],
        &["ops"],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );
    let r = boto(
        &gw,
        &up,
        ("dynamodb", "list_tables", "{}"),
        (PLACEHOLDER, SECRET_PLACEHOLDER),
    );
    assert_eq!(r["error"]["status"], 403, "{r}");
    assert!(!up.contacted(), "an exfiltration attempt reached the upstream");
}

/// An S3 signed-chunk PUT as an SDK holding the placeholder keys builds it (AWS's sigv4-streaming
/// algorithm): the seed signature over the headers, then every chunk signed in a chain.
fn placeholder_chunked_put(port: u16, path: &str, payload: &[u8], chunk: usize, decoded: usize) -> Put {
    let (date, day) = ("20260101T000000Z", "20260101");
    let scope = [day, "us-east-1", "s3", "aws4_request"];
    let signed = "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length";
    let creq = format!(
        "PUT\n{path}\n\ncontent-encoding:aws-chunked\nhost:localhost:{port}\n\
         x-amz-content-sha256:{STREAMING}\nx-amz-date:{date}\nx-amz-decoded-content-length:{decoded}\n\n\
         {signed}\n{STREAMING}"
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope.join("/"),
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let key = signing_key(SECRET_PLACEHOLDER, &scope);
    let seed = hex::encode(hmac(&key, &to_sign));
    let (mut body, mut previous) = (Vec::new(), seed.clone());
    for data in payload.chunks(chunk).chain([&[][..]]) {
        let sig = chunk_signature(&key, date, &scope.join("/"), &previous, data);
        body.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
        previous = sig;
    }
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={PLACEHOLDER}/{}, SignedHeaders={signed}, Signature={seed}",
        scope.join("/")
    );
    let headers = [
        ("authorization", auth),
        ("x-amz-date", date.to_string()),
        ("x-amz-content-sha256", STREAMING.to_string()),
        ("content-encoding", "aws-chunked".to_string()),
        ("x-amz-decoded-content-length", decoded.to_string()),
    ];
    Put {
        path: path.to_string(),
        headers: headers.map(|(k, v)| (k.to_string(), v)).to_vec(),
        body,
    }
}

#[derive(Clone)]
struct Put {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// S3 signed-chunk uploads: the gateway signs the headers and then every chunk again with the
/// real keys (the fake checks the whole chain with the real secret), keeps the framing and the
/// payload byte for byte, whether the body fit the prefetch or streamed past it, and refuses bad
/// framing with a 400 naming the problem before anything is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signed_chunk_uploads_are_resigned_chunk_by_chunk() {
    let up = fake_aws(real_keys()).await;
    // Bodies past the 1 MiB inspection limit cannot satisfy an `aws` rule (and are read
    // restrictively by the others, as a DynamoDB delete too): a path rule allows one.
    let agent_and_secret = config().split("[[rules]]").next().unwrap().to_string();
    let rules = r#"
[[rules]]
name = "s3 uploads"
hosts = ["localhost"]
aws = { service = "s3", action = ["PutObject"] }
action = "allow"

[[rules]]
name = "the large upload"
hosts = ["localhost"]
methods = ["PUT"]
paths = ["/backups/large"]
action = "allow"
"#;
    let mut gw = Gateway::start_env(
        &[&up],
        &format!("{agent_and_secret}{rules}"),
        &[("aws", REAL_SECRET), ("aws-session", REAL_TOKEN)],
        &["ops"],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );
    let client = gw.client("ops");
    let put = |p: Put| {
        let mut req = client.put(format!("https://localhost:{}{}", up.port, p.path));
        for (k, v) in p.headers {
            req = req.header(k, v);
        }
        req.body(p.body).send()
    };
    // 20 kB is read whole before the decision (and signed whole); 1.5 MB is past the 1 MiB the
    // gateway reads and is signed chunk by chunk as it streams.
    for (path, size, chunk) in [
        ("/backups/upload.bin", 20_000, 8_192),
        ("/backups/large", 1_500_000, 65_536),
    ] {
        let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        let sent = placeholder_chunked_put(up.port, path, &payload, chunk, size);
        let r = put(sent.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{size}: {}", r.text().await.unwrap());
        let seen = up.last();
        assert!(
            seen.header("authorization")
                .unwrap()
                .contains(&format!("Credential={REAL_KEY_ID}/"))
        );
        assert_eq!(seen.header("x-amz-content-sha256"), Some(STREAMING));
        assert_eq!(seen.body.len(), sent.body.len(), "{size}: the framing's length is kept");
        assert_ne!(seen.body, sent.body, "{size}: the chunk signatures were replaced");
        assert_eq!(
            real_payload(&seen, REAL_SECRET),
            Ok(payload),
            "{size}: the payload is the agent's"
        );
        // The fake's chunk check is not vacuous: the agent's own chunks would have failed it.
        let as_sent = Seen {
            body: sent.body,
            ..seen
        };
        assert!(
            real_payload(&as_sent, REAL_SECRET).is_err(),
            "{size}: placeholder-signed chunks pass"
        );
    }

    // Chunks that do not add up to x-amz-decoded-content-length: refused, nothing sent.
    let before = up.requests().len();
    let r = put(placeholder_chunked_put(
        up.port,
        "/backups/upload.bin",
        b"hello",
        8_192,
        6,
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("x-amz-decoded-content-length"), "{text}");
    assert_eq!(up.requests().len(), before, "a badly framed upload reached the service");
    // Bad framing past what was read before the request was sent: the upload is aborted.
    let payload = vec![b'x'; 1_500_000];
    let mut late = placeholder_chunked_put(up.port, "/backups/large", &payload, 65_536, payload.len());
    let header = b"10000;chunk-signature=";
    let at = late.body.windows(header.len()).rposition(|w| w == header).unwrap();
    assert!(
        at > 1 << 20,
        "the last full chunk is past the 1 MiB read before sending"
    );
    late.body[at + 4] = b'g';
    let (len, before) = (late.body.len(), up.requests().len());
    let r = put(late).await.unwrap();
    assert_eq!(r.status(), 502, "{}", r.text().await.unwrap());
    assert!(
        up.requests()[before..].iter().all(|s| s.body.len() < len),
        "an aborted upload reached the service whole"
    );

    gw.stop();
    let logs = gw.logs();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for secret in [REAL_SECRET, REAL_TOKEN, REAL_KEY_ID, SECRET_PLACEHOLDER] {
        assert!(!logs.contains(secret), "an AWS secret in the gateway's logs");
        assert!(!audit.contains(secret), "an AWS secret in the audit log");
    }
}
