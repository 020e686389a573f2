//! airlock's own connection to the database: TLS per `tls`, then the real password through
//! SCRAM-SHA-256 (the tokio-postgres project's client). The password never leaves this module
//! except inside SCRAM's proofs; error texts name the database, never the secret.

use std::net::SocketAddr;
use std::sync::Arc;

use airlock_config::{AddrRule, DatabaseConfig, DbTls};
use airlock_gateway::upstream::is_restricted;
use airlock_vault::SecretBytes;
use bytes::{Buf, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
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
    let mut tcp = TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    Ok(match db.tls {
        DbTls::Disable => Box::new(tcp),
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
            Box::new(tls)
        }
    })
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
    let mut stream = dial(db, addr, roots).await?;
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
                    0 => continue,
                    10 => {
                        let offered = body.split(|b| *b == 0).any(|m| m == SCRAM_SHA_256.as_bytes());
                        if !offered {
                            return Err(UpstreamError::Method(10));
                        }
                        let s = ScramSha256::new(password.expose(), ChannelBinding::unsupported());
                        frontend::sasl_initial_response(SCRAM_SHA_256, s.message(), &mut out)?;
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
