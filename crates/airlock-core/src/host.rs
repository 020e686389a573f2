//! The one spelling of a host that rules, secret bindings and the dialer compare (invariant 12).
//!
//! `getaddrinfo` accepts every `inet_aton` form of an IPv4 address — `2130706433`, `127.1`,
//! `0177.0.0.1`, `0x7f000001` — and `[::ffff:127.0.0.1]` reaches the same socket as well. A rule
//! written for `127.0.0.1` must see all of them as `127.0.0.1`, so IP literals are rewritten to
//! their canonical text before policy, before secret binding and before the dial.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Why a host cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHost(pub String);

impl std::fmt::Display for BadHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadHost {}

/// Lower-case name without trailing dots, or the canonical text of an IP literal (an
/// IPv4-mapped IPv6 address becomes the IPv4 address). Brackets are optional around IPv6.
pub fn canonical_host(raw: &str) -> Result<String, BadHost> {
    let bracketed = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
    let h = bracketed.unwrap_or(raw);
    if h.contains(':') || bracketed.is_some() {
        if h.contains('%') {
            return Err(BadHost(format!("host {raw:?}: IPv6 zone identifiers are not accepted")));
        }
        let v6: Ipv6Addr = h.parse().map_err(|_| {
            BadHost(format!(
                "host {raw:?} is not a name or an IP address (and takes no port)"
            ))
        })?;
        return Ok(match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        });
    }
    let h = h.trim_end_matches('.').to_ascii_lowercase();
    if h.is_empty() {
        return Err(BadHost("empty host".into()));
    }
    if let Some(v4) = inet_aton(&h) {
        return Ok(v4.to_string());
    }
    if let Some(c) = h
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(BadHost(format!("host {raw:?} contains {c:?}, which no DNS name holds")));
    }
    Ok(h)
}

/// The `inet_aton` reading of `s`: one to four parts, each decimal, octal (leading `0`) or hex
/// (`0x`); the last part fills the remaining bytes. `None` when `s` is not such a literal.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut nums = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            (hex, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        nums.push(u64::from_str_radix(digits, radix).ok()?);
    }
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let room = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let mut v: u64 = 0;
    for (i, n) in head.iter().enumerate() {
        v |= n << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from((v | last) as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_an_address_is_one_host() {
        for raw in [
            "127.0.0.1",
            "2130706433",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0x7f000001",
            "0x7F.0.0.1",
            "0x7f.1",
            "017700000001",
            "[::ffff:127.0.0.1]",
            "[::ffff:7f00:1]",
            "::FFFF:127.0.0.1",
            "127.0.0.1.",
        ] {
            assert_eq!(canonical_host(raw).as_deref(), Ok("127.0.0.1"), "{raw}");
        }
        assert_eq!(canonical_host("[::1]").as_deref(), Ok("::1"));
        assert_eq!(canonical_host("[0:0::1]").as_deref(), Ok("::1"));
        assert_eq!(canonical_host("API.GitHub.com.").as_deref(), Ok("api.github.com"));
        assert_eq!(canonical_host("0").as_deref(), Ok("0.0.0.0"));
    }

    #[test]
    fn names_stay_names_and_junk_is_refused() {
        // Not inet_aton literals: DNS decides, as it would for the upstream.
        for raw in ["256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x", "1..1", "a1.example"] {
            assert_eq!(canonical_host(raw).as_deref(), Ok(raw), "{raw}");
        }
        assert!(canonical_host("[fe80::1%25eth0]").is_err());
        assert!(canonical_host("[not-v6]").is_err());
        assert!(canonical_host("exa mple.com").is_err());
        assert!(canonical_host("").is_err());
        assert!(canonical_host("...").is_err());
    }
}
