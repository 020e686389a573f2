//! Invariant 2 against an upstream that echoes the injected key back in the ways a response
//! can carry it: compressed with a Content-Encoding the agent did not ask for, in a custom
//! reason phrase, in HTTP/2 trailers, base64-encoded at each alignment, JSON-`\u`-escaped,
//! percent-encoded. The agent (curl, which never decodes on its own here) must not get the
//! real key in the raw bytes it receives, nor in any decoding of them.
mod support;
use std::io::{Read as _, Write as _};
use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderValue, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use support::*;

const REAL: &str = "sk-live-REAL-4f9a8b7c6d5e";
/// [`ONE_SECRET`]'s: agent `a` sends it in `X-Key`, the upstream gets [`REAL`] there.
const PLACEHOLDER: &str = "airlock-k-placeholder";

async fn start() -> (Upstream, Gateway) {
    let up = upstream_custom(true, Some(echoes())).await;
    let gw = Gateway::start(&[&up], ONE_SECRET, &[("k", REAL)], &["a"]);
    (up, gw)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

const CODINGS: [&str; 4] = ["gzip", "deflate", "br", "zstd"];

fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
                .write_all(data)
                .unwrap();
            out
        }
        "zstd" => zstd::encode_all(data, 3).unwrap(),
        other => panic!("no coding {other}"),
    }
}

/// `s` read as base64 in `alphabet` the way a forgiving reader would: padding ignored,
/// the last incomplete group dropped, stray bits allowed.
fn forgiving_base64(alphabet: &base64::alphabet::Alphabet, s: &str) -> Vec<u8> {
    let config = base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
    let s = s.trim_end_matches('=');
    let whole = &s[..s.len() / 4 * 4];
    base64::engine::GeneralPurpose::new(alphabet, config)
        .decode(whole)
        .unwrap_or_else(|e| panic!("{s} is not base64 any more: {e}"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match (b[i], s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every decoding the agent could try on the bytes it got (those that fail are skipped).
fn decodings(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![raw.to_vec()];
    let mut gz = Vec::new();
    if flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut gz).is_ok() {
        out.push(gz);
    }
    let mut z = Vec::new();
    if flate2::read::ZlibDecoder::new(raw).read_to_end(&mut z).is_ok() {
        out.push(z);
    }
    let mut br = Vec::new();
    if brotli::Decompressor::new(raw, 4096).read_to_end(&mut br).is_ok() {
        out.push(br);
    }
    if let Ok(zs) = zstd::decode_all(raw) {
        out.push(zs);
    }
    out
}

/// The upstream's answers: the injected Authorization value echoed in the way the path says.
fn echoes() -> Custom {
    Arc::new(|seen: &Seen| {
        let auth = format!("Bearer {}", seen.header("x-key").unwrap_or(""));
        let path = seen.target.trim_start_matches('/').to_string();
        let full = |b: Vec<u8>| Full::new(Bytes::from(b)).boxed();
        let (kind, arg) = path.split_once('/').unwrap_or((&path, ""));
        let r = match kind {
            // Small: one body with a Content-Length.
            "small" => {
                let mut r = Response::new(full(compress(arg, format!("you sent: {auth}").as_bytes())));
                r.headers_mut()
                    .insert("content-encoding", HeaderValue::from_str(arg).unwrap());
                r
            }
            // Large and streamed in 1000-byte frames, the key at the start, middle and end.
            "large" => {
                let filler = "lorem ipsum dolor sit amet ".repeat(4000);
                let text = format!("{auth}|{filler}{auth}{filler}|{auth}");
                let coded = compress(arg, text.as_bytes());
                let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = coded
                    .chunks(1000)
                    .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
                    .collect();
                let mut r = Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
                r.headers_mut()
                    .insert("content-encoding", HeaderValue::from_str(arg).unwrap());
                r
            }
            "coded" => {
                let mut r = Response::new(full(format!("you sent: {auth}").into_bytes()));
                r.headers_mut()
                    .insert("content-encoding", HeaderValue::from_str(arg).unwrap());
                r
            }
            "corrupt" => {
                let mut coded = compress("gzip", format!("you sent: {auth} {}", "x".repeat(500)).as_bytes());
                let n = coded.len();
                coded[n - 20..n - 10].fill(0xFF);
                let mut r = Response::new(full(coded));
                r.headers_mut()
                    .insert("content-encoding", HeaderValue::from_static("gzip"));
                r
            }
            "reason" => {
                let mut r = Response::new(full(b"ok".to_vec()));
                r.extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::try_from(auth.clone().into_bytes()).unwrap());
                r
            }
            "trailers" => {
                let mut t = http::HeaderMap::new();
                t.insert("x-echo", HeaderValue::from_str(&auth).unwrap());
                let name = format!("x-{}", REAL.to_ascii_lowercase());
                t.insert(
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_static("1"),
                );
                let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = vec![
                    Ok(Frame::data(Bytes::from(format!("body {auth} end")))),
                    Ok(Frame::trailers(t)),
                ];
                Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed())
            }
            // Alignments: the key starts at byte 7, 8 and 9 of the encoded input.
            "base64" => {
                let b64 = |e: &base64::engine::GeneralPurpose, pre: &str| e.encode(format!("{pre}{auth}"));
                let (std, url) = (
                    &base64::engine::general_purpose::STANDARD,
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                );
                let fields = [(std, ""), (std, "x"), (std, "xy"), (url, ""), (url, "x"), (url, "xy")];
                let values: Vec<String> = fields.iter().map(|(e, pre)| format!("\"{}\"", b64(e, pre))).collect();
                let mut r = Response::new(full(format!("[{}]", values.join(",")).into_bytes()));
                r.headers_mut()
                    .insert("x-basic", HeaderValue::from_str(&b64(std, "me:")).unwrap());
                r
            }
            // Every other character as \uXXXX.
            "json" => {
                let json: String = auth
                    .chars()
                    .enumerate()
                    .map(|(i, c)| {
                        if i % 2 == 0 {
                            format!("\\u{:04X}", c as u32)
                        } else {
                            c.to_string()
                        }
                    })
                    .collect();
                Response::new(full(format!("{{\"error\":\"bad key: {json}\"}}").into_bytes()))
            }
            "percent" => {
                let pct: String = auth.bytes().map(|b| format!("%{b:02x}")).collect();
                let mut r = Response::new(full(format!("see /cb?k={pct}").into_bytes()));
                r.headers_mut()
                    .insert("location", HeaderValue::from_str(&format!("/cb?k={pct}")).unwrap());
                r
            }
            _ => return None,
        };
        Some(r)
    })
}

/// curl through the gateway, asking for identity and decoding nothing itself: (the
/// upstream's status line, header section and trailers, raw body).
fn fetch(gw: &Gateway, port: u16, path: &str, http2: bool) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let url = format!("https://localhost:{port}{path}");
    let o = curl(&[
        "-sS",
        if http2 { "--http2" } else { "--http1.1" },
        "--proxy",
        &gw.url("a"),
        "--cacert",
        &gw.ca_path().to_string_lossy(),
        "-H",
        &format!("X-Key: {PLACEHOLDER}"),
        "-H",
        "Accept-Encoding: identity",
        "-D",
        &head.to_string_lossy(),
        "-o",
        &body.to_string_lossy(),
        &url,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let head = String::from_utf8_lossy(&std::fs::read(&head).unwrap()).into_owned();
    // The first section answers the CONNECT (the gateway's own 200).
    let (_, head) = head.split_once("\r\n\r\n").unwrap();
    (head.to_string(), std::fs::read(&body).unwrap())
}

fn assert_clean(head: &str, body: &[u8], what: &str) {
    assert!(!head.contains(REAL), "{what}: the real key in the head:\n{head}");
    for (i, d) in decodings(body).iter().enumerate() {
        assert!(
            !contains(d, REAL.as_bytes()),
            "{what}: the real key in decoding {i} of the body"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_echoes_reach_the_agent_decoded_and_scrubbed() {
    let (up, gw) = start().await;
    for coding in CODINGS {
        let (head, body) = fetch(&gw, up.port, &format!("/small/{coding}"), false);
        assert_eq!(up.last().header("x-key"), Some(REAL));
        assert!(head.starts_with("HTTP/1.1 200"), "{coding}: {head}");
        assert_clean(&head, &body, coding);
        assert!(
            !head.to_ascii_lowercase().contains("content-encoding"),
            "{coding}: {head}"
        );
        assert_eq!(body, format!("you sent: Bearer {PLACEHOLDER}").as_bytes(), "{coding}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {}", body.len())),
            "{head}"
        );

        for http2 in [false, true] {
            let (head, body) = fetch(&gw, up.port, &format!("/large/{coding}"), http2);
            assert_clean(&head, &body, coding);
            assert!(
                !head.to_ascii_lowercase().contains("content-encoding"),
                "{coding}: {head}"
            );
            let text = String::from_utf8(body).unwrap();
            assert_eq!(text.matches(&format!("Bearer {PLACEHOLDER}")).count(), 3, "{coding}");
            assert!(text.len() > 200_000);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codings_airlock_cannot_decode_get_502_not_the_bytes() {
    let (up, gw) = start().await;
    for (path, why) in [
        ("/coded/x-custom", "x-custom\\\", which airlock cannot decode"),
        ("/coded/gzip,br", "stacked"),
        ("/corrupt", "could not be decoded"),
    ] {
        let (head, body) = fetch(&gw, up.port, path, false);
        assert!(head.starts_with("HTTP/1.1 502"), "{path}: {head}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(why), "{path}: {body}");
        assert!(!body.contains("you sent"), "{path}: {body}");
        assert_clean(&head, body.as_bytes(), path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reason_phrase_is_scrubbed() {
    let (up, gw) = start().await;
    let (head, body) = fetch(&gw, up.port, "/reason", false);
    assert_clean(&head, &body, "reason phrase");
    assert!(
        head.starts_with(&format!("HTTP/1.1 200 Bearer {PLACEHOLDER}\r\n")),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_trailers_are_scrubbed() {
    let (up, gw) = start().await;
    let (head, body) = fetch(&gw, up.port, "/trailers", true);
    assert_eq!(up.last().version, "HTTP/2.0", "the upstream must answer over HTTP/2");
    assert_clean(&head, &body, "trailers");
    assert_eq!(body, format!("body Bearer {PLACEHOLDER} end").as_bytes());
    // curl lists the trailers after the header section; the one named after the key is gone.
    assert!(head.contains(&format!("x-echo: Bearer {PLACEHOLDER}")), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains(&REAL.to_ascii_lowercase()),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_echoes_at_each_alignment_are_scrubbed() {
    let (up, gw) = start().await;
    for http2 in [false, true] {
        let (head, body) = fetch(&gw, up.port, "/base64", http2);
        assert_clean(&head, &body, "base64");
        let values: Vec<String> = serde_json::from_slice(&body).unwrap();
        let basic = head.lines().find_map(|l| l.strip_prefix("x-basic: ")).unwrap();
        let (std, url) = (&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE);
        let alphabets = [std, std, std, url, url, url, std];
        for (s, alphabet) in values.iter().map(String::as_str).chain([basic]).zip(alphabets) {
            // Decoded, no run of the key's bytes survives.
            let decoded = forgiving_base64(alphabet, s);
            for w in REAL.as_bytes().windows(4) {
                assert!(
                    !contains(&decoded, w),
                    "{s} decodes to {:?}",
                    String::from_utf8_lossy(&decoded)
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_escaped_echoes_are_scrubbed() {
    let (up, gw) = start().await;
    for http2 in [false, true] {
        let (head, body) = fetch(&gw, up.port, "/json", http2);
        assert_clean(&head, &body, "json");
        // JSON-decoded: the placeholder, not the key.
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"], format!("bad key: Bearer {PLACEHOLDER}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_echoes_are_scrubbed() {
    let (up, gw) = start().await;
    for http2 in [false, true] {
        let (head, body) = fetch(&gw, up.port, "/percent", http2);
        assert_clean(&head, &body, "percent");
        let want = format!("/cb?k=Bearer {PLACEHOLDER}");
        assert_eq!(percent_decode(&String::from_utf8_lossy(&body)), format!("see {want}"));
        let location = head.lines().find_map(|l| l.strip_prefix("location: ")).unwrap();
        assert_eq!(percent_decode(location), want, "{location}");
    }
}
