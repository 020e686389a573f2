//! The fakes of the airlock binary's end-to-end tests (for the `cards` bench), with the one
//! helper they share.

#[path = "../../../airlock/tests/e2e/fake_matrix.rs"]
pub mod fake_matrix;
#[path = "../../../airlock/tests/e2e/fake_mattermost.rs"]
pub mod fake_mattermost;
#[path = "../../../airlock/tests/e2e/fake_ntfy.rs"]
pub mod fake_ntfy;
#[path = "../../../airlock/tests/e2e/fake_signal.rs"]
pub mod fake_signal;
#[path = "../../../airlock/tests/e2e/fake_whatsapp.rs"]
pub mod fake_whatsapp;

pub async fn wait_notified(
    changed: &tokio::sync::Notify,
    what: &str,
    pred: impl Fn() -> bool,
    violations: impl Fn() -> Vec<String>,
) {
    let wait = async {
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred() {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(std::time::Duration::from_secs(15), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}; violations: {:?}", violations());
    }
}
