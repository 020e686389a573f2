//! Everything a request needs, built once by the binary (or a test) and shared.
//! Identities and secret values are snapshots swapped atomically on refresh, so the
//! request path never waits on the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use airlock_core::inject::SecretIndex;
use airlock_core::policy::{Policy, RateLimiter};
use airlock_store::AuditHandle;
use airlock_store::Store;
use airlock_tls::LeafCache;
use airlock_vault::{Scrubber, SecretBytes};
use sha2::{Digest, Sha256};

use crate::held_cap::HeldCap;
use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::upstream::UpstreamClient;

/// An authenticated agent and what its placeholders may unlock.
#[derive(Debug)]
pub struct Agent {
    pub name: String,
    pub secrets: Vec<String>,
    /// Replaces the real values of this agent's secrets in responses with placeholders.
    pub scrubber: Scrubber,
}

/// SHA-256 of an agent token: what the store keeps, and the lookup key here.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// How a connection's agent proved who it is, kept with the connection so each request (and
/// each reload of agents) can ask whether that proof still holds: a removed agent, or one whose
/// token was reissued, loses its open connections at the reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// `Proxy-Authorization` with this name and a token of this hash.
    Token { name: String, hash: [u8; 32] },
    /// The agent's own socket (the socket is the identity).
    Socket(Arc<str>),
}

impl Principal {
    pub fn name(&self) -> &str {
        match self {
            Principal::Token { name, .. } => name,
            Principal::Socket(name) => name,
        }
    }
}

/// Snapshot of agents and unsealed secret values.
#[derive(Debug, Default)]
pub struct Identities {
    /// token hash → agent, for agents that have a token.
    pub by_token: HashMap<[u8; 32], (String, Arc<Agent>)>,
    /// name → agent, for every declared agent (sandboxed agents are known by their socket).
    pub by_name: HashMap<String, Arc<Agent>>,
    /// secret name → real value.
    pub values: HashMap<String, SecretBytes>,
}

impl Identities {
    /// Builds the snapshot from declared agents (`name`, granted secrets), issued tokens
    /// (`name`, token hash) and unsealed values.
    pub fn build(
        declared: &[(String, Vec<String>)],
        tokens: &[(String, [u8; 32])],
        secrets: &SecretIndex,
        values: HashMap<String, SecretBytes>,
    ) -> Self {
        let mut by_name = HashMap::new();
        for (name, granted) in declared {
            let pairs = granted
                .iter()
                .filter_map(|s| Some((values.get(s)?.clone(), secrets.get(s)?.placeholder.as_bytes().to_vec())))
                .collect();
            let agent = Agent {
                name: name.clone(),
                secrets: granted.clone(),
                scrubber: Scrubber::new(pairs),
            };
            by_name.insert(name.clone(), Arc::new(agent));
        }
        let by_token = tokens
            .iter()
            .filter_map(|(name, hash)| Some((*hash, (name.clone(), by_name.get(name)?.clone()))))
            .collect();
        Identities {
            by_token,
            by_name,
            values,
        }
    }
}

impl Identities {
    /// The agent record `who` stands for now, or `None` when its agent was removed or its
    /// token is no longer issued.
    pub fn resolve(&self, who: &Principal) -> Option<Arc<Agent>> {
        match who {
            Principal::Token { name, hash } => match self.by_token.get(hash) {
                Some((n, agent)) if n == name => Some(agent.clone()),
                _ => None,
            },
            Principal::Socket(name) => self.by_name.get(&**name).cloned(),
        }
    }
}

/// Size limits on what the gateway reads before deciding.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bodies up to this size are read before dialing, so placeholders in them are seen.
    pub prefetch: usize,
    /// A body a rule must inspect is read up to this size; beyond it, the fail-closed reading applies.
    pub inspect: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            prefetch: 64 * 1024,
            inspect: 1024 * 1024,
        }
    }
}

pub struct GatewayState {
    /// Swapped whole on a reload; each request reads one snapshot from start to end.
    policy: RwLock<Arc<Policy>>,
    /// Shared so a streamed body's scanner can hold it without copying the index.
    pub secrets: Arc<SecretIndex>,
    pub identities: RwLock<Arc<Identities>>,
    /// Counts swaps of `identities`: open connections watch it to close themselves when their
    /// agent was removed (or its token reissued).
    generation: tokio::sync::watch::Sender<u64>,
    pub leaves: Arc<LeafCache>,
    pub server_configs: Mutex<lru::LruCache<String, (std::time::Instant, Arc<rustls::ServerConfig>)>>,
    pub client: UpstreamClient,
    /// HTTP/1.1 only, for requests that upgrade (WebSocket).
    pub client_h1: UpstreamClient,
    pub audit: AuditHandle,
    pub limiter: Limiter,
    pub metrics: Metrics,
    pub limits: Limits,
    /// Set when people are configured: `approve` rules hold requests for them.
    pub approvals: Option<Approvals>,
    /// Requests each agent holds for approval now, and how many it may.
    pub held: HeldCap,
    /// Deferred approvals of each agent still undecided: capped alike (cards reach people).
    pub deferred: HeldCap,
    /// How long an agent's connection may stall.
    pub timeouts: airlock_config::ConnTimeouts,
    /// Dynamic credentials (OAuth2 connections, GitHub Apps), when any are declared.
    pub tokens: Option<Arc<airlock_credentials::Tokens>>,
    /// Set when the gateway stops: no new connections, held approvals abandoned.
    pub drain: crate::drain::Drain,
}

/// The approvals hub and how much of a body may be held.
#[derive(Clone)]
pub struct Approvals {
    pub hub: airlock_approvals::Hub,
    /// Larger bodies are denied, never approved blind (invariant 6).
    pub max_body: usize,
    /// Requests one agent may have held at once; beyond it, 429.
    pub max_held_per_agent: usize,
}

impl GatewayState {
    pub fn new(
        policy: Policy,
        secrets: SecretIndex,
        identities: Identities,
        leaves: Arc<LeafCache>,
        client: UpstreamClient,
        client_h1: UpstreamClient,
        audit: AuditHandle,
    ) -> Self {
        GatewayState {
            policy: RwLock::new(Arc::new(policy)),
            secrets: Arc::new(secrets),
            identities: RwLock::new(Arc::new(identities)),
            generation: tokio::sync::watch::Sender::new(0),
            leaves,
            server_configs: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(1024).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            client,
            client_h1,
            audit,
            limiter: Limiter::Local(Mutex::new(RateLimiter::default())),
            metrics: Metrics::default(),
            limits: Limits::default(),
            approvals: None,
            held: HeldCap::new(airlock_config::DEFAULT_MAX_HELD_PER_AGENT),
            deferred: HeldCap::new(airlock_config::DEFAULT_MAX_HELD_PER_AGENT),
            timeouts: airlock_config::ConnTimeouts::default(),
            tokens: None,
            drain: crate::drain::Drain::default(),
        }
    }

    /// Injects the current tokens of OAuth2 connections and GitHub Apps.
    pub fn with_tokens(mut self, tokens: Option<Arc<airlock_credentials::Tokens>>) -> Self {
        self.tokens = tokens;
        self
    }

    /// Counts rate limits in `store`, shared with every replica using it, instead of in memory.
    pub fn with_shared_rate_limits(mut self, store: Store) -> Self {
        self.limiter = Limiter::Shared(store);
        self
    }

    /// Enables holding requests for approval.
    pub fn with_approvals(mut self, approvals: Approvals) -> Self {
        self.held = HeldCap::new(approvals.max_held_per_agent);
        self.deferred = HeldCap::new(approvals.max_held_per_agent);
        self.approvals = Some(approvals);
        self
    }

    /// Sets how long agents' connections may stall (default: 30 s each).
    pub fn with_timeouts(mut self, timeouts: airlock_config::ConnTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    pub fn identities(&self) -> Arc<Identities> {
        match self.identities.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The policy now in force; a request keeps the one it started with.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Puts `policy` in force for every request that starts from now on. Rate limits counted
    /// in memory start afresh (their buckets are keyed by rule position, which a reload may
    /// shift); shared ones are keyed by rule name and rate and carry over.
    pub fn set_policy(&self, policy: Policy) {
        let policy = Arc::new(policy);
        match self.policy.write() {
            Ok(mut g) => *g = policy,
            Err(p) => *p.into_inner() = policy,
        }
        self.limiter.reset_local();
    }

    pub fn set_identities(&self, ids: Identities) {
        let ids = Arc::new(ids);
        match self.identities.write() {
            Ok(mut g) => *g = ids,
            Err(p) => *p.into_inner() = ids,
        }
        self.generation.send_modify(|g| *g += 1);
    }

    /// Completes once `who` no longer stands for an agent (removed, or its token reissued):
    /// checked now and at each swap of agents. Open connections and database sessions close on it.
    pub fn revoked(self: &Arc<Self>, who: Principal) -> impl Future<Output = ()> + Send + 'static {
        let state = self.clone();
        async move {
            loop {
                // Subscribed before the check, so a swap between the two is not missed.
                let swapped = state.identities_swapped();
                if state.identities().resolve(&who).is_none() {
                    return;
                }
                swapped.await;
            }
        }
    }

    /// Completes at the next swap of agents and secrets after this call.
    pub fn identities_swapped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.generation.subscribe();
        async move {
            // The sender lives as long as the state; a closed channel never resolves.
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
