//! A small HTTPS client that goes through an HTTP proxy with CONNECT: the demo's scripted
//! agent and the load tool. Built on hyper and rustls so it costs little per request.

use std::sync::Arc;

use anyhow::{Context, bail};
use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Where requests go: straight to the target, or through a proxy.
#[derive(Clone)]
pub struct Route {
    /// `host:port` of the proxy and its Basic credentials (`user:password`), if any.
    pub proxy: Option<(String, Option<String>)>,
    pub tls: TlsConnector,
}

impl Route {
    /// `proxy_url` like `http://name:token@127.0.0.1:3128`; `roots` are the PEM CAs to trust.
    pub fn new(proxy_url: Option<&str>, roots_pem: &[&[u8]]) -> anyhow::Result<Route> {
        let proxy = match proxy_url {
            None => None,
            Some(u) => {
                let uri: http::Uri = u.parse().with_context(|| format!("bad proxy URL {u}"))?;
                let auth = uri.authority().context("proxy URL needs host:port")?.as_str();
                let (creds, hostport) = match auth.rsplit_once('@') {
                    Some((c, h)) => (Some(c.to_string()), h.to_string()),
                    None => (None, auth.to_string()),
                };
                Some((hostport, creds))
            }
        };
        let mut roots = rustls::RootCertStore::empty();
        for pem in roots_pem {
            for c in rustls_pemfile_certs(pem)? {
                roots.add(c)?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Route {
            proxy,
            tls: TlsConnector::from(Arc::new(cfg)),
        })
    }

    /// Opens a connection to `host:port` (through the proxy's CONNECT when set), TLS on top,
    /// and an HTTP/1.1 connection on that.
    pub async fn connect(&self, host: &str, port: u16) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let tcp = match &self.proxy {
            None => TcpStream::connect((host, port))
                .await
                .with_context(|| format!("cannot connect to {host}:{port}"))?,
            Some((proxy, creds)) => {
                let mut s = TcpStream::connect(proxy.as_str())
                    .await
                    .with_context(|| format!("cannot reach the proxy {proxy}"))?;
                s.set_nodelay(true)?;
                let auth = creds.as_ref().map_or(String::new(), |c| {
                    format!(
                        "Proxy-Authorization: Basic {}\r\n",
                        base64::engine::general_purpose::STANDARD.encode(c)
                    )
                });
                s.write_all(format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}\r\n").as_bytes())
                    .await?;
                let head = read_head(&mut s).await?;
                let status = head.split(' ').nth(1).unwrap_or("");
                if status != "200" {
                    bail!(
                        "proxy refused CONNECT {host}:{port}: {}",
                        head.lines().next().unwrap_or("")
                    );
                }
                s
            }
        };
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host.to_string()).context("bad server name")?;
        let tls = self.tls.connect(name, tcp).await.context("TLS handshake failed")?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }
}

/// Reads an HTTP response head byte by byte (only for the CONNECT reply, so the TLS
/// bytes that follow are not swallowed).
async fn read_head(s: &mut TcpStream) -> anyhow::Result<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = s.read_u8().await.context("proxy closed the connection")?;
        head.push(b);
        if head.len() > 16 * 1024 {
            bail!("proxy reply too long");
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn rustls_pemfile_certs(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    Ok(airlock_tls::load_pem_certs(pem)?)
}

/// Sends one request and reads the whole response.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(Response<()>, Bytes)> {
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await?.to_bytes();
    Ok((Response::from_parts(parts, ()), bytes))
}
