//! Presigned URLs: the signature travels in the query (`X-Amz-Algorithm`, `X-Amz-Credential`,
//! `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Signature`, maybe
//! `X-Amz-Security-Token`), made by an SDK in the sandbox with the placeholder keys.
//!
//! Unlike an `Authorization` header, made for one request a moment ago, a presigned URL is made
//! to travel: it is handed around, stored and fetched later, possibly by another program. So the
//! gateway checks its signature with the placeholder keys (the sandbox's secret placeholder)
//! before anything is signed with the real ones: a URL changed after it was signed — another
//! key, method or signed header — is refused, not silently signed anew. Then the agent's
//! `X-Amz-*` parameters are dropped and the request signed again in the query with the real keys
//! (`aws-sigv4`, [`SignatureLocation::QueryParams`]) at the agent's own `X-Amz-Date`, for its own
//! `X-Amz-Expires` and signed headers: the upstream URL is valid exactly when the agent's was, and
//! AWS itself enforces that window too. The other parameters are kept byte for byte.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_types::date_time::{DateTime, Format};
use http::HeaderMap;
use url::form_urlencoded;

use super::{ALGORITHM, AwsKeys, ResignError, is_s3, settings_for};

/// The parameters a presigned URL's signature consists of (AWS spells them in this case).
const AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];
/// The longest life AWS grants a Signature V4 presigned URL: seven days.
const MAX_EXPIRES: u64 = 604_800;
/// How far ahead of the gateway's clock an `X-Amz-Date` may be (AWS's own allowance for skew).
const SKEW: Duration = Duration::from_secs(15 * 60);

/// The signer's query parameters.
type QueryParams = Vec<(&'static str, String)>;

/// Whether the query of `uri` carries a presigned URL's signature (any of its parameters).
pub(super) fn is_presigned(uri: &str) -> bool {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes()).any(|(k, _)| AUTH_PARAMS.contains(&k.as_ref()))
}

/// The agent's presigned signature, and the query without it (its other parameters as sent).
struct AgentQuery<'a> {
    values: [Option<String>; 7],
    rest: Vec<&'a str>,
}

impl AgentQuery<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        let i = AUTH_PARAMS.iter().position(|p| *p == name)?;
        self.values[i].as_deref()
    }

    fn required(&self, name: &str) -> Result<&str, ResignError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or(ResignError::PresignedMalformed)
    }
}

fn split_query(query: &str) -> Result<AgentQuery<'_>, ResignError> {
    let mut q = AgentQuery {
        values: Default::default(),
        rest: Vec::new(),
    };
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        // One piece is one pair: `parse` decodes it exactly as the signer and AWS will.
        let Some((k, v)) = form_urlencoded::parse(piece.as_bytes()).next() else {
            continue;
        };
        match AUTH_PARAMS.iter().position(|p| *p == k) {
            Some(i) => {
                // Repeated, a parameter could be read two ways: refused.
                if q.values[i].replace(v.into_owned()).is_some() {
                    return Err(ResignError::PresignedMalformed);
                }
            }
            None => q.rest.push(piece),
        }
    }
    Ok(q)
}

/// `YYYYMMDDTHHMMSSZ` → the instant, when it is one.
fn amz_date(v: &str) -> Option<SystemTime> {
    let b = v.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() != 16 || !digits(0..8) || b[8] != b'T' || !digits(9..15) || b[15] != b'Z' {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &v[..4],
        &v[4..6],
        &v[6..8],
        &v[9..11],
        &v[11..13],
        &v[13..15]
    );
    SystemTime::try_from(DateTime::from_str(&rfc3339, Format::DateTime).ok()?).ok()
}

/// Checks the presigned URL `uri` against the placeholder keys and rewrites its query with a
/// signature made with `keys`. Returns the new signature and the agent's.
pub(super) fn resign_presigned(
    keys: &AwsKeys,
    placeholder: &str,
    method: &str,
    uri: &mut String,
    headers: &HeaderMap,
    body: Option<&[u8]>,
    now: SystemTime,
) -> Result<(String, String), ResignError> {
    let (path, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
    let q = split_query(query)?;
    if q.required("X-Amz-Algorithm")? != ALGORITHM {
        return Err(ResignError::NotSigV4);
    }
    let credential = q.required("X-Amz-Credential")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, day, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(ResignError::PresignedMalformed);
    };
    if *key_id != placeholder {
        return Err(ResignError::NotPlaceholder);
    }
    let date = q.required("X-Amz-Date")?;
    let signed_at = amz_date(date).ok_or(ResignError::PresignedMalformed)?;
    let expires: u64 = q
        .required("X-Amz-Expires")?
        .parse()
        .map_err(|_| ResignError::PresignedMalformed)?;
    let agent_signature = q.required("X-Amz-Signature")?.to_string();
    if date.get(..8) != Some(*day) || !(1..=MAX_EXPIRES).contains(&expires) || region.is_empty() || service.is_empty() {
        return Err(ResignError::PresignedMalformed);
    }
    if now > signed_at + Duration::from_secs(expires) || signed_at > now + SKEW {
        return Err(ResignError::PresignedExpired);
    }
    let signed_headers: Vec<String> = q
        .required("X-Amz-SignedHeaders")?
        .split(';')
        .map(str::to_ascii_lowercase)
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(ResignError::PresignedMalformed);
    }
    let mut signed: Vec<(&str, &str)> = Vec::with_capacity(signed_headers.len());
    for name in signed_headers.iter().filter(|n| *n != "host") {
        let mut values = headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            // A signed header the request no longer carries: the URL is not used as signed.
            return Err(ResignError::PresignedSignature);
        }
        for v in values {
            signed.push((name.as_str(), v.to_str().map_err(|_| ResignError::BadHeader)?));
        }
    }
    // S3 presigns with an unsigned payload; other services (STS, RDS tokens) sign the body's hash.
    let payload = match (is_s3(service), body) {
        (true, _) => SignableBody::UnsignedPayload,
        (false, Some(b)) => SignableBody::Bytes(b),
        (false, None) => return Err(ResignError::UnhashedBody),
    };
    let bare = match q.rest.is_empty() {
        true => path.to_string(),
        false => format!("{path}?{}", q.rest.join("&")),
    };
    let sign_as = |identity: &Identity| -> Result<(QueryParams, String), ResignError> {
        let mut settings = settings_for(service);
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(Duration::from_secs(expires));
        // Exactly the headers the agent signed, none dropped by the SDK's default exclusions.
        settings.excluded_headers = None;
        let params = v4::SigningParams::builder()
            .identity(identity)
            .region(region)
            .name(service)
            .time(signed_at)
            .settings(settings)
            .build()
            .map_err(|_| ResignError::Signing)?
            .into();
        let request = SignableRequest::new(method, &bare, signed.iter().copied(), payload.clone())
            .map_err(|_| ResignError::Signing)?;
        let (instructions, signature) = sign(request, &params).map_err(|_| ResignError::Signing)?.into_parts();
        let (_, query) = instructions.into_parts();
        Ok((query.into_iter().map(|(k, v)| (k, v.into_owned())).collect(), signature))
    };
    // The agent's session token, if its SDK had one, is part of what it signed.
    let token = q.get("X-Amz-Security-Token").map(str::to_string);
    let placeholder_keys = Credentials::new(placeholder, &keys.secret_placeholder, token, None, "sandbox");
    let (_, theirs) = sign_as(&placeholder_keys.into())?;
    if theirs != agent_signature {
        return Err(ResignError::PresignedSignature);
    }
    let (params, ours) = sign_as(&keys.identity)?;
    let mut out = bare;
    let mut sep = if out.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        out.extend(form_urlencoded::byte_serialize(k.as_bytes()));
        out.push('=');
        out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
        sep = '&';
    }
    *uri = out;
    Ok((ours, agent_signature))
}

#[cfg(test)]
#[path = "presign_tests.rs"]
mod tests;
