//! CancelRequest, mapped: each client session gets a BackendKeyData that airlock mints (a
//! random process id and secret key from the OS's CSPRNG), never the server's. A CancelRequest
//! carrying a live session's minted pair is forwarded on a fresh connection to that session's
//! server (the address its session dialed, the database's TLS setting) with the server's own
//! process id and key; anything else is dropped without an answer, as PostgreSQL does.
//!
//! The minted key is the only capability: by the protocol's design a CancelRequest carries no
//! agent identity (no user, no token), so whoever holds a session's pair can cancel that
//! session's running statement, and nothing else. The server's pair never leaves airlock, so no
//! agent can cancel another session's statements on the server directly.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::BytesMut;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::PgGateway;
use crate::codec::{self, Frame};
use crate::upstream::{self, UpstreamError};

/// Protocol 3.0's secret key is 4 bytes.
const KEY_LEN: usize = 4;

/// Where a minted pair's cancel goes. Deliberately not `Debug`: it holds the server's key.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) agent: String,
    pub(crate) database: String,
    /// The address the session dialed (resolved and checked then).
    pub(crate) addr: SocketAddr,
    pub(crate) pid: i32,
    pub(crate) key: Vec<u8>,
}

struct Entry {
    key: [u8; KEY_LEN],
    target: Target,
}

/// The minted pairs of the gateway's live sessions, by minted process id (a cancel reaching
/// another replica finds none).
#[derive(Default)]
pub struct Keys(Mutex<HashMap<i32, Entry>>);

/// A session's minted pair; dropping it (the session ended) forgets the pair.
pub(crate) struct Minted {
    keys: Arc<Keys>,
    pid: i32,
    key: [u8; KEY_LEN],
}

impl Minted {
    /// The minted process id.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// The BackendKeyData the client gets.
    pub(crate) fn frame(&self) -> Frame {
        codec::backend_key_data(self.pid, &self.key)
    }
}

impl Drop for Minted {
    fn drop(&mut self) {
        self.keys.lock().remove(&self.pid);
    }
}

impl Keys {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Entry>> {
        // A panic elsewhere while holding the lock leaves a consistent map (single inserts/removes).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mints a fresh pair for a session whose cancels go to `target`.
    pub(crate) fn mint(self: &Arc<Self>, target: Target) -> Minted {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        let mut map = self.lock();
        // Above Linux's largest process id (2^22), so never one a server's backend could have.
        let pid = loop {
            let pid = OsRng.gen_range(1 << 22..=i32::MAX);
            if !map.contains_key(&pid) {
                break pid;
            }
        };
        map.insert(pid, Entry { key, target });
        Minted {
            keys: self.clone(),
            pid,
            key,
        }
    }

    /// The target of a CancelRequest whose pair is a live session's. The key is compared in
    /// constant time, and compared (against zeros) even when the process id is unknown.
    pub(crate) fn find(&self, pid: i32, key: &[u8]) -> Option<Target> {
        let entry = self.lock().get(&pid).map(|e| (e.key, e.target.clone()));
        let expected = entry.as_ref().map(|(k, _)| *k).unwrap_or([0; KEY_LEN]);
        let same = airlock_channels::token::ct_eq(&expected, key);
        entry.filter(|_| same).map(|(_, t)| t)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// A CancelRequest from a client (`tls`: it came inside TLS). The client gets no answer either
/// way; the connection closes once the server has the request (as PostgreSQL's does).
pub(crate) async fn handle(gw: &PgGateway, keys: &Keys, pid: i32, key: &[u8], tls: bool) {
    let Some(t) = keys.find(pid, key) else {
        tracing::debug!(tls, "database cancel request matches no live session: dropped");
        return;
    };
    let Some(db) = gw.databases.get(&t.database) else {
        return;
    };
    let forwarded = tokio::time::timeout(gw.gateway.timeouts.handshake, async {
        let mut s = upstream::dial(&db.config, t.addr, db.roots.clone()).await?;
        let mut out = BytesMut::new();
        codec::cancel_request(t.pid, &t.key, &mut out);
        s.write_all(&out).await?;
        s.flush().await?;
        // The server answers nothing and closes once its backend is signalled.
        let mut sink = [0u8; 64];
        while s.read(&mut sink).await.unwrap_or(0) > 0 {}
        Ok::<_, UpstreamError>(())
    })
    .await;
    let (agent, database) = (&t.agent, &t.database);
    match forwarded {
        Ok(Ok(())) => tracing::info!(%agent, %database, tls, "database cancel request forwarded"),
        Ok(Err(e)) => tracing::warn!(%agent, %database, error = %e, "database cancel request not delivered"),
        Err(_) => tracing::warn!(%agent, %database, "database cancel request not delivered: timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            agent: "a".into(),
            database: "d".into(),
            addr: "127.0.0.1:5432".parse().unwrap(),
            pid: 42,
            key: vec![9, 9, 9, 9],
        }
    }

    #[test]
    fn only_the_minted_pair_finds_its_session_and_only_while_it_lives() {
        let keys = Arc::new(Keys::default());
        let a = keys.mint(target());
        let b = keys.mint(target());
        assert_ne!((a.pid, a.key), (b.pid, b.key));
        assert_eq!(keys.find(a.pid, &a.key).map(|t| t.pid), Some(42));
        // The server's pair, a wrong key, a key of another length, another session's key.
        assert!(keys.find(42, &[9, 9, 9, 9]).is_none());
        let mut wrong = a.key;
        wrong[3] ^= 1;
        assert!(keys.find(a.pid, &wrong).is_none());
        assert!(keys.find(a.pid, &[a.key.as_slice(), &[0]].concat()).is_none());
        if a.key != b.key {
            assert!(keys.find(a.pid, &b.key).is_none());
        }
        // An unknown process id with the dummy key it is compared against.
        let unknown = (1..).find(|p| *p != a.pid && *p != b.pid).unwrap();
        assert!(keys.find(unknown, &[0; KEY_LEN]).is_none());
        let frame = a.frame();
        assert_eq!(frame.tag, b'K');
        assert_eq!(&frame.body[..4], &a.pid.to_be_bytes());
        assert_eq!(&frame.body[4..], &a.key);
        let pid = a.pid;
        let key = a.key;
        drop(a);
        assert!(keys.find(pid, &key).is_none());
        assert_eq!(keys.len(), 1);
    }
}
