//! S3 signed-chunk uploads (`x-amz-content-sha256: STREAMING-AWS4-HMAC-SHA256-PAYLOAD`): the body
//! is `aws-chunked`, every chunk `<hex size>;chunk-signature=<64 hex>\r\n<data>\r\n`, the last one
//! of size zero. Each chunk's signature chains to the previous one, the first to the request's
//! own (seed) signature, so once the headers are signed again with the real keys every chunk is
//! signed again too. The framing is parsed strictly and kept byte for byte but for the
//! signatures, which are always 64 hex digits: the body's length does not change.
//!
//! [`ChunkSigner`] is sans-IO: it takes the body in pieces of any size, holds one chunk at a time
//! (at most [`MAX_CHUNK`] bytes) and hands back each chunk re-signed once it is whole.

use std::time::SystemTime;

use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The `x-amz-content-sha256` of a signed-chunk upload.
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// The largest chunk held while its signature is computed (the AWS SDKs send 64–128 KiB).
pub const MAX_CHUNK: u64 = 8 << 20;
const EXTENSION: &[u8] = b";chunk-signature=";
const SIGNATURE_LEN: usize = 64;
/// A chunk header: at most 16 hex digits, the extension, the signature and CRLF.
const MAX_HEADER: usize = 16 + EXTENSION.len() + SIGNATURE_LEN + 2;
/// The hex SHA-256 of nothing: where a chunk's string to sign would hash its (absent) headers.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What is wrong with an `aws-chunked` body, and in which chunk (counted from 1). Never quotes
/// the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("S3 signed-chunk body, chunk {chunk}: {problem}")]
pub struct ChunkError {
    pub chunk: usize,
    pub problem: &'static str,
}

enum State {
    /// Reading a header line into `buf`.
    Header,
    /// `buf` holds the header (its size field `hex_len` bytes long) and reads `size` bytes + CRLF.
    Data {
        hex_len: usize,
        size: usize,
    },
    /// The zero-size chunk went by: nothing may follow.
    Done,
    Failed(ChunkError),
}

/// Re-signs an `aws-chunked` body, chunk by chunk, with the real keys' signing key.
#[must_use = "a signed-chunk body must be passed through its signer"]
pub struct ChunkSigner {
    key: Zeroizing<Vec<u8>>,
    /// `AWS4-HMAC-SHA256-PAYLOAD\n<x-amz-date>\n<scope>\n`.
    prefix: String,
    previous: String,
    declared: u64,
    decoded: u64,
    chunk: usize,
    buf: Vec<u8>,
    state: State,
}

impl std::fmt::Debug for ChunkSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkSigner(redacted)")
    }
}

impl ChunkSigner {
    /// `seed` is the re-signed request's signature, `amz_date` its `x-amz-date` (made from
    /// `time`), `declared` its `x-amz-decoded-content-length`.
    pub(crate) fn new(
        secret: &str,
        time: SystemTime,
        amz_date: &str,
        region: &str,
        service: &str,
        seed: String,
        declared: u64,
    ) -> ChunkSigner {
        let key = Zeroizing::new(generate_signing_key(secret, time, region, service).as_ref().to_vec());
        let day = amz_date.get(..8).unwrap_or(amz_date);
        ChunkSigner {
            key,
            prefix: format!("AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{day}/{region}/{service}/aws4_request\n"),
            previous: seed,
            declared,
            decoded: 0,
            chunk: 1,
            buf: Vec::new(),
            state: State::Header,
        }
    }

    /// Takes the next piece of the body; returns the chunks it completed, re-signed. After an
    /// error every call fails with it.
    pub fn push(&mut self, mut input: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let mut out = Vec::with_capacity(input.len() + self.buf.len());
        loop {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done if input.is_empty() => return Ok(out),
                State::Done => return Err(self.fail("data follows the final zero-size chunk")),
                State::Header => {
                    let Some(end) = input.iter().position(|&b| b == b'\n') else {
                        self.buf.extend_from_slice(input);
                        if self.buf.len() > MAX_HEADER {
                            return Err(self.fail("the chunk header is malformed or too long"));
                        }
                        return Ok(out);
                    };
                    if self.buf.len() + end + 1 > MAX_HEADER {
                        return Err(self.fail("the chunk header is malformed or too long"));
                    }
                    self.buf.extend_from_slice(&input[..=end]);
                    input = &input[end + 1..];
                    let (hex_len, size) = parse_header(&self.buf).map_err(|p| self.fail(p))?;
                    self.admit(size)?;
                    // `admit` bounds `size` by MAX_CHUNK, which fits any usize this builds for.
                    let size = usize::try_from(size).map_err(|_| self.fail("the chunk is too large"))?;
                    self.state = State::Data { hex_len, size };
                }
                State::Data { hex_len, size } => {
                    let header_len = hex_len + EXTENSION.len() + SIGNATURE_LEN + 2;
                    let whole = header_len + size + 2;
                    let take = (whole - self.buf.len()).min(input.len());
                    self.buf.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.buf.len() < whole {
                        return Ok(out);
                    }
                    if !self.buf.ends_with(b"\r\n") {
                        return Err(self.fail("the chunk data is not followed by CRLF (its size is wrong)"));
                    }
                    let data = &self.buf[header_len..header_len + size];
                    let signature = self.sign(data);
                    out.extend_from_slice(&self.buf[..hex_len]);
                    out.extend_from_slice(EXTENSION);
                    out.extend_from_slice(signature.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                    self.previous = signature;
                    self.buf.clear();
                    self.chunk += 1;
                    self.state = if size == 0 { State::Done } else { State::Header };
                }
            }
        }
    }

    /// The body ended: it must have ended with its zero-size chunk.
    pub fn finish(&mut self) -> Result<(), ChunkError> {
        match self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e),
            _ => Err(self.fail("the body ends before its final zero-size chunk")),
        }
    }

    /// Re-signs a whole body.
    pub fn sign_whole(mut self, body: &[u8]) -> Result<Vec<u8>, ChunkError> {
        let out = self.push(body)?;
        self.finish()?;
        Ok(out)
    }

    /// Counts a chunk of `size` bytes against `x-amz-decoded-content-length`.
    fn admit(&mut self, size: u64) -> Result<(), ChunkError> {
        if size > MAX_CHUNK {
            return Err(self.fail("the chunk is larger than the 8 MiB airlock holds to re-sign it"));
        }
        let decoded = self.decoded.saturating_add(size);
        if decoded > self.declared {
            return Err(self.fail("the chunks hold more bytes than x-amz-decoded-content-length"));
        }
        if size == 0 && decoded < self.declared {
            return Err(self.fail("the chunks hold fewer bytes than x-amz-decoded-content-length"));
        }
        self.decoded = decoded;
        Ok(())
    }

    fn sign(&self, data: &[u8]) -> String {
        let to_sign = format!(
            "{}{}\n{EMPTY_SHA256}\n{}",
            self.prefix,
            self.previous,
            hex::encode(Sha256::digest(data))
        );
        calculate_signature(self.key.as_slice(), to_sign.as_bytes())
    }

    fn fail(&mut self, problem: &'static str) -> ChunkError {
        let e = ChunkError {
            chunk: self.chunk,
            problem,
        };
        self.state = State::Failed(e);
        self.buf.clear();
        e
    }
}

/// `<hex size>;chunk-signature=<64 lower-case hex>\r\n` → (the size field's length, the size).
fn parse_header(line: &[u8]) -> Result<(usize, u64), &'static str> {
    let line = line
        .strip_suffix(b"\r\n")
        .ok_or("the chunk header does not end with CRLF")?;
    let hex_len = line
        .iter()
        .position(|&b| b == b';')
        .ok_or("the chunk header has no chunk-signature")?;
    let (hex, rest) = line.split_at(hex_len);
    if hex.is_empty() || hex.len() > 16 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err("the chunk size is not a hexadecimal number");
    }
    let size = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or("the chunk size is not a hexadecimal number")?;
    let signature = rest
        .strip_prefix(EXTENSION)
        .ok_or("the chunk header has no chunk-signature")?;
    if signature.len() != SIGNATURE_LEN || !signature.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("the chunk-signature is not 64 lower-case hex digits");
    }
    Ok((hex_len, size))
}

#[cfg(test)]
#[path = "chunks_tests.rs"]
mod tests;
