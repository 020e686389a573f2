//! Scale-out: several `airlock serve` replicas over one PostgreSQL database, as an operator runs
//! them. `airlock init` runs once against a fresh database; secrets are sealed and agent tokens
//! issued once (they live in the shared database); then every replica gets a data directory of
//! its own holding copies of the first one's CA, master key and control token (replicas share
//! key and CA by configuration), its own config file and ports, and the same `[store] url`,
//! rules, agents, people and channels.
//!
//! A [`Cable`] may sit between the replicas and the database: a TCP forwarder that cuts the
//! connection on demand, which is a real outage as a gateway sees it (stopping the shared server
//! itself would break the other tests running against it).

use std::ops::{Index, IndexMut};
use std::path::Path;
use std::process::{Command, Output};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{BIN, Gateway, STORE_URL_ENV, Upstream, airlock, gateway_section, text};

#[path = "../../../airlock-store/tests/common/pg.rs"]
pub mod pg;

/// What a [`Cluster`] runs. `Options { replicas: 3, upstreams: &[&up], config: …, ..Default::default() }`.
#[derive(Default)]
pub struct Options<'a> {
    pub replicas: usize,
    /// The test upstreams every replica trusts and may dial.
    pub upstreams: &'a [&'a Upstream],
    /// The config after `[gateway]` (agents, secrets, rules, people, channels); no `[store]`.
    pub config: &'a str,
    /// Sealed once, as (name, value).
    pub secrets: &'a [(&'a str, &'a str)],
    /// Issued once: every replica accepts the same tokens.
    pub agents: &'a [&'a str],
    /// The serve processes' environment (channel credentials are read from it).
    pub env: &'a [(&'a str, &'a str)],
    /// Replicas reach the database through this forwarder instead of directly.
    pub cable: Option<&'a Cable>,
    /// More `[store]` keys, one per line (e.g. `lease = "2s"`).
    pub store: &'a str,
}

/// Replicas of one gateway sharing a PostgreSQL database. Index it for a replica:
/// `cluster[1].client("a")`, `cluster[0].cli(&["audit", "verify"])`.
pub struct Cluster {
    pub replicas: Vec<Gateway>,
    /// The `[store] url` every replica has (through the cable when there is one).
    pub store_url: String,
    env: Vec<(String, String)>,
    /// Dropped after the replicas (fields drop in order): no replica outlives its database.
    pub db: pg::Database,
}

impl Cluster {
    /// Creates a database, sets it up once and starts `opts.replicas` serve processes on it.
    pub async fn start(opts: Options<'_>) -> Cluster {
        assert!(opts.replicas > 0, "a cluster needs at least one replica");
        let db = pg::Database::create().await;
        let store_url = match opts.cable {
            Some(c) => c.url(&db.url),
            None => db.url.clone(),
        };
        let body = format!(
            "{}{}\n[store]\nurl = {store_url:?}\n{}\n",
            gateway_section(opts.upstreams),
            opts.config,
            opts.store
        );
        let first = tempfile::tempdir().unwrap();
        let o = init(first.path(), &store_url);
        assert!(o.status.success(), "init: {}", text(&o));
        let mut dirs = vec![first];
        for _ in 1..opts.replicas {
            let dir = tempfile::tempdir().unwrap();
            copy_keys(&dirs[0].path().join("airlock-data"), &dir.path().join("airlock-data"));
            dirs.push(dir);
        }
        for dir in &dirs {
            std::fs::write(dir.path().join("airlock.toml"), &body).unwrap();
            for (i, u) in opts.upstreams.iter().enumerate() {
                if let Some(pem) = &u.ca_pem {
                    std::fs::write(dir.path().join(format!("upstream-{i}.pem")), pem).unwrap();
                }
            }
        }
        let config = dirs[0].path().join("airlock.toml");
        for (name, value) in opts.secrets {
            let o = airlock(&config, &["secret", "set", name], Some(value.as_bytes()), &[]);
            assert!(o.status.success(), "secret set: {}", text(&o));
        }
        let mut agents = Vec::new();
        for a in opts.agents {
            let o = airlock(&config, &["agent", "add", a], None, &[]);
            assert!(o.status.success(), "agent add: {}", text(&o));
            let url = String::from_utf8_lossy(&o.stdout).lines().last().unwrap().to_string();
            agents.push((a.to_string(), url));
        }
        let env: Vec<(&str, &str)> = opts.env.to_vec();
        let replicas = dirs
            .into_iter()
            .map(|dir| {
                let config = dir.path().join("airlock.toml");
                Gateway::serving_env(dir, config, agents.clone(), &env)
            })
            .collect();
        Cluster {
            replicas,
            store_url,
            env: opts.env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            db,
        }
    }

    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    /// SIGKILL: the replica gets no chance to flush or clean up (a crash, an OOM kill).
    pub fn kill9(&mut self, i: usize) {
        let g = &mut self.replicas[i];
        if let Some(mut c) = g.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(w) = g.log_writer.take() {
            let _ = w.join();
        }
    }

    /// Starts replica `i` again (after [`Cluster::kill9`] or [`Gateway::stop`]), with the
    /// cluster's environment, on new ports; its log is a new file.
    pub fn restart(&mut self, i: usize) {
        self.replicas[i].stop();
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.replicas[i].serve(&env);
    }

    /// SIGTERM to every replica, and wait for each to flush its audit log.
    pub fn stop(&mut self) {
        for g in &mut self.replicas {
            g.stop();
        }
    }

    /// Stops every replica, then checks what they leave: no panic and never `secret` in their
    /// logs, and one audit chain that `airlock audit verify` accepts. Returns its records.
    pub fn stop_and_verify(&mut self, secret: &str) -> Vec<serde_json::Value> {
        self.stop();
        let logs = self.logs();
        assert!(!logs.contains("panicked"), "{logs}");
        assert!(!logs.contains(secret), "a real secret reached a log");
        let o = self.replicas[0].cli(&["audit", "verify"]);
        assert!(o.status.success(), "{}", text(&o));
        self.replicas[0].audit()
    }

    /// Every replica's log, each under a `== replica i ==` heading.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (i, g) in self.replicas.iter().enumerate() {
            all.push_str(&format!("== replica {i} ==\n{}\n", g.logs()));
        }
        all
    }
}

impl Index<usize> for Cluster {
    type Output = Gateway;
    fn index(&self, i: usize) -> &Gateway {
        &self.replicas[i]
    }
}

impl IndexMut<usize> for Cluster {
    fn index_mut(&mut self, i: usize) -> &mut Gateway {
        &mut self.replicas[i]
    }
}

/// `airlock init --dir DIR` with `AIRLOCK_STORE_URL=store_url`.
pub fn init(dir: &Path, store_url: &str) -> Output {
    Command::new(BIN)
        .args(["init", "--dir"])
        .arg(dir)
        .env(STORE_URL_ENV, store_url)
        .output()
        .unwrap()
}

/// What replicas share by configuration: the local CA, the master key and the control token.
fn copy_keys(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in ["ca.pem", "ca-key.pem", "master.key", "control.token"] {
        // `copy` keeps the permissions (the keys are the operator's alone).
        std::fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

/// A TCP forwarder to the test PostgreSQL server that can be cut and restored.
pub struct Cable {
    pub port: u16,
    target: u16,
    up: watch::Sender<bool>,
    silent: watch::Sender<bool>,
}

impl Cable {
    /// A forwarder to the server the test databases live on.
    pub async fn to_test_server() -> Cable {
        Cable::start(port_of(&pg::server_url())).await
    }

    pub async fn start(target: u16) -> Cable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, rx) = watch::channel(true);
        let (silent, quiet) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let (mut rx, mut quiet) = (rx.clone(), quiet.clone());
                if !*rx.borrow() {
                    continue; // dropped: the client sees its connection closed
                }
                if *quiet.borrow() {
                    // Accepted, never answered, until the silence ends (then reset).
                    tokio::spawn(async move {
                        let _held = client;
                        let _ = quiet.wait_for(|s| !*s).await.map(|_| ());
                    });
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let silenced = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => false,
                        _ = rx.wait_for(|up| !*up) => false, // cut: both ends dropped
                        s = quiet.wait_for(|s| *s) => s.is_ok(),
                    };
                    // Silent: both ends stay open and nothing passes, as when a server hangs or
                    // a network drops packets; reset when the silence ends.
                    if silenced {
                        let _ = quiet.wait_for(|s| !*s).await.map(|_| ());
                    }
                });
            }
        });
        Cable {
            port,
            target,
            up,
            silent,
        }
    }

    /// `db_url` (a database on the target server) with the cable's port instead.
    pub fn url(&self, db_url: &str) -> String {
        let to = format!(":{}/", self.target);
        assert!(db_url.contains(&to), "{db_url} is not on port {}", self.target);
        db_url.replacen(&to, &format!(":{}/", self.port), 1)
    }

    /// Cut (`false`): open connections are reset and new ones closed at once. Restore (`true`).
    pub fn set(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// Silence (`true`): connections stay open but nothing passes either way, and new ones are
    /// accepted and never answered — a server that stopped answering. `false` resets them all.
    pub fn silence(&self, silent: bool) {
        self.silent.send_replace(silent);
    }
}

/// The port of `postgres://user:pass@host:PORT/db` (5432 when it names none).
fn port_of(url: &str) -> u16 {
    let authority = url.split('@').nth(1).and_then(|r| r.split('/').next()).unwrap();
    authority.rsplit_once(':').map_or(Ok(5432), |(_, p)| p.parse()).unwrap()
}

/// One GET with agent `a`'s placeholder (see [`super::ONE_SECRET`]); 0 when no HTTP answer came
/// back at all (a reset or refused connection).
pub async fn status(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .header("x-key", "airlock-k-placeholder")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Sends requests until `want` comes back (bounded, about 12 s and more): the store's state
/// changes asynchronously to the requests, so the first ones after a cut may still pass. Every
/// status seen is pushed onto `seen`.
pub async fn until_status(client: &reqwest::Client, url: &str, want: u16, seen: &mut Vec<u16>) -> bool {
    for _ in 0..600 {
        let status = status(client, url).await;
        seen.push(status);
        if status == want {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    false
}
