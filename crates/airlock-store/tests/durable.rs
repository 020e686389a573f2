//! Durable appends: what releases a side effect waits for its record to be committed — by the
//! writer's group commit, or in the very transaction that counts a vote.

mod common;

use std::time::Duration;

use airlock_store::{ApprovalRow, AuditWriter, Tally, VoteRow, WriterOptions, verify_chain};
use common::{Backend, KEY, all_seqs, event, events, new_db, on_both_backends, signer, verify_sig};

on_both_backends! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    append_durable_returns_once_its_record_is_committed,
    #[tokio::test] a_counted_vote_commits_its_records_with_it,
}

async fn append_durable_returns_once_its_record_is_committed(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    // A long linger: a record only queued would not be committed for a minute.
    let opts = WriterOptions {
        linger: Duration::from_secs(60),
        checkpoint_every: 0,
        ..WriterOptions::default()
    };
    let (audit, _task) = AuditWriter::start_with(store.clone(), signer(KEY), opts).await.unwrap();
    audit.append(event(1)).unwrap();
    // Waiters share one batch (group commit): the queued record goes in with them.
    let a = audit.clone();
    let (x, y) = tokio::join!(a.append_durable(event(2)), audit.append_durable(event(3)));
    x.unwrap();
    y.unwrap();
    assert_eq!(all_seqs(&store).await, vec![1, 2, 3]);
    audit.shutdown().await.unwrap();
    verify_chain(&store, verify_sig, KEY).await.unwrap();
}

async fn a_counted_vote_commits_its_records_with_it(backend: Backend) {
    let (_db, store) = new_db(backend).await;
    let (audit, task) = AuditWriter::start(store.clone(), signer(KEY), 1000).await.unwrap();
    audit.append(event(1)).unwrap();
    audit.flush().await.unwrap();
    store
        .insert_approval(&ApprovalRow {
            id: "a1".into(),
            agent: "mailbot".into(),
            host: "example.com".into(),
            digest: "ab".repeat(32),
            card: b"{}".to_vec(),
            state: "pending".into(),
            created_ms: 1,
            expires_ms: i64::MAX,
            decided_ms: None,
            status: None,
            replica: Some("r1".into()),
        })
        .await
        .unwrap();
    let vote = |person: &str| VoteRow {
        approval_id: "a1".into(),
        person: person.into(),
        approve: true,
        grant: false,
        channel: "cli".into(),
        at_ms: 5,
    };
    // Refused: nothing is written, the records offered with it included.
    let refused = store
        .count_vote_audited(&vote("mallory"), |_, _| (Tally::Refuse(()), events(100..=100)))
        .await
        .unwrap();
    assert_eq!(refused, Some(Tally::Refuse(())));
    assert_eq!(all_seqs(&store).await, vec![1]);
    // Recorded: the vote and its records, in one commit, with no help from the writer.
    let counted = store
        .count_vote_audited(&vote("alice"), |_, _| (Tally::Record(()), events(2..=3)))
        .await
        .unwrap();
    assert_eq!(counted, Some(Tally::Record(())));
    assert_eq!(all_seqs(&store).await, vec![1, 2, 3]);
    assert_eq!(store.votes("a1").await.unwrap().len(), 1);
    // The writer chains its next batch after them: one chain.
    audit.append(event(4)).unwrap();
    audit.shutdown().await.unwrap();
    task.await.unwrap();
    assert_eq!(all_seqs(&store).await, vec![1, 2, 3, 4]);
    let report = verify_chain(&store, verify_sig, KEY).await.unwrap();
    assert_eq!(report.records, 4);
}
