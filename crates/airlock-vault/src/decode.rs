//! Decoding of an upstream response's content coding, so that a secret echoed inside a
//! compressed body can be scrubbed (invariant 2): the agent gets the decoded, scrubbed bytes.
//!
//! Incremental with bounded memory: every call produces at most the output room it is given,
//! and the decoders' windows are capped (gzip/deflate 32 KiB, zstd 8 MiB as RFC 9659 asks of
//! HTTP, brotli 16 MiB: the standard format, not "large window" brotli).

use brotli::enc::StandardAlloc;
use brotli::{BrotliDecompressStream, BrotliResult, BrotliState};
use flate2::{Crc, Decompress, FlushDecompress, Status};
use zstd::stream::raw::{DParameter, Decoder as ZstdDecoder, InBuffer, Operation, OutBuffer};

/// zstd windows above 8 MiB are refused (RFC 9659 §3 bounds HTTP's zstd to 8 MiB).
const ZSTD_WINDOW_LOG_MAX: u32 = 23;
/// A gzip header larger than this (it may carry a name and a comment) is refused.
const GZIP_HEADER_MAX: usize = 64 * 1024;

/// A content coding airlock can decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// HTTP's "deflate": zlib-wrapped, or raw deflate as some servers send it.
    Deflate,
    Brotli,
    Zstd,
}

impl Coding {
    /// The coding a `Content-Encoding` token names (case-insensitive); `None` for one
    /// airlock cannot decode. "identity" is not a coding: callers skip it.
    pub fn from_token(token: &str) -> Option<Coding> {
        let t = token.trim().to_ascii_lowercase();
        Some(match t.as_str() {
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            "zstd" => Coding::Zstd,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Coding::Gzip => "gzip",
            Coding::Deflate => "deflate",
            Coding::Brotli => "br",
            Coding::Zstd => "zstd",
        })
    }
}

/// Why a coded body could not be decoded. Never carries body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the {0} data is corrupt")]
    Corrupt(Coding),
    #[error("the {0} data ends before its stream is complete")]
    Truncated(Coding),
    #[error("data follows the end of the {0} stream")]
    TrailingData(Coding),
    #[error("the {0} stream needs more memory than airlock allows")]
    TooLarge(Coding),
}

/// A streaming decoder for one content coding.
pub struct ContentDecoder {
    coding: Coding,
    state: State,
    /// Bytes taken from the caller but not yet given to the decoder (deflate's sniffed bytes).
    prefix: Vec<u8>,
    /// An empty body is a complete one, whatever its coding says.
    seen_input: bool,
}

enum State {
    /// Gzip: header bytes gathered so far (a header can be split across chunks).
    GzipHeader(Vec<u8>),
    GzipBody(Box<Decompress>, Crc),
    /// CRC32 and length, gathered across chunks.
    GzipTrailer(Crc, Vec<u8>),
    /// Deflate before its first two bytes told zlib from raw.
    DeflateSniff(Vec<u8>),
    Inflate(Box<Decompress>),
    Brotli(Box<BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>>),
    /// The flag: the last frame is complete and flushed.
    Zstd(Box<ZstdDecoder<'static>>, bool),
    /// A complete stream (gzip: a complete member, and another may follow).
    Done,
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentDecoder")
            .field("coding", &self.coding)
            .finish_non_exhaustive()
    }
}

impl ContentDecoder {
    pub fn new(coding: Coding) -> Result<Self, DecodeError> {
        let state = match coding {
            Coding::Gzip => State::GzipHeader(Vec::new()),
            Coding::Deflate => State::DeflateSniff(Vec::new()),
            Coding::Brotli => State::Brotli(Box::new(BrotliState::new_strict(
                StandardAlloc::default(),
                StandardAlloc::default(),
                StandardAlloc::default(),
            ))),
            Coding::Zstd => {
                let mut d = ZstdDecoder::new().map_err(|_| DecodeError::TooLarge(coding))?;
                d.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))
                    .map_err(|_| DecodeError::TooLarge(coding))?;
                State::Zstd(Box::new(d), false)
            }
        };
        Ok(ContentDecoder {
            coding,
            state,
            prefix: Vec::new(),
            seen_input: false,
        })
    }

    pub fn coding(&self) -> Coding {
        self.coding
    }

    /// Decodes from `input`, appending at most `room` bytes to `out`; returns how many input
    /// bytes were consumed. With input left and room, it consumes or produces something, or
    /// fails. After the last input, call it with empty input until it produces nothing (a
    /// decoder may hold output back for lack of room), then [`ContentDecoder::finish`].
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize) -> Result<usize, DecodeError> {
        if input.is_empty() && !self.seen_input {
            return Ok(0);
        }
        self.seen_input = true;
        let start = out.len();
        let mut used = 0;
        // Steps again only after a state change (a header or a member completing).
        loop {
            let left = room.saturating_sub(out.len() - start);
            let (n, again) = self.step(&input[used..], out, left)?;
            used += n;
            if !again {
                return Ok(used);
            }
        }
    }

    /// Ends the stream: an error unless it is complete (or there was no data at all).
    pub fn finish(&self) -> Result<(), DecodeError> {
        match &self.state {
            _ if !self.seen_input => Ok(()),
            State::Done | State::Zstd(_, true) => Ok(()),
            _ => Err(DecodeError::Truncated(self.coding)),
        }
    }

    /// One step of the state machine: (input consumed, whether a state change calls for
    /// another step).
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>, room: usize) -> Result<(usize, bool), DecodeError> {
        let coding = self.coding;
        let corrupt = DecodeError::Corrupt(coding);
        match &mut self.state {
            State::GzipHeader(buf) => {
                let before = buf.len();
                let take = input.len().min(GZIP_HEADER_MAX + 1 - before);
                buf.extend_from_slice(&input[..take]);
                match gzip_header_len(buf) {
                    GzipHeader::Complete(len) => {
                        self.state = State::GzipBody(Box::new(Decompress::new(false)), Crc::new());
                        Ok((len - before, true))
                    }
                    GzipHeader::Invalid => Err(corrupt),
                    GzipHeader::Incomplete if buf.len() > GZIP_HEADER_MAX => Err(DecodeError::TooLarge(coding)),
                    GzipHeader::Incomplete => Ok((take, false)),
                }
            }
            State::GzipBody(inflate, crc) => {
                let from = out.len();
                let (used, end) = inflate_into(inflate, input, out, room).map_err(|_| corrupt)?;
                crc.update(&out[from..]);
                if end {
                    let crc = std::mem::replace(crc, Crc::new());
                    self.state = State::GzipTrailer(crc, Vec::with_capacity(8));
                }
                Ok((used, end))
            }
            State::GzipTrailer(crc, buf) => {
                let take = input.len().min(8 - buf.len());
                buf.extend_from_slice(&input[..take]);
                if buf.len() < 8 {
                    return Ok((take, false));
                }
                let want_crc = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
                let want_len = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
                if want_crc != crc.sum() || want_len != crc.amount() {
                    return Err(corrupt);
                }
                self.state = State::Done;
                Ok((take, true))
            }
            State::DeflateSniff(buf) => {
                let take = input.len().min(2 - buf.len());
                buf.extend_from_slice(&input[..take]);
                if buf.len() < 2 {
                    return Ok((take, false));
                }
                // RFC 1950 §2.2: method 8, window ≤ 32 KiB, header checksum.
                let zlib = buf[0] & 0x0F == 8 && buf[0] >> 4 <= 7 && u16::from_be_bytes([buf[0], buf[1]]) % 31 == 0;
                self.prefix = std::mem::take(buf);
                self.state = State::Inflate(Box::new(Decompress::new(zlib)));
                Ok((take, true))
            }
            State::Inflate(inflate) if !self.prefix.is_empty() => {
                // The two sniffed bytes go in first.
                let (n, end) = inflate_into(inflate, &self.prefix, out, room).map_err(|_| corrupt)?;
                self.prefix.drain(..n);
                if end {
                    if !self.prefix.is_empty() {
                        return Err(DecodeError::TrailingData(coding));
                    }
                    self.state = State::Done;
                }
                Ok((0, self.prefix.is_empty()))
            }
            State::Inflate(inflate) => {
                let (used, end) = inflate_into(inflate, input, out, room).map_err(|_| corrupt)?;
                if end {
                    self.state = State::Done;
                }
                Ok((used, end))
            }
            State::Brotli(state) => {
                let (used, done) = brotli_step(state, coding, input, out, room)?;
                if done {
                    self.state = State::Done;
                }
                Ok((used, false))
            }
            State::Zstd(dec, complete) => {
                let from = out.len();
                out.resize(from + room, 0);
                let mut inb = InBuffer::around(input);
                let mut outb = OutBuffer::around(&mut out[from..]);
                let hint = dec.run(&mut inb, &mut outb);
                let produced = outb.pos();
                out.truncate(from + produced);
                let hint = hint.map_err(|_| corrupt)?;
                // 0: a frame is complete and flushed (another may follow). A call that moved
                // nothing says nothing: past a frame's end it asks for the next header.
                if inb.pos > 0 || produced > 0 {
                    *complete = hint == 0;
                }
                Ok((inb.pos, false))
            }
            State::Done if input.is_empty() => Ok((0, false)),
            State::Done if coding == Coding::Gzip => {
                // RFC 1952 §2.2: members may follow one another.
                self.state = State::GzipHeader(Vec::new());
                Ok((0, true))
            }
            State::Done => Err(DecodeError::TrailingData(coding)),
        }
    }
}

/// Inflates into at most `room` new bytes of `out`: (input consumed, stream ended).
fn inflate_into(
    inflate: &mut Decompress,
    input: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<(usize, bool), flate2::DecompressError> {
    let (in0, out0) = (inflate.total_in(), inflate.total_out());
    let from = out.len();
    out.resize(from + room, 0);
    let status = inflate.decompress(input, &mut out[from..], FlushDecompress::None);
    let produced = (inflate.total_out() - out0) as usize;
    out.truncate(from + produced);
    let status = status?;
    Ok(((inflate.total_in() - in0) as usize, status == Status::StreamEnd))
}

fn brotli_step(
    state: &mut BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    coding: Coding,
    input: &[u8],
    out: &mut Vec<u8>,
    room: usize,
) -> Result<(usize, bool), DecodeError> {
    let from = out.len();
    out.resize(from + room, 0);
    let (mut avail_in, mut in_off) = (input.len(), 0);
    let (mut avail_out, mut out_off, mut total) = (room, 0, 0);
    let result = BrotliDecompressStream(
        &mut avail_in,
        &mut in_off,
        input,
        &mut avail_out,
        &mut out_off,
        &mut out[from..],
        &mut total,
        state,
    );
    out.truncate(from + out_off);
    match result {
        BrotliResult::ResultSuccess => {
            if in_off < input.len() {
                return Err(DecodeError::TrailingData(coding));
            }
            Ok((in_off, true))
        }
        BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => Ok((in_off, false)),
        BrotliResult::ResultFailure => Err(DecodeError::Corrupt(coding)),
    }
}

enum GzipHeader {
    Complete(usize),
    Incomplete,
    Invalid,
}

/// RFC 1952 §2.3: the length of the member header at the start of `b`, once it is all there.
fn gzip_header_len(b: &[u8]) -> GzipHeader {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    // Magic, method 8 (deflate), no reserved flag bits.
    if b.iter().zip([0x1f, 0x8b, 8]).any(|(x, m)| *x != m) || b.get(3).is_some_and(|f| f & 0xE0 != 0) {
        return GzipHeader::Invalid;
    }
    if b.len() < 10 {
        return GzipHeader::Incomplete;
    }
    let flags = b[3];
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let Some(x) = b.get(at..at + 2) else {
            return GzipHeader::Incomplete;
        };
        at += 2 + usize::from(u16::from_le_bytes([x[0], x[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match b.get(at..).and_then(|rest| rest.iter().position(|&c| c == 0)) {
                Some(nul) => at += nul + 1,
                None => return GzipHeader::Incomplete,
            }
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    if b.len() < at {
        GzipHeader::Incomplete
    } else {
        GzipHeader::Complete(at)
    }
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
