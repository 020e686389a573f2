//! The injection plan: which real credential goes into which slot of this request — or
//! why none may. The plan names secrets; it never holds their bytes (the vault fills
//! them in, and only after the policy allowed the request).
//!
//! Rules (DESIGN.md invariants 3 and 4):
//! - a placeholder is replaced only inside its secret's declared slot (one header, one
//!   query parameter, or basic-auth credentials), never in the path, another header or
//!   the body, where the API itself could publish the real value;
//! - only toward the secret's bound hosts, only for an agent granted that secret, only
//!   over TLS unless the secret sets `allow_http`;
//! - a placeholder found anywhere in a request toward a host the secret is not bound to is
//!   an exfiltration attempt: the request is refused before anything is dialed.

use aho_corasick::AhoCorasick;
use base64::Engine;
use serde::Serialize;

use crate::facts::Scheme;
use crate::glob::HostPattern;

/// Where a secret goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// A header (lower-case name); its whole value becomes `format` with the secret.
    Header(String),
    /// A query parameter whose value is the placeholder.
    Query(String),
    /// `Authorization: Basic` with this user and the secret as password.
    Basic { user: String },
    /// The `Authorization` header either way the agent sent the placeholder: as its value
    /// (`format`, e.g. `Bearer {secret}`) or as a Basic password (then `basic_user:secret`).
    Authorization { basic_user: String },
    /// An AWS Signature V4 signature made with the placeholder key id: the `Authorization`
    /// header, or a presigned URL's `X-Amz-Credential`. Nothing is replaced; the gateway checks
    /// the signature and signs the request again with the real keys.
    AwsSignature,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretDecl {
    pub name: String,
    pub hosts: Vec<HostPattern>,
    pub slot: Slot,
    /// Contains `{secret}` once; default `{secret}`.
    pub format: String,
    pub placeholder: String,
    pub env: Option<String>,
    pub allow_http: bool,
}

impl SecretDecl {
    pub fn bound_to(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h.matches(host))
    }
}

/// The declared secrets with a matcher over all their placeholders.
#[derive(Debug, Clone)]
pub struct SecretIndex {
    pub decls: Vec<SecretDecl>,
    finder: Option<AhoCorasick>,
    /// For header names, which HTTP/2 lower-cases and HTTP/1.1 compares without case: a
    /// placeholder used as a name arrives in whatever case the agent's library chose.
    finder_ci: Option<AhoCorasick>,
}

/// One injection: secret `secret` (index into the declarations) into `slot`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Injection {
    pub secret: usize,
    pub name: String,
    pub slot: Slot,
}

/// Why no request may be sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// A placeholder headed to a host its secret is not bound to.
    Exfiltration { secret: String, location: String },
    /// The agent is not granted the secret whose placeholder it sent.
    NotGranted { secret: String },
    /// Injection would happen over plain HTTP.
    PlainHttp { secret: String },
}

impl Refusal {
    pub fn reason(&self, host: &str) -> String {
        match self {
            Refusal::Exfiltration { secret, location } => format!(
                "exfiltration blocked: the placeholder of secret \"{secret}\" was sent to {host} in {location}, \
                 which is not one of its bound hosts"
            ),
            Refusal::NotGranted { secret } => format!("this agent is not granted secret \"{secret}\""),
            Refusal::PlainHttp { secret } => {
                format!("secret \"{secret}\" is only injected over HTTPS (set allow_http = true to permit plain HTTP)")
            }
        }
    }
}

/// The parts of a request the plan reads.
pub struct RequestView<'a> {
    pub scheme: Scheme,
    pub host: &'a str,
    /// Raw request target (path and query) as sent.
    pub target: &'a str,
    /// Header names lower-case.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body when it was read; a streamed body is scanned by the edge as it passes.
    pub body: Option<&'a [u8]>,
}

impl SecretIndex {
    pub fn new(decls: Vec<SecretDecl>) -> Self {
        let patterns = || decls.iter().map(|d| d.placeholder.as_bytes());
        let (finder, finder_ci) = if decls.is_empty() {
            (None, None)
        } else {
            (
                AhoCorasick::new(patterns()).ok(),
                AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(patterns())
                    .ok(),
            )
        };
        SecretIndex {
            decls,
            finder,
            finder_ci,
        }
    }

    pub fn get(&self, name: &str) -> Option<&SecretDecl> {
        self.decls.iter().find(|d| d.name == name)
    }

    /// Indices of the secrets whose placeholder occurs in `hay`.
    pub fn find(&self, hay: &[u8]) -> Vec<usize> {
        Self::find_with(self.finder.as_ref(), hay)
    }

    /// Indices of the secrets whose placeholder occurs in `hay` in any ASCII case (header and
    /// trailer names).
    pub fn find_in_name(&self, hay: &[u8]) -> Vec<usize> {
        Self::find_with(self.finder_ci.as_ref(), hay)
    }

    fn find_with(finder: Option<&AhoCorasick>, hay: &[u8]) -> Vec<usize> {
        let Some(f) = finder else { return vec![] };
        let mut v: Vec<usize> = f.find_overlapping_iter(hay).map(|m| m.pattern().as_usize()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Computes the injection plan for `agent_secrets` (names the agent is granted).
    pub fn plan(&self, agent_secrets: &[String], req: &RequestView<'_>) -> Result<Vec<Injection>, Refusal> {
        if self.finder.is_none() {
            return Ok(vec![]);
        }
        let mut in_slot: Vec<usize> = Vec::new();
        let mut seen: Vec<(usize, String)> = Vec::new();
        let basic = req
            .headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .and_then(|(_, v)| decode_basic(v));

        for (name, value) in req.headers {
            for i in self.find_in_name(name.as_bytes()) {
                seen.push((i, "a header name".into()));
            }
            for i in self.find(value) {
                let d = &self.decls[i];
                let here = match &d.slot {
                    Slot::Header(h) => h == name,
                    Slot::Authorization { .. } | Slot::AwsSignature => *name == "authorization",
                    _ => false,
                };
                if here {
                    in_slot.push(i)
                } else {
                    seen.push((i, format!("header {name}")))
                }
            }
        }
        if let Some(creds) = &basic {
            for i in self.find(creds.as_bytes()) {
                let d = &self.decls[i];
                let pw_is_placeholder = creds.split_once(':').is_some_and(|(_, pw)| pw == d.placeholder);
                if matches!(d.slot, Slot::Basic { .. } | Slot::Authorization { .. }) && pw_is_placeholder {
                    in_slot.push(i);
                } else {
                    seen.push((i, "basic credentials".into()));
                }
            }
        }
        let (path, query) = req.target.split_once('?').unwrap_or((req.target, ""));
        // The raw and the decoded path: `/%61irlock-…` is the placeholder to an upstream.
        let decoded = percent_decode(path);
        for i in self
            .find(path.as_bytes())
            .into_iter()
            .chain(self.find(decoded.as_bytes()))
        {
            seen.push((i, "the path".into()));
        }
        for (k, v) in query_pairs(query) {
            for i in self.find(v.as_bytes()).into_iter().chain(self.find(k.as_bytes())) {
                let d = &self.decls[i];
                let here = match &d.slot {
                    Slot::Query(q) => *q == k && v == d.placeholder,
                    // A presigned URL: whether the placeholder is the key id is the gateway's check.
                    Slot::AwsSignature => k == "X-Amz-Credential",
                    _ => false,
                };
                if here {
                    in_slot.push(i)
                } else {
                    seen.push((i, format!("query parameter {k}")))
                }
            }
        }
        if let Some(body) = req.body {
            for i in self.find(body) {
                seen.push((i, "the body".into()));
            }
        }

        // Any placeholder toward a host its secret is not bound to: refuse before dialing.
        let everywhere = seen
            .iter()
            .map(|(i, l)| (*i, l.as_str()))
            .chain(in_slot.iter().map(|i| (*i, "its slot")));
        for (i, loc) in everywhere {
            let d = &self.decls[i];
            if !d.bound_to(req.host) {
                return Err(Refusal::Exfiltration {
                    secret: d.name.clone(),
                    location: loc.to_string(),
                });
            }
        }
        in_slot.sort_unstable();
        in_slot.dedup();
        let mut plan = Vec::with_capacity(in_slot.len());
        for i in in_slot {
            let d = &self.decls[i];
            if !agent_secrets.iter().any(|s| s == &d.name) {
                return Err(Refusal::NotGranted { secret: d.name.clone() });
            }
            if req.scheme == Scheme::Http && !d.allow_http {
                return Err(Refusal::PlainHttp { secret: d.name.clone() });
            }
            let slot = match &d.slot {
                Slot::Authorization { basic_user } if basic.is_some() => Slot::Basic {
                    user: basic_user.clone(),
                },
                Slot::Authorization { .. } => Slot::Header("authorization".into()),
                s => s.clone(),
            };
            plan.push(Injection {
                secret: i,
                name: d.name.clone(),
                slot,
            });
        }
        Ok(plan)
    }
}

/// Percent-decodes for scanning (invalid UTF-8 replaced: the placeholder is ASCII).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// `a=1&b=2` as decoded pairs (`+` is a space in form-style queries).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// `Basic dXNlcjpwYXNz` → `user:pass`, when well-formed.
fn decode_basic(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let (scheme, b64) = s.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    String::from_utf8(raw).ok()
}
