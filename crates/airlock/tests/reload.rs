//! Policy hot reload through the real binary (`airlock policy reload`, SIGHUP): new rules
//! apply to the next request, requests in flight are not lost, held approvals stay held unless
//! the rule that held them is gone, and an invalid file or a change that needs a restart
//! changes nothing.
mod support;
use std::process::Command;
use support::*;

const BASE: &str = r#"
[[agents]]
name = "a"
secrets = []

[people.alice]
roles = ["owner"]

[[rules]]
name = "reads"
hosts = ["localhost"]
methods = ["GET"]
action = "allow"

[[rules]]
name = "deploys need a human"
hosts = ["localhost"]
paths = ["/deploy", "/ship"]
action = "approve"
approvers = ["owner"]
"#;

const WRITES: &str = r#"
[[rules]]
name = "writes"
hosts = ["localhost"]
paths = ["/write"]
action = "allow"
"#;

fn post(gw: &Gateway, port: u16, path: &str) -> tokio::task::JoinHandle<u16> {
    let req = gw.client("a").post(format!("https://localhost:{port}{path}")).body("x");
    tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
}

async fn get(gw: &Gateway, port: u16) -> u16 {
    let r = gw
        .client("a")
        .get(format!("https://localhost:{port}/r"))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

fn rewrite(gw: &Gateway, f: impl FnOnce(String) -> String) {
    let src = std::fs::read_to_string(&gw.config).unwrap();
    std::fs::write(&gw.config, f(src)).unwrap();
}

async fn metrics(gw: &Gateway) -> String {
    reqwest::get(format!("http://{}/metrics", gw.control))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_applies_to_new_requests_and_keeps_held_approvals_and_in_flight_requests() {
    let up = upstream(true).await;
    let mut gw = Gateway::start(&[&up], BASE, &[], &["a"]);
    let mut events = Events::open(&gw).await;
    let held = post(&gw, up.port, "/deploy");
    let id = events.next("pending").await;
    assert_eq!(get(&gw, up.port).await, 200);
    assert_eq!(post(&gw, up.port, "/write").await.unwrap(), 403, "not allowed yet");

    // Requests keep flowing while the policy changes under them.
    let load: Vec<_> = (0..4)
        .map(|_| {
            let client = gw.client("a");
            let url = format!("https://localhost:{}/r", up.port);
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    statuses.push(client.get(&url).send().await.unwrap().status().as_u16());
                }
                statuses
            })
        })
        .collect();
    rewrite(&gw, |s| format!("{s}{WRITES}"));
    let o = gw.control_cli(&["policy", "reload"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("added:   writes") && out.contains("removed: none"),
        "{out}"
    );
    for l in load {
        assert!(
            l.await.unwrap().iter().all(|s| *s == 200),
            "a request was lost in the reload"
        );
    }
    assert_eq!(post(&gw, up.port, "/write").await.unwrap(), 200, "the new rule applies");
    // `airlock status` names the file now in force, and the request still held.
    let o = gw.control_cli(&["status", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let (ok, sha) = python(
        "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        &[gw.config.to_str().unwrap()],
    );
    assert!(ok);
    assert_eq!(st["policy"]["sha256"], sha.trim(), "{st}");
    assert_eq!(
        (st["policy"]["rules"].as_u64(), st["approvals"]["pending"].as_u64()),
        (Some(3), Some(1)),
        "{st}"
    );
    assert!(st["version"].as_str().unwrap().contains("commit"), "{st}");
    let o = gw.control_cli(&["status"]);
    assert!(
        text(&o).contains("policy: 3 rules, default deny") && text(&o).contains("1 pending"),
        "{}",
        text(&o)
    );

    // An invalid file is refused with file:line:key; the policy in force stays.
    rewrite(&gw, |s| {
        format!("{s}\n[[rules]]\nname = \"bad\"\naction = \"sometimes\"\n")
    });
    let o = gw.control_cli(&["policy", "reload"]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("airlock.toml:") && text(&o).contains("action"),
        "{}",
        text(&o)
    );
    // The gateway validates on its own too (SIGHUP does not go through the CLI).
    let pid = gw.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    gw.wait_log("policy reload refused").await;
    // A change that needs a restart is named, and refused.
    rewrite(&gw, |s| {
        let s = s.replace("\n[[rules]]\nname = \"bad\"\naction = \"sometimes\"\n", "");
        s.replace("[people.alice]", "[people.bob]\nroles = [\"owner\"]\n\n[people.alice]")
    });
    let o = gw.control_cli(&["policy", "reload"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("[people] changed"), "{}", text(&o));
    assert_eq!(post(&gw, up.port, "/write").await.unwrap(), 200);

    // The approval held before the reloads is still held, and its vote still forwards it.
    assert!(!held.is_finished());
    let o = gw.control_cli(&["approvals", "approve", &id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(held.await.unwrap(), 200);
    assert!(up.requests().iter().any(|r| r.target == "/deploy"));

    let m = metrics(&gw).await;
    assert!(m.contains("airlock_policy_reloads_total 1"), "{m}");
    assert!(m.contains("airlock_policy_reloads_refused_total 2"), "{m}");
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    for want in [
        "policy reloaded by control plane: 1 added, 0 removed, 0 changed",
        "policy reload by signal SIGHUP refused",
        "[people] changed",
    ] {
        assert!(audit.contains(want), "no {want:?} in the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_refuses_a_held_request_whose_rule_is_gone_and_keeps_the_others() {
    let up = upstream(true).await;
    let config = BASE.replace(
        "[[rules]]\nname = \"deploys need a human\"",
        "[[rules]]\nname = \"ships need a human\"\nhosts = [\"localhost\"]\npaths = [\"/ship\"]\naction = \"approve\"\napprovers = [\"owner\"]\n\n[[rules]]\nname = \"deploys need a human\"",
    )
    .replace("paths = [\"/deploy\", \"/ship\"]", "paths = [\"/deploy\"]");
    let mut gw = Gateway::start(&[&up], &config, &[], &["a"]);
    let mut events = Events::open(&gw).await;
    let ship = post(&gw, up.port, "/ship");
    let ship_id = events.next("pending").await;
    let deploy = post(&gw, up.port, "/deploy");
    let deploy_id = events.next("pending").await;

    // "ships need a human" goes; the rule holding /deploy changes but still approves.
    rewrite(&gw, |s| {
        s.replace(
            "[[rules]]\nname = \"ships need a human\"\nhosts = [\"localhost\"]\npaths = [\"/ship\"]\naction = \"approve\"\napprovers = [\"owner\"]\n",
            "",
        )
        .replace("paths = [\"/deploy\"]", "paths = [\"/deploy\", \"/deploy/*\"]")
    });
    let pid = gw.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    assert_ne!(ship.await.unwrap(), 200, "a hold whose rule is gone is refused");
    assert_eq!(events.next("failed").await, ship_id);
    assert!(!deploy.is_finished(), "a hold whose rule only changed stays held");
    let o = gw.control_cli(&["approvals", "show", &ship_id]);
    assert!(text(&o).contains("no longer holds this request"), "{}", text(&o));
    // The removed rule no longer matches: /ship falls to the default (deny).
    assert_eq!(post(&gw, up.port, "/ship").await.unwrap(), 403);
    let o = gw.control_cli(&["approvals", "approve", &deploy_id, "--as", "alice"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(deploy.await.unwrap(), 200);
    assert!(
        !up.requests().iter().any(|r| r.target == "/ship"),
        "nothing held was forwarded without approval"
    );
    gw.stop();
    let audit = serde_json::to_string(&gw.audit()).unwrap();
    assert!(
        audit.contains("policy reloaded by signal SIGHUP: 0 added, 1 removed, 1 changed"),
        "{audit}"
    );
}

/// With replicas over PostgreSQL, a reload on one reaches the others (NOTIFY): each loads its
/// own copy of the file, and `airlock status` names the policy every replica runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_on_one_replica_reaches_the_others_and_status_names_each_replicas_policy() {
    use support::replicas::{Cluster, Options};
    let up = upstream(true).await;
    let mut cluster = Cluster::start(Options {
        replicas: 2,
        upstreams: &[&up],
        config: BASE,
        agents: &["a"],
        ..Options::default()
    })
    .await;
    for g in &cluster.replicas {
        assert_eq!(post(g, up.port, "/write").await.unwrap(), 403, "not allowed yet");
    }
    // The operator deploys the new file to every replica and reloads one of them.
    for g in &cluster.replicas {
        rewrite(g, |s| format!("{s}{WRITES}"));
    }
    let o = cluster[0].control_cli(&["policy", "reload"]);
    assert!(o.status.success(), "{}", text(&o));
    cluster[1]
        .wait_log("policy reloaded after another replica's reload (1 added")
        .await;
    assert_eq!(
        post(&cluster[1], up.port, "/write").await.unwrap(),
        200,
        "the other replica applies it"
    );

    let (ok, sha) = python(
        "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        &[cluster[0].config.to_str().unwrap()],
    );
    assert!(ok);
    let o = cluster[1].control_cli(&["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let replicas = st["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{st}");
    assert!(replicas.iter().all(|r| r["policy_sha256"] == sha.trim()), "{st}");
    assert_eq!(replicas.iter().filter(|r| r["this"] == true).count(), 1, "{st}");
    let o = cluster[1].control_cli(&["status"]);
    assert!(
        text(&o).contains("replicas sharing the store:") && text(&o).contains("(this one)"),
        "{}",
        text(&o)
    );

    // The replica told first does not reload twice on hearing its own announcement.
    let audit = cluster.stop_and_verify("no-secret-here");
    let reloads: Vec<_> = audit
        .iter()
        .filter(|e| e["kind"] == "policy" && e["decision"] == "reloaded")
        .collect();
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    assert!(
        reloads
            .iter()
            .any(|e| e["detail"]["by"] == "another replica (store notification)"),
        "{reloads:?}"
    );
}
