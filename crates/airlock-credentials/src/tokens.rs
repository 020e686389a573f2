//! The current token of each dynamic credential, for the gateway's injection stage.
//!
//! A cached token is returned without IO, so an OAuth2 request costs what a static key does.
//! When it is due (a quarter of its lifetime, at most a minute, before it expires), one refresh
//! happens however many requests wait: in this process a per-credential mutex (the waiters then
//! find the new token, or share the one failure); across replicas sharing the store a lease row
//! (`Store::credential_lease`), so only its holder calls the token endpoint while the others poll
//! the store for the token it commits. The new access token and a rotated refresh token are
//! sealed and written in one transaction with the lease's release: a replica that dies halfway
//! leaves the old, still valid refresh token in place.
//!
//! A refused refresh marks the connection `needs_consent` in the store (shown by `airlock secret
//! list`); the gateway then fails fast, naming the connection, until `airlock connect` is run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use airlock_config::{Config, Credential, CredentialKind, SecretRef};
use airlock_store::{NEEDS_CONSENT, SecretRow, Store};
use airlock_vault::{Scrubber, SealedSecret, SecretBytes, Vault};

use crate::aws::AwsKeys;
use crate::oauth2::{Grant, GrantError};

/// How long one replica may hold the refresh lease.
const LEASE: Duration = Duration::from_secs(30);
/// How often a replica waiting for another's refresh looks for its result.
const POLL: Duration = Duration::from_millis(100);
/// At most this long before expiry, a token is refreshed.
const MARGIN_MS: i64 = 60_000;
/// AWS keys are read from the store again after this long, so a rotated key takes effect.
const AWS_KEYS_TTL: Duration = Duration::from_secs(300);

struct AwsEntry {
    cfg: airlock_config::Aws,
    placeholder: String,
    /// The keys in use and until when.
    loaded: Mutex<Option<(Instant, Arc<AwsKeys>)>>,
    flight: tokio::sync::Mutex<()>,
    /// The last failed load: requests that waited for it share its outcome.
    failed: Mutex<Option<(Instant, TokenError)>>,
}

/// The vault entry caching a credential's current access token.
pub fn access_row_name(name: &str) -> String {
    format!("{name}#access")
}

/// Why a request cannot have its credential. Names the connection, never a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("credential \"{0}\" is not connected yet (run: airlock connect {0})")]
    NotConnected(String),
    #[error("credential \"{0}\" needs re-consent: its grant was refused (run: airlock connect {0})")]
    NeedsConsent(String),
    #[error("credential \"{name}\" could not be refreshed: {reason}")]
    Failed { name: String, reason: String },
}

/// A credential's token as injected now, with what scrubs it (and its predecessor) from responses.
pub struct Current {
    pub token: SecretBytes,
    /// After this (ms since the epoch) the token is refreshed; `None`: it does not expire.
    pub refresh_at_ms: Option<i64>,
    pub scrubber: Scrubber,
}

struct Entry {
    cred: Credential,
    placeholder: Vec<u8>,
    current: Mutex<Option<Arc<Current>>>,
    flight: tokio::sync::Mutex<()>,
    /// The last failed refresh: requests that waited for it share its outcome.
    failed: Mutex<Option<(Instant, TokenError)>>,
}

pub struct Tokens {
    store: Store,
    /// `kind = "aws"` secrets: real keys, loaded once and kept for [`AWS_KEYS_TTL`].
    aws: HashMap<String, AwsEntry>,
    vault: Arc<Vault>,
    http: reqwest::Client,
    /// This process, as the holder of refresh leases.
    holder: String,
    entries: HashMap<String, Entry>,
    /// Token requests made by this process (for metrics and tests).
    pub minted: std::sync::atomic::AtomicU64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Tokens {
    /// The dynamic credentials of `cfg`; `None` when it declares none.
    pub fn new(cfg: &Config, store: Store, vault: Arc<Vault>) -> Option<Tokens> {
        if cfg.credentials.is_empty() {
            return None;
        }
        let aws = cfg
            .credentials
            .iter()
            .filter_map(|c| {
                let CredentialKind::Aws(a) = &c.kind else { return None };
                let entry = AwsEntry {
                    cfg: a.clone(),
                    placeholder: cfg.secrets.get(&c.name)?.placeholder.clone(),
                    loaded: Mutex::new(None),
                    flight: tokio::sync::Mutex::new(()),
                    failed: Mutex::new(None),
                };
                Some((c.name.clone(), entry))
            })
            .collect();
        let entries = cfg
            .credentials
            .iter()
            .filter(|c| !matches!(c.kind, CredentialKind::Aws(_)))
            .filter_map(|c| {
                let decl = cfg.secrets.get(&c.name)?;
                Some((
                    c.name.clone(),
                    Entry {
                        cred: c.clone(),
                        placeholder: decl.placeholder.as_bytes().to_vec(),
                        current: Mutex::new(None),
                        flight: tokio::sync::Mutex::new(()),
                        failed: Mutex::new(None),
                    },
                ))
            })
            .collect();
        Some(Tokens {
            store,
            aws,
            vault,
            http: crate::oauth2::client(),
            holder: crate::pkce::state(),
            entries,
            minted: Default::default(),
        })
    }

    /// True when secret `name` is minted here rather than sealed as a static value.
    pub fn is_dynamic(&self, name: &str) -> bool {
        self.entries.contains_key(name) || self.aws.contains_key(name)
    }

    /// True when secret `name` is AWS keys: requests are re-signed, not given a token.
    pub fn is_aws(&self, name: &str) -> bool {
        self.aws.contains_key(name)
    }

    /// The keys that re-sign requests for AWS secret `name`: its real keys (read from the store
    /// at most every few minutes) or, with `role_arn`, the role's temporary keys, assumed with
    /// them and kept until shortly before they expire. One load at a time: requests that waited
    /// for a failed one share its failure.
    pub async fn aws_keys(&self, name: &str) -> Result<Arc<AwsKeys>, TokenError> {
        let Some(e) = self.aws.get(name) else {
            return Err(TokenError::NotConnected(name.to_string()));
        };
        let fresh = |e: &AwsEntry| {
            lock(&e.loaded)
                .as_ref()
                .filter(|(until, _)| Instant::now() < *until)
                .map(|(_, k)| k.clone())
        };
        if let Some(k) = fresh(e) {
            return Ok(k);
        }
        let arrived = Instant::now();
        let _flight = e.flight.lock().await;
        if let Some(k) = fresh(e) {
            return Ok(k);
        }
        if let Some((at, err)) = lock(&e.failed).clone()
            && at >= arrived
        {
            return Err(err);
        }
        let out = self.load_aws(name, e).await;
        match &out {
            Ok((until, k)) => *lock(&e.loaded) = Some((*until, k.clone())),
            Err(err) => *lock(&e.failed) = Some((Instant::now(), err.clone())),
        }
        out.map(|(_, k)| k)
    }

    /// The keys of AWS secret `name` and until when they are used.
    async fn load_aws(&self, name: &str, e: &AwsEntry) -> Result<(Instant, Arc<AwsKeys>), TokenError> {
        let failed = |reason: String| TokenError::Failed {
            name: name.to_string(),
            reason,
        };
        let secret = self.resolve(&SecretRef::Vault(name.to_string())).await.map_err(|_| {
            failed(format!(
                "its secret access key is not set (run: airlock secret set {name})"
            ))
        })?;
        let key_id = self.resolve(&e.cfg.access_key_id).await.map_err(failed)?;
        let token = match &e.cfg.session_token {
            Some(r) => Some(self.resolve(r).await.map_err(failed)?),
            None => None,
        };
        let (placeholder, secret_placeholder) = (&e.placeholder, &e.cfg.secret_placeholder);
        let base = AwsKeys::new(&key_id, &secret, token.as_ref(), placeholder, secret_placeholder)
            .map_err(|why| failed(why.to_string()))?;
        let Some(role) = &e.cfg.assume_role else {
            return Ok((Instant::now() + AWS_KEYS_TTL, Arc::new(base)));
        };
        self.minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let assumed = crate::aws::assume_role(&self.http, &base, role, std::time::SystemTime::now())
            .await
            .map_err(|why| {
                // STS's own message, in case it quotes a key id.
                let why = base
                    .scrubber
                    .scrub_once(why.as_bytes())
                    .map_or(why, |s| String::from_utf8_lossy(&s).into());
                tracing::warn!(credential = %name, reason = %why, "AssumeRole failed");
                failed(why)
            })?;
        let now = now_ms();
        if assumed.expires_ms <= now {
            return Err(failed(
                "STS issued keys that have already expired (is this host's clock right?)".into(),
            ));
        }
        let keys = AwsKeys::new(
            &assumed.key_id,
            &assumed.secret,
            Some(&assumed.token),
            placeholder,
            secret_placeholder,
        )
        .map_err(|why| failed(why.to_string()))?;
        // An upstream may still echo the base keys or the session just replaced.
        let prev = lock(&e.loaded).as_ref().map(|(_, k)| k.clone());
        let keys = match &prev {
            Some(p) => keys.scrubbing_too(&[&base, p]),
            None => keys.scrubbing_too(&[&base]),
        };
        let wait = crate::aws::sts::refresh_at(now, assumed.expires_ms) - now;
        tracing::info!(credential = %name, role = %role.role_arn, valid_for_s = wait / 1000, "assumed the AWS role");
        let until = Instant::now() + Duration::from_millis(u64::try_from(wait).unwrap_or(0));
        Ok((until, Arc::new(keys)))
    }

    /// The current token of `name`, refreshed first when it is due.
    pub async fn current(&self, name: &str) -> Result<Arc<Current>, TokenError> {
        let Some(e) = self.entries.get(name) else {
            return Err(TokenError::NotConnected(name.to_string()));
        };
        if let Some(c) = cached(e, now_ms()) {
            return Ok(c);
        }
        let arrived = Instant::now();
        let _flight = e.flight.lock().await;
        if let Some(c) = cached(e, now_ms()) {
            return Ok(c);
        }
        if let Some((at, err)) = lock(&e.failed).clone()
            && at >= arrived
        {
            return Err(err);
        }
        let out = self.obtain(e).await;
        match &out {
            Ok(c) => *lock(&e.current) = Some(c.clone()),
            Err(err) => *lock(&e.failed) = Some((Instant::now(), err.clone())),
        }
        out
    }

    fn failed(&self, e: &Entry, reason: impl Into<String>) -> TokenError {
        TokenError::Failed {
            name: e.cred.name.clone(),
            reason: reason.into(),
        }
    }

    /// The store's token if it is fresh, else one this replica mints under the lease, else the
    /// one another replica commits meanwhile.
    async fn obtain(&self, e: &Entry) -> Result<Arc<Current>, TokenError> {
        let name = &e.cred.name;
        let deadline = Instant::now() + LEASE + Duration::from_secs(5);
        loop {
            let stored = self.stored_access(e).await?;
            if let Some(c) = &stored
                && c.refresh_at_ms.is_none_or(|t| t > now_ms())
            {
                return Ok(self.current_from(e, c.token.expose().to_vec(), c.refresh_at_ms));
            }
            let statuses = self
                .store
                .credential_statuses()
                .await
                .map_err(|_| self.failed(e, "the store is unavailable"))?;
            if statuses.iter().any(|(n, s)| n == name && s == NEEDS_CONSENT) {
                return Err(TokenError::NeedsConsent(name.clone()));
            }
            let now = now_ms();
            let until = now + i64::try_from(LEASE.as_millis()).unwrap_or(30_000);
            let leased = self
                .store
                .credential_lease(name, &self.holder, now, until)
                .await
                .map_err(|_| self.failed(e, "the store is unavailable"))?;
            if leased {
                return self.mint_and_commit(e).await;
            }
            if Instant::now() > deadline {
                return Err(self.failed(e, "another gateway replica is still refreshing it"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Under the lease: mints a token and commits it (with a rotated refresh token).
    async fn mint_and_commit(&self, e: &Entry) -> Result<Arc<Current>, TokenError> {
        let name = &e.cred.name;
        // A replica may have committed between our read and our lease.
        if let Some(c) = self.stored_access(e).await?
            && c.refresh_at_ms.is_none_or(|t| t > now_ms())
        {
            let _ = self
                .store
                .credential_commit(name, &self.holder, &[], "", now_ms())
                .await;
            return Ok(self.current_from(e, c.token.expose().to_vec(), c.refresh_at_ms));
        }
        let base = self
            .store
            .get_secret(name)
            .await
            .map_err(|_| self.failed(e, "the store is unavailable"))?;
        let grant = match &base {
            None => Err(TokenError::NotConnected(name.clone())),
            Some(row) => match self.vault.open(&sealed(row)) {
                Err(_) => Err(self.failed(e, "its sealed value cannot be opened")),
                Ok(sealed_value) => {
                    self.minted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.mint(e, &sealed_value).await
                }
            },
        };
        let now = now_ms();
        let grant = match grant {
            Ok(g) => g,
            Err(err) => {
                let status = if matches!(err, TokenError::NeedsConsent(_)) {
                    NEEDS_CONSENT
                } else {
                    ""
                };
                if !status.is_empty() {
                    tracing::warn!(credential = %name, "grant refused: the connection needs re-consent");
                }
                let _ = self.store.credential_commit(name, &self.holder, &[], status, now).await;
                return Err(err);
            }
        };
        let refresh_at = refresh_at(now, grant.expires_in);
        let mut rows = vec![self.access_row(e, &grant.access, refresh_at, now).await?];
        if let (Some(rt), Some(base)) = (&grant.refresh, &base) {
            let version = u32::try_from(base.version + 1).map_err(|_| self.failed(e, "version overflow"))?;
            rows.push(row(&self.vault.seal(name, version, rt), now));
        }
        let committed = self
            .store
            .credential_commit(name, &self.holder, &rows, "", now)
            .await
            .map_err(|_| self.failed(e, "the store is unavailable"))?;
        if !committed {
            return Err(self.failed(e, "the refresh lease expired before the token was stored"));
        }
        Ok(self.current_from(e, grant.access.expose().to_vec(), refresh_at))
    }

    async fn mint(&self, e: &Entry, sealed_value: &SecretBytes) -> Result<Grant, TokenError> {
        let name = &e.cred.name;
        let result = match &e.cred.kind {
            CredentialKind::OAuth2(o) => {
                let secret = match &o.client_secret {
                    None => None,
                    Some(r) => Some(self.resolve(r).await.map_err(|why| self.failed(e, why))?),
                };
                crate::oauth2::refresh(&self.http, o, secret.as_ref(), sealed_value).await
            }
            CredentialKind::Aws(_) => return Err(self.failed(e, "AWS keys are not minted")),
            CredentialKind::GithubApp(app) => {
                let key = crate::jwt::key_pair(sealed_value).map_err(|why| self.failed(e, why.to_string()))?;
                let now = now_ms() / 1000;
                let jwt = crate::jwt::app_jwt(&app.app_id, &key, now).map_err(|why| self.failed(e, why.to_string()))?;
                crate::github::installation_token(&self.http, app, &jwt, now).await
            }
        };
        let github = matches!(e.cred.kind, CredentialKind::GithubApp(_));
        result.map_err(|err| match err {
            // No consent to renew: the App's key, id or installation must be fixed.
            GrantError::Refused(why) if github => self.failed(
                e,
                format!("{why}; check app_id, installation_id and the sealed private key"),
            ),
            GrantError::Refused(why) => {
                tracing::warn!(credential = %name, reason = %why, "token grant refused");
                TokenError::NeedsConsent(name.clone())
            }
            GrantError::Failed(why) => self.failed(e, why),
        })
    }

    /// A client secret from its reference.
    pub async fn resolve(&self, r: &SecretRef) -> Result<SecretBytes, String> {
        match r {
            SecretRef::Env(n) => match std::env::var(n) {
                Ok(v) if !v.is_empty() => Ok(SecretBytes::new(v.into_bytes())),
                _ => Err(format!("environment variable {n} is not set")),
            },
            SecretRef::Vault(n) => {
                let row = self
                    .store
                    .get_secret(n)
                    .await
                    .map_err(|_| "the store is unavailable".to_string())?;
                let row = row.ok_or_else(|| format!("no secret {n:?} in the vault"))?;
                self.vault
                    .open(&sealed(&row))
                    .map_err(|_| format!("secret {n:?} cannot be opened"))
            }
        }
    }

    /// The stored access token, if any: `refresh_at_ms` (or -1), a newline, the token.
    async fn stored_access(&self, e: &Entry) -> Result<Option<Current>, TokenError> {
        let rn = access_row_name(&e.cred.name);
        let Some(r) = self
            .store
            .get_secret(&rn)
            .await
            .map_err(|_| self.failed(e, "the store is unavailable"))?
        else {
            return Ok(None);
        };
        let Ok(plain) = self.vault.open(&sealed(&r)) else {
            return Ok(None);
        };
        let Some(nl) = plain.expose().iter().position(|&b| b == b'\n') else {
            return Ok(None);
        };
        let at: i64 = std::str::from_utf8(&plain.expose()[..nl])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Some(Current {
            token: SecretBytes::new(plain.expose()[nl + 1..].to_vec()),
            refresh_at_ms: (at >= 0).then_some(at),
            scrubber: Scrubber::new(vec![]),
        }))
    }

    async fn access_row(
        &self,
        e: &Entry,
        token: &SecretBytes,
        refresh_at: Option<i64>,
        now: i64,
    ) -> Result<SecretRow, TokenError> {
        let rn = access_row_name(&e.cred.name);
        let prev = self
            .store
            .get_secret(&rn)
            .await
            .map_err(|_| self.failed(e, "the store is unavailable"))?;
        let version = prev.map_or(1, |r| r.version + 1);
        let version = u32::try_from(version).map_err(|_| self.failed(e, "version overflow"))?;
        Ok(row(
            &self.vault.seal(&rn, version, &access_value(token, refresh_at)),
            now,
        ))
    }

    /// The token as this process injects it; the scrubber also covers the token it replaces.
    fn current_from(&self, e: &Entry, token: Vec<u8>, refresh_at_ms: Option<i64>) -> Arc<Current> {
        let token = SecretBytes::new(token);
        let mut pairs = vec![(token.clone(), e.placeholder.clone())];
        if let Some(prev) = lock(&e.current).as_ref() {
            pairs.push((prev.token.clone(), e.placeholder.clone()));
        }
        Arc::new(Current {
            scrubber: Scrubber::new(pairs),
            token,
            refresh_at_ms,
        })
    }
}

/// When a token granted at `now` for `expires_in` seconds is refreshed: a quarter of its
/// lifetime, at most a minute, before it expires (`None`: never).
pub fn refresh_at(now_ms: i64, expires_in: Option<u64>) -> Option<i64> {
    expires_in.map(|s| {
        let life = i64::try_from(s).unwrap_or(i64::MAX / 2_000).saturating_mul(1000);
        now_ms + life - (life / 4).min(MARGIN_MS)
    })
}

/// The sealed form of an access token's vault entry: when to refresh it (or -1), a newline, the token.
pub fn access_value(token: &SecretBytes, refresh_at: Option<i64>) -> SecretBytes {
    let mut plain = zeroize::Zeroizing::new(format!("{}\n", refresh_at.unwrap_or(-1)).into_bytes());
    plain.extend_from_slice(token.expose());
    SecretBytes::new(plain.to_vec())
}

fn cached(e: &Entry, now: i64) -> Option<Arc<Current>> {
    lock(&e.current)
        .as_ref()
        .filter(|c| c.refresh_at_ms.is_none_or(|t| t > now))
        .cloned()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A store row as the vault's sealed form.
pub fn sealed(r: &SecretRow) -> SealedSecret {
    SealedSecret {
        name: r.name.clone(),
        version: u32::try_from(r.version).unwrap_or(u32::MAX),
        key_id: r.key_id.clone(),
        nonce: r.nonce.clone(),
        ciphertext: r.ciphertext.clone(),
    }
}

/// A sealed value as a store row.
pub fn row(s: &SealedSecret, now_ms: i64) -> SecretRow {
    SecretRow {
        name: s.name.clone(),
        version: i64::from(s.version),
        key_id: s.key_id.clone(),
        nonce: s.nonce.clone(),
        ciphertext: s.ciphertext.clone(),
        updated_ms: now_ms,
    }
}
