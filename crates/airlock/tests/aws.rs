//! AWS Signature V4 end to end: real botocore in the agent's seat, holding only placeholder keys,
//! through a real `airlock serve`, to a local fake AWS endpoint (TLS on 127.0.0.1) that checks
//! every signature with the REAL keys — its own SigV4 verifier, written from AWS's documentation,
//! not the gateway's signer.
//!
//! Invariant 2/3 for AWS keys: the agent's signature with the placeholder is replaced by one made
//! with the real keys (and the real session token), toward the bound host only; `aws` rules
//! decide on the call's service and action; an upstream that echoes the real key id or session
//! token has it scrubbed; no real key appears in the gateway's logs, the audit log or a response.
mod support;

use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use support::*;

const REAL_KEY_ID: &str = "AKIAREALKEYID0000001";
const REAL_SECRET: &str = "rEaLsEcReTkEy/0123456789+abcdefghijKLMNOP";
const REAL_TOKEN: &str = "FwoGZXIvYXdzEREALSESSIONTOKEN0123456789abcdef";
const PLACEHOLDER: &str = "AKIAAIRLOCKPLACEHOLDER";
const SECRET_PLACEHOLDER: &str = "airlock-aws-secret-placeholder-aws";

const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The SigV4 signing key of `secret` for `scope` (date, region, service, aws4_request).
fn signing_key(secret: &str, scope: &[&str]) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope {
        key = hmac(&key, part);
    }
    key
}

/// A chunk's signature, as AWS's sigv4-streaming documentation defines it.
fn chunk_signature(key: &[u8], date: &str, scope: &str, previous: &str, data: &[u8]) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{previous}\n{}\n{}",
        hex::encode(Sha256::digest(b"")),
        hex::encode(Sha256::digest(data))
    );
    hex::encode(hmac(key, &to_sign))
}

/// The payload of a signed-chunk body whose chunk signatures are made with the REAL secret and
/// chain from the request's own signature; why not, otherwise.
fn real_payload(seen: &Seen) -> Result<Vec<u8>, String> {
    let auth = seen.header("authorization").ok_or("unsigned")?;
    let cred = auth.split("Credential=").nth(1).and_then(|c| c.split(',').next());
    let scope: Vec<&str> = cred.ok_or("no credential")?.split('/').skip(1).collect();
    let mut previous = auth.rsplit("Signature=").next().unwrap_or_default().to_string();
    let date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    let key = signing_key(REAL_SECRET, &scope);
    let (mut rest, mut payload, mut n) = (&seen.body[..], Vec::new(), 1);
    loop {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("a chunk header without CRLF")?;
        let header = String::from_utf8_lossy(&rest[..end]).into_owned();
        let (size, sig) = header.split_once(";chunk-signature=").ok_or("no chunk-signature")?;
        let size = usize::from_str_radix(size, 16).map_err(|_| "a bad chunk size")?;
        let data = rest.get(end + 2..end + 2 + size).ok_or("a chunk cut short")?;
        if rest.get(end + 2 + size..end + 4 + size) != Some(&b"\r\n"[..]) {
            return Err("chunk data without CRLF".into());
        }
        let want = chunk_signature(&key, date, &scope.join("/"), &previous, data);
        if sig != want {
            return Err(format!("the signature of chunk {n} is not made with the real key"));
        }
        payload.extend_from_slice(data);
        (previous, rest, n) = (want, &rest[end + 4 + size..], n + 1);
        if size == 0 {
            return match rest.is_empty() {
                true => Ok(payload),
                false => Err("data after the final chunk".into()),
            };
        }
    }
}

/// RFC 3986 encoding as SigV4 wants it: everything but unreserved characters.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why the fake refuses `seen`, or `None` when it is signed by the real keys (and token).
fn verify(seen: &Seen, port: u16) -> Option<String> {
    let auth = seen.header("authorization")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let field = |k: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let (cred, signed, sig) = (field("Credential")?, field("SignedHeaders")?, field("Signature")?);
    let scope: Vec<&str> = cred.split('/').collect();
    if scope[0] != REAL_KEY_ID {
        return Some(format!("unknown access key id {}", scope[0]));
    }
    if seen.header("x-amz-security-token") != Some(REAL_TOKEN) {
        return Some("missing or wrong session token".into());
    }
    if !signed.split(';').any(|h| h == "x-amz-security-token") {
        return Some("the session token is not signed".into());
    }
    let service = scope[3];
    let (path, query) = seen.target.split_once('?').unwrap_or((&seen.target, ""));
    // S3 signs the path as sent; other services encode it once more.
    let canonical_path = if service == "s3" {
        path.to_string()
    } else {
        uri_encode(path, true)
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let dec = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
            (uri_encode(&dec(k), false), uri_encode(&dec(v), false))
        })
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let host = format!("localhost:{port}");
    let mut headers = String::new();
    for name in signed.split(';') {
        let values: Vec<String> = if name == "host" {
            vec![seen.header("host").unwrap_or(&host).to_string()]
        } else {
            seen.headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        if values.is_empty() {
            return Some(format!("signed header {name} is missing"));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let payload = match seen.header("x-amz-content-sha256") {
        Some(h) => h.to_string(),
        None => hex::encode(Sha256::digest(&seen.body)),
    };
    let creq = format!(
        "{}\n{canonical_path}\n{}\n{headers}\n{signed}\n{payload}",
        seen.method,
        canonical_query.join("&")
    );
    let date = seen.header("x-amz-date")?;
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope[1..].join("/"),
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let want = hex::encode(hmac(&signing_key(REAL_SECRET, &scope[1..]), &sts));
    if want != sig {
        return Some(format!("signature does not match (canonical request {creq:?})"));
    }
    if payload == STREAMING {
        let decoded = match real_payload(seen) {
            Ok(p) => p,
            Err(why) => return Some(why),
        };
        if seen.header("x-amz-decoded-content-length") != Some(&decoded.len().to_string()) {
            return Some("the chunks do not hold x-amz-decoded-content-length bytes".into());
        }
    }
    None
}

fn json_response(status: u16, body: String) -> http::Response<TestBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(
            http_body_util::Full::new(Bytes::from(body))
                .map_err(|e| match e {})
                .boxed(),
        )
        .unwrap()
}

/// A fake DynamoDB and S3 on one TLS endpoint: refuses what the real keys did not sign, and
/// (as a careless service might) echoes the caller's key id and session token in DescribeTable.
async fn fake_aws() -> Upstream {
    let port = Arc::new(std::sync::OnceLock::new());
    let p = port.clone();
    let custom: Custom = Arc::new(move |seen: &Seen| {
        if let Some(why) = verify(seen, *p.get().unwrap()) {
            let body =
                serde_json::json!({"__type": "com.amazon.coral.service#InvalidSignatureException", "message": why});
            return Some(json_response(403, body.to_string()));
        }
        if seen.header("authorization").is_none() {
            let body = serde_json::json!({"__type": "MissingAuthenticationTokenException", "message": "unsigned"});
            return Some(json_response(403, body.to_string()));
        }
        let target = seen.header("x-amz-target").unwrap_or("");
        let body = match target.rsplit('.').next().unwrap_or("") {
            "ListTables" => serde_json::json!({"TableNames": ["orders"]}),
            "DescribeTable" => serde_json::json!({"Table": {"TableName": "orders",
                "TableArn": format!("{REAL_KEY_ID} with {REAL_TOKEN}")}}),
            "DeleteTable" => serde_json::json!({"TableDescription": {"TableStatus": "DELETING"}}),
            _ if seen.method == "GET" => {
                return Some(
                    http::Response::builder()
                        .body(
                            http_body_util::Full::new(Bytes::from_static(b"object bytes"))
                                .map_err(|e| match e {})
                                .boxed(),
                        )
                        .unwrap(),
                );
            }
            _ => serde_json::json!({}),
        };
        Some(json_response(200, body.to_string()))
    });
    let up = upstream_custom(true, Some(custom)).await;
    port.set(up.port).unwrap();
    up
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

/// botocore, as an unmodified agent runs it: placeholder keys, the gateway as its HTTPS proxy,
/// the gateway's CA. Prints `{"ok": …}` or `{"error": {status, code, message}}`.
const BOTO: &str = r#"
import json, sys
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
proxy, ca, endpoint, service, op, params, key_id, secret = sys.argv[1:9]
s = botocore.session.Session()
c = s.create_client(service, region_name="us-east-1", endpoint_url=endpoint,
    aws_access_key_id=key_id, aws_secret_access_key=secret, verify=ca,
    config=Config(proxies={"https": proxy}, retries={"max_attempts": 1}, s3={"addressing_style": "path"}))
try:
    r = getattr(c, op)(**json.loads(params))
    r.pop("ResponseMetadata", None)
    if "Body" in r:
        r["Body"] = r["Body"].read().decode()
    print(json.dumps({"ok": r}, default=str))
except ClientError as e:
    print(json.dumps({"error": {"status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "code": e.response["Error"].get("Code"), "message": e.response["Error"].get("Message")}}))
"#;

fn boto(gw: &Gateway, up: &Upstream, service: &str, op: &str, params: &str, key_id: &str) -> serde_json::Value {
    let endpoint = format!("https://localhost:{}", up.port);
    let ca = gw.ca_path().display().to_string();
    let url = gw.url("ops");
    let o = std::process::Command::new("python3")
        .args([
            "-c",
            BOTO,
            &url,
            &ca,
            &endpoint,
            service,
            op,
            params,
            key_id,
            SECRET_PLACEHOLDER,
        ])
        // Nothing of the developer's own AWS setup may stand in for the placeholders.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .expect("python3 with botocore is required by the tests (.ci/run installs it)");
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "botocore failed: {}", text(&o));
    serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("not JSON: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn botocore_with_placeholder_keys_is_resigned_with_the_real_ones() {
    let up = fake_aws().await;
    let mut gw = Gateway::start_env(
        &[&up],
        &config(),
        &[("aws", REAL_SECRET), ("aws-session", REAL_TOKEN)],
        &["ops"],
        &[("AWS_REAL_KEY_ID", REAL_KEY_ID)],
    );

    // Allowed by the `aws` rule; re-signed; the fake accepted the real signature.
    let r = boto(&gw, &up, "dynamodb", "list_tables", "{}", PLACEHOLDER);
    assert_eq!(r["ok"]["TableNames"][0], "orders", "{r}");
    let sent = up.last();
    assert!(
        sent.header("authorization")
            .unwrap()
            .contains(&format!("Credential={REAL_KEY_ID}/"))
    );
    assert_eq!(sent.header("x-amz-target"), Some("DynamoDB_20120810.ListTables"));

    // The service echoes the real key id and session token: the agent sees placeholders.
    let r = boto(
        &gw,
        &up,
        "dynamodb",
        "describe_table",
        r#"{"TableName": "orders"}"#,
        PLACEHOLDER,
    );
    let echoed = r["ok"]["Table"]["TableArn"].as_str().unwrap_or_default().to_string();
    assert_eq!(echoed, format!("{PLACEHOLDER} with {PLACEHOLDER}"), "{r}");

    // An `aws` deny rule on the action: the request never reaches the service.
    let before = up.requests().len();
    let r = boto(
        &gw,
        &up,
        "dynamodb",
        "delete_table",
        r#"{"TableName": "orders"}"#,
        PLACEHOLDER,
    );
    assert_eq!(r["error"]["status"], 403, "{r}");
    assert_eq!(up.requests().len(), before, "a denied call reached the service");

    // S3 (path style, single-encoded path, x-amz-content-sha256): GetObject allowed.
    let r = boto(
        &gw,
        &up,
        "s3",
        "get_object",
        r#"{"Bucket": "backups", "Key": "2025/db.dump"}"#,
        PLACEHOLDER,
    );
    assert_eq!(r["ok"]["Body"], "object bytes", "{r}");
    assert_eq!(up.last().target, "/backups/2025/db.dump");
    // PutObject is no `s3 reads` action: the default (deny) applies.
    let r = boto(
        &gw,
        &up,
        "s3",
        "put_object",
        r#"{"Bucket": "backups", "Key": "x", "Body": "hi"}"#,
        PLACEHOLDER,
    );
    assert_eq!(r["error"]["status"], 403, "{r}");

    // Signed with a key id that is not the placeholder: nothing is injected, so the agent's own
    // signature reaches the service, which refuses it.
    let r = boto(&gw, &up, "dynamodb", "list_tables", "{}", "AKIAIOSFODNN7EXAMPLE");
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
    let up = fake_aws().await;
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
    let r = boto(&gw, &up, "dynamodb", "list_tables", "{}", PLACEHOLDER);
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
    let up = fake_aws().await;
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
        assert_eq!(real_payload(&seen), Ok(payload), "{size}: the payload is the agent's");
        // The fake's chunk check is not vacuous: the agent's own chunks would have failed it.
        let as_sent = Seen {
            body: sent.body,
            ..seen
        };
        assert!(
            real_payload(&as_sent).is_err(),
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
