//! Response scrubbing throughput: a 1 MiB body fed in 16 KiB chunks through an agent's
//! scrubber holding three realistic secrets, for bodies shaped like real responses, plus
//! one header value. Uses only the API the scrubber has had from the start, so the same
//! file measures the literal-only scrubber and the one that also finds encoded echoes.
//!
//! The `decode` group adds what a compressed response costs on top: decoding its gzip or
//! zstd coding (in the 64 KiB steps the gateway uses) before the scrubber sees it.
//!
//! Run: `cargo bench -p airlock-vault --bench scrub`.

use std::io::Write as _;

use airlock_vault::{Coding, ContentDecoder, Scrubber, SecretBytes};
use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};

const SECRETS: [(&str, &str); 3] = [
    ("sk-live-4f9a8b7c6d5e3f2a1b0c9d8e7f6a5b4c", "airlock-openai"),
    ("ghp_R2d2C3poBb8ObiWan0Kenobi4LukeSky", "airlock-github"),
    ("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "airlock-aws"),
];
const SIZE: usize = 1 << 20;
const CHUNK: usize = 16 * 1024;

fn scrubber() -> Scrubber {
    Scrubber::new(
        SECRETS
            .iter()
            .map(|(s, p)| (SecretBytes::new(s.as_bytes().to_vec()), p.as_bytes().to_vec()))
            .collect(),
    )
}

/// `unit` repeated to 1 MiB.
fn body(unit: &str) -> Vec<u8> {
    unit.as_bytes().iter().copied().cycle().take(SIZE).collect()
}

fn bodies() -> Vec<(&'static str, Vec<u8>)> {
    // Pseudo-random base64, like an attachment or an image in JSON.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let b64: Vec<u8> = (0..SIZE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[(x % 64) as usize]
        })
        .collect();
    vec![
        (
            "json",
            body(
                r#"{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message","role":"assistant","model":"claude","stop_reason":"end_turn","usage":{"input_tokens":2095,"output_tokens":503}},"#,
            ),
        ),
        (
            "json-escaped",
            body(
                r#"data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Hello!\nHere is \"code\":\n\tfn main() {}\n"}}\n\n"#,
            ),
        ),
        (
            "urlencoded",
            body("q=hello%20world&redirect=https%3A%2F%2Fexample.com%2Fpath%3Fa%3D1&lang=en&page=2&"),
        ),
        (
            "json-slashes",
            body(
                r#"{"url":"https:\/\/api.example.com\/v1\/items\/42","next":"https:\/\/api.example.com\/v1\/items?page=3"},"#,
            ),
        ),
        ("base64", b64),
        (
            "echoes",
            body(&format!(
                "{{\"error\":\"invalid key {}\",\"pad\":\"{}\"}}",
                SECRETS[0].0,
                "x".repeat(4000)
            )),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrub");
    g.throughput(Throughput::Bytes(SIZE as u64));
    for (name, b) in bodies() {
        g.bench_with_input(BenchmarkId::new("stream", name), &b, |bench, b| {
            let mut s = scrubber();
            bench.iter(|| {
                let mut n = 0;
                for chunk in b.chunks(CHUNK) {
                    n += s.feed(black_box(chunk)).len();
                }
                n + s.finish().len()
            })
        });
    }
    g.finish();
    let s = scrubber();
    c.bench_function("scrub/header", |bench| {
        bench.iter(|| {
            s.scrub_once(black_box(
                b"Bearer sk-live-0000000000000000000000000000000000; charset=utf-8",
            ))
        })
    });
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Decodes `coded` as the gateway does (a 16 KiB frame at a time, 64 KiB of output per step),
/// scrubbing what comes out.
fn decode_and_scrub(coding: Coding, coded: &[u8], s: &mut Scrubber) -> usize {
    let mut d = ContentDecoder::new(coding).unwrap();
    let mut n = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    for chunk in coded.chunks(CHUNK).chain([&[][..]]) {
        let mut rest = chunk;
        loop {
            out.clear();
            let used = d.decode(rest, &mut out, 64 * 1024).unwrap();
            rest = &rest[used..];
            n += s.feed(&out).len();
            if out.is_empty() && (rest.is_empty() || used == 0) {
                break;
            }
        }
    }
    d.finish().unwrap();
    n + s.finish().len()
}

fn bench_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(SIZE as u64));
    let json = bodies().swap_remove(0).1;
    for (name, coding, coded) in [
        ("gzip", Coding::Gzip, gzip(&json)),
        ("zstd", Coding::Zstd, zstd::encode_all(&json[..], 3).unwrap()),
    ] {
        g.bench_with_input(BenchmarkId::new("json", name), &coded, |bench, coded| {
            let mut s = scrubber();
            bench.iter(|| decode_and_scrub(coding, black_box(coded), &mut s))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, bench_decode);
criterion_main!(benches);
