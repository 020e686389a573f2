//! Replacing real secret values by their placeholders in upstream responses (invariant 2), as a
//! stream: a secret split across chunk boundaries is still caught, and so is a secret echoed
//! base64-encoded, JSON-escaped or percent-encoded (`forms.rs`, `views.rs`).
//!
//! Output always equals a leftmost-longest, non-overlapping replacement over the whole body,
//! where a match is a pattern (a form of a secret) found in the raw bytes or in a decoded view
//! of them, and spans the raw bytes it was decoded from. The scrubber emits a byte only once
//! every match that could start at or before it is decided by the bytes seen so far, so it
//! holds back only bytes that could begin a pattern (in some view), never more than the
//! longest pattern's raw length.

use std::fmt;
use std::sync::Arc;

use aho_corasick::{AhoCorasick, AhoCorasickKind, Input, MatchKind};
use bytes::Bytes;
use zeroize::{Zeroize as _, Zeroizing};

use crate::forms::{forms, json_escape, percent_escape};
use crate::secret::SecretBytes;
use crate::views::{Decoded, VIEW_KINDS};

/// The raw bytes, then each decoded view.
const VIEWS: usize = 1 + VIEW_KINDS.len();

/// Streaming secret → placeholder replacement. Reusable: after `finish` it starts a new stream.
#[derive(Clone)]
pub struct Scrubber {
    /// `None` when there is nothing to scrub: a cheap pass-through.
    inner: Option<Box<Inner>>,
    /// A scrubber for more secrets that this one's output goes through (see [`Scrubber::then`]).
    next: Option<Box<Scrubber>>,
}

#[derive(Clone)]
struct Inner {
    /// Shared by every clone: one per agent, however many responses stream at once.
    patterns: Arc<Patterns>,
    /// Trailing bytes that may be the start of a secret; capacity reserved so it never reallocates.
    pending: Zeroizing<Vec<u8>>,
    /// Per decoded view: bytes at the start of `pending` that end a token begun before it.
    skip: [usize; VIEW_KINDS.len()],
}

struct Patterns {
    matcher: Matcher,
    /// ASCII-case-insensitive, for header names (HTTP/1 lowercases them).
    folded: Option<AhoCorasick>,
    /// Indexed by pattern id: every form of every secret.
    forms: Vec<Zeroizing<Vec<u8>>>,
    /// Indexed by view, then pattern id: the placeholder in the matching form, escaped for
    /// the view it was found in.
    replacements: [Vec<Vec<u8>>; VIEWS],
    /// Bytes that begin some pattern, and bytes that occur in one.
    first: [bool; 256],
    needed: [bool; 256],
    max_len: usize,
    secrets: usize,
}

#[derive(Clone)]
enum Matcher {
    Automaton(AhoCorasick),
    /// Used only if the automaton cannot be built (size limits): slow, but never lets a secret through.
    Naive,
}

/// A match in raw offsets: the view it was found in and the pattern.
#[derive(Clone, Copy)]
struct Found {
    start: usize,
    end: usize,
    pattern: usize,
    view: usize,
}

/// One scan's views of the input: `None` where a view cannot differ from the raw bytes.
struct Views<'a> {
    raw: &'a [u8],
    decoded: [Option<Decoded>; VIEW_KINDS.len()],
}

impl Scrubber {
    /// Empty secrets are ignored; if a secret appears twice, its first placeholder wins.
    pub fn new(pairs: Vec<(SecretBytes, Vec<u8>)>) -> Self {
        Self::build(pairs, false, false)
    }

    /// [`new`](Self::new) with each secret's literal form only: it is still found inside the
    /// JSON-escaped and percent-encoded views, but not base64-encoded. For a value that is
    /// fresh, random and scrubbed from one response (a presigned URL's new signature), where
    /// the base64 forms' automaton would cost ~0.3 ms to build per request.
    pub fn literal(pairs: Vec<(SecretBytes, Vec<u8>)>) -> Self {
        Self::build(pairs, false, true)
    }

    /// True when there is nothing to scrub: output equals input, so lengths are preserved.
    pub fn is_passthrough(&self) -> bool {
        self.inner.is_none() && self.next.as_ref().is_none_or(|n| n.is_passthrough())
    }

    /// This scrubber followed by `next` (secrets known at different times: an agent's static
    /// values, then the tokens minted for this request). Its patterns are shared, not rebuilt.
    /// Placeholders never contain a secret, so the second pass cannot undo the first.
    pub fn then(&self, next: &Scrubber) -> Scrubber {
        if next.is_passthrough() {
            return self.clone();
        }
        let mut out = self.clone();
        out.next = Some(Box::new(match &self.next {
            Some(n) => n.then(next),
            None => next.clone(),
        }));
        out
    }

    fn build(pairs: Vec<(SecretBytes, Vec<u8>)>, force_naive: bool, literal_only: bool) -> Self {
        let mut all: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut replacements: [Vec<Vec<u8>>; VIEWS] = Default::default();
        let mut secrets = 0;
        let mut seen: Vec<&SecretBytes> = Vec::new();
        for (secret, placeholder) in &pairs {
            if secret.is_empty() || seen.iter().any(|s| s.expose() == secret.expose()) {
                continue;
            }
            seen.push(secret);
            secrets += 1;
            // `forms` yields the literal first.
            let kept = if literal_only { 1 } else { usize::MAX };
            for form in forms(secret.expose(), placeholder).into_iter().take(kept) {
                if all.iter().any(|f| **f == *form.bytes) {
                    continue;
                }
                all.push(form.bytes);
                replacements[0].push(form.replacement.clone());
                replacements[1].push(json_escape(&form.replacement));
                replacements[2].push(percent_escape(&form.replacement));
            }
        }
        let Some(max_len) = all.iter().map(|f| f.len()).max() else {
            return Self {
                inner: None,
                next: None,
            };
        };
        let (mut first, mut needed) = ([false; 256], [false; 256]);
        for f in &all {
            first[usize::from(f[0])] = true;
            for &b in f.iter() {
                needed[usize::from(b)] = true;
            }
        }
        let build = |folded: bool| {
            AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                // A literal-only scrubber lives for one response: quick to build beats quick
                // to search (its one pattern still gets a memchr-style prefilter).
                .kind(literal_only.then_some(AhoCorasickKind::ContiguousNFA))
                .ascii_case_insensitive(folded)
                .build(all.iter().map(|f| f.as_slice()))
                .ok()
                .filter(|_| !force_naive)
        };
        let matcher = build(false).map_or(Matcher::Naive, Matcher::Automaton);
        let folded = build(true);
        let patterns = Patterns {
            matcher,
            folded,
            forms: all,
            replacements,
            first,
            needed,
            max_len,
            secrets,
        };
        // A view's pattern may span up to 6 raw bytes per byte (`\u0041`).
        let pending = Zeroizing::new(Vec::with_capacity(6 * max_len));
        Self {
            inner: Some(Box::new(Inner {
                patterns: Arc::new(patterns),
                pending,
                skip: [0; VIEW_KINDS.len()],
            })),
            next: None,
        }
    }

    /// Scrubs the next chunk of the body and returns what is safe to emit now.
    pub fn feed(&mut self, chunk: &[u8]) -> Bytes {
        let out = self.feed_own(chunk);
        match self.next.as_deref_mut() {
            Some(n) => n.feed(&out),
            None => out,
        }
    }

    fn feed_own(&mut self, chunk: &[u8]) -> Bytes {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Bytes::copy_from_slice(chunk);
        };
        if inner.pending.is_empty() {
            let (out, hold, skip, _) = inner.patterns.scan(chunk, false, inner.skip);
            inner.pending.extend_from_slice(&chunk[hold..]);
            inner.skip = skip;
            return Bytes::from(out);
        }
        // The joined buffer may hold a whole secret, so it is zeroized too.
        let mut joined = Zeroizing::new(Vec::with_capacity(inner.pending.len() + chunk.len()));
        joined.extend_from_slice(&inner.pending);
        joined.extend_from_slice(chunk);
        let (out, hold, skip, _) = inner.patterns.scan(&joined, false, inner.skip);
        inner.pending.zeroize();
        inner.pending.extend_from_slice(&joined[hold..]);
        inner.skip = skip;
        Bytes::from(out)
    }

    /// Ends the body: emits the held-back bytes, replacing any secret among them.
    pub fn finish(&mut self) -> Bytes {
        let tail = self.finish_own();
        match self.next.as_deref_mut() {
            Some(n) => {
                let mut out = n.feed(&tail).to_vec();
                out.extend_from_slice(&n.finish());
                Bytes::from(out)
            }
            None => tail,
        }
    }

    fn finish_own(&mut self) -> Bytes {
        let Some(inner) = self.inner.as_deref_mut() else {
            return Bytes::new();
        };
        let skip = std::mem::take(&mut inner.skip);
        if inner.pending.is_empty() {
            return Bytes::new();
        }
        let (out, _, _, _) = inner.patterns.scan(&inner.pending, true, skip);
        inner.pending.zeroize();
        Bytes::from(out)
    }

    /// Scrubs a complete value (e.g. a header value or a reason phrase); `None` when it
    /// contains no secret in any form.
    pub fn scrub_once(&self, value: &[u8]) -> Option<Vec<u8>> {
        let own = self.scrub_once_own(value);
        let Some(n) = self.next.as_deref() else { return own };
        n.scrub_once(own.as_deref().unwrap_or(value)).or(own)
    }

    fn scrub_once_own(&self, value: &[u8]) -> Option<Vec<u8>> {
        let p = &self.inner.as_deref()?.patterns;
        if p.find(value, 0).is_none() && !VIEW_KINDS.iter().any(|k| k.matters(value, 0, true, &p.needed)) {
            return None;
        }
        let (out, _, _, replaced) = p.scan(value, true, [0; VIEW_KINDS.len()]);
        replaced.then_some(out)
    }

    /// True when a header name holds a secret in any form, ignoring ASCII case (HTTP/1
    /// lowercases names, so a placeholder cannot stand in: the field is dropped instead).
    pub fn name_has_secret(&self, name: &[u8]) -> bool {
        if self.next.as_deref().is_some_and(|n| n.name_has_secret(name)) {
            return true;
        }
        let Some(inner) = self.inner.as_deref() else {
            return false;
        };
        let p = &inner.patterns;
        let hit = |hay: &[u8]| match &p.folded {
            Some(ac) => ac.is_match(hay),
            None => {
                let hay = Zeroizing::new(hay.to_ascii_lowercase());
                p.forms.iter().any(|f| {
                    let f = Zeroizing::new(f.to_ascii_lowercase());
                    hay.windows(f.len()).any(|w| w == f.as_slice())
                })
            }
        };
        hit(name)
            || VIEW_KINDS
                .iter()
                .any(|k| memchr::memchr(k.escape_char(), name).is_some() && hit(&k.decode(name, 0, true).bytes))
    }
}

impl Patterns {
    /// Replaces every match that is decided by `hay` alone (all of them when `last`).
    /// `skip`: per view, bytes at the start that end a token begun in an earlier window.
    /// Returns the output, the offset from which `hay` must be held back for the next
    /// chunk, the views' skips for that next chunk, and whether anything was replaced.
    fn scan(&self, hay: &[u8], last: bool, skip: [usize; VIEW_KINDS.len()]) -> (Vec<u8>, usize, [usize; 2], bool) {
        let mut i = 0;
        let decoded = VIEW_KINDS.map(|kind| {
            let from = skip[i].min(hay.len());
            i += 1;
            kind.matters(hay, from, last, &self.needed)
                .then(|| kind.decode(hay, from, last))
        });
        let views = Views { raw: hay, decoded };
        let horizon_from = |pos| {
            if last {
                hay.len()
            } else {
                self.first_undecided(&views, pos)
            }
        };
        let mut out = Vec::with_capacity(hay.len());
        let mut pos = 0;
        let mut horizon = horizon_from(0);
        let mut replaced = false;
        // Per view, the next match at or after `pos` (still the leftmost-longest one from any
        // later `pos` up to its start); `None` until looked for.
        let mut next: [Option<Option<Found>>; VIEWS] = [None; VIEWS];
        // Every position before `horizon` has all its possible matches inside `hay`, so the
        // leftmost-longest match found there is the same one the whole body would give.
        loop {
            let mut best: Option<Found> = None;
            for (v, slot) in next.iter_mut().enumerate() {
                if slot.is_none_or(|m| m.is_some_and(|m| m.start < pos)) {
                    *slot = Some(self.find_in_view(&views, v, pos));
                }
                if let Some(Some(m)) = *slot
                    && best.is_none_or(|b| (m.start, std::cmp::Reverse(m.end)) < (b.start, std::cmp::Reverse(b.end)))
                {
                    best = Some(m);
                }
            }
            let Some(m) = best.filter(|m| m.start < horizon) else {
                break;
            };
            out.extend_from_slice(&hay[pos..m.start]);
            out.extend_from_slice(&self.replacements[m.view][m.pattern]);
            replaced = true;
            pos = m.end;
            if pos > horizon {
                horizon = horizon_from(pos);
            }
        }
        let hold = horizon.max(pos);
        out.extend_from_slice(&hay[pos..hold]);
        let mut i = 0;
        let skip = VIEW_KINDS.map(|kind| {
            let s = kind.straddle(hay, skip[i], hold);
            i += 1;
            s
        });
        (out, hold, skip, replaced)
    }

    /// The leftmost-longest match in view `v` whose raw span starts at or after `pos`.
    fn find_in_view(&self, views: &Views<'_>, v: usize, pos: usize) -> Option<Found> {
        if v == 0 {
            return self.find(views.raw, pos).map(|(start, end, pattern)| Found {
                start,
                end,
                pattern,
                view: 0,
            });
        }
        let d = views.decoded[v - 1].as_ref()?;
        let (ds, de, pattern) = self.find(&d.bytes, d.index_at(pos))?;
        Some(Found {
            start: d.starts[ds],
            end: d.ends[de - 1],
            pattern,
            view: v,
        })
    }

    /// The first position at or after `from` where more input could still start (or lengthen) a
    /// match in some view: `hay.len()` if there is none.
    fn first_undecided(&self, views: &Views<'_>, from: usize) -> usize {
        let raw = views.raw;
        let mut at = self.undecided_tail(raw, from).unwrap_or(raw.len());
        for d in views.decoded.iter().flatten() {
            let tail = self.undecided_tail(&d.bytes, d.index_at(from)).map(|i| d.starts[i]);
            let cut = d.incomplete.filter(|&q| q >= from);
            for candidate in [tail, cut].into_iter().flatten() {
                at = at.min(candidate);
            }
        }
        at
    }

    /// The first index at or after `from` whose rest of `hay` is a proper prefix of a pattern.
    fn undecided_tail(&self, hay: &[u8], from: usize) -> Option<usize> {
        let start = from.max(hay.len().saturating_sub(self.max_len - 1));
        (start..hay.len()).find(|&s| {
            let tail = &hay[s..];
            self.first[usize::from(tail[0])] && self.forms.iter().any(|p| p.len() > tail.len() && p.starts_with(tail))
        })
    }

    /// Leftmost-longest match starting at or after `from`: (start, end, pattern).
    fn find(&self, hay: &[u8], from: usize) -> Option<(usize, usize, usize)> {
        match &self.matcher {
            Matcher::Automaton(ac) => ac
                .find(Input::new(hay).span(from..hay.len()))
                .map(|m| (m.start(), m.end(), m.pattern().as_usize())),
            Matcher::Naive => (from..hay.len()).find_map(|start| {
                let mut best: Option<(usize, usize)> = None;
                for (i, p) in self.forms.iter().enumerate() {
                    if hay[start..].starts_with(p) && best.is_none_or(|(_, len)| p.len() > len) {
                        best = Some((i, p.len()));
                    }
                }
                best.map(|(pattern, len)| (start, start + len, pattern))
            }),
        }
    }
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.inner.as_ref().map_or(0, |i| i.patterns.secrets);
        f.debug_struct("Scrubber")
            .field("secrets", &count)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "scrub_echo_tests.rs"]
mod echo_tests;
