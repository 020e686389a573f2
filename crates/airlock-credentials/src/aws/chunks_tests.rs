//! Signed chunks against the example AWS publishes in "Signature Calculations for the
//! Authorization Header: Transferring Payload in Multiple Chunks" (S3 API reference,
//! sigv4-streaming): PUT examplebucket/chunkObject.txt, 66,560 bytes of `a` in chunks of 65,536,
//! 1,024 and 0 bytes, signed with AKIAIOSFODNN7EXAMPLE on 20130524T000000Z. The agent's request,
//! signed with the placeholder, comes out with AWS's seed and chunk signatures.

use std::time::{Duration, SystemTime};

use airlock_vault::SecretBytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;
use crate::aws::{AwsKeys, ResignError, resign};

const PLACEHOLDER: &str = "airlock-placeholder-aws";
const SEED: &str = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
const PUBLISHED: [&str; 3] = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
];
/// What an SDK holding the placeholder would have written (worthless: never checked).
const AGENT_SIGNATURE: &str = "1111111111111111111111111111111111111111111111111111111111111111";

fn doc_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600)
}

fn doc_keys() -> AwsKeys {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    AwsKeys::new(
        &b("AKIAIOSFODNN7EXAMPLE"),
        &b("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        None,
        PLACEHOLDER,
        "airlock-aws-secret-placeholder",
    )
    .unwrap()
}

fn body(sizes: &[usize], signatures: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for (size, sig) in sizes.iter().zip(signatures) {
        out.extend_from_slice(format!("{size:x};chunk-signature={sig}\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b'a', *size));
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn doc_body(signatures: &[&str]) -> Vec<u8> {
    body(&[65_536, 1_024, 0], signatures)
}

/// The documented request as the agent sends it: signed with the placeholder.
fn doc_headers(decoded: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &str, v: &str| {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    };
    put(
        "authorization",
        &format!(
            "AWS4-HMAC-SHA256 Credential={PLACEHOLDER}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
             x-amz-decoded-content-length;x-amz-storage-class,Signature={AGENT_SIGNATURE}"
        ),
    );
    put("x-amz-date", "20130524T000000Z");
    put("x-amz-storage-class", "REDUCED_REDUNDANCY");
    put("x-amz-content-sha256", STREAMING_PAYLOAD);
    put("content-encoding", "aws-chunked");
    if !decoded.is_empty() {
        put("x-amz-decoded-content-length", decoded);
    }
    put("content-length", "66824");
    h
}

fn doc_signer(decoded: &str) -> Result<(HeaderMap, Option<ChunkSigner>), ResignError> {
    let mut h = doc_headers(decoded);
    let uri = "https://s3.amazonaws.com/examplebucket/chunkObject.txt";
    let signer = resign(&doc_keys(), PLACEHOLDER, "PUT", uri, &mut h, None, doc_time())?;
    Ok((h, signer))
}

#[test]
fn the_published_example_gets_the_published_seed_and_chunk_signatures() {
    let (h, signer) = doc_signer("66560").unwrap();
    assert_eq!(
        h["authorization"].to_str().unwrap(),
        format!(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
             x-amz-decoded-content-length;x-amz-storage-class, Signature={SEED}"
        )
    );
    assert_eq!(h["x-amz-content-sha256"], STREAMING_PAYLOAD);
    let agent = doc_body(&[AGENT_SIGNATURE; 3]);
    assert_eq!(agent.len(), 66_824, "the documented Content-Length");
    let out = signer.unwrap().sign_whole(&agent).unwrap();
    assert_eq!(
        out,
        doc_body(&PUBLISHED),
        "the framing is kept, every signature replaced"
    );
}

#[test]
fn the_body_may_arrive_in_pieces_of_any_size() {
    let agent = doc_body(&[AGENT_SIGNATURE; 3]);
    for piece in [1, 2, 7, 99, 4096, 65_600, agent.len()] {
        let mut signer = doc_signer("66560").unwrap().1.unwrap();
        let mut out = Vec::new();
        for part in agent.chunks(piece) {
            out.extend(signer.push(part).unwrap());
        }
        signer.finish().unwrap();
        assert_eq!(out, doc_body(&PUBLISHED), "in pieces of {piece}");
    }
}

#[test]
fn other_payload_hashes_get_no_chunk_signer() {
    let mut h = doc_headers("66560");
    h.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    let uri = "https://s3.amazonaws.com/examplebucket/chunkObject.txt";
    let signer = resign(&doc_keys(), PLACEHOLDER, "PUT", uri, &mut h, None, doc_time()).unwrap();
    assert!(signer.is_none());
}

#[test]
fn the_decoded_length_is_required_and_must_be_a_number() {
    for bad in ["", "-1", "66 560", "0x10", "123456789012345678901"] {
        assert_eq!(doc_signer(bad).err(), Some(ResignError::DecodedLength), "{bad:?}");
    }
    let mut h = doc_headers("66560");
    h.append("x-amz-decoded-content-length", HeaderValue::from_static("66560"));
    let uri = "https://s3.amazonaws.com/examplebucket/chunkObject.txt";
    let twice = resign(&doc_keys(), PLACEHOLDER, "PUT", uri, &mut h, None, doc_time());
    assert_eq!(twice.err(), Some(ResignError::DecodedLength));
}

#[test]
fn trailers_and_ecdsa_stay_refused() {
    for declared in [
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD",
        "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
    ] {
        let mut h = doc_headers("66560");
        h.insert("x-amz-content-sha256", HeaderValue::from_static(declared));
        let uri = "https://s3.amazonaws.com/examplebucket/chunkObject.txt";
        let r = resign(&doc_keys(), PLACEHOLDER, "PUT", uri, &mut h, None, doc_time());
        assert_eq!(r.err(), Some(ResignError::SignedChunks), "{declared}");
    }
}

/// Every way the framing can be wrong is an error naming the chunk and the problem.
#[test]
fn bad_framing_is_refused_with_what_is_wrong() {
    let sig = AGENT_SIGNATURE;
    let good = doc_body(&[sig; 3]);
    let text = String::from_utf8(good.clone()).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str, usize)> = vec![
        ("empty body", Vec::new(), "ends before its final zero-size chunk", 1),
        (
            "cut before the last chunk",
            good[..good.len() - 86].to_vec(),
            "ends before",
            3,
        ),
        ("cut inside a chunk", good[..1000].to_vec(), "ends before", 1),
        (
            "no final CRLF",
            good[..good.len() - 2].to_vec(),
            "ends before its final zero-size chunk",
            3,
        ),
        (
            "trailing garbage",
            [&good[..], b"extra"].concat(),
            "data follows the final zero-size chunk",
            4,
        ),
        (
            "size not hex",
            text.replacen("10000;", "1000g;", 1).into_bytes(),
            "not a hexadecimal number",
            1,
        ),
        (
            "size too long",
            text.replacen("10000;", "00000000000000010000;", 1).into_bytes(),
            "malformed or too long",
            1,
        ),
        (
            "size one short",
            text.replacen("10000;", "ffff;", 1).into_bytes(),
            "not followed by CRLF",
            1,
        ),
        (
            "no signature",
            text.replacen(&format!("400;chunk-signature={sig}"), "400", 1)
                .into_bytes(),
            "no chunk-signature",
            2,
        ),
        (
            "another extension",
            text.replacen(";chunk-signature=", ";chunk-signaturX=", 1).into_bytes(),
            "no chunk-signature",
            1,
        ),
        (
            "short signature",
            text.replacen(&format!("={sig}"), &format!("={}", &sig[1..]), 1)
                .into_bytes(),
            "64 lower-case hex digits",
            1,
        ),
        (
            "upper-case signature",
            text.replacen(&format!("={sig}"), &format!("={}", "A".repeat(64)), 1)
                .into_bytes(),
            "64 lower-case hex digits",
            1,
        ),
        (
            "bare LF after a header",
            text.replacen(&format!("{sig}\r\n"), &format!("{sig}\n"), 1)
                .into_bytes(),
            "does not end with CRLF",
            1,
        ),
        (
            "a header without end",
            b"10000;chunk-signature="
                .iter()
                .chain([b'1'; 200].iter())
                .copied()
                .collect(),
            "malformed or too long",
            1,
        ),
    ];
    for (what, body, problem, chunk) in cases {
        let e = doc_signer("66560").unwrap().1.unwrap().sign_whole(&body).unwrap_err();
        assert!(e.problem.contains(problem), "{what}: {e}");
        assert_eq!(e.chunk, chunk, "{what}: {e}");
        assert!(
            e.to_string()
                .starts_with(&format!("S3 signed-chunk body, chunk {chunk}: "))
        );
    }
}

#[test]
fn the_chunks_must_add_up_to_the_decoded_length() {
    let agent = doc_body(&[AGENT_SIGNATURE; 3]);
    let more = doc_signer("66559").unwrap().1.unwrap().sign_whole(&agent).unwrap_err();
    assert_eq!((more.chunk, more.problem.contains("more bytes")), (2, true), "{more}");
    let fewer = doc_signer("66561").unwrap().1.unwrap().sign_whole(&agent).unwrap_err();
    assert_eq!(
        (fewer.chunk, fewer.problem.contains("fewer bytes")),
        (3, true),
        "{fewer}"
    );
    // A zero-length object is one zero-size chunk.
    let empty = body(&[0], &[AGENT_SIGNATURE]);
    let out = doc_signer("0").unwrap().1.unwrap().sign_whole(&empty).unwrap();
    assert_eq!(out.len(), empty.len());
    assert_ne!(out, empty);
}

#[test]
fn a_chunk_too_large_to_hold_is_refused_before_it_is_read() {
    let mut signer = doc_signer(&(MAX_CHUNK * 2).to_string()).unwrap().1.unwrap();
    let header = format!("{:x};chunk-signature={AGENT_SIGNATURE}\r\n", MAX_CHUNK + 1);
    let e = signer.push(header.as_bytes()).unwrap_err();
    assert!(e.problem.contains("8 MiB"), "{e}");
    // Once failed, always failed.
    assert_eq!(signer.push(b"").unwrap_err(), e);
    assert_eq!(signer.finish().unwrap_err(), e);
}

#[test]
fn the_signer_never_prints_its_key() {
    let signer = doc_signer("66560").unwrap().1.unwrap();
    assert_eq!(format!("{signer:?}"), "ChunkSigner(redacted)");
}
