//! A local AWS for the tests: a fake DynamoDB and S3 (TLS on 127.0.0.1) that checks every
//! signature with the keys it accepts — its own SigV4 verifier, written from AWS's documentation,
//! not the gateway's signer — and a fake STS whose `AssumeRole` must be signed with the base keys
//! and issues short-lived keys that the fake service then accepts until they expire. Also
//! botocore, as an unmodified agent runs it.
#![allow(dead_code)]

mod presigned;
pub use presigned::*;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use crate::support::*;

pub const STREAMING: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/agent-ops";

/// One set of keys a fake accepts: the key id, secret key and (for temporary keys) session token.
#[derive(Debug, Clone)]
pub struct Keys {
    pub key_id: String,
    pub secret: String,
    pub token: Option<String>,
    /// Refused after this (issued by the fake STS).
    pub expires: Option<Instant>,
}

impl Keys {
    pub fn new(key_id: &str, secret: &str, token: Option<&str>) -> Keys {
        Keys {
            key_id: key_id.into(),
            secret: secret.into(),
            token: token.map(str::to_string),
            expires: None,
        }
    }
}

/// The keys a fake service accepts; the fake STS adds the ones it issues.
pub type Accepted = Arc<Mutex<Vec<Keys>>>;

pub fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The SigV4 signing key of `secret` for `scope` (date, region, service, aws4_request).
pub fn signing_key(secret: &str, scope: &[&str]) -> Vec<u8> {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in scope {
        key = hmac(&key, part);
    }
    key
}

/// A chunk's signature, as AWS's sigv4-streaming documentation defines it.
pub fn chunk_signature(key: &[u8], date: &str, scope: &str, previous: &str, data: &[u8]) -> String {
    let to_sign = format!(
        "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{previous}\n{}\n{}",
        hex::encode(Sha256::digest(b"")),
        hex::encode(Sha256::digest(data))
    );
    hex::encode(hmac(key, &to_sign))
}

/// The payload of a signed-chunk body whose chunk signatures are made with `secret` and chain
/// from the request's own signature; why not, otherwise.
pub fn real_payload(seen: &Seen, secret: &str) -> Result<Vec<u8>, String> {
    let auth = seen.header("authorization").ok_or("unsigned")?;
    let cred = auth.split("Credential=").nth(1).and_then(|c| c.split(',').next());
    let scope: Vec<&str> = cred.ok_or("no credential")?.split('/').skip(1).collect();
    let mut previous = auth.rsplit("Signature=").next().unwrap_or_default().to_string();
    let date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    let key = signing_key(secret, &scope);
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

/// The live keys of `accepted` with `key_id`, provided `token` is theirs; why not, otherwise.
pub fn live_keys<'a>(accepted: &'a [Keys], key_id: &str, token: Option<&str>) -> Result<&'a Keys, String> {
    let keys = accepted
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| format!("unknown access key id {key_id}"))?;
    if keys.expires.is_some_and(|e| Instant::now() > e) {
        return Err("ExpiredToken: the security token included in the request is expired".into());
    }
    if token != keys.token.as_deref() {
        return Err("missing or wrong session token".into());
    }
    Ok(keys)
}

/// The keys of `accepted` that signed `seen` (as sent to `host`), or why the request is refused.
pub fn verify(seen: &Seen, host: &str, accepted: &[Keys]) -> Result<Keys, String> {
    let auth = seen.header("authorization").ok_or("unsigned")?;
    let rest = auth.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("not SigV4")?;
    let field = |k: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
    };
    let (Some(cred), Some(signed), Some(sig)) = (field("Credential"), field("SignedHeaders"), field("Signature"))
    else {
        return Err("a malformed Authorization".into());
    };
    let scope: Vec<&str> = cred.split('/').collect();
    let keys = live_keys(accepted, scope[0], seen.header("x-amz-security-token"))?;
    if keys.token.is_some() && !signed.split(';').any(|h| h == "x-amz-security-token") {
        return Err("the session token is not signed".into());
    }
    let payload = match seen.header("x-amz-content-sha256") {
        Some(h) => h.to_string(),
        None => hex::encode(Sha256::digest(&seen.body)),
    };
    let creq = canonical_request(seen, host, scope[3], signed, &payload, None)?;
    let date = seen.header("x-amz-date").ok_or("no x-amz-date")?;
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope[1..].join("/"),
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let want = hex::encode(hmac(&signing_key(&keys.secret, &scope[1..]), &sts));
    if want != sig {
        return Err(format!("signature does not match (canonical request {creq:?})"));
    }
    if payload == STREAMING {
        let decoded = real_payload(seen, &keys.secret)?;
        if seen.header("x-amz-decoded-content-length") != Some(&decoded.len().to_string()) {
            return Err("the chunks do not hold x-amz-decoded-content-length bytes".into());
        }
    }
    Ok(keys.clone())
}

/// The canonical request of `seen` (sent to `host`) as AWS's documentation defines it, signing
/// the `signed` headers and `payload`; a presigned URL's `X-Amz-Signature` (`unsigned_param`)
/// is left out of the canonical query.
pub fn canonical_request(
    seen: &Seen,
    host: &str,
    service: &str,
    signed: &str,
    payload: &str,
    unsigned_param: Option<&str>,
) -> Result<String, String> {
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
        .filter(|(k, _)| Some(k.as_str()) != unsigned_param)
        .collect();
    pairs.sort();
    let canonical_query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut headers = String::new();
    for name in signed.split(';') {
        let values: Vec<String> = if name == "host" {
            vec![seen.header("host").unwrap_or(host).to_string()]
        } else {
            seen.headers
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        };
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    Ok(format!(
        "{}\n{canonical_path}\n{}\n{headers}\n{signed}\n{payload}",
        seen.method,
        canonical_query.join("&")
    ))
}

pub fn response(status: u16, content_type: &str, body: String) -> http::Response<TestBody> {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed())
        .unwrap()
}

type Full = http_body_util::Full<Bytes>;

fn json_response(status: u16, body: serde_json::Value) -> http::Response<TestBody> {
    response(status, "application/x-amz-json-1.0", body.to_string())
}

/// A fake DynamoDB and S3 on one TLS endpoint: refuses what the `accepted` keys did not sign (in
/// the `Authorization` header or a presigned URL's query), and (as a careless service might)
/// echoes the caller's key id, session token and secret key in DescribeTable, and the URL it was
/// sent for the S3 object `echo/url`.
pub async fn fake_aws(accepted: Accepted) -> Upstream {
    let port = Arc::new(std::sync::OnceLock::new());
    let p = port.clone();
    let custom: Custom = Arc::new(move |seen: &Seen| {
        let presigned = query_params(seen).iter().any(|(k, _)| k == "X-Amz-Signature");
        if seen.header("authorization").is_none() && !presigned {
            let body = serde_json::json!({"__type": "MissingAuthenticationTokenException", "message": "unsigned"});
            return Some(json_response(403, body));
        }
        let host = format!("localhost:{}", p.get().unwrap());
        let checked = match presigned {
            true => verify_presigned(seen, &host, &accepted.lock().unwrap()),
            false => verify(seen, &host, &accepted.lock().unwrap()),
        };
        let keys = match checked {
            Ok(k) => k,
            Err(why) => {
                let body = serde_json::json!({"__type": "com.amazon.coral.service#InvalidSignatureException",
                    "message": why});
                return Some(json_response(403, body));
            }
        };
        let target = seen.header("x-amz-target").unwrap_or("");
        let body = match target.rsplit('.').next().unwrap_or("") {
            "ListTables" => serde_json::json!({"TableNames": ["orders"]}),
            "DescribeTable" => serde_json::json!({"Table": {"TableName": "orders",
                "TableArn": format!("{} with {}", keys.key_id, keys.token.unwrap_or_default()),
                "TableId": keys.secret}}),
            "DeleteTable" => serde_json::json!({"TableDescription": {"TableStatus": "DELETING"}}),
            _ if seen.method == "GET" && seen.target.starts_with("/backups/echo/url?") => {
                return Some(response(200, "text/plain", seen.target.clone()));
            }
            _ if seen.method == "GET" => {
                return Some(response(200, "application/octet-stream", "object bytes".into()));
            }
            _ => serde_json::json!({}),
        };
        Some(json_response(200, body))
    });
    let up = upstream_custom(true, Some(custom)).await;
    port.set(up.port).unwrap();
    up
}

/// A fake STS (plain HTTP on 127.0.0.1, as a test endpoint may be): `AssumeRole` of [`ROLE_ARN`]
/// signed with `base` for region us-east-1 and service `sts` (with the expected session name and
/// external id) gets fresh keys valid for `ttl`, which the fake service then accepts.
pub struct FakeSts {
    pub up: Upstream,
    pub st: Arc<StsState>,
}

pub struct StsState {
    pub assume_role_calls: AtomicUsize,
    /// Every key issued (key id, secret, session token), to grep logs and audit for.
    pub issued: Mutex<Vec<Keys>>,
    /// Requests refused for a reason a correct client never causes.
    pub violations: Mutex<Vec<String>>,
    /// Answer AssumeRole with AccessDenied.
    pub deny: AtomicBool,
    pub ttl: Mutex<Duration>,
    /// How long an AssumeRole answer is held, so concurrent requests arrive while it is pending.
    pub delay: Mutex<Duration>,
}

impl FakeSts {
    pub async fn start(base: Keys, accepted: Accepted, session_name: &str, external_id: &str) -> FakeSts {
        let st = Arc::new(StsState {
            assume_role_calls: AtomicUsize::new(0),
            issued: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            deny: AtomicBool::new(false),
            ttl: Mutex::new(Duration::from_secs(3600)),
            delay: Mutex::new(Duration::ZERO),
        });
        let port = Arc::new(std::sync::OnceLock::new());
        let (s, p) = (st.clone(), port.clone());
        let (session_name, external_id) = (session_name.to_string(), external_id.to_string());
        let custom: Custom = Arc::new(move |seen: &Seen| {
            let host = format!("127.0.0.1:{}", p.get().unwrap());
            let refuse = |why: String| {
                s.violations.lock().unwrap().push(why.clone());
                Some(sts_error(403, "SignatureDoesNotMatch", &why))
            };
            if let Err(why) = verify(seen, &host, std::slice::from_ref(&base)) {
                return refuse(why);
            }
            let auth = seen.header("authorization").unwrap_or("");
            if !auth.contains("/us-east-1/sts/aws4_request") {
                return refuse(format!("not signed for us-east-1 sts: {auth}"));
            }
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&seen.body).into_owned().collect();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
            let want = [
                ("Action", "AssumeRole"),
                ("Version", "2011-06-15"),
                ("RoleArn", ROLE_ARN),
                ("RoleSessionName", session_name.as_str()),
                ("ExternalId", external_id.as_str()),
            ];
            for (k, v) in want {
                if get(k) != Some(v) {
                    return refuse(format!("{k} is {:?}, not {v:?}", get(k)));
                }
            }
            if seen.method != "POST"
                || seen.header("content-type") != Some("application/x-www-form-urlencoded; charset=utf-8")
            {
                return refuse("AssumeRole is a form POST".into());
            }
            std::thread::sleep(*s.delay.lock().unwrap());
            let n = s.assume_role_calls.fetch_add(1, Ordering::SeqCst) + 1;
            if s.deny.load(Ordering::SeqCst) {
                return Some(sts_error(
                    403,
                    "AccessDenied",
                    &format!("User is not authorized to perform: sts:AssumeRole on resource: {ROLE_ARN}"),
                ));
            }
            let ttl = *s.ttl.lock().unwrap();
            let keys = Keys {
                key_id: format!("ASIASTSISSUED{n:07}"),
                secret: format!("sTsSeCrEt/{n}/{}", hex::encode(rand_bytes())),
                token: Some(format!("IQoJb3JpZ2luX2VjEXAMPLE{n}{}", hex::encode(rand_bytes()))),
                expires: Some(Instant::now() + ttl),
            };
            s.issued.lock().unwrap().push(keys.clone());
            accepted.lock().unwrap().push(keys.clone());
            let expiration = crate::support::time::rfc3339(
                (SystemTime::now() + ttl)
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64,
            );
            let body = format!(
                r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/agent-ops/{session_name}</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{session_name}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{}</AccessKeyId>
      <SecretAccessKey>{}</SecretAccessKey>
      <SessionToken>{}</SessionToken>
      <Expiration>{expiration}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#,
                keys.key_id,
                keys.secret,
                keys.token.as_deref().unwrap_or_default()
            );
            Some(response(200, "text/xml", body))
        });
        let up = upstream_custom(false, Some(custom)).await;
        port.set(up.port).unwrap();
        FakeSts { up, st }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.up.port)
    }

    pub fn calls(&self) -> usize {
        self.st.assume_role_calls.load(Ordering::SeqCst)
    }

    pub fn issued(&self) -> Vec<Keys> {
        self.st.issued.lock().unwrap().clone()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }
}

fn rand_bytes() -> [u8; 12] {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut b);
    b
}

fn sts_error(status: u16, code: &str, message: &str) -> http::Response<TestBody> {
    let body = format!(
        r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error>
  <RequestId>1a2b3c4d-0000-0000-0000-000000000000</RequestId>
</ErrorResponse>"#,
        message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
    );
    response(status, "text/xml", body)
}

/// botocore, as an unmodified agent runs it: placeholder keys, the gateway as its HTTPS proxy,
/// the gateway's CA; `parallel` copies of the call at once on one client (threads). Prints one
/// line per call: `{"ok": …}` or `{"error": {status, code, message}}`.
const BOTO: &str = r#"
import json, sys
from concurrent.futures import ThreadPoolExecutor
import botocore.session
from botocore.config import Config
from botocore.exceptions import ClientError
proxy, ca, endpoint, service, op, params, key_id, secret, parallel = sys.argv[1:10]
parallel = int(parallel)
s = botocore.session.Session()
c = s.create_client(service, region_name="us-east-1", endpoint_url=endpoint,
    aws_access_key_id=key_id, aws_secret_access_key=secret, verify=ca,
    config=Config(proxies={"https": proxy}, retries={"max_attempts": 1}, s3={"addressing_style": "path"},
        max_pool_connections=max(parallel, 10)))
def call(_):
    try:
        r = getattr(c, op)(**json.loads(params))
        r.pop("ResponseMetadata", None)
        if "Body" in r:
            r["Body"] = r["Body"].read().decode()
        return json.dumps({"ok": r}, default=str)
    except ClientError as e:
        return json.dumps({"error": {"status": e.response["ResponseMetadata"]["HTTPStatusCode"],
            "code": e.response["Error"].get("Code"), "message": e.response["Error"].get("Message")}})
with ThreadPoolExecutor(parallel) as pool:
    for line in pool.map(call, range(parallel)):
        print(line)
"#;

/// One botocore call by agent `ops` (signed with `key_id` and `secret_placeholder`) through the
/// gateway to the fake service on `up`.
pub fn boto(gw: &Gateway, up: &Upstream, call: (&str, &str, &str), keys: (&str, &str)) -> serde_json::Value {
    boto_parallel(gw, up, call, keys, 1).remove(0)
}

/// [`boto`], `parallel` times at once.
pub fn boto_parallel(
    gw: &Gateway,
    up: &Upstream,
    (service, op, params): (&str, &str, &str),
    (key_id, secret_placeholder): (&str, &str),
    parallel: usize,
) -> Vec<serde_json::Value> {
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
            secret_placeholder,
            &parallel.to_string(),
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
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {out}")))
        .collect()
}
