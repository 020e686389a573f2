//! The fake service's check of presigned URLs (the signature in the query), as AWS's "Authenticating
//! Requests: Using Query Parameters" defines it: the canonical request of the URL less its
//! `X-Amz-Signature`, `UNSIGNED-PAYLOAD` for S3, signed with the keys `X-Amz-Credential` names,
//! and valid from `X-Amz-Date` for `X-Amz-Expires` seconds.

use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{Keys, canonical_request, hmac, live_keys, signing_key};
use crate::support::Seen;

/// The query parameters of `seen`, decoded.
pub fn query_params(seen: &Seen) -> Vec<(String, String)> {
    let query = seen.target.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// `YYYYMMDDTHHMMSSZ` → seconds since the epoch.
fn epoch(date: &str) -> Option<u64> {
    let n = |r: std::ops::Range<usize>| date.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// The keys of `accepted` that presigned `seen` (as sent to `host`), or why it is refused.
pub fn verify_presigned(seen: &Seen, host: &str, accepted: &[Keys]) -> Result<Keys, String> {
    let params = query_params(seen);
    let one = |k: &str| {
        let mut all = params.iter().filter(|(n, _)| n == k);
        match (all.next(), all.next()) {
            (Some((_, v)), None) => Ok(v.as_str()),
            _ => Err(format!("AuthorizationQueryParametersError: {k} must appear once")),
        }
    };
    if one("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
        return Err("not SigV4".into());
    }
    let scope: Vec<&str> = one("X-Amz-Credential")?.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err("a malformed X-Amz-Credential".into());
    }
    let token = params
        .iter()
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v.as_str());
    let keys = live_keys(accepted, scope[0], token)?;
    let date = one("X-Amz-Date")?;
    let (signed_at, expires) = (
        epoch(date).ok_or("a malformed X-Amz-Date")?,
        one("X-Amz-Expires")?
            .parse::<u64>()
            .map_err(|_| "a malformed X-Amz-Expires")?,
    );
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    if now.as_secs() > signed_at + expires {
        return Err("AccessDenied: Request has expired".into());
    }
    let service = scope[3];
    let payload = match service {
        "s3" => "UNSIGNED-PAYLOAD".to_string(),
        _ => hex::encode(Sha256::digest(&seen.body)),
    };
    let signed = one("X-Amz-SignedHeaders")?;
    let creq = canonical_request(seen, host, service, signed, &payload, Some("X-Amz-Signature"))?;
    let sts = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope[1..].join("/"),
        hex::encode(Sha256::digest(creq.as_bytes()))
    );
    let want = hex::encode(hmac(&signing_key(&keys.secret, &scope[1..]), &sts));
    if want != one("X-Amz-Signature")? {
        return Err(format!(
            "SignatureDoesNotMatch: the presigned URL's signature does not match (canonical request {creq:?})"
        ));
    }
    Ok(keys.clone())
}
