//! Stage 5, injection: the agent's request becomes the upstream request — hop-by-hop headers
//! dropped, the credential put into the one slot the plan names (`credentials::apply`, the only
//! place real values enter a request), the URI built from the canonical host the policy decided
//! on, and a streamed remainder scanned for placeholders as it passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use airlock_core::facts::Scheme;
use airlock_credentials::aws::{AwsKeys, ChunkError, ChunkSigner, ResignError};
use airlock_vault::{Scrubber, SecretBytes};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Version, header};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;

use crate::answer::{empty, full};
use crate::body::{AgentBody, Chain, Prefetched, ScannedRest, SignedChunks, boxed};
use crate::conn::{Conn, default_port, strip_hop_by_hop};
use crate::decide::Decided;
use crate::facts::Inbound;
use crate::metrics::Metrics;
use crate::record::{Record, Stop, deny};
use crate::upstream::UpBody;

/// The request ready to send, and what the later stages need to know about it.
pub(crate) struct Outbound {
    pub(crate) req: Request<UpBody>,
    /// Set when the streamed remainder carried a placeholder bound elsewhere.
    pub(crate) tripped: Option<Arc<AtomicBool>>,
    pub(crate) agent_h2: bool,
    pub(crate) sent: Sent,
}

/// Tokens minted for this request's dynamic credentials (OAuth2, GitHub App), and what scrubs
/// them from the response.
#[derive(Default)]
pub(crate) struct Minted {
    values: HashMap<String, SecretBytes>,
    /// The real keys of the AWS secrets whose placeholder signed this request (re-signed, not injected).
    aws: HashMap<String, Arc<AwsKeys>>,
    scrubber: Option<Scrubber>,
}

impl Minted {
    fn scrub_too(&mut self, s: &Scrubber) {
        self.scrubber = Some(match &self.scrubber {
            Some(prev) => prev.then(s),
            None => s.clone(),
        });
    }
}

/// Obtains the current token of each dynamic credential the plan injects (cached, or refreshed
/// single-flight). A credential that cannot be had refuses the request with 502, naming it.
pub(crate) async fn mint<B: AgentBody>(conn: &Conn, req: &Inbound<B>, d: &Decided) -> Result<Minted, Stop> {
    let state = &conn.state;
    let Some(tokens) = &state.tokens else {
        return Ok(Minted::default());
    };
    let mut minted = Minted::default();
    for inj in req.plan.iter().filter(|i| tokens.is_dynamic(&i.name)) {
        let got = match tokens.is_aws(&inj.name) {
            true => tokens.aws_keys(&inj.name).await.map(|k| {
                minted.scrub_too(&k.scrubber);
                minted.aws.insert(inj.name.clone(), k);
            }),
            false => tokens.current(&inj.name).await.map(|c| {
                minted.scrub_too(&c.scrubber);
                minted.values.insert(inj.name.clone(), c.token.clone());
            }),
        };
        if let Err(e) = got {
            Metrics::inc(&state.metrics.denied);
            let ev = req.rec.event(
                "request",
                &deny(e.to_string(), d.decision.rule.clone()),
                d.rules.clone(),
                vec![],
            );
            return Err(Stop::refused(
                state,
                ev,
                StatusCode::BAD_GATEWAY,
                "deny",
                d.decision.rule.as_deref(),
            ));
        }
    }
    Ok(minted)
}

/// What the response stage needs of a request once it is sent.
pub(crate) struct Sent {
    pub(crate) rec: Record,
    /// Names of the injected secrets (for the audit record).
    pub(crate) injected: Vec<String>,
    /// The agent's side of a WebSocket upgrade.
    pub(crate) upgrade: Option<OnUpgrade>,
    pub(crate) bytes_in: u64,
    pub(crate) head: bool,
    /// Scrubs the tokens minted for this request (the agent's scrubber covers static values).
    pub(crate) scrubber: Option<Scrubber>,
}

pub(crate) fn prepare<B: AgentBody>(
    conn: &Conn,
    req: Inbound<B>,
    d: &Decided,
    mut minted: Minted,
) -> Result<Outbound, Stop> {
    let state = &conn.state;
    let Inbound {
        rec,
        policy: _,
        facts,
        target,
        mut parts,
        body,
        plan,
        upgrade,
        agent_h2,
    } = req;
    let mut up_target = target;
    strip_hop_by_hop(&mut parts.headers, upgrade.is_some());
    parts.headers.remove(header::HOST);
    let ids = state.identities();
    let dynamic = |name: &str| state.tokens.as_ref().is_some_and(|t| t.is_dynamic(name));
    // A dynamic credential's vault entry (a refresh token, a private key) is never injected.
    let value = |name: &str| match dynamic(name) {
        true => minted.values.get(name),
        false => ids.values.get(name),
    };
    // AWS placeholders are not replaced: the request they signed is signed again (below).
    let (signed_by, plan): (Vec<_>, Vec<_>) = plan.into_iter().partition(|i| minted.aws.contains_key(&i.name));
    let injected: Vec<String> = signed_by.iter().chain(&plan).map(|i| i.name.clone()).collect();
    if let Err(e) = crate::credentials::apply(&plan, &state.secrets, value, &mut parts.headers, &mut up_target) {
        Metrics::inc(&state.metrics.denied);
        let ev = rec.event(
            "request",
            &deny(e.to_string(), d.decision.rule.clone()),
            d.rules.clone(),
            vec![],
        );
        return Err(Stop::refused(
            state,
            ev,
            StatusCode::FORBIDDEN,
            "deny",
            d.decision.rule.as_deref(),
        ));
    }
    if !injected.is_empty() {
        state
            .metrics
            .injections
            .fetch_add(injected.len() as u64, Ordering::Relaxed);
        // Compressed responses would hide an echoed secret from the scrubber.
        parts
            .headers
            .insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    // The canonical host, never the agent's spelling of it: the dial sees what the policy saw.
    let (host, port, scheme) = (&facts.host, facts.port, facts.scheme);
    let authority = match (host.contains(':'), port == default_port(scheme)) {
        (true, true) => format!("[{host}]"),
        (true, false) => format!("[{host}]:{port}"),
        (false, true) => host.clone(),
        (false, false) => format!("{host}:{port}"),
    };
    let scheme_str = if scheme == Scheme::Https { "https" } else { "http" };
    let mut uri: http::Uri = match format!("{scheme_str}://{authority}{up_target}").parse() {
        Ok(u) => u,
        Err(_) => {
            let refusal = deny("the request target is not a valid URI".into(), None);
            let ev = rec.event("request", &refusal, d.rules.clone(), vec![]);
            return Err(Stop::refused(state, ev, StatusCode::BAD_REQUEST, "deny", None));
        }
    };
    drop(zeroize::Zeroizing::new(up_target));
    let mut chunk_signer = None;
    for inj in &signed_by {
        let whole: Option<&[u8]> = match &body {
            Prefetched::Empty => Some(&[]),
            Prefetched::Full(b) => Some(b),
            Prefetched::Partial(..) => None,
        };
        let (keys, decl) = (&minted.aws[&inj.name], &state.secrets.decls[inj.secret]);
        let (method, at) = (parts.method.as_str(), std::time::SystemTime::now());
        // A presigned URL's signature is in the query, which signing again rewrites.
        let mut target = uri.to_string();
        let signed = airlock_credentials::aws::resign_request(
            keys,
            &decl.placeholder,
            method,
            &mut target,
            &mut parts.headers,
            whole,
            at,
        )
        .and_then(|r| Ok((r, target.parse::<http::Uri>().map_err(|_| ResignError::Signing)?)));
        let e = match signed {
            Ok((r, resigned_uri)) => {
                if let Some(s) = &r.scrubber {
                    minted.scrub_too(s);
                }
                chunk_signer = r.chunks.or(chunk_signer);
                uri = resigned_uri;
                continue;
            }
            Err(e) => e,
        };
        Metrics::inc(&state.metrics.denied);
        let reason = format!("AWS secret \"{}\" was not used: {e}", inj.name);
        let ev = rec.event(
            "request",
            &deny(reason, d.decision.rule.clone()),
            d.rules.clone(),
            vec![],
        );
        let status = match e {
            ResignError::NotPlaceholder | ResignError::PresignedSignature | ResignError::PresignedExpired => {
                StatusCode::FORBIDDEN
            }
            ResignError::UnhashedBody => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        return Err(Stop::refused(state, ev, status, "deny", d.decision.rule.as_deref()));
    }
    // An S3 signed-chunk upload: its chunk signatures follow the new seed signature.
    let (body, streaming) = match chunk_signer {
        None => (body, None),
        Some(signer) => match sign_chunks(signer, body) {
            Ok(signed) => signed,
            Err(e) => {
                Metrics::inc(&state.metrics.denied);
                let reason = format!("the AWS signature was not replaced: {e}");
                let ev = rec.event(
                    "request",
                    &deny(reason, d.decision.rule.clone()),
                    d.rules.clone(),
                    vec![],
                );
                let rule = d.decision.rule.as_deref();
                return Err(Stop::refused(state, ev, StatusCode::BAD_REQUEST, "deny", rule));
            }
        },
    };
    let mut tripped = None;
    let mut bytes_in = 0;
    let up_body = match body {
        Prefetched::Empty => empty(),
        Prefetched::Full(b) => {
            bytes_in = b.len() as u64;
            full(b)
        }
        Prefetched::Partial(head, rest) => {
            bytes_in = head.len() as u64;
            let secrets = state.secrets.clone();
            let dest = host.clone();
            let keep = secrets.decls.iter().map(|d| d.placeholder.len()).max().unwrap_or(1);
            let forbidden =
                Box::new(move |w: &[u8]| secrets.find(w).into_iter().any(|i| !secrets.decls[i].bound_to(&dest)));
            let rest = ScannedRest::new(rest, &head, keep, forbidden);
            tripped = Some(rest.tripped.clone());
            let full = |b| http_body_util::Full::new(b).map_err(|never| match never {});
            match streaming {
                None => boxed(Chain::new(full(head), rest)),
                Some((signed, signer)) => boxed(Chain::new(full(signed), SignedChunks::new(rest, signer))),
            }
        }
    };
    let head = parts.method == http::Method::HEAD;
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    Ok(Outbound {
        req: Request::from_parts(parts, up_body),
        tripped,
        agent_h2,
        sent: Sent {
            rec,
            injected,
            upgrade,
            bytes_in,
            head,
            scrubber: minted.scrubber,
        },
    })
}

/// The head of a signed-chunk body, signed again, and the signer for its streamed rest.
type Streaming = Option<(Bytes, ChunkSigner)>;

/// Signs again what was read of a signed-chunk body: all of it, or the head of a longer one.
/// For a longer one the agent's head is kept (the streamed rest is scanned after it) and the
/// signed head comes back with the signer, which signs the rest as it streams. Bad framing in
/// what was read refuses the request.
fn sign_chunks<B>(mut signer: ChunkSigner, body: Prefetched<B>) -> Result<(Prefetched<B>, Streaming), ChunkError> {
    Ok(match body {
        Prefetched::Empty => (Prefetched::Full(signer.sign_whole(&[])?.into()), None),
        Prefetched::Full(b) => (Prefetched::Full(signer.sign_whole(&b)?.into()), None),
        Prefetched::Partial(head, rest) => {
            let signed = signer.push(&head)?.into();
            (Prefetched::Partial(head, rest), Some((signed, signer)))
        }
    })
}
