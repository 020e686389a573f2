//! The dashboard: being written.

use axum::Router;

use crate::ControlState;

pub fn routes() -> Router<ControlState> {
    Router::new()
}
