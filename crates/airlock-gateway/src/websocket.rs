//! WebSocket relay: policy and injection happened at the handshake; after both sides
//! switched protocols, frames are copied as they are.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

pub async fn relay(agent: OnUpgrade, upstream: OnUpgrade) {
    let (a, u) = match tokio::try_join!(agent, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            return;
        }
    };
    let (mut a, mut u) = (TokioIo::new(a), TokioIo::new(u));
    if let Err(e) = tokio::io::copy_bidirectional(&mut a, &mut u).await {
        tracing::debug!(error = %e, "websocket relay ended");
    }
}
