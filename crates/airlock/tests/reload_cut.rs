//! Reloads reach connections already open, through the real binary: an agent removed from the
//! store (`airlock agent rm`) loses its kept tunnel at once (audited) and cannot open another;
//! a rule changed by `airlock policy reload` decides the next request on a kept connection;
//! and a gateway that cannot read agents and secrets again says so (the CLI exits non-zero)
//! and keeps the previous ones in force.
mod support;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use support::*;

/// One HTTPS connection through the proxy (one CONNECT tunnel, kept alive); each line on stdin
/// sends `GET /r` on it and prints `STATUS LOCALPORT` or `error MESSAGE`. After an error,
/// http.client opens a new connection (a new CONNECT) for the next line.
const KEEPER: &str = r#"
import base64, http.client, ssl, sys
proxy, port, name, token, ca = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection('127.0.0.1', int(proxy), context=ctx, timeout=20)
auth = base64.b64encode(f'{name}:{token}'.encode()).decode()
c.set_tunnel('localhost', int(port), headers={'Proxy-Authorization': 'Basic ' + auth})
for _ in sys.stdin:
    try:
        c.request('GET', '/r')
        r = c.getresponse()
        r.read()
        print(r.status, c.sock.getsockname()[1], flush=True)
    except Exception as e:
        print('error', type(e).__name__, e, flush=True)
        c.close()
"#;

struct Keeper(Child, ChildStdin, BufReader<ChildStdout>);

impl Keeper {
    fn open(gw: &Gateway, agent: &str, port: u16) -> Keeper {
        let url = gw.url(agent);
        let creds = url.trim_start_matches("http://").split('@').next().unwrap();
        let (name, token) = creds.split_once(':').unwrap();
        let mut child = Command::new("python3")
            .args([
                "-c",
                KEEPER,
                &gw.proxy.port().to_string(),
                &port.to_string(),
                name,
                token,
            ])
            .arg(gw.ca_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is required by the tests");
        let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
        Keeper(child, stdin, BufReader::new(stdout))
    }

    /// Sends one request on the kept connection; its `STATUS LOCALPORT` or `error ...`.
    fn get(&mut self) -> String {
        tokio::task::block_in_place(|| {
            self.1.write_all(b"go\n").unwrap();
            let mut line = String::new();
            self.2.read_line(&mut line).unwrap();
            line.trim().to_string()
        })
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TWO: &str = r#"
[[agents]]
name = "a"
secrets = []

[[agents]]
name = "b"
secrets = []

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_agent_loses_its_kept_tunnel_at_the_reload_and_cannot_connect_again() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], TWO, &[], &["a", "b"]);
    let mut a = Keeper::open(&gw, "a", up.port);
    let mut b = Keeper::open(&gw, "b", up.port);
    let first = a.get();
    assert!(first.starts_with("200 "), "{first}");
    assert_eq!(a.get(), first, "the same connection is kept alive");
    let b_first = b.get();
    assert!(b_first.starts_with("200 "), "{b_first}");
    // An HTTP/2 session of the same agent, kept by reqwest's pool.
    let h2 = gw.client("a");
    let url = format!("https://localhost:{}/r", up.port);
    let r = h2.get(&url).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.version()), (200, reqwest::Version::HTTP_2));
    let seen = up.requests().len();

    let o = gw.control_cli(&["agent", "rm", "a"]);
    assert!(o.status.success(), "{}", text(&o));
    // Both of a's connections (the HTTP/1.1 tunnel and the HTTP/2 one) are closed and logged.
    for _ in 0..500 {
        if gw.logs().matches("connection closed: agent removed by reload").count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The kept tunnel is closed: the request on it fails, and the retry's new CONNECT gets 407.
    let next = a.get();
    assert!(
        next.starts_with("error "),
        "a removed agent's kept tunnel served {next}"
    );
    let again = a.get();
    assert!(again.starts_with("error ") && again.contains("407"), "{again}");
    // The HTTP/2 session is gone too: reqwest's next request opens a new CONNECT, refused.
    let err = h2.get(&url).send().await.unwrap_err();
    assert!(format!("{err:?}").contains("ProxyAuthRequired"), "{err:?}");
    assert_eq!(
        up.requests().len(),
        seen,
        "nothing of a removed agent reached the upstream"
    );
    // The other agent's kept connection is untouched.
    assert_eq!(b.get(), b_first);

    gw.stop();
    let audit = gw.audit();
    let cut: Vec<_> = audit
        .iter()
        .filter(|e| {
            e["reason"]
                .as_str()
                .unwrap_or("")
                .starts_with("connection closed: agent removed by reload")
        })
        .collect();
    // One record per closed connection: the HTTP/1.1 tunnel and the HTTP/2 one.
    assert!(cut.len() >= 2 && cut.iter().all(|e| e["agent"] == "a"), "{audit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_connection_is_decided_by_the_policy_in_force_after_a_reload() {
    let up = upstream(true).await;
    let gw = Gateway::start(&[&up], TWO, &[], &["a"]);
    let mut a = Keeper::open(&gw, "a", up.port);
    let first = a.get();
    assert!(first.starts_with("200 "), "{first}");
    let port = first.split(' ').nth(1).unwrap().to_string();

    let src = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(&gw.config, src.replace("action = \"allow\"", "action = \"deny\"")).unwrap();
    let o = gw.control_cli(&["policy", "reload"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(a.get(), format!("403 {port}"), "the same connection, the new policy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reread_of_agents_and_secrets_is_reported_and_keeps_the_previous_ones() {
    let up = upstream(true).await;
    let config = format!("{ONE_SECRET}\n[[agents]]\nname = \"b\"\nsecrets = []\n");
    let gw = Gateway::start(&[&up], &config, &[("k", "real-k-value")], &["a"]);
    gw.assert_injects(&up, "real-k-value").await;
    // A sealed value the gateway cannot open (as if sealed under another master key).
    let db = gw.dir.path().join("airlock-data/airlock.db");
    let (ok, out) = python(
        "import sqlite3, sys\ndb = sqlite3.connect(sys.argv[1])\n\
         db.execute(\"UPDATE secrets SET ciphertext = zeroblob(48) WHERE name = 'k'\")\ndb.commit()",
        &[db.to_str().unwrap()],
    );
    assert!(ok, "{out}");

    let o = gw.control_cli(&["agent", "add", "b"]);
    let said = text(&o);
    assert!(!o.status.success(), "a failed re-read passed as success: {said}");
    assert!(
        said.contains("refused to reload agents and secrets")
            && said.contains("cannot unseal secret k")
            && said.contains("the previous ones stay in force"),
        "{said}"
    );
    assert!(!said.contains("real-k-value"), "{said}");
    // The previous agents and secret values stay in force; the new agent is not let in yet.
    gw.assert_injects(&up, "real-k-value").await;
    let token = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert!(token.starts_with("http://b:"), "the new token is still shown: {said}");
    // The printed URL names the configured listen address (port 0); the gateway's real one:
    let creds = token.trim_start_matches("http://").split('@').next().unwrap();
    let b = reqwest::Client::builder()
        .proxy(reqwest::Proxy::all(format!("http://{creds}@{}", gw.proxy)).unwrap())
        .build()
        .unwrap();
    let r = b.get(format!("http://localhost:{}/", up.port)).send().await.unwrap();
    assert_eq!(r.status(), 407);
}
