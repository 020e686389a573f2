//! CPU per chunk of re-signing an S3 signed-chunk upload (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`):
//! one framed chunk (`<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n`) pushed through the
//! [`ChunkSigner`] the request's re-signing handed back — parsed, its data hashed (SHA-256), its
//! signature made again with the real keys' signing key (HMAC) and the chunk copied out — at the
//! sizes SDKs send (8 KiB for small parts, 64 KiB botocore/AWS CLI, 1 MiB the largest commonly seen).
//! The signer is made outside the timed part (a fresh one per iteration, as each upload has its own).
//!
//! Run: `cargo bench -p airlock-credentials --bench chunks`

use std::time::SystemTime;

use airlock_credentials::aws::{AwsKeys, ChunkSigner, resign};
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};

mod common;
use common::{PLACEHOLDER, keys};

/// The signer of an upload of `decoded` bytes, as the gateway gets it from re-signing the headers.
fn signer(k: &AwsKeys, decoded: usize) -> ChunkSigner {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=airlock-placeholder-aws/20251207/us-east-1/s3/aws4_request, \
             SignedHeaders=content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length, \
             Signature=00",
        ),
    );
    h.insert("content-encoding", HeaderValue::from_static("aws-chunked"));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    );
    h.insert("x-amz-date", HeaderValue::from_static("20251207T101500Z"));
    h.insert(
        "x-amz-decoded-content-length",
        HeaderValue::from_str(&decoded.to_string()).expect("a number"),
    );
    let uri = "https://backups.s3.us-east-1.amazonaws.com/2025/db.dump";
    resign(k, PLACEHOLDER, "PUT", uri, &mut h, None, SystemTime::now())
        .expect("re-signed")
        .expect("a signed-chunk upload has a chunk signer")
}

/// One framed chunk of `size` bytes, signed (worthlessly) by the agent.
fn chunk(size: usize) -> Vec<u8> {
    let mut c = format!("{size:x};chunk-signature={}\r\n", "0".repeat(64)).into_bytes();
    c.extend((0..size).map(|i| (i % 251) as u8));
    c.extend_from_slice(b"\r\n");
    c
}

fn bench(c: &mut Criterion) {
    let k = keys();
    let mut g = c.benchmark_group("sigv4 chunk re-sign");
    for size in [8 << 10, 64 << 10, 1 << 20] {
        let framed = chunk(size);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(
            BenchmarkId::from_parameter(format!("{} KiB", size >> 10)),
            &framed,
            |b, framed| {
                b.iter_batched(
                    // Two chunks' worth declared, so the first is not the last and no final chunk is due.
                    || signer(&k, 2 * size),
                    |mut s| s.push(black_box(framed)).expect("a well-framed chunk"),
                    BatchSize::SmallInput,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
