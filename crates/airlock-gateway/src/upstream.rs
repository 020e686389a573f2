//! The upstream side: a pooled HTTP/1.1 + HTTP/2 client whose connector checks every
//! resolved address at dial time (invariant 9). The check runs on the IP actually dialed,
//! after DNS, so a name that resolves to 127.0.0.1 or 169.254.169.254 cannot sneak in.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use airlock_config::AddrRule;
use bytes::Bytes;
use http::Uri;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type UpBody = BoxBody<Bytes, BoxError>;
pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<GuardedConnector>, UpBody>;

/// Why a dial was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// `own` names the listener of airlock's own that a refused address would reach.
    #[error("{}", forbidden(.host, .addrs, *.own))]
    Forbidden {
        host: String,
        addrs: String,
        own: Option<&'static str>,
    },
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: std::io::Error },
    #[error("cannot connect to {host}: {source}")]
    Connect { host: String, source: std::io::Error },
    #[error("request URI has no host")]
    NoHost,
}

fn forbidden(host: &str, addrs: &str, own: Option<&str>) -> String {
    match own {
        Some(what) => format!(
            "{host} ({addrs}) is airlock's own {what}; the gateway never dials itself, whatever gateway.allow_private says"
        ),
        None => format!(
            "{host} resolves only to private, loopback, link-local or metadata addresses ({addrs}); add one to gateway.allow_private to permit it"
        ),
    }
}

/// An address of airlock itself that no agent request may reach, whatever `allow_private`
/// says: its proxy listener, its control plane, its PostgreSQL store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnAddr {
    /// The bound address. An unspecified IP (0.0.0.0 or ::) stands for every address of
    /// this host on that port.
    pub addr: SocketAddr,
    /// What it is, for the refusal: "proxy listener", "control plane", "store".
    pub what: &'static str,
}

impl OwnAddr {
    /// Whether dialing `dial` would reach this address.
    fn reached_by(&self, dial: SocketAddr) -> bool {
        if dial.port() != self.addr.port() {
            return false;
        }
        let ip = dial.ip().to_canonical();
        let own = self.addr.ip().to_canonical();
        // Connecting to 0.0.0.0 or :: reaches this host.
        ip.is_unspecified() || ip == own || (own.is_unspecified() && is_local_address(dial))
    }
}

/// Whether `addr`'s IP belongs to this host: loopback, or an address a socket can bind to
/// (asked of the kernel at dial time, so addresses that come and go are seen as they are).
pub fn is_local_address(addr: SocketAddr) -> bool {
    let mut probe = addr;
    probe.set_port(0);
    addr.ip().to_canonical().is_loopback() || std::net::UdpSocket::bind(probe).is_ok()
}

/// True for destinations an agent must not reach unless the operator allows them.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local() // 169.254/16, cloud metadata
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64/10 carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 IETF protocol assignments
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18/15 benchmarking
                || o[0] >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_restricted(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 can reach private v4
                || (s[0] == 0x2002) // 6to4 embeds v4
                || (s[0] == 0x2001 && s[1] == 0xdb8) // documentation
                || (s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible ::a.b.c.d
                || s == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] // AWS metadata over v6
        }
    }
}

/// Resolves, filters and connects. Cloned per dial by hyper's pool.
#[derive(Clone)]
pub struct GuardedConnector {
    allow: Arc<Vec<AddrRule>>,
    own: Arc<Vec<OwnAddr>>,
    connect_timeout: Duration,
}

impl GuardedConnector {
    pub fn new(allow: Vec<AddrRule>) -> Self {
        Self {
            allow: Arc::new(allow),
            own: Arc::new(Vec::new()),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Never dials these, whatever `allow_private` says.
    pub fn never_dialing(mut self, own: Vec<OwnAddr>) -> Self {
        self.own = Arc::new(own);
        self
    }

    fn permitted(&self, addr: SocketAddr) -> bool {
        !is_restricted(addr.ip()) || self.allow.iter().any(|r| r.allows(addr))
    }

    /// Which of airlock's own addresses dialing `addr` would reach, if any.
    fn own_reached_by(&self, addr: SocketAddr) -> Option<&'static str> {
        self.own.iter().find(|o| o.reached_by(addr)).map(|o| o.what)
    }

    async fn dial(self, uri: Uri) -> Result<TokioIo<TcpStream>, DialError> {
        let host = uri
            .host()
            .ok_or(DialError::NoHost)?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|source| DialError::Resolve {
                    host: host.clone(),
                    source,
                })?
                .collect(),
        };
        let (mut ok, mut refused, mut own) = (Vec::new(), Vec::new(), None);
        for a in addrs {
            if let Some(what) = self.own_reached_by(a) {
                own = own.or(Some(what));
                refused.push(a);
            } else if self.permitted(a) {
                ok.push(a);
            } else {
                refused.push(a);
            }
        }
        if ok.is_empty() {
            let addrs = refused.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ");
            return Err(DialError::Forbidden { host, addrs, own });
        }
        let mut last = None;
        for addr in ok {
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    // Nagle would add ~40 ms stalls to small header/body writes.
                    let _ = s.set_nodelay(true);
                    return Ok(TokioIo::new(s));
                }
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
            }
        }
        Err(DialError::Connect {
            host,
            source: last.unwrap_or_else(|| std::io::Error::other("no address to connect to")),
        })
    }
}

impl tower::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().dial(uri))
    }
}

/// Upstream TLS trust: webpki roots plus the operator's `upstream_ca` certificates.
pub fn client_tls_config(extra_roots: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for c in extra_roots {
        roots.add(c.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The pooled client. HTTP/2 is negotiated by ALPN unless `http2` is false (upgrades such
/// as WebSocket need HTTP/1.1 end to end). Redirects are never followed: the hyper client
/// does not follow them, and nothing here adds that.
pub fn build_client(tls: rustls::ClientConfig, allow: Vec<AddrRule>, http2: bool) -> UpstreamClient {
    build_guarded_client(tls, GuardedConnector::new(allow), http2)
}

/// [`build_client`] dialing through `connector` (e.g. one that also refuses airlock's own addresses).
pub fn build_guarded_client(tls: rustls::ClientConfig, connector: GuardedConnector, http2: bool) -> UpstreamClient {
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1();
    let https = if http2 {
        b.enable_http2().wrap_connector(connector)
    } else {
        b.wrap_connector(connector)
    };
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
}

/// Finds a [`DialError`] in a client error's source chain.
pub fn dial_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a DialError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(d) = err.downcast_ref::<DialError>() {
            return Some(d);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restricted_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "64:ff9b::a00:1",
            "255.255.255.255",
            "224.0.0.1",
        ] {
            assert!(is_restricted(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "140.82.112.3", "2606:4700::1111", "8.8.8.8"] {
            assert!(!is_restricted(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn own_addresses_on_one_ip_or_every_local_one() {
        let sa = |s: &str| s.parse::<SocketAddr>().unwrap();
        let one = OwnAddr {
            addr: sa("127.0.0.1:3129"),
            what: "control plane",
        };
        assert!(one.reached_by(sa("127.0.0.1:3129")));
        assert!(one.reached_by(sa("[::ffff:127.0.0.1]:3129")));
        assert!(one.reached_by(sa("0.0.0.0:3129")) && one.reached_by(sa("[::]:3129")));
        assert!(!one.reached_by(sa("127.0.0.1:3130")));
        assert!(
            !one.reached_by(sa("127.0.0.2:3129")),
            "another loopback address is another socket"
        );
        let every = OwnAddr {
            addr: sa("0.0.0.0:3128"),
            what: "proxy listener",
        };
        for local in [
            "127.0.0.1:3128",
            "127.0.0.2:3128",
            "[::1]:3128",
            "[::ffff:127.9.9.9]:3128",
        ] {
            assert!(every.reached_by(sa(local)), "{local}");
        }
        // Not an address of this host (TEST-NET-3), and another port.
        assert!(!every.reached_by(sa("203.0.113.9:3128")));
        assert!(!every.reached_by(sa("127.0.0.1:3127")));
    }
}
