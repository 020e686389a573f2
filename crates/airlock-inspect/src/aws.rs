//! AWS API calls: which service and action a request asks of AWS, read the ways AWS reads them —
//! the Query protocol's `Action` (URL or form body), the JSON protocol's `X-Amz-Target`
//! (`DynamoDB_20120810.DeleteTable` → `DeleteTable`) and, for S3, the method, bucket, key and
//! sub-resource, named like IAM's S3 actions (`GetObject`, `PutObject`, `DeleteObject`,
//! `ListBucket`, …).
//!
//! The service comes from the host (`ec2.us-east-1.amazonaws.com`, `bucket.s3.amazonaws.com`) and
//! from the signature's credential scope; when they differ, both are readings (invariant 12), as
//! are an `Action` in the URL and another in the body. A call whose action cannot be read (a REST
//! API other than S3, an unknown S3 sub-resource) has none: it triggers restrictive rules only.
//!
//! The policy sees each call as a JSON-RPC call (`method` `aws:<service>`, `tool` the action), so
//! the core matches AWS calls with the matcher it already has.

use airlock_core::facts::JsonRpcCall;
use percent_encoding::percent_decode_str;

use crate::sources::{MediaType, form_values};

/// The JSON-RPC method prefix AWS calls are given; body JSON-RPC calls may not use it.
pub const METHOD_PREFIX: &str = "aws:";

/// One reading of an AWS call, with what an approval card shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCall {
    pub service: String,
    /// `None`: it could not be read.
    pub action: Option<String>,
    pub region: Option<String>,
    /// The S3 bucket and key, or the resource a parameter names (a table, an instance).
    pub resource: Option<String>,
}

impl AwsCall {
    pub fn as_jsonrpc(&self) -> JsonRpcCall {
        JsonRpcCall {
            method: format!("{METHOD_PREFIX}{}", self.service),
            tool: self.action.clone(),
            tool_unread: self.action.is_none(),
        }
    }
}

/// What the reader looks at.
pub struct AwsRequest<'a> {
    /// As sent; S3 does not honour method overrides.
    pub method: &'a str,
    /// Canonical (lower-case).
    pub host: &'a str,
    /// Path and query as sent.
    pub target: &'a str,
    /// Names lower-case.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The whole body, when it was read.
    pub body: Option<&'a [u8]>,
}

impl AwsRequest<'_> {
    fn header(&self, name: &str) -> impl Iterator<Item = &str> {
        self.headers
            .iter()
            .filter(move |(n, _)| *n == name)
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// `(service, region)` of `host` when it is an AWS endpoint: `svc.region.amazonaws.com`,
/// `svc.amazonaws.com`, `bucket.s3.region.amazonaws.com`, `s3-region.amazonaws.com`, ….
fn host_service(host: &str) -> Option<(String, Option<String>)> {
    let stem = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = stem.split('.').collect();
    // Virtual-hosted S3: the bucket comes first (and may contain dots).
    if let Some(i) = labels.iter().position(|l| *l == "s3" || l.starts_with("s3-")) {
        let region = labels.get(i + 1).map(|r| r.to_string()).or_else(|| {
            labels[i]
                .strip_prefix("s3-")
                .filter(|r| *r != "external-1")
                .map(str::to_string)
        });
        let region = region.filter(|r| r != "dualstack" && r != "amazonaws");
        return Some(("s3".into(), region));
    }
    let service = labels.first()?.to_string();
    Some((service, labels.get(1).map(|r| r.to_string())))
}

/// The virtual-hosted S3 bucket in `host`, if any.
fn host_bucket(host: &str) -> Option<String> {
    let stem = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let labels: Vec<&str> = stem.split('.').collect();
    let i = labels.iter().position(|l| *l == "s3" || l.starts_with("s3-"))?;
    (i > 0).then(|| labels[..i].join("."))
}

/// `(service, region)` of each SigV4 credential scope the request carries.
fn scopes(r: &AwsRequest<'_>, query: &[(String, String)]) -> Vec<(String, String)> {
    let mut creds: Vec<&str> = r
        .header("authorization")
        .filter_map(|v| v.split_once("Credential=").map(|(_, c)| c))
        .map(|c| c.split([',', ' ']).next().unwrap_or(""))
        .collect();
    creds.extend(
        query
            .iter()
            .filter(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.as_str()),
    );
    creds
        .into_iter()
        .filter_map(|c| match c.split('/').collect::<Vec<_>>().as_slice() {
            [_, _, region, service, "aws4_request"] => Some((service.to_string(), region.to_string())),
            _ => None,
        })
        .collect()
}

/// Whether the request is meant for AWS: an AWS endpoint, a SigV4 signature or an `X-Amz-Target`.
pub fn is_aws(r: &AwsRequest<'_>) -> bool {
    host_service(r.host).is_some()
        || r.header("authorization").any(|v| v.trim_start().starts_with("AWS4-"))
        || r.header("x-amz-target").next().is_some()
        || r.target.contains("X-Amz-Credential=")
}

/// Every reading of the AWS call(s) in the request; empty when it is not meant for AWS.
pub fn calls(r: &AwsRequest<'_>) -> Vec<AwsCall> {
    if !is_aws(r) {
        return Vec::new();
    }
    let (raw_path, query) = crate::target::split_target(r.target);
    let mut services: Vec<(String, Option<String>)> = host_service(r.host).into_iter().collect();
    for (s, region) in scopes(r, &query) {
        if !services.iter().any(|(x, _)| *x == s) {
            services.push((s, Some(region)));
        }
    }
    let mut actions: Vec<Option<String>> = Vec::new();
    let mut add = |a: Option<String>| {
        if !actions.contains(&a) {
            actions.push(a);
        }
    };
    // The Query protocol (EC2, IAM, STS, SNS, SQS's older API …): `Action` in the URL or the form.
    for (k, v) in &query {
        if k.eq_ignore_ascii_case("action") {
            add(Some(v.clone()));
        }
    }
    let form = MediaType::of(r.header("content-type").next()).is_form();
    if let Some(body) = r.body.filter(|_| form) {
        for v in form_values(body, &["action"]) {
            add(v);
        }
    }
    // The JSON protocol (DynamoDB, KMS, Secrets Manager, …): `X-Amz-Target: Prefix.Action`.
    for t in r.header("x-amz-target") {
        add(t.rsplit('.').next().filter(|a| !a.is_empty()).map(str::to_string));
    }
    let resource = resource(r, &query);
    let mut out = Vec::new();
    for (service, region) in services {
        let mut these = actions.clone();
        if service == "s3" {
            let (bucket, key) = bucket_key(r.host, raw_path);
            for a in s3_actions(r, bucket.is_some(), key.is_some(), &query) {
                if !these.contains(&a) {
                    these.push(a);
                }
            }
            let res = bucket.map(|b| key.map_or(b.clone(), |k| format!("{b}/{k}")));
            push_calls(&mut out, &service, &region, &these, res.or_else(|| resource.clone()));
        } else {
            if these.is_empty() {
                these.push(None);
            }
            push_calls(&mut out, &service, &region, &these, resource.clone());
        }
    }
    out
}

fn push_calls(
    out: &mut Vec<AwsCall>,
    service: &str,
    region: &Option<String>,
    actions: &[Option<String>],
    resource: Option<String>,
) {
    for a in actions {
        out.push(AwsCall {
            service: service.to_string(),
            action: a.clone(),
            region: region.clone(),
            resource: resource.clone(),
        });
    }
}

/// The S3 bucket and key: from a virtual-hosted name, else the path's first segment.
fn bucket_key(host: &str, raw_path: &str) -> (Option<String>, Option<String>) {
    let path = percent_decode_str(raw_path).decode_utf8_lossy();
    let path = path.strip_prefix('/').unwrap_or(&path);
    let (bucket, key) = match host_bucket(host) {
        Some(b) => (Some(b), path.to_string()),
        None => {
            let (b, k) = path.split_once('/').unwrap_or((path, ""));
            ((!b.is_empty()).then(|| b.to_string()), k.to_string())
        }
    };
    (bucket, (!key.is_empty()).then_some(key))
}

/// Query parameters S3 reads that do not select a sub-resource.
const S3_PLAIN: &[&str] = &[
    "list-type",
    "prefix",
    "delimiter",
    "max-keys",
    "marker",
    "continuation-token",
    "start-after",
    "encoding-type",
    "fetch-owner",
    "versionid",
    "partnumber",
    "max-parts",
    "part-number-marker",
    "key-marker",
    "upload-id-marker",
    "version-id-marker",
    "max-uploads",
    "x-id",
];

/// IAM's names for what an S3 request does; `None` for a sub-resource not known here.
fn s3_actions(r: &AwsRequest<'_>, bucket: bool, key: bool, query: &[(String, String)]) -> Vec<Option<String>> {
    let method = r.method.to_ascii_uppercase();
    let subs: Vec<String> = query
        .iter()
        .map(|(k, _)| k.to_ascii_lowercase())
        .filter(|k| !S3_PLAIN.contains(&k.as_str()) && !k.starts_with("x-amz-") && !k.starts_with("response-"))
        .collect();
    let has = |q: &str| query.iter().any(|(k, _)| k.eq_ignore_ascii_case(q));
    let copy = r.header("x-amz-copy-source").next().is_some();
    let one = |a: &str| vec![Some(a.to_string())];
    let mut out = match (method.as_str(), bucket, key) {
        (_, false, _) if method == "GET" || method == "HEAD" => one("ListAllMyBuckets"),
        ("GET" | "HEAD", true, true) if has("uploadId") => one("ListMultipartUploadParts"),
        ("GET" | "HEAD", true, true) => match subs.first().map(String::as_str) {
            None | Some("uploadid") => one(if has("versionId") {
                "GetObjectVersion"
            } else {
                "GetObject"
            }),
            Some("acl") => one("GetObjectAcl"),
            Some("tagging") => one("GetObjectTagging"),
            Some("attributes") => one("GetObjectAttributes"),
            Some("retention") => one("GetObjectRetention"),
            Some("legal-hold") => one("GetObjectLegalHold"),
            Some(_) => vec![None],
        },
        ("GET" | "HEAD", true, false) => match subs.first().map(String::as_str) {
            None => one("ListBucket"),
            Some("versions") => one("ListBucketVersions"),
            Some("uploads") => one("ListBucketMultipartUploads"),
            Some("location") => one("GetBucketLocation"),
            Some(s) => bucket_sub("Get", s),
        },
        ("PUT", true, true) => match subs.first().map(String::as_str) {
            None | Some("uploadid") => one("PutObject"),
            Some("acl") => one("PutObjectAcl"),
            Some("tagging") => one("PutObjectTagging"),
            Some("retention") => one("PutObjectRetention"),
            Some("legal-hold") => one("PutObjectLegalHold"),
            Some(_) => vec![None],
        },
        ("PUT", true, false) => match subs.first().map(String::as_str) {
            None => one("CreateBucket"),
            Some(s) => bucket_sub("Put", s),
        },
        ("DELETE", true, true) if has("uploadId") => one("AbortMultipartUpload"),
        ("DELETE", true, true) => match subs.first().map(String::as_str) {
            None if has("versionId") => vec![Some("DeleteObjectVersion".into()), Some("DeleteObject".into())],
            None => one("DeleteObject"),
            Some("tagging") => one("DeleteObjectTagging"),
            Some(_) => vec![None],
        },
        ("DELETE", true, false) => match subs.first().map(String::as_str) {
            None => one("DeleteBucket"),
            Some("policy") => one("DeleteBucketPolicy"),
            Some("website") => one("DeleteBucketWebsite"),
            // IAM governs removing the rest with the permission that writes them.
            Some(s) => bucket_sub("Put", s),
        },
        ("POST", true, false) if has("delete") => one("DeleteObject"),
        ("POST", true, true) if has("uploads") || has("uploadId") => one("PutObject"),
        ("POST", true, true) if has("restore") => one("RestoreObject"),
        ("POST", true, true) if has("select") => one("GetObject"),
        _ => vec![None],
    };
    // Copying reads the source object as well as writing this one.
    if copy && method == "PUT" && key {
        out.push(Some("GetObject".into()));
    }
    // A second sub-resource may be what the server acts on.
    if subs.len() > 1 && !(subs.len() == 2 && subs.contains(&"uploadid".to_string())) {
        out.push(None);
    }
    out
}

/// A bucket sub-resource read or written (`verb` "Get" or "Put"), as IAM names it.
fn bucket_sub(verb: &str, sub: &str) -> Vec<Option<String>> {
    let name = match sub {
        "acl" => "BucketAcl",
        "policy" => "BucketPolicy",
        "versioning" => "BucketVersioning",
        "tagging" => "BucketTagging",
        "cors" => "BucketCORS",
        "website" => "BucketWebsite",
        "logging" => "BucketLogging",
        "notification" => "BucketNotification",
        "lifecycle" => "LifecycleConfiguration",
        "encryption" => "EncryptionConfiguration",
        "replication" => "ReplicationConfiguration",
        "publicaccessblock" => "BucketPublicAccessBlock",
        "ownershipcontrols" => "BucketOwnershipControls",
        "object-lock" => "BucketObjectLockConfiguration",
        _ => return vec![None],
    };
    vec![Some(format!("{verb}{name}"))]
}

/// What a non-S3 call names for the card: a table (JSON protocol) or instance ids (Query).
fn resource(r: &AwsRequest<'_>, query: &[(String, String)]) -> Option<String> {
    let body = r.body.unwrap_or(&[]);
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(body) {
        for k in [
            "TableName",
            "FunctionName",
            "QueueUrl",
            "SecretId",
            "KeyId",
            "StreamName",
        ] {
            if let Some(serde_json::Value::String(v)) = m.get(k) {
                return Some(v.clone());
            }
        }
    }
    let form = MediaType::of(r.header("content-type").next()).is_form();
    let mut names: Vec<String> = query
        .iter()
        .filter(|(k, _)| k.starts_with("InstanceId") || k == "UserName" || k == "RoleName" || k == "QueueUrl")
        .map(|(_, v)| v.clone())
        .collect();
    if form {
        for k in [
            "InstanceId.1",
            "InstanceId.2",
            "InstanceId.3",
            "UserName",
            "RoleName",
            "QueueUrl",
            "TopicArn",
        ] {
            names.extend(form_values(body, &[k]).into_iter().flatten());
        }
    }
    names.dedup();
    (!names.is_empty()).then(|| names.join(", "))
}

#[cfg(test)]
#[path = "aws_tests.rs"]
mod tests;
