//! The re-signing wrapper against AWS's published Signature V4 test suite
//! (aws-sig-v4-test-suite: AKIDEXAMPLE, 20150830T123600Z, us-east-1, service "service"): the
//! agent's request, signed with the placeholder, comes out with the suite's `.authz` value.

use super::*;

const KEY_ID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const PLACEHOLDER: &str = "airlock-placeholder-aws";
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

fn suite_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160)
}

fn keys(token: Option<&str>) -> AwsKeys {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    AwsKeys::new(
        &b(KEY_ID),
        &b(SECRET),
        token.map(b).as_ref(),
        PLACEHOLDER,
        "airlock-aws-secret-placeholder",
    )
    .unwrap()
}

/// Headers as an SDK holding the placeholder sends them (its own signature is worthless).
fn agent_headers(signed: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={PLACEHOLDER}/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={signed}, Signature=0000000000000000000000000000000000000000000000000000000000000000"
        ))
        .unwrap(),
    );
    h.insert("x-amz-date", HeaderValue::from_static("20991231T000000Z"));
    for (k, v) in extra {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn resigned(method: &str, uri: &str, mut h: HeaderMap, body: &[u8], token: Option<&str>) -> HeaderMap {
    resign(&keys(token), PLACEHOLDER, method, uri, &mut h, Some(body), suite_time()).unwrap();
    h
}

fn authz(h: &HeaderMap) -> &str {
    h["authorization"].to_str().unwrap()
}

const SCOPE: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

#[test]
fn get_vanilla() {
    let h = resigned(
        "GET",
        "https://example.amazonaws.com/",
        agent_headers("host;x-amz-date", &[]),
        b"",
        None,
    );
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        )
    );
    assert_eq!(h["x-amz-date"], "20150830T123600Z");
    assert!(h["authorization"].is_sensitive());
}

#[test]
fn get_vanilla_query_order_key_case() {
    let h = resigned(
        "GET",
        "https://example.amazonaws.com/?Param2=value2&Param1=value1",
        agent_headers("host;x-amz-date", &[]),
        b"",
        None,
    );
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=host;x-amz-date, \
             Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        )
    );
}

#[test]
fn post_vanilla_query() {
    let h = resigned(
        "POST",
        "https://example.amazonaws.com/?Param1=value1",
        agent_headers("host;x-amz-date", &[]),
        b"",
        None,
    );
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=host;x-amz-date, \
             Signature=28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
        )
    );
}

#[test]
fn post_x_www_form_urlencoded_hashes_the_body() {
    let h = agent_headers(
        "content-type;host;x-amz-date",
        &[("content-type", "application/x-www-form-urlencoded")],
    );
    let h = resigned("POST", "https://example.amazonaws.com/", h, b"Param1=value1", None);
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=content-type;host;x-amz-date, \
             Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
        )
    );
}

#[test]
fn get_header_value_trim_signs_only_what_the_agent_signed() {
    // `my-header1`/`my-header2` signed; `x-unsigned` sent but not signed by the agent: left out.
    let h = agent_headers(
        "host;my-header1;my-header2;x-amz-date",
        &[
            ("my-header1", " value1"),
            ("my-header2", "\"a   b   c\""),
            ("x-unsigned", "1"),
        ],
    );
    let h = resigned("GET", "https://example.amazonaws.com/", h, b"", None);
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=host;my-header1;my-header2;x-amz-date, \
             Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"
        )
    );
    assert_eq!(h["x-unsigned"], "1");
}

#[test]
fn post_sts_header_before_adds_the_real_session_token() {
    // The agent holds no session token; the real one is added and signed.
    let h = resigned(
        "POST",
        "https://example.amazonaws.com/",
        agent_headers(
            "host;x-amz-date;x-amz-security-token",
            &[("x-amz-security-token", "agent-junk")],
        ),
        b"",
        Some(STS_TOKEN),
    );
    assert_eq!(
        authz(&h),
        format!(
            "{SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, \
             Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"
        )
    );
    assert_eq!(h["x-amz-security-token"], STS_TOKEN);
    assert!(h["x-amz-security-token"].is_sensitive());
}

/// The S3 developer guide's GetObject example (examplebucket, 20130524): single-encoded path and
/// the declared `x-amz-content-sha256` kept.
#[test]
fn s3_get_object_example_from_the_s3_guide() {
    let b = |s: &str| SecretBytes::new(s.as_bytes().to_vec());
    let keys = AwsKeys::new(
        &b("AKIAIOSFODNN7EXAMPLE"),
        &b("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        None,
        PLACEHOLDER,
        "airlock-aws-secret-placeholder",
    )
    .unwrap();
    let mut h = HeaderMap::new();
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential={PLACEHOLDER}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=00"
        ))
        .unwrap(),
    );
    h.insert("range", HeaderValue::from_static("bytes=0-9"));
    h.insert(
        "x-amz-content-sha256",
        HeaderValue::from_static("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    );
    let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_369_353_600);
    resign(
        &keys,
        PLACEHOLDER,
        "GET",
        "https://examplebucket.s3.amazonaws.com/test.txt",
        &mut h,
        None,
        at,
    )
    .unwrap();
    assert_eq!(
        authz(&h),
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
         SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
         Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
}

#[test]
fn refusals() {
    let k = keys(None);
    let uri = "https://example.amazonaws.com/";
    let run = |mut h: HeaderMap, body: Option<&[u8]>| resign(&k, PLACEHOLDER, "GET", uri, &mut h, body, suite_time());
    // Another key id (a real-looking one the agent brought): nothing is injected.
    let mut other = agent_headers("host;x-amz-date", &[]);
    other.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        ),
    );
    assert_eq!(run(other, Some(b"")).err(), Some(ResignError::NotPlaceholder));
    // The placeholder elsewhere in the header is not a signature made with it.
    let mut elsewhere = HeaderMap::new();
    elsewhere.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {PLACEHOLDER}")).unwrap(),
    );
    assert_eq!(run(elsewhere, Some(b"")).err(), Some(ResignError::NotSigV4));
    let mut twice = agent_headers("host;x-amz-date", &[]);
    let first = twice["authorization"].clone();
    twice.append("authorization", first);
    assert_eq!(run(twice, Some(b"")).err(), Some(ResignError::NotSigV4));
    let streaming = agent_headers(
        "host;x-amz-content-sha256;x-amz-date",
        &[("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")],
    );
    assert_eq!(run(streaming, None).err(), Some(ResignError::SignedChunks));
    let bad = agent_headers(
        "host;x-amz-content-sha256;x-amz-date",
        &[("x-amz-content-sha256", "abc")],
    );
    assert_eq!(run(bad, None).err(), Some(ResignError::BadPayloadHash));
    assert_eq!(
        run(agent_headers("host;x-amz-date", &[]), None).err(),
        Some(ResignError::UnhashedBody)
    );
}

#[test]
fn unsigned_payloads_are_kept_as_declared() {
    for declared in ["UNSIGNED-PAYLOAD", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"] {
        let mut h = agent_headers(
            "host;x-amz-content-sha256;x-amz-date",
            &[("x-amz-content-sha256", declared)],
        );
        resign(
            &keys(None),
            PLACEHOLDER,
            "PUT",
            "https://example.amazonaws.com/b/k",
            &mut h,
            None,
            suite_time(),
        )
        .unwrap();
        assert_eq!(h["x-amz-content-sha256"], declared);
        assert!(authz(&h).contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date"));
    }
}

#[test]
fn authorization_parsing() {
    let a = parse_authorization(
        "AWS4-HMAC-SHA256 Credential=AKID/20150830/eu-west-1/ec2/aws4_request, SignedHeaders=Host;X-Amz-Date, Signature=ab",
    )
    .unwrap();
    assert_eq!(
        (a.key_id.as_str(), a.region.as_str(), a.service.as_str()),
        ("AKID", "eu-west-1", "ec2")
    );
    assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
    for bad in [
        "AWS4-HMAC-SHA256Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=a/b/c/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, Credential=x/b/c/d/aws4_request, SignedHeaders=host, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host;;x, Signature=ab",
        "AWS4-HMAC-SHA256 Credential=a/b/c/d/aws4_request, SignedHeaders=host, Signature=ab, Extra=1",
    ] {
        assert_eq!(parse_authorization(bad), None, "{bad}");
    }
}

#[test]
fn keys_are_scrubbed_and_never_printed() {
    let k = keys(Some(STS_TOKEN));
    assert_eq!(format!("{k:?}"), "AwsKeys(redacted)");
    let out = k
        .scrubber
        .scrub_once(format!("{KEY_ID} {SECRET} {STS_TOKEN}").as_bytes())
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(
        !out.contains(KEY_ID) && !out.contains(SECRET) && !out.contains("AQoDYXdz"),
        "{out}"
    );
}
