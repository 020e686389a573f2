//! A client's way in: TLS (SSLRequest answered `S`, or PostgreSQL 17's direct TLS with ALPN
//! `postgresql`), the startup packet, then a cleartext
//! password inside TLS: on the listener the agent's token, checked against its stored hash; on
//! an agent's socket the database's placeholder (the socket names the agent). Only then does
//! airlock log in upstream with the real password.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cancel::{self, Target};
use crate::codec::{self, Frame, Startup};
use crate::upstream::{self, Stream};
use crate::{PgGateway, relay, tls};

/// Generic to the client: which part of the login was wrong is not said.
const LOGIN_FAILED: &str = "airlock: password authentication failed (user = agent name, password = agent token)";
/// The same on an agent's socket, where the password is the database's placeholder.
const SOCKET_LOGIN_FAILED: &str = "airlock: password authentication failed (user = agent name, password = the database's placeholder, as in DATABASE_URL)";

/// How a session's agent is known.
pub(crate) enum Login {
    /// The TCP listener: user = agent name, password = the agent's token.
    Token,
    /// This agent's own socket: user = its name, password = the named database's placeholder.
    Socket(String),
}

async fn send(s: &mut (impl tokio::io::AsyncWrite + Unpin), frames: &[Frame]) -> std::io::Result<()> {
    let mut out = BytesMut::new();
    for f in frames {
        f.encode(&mut out);
    }
    s.write_all(&out).await?;
    s.flush().await
}

async fn startup(s: &mut (impl tokio::io::AsyncRead + Unpin), buf: &mut BytesMut) -> std::io::Result<Startup> {
    loop {
        match codec::decode_startup(buf) {
            Ok(Some(st)) => return Ok(st),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if s.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

async fn frame(s: &mut (impl tokio::io::AsyncRead + Unpin), buf: &mut BytesMut) -> std::io::Result<Frame> {
    loop {
        match codec::decode(buf, codec::MAX_CLIENT_MESSAGE) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        if s.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
}

pub(crate) async fn run<S: Stream + 'static>(mut tcp: S, gw: Arc<PgGateway>, login: Login) -> std::io::Result<()> {
    let keys = gw.cancel.clone();
    let mut buf = BytesMut::new();
    let timeout = gw.gateway.timeouts.handshake;
    // The handshake is bounded: a client that stalls before logging in cannot keep a task.
    // `None`: the client opened with a TLS record (PostgreSQL 17's direct TLS), not a packet.
    let first = tokio::time::timeout(timeout, async {
        loop {
            if buf.is_empty() && tcp.read_buf(&mut buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if buf[0] == tls::TLS_HANDSHAKE {
                return Ok(None);
            }
            match startup(&mut tcp, &mut buf).await? {
                // GSSAPI encryption is not offered; libpq falls back to TLS.
                Startup::GssEnc => tcp.write_all(b"N").await?,
                other => return Ok::<_, std::io::Error>(Some(other)),
            }
        }
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let direct = match first {
        None => true,
        // Bytes after an SSLRequest, before our answer, were not encrypted: refused, as by PostgreSQL.
        Some(Startup::Ssl) if buf.is_empty() => false,
        Some(Startup::Ssl) => return Err(std::io::ErrorKind::InvalidData.into()),
        Some(Startup::Cancel { pid, key }) => {
            cancel::handle(&gw, &keys, pid, &key, false).await;
            return tcp.shutdown().await;
        }
        Some(_) => {
            let refusal = codec::error_response(
                "28000",
                "airlock: the database listener accepts TLS only (sslmode=require or verify-full)",
                None,
            );
            return send(&mut tcp, &[refusal]).await;
        }
    };
    if !direct {
        tcp.write_all(b"S").await?;
    }
    let leaf = match login {
        Login::Token => gw.tls.clone(),
        Login::Socket(_) => gw.socket_tls.clone(),
    };
    // Direct TLS: the bytes read so far are the start of the ClientHello; the acceptor reads them again.
    let tcp = tls::Prefixed {
        head: buf.split().freeze(),
        inner: tcp,
    };
    let mut secured = tokio::time::timeout(timeout, tokio_rustls::TlsAcceptor::from(leaf).accept(tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    // PostgreSQL 17 takes direct TLS only with ALPN `postgresql` (backend_startup.c,
    // ProcessSSLStartup), so a generic TLS client cannot be steered into speaking to it. It
    // closes without a word; airlock says why first (inside TLS), then closes the same way.
    let alpn = secured.get_ref().1.alpn_protocol() == Some(tls::ALPN);
    tracing::debug!("database client: TLS established (direct: {direct}, ALPN postgresql: {alpn})");
    if direct && !alpn {
        tracing::info!("database client refused: direct TLS without ALPN \"postgresql\"");
        let why = "airlock: direct TLS needs ALPN \"postgresql\" (libpq 17's sslnegotiation=direct sends it)";
        send(&mut secured, &[codec::error_response("08P01", why, None)]).await?;
        return secured.shutdown().await;
    }
    let mut client: Box<dyn Stream> = Box::new(secured);
    let params = match tokio::time::timeout(timeout, startup(&mut client, &mut buf)).await {
        Ok(Ok(Startup::Params { minor: 0, params })) => params,
        Ok(Ok(Startup::Params { .. })) => {
            let e = codec::error_response("08P01", "airlock: protocol 3.0 only", None);
            return send(&mut client, &[e]).await;
        }
        Ok(Ok(Startup::Cancel { pid, key })) => {
            cancel::handle(&gw, &keys, pid, &key, true).await;
            // close_notify, then the close libpq waits for.
            return client.shutdown().await;
        }
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    };
    let user = Startup::param(&params, "user").unwrap_or_default().to_string();
    let database = Startup::param(&params, "database").unwrap_or(&user).to_string();

    send(&mut client, &[codec::authentication(3, &[])]).await?;
    let pw = match tokio::time::timeout(timeout, frame(&mut client, &mut buf)).await {
        Ok(Ok(f)) if f.tag == b'p' => codec::password(&f).ok(),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    };
    let pw = airlock_vault::SecretBytes::new(pw.unwrap_or_default());
    let principal = match &login {
        Login::Token => airlock_gateway::Principal::Token {
            name: user.clone(),
            hash: airlock_gateway::token_hash(&String::from_utf8_lossy(pw.expose())),
        },
        Login::Socket(name) => airlock_gateway::Principal::Socket(name.as_str().into()),
    };
    let agent = match &login {
        Login::Token => gw.gateway.identities().resolve(&principal).map(|a| a.name.clone()),
        // The placeholder is no secret (it sits in the sandbox's environment); checking it keeps
        // a client that names another database's placeholder, or another agent, from passing.
        Login::Socket(name) => {
            let placeholder = gw.databases.get(&database).map(|db| db.config.placeholder.as_bytes());
            let same = airlock_channels::token::ct_eq(placeholder.unwrap_or_default(), pw.expose());
            (*name == user && placeholder.is_some() && same).then(|| name.clone())
        }
    };
    let allowed = agent
        .as_ref()
        .and_then(|a| gw.agents.get(a))
        .is_some_and(|dbs| dbs.contains(&database));
    let (Some(agent), true, Some(db)) = (agent, allowed, gw.databases.get(&database)) else {
        tracing::info!(user = %user, database = %database, "database login refused");
        let why = match login {
            Login::Token => LOGIN_FAILED,
            Login::Socket(_) => SOCKET_LOGIN_FAILED,
        };
        return send(&mut client, &[codec::error_response("28P01", why, None)]).await;
    };

    let app = format!("airlock:{agent}");
    let up = match upstream::connect(&db.config, &db.password, db.roots.clone(), &app, &gw.allow_private).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(database = %database, error = %e, "database upstream login failed");
            let msg = format!("airlock: cannot open database {database:?}: {e}");
            return send(&mut client, &[codec::error_response("08006", &msg, None)]).await;
        }
    };
    // The client's BackendKeyData is minted here; the server's stays with airlock.
    let minted = up.key.clone().map(|(pid, key)| {
        keys.mint(Target {
            agent: agent.clone(),
            database: database.clone(),
            addr: up.addr,
            pid,
            key,
        })
    });
    let mut hello = vec![codec::authentication(0, &[])];
    hello.extend(up.greeting.iter().cloned());
    hello.extend(minted.as_ref().map(|m| m.frame()));
    hello.push(codec::ready_for_query(up.status));
    send(&mut client, &hello).await?;
    let pids = up
        .key
        .as_ref()
        .zip(minted.as_ref())
        .map(|((server, _), m)| (*server, m.pid()));
    let who = relay::Who {
        agent,
        database,
        pids,
        login: principal,
    };
    let ended = relay::run(client, buf, up, who, gw).await;
    drop(minted);
    ended
}
