//! PostgreSQL wire framing, sans IO: "is a whole message here?" apart from what it means.
//!
//! Every length comes from the network, so each is checked before it is used: a frame whose
//! length is below its own header or above the limit is an error, a frame not yet whole is
//! `Ok(None)`. Nothing here panics on any input (see the fuzz-style tests below, and the
//! `pg_codec` fuzz target in `fuzz/`). A crate of its own so the fuzz project builds it without
//! the gateway (and PostgreSQL's parser) behind it; `airlock-postgres` re-exports it as `codec`.
#![forbid(unsafe_code)]

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The largest message a client may send airlock whole (a query or a Parse). Larger ones are
/// refused: a statement airlock cannot hold in memory is never forwarded unread.
pub const MAX_CLIENT_MESSAGE: usize = 16 * 1024 * 1024;
/// The largest startup packet (PostgreSQL itself allows 10,000 bytes).
pub const MAX_STARTUP: usize = 10_000;

/// Protocol 3.0, and the three special request codes sent in the startup slot.
pub const PROTOCOL_3: i32 = 196_608;
pub const SSL_REQUEST: i32 = 80_877_103;
pub const GSSENC_REQUEST: i32 = 80_877_104;
pub const CANCEL_REQUEST: i32 = 80_877_102;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("a message declares length {0}, below its own header")]
    BadLength(i64),
    #[error("a message of {0} bytes exceeds the limit of {1}")]
    TooLarge(usize, usize),
    #[error("a startup message is malformed: {0}")]
    BadStartup(&'static str),
    #[error("a {0:?} message is malformed: {1}")]
    Malformed(char, &'static str),
}

/// One typed message: its tag and its body (without tag and length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub tag: u8,
    pub body: Bytes,
}

impl Frame {
    /// The frame as it travels on the wire.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.tag);
        out.put_i32(self.body.len() as i32 + 4);
        out.extend_from_slice(&self.body);
    }
}

/// Takes one whole typed message off `buf`, if there is one.
pub fn decode(buf: &mut BytesMut, limit: usize) -> Result<Option<Frame>, CodecError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(CodecError::BadLength(len.into()));
    }
    let len = len as usize;
    if len > limit {
        return Err(CodecError::TooLarge(len, limit));
    }
    if buf.len() < 1 + len {
        buf.reserve(1 + len - buf.len());
        return Ok(None);
    }
    let tag = buf[0];
    buf.advance(5);
    let body = buf.split_to(len - 4).freeze();
    Ok(Some(Frame { tag, body }))
}

/// The first packet of a connection (no tag: length, then a code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    Ssl,
    GssEnc,
    Cancel {
        pid: i32,
        key: Vec<u8>,
    },
    /// Protocol 3.x with its parameters, in order.
    Params {
        minor: u16,
        params: Vec<(String, String)>,
    },
}

impl Startup {
    /// The value of startup parameter `name`.
    pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
        params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Takes one whole startup packet off `buf`, if there is one.
pub fn decode_startup(buf: &mut BytesMut) -> Result<Option<Startup>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 {
        return Err(CodecError::BadLength(len.into()));
    }
    let len = len as usize;
    if len > MAX_STARTUP {
        return Err(CodecError::TooLarge(len, MAX_STARTUP));
    }
    if buf.len() < len {
        return Ok(None);
    }
    let mut p = buf.split_to(len).freeze();
    p.advance(4);
    let code = p.get_i32();
    match code {
        SSL_REQUEST if p.is_empty() => Ok(Some(Startup::Ssl)),
        GSSENC_REQUEST if p.is_empty() => Ok(Some(Startup::GssEnc)),
        CANCEL_REQUEST if p.len() >= 8 => {
            let pid = p.get_i32();
            Ok(Some(Startup::Cancel { pid, key: p.to_vec() }))
        }
        c if c >> 16 == 3 => {
            let mut params = Vec::new();
            loop {
                let key = cstr(&mut p).ok_or(CodecError::BadStartup("a parameter name is not terminated"))?;
                if key.is_empty() {
                    break;
                }
                let value = cstr(&mut p).ok_or(CodecError::BadStartup("a parameter value is not terminated"))?;
                params.push((key, value));
            }
            if !p.is_empty() {
                return Err(CodecError::BadStartup("bytes after the parameters"));
            }
            Ok(Some(Startup::Params {
                minor: (c & 0xffff) as u16,
                params,
            }))
        }
        _ => Err(CodecError::BadStartup("an unknown protocol or request code")),
    }
}

/// A NUL-terminated UTF-8 string off the front of `p`.
pub fn cstr(p: &mut Bytes) -> Option<String> {
    let end = p.iter().position(|b| *b == 0)?;
    let s = String::from_utf8(p[..end].to_vec()).ok()?;
    p.advance(end + 1);
    Some(s)
}

/// The SQL text of a Simple Query ('Q').
pub fn query_text(f: &Frame) -> Result<String, CodecError> {
    let mut b = f.body.clone();
    let q = cstr(&mut b).ok_or(CodecError::Malformed('Q', "the query is not terminated text"))?;
    if !b.is_empty() {
        return Err(CodecError::Malformed('Q', "bytes after the query"));
    }
    Ok(q)
}

/// A Parse ('P'): statement name and SQL text.
pub fn parse_message(f: &Frame) -> Result<(String, String), CodecError> {
    let mut b = f.body.clone();
    let name = cstr(&mut b).ok_or(CodecError::Malformed('P', "the statement name is not terminated text"))?;
    let sql = cstr(&mut b).ok_or(CodecError::Malformed('P', "the query is not terminated text"))?;
    Ok((name, sql))
}

/// A Bind ('B'): portal and statement names.
pub fn bind_statement(f: &Frame) -> Result<(String, String), CodecError> {
    let mut b = f.body.clone();
    let portal = cstr(&mut b).ok_or(CodecError::Malformed('B', "the portal name is not terminated text"))?;
    let stmt = cstr(&mut b).ok_or(CodecError::Malformed('B', "the statement name is not terminated text"))?;
    Ok((portal, stmt))
}

/// A PasswordMessage ('p') as cleartext.
pub fn password(f: &Frame) -> Result<Vec<u8>, CodecError> {
    match f.body.split_last() {
        Some((0, pw)) if !pw.contains(&0) => Ok(pw.to_vec()),
        _ => Err(CodecError::Malformed('p', "the password is not terminated")),
    }
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    // NUL would end the field early; error texts are airlock's own, so replace rather than fail.
    out.extend(s.bytes().map(|b| if b == 0 { b'?' } else { b }));
    out.put_u8(0);
}

/// ErrorResponse ('E') with severity ERROR, `code` (SQLSTATE), message and optional detail.
pub fn error_response(code: &str, message: &str, detail: Option<&str>) -> Frame {
    let mut b = BytesMut::new();
    for (field, value) in [(b'S', "ERROR"), (b'V', "ERROR"), (b'C', code), (b'M', message)] {
        b.put_u8(field);
        put_cstr(&mut b, value);
    }
    if let Some(d) = detail {
        b.put_u8(b'D');
        put_cstr(&mut b, d);
    }
    b.put_u8(0);
    Frame {
        tag: b'E',
        body: b.freeze(),
    }
}

/// ReadyForQuery ('Z') with transaction status `I`, `T` or `E`.
pub fn ready_for_query(status: u8) -> Frame {
    Frame {
        tag: b'Z',
        body: Bytes::copy_from_slice(&[status]),
    }
}

/// An Authentication message ('R') of `kind` with `data`.
pub fn authentication(kind: i32, data: &[u8]) -> Frame {
    let mut b = BytesMut::new();
    b.put_i32(kind);
    b.extend_from_slice(data);
    Frame {
        tag: b'R',
        body: b.freeze(),
    }
}

/// BackendKeyData ('K'): the process id and secret key a client cancels with.
pub fn backend_key_data(pid: i32, key: &[u8]) -> Frame {
    let mut b = BytesMut::new();
    b.put_i32(pid);
    b.extend_from_slice(key);
    Frame {
        tag: b'K',
        body: b.freeze(),
    }
}

/// A CancelRequest packet (startup slot: length, code, process id, secret key).
pub fn cancel_request(pid: i32, key: &[u8], out: &mut BytesMut) {
    out.put_i32(12 + key.len() as i32);
    out.put_i32(CANCEL_REQUEST);
    out.put_i32(pid);
    out.extend_from_slice(key);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_at_any_byte_and_bad_lengths_are_errors() {
        let mut wire = BytesMut::new();
        error_response("42501", "no", Some("why")).encode(&mut wire);
        ready_for_query(b'I').encode(&mut wire);
        let all = wire.freeze();
        for cut in 0..all.len() {
            let mut buf = BytesMut::from(&all[..cut]);
            let mut n = 0;
            while let Ok(Some(_)) = decode(&mut buf, 1024) {
                n += 1;
            }
            assert!(n <= 2);
        }
        let mut buf = BytesMut::from(&all[..]);
        assert_eq!(decode(&mut buf, 1024).unwrap().unwrap().tag, b'E');
        assert_eq!(decode(&mut buf, 1024).unwrap().unwrap(), ready_for_query(b'I'));
        assert_eq!(
            decode(&mut BytesMut::from(&b"Q\0\0\0\x03"[..]), 1024),
            Err(CodecError::BadLength(3))
        );
        assert_eq!(
            decode(&mut BytesMut::from(&b"Q\x7f\xff\xff\xff"[..]), 1024),
            Err(CodecError::TooLarge(0x7fff_ffff, 1024))
        );
        assert_eq!(
            decode(&mut BytesMut::from(&b"Q\xff\xff\xff\xff"[..]), 1024),
            Err(CodecError::BadLength(-1))
        );
    }

    #[test]
    fn startup_packets() {
        let mut b = BytesMut::from(&[0u8, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f][..]);
        assert_eq!(decode_startup(&mut b), Ok(Some(Startup::Ssl)));
        let mut p = BytesMut::new();
        p.put_i32(0);
        p.put_i32(PROTOCOL_3);
        p.extend_from_slice(b"user\0a\0database\0d\0\0");
        let len = p.len() as i32;
        p[..4].copy_from_slice(&len.to_be_bytes());
        match decode_startup(&mut p) {
            Ok(Some(Startup::Params { params, .. })) => {
                assert_eq!(Startup::param(&params, "user"), Some("a"));
                assert_eq!(Startup::param(&params, "database"), Some("d"));
            }
            other => panic!("{other:?}"),
        }
        let mut bad = BytesMut::from(&[0u8, 0, 0, 12, 0, 3, 0, 0, b'u', 0, b'x', b'y'][..]);
        assert!(decode_startup(&mut bad).is_err());
        assert!(decode_startup(&mut BytesMut::from(&[0u8, 0, 0, 4][..])).is_err());
        let mut c = BytesMut::new();
        cancel_request(-7, &[1, 2, 3, 4], &mut c);
        assert_eq!(
            decode_startup(&mut c),
            Ok(Some(Startup::Cancel {
                pid: -7,
                key: vec![1, 2, 3, 4]
            }))
        );
    }

    #[test]
    fn every_short_garbage_input_is_handled() {
        // Exhaustive over short inputs: no panic, and progress or a clear need for more bytes.
        let alphabet = [0u8, 1, 4, 5, 8, 0x7f, 0xff, b'Q', b'P', b'p'];
        let mut input = [0u8; 6];
        for n in 0..alphabet.len().pow(6) {
            let mut k = n;
            for slot in input.iter_mut() {
                *slot = alphabet[k % alphabet.len()];
                k /= alphabet.len();
            }
            let _ = decode(&mut BytesMut::from(&input[..]), 64);
            let _ = decode_startup(&mut BytesMut::from(&input[..]));
            let f = Frame {
                tag: input[0],
                body: Bytes::copy_from_slice(&input[1..]),
            };
            let _ = (query_text(&f), parse_message(&f), bind_statement(&f), password(&f));
        }
    }
}
