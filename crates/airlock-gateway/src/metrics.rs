//! Prometheus counters. Labels are fixed words, never request data or secrets.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Metrics {
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    pub approval_required: AtomicU64,
    pub rate_limited: AtomicU64,
    pub exfiltration: AtomicU64,
    pub auth_failures: AtomicU64,
    pub misdirected: AtomicU64,
    pub dial_refused: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub audit_unavailable: AtomicU64,
    pub rate_limit_unavailable: AtomicU64,
    pub tunnels: AtomicU64,
    pub tunnels_refused: AtomicU64,
    pub injections: AtomicU64,
    pub scrubbed_responses: AtomicU64,
    pub policy_reloads: AtomicU64,
    pub policy_reloads_refused: AtomicU64,
}

impl Metrics {
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Relaxed);
    }

    /// Counts a policy reload, applied or refused.
    pub fn inc_reload(&self, applied: bool) {
        Metrics::inc(match applied {
            true => &self.policy_reloads,
            false => &self.policy_reloads_refused,
        });
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP airlock_requests_total Requests by decision.\n# TYPE airlock_requests_total counter"
        );
        for (d, c) in [
            ("allow", &self.allowed),
            ("deny", &self.denied),
            ("approve", &self.approval_required),
            ("rate_limited", &self.rate_limited),
            ("exfiltration", &self.exfiltration),
            ("auth_failed", &self.auth_failures),
            ("misdirected", &self.misdirected),
        ] {
            let _ = writeln!(s, "airlock_requests_total{{decision=\"{d}\"}} {}", c.load(Relaxed));
        }
        for (name, help, c) in [
            (
                "airlock_dial_refused_total",
                "Dials refused by the address check.",
                &self.dial_refused,
            ),
            (
                "airlock_upstream_errors_total",
                "Upstream connection or protocol errors.",
                &self.upstream_errors,
            ),
            (
                "airlock_audit_unavailable_total",
                "Requests refused because the audit log could not be written.",
                &self.audit_unavailable,
            ),
            (
                "airlock_rate_limit_unavailable_total",
                "Requests refused because the shared store could not check their rate limit.",
                &self.rate_limit_unavailable,
            ),
            ("airlock_tunnels_total", "CONNECT tunnels opened.", &self.tunnels),
            (
                "airlock_tunnels_refused_total",
                "Tunnels closed for carrying neither TLS nor HTTP.",
                &self.tunnels_refused,
            ),
            ("airlock_injections_total", "Credentials injected.", &self.injections),
            (
                "airlock_scrubbed_responses_total",
                "Responses in which a real secret was replaced by its placeholder.",
                &self.scrubbed_responses,
            ),
            (
                "airlock_policy_reloads_total",
                "Policy reloads applied.",
                &self.policy_reloads,
            ),
            (
                "airlock_policy_reloads_refused_total",
                "Policy reloads refused (invalid file, or a change that needs a restart).",
                &self.policy_reloads_refused,
            ),
        ] {
            let _ = writeln!(
                s,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Relaxed)
            );
        }
        s
    }
}
