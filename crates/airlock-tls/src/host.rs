//! The hosts a leaf certificate can name: DNS names and IP addresses, normalized.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use crate::TlsError;

/// Longest DNS name (RFC 1035, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
/// Longest DNS label.
const MAX_LABEL_LEN: usize = 63;

/// A host a leaf can be issued for, normalized: DNS names lower-case without a trailing dot,
/// IP addresses in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Dns(String),
    Ip(IpAddr),
}

impl Host {
    /// Accepts `example.com`, `Example.COM.`, `10.0.0.1`, `::1` and `[::1]`; refuses wildcards,
    /// empty labels, over-long names and anything outside `[A-Za-z0-9-_]`.
    pub(crate) fn parse(host: &str) -> Result<Host, TlsError> {
        let bad = || TlsError::BadHost(host.chars().take(MAX_NAME_LEN + 1).collect());
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            return inner
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| bad());
        }
        let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let label_ok = |l: &str| {
            (1..=MAX_LABEL_LEN).contains(&l.len())
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.split('.').all(label_ok) {
            return Err(bad());
        }
        // Defer to the verifier's own rules too (e.g. an all-numeric last label is refused),
        // so that we never mint a certificate no client would accept.
        rustls_pki_types::DnsName::try_from(name.as_str()).map_err(|_| bad())?;
        Ok(Host::Dns(name))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Dns(d) => f.write_str(d),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}
