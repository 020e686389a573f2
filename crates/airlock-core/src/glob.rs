//! Glob patterns used by rules: `*` (any run of characters; within one segment for
//! paths), `**` (any run, across `/`, paths only) and `?` (one character).
//! Compiled once at config load; matching is allocation-free.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(String),
    /// `*`: any run; when `seg` is set, not crossing `/`.
    Star {
        seg: bool,
    },
    Any,
}

/// A compiled glob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    src: String,
    toks: Vec<Tok>,
    exact: bool,
}

impl Glob {
    /// A glob over free text (`*` crosses everything).
    pub fn text(src: &str) -> Self {
        Self::compile(src, false)
    }

    /// A glob over a normalized path: `*` stays in a segment, `**` crosses segments.
    pub fn path(src: &str) -> Self {
        Self::compile(src, true)
    }

    fn compile(src: &str, path: bool) -> Self {
        let mut toks = Vec::new();
        let mut lit = String::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            let tok = match c {
                '*' => Tok::Star {
                    seg: path && chars.next_if_eq(&'*').is_none(),
                },
                '?' => Tok::Any,
                c => {
                    lit.push(c);
                    continue;
                }
            };
            if !lit.is_empty() {
                toks.push(Tok::Lit(std::mem::take(&mut lit)));
            }
            toks.push(tok);
        }
        if !lit.is_empty() {
            toks.push(Tok::Lit(lit));
        }
        let exact = toks.iter().all(|t| matches!(t, Tok::Lit(_)));
        Glob {
            src: src.to_string(),
            toks,
            exact,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.src
    }

    pub fn matches(&self, s: &str) -> bool {
        if self.exact {
            return self.src == s;
        }
        Self::go(&self.toks, s, false)
    }

    /// Matches ignoring ASCII case: how routers that ignore case (Express's default, ASP.NET,
    /// IIS) read a path. Whatever `matches` accepts, this accepts too.
    pub fn matches_ignore_ascii_case(&self, s: &str) -> bool {
        if self.exact {
            return self.src.eq_ignore_ascii_case(s);
        }
        Self::go(&self.toks, s, true)
    }

    /// Set-of-positions simulation: O(tokens × len), no backtracking, so hostile
    /// patterns or paths cannot make matching exponential.
    fn go(toks: &[Tok], s: &str, fold: bool) -> bool {
        let b = s.as_bytes();
        let mut cur = vec![false; b.len() + 1];
        cur[0] = true;
        for t in toks {
            let mut next = vec![false; b.len() + 1];
            match t {
                Tok::Lit(l) => {
                    for (i, _) in cur.iter().enumerate().filter(|(_, on)| **on) {
                        let hit = b.get(i..i + l.len()).is_some_and(|w| {
                            if fold {
                                w.eq_ignore_ascii_case(l.as_bytes())
                            } else {
                                w == l.as_bytes()
                            }
                        });
                        if hit {
                            next[i + l.len()] = true;
                        }
                    }
                }
                Tok::Any => {
                    for (i, _) in cur.iter().enumerate().filter(|(_, on)| **on) {
                        if let Some(c) = s.get(i..).and_then(|r| r.chars().next()) {
                            next[i + c.len_utf8()] = true;
                        }
                    }
                }
                Tok::Star { seg } => {
                    // Sweep left to right: a position is reachable if it was, or if the
                    // previous position was reachable and the byte between may be eaten.
                    let mut on = false;
                    for i in 0..=b.len() {
                        if cur[i] {
                            on = true;
                        }
                        next[i] = on;
                        if i < b.len() && *seg && b[i] == b'/' {
                            on = false;
                        }
                    }
                }
            }
            if !next.iter().any(|x| *x) {
                return false;
            }
            cur = next;
        }
        cur[b.len()]
    }
}

/// A host pattern: exact (`api.github.com`) or a subdomain wildcard (`*.example.com`,
/// which matches `a.example.com` and `a.b.example.com` but not `example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    Exact(String),
    /// Holds the suffix including its leading dot: `.example.com`.
    Suffix(String),
    /// `*`: every host.
    Any,
}

impl HostPattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim_end_matches('.').to_ascii_lowercase();
        // An exact IP literal in any spelling `getaddrinfo` takes is stored canonical, as
        // requests' hosts are (invariant 12).
        if !s.contains('*') && !s.contains('/') && !s.contains(' ') && !s.is_empty() {
            let canonical = crate::host::canonical_host(&s).map_err(|e| {
                format!("bad host pattern: {e}; use \"*.example.com\" or an exact host (no scheme, port or path)")
            })?;
            return Ok(HostPattern::Exact(canonical));
        }
        if s == "*" {
            return Ok(HostPattern::Any);
        }
        // What is left has a `*`, `/` or space in it, or is empty: only `*.rest` is a pattern.
        match s.strip_prefix("*.") {
            Some(rest) if !rest.is_empty() && !rest.contains(['*', '/', ' ']) => {
                Ok(HostPattern::Suffix(format!(".{rest}")))
            }
            _ => Err(format!(
                "bad host pattern {s:?}: use \"*.example.com\" or an exact host (no scheme, port or path)"
            )),
        }
    }

    /// `host` must already be lower-case without a trailing dot.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(sfx) => host.len() > sfx.len() && host.ends_with(sfx.as_str()),
            HostPattern::Any => true,
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*{s}"),
            HostPattern::Any => f.write_str("*"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_globs() {
        let g = Glob::path("/gmail/v1/users/*/messages/send");
        assert!(g.matches("/gmail/v1/users/me/messages/send"));
        assert!(!g.matches("/gmail/v1/users/a/b/messages/send"));
        assert!(Glob::path("/repos/**").matches("/repos/a/b/c"));
        assert!(!Glob::path("/repos/*").matches("/repos/a/b"));
        assert!(Glob::path("/v?/x").matches("/v1/x"));
        assert!(Glob::path("*").matches("anything"));
        assert!(Glob::text("*drop*").matches("x/drop/y"));
        assert!(Glob::text("").matches(""));
        assert!(!Glob::text("a").matches("ab"));
        // Pathological input stays fast enough and correct.
        let g = Glob::text("*a*a*a*a*a*b");
        assert!(!g.matches(&"a".repeat(20_000)));
        assert!(Glob::text("*é?").matches("aéé"));
    }

    #[test]
    fn host_patterns() {
        let s = HostPattern::parse("*.Example.com.").unwrap();
        assert!(s.matches("a.example.com"));
        assert!(s.matches("a.b.example.com"));
        assert!(!s.matches("example.com"));
        assert!(!s.matches("badexample.com"));
        assert!(HostPattern::parse("api.github.com").unwrap().matches("api.github.com"));
        assert!(HostPattern::parse("a*.com").is_err());
        assert!(HostPattern::parse("https://x").is_err());
    }
}
