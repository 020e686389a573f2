//! Decoded views of a response: the same bytes read as JSON string text (`\uXXXX`, `\/`,
//! `\"`, `\b` `\f` `\n` `\r` `\t` decoded) and as percent-encoded text (`%XX` decoded), so a
//! secret echoed with any subset of its characters escaped is found like a literal one.
//!
//! A view is a sequence of tokens: an escape, or one literal byte. Every escape character
//! (`\` or `%`) starts a token and no token holds one after its first byte (`\\` is two
//! literal tokens, and a surrogate pair is not decoded), so decoding may start at any token
//! boundary and gives the tokens a decoding of the whole body would. A `\uXXXX` above U+007F
//! decodes to its UTF-8 bytes.

use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ViewKind {
    Json,
    Percent,
}

pub(crate) const VIEW_KINDS: [ViewKind; 2] = [ViewKind::Json, ViewKind::Percent];

/// The longest escape token: `\uXXXX`.
const MAX_TOKEN: usize = 6;

/// What starts at an escape character.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Escape {
    /// Not an escape: the character is a literal byte.
    Literal,
    /// `len` raw bytes decoding to `bytes[..n]`.
    Token { len: usize, bytes: [u8; 4], n: usize },
    /// The input ends before this could be told (only when more input may follow).
    Incomplete,
}

impl ViewKind {
    pub(crate) fn escape_char(self) -> u8 {
        match self {
            ViewKind::Json => b'\\',
            ViewKind::Percent => b'%',
        }
    }

    /// The token at `hay[at]`, which is this view's escape character.
    pub(crate) fn escape_at(self, hay: &[u8], at: usize, last: bool) -> Escape {
        let rest = &hay[at + 1..];
        let digits = match self {
            ViewKind::Percent => 2,
            ViewKind::Json => match rest.first() {
                None if last => return Escape::Literal,
                None => return Escape::Incomplete,
                Some(&c) => match c {
                    b'"' | b'/' => return one(c),
                    b'b' => return one(0x08),
                    b'f' => return one(0x0C),
                    b'n' => return one(b'\n'),
                    b'r' => return one(b'\r'),
                    b't' => return one(b'\t'),
                    b'u' => 4,
                    _ => return Escape::Literal,
                },
            },
        };
        let skip = usize::from(self == ViewKind::Json);
        let hex = &rest[skip.min(rest.len())..];
        let have = hex.len().min(digits);
        if !hex[..have].iter().all(u8::is_ascii_hexdigit) {
            return Escape::Literal;
        }
        if have < digits {
            return if last { Escape::Literal } else { Escape::Incomplete };
        }
        let value = hex[..digits]
            .iter()
            .fold(0u32, |acc, &c| acc * 16 + (c as char).to_digit(16).unwrap_or(0));
        let len = 1 + skip + digits;
        match char::from_u32(value) {
            // Surrogates are not characters: a lone `\uD83D` stays literal text.
            None => Escape::Literal,
            Some(c) => {
                let mut bytes = [0u8; 4];
                let n = c.encode_utf8(&mut bytes).len();
                Escape::Token { len, bytes, n }
            }
        }
    }

    /// True when this view of `hay[from..]` could hold a match that the raw bytes do not:
    /// some escape decodes to a byte that occurs in a pattern, or the input ends inside one.
    pub(crate) fn matters(self, hay: &[u8], from: usize, last: bool, needed: &[bool; 256]) -> bool {
        let rest = &hay[from..];
        let relevant = |i: usize| match self.escape_at(hay, from + i, last) {
            Escape::Literal => false,
            Escape::Incomplete => true,
            Escape::Token { bytes, .. } => needed[usize::from(bytes[0])],
        };
        // JSON text is full of `\n` and `\"`, which secrets rarely hold: unless a pattern has a
        // quote or a control byte, only `\u`, `\/` and an escape cut by the end can matter, and
        // those are found at memmem speed rather than one step per backslash.
        let simple = b"\"\x08\x0C\n\r\t".iter().any(|&b| needed[usize::from(b)]);
        if self == ViewKind::Json && !simple {
            let cut = !last && rest.ends_with(b"\\");
            let slash = needed[usize::from(b'/')] && memchr::memmem::find(rest, b"\\/").is_some();
            return cut || slash || memchr::memmem::find_iter(rest, b"\\u").any(relevant);
        }
        memchr::memchr_iter(self.escape_char(), rest).any(relevant)
    }

    /// Decodes `hay[from..]`. Without `last`, an escape cut by the end is left out and its
    /// offset kept in `incomplete`.
    pub(crate) fn decode(self, hay: &[u8], from: usize, last: bool) -> Decoded {
        let mut d = Decoded {
            bytes: Zeroizing::new(Vec::with_capacity(hay.len() - from)),
            starts: Vec::with_capacity(hay.len() - from),
            ends: Vec::with_capacity(hay.len() - from),
            incomplete: None,
        };
        let esc = self.escape_char();
        let mut i = from;
        while i < hay.len() {
            let next = memchr::memchr(esc, &hay[i..]).map_or(hay.len(), |n| i + n);
            d.literals(hay, i, next);
            if next == hay.len() {
                break;
            }
            match self.escape_at(hay, next, last) {
                Escape::Literal => {
                    d.literals(hay, next, next + 1);
                    i = next + 1;
                }
                Escape::Token { len, bytes, n } => {
                    for &b in &bytes[..n] {
                        d.push(b, next, next + len);
                    }
                    i = next + len;
                }
                Escape::Incomplete => {
                    d.incomplete = Some(next);
                    break;
                }
            }
        }
        d
    }

    /// How many bytes at `hold` belong to a token that starts before it (and at or after
    /// `skip`, where this view's tokens begin): the next window's view starts past them.
    pub(crate) fn straddle(self, hay: &[u8], skip: usize, hold: usize) -> usize {
        if hold < skip {
            return skip - hold;
        }
        let from = hold.saturating_sub(MAX_TOKEN - 1).max(skip);
        let Some(j) = memchr::memrchr(self.escape_char(), &hay[from..hold]).map(|j| from + j) else {
            return 0;
        };
        match self.escape_at(hay, j, false) {
            Escape::Token { len, .. } if j + len > hold => j + len - hold,
            _ => 0,
        }
    }
}

fn one(b: u8) -> Escape {
    Escape::Token {
        len: 2,
        bytes: [b, 0, 0, 0],
        n: 1,
    }
}

/// A decoded view: its bytes and, for each, the raw span of the token it came from.
pub(crate) struct Decoded {
    pub(crate) bytes: Zeroizing<Vec<u8>>,
    pub(crate) starts: Vec<usize>,
    pub(crate) ends: Vec<usize>,
    /// Offset of an escape cut by the end of the input.
    pub(crate) incomplete: Option<usize>,
}

impl Decoded {
    fn push(&mut self, b: u8, start: usize, end: usize) {
        self.bytes.push(b);
        self.starts.push(start);
        self.ends.push(end);
    }

    fn literals(&mut self, hay: &[u8], from: usize, to: usize) {
        self.bytes.extend_from_slice(&hay[from..to]);
        self.starts.extend(from..to);
        self.ends.extend(from + 1..to + 1);
    }

    /// The index of the first decoded byte whose token starts at or after raw offset `pos`.
    pub(crate) fn index_at(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s < pos)
    }
}
