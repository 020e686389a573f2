//! The fakes of the airlock binary's end-to-end tests (for the `cards` bench), with the one
//! helper they share (the same file, by path).

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
#[path = "../../../airlock/tests/e2e/wait.rs"]
mod wait;
pub use wait::wait_notified;
