//! What a held body says once its `Content-Encoding` is undone, as text, and whether every
//! approval surface can show it whole (invariants 6 and 8).
//!
//! The server decodes a compressed body before it acts on it, so approvers must see the
//! decoded bytes: a recipient hidden 20 KB into a gzip'd body is otherwise approved blind.
//! Decoding is bounded ([`MAX_DECODED_BYTES`]) so a decompression bomb costs at most that
//! much memory, and what cannot be decoded whole is [`Unshowable`]: the gateway denies it
//! instead of holding it.

use std::borrow::Cow;
use std::io::Read;

use crate::text::one_line;

/// Largest decoded body shown to approvers; a body that decodes past it is [`Unshowable`].
pub const MAX_DECODED_BYTES: usize = 8 << 20;
/// Most `Content-Encoding` layers undone (`gzip, br` is two).
pub const MAX_CODINGS: usize = 3;
/// A body with more than one invalid UTF-8 byte in this many is binary, not text.
pub const BINARY_RATIO: usize = 10;
/// zstd frames may ask for a window this large (log2) at most: 8 MiB, the decoded bound.
/// Bytes of a binary body shown as hex.
pub const HEX_PREVIEW: usize = 512;

const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// Longest coding name quoted in a reason (it is the agent's text).
const CODING_SHOWN: usize = 40;

/// Why no surface can show a body in full. The message completes "… is denied because".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unshowable {
    #[error("the body is sent with Content-Encoding \"{0}\", which airlock cannot decode to show the approvers")]
    UnknownEncoding(String),
    #[error(
        "the body's {coding} encoding does not decode whole ({detail}), so approvers cannot see what the server would read"
    )]
    Undecodable { coding: String, detail: String },
    #[error("the body decodes to more than {limit} bytes, more than approvers can be shown in full")]
    TooLarge { limit: usize },
    #[error("the body is encoded {count} times over (Content-Encoding); airlock decodes at most {max} layers")]
    TooManyEncodings { count: usize, max: usize },
    #[error(
        "the body is {size} bytes of binary data, not text: approvers can be shown at most {max} bytes of it as hex"
    )]
    Binary { size: usize, max: usize },
}

/// A body with its content codings undone.
pub(crate) struct Decoded<'a> {
    pub bytes: Cow<'a, [u8]>,
    /// The codings undone, as named in the headers (e.g. "gzip" or "deflate, br"); empty when
    /// the body was sent as is.
    pub codings: Vec<String>,
}

/// Says whether every approval surface can show this body in full: its content codings
/// decode (within [`MAX_DECODED_BYTES`]) and the result is text, or binary short enough for
/// the complete hex view. The gateway calls it before holding a request and denies with the
/// reason when it fails, so nothing is approved blind.
pub fn showable(headers: &[(String, Vec<u8>)], body: &[u8]) -> Result<(), Unshowable> {
    let decoded = decode(headers, body)?;
    let size = decoded.bytes.len();
    if size > HEX_PREVIEW && lossy_text(&decoded.bytes).is_none() {
        return Err(Unshowable::Binary { size, max: HEX_PREVIEW });
    }
    Ok(())
}

/// The content codings named by every `Content-Encoding` header, in the order applied.
fn codings(headers: &[(String, Vec<u8>)]) -> Vec<String> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|c| c.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// Undoes the body's content codings, last applied first, each bounded by [`MAX_DECODED_BYTES`].
pub(crate) fn decode<'a>(headers: &[(String, Vec<u8>)], body: &'a [u8]) -> Result<Decoded<'a>, Unshowable> {
    let codings = codings(headers);
    if body.is_empty() || codings.is_empty() {
        return Ok(Decoded {
            bytes: Cow::Borrowed(body),
            codings: Vec::new(),
        });
    }
    if codings.len() > MAX_CODINGS {
        return Err(Unshowable::TooManyEncodings {
            count: codings.len(),
            max: MAX_CODINGS,
        });
    }
    let mut bytes = Cow::Borrowed(body);
    for coding in codings.iter().rev() {
        bytes = Cow::Owned(undo(coding, &bytes)?);
    }
    Ok(Decoded { bytes, codings })
}

fn undo(coding: &str, input: &[u8]) -> Result<Vec<u8>, Unshowable> {
    let fail = |detail: &str| Unshowable::Undecodable {
        coding: coding.to_string(),
        detail: detail.to_string(),
    };
    match coding {
        // Several gzip members are read as one body, as most servers do; trailing bytes that
        // are not another member fail the read.
        "gzip" | "x-gzip" => {
            let mut r = flate2::bufread::MultiGzDecoder::new(input);
            let out = bounded(&mut r).map_err(|e| e.unwrap_or_else(|| fail("not a complete gzip stream")))?;
            ended(r.into_inner(), out).ok_or_else(|| fail("bytes follow the gzip stream"))
        }
        // RFC 9110 says zlib-wrapped; some clients send raw deflate, which servers then read.
        "deflate" => {
            let mut r = flate2::bufread::ZlibDecoder::new(input);
            let zlib = bounded(&mut r).map(|out| ended(r.into_inner(), out));
            match zlib {
                Ok(Some(out)) => Ok(out),
                Err(Some(too_large)) => Err(too_large),
                Ok(None) => Err(fail("bytes follow the deflate stream")),
                Err(None) => {
                    let mut r = flate2::bufread::DeflateDecoder::new(input);
                    let out =
                        bounded(&mut r).map_err(|e| e.unwrap_or_else(|| fail("not a complete deflate stream")))?;
                    ended(r.into_inner(), out).ok_or_else(|| fail("bytes follow the deflate stream"))
                }
            }
        }
        "br" => brotli(input).map_err(|e| e.unwrap_or_else(|| fail("not a complete brotli stream"))),
        "zstd" => {
            let mut r =
                zstd::stream::read::Decoder::with_buffer(input).map_err(|_| fail("zstd decoder unavailable"))?;
            r.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|_| fail("zstd decoder unavailable"))?;
            // Frames are read until the input ends, so trailing bytes fail the read.
            bounded(&mut r).map_err(|e| {
                e.unwrap_or_else(|| fail("not a complete zstd stream, or one needing a window over 8 MiB"))
            })
        }
        other => {
            let shown: String = one_line(other).chars().take(CODING_SHOWN).collect();
            Err(Unshowable::UnknownEncoding(shown))
        }
    }
}

/// `out` when the decoder consumed all of its input.
fn ended(rest: &[u8], out: Vec<u8>) -> Option<Vec<u8>> {
    rest.is_empty().then_some(out)
}

/// Reads `r` to its end, at most [`MAX_DECODED_BYTES`]. `Err(Some(_))` when past the bound,
/// `Err(None)` when the stream is corrupt or truncated.
fn bounded(r: &mut impl Read) -> Result<Vec<u8>, Option<Unshowable>> {
    let mut out = Vec::new();
    r.take(MAX_DECODED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|_| None)?;
    if out.len() > MAX_DECODED_BYTES {
        return Err(Some(too_large()));
    }
    Ok(out)
}

fn too_large() -> Unshowable {
    Unshowable::TooLarge {
        limit: MAX_DECODED_BYTES,
    }
}

/// Brotli through the streaming API, with the whole input at hand so trailing bytes are
/// seen, and without the non-standard large window (up to 1 GiB of ring buffer).
fn brotli(input: &[u8]) -> Result<Vec<u8>, Option<Unshowable>> {
    use brotli::enc::StandardAlloc;
    use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
    let mut state = BrotliState::new(
        StandardAlloc::default(),
        StandardAlloc::default(),
        StandardAlloc::default(),
    );
    state.large_window = false;
    let (mut available_in, mut input_offset, mut total_out) = (input.len(), 0usize, 0usize);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut out = Vec::new();
    loop {
        let (mut available_out, mut output_offset) = (chunk.len(), 0usize);
        let result = BrotliDecompressStream(
            &mut available_in,
            &mut input_offset,
            input,
            &mut available_out,
            &mut output_offset,
            &mut chunk,
            &mut total_out,
            &mut state,
        );
        if out.len() + output_offset > MAX_DECODED_BYTES {
            return Err(Some(too_large()));
        }
        out.extend_from_slice(&chunk[..output_offset]);
        match result {
            BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultSuccess if available_in == 0 => return Ok(out),
            _ => return Err(None),
        }
    }
}

/// The body as text: valid UTF-8 as it is; otherwise each invalid byte written as a visible
/// `<0xNN>`, with their count. `None` when more than one byte in [`BINARY_RATIO`] is invalid:
/// that is binary data, not text with a few stray bytes.
pub(crate) fn lossy_text(b: &[u8]) -> Option<(Cow<'_, str>, usize)> {
    if let Ok(s) = std::str::from_utf8(b) {
        return Some((Cow::Borrowed(s), 0));
    }
    let mut out = String::with_capacity(b.len() + b.len() / 8);
    let mut invalid = 0usize;
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for x in chunk.invalid() {
            out.push_str(&format!("<0x{x:02X}>"));
            invalid += 1;
        }
    }
    (invalid * BINARY_RATIO <= b.len()).then_some((Cow::Owned(out), invalid))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Decoding each coding, bombs and trailing bytes: tests/card_decoded.rs.

    #[test]
    fn invalid_utf8_is_marked_and_binary_is_told_apart() {
        let (text, n) = lossy_text(b"{\"to\":\"caf\xe9\"}").unwrap();
        assert_eq!((text.as_ref(), n), ("{\"to\":\"caf<0xE9>\"}", 1));
        assert!(matches!(lossy_text(b"plain"), Some((Cow::Borrowed("plain"), 0))));
        // One bad byte in ten is still text; more is binary.
        let mut ten = b"abcdefghi".to_vec();
        ten.push(0xff);
        assert!(lossy_text(&ten).is_some());
        ten[0] = 0xfe;
        assert!(lossy_text(&ten).is_none());
        // Binary fits the hex view up to its size, and not beyond.
        let bin: Vec<u8> = (0..=255u8).cycle().take(super::HEX_PREVIEW).collect();
        assert_eq!(showable(&[], &bin), Ok(()));
        let bin: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        assert_eq!(showable(&[], &bin), Err(Unshowable::Binary { size: 4096, max: 512 }));
    }
}
