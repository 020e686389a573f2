//! GitHub App installation tokens: `POST {api}/app/installations/{id}/access_tokens` with the
//! App's JWT as bearer; GitHub answers `201 {"token": "ghs_…", "expires_at": "…Z"}` (one hour).

use airlock_config::GithubApp;
use airlock_vault::SecretBytes;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::oauth2::{Grant, GrantError, without_url};

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    expires_at: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    message: Option<String>,
}

/// Mints an installation token with the App `jwt`, at `now` (seconds since the epoch).
pub async fn installation_token(
    http: &reqwest::Client,
    app: &GithubApp,
    jwt: &SecretBytes,
    now: i64,
) -> Result<Grant, GrantError> {
    let url = format!(
        "{}/app/installations/{}/access_tokens",
        app.api_url, app.installation_id
    );
    let jwt = std::str::from_utf8(jwt.expose()).map_err(|_| GrantError::Failed("JWT is not text".into()))?;
    let auth = Zeroizing::new(format!("Bearer {jwt}"));
    let resp = http
        .post(&url)
        .header(reqwest::header::AUTHORIZATION, auth.as_str())
        .header(reqwest::header::ACCEPT, "application/vnd.github+json")
        .header("X-GitHub-Api-Version", "2022-11-28")
        .send()
        .await
        .map_err(|e| GrantError::Failed(format!("GitHub API unreachable: {}", without_url(&e))))?;
    let status = resp.status();
    let bytes = Zeroizing::new(
        resp.bytes()
            .await
            .map_err(|_| GrantError::Failed(format!("GitHub answer unreadable (HTTP {status})")))?
            .to_vec(),
    );
    if !status.is_success() {
        // GitHub's messages are fixed sentences ("Bad credentials", "Not Found"): a short, filtered
        // excerpt helps the operator without carrying anything token-like.
        let msg = serde_json::from_slice::<ErrorResponse>(&bytes)
            .ok()
            .and_then(|e| e.message)
            .map(|m| {
                m.chars()
                    .filter(|c| c.is_ascii_alphabetic() || *c == ' ')
                    .take(60)
                    .collect::<String>()
            })
            .unwrap_or_default();
        let reason = format!(
            "GitHub refused the installation token (HTTP {status}{}{msg})",
            if msg.is_empty() { "" } else { ": " }
        );
        // 401/403/404: the App, its key or the installation is gone or wrong: the operator must act.
        return Err(if matches!(status.as_u16(), 401 | 403 | 404) {
            GrantError::Refused(reason)
        } else {
            GrantError::Failed(reason)
        });
    }
    let parsed: TokenResponse = serde_json::from_slice(&bytes)
        .map_err(|_| GrantError::Failed("GitHub's answer is not an installation token".into()))?;
    let token = parsed
        .token
        .ok_or_else(|| GrantError::Failed("GitHub's answer has no token".into()))?;
    let expires_in = parsed
        .expires_at
        .as_deref()
        .and_then(rfc3339_utc)
        .map(|at| u64::try_from(at - now).unwrap_or(0));
    Ok(Grant {
        access: SecretBytes::new(token.into_bytes()),
        refresh: None,
        expires_in,
    })
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SSZ` (GitHub's `expires_at`, optionally with
/// fractional seconds).
pub fn rfc3339_utc(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let time = time.split('.').next()?;
    let d: Vec<i64> = date.split('-').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let t: Vec<i64> = time.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let ([y, m, day], [hh, mm, ss]) = (<[i64; 3]>::try_from(d).ok()?, <[i64; 3]>::try_from(t).ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_at_is_read_as_utc_seconds() {
        assert_eq!(rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_utc("2016-07-11T22:14:10Z"), Some(1_468_275_250));
        assert_eq!(rfc3339_utc("2024-02-29T12:00:00.123Z"), Some(1_709_208_000));
        assert_eq!(rfc3339_utc("2016-07-11T22:14:10+01:00"), None);
        assert_eq!(rfc3339_utc("garbage"), None);
    }
}
