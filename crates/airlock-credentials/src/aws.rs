//! AWS Signature V4 re-signing. The sandbox holds a placeholder key id and secret, so unmodified
//! SDKs sign their requests with them; the gateway checks that a request toward a bound host names
//! the placeholder key id in its `Authorization`, drops that signature, and signs the request
//! again with the real keys (the AWS SDK for Rust's own signer, `aws-sigv4`: no crypto here).
//!
//! What is signed is what the agent signed: its `SignedHeaders` (their values as forwarded), the
//! region and service of its credential scope, and its declared payload hash
//! (`x-amz-content-sha256`: a hex digest, `UNSIGNED-PAYLOAD` or an unsigned streaming trailer).
//! S3's signed chunks (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`) chain every chunk's signature to the
//! seed signature: [`resign`] hands back a [`ChunkSigner`] seeded with the new signature, through
//! which the body must pass. Signed chunks with a signed trailer (`…-PAYLOAD-TRAILER`) and the
//! ECDSA (SigV4a) variants are refused.
//!
//! A presigned URL (the signature in the query: `X-Amz-Credential`, `X-Amz-Signature`, …) is
//! checked against the placeholder keys and signed again in the query ([`presign`]).
//! [`resign_request`] takes either kind; for a presigned URL it also hands back what scrubs the
//! new signature from the response: a real presigned URL is a bearer credential, and S3 quotes
//! the signature it was given in its errors.
//!
//! With `role_arn`, the real keys only sign STS `AssumeRole` ([`sts`]); requests are re-signed
//! with the role's temporary keys.

mod chunks;
mod presign;
pub mod sts;

pub use chunks::{ChunkError, ChunkSigner};
pub use sts::assume_role;

use std::time::SystemTime;

use airlock_vault::{Scrubber, SecretBytes};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const CONTENT_SHA256: &str = "x-amz-content-sha256";
/// Headers the signer writes itself: the agent's values are dropped, never re-signed.
const SIGNER_HEADERS: [&str; 4] = ["authorization", "x-amz-date", "x-amz-security-token", CONTENT_SHA256];

/// The real keys of one `kind = "aws"` secret, and what scrubs them from responses.
pub struct AwsKeys {
    identity: Identity,
    /// Replaces the real key id, secret key and session token with placeholders.
    pub scrubber: Scrubber,
    /// These keys and their placeholders (what `scrubber` covers, less what [`AwsKeys::scrubbing_too`] added).
    pairs: Vec<(SecretBytes, Vec<u8>)>,
    /// The secret key the sandbox holds, to check a presigned URL's signature (worth nothing).
    secret_placeholder: String,
}

impl std::fmt::Debug for AwsKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AwsKeys(redacted)")
    }
}

impl AwsKeys {
    /// `placeholder` is the key id the sandbox holds, `secret_placeholder` its secret key.
    pub fn new(
        key_id: &SecretBytes,
        secret: &SecretBytes,
        session_token: Option<&SecretBytes>,
        placeholder: &str,
        secret_placeholder: &str,
    ) -> Result<AwsKeys, ResignError> {
        let text = |b: &SecretBytes| {
            std::str::from_utf8(b.expose())
                .map(|s| s.trim().to_string())
                .map_err(|_| ResignError::Keys)
        };
        let creds = Credentials::new(
            text(key_id)?,
            text(secret)?,
            session_token.map(text).transpose()?,
            None,
            "airlock",
        );
        let mut pairs = vec![
            (key_id.clone(), placeholder.as_bytes().to_vec()),
            (secret.clone(), secret_placeholder.as_bytes().to_vec()),
        ];
        if let Some(t) = session_token {
            pairs.push((t.clone(), placeholder.as_bytes().to_vec()));
        }
        Ok(AwsKeys {
            identity: creds.into(),
            scrubber: Scrubber::new(pairs.clone()),
            pairs,
            secret_placeholder: secret_placeholder.to_string(),
        })
    }

    /// These keys, whose scrubber also covers the keys of `others` (the base keys of an assumed
    /// role, the session it replaces) — theirs only, so scrubbers do not nest with every refresh.
    pub fn scrubbing_too(mut self, others: &[&AwsKeys]) -> AwsKeys {
        let mut pairs = self.pairs.clone();
        for o in others {
            pairs.extend(o.pairs.iter().cloned());
        }
        self.scrubber = Scrubber::new(pairs);
        self
    }
}

/// Why a request cannot be re-signed. Names the problem, never a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResignError {
    #[error("the request is not signed with AWS Signature V4 (AWS4-HMAC-SHA256)")]
    NotSigV4,
    #[error("the request is signed with another key id than this sandbox's placeholder; nothing is injected")]
    NotPlaceholder,
    #[error("the request's Signature V4 Authorization header is malformed")]
    Malformed,
    #[error(
        "S3 signed-chunk uploads with a signed trailer or an ECDSA signature \
         (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, STREAMING-AWS4-ECDSA-P256-SHA256-…) are not \
         re-signed by airlock; use STREAMING-AWS4-HMAC-SHA256-PAYLOAD or an unsigned payload"
    )]
    SignedChunks,
    #[error(
        "x-amz-content-sha256 must be a SHA-256 hex digest, UNSIGNED-PAYLOAD, \
         STREAMING-UNSIGNED-PAYLOAD-TRAILER or STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    )]
    BadPayloadHash,
    #[error("an S3 signed-chunk upload needs x-amz-decoded-content-length, a decimal number of bytes")]
    DecodedLength,
    #[error(
        "the request body is too large to hash for Signature V4 and declares no x-amz-content-sha256; \
         send a smaller body or declare the payload hash"
    )]
    UnhashedBody,
    #[error("a signed header is not valid text")]
    BadHeader,
    #[error("the real AWS keys are not valid text")]
    Keys,
    #[error("Signature V4 signing failed")]
    Signing,
    #[error(
        "the presigned URL is not signed with this sandbox's placeholder keys as it arrives \
         (changed after it was signed?); nothing is injected"
    )]
    PresignedSignature,
    #[error("the presigned URL is not valid now (X-Amz-Date and X-Amz-Expires against the gateway's clock)")]
    PresignedExpired,
    #[error(
        "the presigned URL's X-Amz-* parameters are malformed (each once; X-Amz-Date as YYYYMMDDTHHMMSSZ, \
         the day of X-Amz-Credential; X-Amz-Expires from 1 to 604800 seconds)"
    )]
    PresignedMalformed,
    #[error("the request carries both a Signature V4 Authorization header and a presigned URL's signature")]
    TwoSignatures,
}

/// A request signed again.
#[must_use = "a signed-chunk body must be passed through its signer"]
pub struct Resigned {
    /// For an S3 signed-chunk upload: the signer every byte of the body must pass through.
    pub chunks: Option<ChunkSigner>,
    /// For a presigned URL: scrubs its new signature from the response, back to the agent's. (A
    /// header signature is good for that one request only, and building a scrubber costs ~0.3 ms,
    /// 30 times the signing: header-signed requests get none.)
    pub scrubber: Option<Scrubber>,
}

impl std::fmt::Debug for Resigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resigned(redacted)")
    }
}

/// The parts of an agent's `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…` that re-signing keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSignature {
    pub key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lower-case, as listed.
    pub signed_headers: Vec<String>,
}

/// Parses a SigV4 `Authorization` value; `None` when it is not one.
pub fn parse_authorization(value: &str) -> Option<AgentSignature> {
    let rest = value.trim().strip_prefix(ALGORITHM)?;
    if !rest.starts_with(' ') {
        return None;
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        let (k, v) = part.split_once('=')?;
        let slot = match k.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(v.trim()).is_some() {
            return None;
        }
    }
    let scope: Vec<&str> = credential?.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return None;
    };
    signature.filter(|s| !s.is_empty())?;
    let signed_headers: Vec<String> = signed?.split(';').map(str::to_ascii_lowercase).collect();
    if [key_id, date, region, service].iter().any(|s| s.is_empty()) || signed_headers.iter().any(String::is_empty) {
        return None;
    }
    Some(AgentSignature {
        key_id: key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
    })
}

/// The agent's SigV4 signature on `headers`, provided it is exactly one well-formed header.
pub fn agent_signature(headers: &HeaderMap) -> Result<AgentSignature, ResignError> {
    let mut all = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(ResignError::NotSigV4);
    };
    let v = v.to_str().map_err(|_| ResignError::Malformed)?;
    if !v.trim_start().starts_with(ALGORITHM) {
        return Err(ResignError::NotSigV4);
    }
    parse_authorization(v).ok_or(ResignError::Malformed)
}

/// Replaces the agent's signature — its `Authorization` header, or a presigned URL's query — on
/// a request toward `uri` (absolute, as it is dialed; a presigned URL's query is rewritten) with
/// one made with `keys`, at `now`. `body` is the whole body when it was read, `None` when it streams.
pub fn resign_request(
    keys: &AwsKeys,
    placeholder: &str,
    method: &str,
    uri: &mut String,
    headers: &mut HeaderMap,
    body: Option<&[u8]>,
    now: SystemTime,
) -> Result<Resigned, ResignError> {
    if !presign::is_presigned(uri) {
        let chunks = resign(keys, placeholder, method, uri, headers, body, now)?;
        return Ok(Resigned { chunks, scrubber: None });
    }
    if headers.contains_key(http::header::AUTHORIZATION) {
        return Err(ResignError::TwoSignatures);
    }
    let (new, agent) = presign::resign_presigned(keys, placeholder, method, uri, headers, body, now)?;
    Ok(Resigned {
        chunks: None,
        scrubber: Some(Scrubber::literal(vec![(
            SecretBytes::new(new.into_bytes()),
            agent.into_bytes(),
        )])),
    })
}

/// Replaces the agent's `Authorization` signature on a request toward `uri` (absolute, as it is
/// dialed) with one made with `keys`, at `now`. `body` is the whole body when it was read, `None`
/// when it streams. For an S3 signed-chunk upload, returns the signer every byte of the body must
/// pass through.
pub fn resign(
    keys: &AwsKeys,
    placeholder: &str,
    method: &str,
    uri: &str,
    headers: &mut HeaderMap,
    body: Option<&[u8]>,
    now: SystemTime,
) -> Result<Option<ChunkSigner>, ResignError> {
    let agent = agent_signature(headers)?;
    if agent.key_id != placeholder {
        return Err(ResignError::NotPlaceholder);
    }
    let declared = match headers.get(CONTENT_SHA256) {
        None => None,
        Some(v) => Some(declared_hash(v.to_str().map_err(|_| ResignError::BadPayloadHash)?)?),
    };
    let chunked = match declared.as_deref() {
        Some(chunks::STREAMING_PAYLOAD) => Some(decoded_length(headers)?),
        _ => None,
    };
    let payload = match (&declared, body) {
        (Some(h), _) if h == "STREAMING-UNSIGNED-PAYLOAD-TRAILER" => SignableBody::StreamingUnsignedPayloadTrailer,
        (Some(h), _) if h == "UNSIGNED-PAYLOAD" => SignableBody::UnsignedPayload,
        (Some(h), _) => SignableBody::Precomputed(h.clone()),
        (None, Some(b)) => SignableBody::Bytes(b),
        (None, None) => return Err(ResignError::UnhashedBody),
    };
    for h in SIGNER_HEADERS {
        headers.remove(h);
    }
    let mut signed: Vec<(&str, &str)> = Vec::with_capacity(agent.signed_headers.len());
    for name in &agent.signed_headers {
        if name == "host" || SIGNER_HEADERS.contains(&name.as_str()) {
            continue;
        }
        for v in headers.get_all(name.as_str()) {
            signed.push((name.as_str(), v.to_str().map_err(|_| ResignError::BadHeader)?));
        }
    }
    let mut settings = settings_for(&agent.service);
    if declared.is_some() {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = v4::SigningParams::builder()
        .identity(&keys.identity)
        .region(&agent.region)
        .name(&agent.service)
        .time(now)
        .settings(settings)
        .build()
        .map_err(|_| ResignError::Signing)?
        .into();
    let request = SignableRequest::new(method, uri, signed.into_iter(), payload).map_err(|_| ResignError::Signing)?;
    let (instructions, seed) = sign(request, &params).map_err(|_| ResignError::Signing)?.into_parts();
    let (new_headers, _) = instructions.into_parts();
    for h in new_headers {
        let mut value = HeaderValue::from_str(h.value()).map_err(|_| ResignError::Signing)?;
        value.set_sensitive(h.sensitive() || h.name() == "authorization");
        let name = HeaderName::from_bytes(h.name().as_bytes()).map_err(|_| ResignError::Signing)?;
        headers.insert(name, value);
    }
    let Some(declared) = chunked else {
        return Ok(None);
    };
    let secret = keys.identity.data::<Credentials>().ok_or(ResignError::Keys)?;
    let amz_date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or(ResignError::Signing)?;
    Ok(Some(ChunkSigner::new(
        secret.secret_access_key(),
        now,
        amz_date,
        &agent.region,
        &agent.service,
        seed,
        declared,
    )))
}

/// How `service` signs: S3 signs the path as sent; every other service signs it normalized and
/// encoded twice.
fn settings_for(service: &str) -> SigningSettings {
    let mut settings = SigningSettings::default();
    if is_s3(service) {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    settings
}

fn is_s3(service: &str) -> bool {
    service == "s3" || service.starts_with("s3-") || service == "s3express"
}

/// The `x-amz-decoded-content-length` of a signed-chunk upload: exactly one decimal number.
fn decoded_length(headers: &HeaderMap) -> Result<u64, ResignError> {
    let mut all = headers.get_all("x-amz-decoded-content-length").iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return Err(ResignError::DecodedLength);
    };
    let v = v.as_bytes();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return Err(ResignError::DecodedLength);
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ResignError::DecodedLength)
}

/// The agent's `x-amz-content-sha256`, when re-signing can keep it.
fn declared_hash(v: &str) -> Result<String, ResignError> {
    match v {
        "UNSIGNED-PAYLOAD" | "STREAMING-UNSIGNED-PAYLOAD-TRAILER" | chunks::STREAMING_PAYLOAD => Ok(v.to_string()),
        s if s.starts_with("STREAMING-AWS4-HMAC-SHA256-PAYLOAD") || s.starts_with("STREAMING-AWS4-ECDSA") => {
            Err(ResignError::SignedChunks)
        }
        s if s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(s.to_string()),
        _ => Err(ResignError::BadPayloadHash),
    }
}

#[cfg(test)]
#[path = "aws_tests.rs"]
mod tests;
