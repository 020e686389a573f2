//! TLS on both legs of the database gateway: PostgreSQL 17's direct TLS (no SSLRequest, ALPN
//! `postgresql`) on the listener and on an agent's socket, and the upstream SCRAM login bound to
//! airlock's TLS connection (SCRAM-SHA-256-PLUS, `tls-server-end-point`) against the real server.
//!
//! Debian bookworm's `psql` is 15, and libpq learned `sslnegotiation=direct` in 17: the direct-TLS
//! clients are libpq 17 inside psycopg's binary wheel, and one written here with tokio-rustls.

mod pg;
mod support;

use std::sync::Arc;

use airlock_postgres::codec::{self, Frame};
use bytes::{BufMut, BytesMut};
use pg::*;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const SELECT_1: &str = "SELECT 1";

/// A TLS client trusting only airlock's CA, offering `alpn` (if any).
fn connector(gw: &Gateway, alpn: Option<&[u8]>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in airlock_tls::load_pem_certs(&gw.ca_pem()).unwrap() {
        roots.add(c).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.into_iter().map(<[u8]>::to_vec).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Direct TLS as libpq 17's `sslnegotiation=direct` opens it: the ClientHello is the first byte.
async fn direct<S: AsyncRead + AsyncWrite + Unpin>(
    gw: &Gateway,
    io: S,
    alpn: Option<&[u8]>,
) -> std::io::Result<tokio_rustls::client::TlsStream<S>> {
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    connector(gw, alpn).connect(name, io).await
}

/// The next whole message from the gateway, or `None` at the end of the stream.
async fn next(s: &mut (impl AsyncRead + Unpin), buf: &mut BytesMut) -> Option<Frame> {
    loop {
        if let Some(f) = codec::decode(buf, 1 << 20).unwrap() {
            return Some(f);
        }
        if s.read_buf(buf).await.unwrap_or(0) == 0 {
            return None;
        }
    }
}

/// Logs in as `user` with `password` (the cleartext password the gateway asks for inside TLS),
/// runs `SELECT 1` with the simple protocol and returns the value of its one row.
async fn login_and_select(s: &mut (impl AsyncRead + AsyncWrite + Unpin), user: &str, password: &str) -> String {
    let mut params = BytesMut::new();
    params.put_i32(codec::PROTOCOL_3);
    for p in ["user", user, "database", "app", ""] {
        params.extend_from_slice(p.as_bytes());
        params.put_u8(0);
    }
    let mut out = BytesMut::new();
    out.put_i32(params.len() as i32 + 4);
    out.extend_from_slice(&params);
    s.write_all(&out).await.unwrap();
    let mut buf = BytesMut::new();
    let ask = next(s, &mut buf).await.expect("an authentication request");
    assert_eq!(
        (ask.tag, &ask.body[..]),
        (b'R', &3i32.to_be_bytes()[..]),
        "cleartext password asked"
    );
    let mut out = BytesMut::new();
    Frame {
        tag: b'p',
        body: format!("{password}\0").into_bytes().into(),
    }
    .encode(&mut out);
    s.write_all(&out).await.unwrap();
    loop {
        let f = next(s, &mut buf).await.expect("the login's answer");
        assert_ne!(f.tag, b'E', "login refused: {:?}", String::from_utf8_lossy(&f.body));
        if f.tag == b'Z' {
            break;
        }
    }
    let mut out = BytesMut::new();
    Frame {
        tag: b'Q',
        body: format!("{SELECT_1}\0").into_bytes().into(),
    }
    .encode(&mut out);
    s.write_all(&out).await.unwrap();
    let mut value = None;
    loop {
        let f = next(s, &mut buf).await.expect("the query's answer");
        match f.tag {
            // DataRow: i16 column count, then i32 length and the value of each column.
            b'D' => value = Some(String::from_utf8(f.body[6..].to_vec()).unwrap()),
            b'E' => panic!("query refused: {:?}", String::from_utf8_lossy(&f.body)),
            b'Z' => break,
            _ => {}
        }
    }
    value.expect("a row")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_17_direct_tls_logs_in_on_the_listener_and_on_the_agents_socket() {
    let db = database().await;
    let (mut gw, token, _) = start(&db);
    let addr = gw.databases.unwrap();

    // The listener: the leaf names its address, the server answers ALPN `postgresql`.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = direct(&gw, tcp, Some(b"postgresql"))
        .await
        .expect("direct TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    assert_eq!(login_and_select(&mut tls, "analyst", &token).await, "1");

    // The agent's socket (what `airlock run`'s relay pipes a sandboxed client to): same code,
    // the placeholder as password.
    let sock = gw.dir.path().join("airlock-data/agents/postgres/analyst.sock");
    let unix = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let mut tls = direct(&gw, unix, Some(b"postgresql"))
        .await
        .expect("direct TLS on the socket");
    assert_eq!(login_and_select(&mut tls, "analyst", "airlock-db-app").await, "1");

    // SSLRequest first, as libpq 17 does by default, offering ALPN too: negotiated the same way.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]).await.unwrap();
    let mut answer = [0u8; 1];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"S");
    let mut tls = direct(&gw, tcp, Some(b"postgresql")).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"postgresql"[..]));
    assert_eq!(login_and_select(&mut tls, "analyst", &token).await, "1");

    // psql 15 (SSLRequest, no ALPN) still logs in: the classic path is unchanged.
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(ok && out.trim() == "1", "{out}");
    gw.stop();
    assert!(!gw.logs().contains(&token), "the token is never logged");
}

/// libpq 17 (psycopg's binary wheel bundles it; .ci/run installs it): `sslnegotiation=direct`
/// and the classic SSLRequest, each verified against airlock's CA.
const PSYCOPG_DIRECT: &str = r#"
import sys, psycopg
host, port, token, ca = sys.argv[1:5]
assert psycopg.pq.version() >= 170000, psycopg.pq.version()
for negotiation in ("direct", "postgres"):
    with psycopg.connect(host=host, port=port, user="analyst", password=token, dbname="app",
                         sslmode="verify-full", sslrootcert=ca, sslnegotiation=negotiation) as conn:
        print(negotiation, conn.execute("SELECT 1").fetchone()[0], conn.pgconn.ssl_in_use)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libpq_17_logs_in_with_sslnegotiation_direct() {
    let db = database().await;
    let (mut gw, token, _) = start(&db);
    let (ok, out) = psycopg(&gw, &token, PSYCOPG_DIRECT, &db).await;
    assert!(ok, "{out}\n{}", gw.logs());
    assert!(
        out.contains("direct 1 True") && out.contains("postgres 1 True"),
        "{out}"
    );
    gw.stop();
    let logs = gw.logs();
    // libpq 17 offers ALPN on both paths, and airlock answers it on both.
    assert!(
        logs.contains("TLS established (direct: true, ALPN postgresql: true)"),
        "{logs}"
    );
    assert!(
        logs.contains("TLS established (direct: false, ALPN postgresql: true)"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_without_alpn_postgresql_is_refused() {
    let db = database().await;
    let (mut gw, token, _) = start(&db);
    let addr = gw.databases.unwrap();

    // No ALPN at all: the handshake completes (a client cannot tell before it), then the gateway
    // says why and closes, before any password is asked for. PostgreSQL 17 closes the same way.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = direct(&gw, tcp, None).await.expect("the handshake itself completes");
    let mut buf = BytesMut::new();
    let refusal = next(&mut tls, &mut buf).await.expect("an ErrorResponse");
    let text = String::from_utf8_lossy(&refusal.body).to_string();
    assert_eq!(refusal.tag, b'E', "{text}");
    assert!(text.contains("08P01") && text.contains("ALPN \"postgresql\""), "{text}");
    assert_eq!(next(&mut tls, &mut buf).await, None, "then the connection ends");

    // Another protocol's ALPN: the handshake fails, as PostgreSQL 17 fails it. rustls sends
    // no_application_protocol; the client sees that alert or, when the close overtakes it, a
    // reset, so the reason is read from the gateway's log below (rustls: "peer doesn't support
    // any known protocol").
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        direct(&gw, tcp, Some(b"http/1.1")).await.is_err(),
        "a handshake offering only http/1.1 completed"
    );

    // The listener still serves: a classic client right after.
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(ok && out.trim() == "1", "{out}");
    gw.stop();
    let logs = gw.logs();
    assert!(logs.contains("direct TLS without ALPN"), "{logs}");
    assert!(logs.contains("peer doesn't support any known protocol"), "{logs}");
}

/// [`config`] with `channel_binding` and `tls` set on the database.
fn bound_config(db: &str, tls: &str, binding: &str) -> String {
    config(db).replace(
        "tls = \"require\"",
        &format!("tls = \"{tls}\"\nchannel_binding = \"{binding}\""),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_login_is_bound_to_tls_when_the_server_offers_it() {
    let db = database().await;
    // The real server over TLS offers SCRAM-SHA-256-PLUS; `require` logs in only bound, and
    // the server checks the binding (the certificate's hash), so a wrong hash would fail here.
    let (mut gw, token, _) = start_with(&bound_config(&db, "require", "require"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(ok && out.trim() == "1", "{out}");
    gw.stop();
    let logs = gw.logs();
    assert!(
        logs.contains("database upstream login: SCRAM-SHA-256-PLUS, channel binding tls-server-end-point"),
        "{logs}"
    );
    assert!(!logs.contains(REAL), "the real password is never logged");

    // Without TLS toward the (loopback) server there is nothing to bind to: plain SCRAM, "n".
    let (mut gw, token, _) = start_with(&bound_config(&db, "disable", "prefer"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(ok && out.trim() == "1", "{out}");
    gw.stop();
    let logs = gw.logs();
    assert!(
        logs.contains("database upstream login: SCRAM-SHA-256, channel binding none"),
        "{logs}"
    );
}

/// [`bound_config`] toward a fake server at `addr` over TLS (its certificate not checked).
fn fake_config(db: &str, addr: std::net::SocketAddr, binding: &str) -> String {
    bound_config(db, "require", binding)
        .replace("upstream = \"127.0.0.1:5432\"", &format!("upstream = \"{addr}\""))
        .replace(
            "allow_private = [\"127.0.0.1:5432\"]",
            &format!("allow_private = [\"{addr}\"]"),
        )
}

/// A PostgreSQL look-alike on 127.0.0.1: TLS with a leaf from a CA of its own, then it offers
/// `mechanisms` and reports the SASLInitialResponse it gets (mechanism, client-first-message).
/// Then it refuses the login, or with `accepts` says AuthenticationOk at once, never proving it
/// knows the password (with no mechanisms: right after the startup packet, as `trust` does).
async fn fake_server(
    mechanisms: &'static [&'static str],
    accepts: bool,
) -> (
    std::net::SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (ca, _) = airlock_tls::CertificateAuthority::generate("fake database").unwrap();
    let leaf = airlock_tls::LeafCache::new(Arc::new(ca), 2).get("127.0.0.1").unwrap();
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(airlock_tls::FixedCert(leaf)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let mut ssl = [0u8; 8];
                tcp.read_exact(&mut ssl).await?;
                tcp.write_all(b"S").await?;
                let mut tls = acceptor.accept(tcp).await?;
                let mut buf = BytesMut::new();
                while codec::decode_startup(&mut buf).unwrap().is_none() {
                    if tls.read_buf(&mut buf).await? == 0 {
                        return Ok(());
                    }
                }
                let mut out = BytesMut::new();
                if !mechanisms.is_empty() {
                    let mut body = 10i32.to_be_bytes().to_vec();
                    for m in mechanisms {
                        body.extend_from_slice(m.as_bytes());
                        body.push(0);
                    }
                    body.push(0);
                    let sasl = Frame {
                        tag: b'R',
                        body: body.into(),
                    };
                    sasl.encode(&mut out);
                    tls.write_all(&out).await?;
                    out.clear();
                    if let Some(f) = next(&mut tls, &mut buf).await {
                        let mut parts = f.body.splitn(2, |b| *b == 0);
                        let mechanism = String::from_utf8_lossy(parts.next().unwrap_or_default()).to_string();
                        let first = String::from_utf8_lossy(parts.next().map(|r| &r[4..]).unwrap_or_default());
                        let _ = tx.send((mechanism, first.to_string()));
                    }
                }
                if accepts {
                    codec::authentication(0, &[]).encode(&mut out);
                    codec::ready_for_query(b'I').encode(&mut out);
                } else {
                    codec::error_response("28P01", "the fake knows no password", None).encode(&mut out);
                }
                tls.write_all(&out).await?;
                // Held open until airlock hangs up, so its verdict is its own, not a closed socket.
                while tls.read_buf(&mut buf).await? > 0 {}
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (addr, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_binding_require_refuses_a_server_that_does_not_offer_it() {
    let db = database().await;
    let with = |addr, binding: &str| fake_config(&db, addr, binding);

    // Over TLS, but only plain SCRAM offered (a server in front of which the binding was stripped).
    let (addr, mut seen) = fake_server(&["SCRAM-SHA-256"], false).await;
    let (mut gw, token, _) = start_with(&with(addr, "require"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("cannot open database \"app\"") && out.contains("channel_binding = \"require\""),
        "{out}"
    );
    gw.stop();
    assert!(
        seen.try_recv().is_err(),
        "no SCRAM message was sent: {:?}",
        seen.try_recv()
    );

    // The same server under `prefer`: plain SCRAM, saying "y" (airlock could bind, was not offered).
    let (mut gw, token, _) = start_with(&with(addr, "prefer"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(!ok, "the fake refuses every login: {out}");
    let (mechanism, first) = seen.recv().await.unwrap();
    assert_eq!(mechanism, "SCRAM-SHA-256");
    assert!(first.starts_with("y,,n=,r="), "{first}");
    gw.stop();

    // A server offering PLUS: the client-first-message carries the binding's gs2 header.
    let (addr, mut seen) = fake_server(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], false).await;
    let (mut gw, token, _) = start_with(&with(addr, "prefer"));
    let _ = psql(&gw, "analyst", &token, SELECT_1).await;
    let (mechanism, first) = seen.recv().await.unwrap();
    assert_eq!(mechanism, "SCRAM-SHA-256-PLUS");
    assert!(first.starts_with("p=tls-server-end-point,,n=,r="), "{first}");
    gw.stop();
    assert!(!gw.logs().contains(REAL));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_proves_it_knows_the_password_is_refused() {
    let db = database().await;
    let with = |addr, binding: &str| fake_config(&db, addr, binding);

    // A man in the middle (possible under tls = "require") that starts SCRAM, takes the bound
    // first message and answers AuthenticationOk: refused whatever channel_binding says.
    let (addr, mut seen) = fake_server(&["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"], true).await;
    let (mut gw, token, _) = start_with(&with(addr, "prefer"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(
        !ok && out.contains("accepted the login before completing SCRAM"),
        "{out}"
    );
    assert_eq!(seen.recv().await.unwrap().0, "SCRAM-SHA-256-PLUS");
    gw.stop();

    // One that asks for no password at all (`trust`): refused under require, as libpq refuses it.
    let (addr, _seen) = fake_server(&[], true).await;
    let (mut gw, token, _) = start_with(&with(addr, "require"));
    let (ok, out) = psql(&gw, "analyst", &token, SELECT_1).await;
    assert!(!ok && out.contains("channel_binding = \"require\""), "{out}");
    gw.stop();
}
