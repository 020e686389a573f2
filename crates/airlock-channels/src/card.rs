//! Builds the approval [`Card`] from the gateway's own parse of a held request, and the digest
//! that binds an approval to exactly the bytes that will be forwarded.

use sha2::{Digest, Sha256};

use crate::{BodyKind, BodyView, Card, HeldRequest, RuleLine};

/// Hex SHA-256 over method, URL (scheme://host:port + target), every header (name, value, in
/// order) and the body, each field length-prefixed (u64 BE) so no two different requests share
/// an encoding.
pub fn digest(held: &HeldRequest) -> String {
    let mut h = Sha256::new();
    let mut field = |b: &[u8]| {
        h.update((b.len() as u64).to_be_bytes());
        h.update(b);
    };
    field(held.method.as_bytes());
    field(format!("{}://{}:{}{}", held.scheme, held.host, held.port, held.target).as_bytes());
    // The header count is prefixed too, so headers can never be confused with the body.
    field(&(held.headers.len() as u64).to_be_bytes());
    for (name, value) in &held.headers {
        field(name.as_bytes());
        field(value);
    }
    field(&held.body);
    hex::encode(h.finalize())
}

/// Builds the card from the gateway's own parse of the held request.
pub fn build(
    held: &HeldRequest,
    id: &str,
    rules: Vec<RuleLine>,
    digest: String,
    created_ms: u64,
    expires_ms: u64,
    grant_secs: Option<u64>,
) -> Card {
    let (path, query) = held.target.split_once('?').unwrap_or((&held.target, ""));
    let content_type = held
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned());
    let body = BodyView {
        content_type,
        kind: if held.body.is_empty() {
            BodyKind::Empty
        } else {
            BodyKind::Text
        },
        size: held.body.len(),
        text: String::from_utf8_lossy(&held.body).into_owned(),
    };
    let _ = query;
    Card {
        id: id.to_string(),
        agent: held.agent.clone(),
        rules,
        method: held.method.clone(),
        scheme: held.scheme.clone(),
        host: held.host.clone(),
        port: held.port,
        path: path.to_string(),
        query: Vec::new(),
        headers: Vec::new(),
        body,
        summary_title: None,
        summary: Vec::new(),
        digest,
        created_ms,
        expires_ms,
        grant_secs,
    }
}
