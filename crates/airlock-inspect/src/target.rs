//! The request target → the path readings and query pairs the policy matches (invariant 12).
//!
//! Servers behind airlock read one path several ways, so the policy sees each plausible reading:
//! - **decoded**: percent-escapes decoded until nothing changes (`%252e` is `.` to a server that
//!   decodes twice), backslashes as separators (IIS), empty and `.` segments dropped, `..`
//!   popping a segment (never above the root). This is the first reading, as audited.
//! - **decoded once**, when that differs (a server that decodes a single time).
//! - **matrix parameters removed** from every segment (`/send;x` and `/x/..;/send` are `/send` to
//!   Tomcat, Jetty and Spring).
//! - **trailing slash removed** (`/send/` routes to `/send` in Spring, Express and Rails).
//! - **format suffix removed** from the last segment, with trailing dots and spaces (Rails'
//!   `(.:format)`, Spring's suffix matching and IIS route `/send.json` and `/send.` to `/send`).
//!
//! Combinations count too. A path that does not decode to UTF-8, or that decodes to a NUL, is
//! refused (400): servers disagree on it (some truncate at NUL), so no reading is safe. Case is
//! not a reading: the policy matches deny/approve paths without regard to ASCII case. The bytes
//! forwarded upstream are left exactly as the agent sent them.

use airlock_core::facts::Reading;

/// Why a request target cannot be decided on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadPath {
    /// A percent-escape decodes to bytes that are not UTF-8 text.
    NotUtf8,
    /// A percent-escape decodes to NUL.
    Nul,
}

impl std::fmt::Display for BadPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BadPath::NotUtf8 => {
                "the path has percent-escapes that do not decode to UTF-8 text, which servers read in different ways"
            }
            BadPath::Nul => "the path has a NUL byte (%00), at which some servers stop reading it",
        })
    }
}

impl std::error::Error for BadPath {}

/// Bounds repeated decoding: each round that changes anything shortens the text, and no server
/// decodes anywhere near this often.
const MAX_DECODES: usize = 16;

/// One round of percent-decoding; invalid escapes stay literal.
fn decode(s: &str) -> Result<String, BadPath> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    String::from_utf8(bytes).map_err(|_| BadPath::NotUtf8)
}

/// Every plausible reading of the path part of a request target (no query), the decoded one first.
pub fn path_readings(raw: &str) -> Result<Vec<Reading<String>>, BadPath> {
    let once = decode(raw)?;
    let mut full = once.clone();
    for _ in 0..MAX_DECODES {
        let again = decode(&full)?;
        if again == full {
            break;
        }
        full = again;
    }
    if full.contains('\0') {
        return Err(BadPath::Nul);
    }
    let mut out: Vec<Reading<String>> = Vec::with_capacity(1);
    variants(&full, None, &mut out);
    if once != full {
        variants(&once, Some("decoded once"), &mut out);
    }
    Ok(out)
}

/// The decoded, resolved path: the first reading (what rules are documented against).
pub fn normalize(raw: &str) -> Result<String, BadPath> {
    let mut readings = path_readings(raw)?;
    Ok(readings.swap_remove(0).value)
}

fn variants(decoded: &str, base: Option<&str>, out: &mut Vec<Reading<String>>) {
    const PARAMS: &str = "matrix parameters removed";
    const SLASH: &str = "trailing slash removed";
    const SUFFIX: &str = "format suffix removed";
    for (params, how1) in [(false, None), (true, Some(PARAMS))] {
        // Only paths with a `;` have a second resolution.
        if params && !decoded.contains(';') {
            continue;
        }
        let path = resolve(decoded, params);
        let slashless = path.strip_suffix('/').filter(|p| !p.is_empty()).map(str::to_owned);
        let candidates = [
            (Some(path.clone()), None, None),
            (slashless.clone(), Some(SLASH), None),
            (strip_suffix(&path), None, Some(SUFFIX)),
            (slashless.as_deref().and_then(strip_suffix), Some(SLASH), Some(SUFFIX)),
        ];
        for (value, how2, how3) in candidates {
            let Some(value) = value else { continue };
            if out.iter().any(|r| r.value == value) {
                continue;
            }
            let hows: Vec<&str> = [base, how1, how2, how3].into_iter().flatten().collect();
            out.push(if hows.is_empty() {
                Reading::as_sent(value)
            } else {
                Reading::derived(value, hows.join(", "))
            });
        }
    }
}

/// Splits on `/` and `\`, drops empty and `.` segments, pops on `..`; with `params`, each
/// segment is cut at its first `;` first (so `..;` is a dot-segment, as Tomcat reads it).
fn resolve(decoded: &str, params: bool) -> String {
    let mut segs: Vec<&str> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        let seg = if params {
            seg.split(';').next().unwrap_or("")
        } else {
            seg
        };
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s),
        }
    }
    let mut p = String::with_capacity(decoded.len() + 1);
    for s in &segs {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || (decoded.ends_with(['/', '\\']) && !segs.is_empty()) {
        p.push('/');
    }
    p
}

/// `/a/send.json` → `/a/send`, `/a/send.` → `/a/send`; None when nothing changes.
fn strip_suffix(path: &str) -> Option<String> {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    let (dir, last) = path.split_at(cut);
    // A leading dot names a hidden file (or a dot-segment), not a format.
    if last.starts_with('.') {
        return None;
    }
    let trimmed = last.trim_end_matches(['.', ' ']);
    let stem = match trimmed.char_indices().skip(1).find(|(_, c)| *c == '.') {
        Some((i, _)) => &trimmed[..i],
        None => trimmed,
    };
    (!stem.is_empty() && stem.len() < last.len()).then(|| format!("{dir}{stem}"))
}

/// Splits a request target's path from its query, decoding the query into pairs
/// (`+` is a space in form-style queries).
pub fn split_target(target: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    (path, airlock_core::inject::query_pairs(query))
}

/// The path with every query value replaced by `*` — what the audit log records.
pub fn redact_query(target: &str) -> String {
    match target.split_once('?') {
        None => target.to_string(),
        Some((p, q)) => {
            let keys: Vec<String> = q
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| format!("{}=*", kv.split('=').next().unwrap_or("")))
                .collect();
            format!("{p}?{}", keys.join("&"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(raw: &str) -> Vec<String> {
        path_readings(raw).unwrap().into_iter().map(|r| r.value).collect()
    }

    #[test]
    fn dot_segments_and_encodings_resolve() {
        for (raw, want) in [
            ("/b", "/b"),
            ("/a/%2e%2e/b", "/b"),
            ("/a/%2E%2E/b", "/b"),
            ("/a/../b", "/b"),
            ("//b", "/b"),
            ("/./b", "/b"),
            ("/%62", "/b"),
            ("/a%2f..%2fb", "/b"),
            ("/a/%252e%252e/b", "/b"),
            ("/a/%2525252525252e%2525252525252e/b", "/b"),
            ("/a\\..\\b", "/b"),
            ("/../../../b", "/b"),
            ("", "/"),
            ("/", "/"),
            ("/a/b/", "/a/b/"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(normalize(raw).unwrap(), want, "{raw}");
        }
    }

    #[test]
    fn servers_readings_are_all_present() {
        // (raw, a reading that must be among them) — each mirrors a server named in the module doc.
        for (raw, want) in [
            ("/send;param", "/send"),           // Tomcat/Jetty/Spring strip matrix parameters
            ("/x/..;/send", "/send"),           // Tomcat: `..;` is a dot-segment
            ("/send/", "/send"),                // Spring/Express: trailing slash
            ("/send;x/", "/send"),              // both
            ("/send.json", "/send"),            // Rails (.:format), Spring suffix match
            ("/send.", "/send"),                // IIS trailing dot
            ("/send%20", "/send"),              // IIS trailing space
            ("/send.json/", "/send"),           // suffix and slash
            ("/a/%252e%252e/b", "/a/%2e%2e/b"), // a server that decodes once
        ] {
            let got = values(raw);
            assert!(got.iter().any(|v| v == want), "{raw}: {got:?}");
        }
        assert_eq!(values("/v1/messages"), ["/v1/messages"]);
        assert_eq!(values("/"), ["/"]);
        assert_eq!(values("/.hidden"), ["/.hidden"]);
        assert_eq!(values("/a/..%25"), ["/a/..%"]);
    }

    #[test]
    fn undecodable_paths_are_refused() {
        assert_eq!(path_readings("/send%00"), Err(BadPath::Nul));
        assert_eq!(path_readings("/send%2500"), Err(BadPath::Nul));
        assert_eq!(path_readings("/a%FFb"), Err(BadPath::NotUtf8));
        assert_eq!(path_readings("/a%C3"), Err(BadPath::NotUtf8));
        assert_eq!(path_readings("/caf%C3%A9").unwrap()[0].value, "/café");
        // Invalid escapes are literal text to every server we mirror.
        assert_eq!(path_readings("/a%zz").unwrap()[0].value, "/a%zz");
    }

    #[test]
    fn query_is_split_decoded_and_redacted() {
        let (p, q) = split_target("/x?key=a%20b&flag&c=d+e#frag");
        assert_eq!(p, "/x");
        assert_eq!(
            q,
            vec![
                ("key".into(), "a b".into()),
                ("flag".into(), "".into()),
                ("c".into(), "d e#frag".into())
            ]
        );
        assert_eq!(redact_query("/x?key=secret&b=2"), "/x?key=*&b=*");
        assert_eq!(redact_query("/x"), "/x");
    }
}
