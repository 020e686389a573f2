//! airlock's own connection to the database: TLS per `tls`, then the real password through
//! SCRAM-SHA-256 (the tokio-postgres project's client), bound to the TLS connection
//! (SCRAM-SHA-256-PLUS, `tls-server-end-point`) when the server offers it, per `channel_binding`.
//! The password never leaves this module except inside SCRAM's proofs; error texts name the
//! database, never the secret.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_config::{AddrRule, DatabaseConfig, DbChannelBinding, DbTls};
use airlock_gateway::upstream::is_restricted;
use airlock_vault::SecretBytes;
use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, SCRAM_SHA_256_PLUS, ScramSha256};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::codec::{self, Frame};

/// Either side of a connection, plain or under TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot reach the database: {0}")]
    Io(#[from] std::io::Error),
    #[error("the database refused TLS, which this database's tls setting requires")]
    NoTls,
    #[error("{0} resolves only to private, loopback or link-local addresses; list it in gateway.allow_private")]
    Restricted(String),
    #[error("TLS to the database failed: {0}")]
    Tls(String),
    #[error("the database sent a malformed message: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("the database asked for an authentication method airlock does not use ({0}); use scram-sha-256")]
    Method(i32),
    #[error("the database refused airlock's login ({0})")]
    Refused(String),
    #[error("SCRAM exchange failed: {0}")]
    Scram(String),
    #[error(
        "channel_binding = \"require\", but the login cannot be bound to TLS: the database did not offer SCRAM-SHA-256-PLUS, or its certificate's signature algorithm names no hash (RFC 5929)"
    )]
    NoChannelBinding,
    #[error("the database accepted the login before completing SCRAM (it never proved it knows the password)")]
    Unproven,
}

/// A logged-in upstream: the stream, and what the server said before its first ReadyForQuery
/// (ParameterStatus, NoticeResponse) to pass on to the client. Its BackendKeyData is kept
/// apart: the client gets a key airlock mints (see `cancel`), never the server's.
pub struct Upstream {
    pub stream: Box<dyn Stream>,
    pub greeting: Vec<Frame>,
    pub status: u8,
    /// Bytes read past the first ReadyForQuery (none in practice: the server waits for us).
    pub rest: BytesMut,
    /// The address dialed (already checked): a CancelRequest for this session goes there.
    pub addr: SocketAddr,
    /// The server's BackendKeyData (process id, secret key), when it sent one.
    pub key: Option<(i32, Vec<u8>)>,
}

/// The database's address, resolved and checked as HTTP upstreams are: on the resolved
/// address, restricted ranges refused unless `gateway.allow_private` lists them.
pub async fn resolve(db: &DatabaseConfig, allow_private: &[AddrRule]) -> Result<SocketAddr, UpstreamError> {
    tokio::net::lookup_host((db.host.as_str(), db.port))
        .await?
        .find(|a| !is_restricted(a.ip()) || allow_private.iter().any(|r| r.allows(*a)))
        .ok_or_else(|| UpstreamError::Restricted(format!("{}:{}", db.host, db.port)))
}

/// Opens a connection to `addr` (from [`resolve`]) with TLS per the database's `tls` setting:
/// SSLRequest, then the handshake naming `db.host`. Nothing is sent after it.
pub async fn dial(
    db: &DatabaseConfig,
    addr: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
) -> Result<Box<dyn Stream>, UpstreamError> {
    Ok(open(db, addr, roots).await?.0)
}

/// [`dial`], with the server certificate's `tls-server-end-point` hash when TLS is on and the
/// certificate's signature algorithm names one.
async fn open(
    db: &DatabaseConfig,
    addr: SocketAddr,
    roots: Arc<rustls::RootCertStore>,
) -> Result<(Box<dyn Stream>, Option<Vec<u8>>), UpstreamError> {
    let mut tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    Ok(match db.tls {
        DbTls::Disable => (Box::new(tcp), None),
        mode => {
            let mut req = BytesMut::new();
            frontend::ssl_request(&mut req);
            tcp.write_all(&req).await?;
            let mut answer = [0u8; 1];
            tcp.read_exact(&mut answer).await?;
            if answer[0] != b'S' {
                return Err(UpstreamError::NoTls);
            }
            let config = crate::tls::client_config(mode, roots).map_err(UpstreamError::Tls)?;
            let name = rustls_pki_types::ServerName::try_from(db.host.clone())
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let end_point = leaf.and_then(|c| crate::tls::end_point_hash(c.as_ref()));
            (Box::new(tls), end_point)
        }
    })
}

/// SCRAM's mechanism and channel-binding flag, chosen as libpq chooses them: PLUS bound to the
/// certificate when the server offers it and its hash is known; else plain SCRAM saying "y"
/// (airlock could bind but was not offered it: a server that did offer it sees the downgrade
/// and refuses) or "n" (no TLS, no hash, or `channel_binding = "disable"`).
fn choose(
    mode: DbChannelBinding,
    end_point: Option<Vec<u8>>,
    offered: &[&[u8]],
) -> Result<(ChannelBinding, &'static str), UpstreamError> {
    let plus = offered.contains(&SCRAM_SHA_256_PLUS.as_bytes());
    let plain = offered.contains(&SCRAM_SHA_256.as_bytes());
    let end_point = end_point.filter(|_| mode != DbChannelBinding::Disable);
    match end_point {
        Some(hash) if plus => Ok((ChannelBinding::tls_server_end_point(hash), SCRAM_SHA_256_PLUS)),
        _ if mode == DbChannelBinding::Require => Err(UpstreamError::NoChannelBinding),
        _ if !plain => Err(UpstreamError::Method(10)),
        Some(_) => Ok((ChannelBinding::unrequested(), SCRAM_SHA_256)),
        None => Ok((ChannelBinding::unsupported(), SCRAM_SHA_256)),
    }
}

/// Connects and logs in as the configured user. `roots` adds the database's own CA.
pub async fn connect(
    db: &DatabaseConfig,
    password: &SecretBytes,
    roots: Arc<rustls::RootCertStore>,
    application_name: &str,
    allow_private: &[AddrRule],
) -> Result<Upstream, UpstreamError> {
    let addr = resolve(db, allow_private).await?;
    let (mut stream, mut end_point) = open(db, addr, roots).await?;
    let mut out = BytesMut::new();
    let params = [
        ("user", db.user.as_str()),
        ("database", db.database.as_str()),
        ("application_name", application_name),
    ];
    frontend::startup_message(params.iter().copied(), &mut out)?;
    stream.write_all(&out).await?;
    let mut buf = BytesMut::new();
    let mut scram: Option<ScramSha256> = None;
    // The server's SASLFinal was verified (it knows the password), and whether the exchange was bound.
    let (mut proven, mut bound) = (false, false);
    let mut greeting = Vec::new();
    let mut key = None;
    loop {
        let f = read_frame(&mut stream, &mut buf).await?;
        match f.tag {
            b'R' => {
                let mut body = f.body.clone();
                if body.len() < 4 {
                    return Err(codec::CodecError::Malformed('R', "too short").into());
                }
                let kind = body.get_i32();
                out.clear();
                match kind {
                    // A server that began SCRAM must finish it; `require` accepts only a bound login.
                    0 if scram.is_some() && !proven => return Err(UpstreamError::Unproven),
                    0 if db.channel_binding == DbChannelBinding::Require && !bound => {
                        return Err(UpstreamError::NoChannelBinding);
                    }
                    0 => continue,
                    10 => {
                        let offered: Vec<&[u8]> = body.split(|b| *b == 0).collect();
                        let (binding, mechanism) = choose(db.channel_binding, end_point.take(), &offered)?;
                        bound = mechanism == SCRAM_SHA_256_PLUS;
                        let how = if bound { "tls-server-end-point" } else { "none" };
                        tracing::info!(database = %db.name, "database upstream login: {mechanism}, channel binding {how}");
                        let s = ScramSha256::new(password.expose(), binding);
                        frontend::sasl_initial_response(mechanism, s.message(), &mut out)?;
                        scram = Some(s);
                    }
                    11 => {
                        let s = scram.as_mut().ok_or(UpstreamError::Method(11))?;
                        s.update(&body).map_err(|e| UpstreamError::Scram(e.to_string()))?;
                        frontend::sasl_response(s.message(), &mut out)?;
                    }
                    12 => {
                        let s = scram.as_mut().ok_or(UpstreamError::Method(12))?;
                        s.finish(&body).map_err(|e| UpstreamError::Scram(e.to_string()))?;
                        proven = true;
                        continue;
                    }
                    other => return Err(UpstreamError::Method(other)),
                }
                stream.write_all(&out).await?;
            }
            b'E' => return Err(UpstreamError::Refused(error_code(&f))),
            b'Z' => {
                let status = f.body.first().copied().unwrap_or(b'I');
                return Ok(Upstream {
                    stream,
                    greeting,
                    status,
                    rest: buf,
                    addr,
                    key,
                });
            }
            b'K' => {
                let mut body = f.body.clone();
                // Protocol 3.2 allows keys up to 256 bytes; 3.0 has 4.
                if body.len() < 8 || body.len() > 4 + 256 {
                    return Err(codec::CodecError::Malformed('K', "a key of unexpected length").into());
                }
                let pid = body.get_i32();
                key = Some((pid, body.to_vec()));
            }
            // ParameterStatus, NoticeResponse: the client sees them as from the server.
            _ => greeting.push(f),
        }
    }
}

/// The SQLSTATE of an ErrorResponse (never its message, which a server may fill with input).
fn error_code(f: &Frame) -> String {
    let mut fields = f.body.split(|b| *b == 0);
    fields
        .find(|x| x.first() == Some(&b'C'))
        .map(|c| String::from_utf8_lossy(&c[1..]).into_owned())
        .unwrap_or_else(|| "no SQLSTATE".into())
}

/// Reads one whole server message during login (small: authentication and parameters).
async fn read_frame(stream: &mut Box<dyn Stream>, buf: &mut BytesMut) -> Result<Frame, UpstreamError> {
    loop {
        if let Some(f) = codec::decode(buf, 1024 * 1024)? {
            return Ok(f);
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gs2 header SCRAM's client-first-message starts with: how the choice reads on the wire.
    fn header(mode: DbChannelBinding, end_point: Option<Vec<u8>>, offered: &[&str]) -> Result<String, String> {
        let offered: Vec<&[u8]> = offered.iter().map(|m| m.as_bytes()).collect();
        let (binding, mechanism) = choose(mode, end_point, &offered).map_err(|e| e.to_string())?;
        let first = ScramSha256::new(b"pw", binding).message().to_vec();
        let first = String::from_utf8(first).map_err(|e| e.to_string())?;
        let gs2 = first.split(",n=").next().unwrap_or_default().to_string();
        Ok(format!("{mechanism} {gs2}"))
    }

    #[test]
    fn channel_binding_is_chosen_as_libpq_chooses_it() {
        use DbChannelBinding::*;
        let both = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];
        let hash = || Some(vec![7u8; 32]);
        // TLS and offered: bound, whatever else is offered.
        for mode in [Prefer, Require] {
            assert_eq!(
                header(mode, hash(), &both).unwrap(),
                "SCRAM-SHA-256-PLUS p=tls-server-end-point,"
            );
        }
        // TLS but not offered: "y" (a server that did offer it detects the downgrade); refused under require.
        assert_eq!(header(Prefer, hash(), &["SCRAM-SHA-256"]).unwrap(), "SCRAM-SHA-256 y,");
        let refused = header(Require, hash(), &["SCRAM-SHA-256"]).unwrap_err();
        assert!(refused.contains("channel_binding = \"require\""), "{refused}");
        // No TLS (or a certificate without a hash): "n"; require refuses even when PLUS is offered.
        assert_eq!(header(Prefer, None, &["SCRAM-SHA-256"]).unwrap(), "SCRAM-SHA-256 n,");
        assert_eq!(header(Prefer, None, &both).unwrap(), "SCRAM-SHA-256 n,");
        assert!(header(Require, None, &both).is_err());
        // disable: never bound, and says so.
        assert_eq!(header(Disable, hash(), &both).unwrap(), "SCRAM-SHA-256 n,");
        // PLUS alone, unusable: no method airlock can use.
        assert!(
            header(Prefer, None, &["SCRAM-SHA-256-PLUS"])
                .unwrap_err()
                .contains("(10)")
        );
    }
}
