//! The forms a secret takes when an upstream echoes it encoded, and the placeholder's form
//! that replaces each.
//!
//! - literal bytes;
//! - base64 (standard and URL-safe alphabets) at each of the three alignments: inside a larger
//!   encoded input the secret may start at byte 0, 1 or 2 of a 3-byte group, and only the
//!   characters whose 6 bits all come from the secret are fixed — that stable middle is the
//!   pattern. The edge characters mix in neighbouring bits: at most 4 bits of the first byte
//!   and 4 bits of the last byte stay visible (a documented limit) — except where the secret
//!   ends the encoded input (a Basic credential `user:secret`): there the last character's other
//!   bits are zero padding, so the middle with that character is a pattern too, and the last
//!   byte shows nothing;
//! - canonical JSON string escaping, for a secret holding `\` (whose `\\` the JSON view does
//!   not decode).
//!
//! JSON `\uXXXX`/`\/` escapes and `%XX` percent-encoding of any subset of bytes are not
//! patterns (there are too many subsets): they are decoded by views (see `views.rs`), and the
//! patterns above are looked for in those views too.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

/// A base64 middle shorter than this is not a pattern: it would match unrelated data.
pub(crate) const MIN_BASE64_CHARS: usize = 6;

/// One pattern: the secret's bytes in some form, and what replaces them.
pub(crate) struct Form {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) replacement: Vec<u8>,
}

/// Every form of `secret`, literal first, each replaced by `placeholder` in the same form.
pub(crate) fn forms(secret: &[u8], placeholder: &[u8]) -> Vec<Form> {
    let mut out = vec![Form {
        bytes: Zeroizing::new(secret.to_vec()),
        replacement: placeholder.to_vec(),
    }];
    for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        for align in 0..3 {
            let Some(bytes) = base64_middle(engine, secret, align) else {
                continue;
            };
            if bytes.len() < MIN_BASE64_CHARS {
                continue;
            }
            let replacement = base64_middle(engine, placeholder, align)
                .filter(|p| !p.is_empty())
                .map_or_else(|| placeholder.to_vec(), |p| p.to_vec());
            // Longer, so it wins where both match (the scrubber takes the leftmost-longest).
            if let Some(tail) = base64_tail(engine, secret, align) {
                let replacement = base64_tail(engine, placeholder, align)
                    .or_else(|| base64_middle(engine, placeholder, align))
                    .map_or_else(|| placeholder.to_vec(), |p| p.to_vec());
                out.push(Form {
                    bytes: tail,
                    replacement,
                });
            }
            out.push(Form { bytes, replacement });
        }
    }
    if secret.contains(&b'\\') {
        out.push(Form {
            bytes: Zeroizing::new(json_escape(secret)),
            replacement: json_escape(placeholder),
        });
    }
    out
}

/// The characters of `value`'s base64 encoding that depend on `value` alone, when it starts
/// at byte `align` (0..3) of a 3-byte group of a larger input.
pub(crate) fn base64_middle(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    align: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    base64_span(engine, value, align, false)
}

/// [`base64_middle`] and the character after it as encoded when `value` ends the input: that
/// character's remaining bits are then zero. `None` when `value` ends on a character boundary
/// (the middle already holds all of it).
pub(crate) fn base64_tail(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    align: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    base64_span(engine, value, align, true)
}

fn base64_span(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    align: usize,
    tail: bool,
) -> Option<Zeroizing<Vec<u8>>> {
    let bits = 8 * (align + value.len());
    if tail && bits.is_multiple_of(6) {
        return None;
    }
    // Zero bytes after the value: the character holding its last bits has zeros after them,
    // as where the value ends the input.
    let mut padded = Zeroizing::new(vec![0u8; align]);
    padded.extend_from_slice(value);
    padded.extend_from_slice(&[0, 0]);
    let encoded = Zeroizing::new(engine.encode(&*padded).into_bytes());
    // Character k holds bits [6k, 6k+6); the value's bits are [8·align, 8·(align+len)).
    let first = (8 * align).div_ceil(6);
    let end = bits / 6;
    if end <= first {
        return None;
    }
    encoded
        .get(first..end + usize::from(tail))
        .map(|c| Zeroizing::new(c.to_vec()))
}

/// `value` as the inside of a JSON string: `"` and `\` escaped, control bytes as `\u00XX`.
pub(crate) fn json_escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        match b {
            b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            0..=0x1F | 0x7F => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

/// `value` percent-encoded, leaving RFC 3986 unreserved characters as they are.
pub(crate) fn percent_escape(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}
