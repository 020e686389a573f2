//! `[compat.onecli]`: the OneCLI-compatible provisioning and approvals API on the control
//! listener (for NanoClaw and other clients of `@onecli-sh/sdk`). Absent → the API is off.

use toml::Table;

use crate::approvals::PersonConfig;
use crate::error::{Errors, KeyPath};
use crate::raw::Fields;

/// `[compat.onecli]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneCliConfig {
    /// `proxy_url`: airlock's proxy as the agents' containers reach it, `http://HOST:PORT`
    /// (the agent's credential is added to it per agent).
    pub proxy_url: String,
    /// `approver`: the `[people.*]` entry whose vote a decision posted through the API is.
    /// Without it, the approvals endpoints offer nothing.
    pub approver: Option<String>,
}

/// Where a container on Docker's default bridge reaches a gateway listening on the host.
pub const DEFAULT_PROXY_URL: &str = "http://host.docker.internal:3128";

/// Reads `[compat]` (only `onecli` inside it); `people` are the configured persons.
pub(crate) fn read(table: Option<&Table>, people: &[PersonConfig], errs: &mut Errors) -> Option<OneCliConfig> {
    let t = table?;
    let compat = Fields::new(t, KeyPath::root().key("compat"), &["onecli"], errs);
    let t = compat.table("onecli", errs)?;
    let f = Fields::new(
        t,
        KeyPath::root().key("compat").key("onecli"),
        &["proxy_url", "approver"],
        errs,
    );
    let proxy_url = match f.str("proxy_url", errs) {
        Some(u) => match check_proxy_url(u) {
            Ok(()) => u.trim_end_matches('/').to_string(),
            Err(problem) => {
                errs.push(&f.at("proxy_url"), problem);
                DEFAULT_PROXY_URL.to_string()
            }
        },
        None => DEFAULT_PROXY_URL.to_string(),
    };
    let approver = f.str("approver", errs).and_then(|a| {
        match people.iter().find(|p| p.name == a) {
            Some(p) if p.roles.is_empty() => {
                errs.push(
                    &f.at("approver"),
                    format!("person {a:?} holds no roles, so could approve nothing"),
                );
            }
            Some(_) => return Some(a.to_string()),
            None => errs.push(
                &f.at("approver"),
                format!("{a:?} is not a configured person (add [people.{a}] with roles)"),
            ),
        }
        None
    });
    Some(OneCliConfig { proxy_url, approver })
}

/// `http://HOST:PORT` with nothing else: the credential is added per agent, so none may be
/// written here, and a path or query would be dropped by every proxy client.
fn check_proxy_url(u: &str) -> Result<(), String> {
    const EXPECTED: &str = "expected http://HOST:PORT (airlock's proxy as the containers reach it)";
    let Some(rest) = u.trim_end_matches('/').strip_prefix("http://") else {
        return Err(EXPECTED.into());
    };
    if rest.contains(['@', '/', '?', '#']) || rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("{EXPECTED}: no credentials, path or query"));
    }
    let Some((host, port)) = rest.rsplit_once(':') else {
        return Err(format!("{EXPECTED}: the port is missing"));
    };
    if host.is_empty() || !port.parse::<u16>().is_ok_and(|p| p != 0) {
        return Err(EXPECTED.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_proxy_url;

    #[test]
    fn proxy_urls() {
        assert!(check_proxy_url("http://host.docker.internal:3128").is_ok());
        assert!(check_proxy_url("http://172.17.0.1:3128/").is_ok());
        for bad in [
            "https://h:1",
            "http://u:p@h:1",
            "http://h",
            "http://h:0",
            "http://h:1/x",
            "http://:1",
        ] {
            assert!(check_proxy_url(bad).is_err(), "{bad}");
        }
    }
}
