//! Carries out an injection plan on the outgoing request: the only place real values
//! enter a request, and only into the slot the plan names. Intermediate copies of the
//! secret are zeroized; header values are marked sensitive (HPACK never-indexed).

use airlock_core::inject::{Injection, SecretIndex, Slot};
use airlock_vault::SecretBytes;
use base64::Engine;
use http::{HeaderMap, HeaderValue, header::HeaderName};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};

/// Characters left as-is in a query value; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InjectError {
    #[error("secret \"{0}\" has no value in the vault (run: airlock secret set {0})")]
    Missing(String),
    #[error("secret \"{0}\" cannot be placed in an HTTP header (it contains control characters)")]
    NotHeaderSafe(String),
}

/// `format` with `{secret}` replaced, in memory that is wiped on drop.
fn formatted(format: &str, secret: &SecretBytes) -> zeroize::Zeroizing<Vec<u8>> {
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(format.len() + secret.len()));
    let (pre, post) = format.split_once("{secret}").unwrap_or(("", ""));
    out.extend_from_slice(pre.as_bytes());
    out.extend_from_slice(secret.expose());
    out.extend_from_slice(post.as_bytes());
    out
}

/// Applies `plan` to `headers` and `target` (path and query).
/// `values` gives each secret's current value by name (a static one from the vault, or a token
/// minted for this request).
pub fn apply<'v>(
    plan: &[Injection],
    decls: &SecretIndex,
    values: impl Fn(&str) -> Option<&'v SecretBytes>,
    headers: &mut HeaderMap,
    target: &mut String,
) -> Result<(), InjectError> {
    for inj in plan {
        let decl = &decls.decls[inj.secret];
        let value = values(&decl.name).ok_or_else(|| InjectError::Missing(decl.name.clone()))?;
        match &inj.slot {
            Slot::Header(name) => {
                let v = formatted(&decl.format, value);
                let mut hv = HeaderValue::from_bytes(&v).map_err(|_| InjectError::NotHeaderSafe(decl.name.clone()))?;
                hv.set_sensitive(true);
                let name = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| InjectError::NotHeaderSafe(decl.name.clone()))?;
                headers.insert(name, hv);
            }
            Slot::Basic { user } => {
                let mut creds = zeroize::Zeroizing::new(format!("{user}:").into_bytes());
                // A secret declared for the Authorization header either way is the bare password here.
                let format = if matches!(decl.slot, Slot::Basic { .. }) {
                    decl.format.as_str()
                } else {
                    "{secret}"
                };
                creds.extend_from_slice(&formatted(format, value));
                let b64 = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*creds));
                let mut hv = HeaderValue::from_str(&format!("Basic {}", &*b64))
                    .map_err(|_| InjectError::NotHeaderSafe(decl.name.clone()))?;
                hv.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, hv);
            }
            // The core resolves it to the header or basic slot the agent used.
            Slot::Authorization { .. } => return Err(InjectError::Missing(decl.name.clone())),
            // AWS keys are never injected: the request is signed again (`outbound`).
            Slot::AwsSignature => return Err(InjectError::Missing(decl.name.clone())),
            Slot::Query(key) => {
                let v = formatted(&decl.format, value);
                let encoded = zeroize::Zeroizing::new(percent_encoding::percent_encode(&v, QUERY_VALUE).to_string());
                let (path, query) = target.split_once('?').unwrap_or((target.as_str(), ""));
                let rebuilt: Vec<String> = query
                    .split('&')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                        let dk = airlock_core::inject::percent_decode(&k.replace('+', " "));
                        let dv = airlock_core::inject::percent_decode(&v.replace('+', " "));
                        if &dk == key && dv == decl.placeholder {
                            format!("{k}={}", &*encoded)
                        } else {
                            kv.to_string()
                        }
                    })
                    .collect();
                let new_target = format!("{path}?{}", rebuilt.join("&"));
                // Overwrite in place, then wipe the old buffer.
                let old = std::mem::replace(target, new_target);
                drop(zeroize::Zeroizing::new(old));
            }
        }
    }
    Ok(())
}
