//! `airlock healthcheck`: one `GET /readyz` on the control plane, exit 0 when it answers 200.
//! For container `HEALTHCHECK`s and service managers: the gateway image ships no curl.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// The whole probe, connection included: well under a container engine's default timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `url` (the control plane's base URL) else `AIRLOCK_CONTROL_URL`, else the config's
/// `gateway.control` (an unspecified address is probed on loopback).
pub async fn run(cfg: &Path, url: Option<&str>) -> anyhow::Result<ExitCode> {
    let base = match url
        .map(str::to_string)
        .or_else(|| std::env::var("AIRLOCK_CONTROL_URL").ok())
    {
        Some(u) if !u.is_empty() => u.trim_end_matches('/').to_string(),
        _ => {
            let config = airlock_config::Config::load(cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut a = config.gateway.control;
            if a.ip().is_unspecified() {
                a.set_ip(if a.is_ipv4() {
                    std::net::Ipv4Addr::LOCALHOST.into()
                } else {
                    std::net::Ipv6Addr::LOCALHOST.into()
                });
            }
            format!("http://{a}")
        }
    };
    let http = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (ok, why) = match http.get(format!("{base}/readyz")).send().await {
        Ok(r) => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            let body = airlock_channels::text::one_line(&body);
            (status == reqwest::StatusCode::OK, format!("{} {body}", status.as_u16()))
        }
        Err(e) => (false, format!("no answer: {e}")),
    };
    if ok {
        println!("ready ({base}/readyz: {why})");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("not ready ({base}/readyz: {why})");
        Ok(ExitCode::FAILURE)
    }
}
