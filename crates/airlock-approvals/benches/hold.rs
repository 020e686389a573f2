//! Approvals latency and memory, against a real SQLite store and a real signed-webhook
//! channel posting to a local receiver (the "local fake"):
//! - hold → card received by the platform, p50/p99;
//! - last vote → the waiting request released, p50/p99;
//! - RSS with 10,000 requests held at once.
//!
//! `cargo bench -p airlock-approvals --bench hold` (figures in docs/performance.md).

mod common;

use common::{pct, request};

use std::sync::Arc;
use std::time::Instant;

use airlock_approvals::{Hub, HubConfig, Verdict};
use airlock_channels::token::Decision;
use airlock_channels::webhook::{Webhook, WebhookConfig};
use airlock_channels::{Channel, Person};
use airlock_store::{AuditWriter, Signer, Store, WriterOptions};
use axum::Router;
use axum::routing::post;
use tokio::sync::mpsc;

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn hub(dir: &std::path::Path, channels: Vec<Arc<dyn Channel>>) -> Hub {
    let store = Store::create_sqlite(&dir.join("a.db")).await.unwrap();
    let signer: Signer = Arc::new(|m: &[u8]| (m.to_vec(), b"k".to_vec()));
    let (audit, _) = AuditWriter::start_with(
        store.clone(),
        signer,
        WriterOptions {
            queue_capacity: 100_000,
            ..WriterOptions::default()
        },
    )
    .await
    .unwrap();
    let mut ids = std::collections::BTreeMap::new();
    ids.insert("webhook".to_string(), "alice@example.com".to_string());
    Hub::start(
        HubConfig {
            people: vec![Person {
                name: "alice".into(),
                roles: vec!["owner".into()],
                ids,
            }],
            channels,
            token_key: vec![9; 32],
            lease: std::time::Duration::from_secs(10),
        },
        store,
        audit,
    )
    .await
    .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // The receiver: notes when each card arrives.
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, String)>();
    let app = Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if v["type"] == "approval.requested" {
                    let id = v["data"]["card"]["id"].as_str().unwrap_or("").to_string();
                    let _ = tx.send((Instant::now(), id));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let secret = airlock_channels::webhook::parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let webhook: Arc<dyn Channel> = Arc::new(Webhook::new(WebhookConfig {
        url: format!("http://{addr}/hook"),
        secret,
    }));

    let dir = tempfile::tempdir().unwrap();
    let h = hub(dir.path(), vec![webhook]).await;
    const N: usize = 2000;
    let mut to_card = Vec::with_capacity(N);
    let mut to_release = Vec::with_capacity(N);
    for i in 0..N {
        let t0 = Instant::now();
        let ticket = h.hold(request(i)).await.unwrap();
        let (arrived, id) = rx.recv().await.unwrap();
        assert_eq!(id, ticket.id());
        if i >= 100 {
            to_card.push(arrived - t0);
        }
        let id = ticket.id().to_string();
        let waiter = tokio::spawn(async move {
            let v = ticket.wait().await;
            (Instant::now(), v)
        });
        let t1 = Instant::now();
        h.vote(&id, "alice", Decision::Approve, "bench").await.unwrap();
        let (released, v) = waiter.await.unwrap();
        assert!(matches!(v, Verdict::Approved { .. }));
        if i >= 100 {
            to_release.push(released - t1);
        }
    }
    println!(
        "hold → card received (webhook, local receiver), {} holds: p50 {:.2} ms, p99 {:.2} ms",
        to_card.len(),
        pct(&mut to_card, 0.50),
        pct(&mut to_card, 0.99)
    );
    println!(
        "last vote → request released, {} votes: p50 {:.2} ms, p99 {:.2} ms",
        to_release.len(),
        pct(&mut to_release, 0.50),
        pct(&mut to_release, 0.99)
    );

    // Memory: 10,000 held at once (cards built and persisted; no channel, so this measures
    // the hub's own cost per held request).
    let dir2 = tempfile::tempdir().unwrap();
    let h2 = hub(dir2.path(), vec![]).await;
    let before = rss_mb();
    let mut tickets = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        tickets.push(h2.hold(request(i)).await.unwrap());
    }
    let after = rss_mb();
    println!(
        "10,000 held at once: RSS {before:.1} MB → {after:.1} MB (+{:.1} MB, {:.1} KB per held request)",
        after - before,
        (after - before) * 1024.0 / 10_000.0
    );
    std::mem::forget(tickets);
}
