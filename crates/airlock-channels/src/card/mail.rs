//! "Send email" summaries for the Gmail API: who gets the message, its subject, the start of its
//! text and its attachments, read from the RFC 822 message inside the request.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use super::body::essence;
use super::{Req, preview};
use crate::text::one_line;

type Summary = (String, Vec<(String, String)>);

/// Deepest MIME nesting followed, and most parts looked at: hostile messages stay cheap.
const MAX_DEPTH: usize = 8;
const MAX_PARTS: usize = 200;
/// RFC 2046 caps boundaries at 70 characters; a longer one would only make the scan slow.
const MAX_BOUNDARY: usize = 200;
/// RFC 2047 caps encoded-words at 75 characters; looking further only costs time.
const MAX_WORD: usize = 1024;

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_padding_mode(DecodePaddingMode::Indifferent)
    .with_decode_allow_trailing_bits(true);
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);

/// Base64 as Gmail accepts it: URL-safe or standard, padded or not, line breaks ignored.
pub(super) fn b64(s: &[u8]) -> Option<Vec<u8>> {
    let clean: Vec<u8> = s.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    URL_SAFE.decode(&clean).or_else(|_| STANDARD.decode(&clean)).ok()
}

fn is_send_path(seg: &[String]) -> bool {
    let seg = match seg.first() {
        Some(s) if s.eq_ignore_ascii_case("upload") => &seg[1..],
        _ => seg,
    };
    let fixed = |i: usize, w: &str| seg.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    seg.len() == 6
        && fixed(0, "gmail")
        && fixed(1, "v1")
        && fixed(2, "users")
        && (fixed(4, "messages") || fixed(4, "drafts"))
        && fixed(5, "send")
}

pub(super) fn summarize(req: &Req) -> Option<Summary> {
    // The Gmail API's send path is recognised on any host (self-hosted Gmail-compatible
    // APIs, local mocks): the summary reads the body, and the card always shows the real host.
    // Resumable uploads send the message with PUT.
    if !matches!(req.method.as_str(), "POST" | "PUT") || !is_send_path(&req.segments) {
        return None;
    }
    let draft = req.segments.iter().any(|s| s.eq_ignore_ascii_case("drafts"));
    let mut lines = Vec::new();
    let mut message: Option<Vec<u8>> = None;
    let mut meta: Option<Value> = None;
    let mime = essence(req.parsed.view.content_type.as_deref());

    if let Some(v) = &req.parsed.json {
        meta = Some(v.clone());
    } else if mime.starts_with("multipart/") {
        // uploadType=multipart: a JSON metadata part and a message/rfc822 part.
        let ct = req.parsed.view.content_type.as_deref().unwrap_or_default();
        let parts = param(ct, "boundary").map_or_else(Vec::new, |b| split_multipart(req.body, &b));
        for part in parts {
            let (h, body) = split_message(part);
            let pm = essence(header(&h, "content-type").as_deref());
            if pm.contains("json") {
                meta = serde_json::from_slice(body).ok();
            } else if message.is_none() {
                message = Some(body.to_vec());
            }
        }
    } else if !req.body.is_empty() {
        // uploadType=media: the body is the message itself.
        message = Some(req.body.to_vec());
    }

    if let Some(v) = &meta {
        // A draft send may carry the draft's new content under "message".
        let m = v.get("message").unwrap_or(v);
        if let Some(raw) = m.get("raw").and_then(Value::as_str) {
            match b64(raw.as_bytes()) {
                Some(bytes) => message = Some(bytes),
                None => lines.push(("Message".into(), "(\"raw\" is not valid base64: read the body)".into())),
            }
        }
        if let Some(t) = m.get("threadId").and_then(Value::as_str) {
            lines.push(("Thread".into(), one_line(t)));
        }
        if draft && let Some(id) = v.get("id").and_then(Value::as_str) {
            lines.push(("Draft".into(), one_line(id)));
        }
    }

    match &message {
        Some(m) => lines.extend(message_lines(m)),
        None if draft => lines.push((
            "Message".into(),
            "the saved draft's content is stored at Gmail and not part of this request".into(),
        )),
        None => lines.push(("Message".into(), "(no message found in the request)".into())),
    }
    let title = if draft {
        "Send email (saved draft)"
    } else {
        "Send email"
    };
    Some((title.into(), lines))
}

/// To, Cc, Bcc, From (when present), Subject, Body and Attachments of an RFC 822 message.
pub(super) fn message_lines(msg: &[u8]) -> Vec<(String, String)> {
    let (headers, body) = split_message(msg);
    let mut lines = Vec::new();
    for (label, name, sep) in [
        ("To", "to", ", "),
        ("Cc", "cc", ", "),
        ("Bcc", "bcc", ", "),
        ("From", "from", ", "),
        ("Subject", "subject", " / "),
    ] {
        // Every occurrence: a second To header still adds recipients.
        let all: Vec<String> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| decode_words(v.trim()))
            .collect();
        if !all.is_empty() {
            lines.push((label.to_string(), one_line(&all.join(sep))));
        }
    }
    let mut found = Found::default();
    walk_mime(&headers, body, 0, &mut found);
    if let Some(text) = found.text.or(found.html.map(|h| strip_tags(&h))) {
        lines.push(("Body".into(), preview(&text)));
    }
    if !found.attachments.is_empty() {
        lines.push(("Attachments".into(), one_line(&found.attachments.join(", "))));
    }
    lines
}

/// Header section (unfolded, names lower-cased, values lossy UTF-8) and body.
fn split_message(msg: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    // An empty first line: no headers at all.
    for nl in [&b"\r\n"[..], b"\n"] {
        if let Some(body) = msg.strip_prefix(nl) {
            return (Vec::new(), body);
        }
    }
    let crlf = find(msg, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = find(msg, b"\n\n").map(|i| (i, i + 2));
    let (head, body) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            let (end, start) = if a.0 <= b.0 { a } else { b };
            (&msg[..end], &msg[start..])
        }
        (Some((end, start)), None) | (None, Some((end, start))) => (&msg[..end], &msg[start..]),
        (None, None) => (msg, &msg[msg.len()..]),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in String::from_utf8_lossy(head).split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push_str(line);
            }
        } else if let Some((n, v)) = line.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim_start().to_string()));
        }
    }
    (headers, body)
}

fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A parameter of a structured header (`boundary`, `charset`, `filename`, `name`).
fn param(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The parts of a multipart body (each still with its own headers).
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Vec::new();
    }
    let delim = format!("--{boundary}").into_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(off) = find(&body[i..], &delim) {
        let at = i + off;
        if at == 0 || body[at - 1] == b'\n' {
            starts.push(at);
            if starts.len() > MAX_PARTS {
                break;
            }
        }
        i = at + delim.len();
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let seg = &body[w[0] + delim.len()..w[1]];
        if seg.starts_with(b"--") {
            break; // closing delimiter
        }
        // Drop the rest of the delimiter line and the line break before the next delimiter.
        let seg = match seg.iter().position(|&c| c == b'\n') {
            Some(nl) => &seg[nl + 1..],
            None => &seg[seg.len()..],
        };
        let seg = seg.strip_suffix(b"\n").unwrap_or(seg);
        parts.push(seg.strip_suffix(b"\r").unwrap_or(seg));
    }
    parts
}

#[derive(Default)]
struct Found {
    text: Option<String>,
    html: Option<String>,
    attachments: Vec<String>,
    parts: usize,
}

fn walk_mime(headers: &[(String, String)], body: &[u8], depth: usize, found: &mut Found) {
    found.parts += 1;
    if found.parts > MAX_PARTS {
        return;
    }
    let ct = header(headers, "content-type").unwrap_or_else(|| "text/plain".into());
    let mime = essence(Some(&ct));
    if mime.starts_with("multipart/") && depth < MAX_DEPTH {
        if let Some(b) = param(&ct, "boundary") {
            for part in split_multipart(body, &b) {
                let (h, b) = split_message(part);
                walk_mime(&h, b, depth + 1, found);
            }
        }
        return;
    }
    let disposition = header(headers, "content-disposition").unwrap_or_default();
    let filename = param(&disposition, "filename").or_else(|| param(&ct, "name"));
    let attached = disposition.trim_start().to_ascii_lowercase().starts_with("attachment");
    let decoded = transfer_decode(headers, body);
    if !attached && filename.is_none() {
        if mime == "text/plain" && found.text.is_none() {
            found.text = Some(charset_decode(&decoded, param(&ct, "charset").as_deref()));
            return;
        }
        if mime == "text/html" && found.html.is_none() {
            found.html = Some(charset_decode(&decoded, param(&ct, "charset").as_deref()));
            return;
        }
        if mime.starts_with("text/") {
            return;
        }
    }
    let name = filename.map_or_else(|| "(unnamed)".to_string(), |f| decode_words(&f));
    found
        .attachments
        .push(format!("{name} ({mime}, {} bytes)", decoded.len()));
}

fn transfer_decode(headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let cte = header(headers, "content-transfer-encoding").unwrap_or_default();
    match cte.trim().to_ascii_lowercase().as_str() {
        "base64" => b64(body).unwrap_or_else(|| body.to_vec()),
        "quoted-printable" => quoted_printable(body, false),
        _ => body.to_vec(),
    }
}

/// Quoted-printable (RFC 2045), or the Q encoding of RFC 2047 when `q_words` (`_` is a space).
fn quoted_printable(s: &[u8], q_words: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'=' => {
                let hex = s.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    out.push(b);
                    i += 3;
                } else if s.get(i + 1) == Some(&b'\n') {
                    i += 2; // soft line break
                } else if s.get(i + 1..i + 3) == Some(b"\r\n") {
                    i += 3;
                } else {
                    out.push(b'=');
                    i += 1;
                }
            }
            b'_' if q_words => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// UTF-8 (lossy), with Latin-1 for the ISO-8859-1 family and Windows-1252.
fn charset_decode(b: &[u8], charset: Option<&str>) -> String {
    let cs = charset.unwrap_or("utf-8").to_ascii_lowercase();
    if matches!(
        cs.as_str(),
        "iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "windows-1252" | "cp1252"
    ) {
        b.iter().map(|&c| c as char).collect()
    } else {
        String::from_utf8_lossy(b).into_owned()
    }
}

/// Decodes RFC 2047 encoded-words (`=?utf-8?B?…?=`, `=?iso-8859-1?Q?…?=`); whitespace between
/// two adjacent encoded-words is dropped, as the RFC says. Unknown charsets stay encoded.
pub(super) fn decode_words(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut after_word = false;
    while let Some(i) = rest.find("=?") {
        let (before, at) = rest.split_at(i);
        match encoded_word(at) {
            Some((text, len)) => {
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&text);
                rest = &at[len..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &at[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One encoded-word at the start of `s`: its text and its length in `s`.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let mut end = s.len().min(MAX_WORD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let inner = s[..end].strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (enc, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    let len = 2 + charset.len() + 1 + enc.len() + 1 + end + 2;
    if charset.is_empty() || text.contains(char::is_whitespace) || charset.contains(char::is_whitespace) {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => b64(text.as_bytes())?,
        "Q" | "q" => quoted_printable(text.as_bytes(), true),
        _ => return None,
    };
    // RFC 2231 language suffix: utf-8*en
    let charset = charset.split('*').next().unwrap_or(charset).to_ascii_lowercase();
    let known = matches!(
        charset.as_str(),
        "utf-8" | "utf8" | "us-ascii" | "ascii" | "iso-8859-1" | "iso8859-1" | "latin1" | "windows-1252" | "cp1252"
    );
    known.then(|| (charset_decode(&bytes, Some(&charset)), len))
}

/// Crude tag removal for an HTML-only message: good enough to preview its words.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words() {
        assert_eq!(
            decode_words("=?utf-8?B?SMOpbGxv?= =?UTF-8?Q?_w=C3=B6rld?="),
            "Héllo wörld"
        );
        assert_eq!(decode_words("a =?iso-8859-1?q?caf=E9?= b"), "a café b");
        assert_eq!(decode_words("=?koi8-r?B?AAA=?= x"), "=?koi8-r?B?AAA=?= x");
        assert_eq!(decode_words("=?broken"), "=?broken");
    }

    #[test]
    fn multipart_text_and_attachment() {
        let m = b"To: a@x\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npre\r\n--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nHi=20there=\r\n!\r\n\
--b1\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n--b1--\r\n";
        let l = message_lines(m);
        assert!(l.contains(&("Body".into(), "Hi there!".into())), "{l:?}");
        assert!(
            l.contains(&("Attachments".into(), "x.pdf (application/pdf, 3 bytes)".into())),
            "{l:?}"
        );
    }
}
