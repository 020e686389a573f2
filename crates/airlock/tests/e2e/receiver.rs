//! The system a signed webhook delivers to: a local receiver that accepts only deliveries
//! whose Standard Webhooks signature verifies, and records them (raw, for leak checks).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio::sync::Notify;

use super::signing::webhook_verify;

#[derive(Default)]
struct St {
    key: Vec<u8>,
    /// Verified deliveries, parsed.
    got: Mutex<Vec<Value>>,
    /// Everything received, headers and body, verified or not.
    raw: Mutex<Vec<String>>,
    refused: Mutex<Vec<String>>,
    changed: Notify,
}

pub struct Receiver {
    pub url: String,
    st: Arc<St>,
}

async fn receive(State(st): State<Arc<St>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut raw = format!("{headers:?}\n");
    raw.push_str(&String::from_utf8_lossy(&body));
    st.raw.lock().unwrap().push(raw);
    let status = match webhook_verify(&st.key, &headers, &body) {
        Ok(()) => match serde_json::from_slice::<Value>(&body) {
            Ok(v) => {
                st.got.lock().unwrap().push(v);
                StatusCode::NO_CONTENT
            }
            Err(e) => {
                st.refused.lock().unwrap().push(format!("not JSON: {e}"));
                StatusCode::BAD_REQUEST
            }
        },
        Err(e) => {
            st.refused.lock().unwrap().push(e);
            StatusCode::UNAUTHORIZED
        }
    };
    st.changed.notify_waiters();
    status
}

impl Receiver {
    pub async fn start(key: Vec<u8>) -> Receiver {
        let st = Arc::new(St { key, ..St::default() });
        let app = axum::Router::new()
            .route("/airlock", axum::routing::post(receive))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/airlock", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { url, st }
    }

    /// Verified deliveries, in order.
    pub fn deliveries(&self) -> Vec<Value> {
        self.st.got.lock().unwrap().clone()
    }

    pub fn raw(&self) -> Vec<String> {
        self.st.raw.lock().unwrap().clone()
    }

    /// Why deliveries were refused (none should be).
    pub fn refused(&self) -> Vec<String> {
        self.st.refused.lock().unwrap().clone()
    }

    /// Waits (bounded, no sleeping) for a verified delivery matching `pred`, and returns it.
    pub async fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let wait = async {
            loop {
                let notified = self.st.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(v) = self.deliveries().into_iter().find(&pred) {
                    return v;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} delivery (refused: {:?})", self.refused()))
    }
}
