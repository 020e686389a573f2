//! The HTTP client every channel talks to its platform with.

use std::time::Duration;

/// Connects within 10 s, gives up on a call after `timeout` (`None` for long polls), and never
/// follows a redirect: a redirect could carry the bot token, or a signed payload, to another host.
pub(crate) fn api_client(timeout: Option<Duration>) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    let builder = match timeout {
        Some(t) => builder.timeout(t),
        None => builder,
    };
    builder.build().unwrap_or_else(|_| reqwest::Client::new())
}
