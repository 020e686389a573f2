//! Replacing real secret values by their placeholders in upstream responses (invariant 2), as a
//! stream: a secret split across chunk boundaries is still caught.
//!
//! Output always equals a leftmost-longest, non-overlapping replacement over the whole body. The
//! scrubber emits a byte only once every match that could start at or before it is decided by the
//! bytes seen so far, so it holds back at most `max_secret_len - 1` trailing bytes, and only those
//! that could begin a secret.

use std::fmt;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use bytes::Bytes;
use zeroize::{Zeroize as _, Zeroizing};

use crate::secret::SecretBytes;

/// Streaming secret → placeholder replacement. Reusable: after `finish` it starts a new stream.
#[derive(Clone)]
pub struct Scrubber {
    /// `None` when there is nothing to scrub: a cheap pass-through.
    inner: Option<Box<Inner>>,
}

#[derive(Clone)]
struct Inner {
    patterns: Patterns,
    /// Trailing bytes that may be the start of a secret; capacity reserved so it never reallocates.
    pending: Zeroizing<Vec<u8>>,
}

#[derive(Clone)]
struct Patterns {
    matcher: Matcher,
    /// Indexed by pattern id.
    secrets: Vec<SecretBytes>,
    placeholders: Vec<Vec<u8>>,
    max_len: usize,
}

#[derive(Clone)]
enum Matcher {
    Automaton(AhoCorasick),
    /// Used only if the automaton cannot be built (size limits): slow, but never lets a secret through.
    Naive,
}

struct Found {
    start: usize,
    end: usize,
    pattern: usize,
}

impl Scrubber {
    /// Empty secrets are ignored; if a secret appears twice, its first placeholder wins.
    pub fn new(pairs: Vec<(SecretBytes, Vec<u8>)>) -> Self {
        Self::build(pairs, false)
    }

    /// True when there is nothing to scrub: output equals input, so lengths are preserved.
    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none()
    }

    fn build(pairs: Vec<(SecretBytes, Vec<u8>)>, force_naive: bool) -> Self {
        let mut secrets: Vec<SecretBytes> = Vec::with_capacity(pairs.len());
        let mut placeholders = Vec::with_capacity(pairs.len());
        for (secret, placeholder) in pairs {
            if !secret.is_empty() && !secrets.iter().any(|s| s.expose() == secret.expose()) {
                secrets.push(secret);
                placeholders.push(placeholder);
            }
        }
        let Some(max_len) = secrets.iter().map(SecretBytes::len).max() else {
            return Self { inner: None };
        };
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(secrets.iter().map(SecretBytes::expose));
        let matcher = match automaton {
            Ok(ac) if !force_naive => Matcher::Automaton(ac),
            _ => Matcher::Naive,
        };
        let patterns = Patterns {
            matcher,
            secrets,
            placeholders,
            max_len,
        };
        let pending = Zeroizing::new(Vec::with_capacity(max_len));
        Self {
            inner: Some(Box::new(Inner { patterns, pending })),
        }
    }

    /// Scrubs the next chunk of the body and returns what is safe to emit now.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Bytes::copy_from_slice(chunk);
        };
        if inner.pending.is_empty() {
            let (out, hold) = inner.patterns.scan(chunk, false);
            inner.pending.extend_from_slice(&chunk[hold..]);
            return Bytes::from(out);
        }
        // The joined buffer may hold a whole secret, so it is zeroized too.
        let mut joined = Zeroizing::new(Vec::with_capacity(inner.pending.len() + chunk.len()));
        joined.extend_from_slice(&inner.pending);
        joined.extend_from_slice(chunk);
        let (out, hold) = inner.patterns.scan(&joined, false);
        inner.pending.zeroize();
        inner.pending.extend_from_slice(&joined[hold..]);
        Bytes::from(out)
    }

    /// Ends the body: emits the held-back bytes, replacing any secret among them.
    pub fn finish(&mut self) -> Bytes {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Bytes::new();
        };
        if inner.pending.is_empty() {
            return Bytes::new();
        }
        let (out, _) = inner.patterns.scan(&inner.pending, true);
        inner.pending.zeroize();
        Bytes::from(out)
    }

    /// Scrubs a complete value (e.g. a header); `None` when it contains no secret.
    pub fn scrub_once(&self, value: &[u8]) -> Option<Vec<u8>> {
        let patterns = &self.inner.as_deref()?.patterns;
        patterns.find(value, 0)?;
        Some(patterns.scan(value, true).0)
    }
}

impl Patterns {
    /// Replaces every match that is decided by `hay` alone (all of them when `last`). Returns the
    /// output and the offset from which `hay` must be held back for the next chunk.
    fn scan(&self, hay: &[u8], last: bool) -> (Vec<u8>, usize) {
        let horizon_from = |pos| {
            if last {
                hay.len()
            } else {
                self.first_undecided(hay, pos)
            }
        };
        let mut out = Vec::with_capacity(hay.len());
        let mut pos = 0;
        let mut horizon = horizon_from(0);
        // Every position before `horizon` has all its possible matches inside `hay`, so the
        // leftmost-longest match found there is the same one the whole body would give.
        while let Some(m) = self.find(hay, pos)
            && m.start < horizon
        {
            out.extend_from_slice(&hay[pos..m.start]);
            out.extend_from_slice(&self.placeholders[m.pattern]);
            pos = m.end;
            if pos > horizon {
                horizon = horizon_from(pos);
            }
        }
        let hold = horizon.max(pos);
        out.extend_from_slice(&hay[pos..hold]);
        (out, hold)
    }

    /// The first position at or after `from` where more input could still start (or lengthen) a
    /// match: the rest of `hay` is a proper prefix of some secret. `hay.len()` if there is none.
    fn first_undecided(&self, hay: &[u8], from: usize) -> usize {
        let start = from.max(hay.len().saturating_sub(self.max_len - 1));
        (start..hay.len())
            .find(|&s| {
                let tail = &hay[s..];
                self.secrets
                    .iter()
                    .any(|p| p.len() > tail.len() && p.expose().starts_with(tail))
            })
            .unwrap_or(hay.len())
    }

    /// Leftmost-longest match starting at or after `from`.
    fn find(&self, hay: &[u8], from: usize) -> Option<Found> {
        match &self.matcher {
            Matcher::Automaton(ac) => ac.find(Input::new(hay).span(from..hay.len())).map(|m| Found {
                start: m.start(),
                end: m.end(),
                pattern: m.pattern().as_usize(),
            }),
            Matcher::Naive => (from..hay.len()).find_map(|start| {
                let mut best: Option<(usize, usize)> = None;
                for (i, p) in self.secrets.iter().enumerate() {
                    if hay[start..].starts_with(p.expose()) && best.is_none_or(|(_, len)| p.len() > len) {
                        best = Some((i, p.len()));
                    }
                }
                best.map(|(pattern, len)| Found {
                    start,
                    end: start + len,
                    pattern,
                })
            }),
        }
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.inner.as_ref().map_or(0, |i| i.patterns.secrets.len());
        f.debug_struct("Scrubber")
            .field("secrets", &count)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;
