//! Presigned URLs against AWS's published example ("Authenticating Requests: Using Query
//! Parameters", S3 API reference: GET examplebucket/test.txt, AKIAIOSFODNN7EXAMPLE,
//! 20130524T000000Z, 86400 s, signature aeeed9bb…): checked with the placeholder keys, signed
//! again with the real ones, and refused when changed after signing.

use std::time::{Duration, SystemTime};

use airlock_vault::SecretBytes;
use http::{HeaderMap, HeaderValue};

use super::super::{AwsKeys, ResignError, resign_request};

const DOC_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const DOC_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const DOC_URL: &str = "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256\
&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z\
&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
const DOC_SIGNATURE: &str = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
const REAL_KEY_ID: &str = "AKIAREALKEYID0000001";
const REAL_SECRET: &str = "rEaLsEcReTkEy/0123456789+abcdefghijKLMNOP";
const REAL_TOKEN: &str = "FwoGZXIvYXdzEREAL/SESSION+TOKEN=";

/// An hour after the example was signed.
fn doc_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600 + 3600)
}

/// Real keys for a sandbox whose placeholders are the documentation's keys (so the published
/// URL is what its SDK would make).
fn keys(key_id: &str, secret: &str, token: Option<&str>) -> AwsKeys {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    AwsKeys::new(&b(key_id), &b(secret), token.map(b).as_ref(), DOC_KEY_ID, DOC_SECRET).unwrap()
}

fn run(k: &AwsKeys, url: &str, now: SystemTime) -> Result<String, ResignError> {
    let mut uri = url.to_string();
    let mut headers = HeaderMap::new();
    let r = resign_request(k, DOC_KEY_ID, "GET", &mut uri, &mut headers, Some(b""), now)?;
    assert!(r.chunks.is_none(), "a presigned URL has no signed chunks");
    Ok(uri)
}

fn param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

#[test]
fn the_published_example_signed_again_with_the_same_keys_is_the_published_url() {
    // Placeholder and real keys alike: checking reproduces AWS's signature, signing makes it again.
    assert_eq!(
        run(&keys(DOC_KEY_ID, DOC_SECRET, None), DOC_URL, doc_time()).unwrap(),
        DOC_URL
    );
}

#[test]
fn signed_again_with_the_real_keys_and_session_token() {
    let out = run(&keys(REAL_KEY_ID, REAL_SECRET, Some(REAL_TOKEN)), DOC_URL, doc_time()).unwrap();
    assert!(out.starts_with("https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
    assert_eq!(
        param(&out, "X-Amz-Credential"),
        Some("AKIAREALKEYID0000001%2F20130524%2Fus-east-1%2Fs3%2Faws4_request")
    );
    // The agent's date and lifetime are kept: valid exactly when the agent's URL was.
    assert_eq!(param(&out, "X-Amz-Date"), Some("20130524T000000Z"));
    assert_eq!(param(&out, "X-Amz-Expires"), Some("86400"));
    assert_eq!(param(&out, "X-Amz-SignedHeaders"), Some("host"));
    assert_eq!(
        param(&out, "X-Amz-Security-Token"),
        Some("FwoGZXIvYXdzEREAL%2FSESSION%2BTOKEN%3D")
    );
    let sig = param(&out, "X-Amz-Signature").unwrap();
    assert_ne!(sig, DOC_SIGNATURE);
    assert_eq!(out.matches("X-Amz-Signature=").count(), 1, "{out}");
    // The new URL is a valid signature of the real keys: checked as a sandbox holding them would.
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    let holder = AwsKeys::new(&b("x"), &b("y"), None, REAL_KEY_ID, REAL_SECRET).unwrap();
    let mut again = out.clone();
    let _checked = resign_request(
        &holder,
        REAL_KEY_ID,
        "GET",
        &mut again,
        &mut HeaderMap::new(),
        Some(b""),
        doc_time(),
    )
    .expect("signed with the real keys");
}

#[test]
fn the_new_signature_is_scrubbed_back_to_the_agents() {
    let k = keys(REAL_KEY_ID, REAL_SECRET, None);
    let mut uri = DOC_URL.to_string();
    let r = resign_request(
        &k,
        DOC_KEY_ID,
        "GET",
        &mut uri,
        &mut HeaderMap::new(),
        Some(b""),
        doc_time(),
    )
    .unwrap();
    let sig = param(&uri, "X-Amz-Signature").unwrap().to_string();
    let echoed = format!("<SignatureProvided>{sig}</SignatureProvided>");
    let out = r
        .scrubber
        .expect("a presigned URL's scrubber")
        .scrub_once(echoed.as_bytes())
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("<SignatureProvided>{DOC_SIGNATURE}</SignatureProvided>")
    );
}

#[test]
fn changed_expired_or_malformed_urls_are_refused() {
    let k = keys(REAL_KEY_ID, REAL_SECRET, None);
    let t = doc_time();
    let changed = |from: &str, to: &str| run(&k, &DOC_URL.replacen(from, to, 1), t).err();
    // Changed after signing: another object, another lifetime, another region in the scope.
    assert_eq!(
        changed("/test.txt", "/secrets.txt"),
        Some(ResignError::PresignedSignature)
    );
    assert_eq!(
        changed("X-Amz-Expires=86400", "X-Amz-Expires=86401"),
        Some(ResignError::PresignedSignature)
    );
    assert_eq!(changed("us-east-1", "eu-west-1"), Some(ResignError::PresignedSignature));
    assert_eq!(
        changed("test.txt?", "test.txt?acl&"),
        Some(ResignError::PresignedSignature)
    );
    // A header listed as signed that the request does not carry.
    assert_eq!(
        changed("SignedHeaders=host", "SignedHeaders=host%3Brange"),
        Some(ResignError::PresignedSignature)
    );
    // Another key id: not this sandbox's placeholder.
    assert_eq!(
        changed("AKIAIOSFODNN7EXAMPLE", "AKIAOTHERKEYID000000"),
        Some(ResignError::NotPlaceholder)
    );
    assert_eq!(
        changed("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256"),
        Some(ResignError::NotSigV4)
    );
    // Read two ways, or not at all.
    let twice = format!("{DOC_URL}&X-Amz-Signature={}", "0".repeat(64));
    assert_eq!(run(&k, &twice, t).err(), Some(ResignError::PresignedMalformed));
    for (from, to) in [
        ("X-Amz-Expires=86400", "X-Amz-Expires=0"),
        ("X-Amz-Expires=86400", "X-Amz-Expires=604801"),
        ("X-Amz-Expires=86400", "X-Amz-Expires=1e5"),
        ("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130524T000000"),
        ("X-Amz-Date=20130524T000000Z", "X-Amz-Date=20130525T000000Z"),
        ("%2Faws4_request", "%2Faws5_request"),
        ("&X-Amz-SignedHeaders=host", ""),
    ] {
        assert_eq!(changed(from, to), Some(ResignError::PresignedMalformed), "{to}");
    }
    // Against the gateway's clock: expired a second ago, or dated beyond the allowed skew.
    let signed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600);
    assert!(run(&k, DOC_URL, signed + Duration::from_secs(86_400)).is_ok());
    assert_eq!(
        run(&k, DOC_URL, signed + Duration::from_secs(86_401)).err(),
        Some(ResignError::PresignedExpired)
    );
    assert_eq!(
        run(&k, DOC_URL, signed - Duration::from_secs(16 * 60)).err(),
        Some(ResignError::PresignedExpired)
    );
    // Both kinds of signature at once.
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=x"),
    );
    let mut uri = DOC_URL.to_string();
    let r = resign_request(&k, DOC_KEY_ID, "GET", &mut uri, &mut headers, Some(b""), t);
    assert_eq!(r.err(), Some(ResignError::TwoSignatures));
}
