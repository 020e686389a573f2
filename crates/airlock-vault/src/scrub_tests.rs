use super::*;
use crate::views::VIEW_KINDS;

/// Reference semantics: every view of the whole body at once; at each raw position the
/// longest match starting there in any view (the raw view first on ties), else the byte.
pub(super) fn reference(s: &Scrubber, hay: &[u8]) -> Vec<u8> {
    let Some(inner) = s.inner.as_deref() else {
        return hay.to_vec();
    };
    let p = &inner.patterns;
    let mut views = vec![(0..hay.len()).map(|i| (hay[i], i, i + 1)).collect::<Vec<_>>()];
    for kind in VIEW_KINDS {
        let d = kind.decode(hay, 0, true);
        views.push(
            (0..d.bytes.len())
                .map(|i| (d.bytes[i], d.starts[i], d.ends[i]))
                .collect(),
        );
    }
    // (start, end, view, pattern) of every match in every view.
    let mut found = Vec::new();
    for (v, view) in views.iter().enumerate() {
        for d in 0..view.len() {
            for (id, form) in p.forms.iter().enumerate() {
                let n = form.len();
                if d + n <= view.len() && view[d..d + n].iter().map(|t| t.0).eq(form.iter().copied()) {
                    found.push((view[d].1, view[d + n - 1].2, v, id));
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        let best = found
            .iter()
            .filter(|m| m.0 == i)
            .min_by_key(|m| (std::cmp::Reverse(m.1), m.2));
        match best {
            Some(&(_, end, v, id)) => {
                out.extend_from_slice(&p.replacements[v][id]);
                i = end;
            }
            None => {
                out.push(hay[i]);
                i += 1;
            }
        }
    }
    out
}

/// Literal-only reference: leftmost-longest, non-overlapping replacement of the whole body;
/// among equal secrets the first pair wins.
pub(super) fn naive_replace(hay: &[u8], pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < hay.len() {
        let best = pairs
            .iter()
            .filter(|(s, _)| !s.is_empty() && hay[i..].starts_with(s))
            .rev()
            .max_by_key(|(s, _)| s.len());
        match best {
            Some((s, p)) => {
                out.extend_from_slice(p);
                i += s.len();
            }
            None => {
                out.push(hay[i]);
                i += 1;
            }
        }
    }
    out
}

pub(super) fn scrubber(pairs: &[(&[u8], &[u8])], naive: bool) -> Scrubber {
    let pairs = pairs
        .iter()
        .map(|(s, p)| (SecretBytes::new(s.to_vec()), p.to_vec()))
        .collect();
    Scrubber::build(pairs, naive, false)
}

/// Feeds `chunks` and returns the output, checking the hold-back bound after every chunk:
/// less than the longest pattern's raw length (6 bytes per byte, `\u0041`).
pub(super) fn run(s: &mut Scrubber, chunks: &[&[u8]]) -> Vec<u8> {
    let max_len = s.inner.as_ref().map_or(1, |i| i.patterns.max_len);
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(&s.feed(chunk));
        let held = s.inner.as_ref().map_or(0, |i| i.pending.len());
        assert!(held < 6 * max_len, "held back {held} bytes, longest pattern {max_len}");
    }
    out.extend_from_slice(&s.finish());
    assert!(s.inner.as_ref().is_none_or(|i| i.pending.is_empty()));
    out
}

/// Every split into two and three chunks, and byte-at-a-time, for both matchers.
pub(super) fn check_all_splits(pairs: &[(&[u8], &[u8])], body: &[u8]) {
    let expected = reference(&scrubber(pairs, false), body);
    for naive in [false, true] {
        let mut s = scrubber(pairs, naive);
        assert_eq!(
            run(&mut s, &[body]),
            expected,
            "whole body {:?}",
            String::from_utf8_lossy(body)
        );
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(run(&mut s, &bytes), expected, "byte at a time");
        for i in 0..=body.len() {
            assert_eq!(run(&mut s, &[&body[..i], &body[i..]]), expected, "split at {i}");
            for j in i..=body.len() {
                assert_eq!(
                    run(&mut s, &[&body[..i], &body[i..j], &body[j..]]),
                    expected,
                    "split at {i},{j}"
                );
            }
        }
    }
}

#[test]
fn one_secret_at_every_offset_and_split() {
    let pairs: &[(&[u8], &[u8])] = &[(b"s3cr3t-TOKEN", b"<PLACEHOLDER>")];
    for prefix in 0..6 {
        for suffix in 0..6 {
            let body = [&b"abcdef"[..prefix], b"s3cr3t-TOKEN", &b"uvwxyz"[..suffix]].concat();
            check_all_splits(pairs, &body);
            assert!(!naive_replace(&body, pairs).windows(12).any(|w| w == b"s3cr3t-TOKEN"));
        }
    }
    check_all_splits(pairs, b"s3cr3t-TOKENs3cr3t-TOKEN");
    check_all_splits(pairs, b"s3cr3t-TOKs3cr3t-TOKEN s3cr3t-TOKE");
}

#[test]
fn several_secrets_and_overlapping_prefixes() {
    let pairs: &[(&[u8], &[u8])] = &[
        (b"abc", b"<1>"),
        (b"abcdef", b"<2>"),
        (b"bcd", b"<3>"),
        (b"aab", b"<4>"),
        (b"x", b""),
    ];
    for body in [
        &b"abcdef"[..],
        b"abcde",
        b"abcdeabcdef",
        b"aaab",
        b"aabcd",
        b"zzbcdzz",
        b"xxabcxx",
        b"ab",
        b"abcdefabc",
        b"",
    ] {
        check_all_splits(pairs, body);
    }
    // Placeholders that look like secrets are emitted verbatim, not rescanned.
    check_all_splits(&[(b"KEY", b"KEYKEY")], b"aKEYbKEY");
}

#[test]
fn secret_at_the_very_end() {
    let mut s = scrubber(&[(b"TOKEN", b"<T>")], false);
    assert_eq!(&s.feed(b"hello TOK")[..], b"hello ");
    // Complete and no longer secret can extend it: decided without waiting for more.
    assert_eq!(&s.feed(b"EN")[..], b"<T>");
    assert_eq!(&s.finish()[..], b"");
    // A partial secret at the end is released as-is.
    assert_eq!(&s.feed(b"hello TOK")[..], b"hello ");
    assert_eq!(&s.finish()[..], b"TOK");

    // "TOKEN" could still grow into "TOKEN_LONG", so only `finish` can decide it.
    let mut s = scrubber(&[(b"TOKEN", b"<T>"), (b"TOKEN_LONG", b"<L>")], false);
    assert_eq!(&s.feed(b"hello TOKEN")[..], b"hello ");
    assert_eq!(&s.finish()[..], b"<T>");
    assert_eq!(&s.feed(b"TOKEN_LONG")[..], b"<L>");
    assert_eq!(&s.feed(b"TOKEN_LO")[..], b"");
    assert_eq!(&s.feed(b"NE")[..], b"<T>_LONE");
}

#[test]
fn holds_back_only_bytes_that_could_start_a_secret() {
    let mut s = scrubber(&[(b"SECRET", b"<S>")], false);
    assert_eq!(&s.feed(b"hello world")[..], b"hello world");
    assert_eq!(&s.feed(b"xxSEC")[..], b"xx");
    assert_eq!(&s.feed(b"Z")[..], b"SECZ");
    assert_eq!(&s.feed(b"SSECRE")[..], b"S");
    assert_eq!(&s.feed(b"T!")[..], b"<S>!");
    assert_eq!(&s.finish()[..], b"");

    // "cde" could become "cdef", but "abcd" matches first; what follows it ("e") is decided.
    let mut s = scrubber(&[(b"abcd", b"<1>"), (b"cdef", b"<2>")], false);
    assert_eq!(&s.feed(b"abcde")[..], b"<1>e");
    assert_eq!(&s.feed(b"cde")[..], b"");
    assert_eq!(&s.finish()[..], b"cde");
}

/// xorshift64*: deterministic and dependency-free.
pub(super) struct Prng(pub(super) u64);

impl Prng {
    pub(super) fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % bound
    }

    /// `body` cut at random into chunks of at most `max` bytes (some empty).
    pub(super) fn chunks<'a>(&mut self, body: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        let mut chunks = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(self.below(rest.len() + 1).min(1 + self.below(max)));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }

    /// Up to `max - 1` bytes over a 3-letter alphabet, so secrets and bodies overlap often.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max);
        (0..len).map(|_| b"abc"[self.below(3)]).collect()
    }
}

#[test]
fn random_chunkings_match_the_naive_replacement() {
    let mut rng = Prng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..3000 {
        let count = 1 + rng.below(4);
        let secrets: Vec<Vec<u8>> = (0..count).map(|_| rng.bytes(7)).collect();
        let placeholders: Vec<Vec<u8>> = (0..count).map(|i| format!("<{i}>").into_bytes()).collect();
        let body = rng.bytes(60);
        let pairs: Vec<(&[u8], &[u8])> = secrets
            .iter()
            .zip(&placeholders)
            .map(|(s, p)| (s.as_slice(), p.as_slice()))
            .collect();
        let expected = naive_replace(&body, &pairs);
        assert_eq!(reference(&scrubber(&pairs, false), &body), expected);
        let chunks = rng.chunks(&body, 9);
        for naive in [false, true] {
            let mut s = scrubber(&pairs, naive);
            assert_eq!(
                run(&mut s, &chunks),
                expected,
                "secrets {secrets:?} body {body:?} chunks {chunks:?}"
            );
        }
    }
}

#[test]
fn scrub_once_for_header_values() {
    let s = scrubber(&[(b"tok_123", b"PLACEHOLDER"), (b"tok_123456", b"LONG")], false);
    assert_eq!(s.scrub_once(b"Bearer tok_123"), Some(b"Bearer PLACEHOLDER".to_vec()));
    assert_eq!(s.scrub_once(b"tok_123456,tok_12"), Some(b"LONG,tok_12".to_vec()));
    assert_eq!(s.scrub_once(b"nothing here"), None);
    assert_eq!(s.scrub_once(b""), None);
}

#[test]
fn no_secrets_is_a_pass_through() {
    for pairs in [vec![], vec![(SecretBytes::new(Vec::new()), b"<empty>".to_vec())]] {
        let mut s = Scrubber::new(pairs);
        assert!(s.inner.is_none() && s.is_passthrough());
        assert_eq!(&s.feed(b"abc")[..], b"abc");
        assert_eq!(&s.finish()[..], b"");
        assert_eq!(s.scrub_once(b"abc"), None);
    }
}

#[test]
fn duplicate_secret_uses_first_placeholder_and_debug_is_redacted() {
    let mut s = scrubber(
        &[(b"DISTINCTIVE-VALUE", b"<first>"), (b"DISTINCTIVE-VALUE", b"<second>")],
        false,
    );
    assert_eq!(run(&mut s, &[b"a DISTINCTIVE-", b"VALUE b"]), b"a <first> b");
    s.feed(b"DISTINCTIVE-VAL");
    let debug = format!("{s:?}");
    assert!(!debug.contains("DISTINCTIVE"), "{debug}");
    assert!(debug.contains("secrets: 1"), "{debug}");
}

/// A scrubber chained with another (static values, then a token minted for the request) replaces
/// both secrets, split anywhere, in bodies, single values and header names.
#[test]
fn chained_scrubbers_replace_both_secrets_at_every_split() {
    let first = scrubber(&[(b"static-KEY-123", b"<STATIC>")], false);
    let second = scrubber(&[(b"ya29.access-TOKEN", b"<OAUTH>")], false);
    let chained = first.then(&second);
    assert!(!chained.is_passthrough());
    let body = b"a static-KEY-123 b ya29.access-TOKEN c eWEyOS5hY2Nlc3MtVE9LRU4= d".as_slice();
    // What the two do one after the other, on the whole body.
    let once = first.scrub_once(body).expect("static secret found");
    let want = second.scrub_once(&once).expect("token found");
    assert!(want.starts_with(b"a <STATIC> b <OAUTH> c "));
    assert!(
        !want.windows(8).any(|w| w == b"eWEyOS5h"),
        "base64 of the token is gone"
    );
    for i in 0..=body.len() {
        let mut s = chained.clone();
        let mut out = s.feed(&body[..i]).to_vec();
        out.extend_from_slice(&s.feed(&body[i..]));
        out.extend_from_slice(&s.finish());
        assert_eq!(out, want, "split at {i}");
    }
    assert_eq!(
        chained.scrub_once(b"Bearer ya29.access-TOKEN").as_deref(),
        Some(&b"Bearer <OAUTH>"[..])
    );
    assert_eq!(
        chained.scrub_once(b"k static-KEY-123").as_deref(),
        Some(&b"k <STATIC>"[..])
    );
    assert!(chained.scrub_once(b"nothing").is_none());
    assert!(chained.name_has_secret(b"x-YA29.ACCESS-TOKEN"));
    // Chaining onto a pass-through scrubber still scrubs the second one's secrets.
    let none = Scrubber::new(vec![]).then(&second);
    assert_eq!(none.scrub_once(b"ya29.access-TOKEN").as_deref(), Some(&b"<OAUTH>"[..]));
}

/// The literal-only scrubber (a presigned URL's signature): the literal and its JSON-escaped
/// and percent-encoded echoes are scrubbed; base64 is not one of its forms.
#[test]
fn a_literal_scrubber_still_reads_the_escaped_views() {
    let secret = b"5a1cb3e1e3c3b7bd/f0c8b3b9ab6b0a8";
    let pairs = vec![(SecretBytes::new(secret.to_vec()), b"agent-sig".to_vec())];
    let mut s = Scrubber::literal(pairs);
    let body = b"{\"a\":\"5a1cb3e1e3c3b7bd/f0c8b3b9ab6b0a8\",\"b\":\"5a1cb3e1e3c3b7bd\\/f0c8b3b9ab6b0a8\",\"c\":\"5a1cb3e1e3c3b7bd%2Ff0c8b3b9ab6b0a8\"}";
    let out = run(&mut s, &[body]);
    assert_eq!(
        out,
        b"{\"a\":\"agent-sig\",\"b\":\"agent-sig\",\"c\":\"agent-sig\"}".to_vec()
    );
    let patterns = s.inner.as_ref().map_or(0, |i| i.patterns.forms.len());
    assert_eq!(patterns, 1, "only the literal form");
}
