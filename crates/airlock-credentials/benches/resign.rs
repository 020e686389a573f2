//! CPU per request of AWS Signature V4 re-signing (issue 15's goal: ≤ 20 µs): a DynamoDB call as
//! botocore sends it (six signed headers, a 40-byte JSON body hashed here) and an S3 GET with a
//! declared payload hash, each checked, stripped and signed again with real keys and a session token;
//! and an S3 presigned GET (AWS's published example URL), its query signature checked against the
//! placeholder keys, then signed again in the query with the real ones.
//!
//! Run: `cargo bench -p airlock-credentials --bench resign`

use std::time::SystemTime;

use airlock_credentials::aws::{AwsKeys, resign, resign_request};
use airlock_vault::SecretBytes;
use criterion::{Criterion, black_box, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};

mod common;
use common::{PLACEHOLDER, keys};

fn dynamodb_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=airlock-placeholder-aws/20251207/us-east-1/dynamodb/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amz-user-agent, \
             Signature=3c8f8a5c0e2a8c4b0e6d4c2f1a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b",
        ),
    );
    h.insert("content-type", HeaderValue::from_static("application/x-amz-json-1.0"));
    h.insert("x-amz-date", HeaderValue::from_static("20251207T101500Z"));
    h.insert("x-amz-target", HeaderValue::from_static("DynamoDB_20120810.ListTables"));
    h.insert(
        "x-amz-user-agent",
        HeaderValue::from_static("Boto3/1.40.0 md/Botocore#1.43.11"),
    );
    h.insert(
        "user-agent",
        HeaderValue::from_static("Boto3/1.40.0 Python/3.11.7 Linux"),
    );
    h.insert("content-length", HeaderValue::from_static("40"));
    h
}

fn bench(c: &mut Criterion) {
    let k = keys();
    let body = br#"{"ExclusiveStartTableName":"orders-2025"}"#;
    let base = dynamodb_headers();
    c.bench_function("sigv4 re-sign: dynamodb json call (body hashed)", |b| {
        b.iter(|| {
            let mut h = base.clone();
            resign(
                &k,
                PLACEHOLDER,
                "POST",
                "https://dynamodb.us-east-1.amazonaws.com/",
                &mut h,
                Some(black_box(body)),
                SystemTime::now(),
            )
            .expect("re-signed");
            h
        })
    });
    let mut s3 = HeaderMap::new();
    s3.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=airlock-placeholder-aws/20251207/us-east-1/s3/aws4_request, \
             SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=00",
        ),
    );
    s3.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    s3.insert("x-amz-date", HeaderValue::from_static("20251207T101500Z"));
    c.bench_function("sigv4 re-sign: s3 get (declared payload hash)", |b| {
        b.iter(|| {
            let mut h = s3.clone();
            resign(
                &k,
                PLACEHOLDER,
                "GET",
                "https://backups.s3.us-east-1.amazonaws.com/2025/db.dump",
                &mut h,
                None,
                SystemTime::now(),
            )
            .expect("re-signed");
            h
        })
    });
}

/// AWS's presigned-URL example ("Authenticating Requests: Using Query Parameters"), made by a
/// sandbox whose placeholder keys are the documentation's.
const PRESIGNED: &str = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z\
&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

fn presigned(c: &mut Criterion) {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    let k = AwsKeys::new(
        &b("AKIAREALKEYID0000001"),
        &b("rEaLsEcReTkEy/0123456789+abcdefghijKLMNOP"),
        Some(&b("FwoGZXIvYXdzEREALSESSIONTOKEN0123456789abcdef")),
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    .expect("keys");
    // An hour into the URL's day of validity.
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_357_200);
    c.bench_function(
        "sigv4 re-sign: s3 presigned get (checked, signed again in the query)",
        |bench| {
            bench.iter(|| {
                let mut uri = black_box(PRESIGNED).to_string();
                let mut h = HeaderMap::new();
                let r = resign_request(&k, "AKIAIOSFODNN7EXAMPLE", "GET", &mut uri, &mut h, Some(b""), at);
                (r.expect("re-signed").scrubber, uri)
            })
        },
    );
}

/// Of the presigned row: building the scrubber that puts the agent's signature back in place
/// of the new one in the response (every encoded form of a 64-hex-digit value, one automaton).
fn presigned_scrubber(c: &mut Criterion) {
    let new = "5a1cb3e1e3c3b7bdf0c8b3b9ab6b0a8bfb0a7e4d5f0c2a7c8b3e6d1f2a9c0b7e";
    let agent = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
    c.bench_function(
        "sigv4 re-sign: s3 presigned get, of which the signature's scrubber",
        |bench| {
            bench.iter(|| {
                airlock_vault::Scrubber::literal(vec![(
                    SecretBytes::new(black_box(new).as_bytes().to_vec()),
                    agent.as_bytes().to_vec(),
                )])
            })
        },
    );
}

criterion_group!(benches, bench, presigned, presigned_scrubber);
criterion_main!(benches);
