//! The one wait the fakes share (also used by `airlock-approvals`' `cards` bench, by path).

/// Waits (bounded, no sleeping) until `pred` holds, checking each time `changed` is notified;
/// the panic names `what` and the fake's `violations`.
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
        panic!("never: {what} (violations: {:?})", violations());
    }
}
