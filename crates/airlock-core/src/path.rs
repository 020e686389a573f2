//! Path normalization, so that a rule on `/b` cannot be dodged with `/a/%2e%2e/b`,
//! `//b`, `/./b` or `/%62`.
//!
//! The policy matches the *decoded, resolved* path: percent-escapes are decoded (an
//! encoded `/` becomes a separator — an upstream may decode it too, so the stricter
//! reading wins), empty and `.` segments are dropped and `..` pops a segment (never above
//! the root). The bytes forwarded upstream are left as the agent sent them.

/// Percent-decodes `s`. Invalid escapes stay literal; invalid UTF-8 is replaced (U+FFFD)
/// so the result is always matchable text.
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Normalizes the path part of a request target (no query). Always starts with `/`.
pub fn normalize(raw: &str) -> String {
    // Decode repeatedly: `%252e` decodes to `%2e` and a permissive upstream could decode
    // again. Each round that changes anything shortens the string, and no server decodes
    // anywhere near 16 times, so the bound costs nothing real.
    let mut decoded = percent_decode(raw);
    for _ in 0..16 {
        let again = percent_decode(&decoded);
        if again == decoded {
            break;
        }
        decoded = again;
    }
    // Backslashes are separators to some servers (IIS, some frameworks).
    let decoded = decoded.replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(decoded.len() + 1);
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if p.is_empty() || decoded.ends_with('/') && !out.is_empty() {
        p.push('/');
    }
    p
}

/// Splits a request target's path from its query, decoding the query into pairs
/// (`+` is a space in form-style queries).
pub fn split_target(target: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    (path, parse_query(query))
}

/// Decodes `a=1&b=2` into pairs.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
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
            assert_eq!(normalize(raw), want, "{raw}");
        }
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
