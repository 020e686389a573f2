//! Encoded echoes: base64 at every alignment in both alphabets, JSON `\u` escapes and
//! percent-encoding of any subset of bytes, and combinations, checked against the reference
//! semantics at every chunk split and against what a decoder of the output would reveal.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

use super::tests::{Prng, check_all_splits, reference, run, scrubber};
use super::*;
use crate::forms::base64_middle;
use crate::views::{Escape, ViewKind};

/// Its standard base64 holds `+` and `/` (from `>` and `?`), so the alphabets differ.
const SECRET: &[u8] = b"sk>?live>?REAL?>4f9a";
const PLACEHOLDER: &[u8] = b"airlock-placeholder";

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Base64 decoding that skips anything outside both alphabets, as a lenient reader would.
fn lenient_base64(s: &[u8]) -> Vec<u8> {
    let (mut acc, mut bits, mut out) = (0u32, 0, Vec::new());
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn json_unescape(s: &[u8]) -> Vec<u8> {
    ViewKind::Json.decode(s, 0, true).bytes.to_vec()
}

fn percent_unescape(s: &[u8]) -> Vec<u8> {
    ViewKind::Percent.decode(s, 0, true).bytes.to_vec()
}

fn scrub_whole(body: &[u8]) -> Vec<u8> {
    let mut s = scrubber(&[(SECRET, PLACEHOLDER)], false);
    run(&mut s, &[body])
}

/// No three consecutive bytes of the secret survive.
fn assert_no_trace(revealed: &[u8], what: &str) {
    for w in SECRET.windows(3) {
        assert!(
            !contains(revealed, w),
            "{what}: {:?} reveals {:?}",
            String::from_utf8_lossy(revealed),
            String::from_utf8_lossy(w)
        );
    }
}

#[test]
fn base64_echoes_at_every_alignment_in_both_alphabets() {
    let engines = [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD];
    for (e, engine) in engines.into_iter().enumerate() {
        for prefix in 0..6 {
            for suffix in 0..4 {
                let input = [&b"Basic:"[..prefix], SECRET, &b"xyz"[..suffix]].concat();
                let encoded = engine.encode(&input);
                let body = format!("{{\"data\":\"{encoded}\"}}").into_bytes();
                let out = scrub_whole(&body);
                assert_eq!(out, reference(&scrubber(&[(SECRET, PLACEHOLDER)], false), &body));
                assert!(!contains(&out, encoded.as_bytes()), "engine {e} prefix {prefix}");
                let decoded = lenient_base64(&out[9..out.len() - 2]);
                assert_no_trace(&decoded, "decoded output");
                // Where the secret ends the input, no bit of its last byte is left either: the
                // output decodes to the placeholder's own bytes up to its end (its last partial
                // character is dropped where the secret ended on a character boundary).
                if suffix == 0 {
                    let whole = &PLACEHOLDER[2..];
                    assert!(
                        decoded.ends_with(whole) || decoded.ends_with(&whole[..whole.len() - 1]),
                        "engine {e} prefix {prefix}: {:?}",
                        String::from_utf8_lossy(&decoded)
                    );
                }
                // The placeholder's own base64, at the same alignment, took the secret's place.
                let alphabet = if e < 2 { &STANDARD_NO_PAD } else { &URL_SAFE_NO_PAD };
                let middle = base64_middle(alphabet, PLACEHOLDER, prefix % 3).unwrap();
                assert!(
                    contains(&out, &middle),
                    "engine {e} prefix {prefix}: {}",
                    String::from_utf8_lossy(&out)
                );
                if suffix == 1 && e % 2 == 0 {
                    check_all_splits(&[(SECRET, PLACEHOLDER)], &body);
                }
            }
        }
    }
}

/// Every subset of the secret's bytes escaped, hex case alternating with the subset.
fn escaped(secret: &[u8], mask: u32, escape: impl Fn(u8, bool) -> String) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in secret.iter().enumerate() {
        if mask & (1 << i) != 0 {
            out.extend_from_slice(escape(b, mask & 1 == 0).as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

#[test]
fn json_escaped_echoes_with_any_subset_of_characters_escaped() {
    let secret: &[u8] = b"k/y-R3AL_9z";
    let pairs: &[(&[u8], &[u8])] = &[(secret, PLACEHOLDER)];
    let mut s = scrubber(pairs, false);
    for mask in 0..(1u32 << secret.len()) {
        let esc = escaped(secret, mask, |b, upper| match (b, mask & 2 != 0) {
            (b'/', true) => "\\/".to_string(),
            _ if upper => format!("\\u{b:04X}"),
            _ => format!("\\u{b:04x}"),
        });
        let body = [&b"{\"error\":\"bad key "[..], &esc, b"\"}"].concat();
        let out = run(&mut s, &[&body]);
        assert_eq!(out, b"{\"error\":\"bad key airlock-placeholder\"}", "mask {mask:b}");
        assert!(!contains(&json_unescape(&out), secret));
        if mask % 97 == 0 {
            check_all_splits(pairs, &body);
        }
    }
}

#[test]
fn percent_encoded_echoes_with_any_subset_of_bytes_encoded() {
    let secret: &[u8] = b"k/y-R3AL_9z";
    let pairs: &[(&[u8], &[u8])] = &[(secret, b"airlock/ph")];
    let mut s = scrubber(pairs, false);
    for mask in 0..(1u32 << secret.len()) {
        let esc = escaped(secret, mask, |b, upper| {
            if upper {
                format!("%{b:02X}")
            } else {
                format!("%{b:02x}")
            }
        });
        let body = [&b"https://x.example/cb?token="[..], &esc, b"&state=1"].concat();
        let out = run(&mut s, &[&body]);
        // The placeholder in its percent-encoded form where the secret was encoded.
        let want: &[u8] = if mask == 0 { b"airlock/ph" } else { b"airlock%2Fph" };
        assert_eq!(
            out,
            [&b"https://x.example/cb?token="[..], want, b"&state=1"].concat(),
            "mask {mask:b}"
        );
        assert!(!contains(&percent_unescape(&out), secret));
        if mask % 89 == 0 {
            check_all_splits(pairs, &body);
        }
    }
}

#[test]
fn encodings_combined_one_inside_another() {
    let pairs: &[(&[u8], &[u8])] = &[(SECRET, PLACEHOLDER)];
    for prefix in 0..3 {
        let input = [&b"u:"[..prefix], SECRET].concat();
        let std = STANDARD.encode(&input);
        // Base64 in JSON with `/` escaped (PHP's default), and in a URL query.
        let in_json = std.replace('/', "\\/");
        let in_url = std.replace('/', "%2F").replace('+', "%2b").replace('=', "%3D");
        for body in [format!("{{\"k\":\"{in_json}\"}}"), format!("/cb?k={in_url}&x=1")] {
            let out = scrub_whole(body.as_bytes());
            assert_no_trace(&lenient_base64(&percent_unescape(&json_unescape(&out))), &body);
            check_all_splits(pairs, body.as_bytes());
        }
    }
}

/// A `\` in a secret is found in its canonical JSON form (`\\`); a quote either way. The JSON
/// view does not decode `\\` (that keeps every `\` a token start), so `\\` mixed with `\u`
/// escapes of other characters is a documented limit.
#[test]
fn secrets_with_a_backslash_or_a_quote_in_json() {
    let pairs: &[(&[u8], &[u8])] = &[(b"ab\\cd\"ef", b"<p\\h>"), (b"gh\"ij", b"<q>")];
    let body = br#"{"k":"ab\\cd\"ef","l":"gh\u0022ij","m":"gh\"ij"}"#;
    let mut s = scrubber(pairs, false);
    assert_eq!(run(&mut s, &[body]), br#"{"k":"<p\\h>","l":"<q>","m":"<q>"}"#);
    check_all_splits(pairs, body);
}

#[test]
fn header_values_and_names() {
    let s = scrubber(&[(SECRET, PLACEHOLDER)], false);
    let b64 = STANDARD.encode([b"me:", SECRET].concat());
    let clean = s.scrub_once(format!("Basic {b64}").as_bytes()).unwrap();
    assert_no_trace(&lenient_base64(&clean[6..]), "basic header");
    assert_eq!(
        s.scrub_once(b"sk%3E%3Flive%3e?REAL?>4f9a").unwrap(),
        b"airlock-placeholder"
    );
    assert_eq!(s.scrub_once(b"unrelated %41 \\u0041"), None);
    assert!(s.name_has_secret(b"x-sk>?live>?real?>4f9a"));
    assert!(s.name_has_secret(b"x-SK%3e?live>?REAL?>4F9A-y"));
    assert!(
        s.name_has_secret(
            &b"x-"
                .iter()
                .chain(b64.as_bytes())
                .copied()
                .collect::<Vec<_>>()
                .to_ascii_lowercase()
        )
    );
    assert!(!s.name_has_secret(b"content-type"));
    assert!(!Scrubber::new(vec![]).name_has_secret(b"anything"));
}

#[test]
fn view_tokens() {
    let j = ViewKind::Json;
    assert_eq!(
        j.escape_at(b"\\u00e9", 0, false),
        Escape::Token {
            len: 6,
            bytes: [0xC3, 0xA9, 0, 0],
            n: 2
        }
    );
    assert_eq!(j.escape_at(b"\\u00", 0, false), Escape::Incomplete);
    assert_eq!(j.escape_at(b"\\u00", 0, true), Escape::Literal);
    assert_eq!(j.escape_at(b"\\", 0, false), Escape::Incomplete);
    assert_eq!(j.escape_at(b"\\uD83D\\uDE00", 0, false), Escape::Literal);
    assert_eq!(j.escape_at(b"\\u00g0", 0, false), Escape::Literal);
    assert_eq!(j.escape_at(b"\\\\", 0, false), Escape::Literal);
    assert_eq!(ViewKind::Percent.escape_at(b"%4", 0, false), Escape::Incomplete);
    assert_eq!(ViewKind::Percent.escape_at(b"%4g", 0, false), Escape::Literal);
    assert_eq!(json_unescape(br#"a\"b\/c\n\u0041\\u0042\x"#), b"a\"b/c\nA\\B\\x");
    assert_eq!(percent_unescape(b"%41%4%%42%zz%"), b"A%4%B%zz%");
}

/// Bodies made of literal bytes, escaped bytes (JSON and percent), stray escape characters
/// and base64 of the secrets at random alignments, cut at random.
#[test]
fn random_chunkings_with_encodings_match_the_reference() {
    let mut rng = Prng(0xD1B5_4A32_D192_ED03);
    let alphabet = b"abc/+>?";
    // Rounds where an encoded form (not only a literal secret) was replaced.
    let mut encoded = 0;
    for round in 0..1500 {
        let count = 1 + rng.below(3);
        let secrets: Vec<Vec<u8>> = (0..count)
            .map(|_| {
                let len = if rng.below(2) == 0 {
                    1 + rng.below(4)
                } else {
                    6 + rng.below(6)
                };
                (0..len).map(|_| alphabet[rng.below(alphabet.len())]).collect()
            })
            .collect();
        let placeholders: Vec<Vec<u8>> = (0..count).map(|i| format!("<{i}/>").into_bytes()).collect();
        let mut body = Vec::new();
        while body.len() < 80 {
            let b = alphabet[rng.below(alphabet.len())];
            match rng.below(10) {
                0 => body.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
                1 => body.extend_from_slice(format!("%{:02X}", b).as_bytes()),
                2 => body.extend_from_slice([&b"\\"[..], b"%", b"\\u00", b"%6", b"\\/"][rng.below(5)]),
                3 => {
                    let s = &secrets[rng.below(count)];
                    let input = [&b"xy"[..rng.below(3)], s, &b"z"[..rng.below(2)]].concat();
                    let e = [&STANDARD, &URL_SAFE_NO_PAD][rng.below(2)].encode(input);
                    body.extend_from_slice(e.as_bytes());
                }
                4 => body.extend_from_slice(&secrets[rng.below(count)]),
                _ => body.push(b),
            }
        }
        let pairs: Vec<(&[u8], &[u8])> = secrets
            .iter()
            .zip(&placeholders)
            .map(|(s, p)| (s.as_slice(), p.as_slice()))
            .collect();
        let expected = reference(&scrubber(&pairs, false), &body);
        encoded += usize::from(expected != super::tests::naive_replace(&body, &pairs));
        let chunks = rng.chunks(&body, 12);
        for naive in [false, true] {
            let mut s = scrubber(&pairs, naive);
            assert_eq!(
                run(&mut s, &chunks),
                expected,
                "round {round} secrets {secrets:?} body {:?} chunks {chunks:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    assert!(encoded > 500, "only {encoded} rounds with encoded echoes");
}
