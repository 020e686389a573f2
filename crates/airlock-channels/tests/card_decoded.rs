//! Nothing is approved blind (invariants 6 and 8): a body sent compressed, or with a stray
//! byte that is not UTF-8, is shown decoded — a recipient hidden 20 KB in is on the card, or
//! the card says how many more bytes the dashboard shows, and the dashboard shows them.

use std::io::Write;

use airlock_channels::card::{MAX_DECODED_BYTES, Unshowable, showable};
use airlock_channels::render::{html_card, terminal};
use airlock_channels::telegram::message_html;
use airlock_channels::{BodyKind, Card, Status};

mod common;

use common::{JSON, card, line, req};

const HIDDEN: &str = "mallory@evil.example";

/// A JSON body whose real recipient sits 20 KB in, behind a harmless-looking note.
fn hidden_recipient_json(note_prefix: &[u8]) -> Vec<u8> {
    let mut b = br#"{"to":"alice@example.com","note":""#.to_vec();
    b.extend_from_slice(note_prefix);
    b.extend(std::iter::repeat_n(b'.', 20 * 1024));
    b.extend_from_slice(format!(r#"","bcc":"{HIDDEN}"}}"#).as_bytes());
    b
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zlib(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn br(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(b).unwrap();
    }
    out
}

fn zstd(b: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(b, 3).unwrap()
}

fn pending() -> Status {
    Status::Pending { approved_by: vec![] }
}

/// Every surface: the dashboard's full page shows the hidden part; the terminal and Telegram
/// cards, cut to fit, say that more bytes are on the dashboard.
fn assert_hidden_part_is_shown(c: &Card, what: &str) {
    assert!(
        c.body.text.contains(HIDDEN),
        "{what}: the card's body lacks the hidden part"
    );
    let page = html_card(c, &pending(), true);
    assert!(page.contains(HIDDEN), "{what}: the dashboard lacks the hidden part");
    let term = terminal(c, &pending());
    let tg = message_html(c, &pending());
    for (surface, text) in [("terminal", &term), ("telegram", &tg)] {
        assert!(
            text.contains(HIDDEN) || text.contains("more bytes — full request on the dashboard"),
            "{what}: the {surface} card neither shows the hidden part nor says where it is:\n{text}"
        );
    }
}

#[test]
fn a_latin1_byte_no_longer_hides_the_rest_of_a_json_body() {
    let body = hidden_recipient_json(b"caf\xe9 ");
    assert!(std::str::from_utf8(&body).is_err());
    assert_eq!(showable(&[], &body), Ok(()));
    let c = card(&req(
        "POST",
        "api.example.com",
        "/v1/send",
        &[("Content-Type", JSON)],
        &body,
    ));
    assert_eq!(c.body.kind, BodyKind::Json, "still read as JSON");
    assert!(c.body.text.contains("caf<0xE9> "), "the invalid byte is marked");
    assert_eq!(
        line(&c, "Warning"),
        Some("the body is not valid UTF-8: 1 byte is shown as <0xNN>")
    );
    assert_eq!(c.body.size, body.len());
    assert_hidden_part_is_shown(&c, "latin-1");
}

#[test]
fn compressed_bodies_are_shown_decoded() {
    let plain = hidden_recipient_json(b"");
    for (name, body) in [("gzip", gzip(&plain)), ("br", br(&plain)), ("zstd", zstd(&plain))] {
        assert!(body.len() < 2048, "{name}: {} bytes", body.len());
        let headers: &[(&str, &[u8])] = &[("Content-Type", JSON), ("Content-Encoding", name.as_bytes())];
        let held = req("POST", "api.example.com", "/v1/send", headers, &body);
        assert_eq!(showable(&held.headers, &held.body), Ok(()), "{name}");
        let c = card(&held);
        assert_eq!(c.body.kind, BodyKind::Json, "{name}");
        let d = c.body.decoded.as_ref().expect("decoded");
        assert_eq!(
            (d.encoding.as_str(), d.size, c.body.size),
            (name, plain.len(), body.len())
        );
        assert_eq!(
            line(&c, "Encoding").map(str::to_string),
            Some(format!(
                "sent compressed ({name}, {} bytes); shown decoded ({} bytes)",
                body.len(),
                plain.len()
            ))
        );
        // The raw size stays on every card, next to the decoded one.
        let page = html_card(&c, &pending(), true);
        let size = format!(
            "{} bytes as sent ({name}), {} bytes decoded (json)",
            body.len(),
            plain.len()
        );
        assert!(page.contains(&size), "{name}: {size:?} not on the page");
        assert_hidden_part_is_shown(&c, name);
    }
}

#[test]
fn summaries_read_the_decoded_body() {
    use base64::Engine;
    let msg = "To: alice@example.com\r\nBcc: mallory@evil.example\r\nSubject: hi\r\n\r\nhello\r\n";
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(msg);
    let json = serde_json::json!({ "raw": raw }).to_string();
    let held = req(
        "POST",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/messages/send",
        &[("Content-Type", JSON), ("Content-Encoding", b"gzip")],
        &gzip(json.as_bytes()),
    );
    let c = card(&held);
    assert_eq!(c.summary_title.as_deref(), Some("Send email"));
    assert_eq!(line(&c, "Bcc"), Some(HIDDEN));
}

#[test]
fn what_cannot_be_decoded_is_shown_as_sent_and_is_unshowable() {
    let held = req(
        "POST",
        "h",
        "/",
        &[("Content-Type", JSON), ("Content-Encoding", b"compress")],
        b"\x1f\x9d\x90binary",
    );
    let e = showable(&held.headers, &held.body).unwrap_err();
    assert_eq!(e, Unshowable::UnknownEncoding("compress".into()));
    assert!(e.to_string().contains("Content-Encoding \"compress\""), "{e}");
    let c = card(&held);
    assert!(c.body.decoded.is_none());
    assert!(
        line(&c, "Warning").is_some_and(|w| w.ends_with("it is shown as sent, not decoded")),
        "{:?}",
        c.summary
    );
}

// ---- showable: what the gateway asks before holding ----

fn encoded(coding: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        ("content-type".into(), JSON.to_vec()),
        ("Content-Encoding".into(), coding.as_bytes().to_vec()),
    ]
}

const TEXT: &[u8] = br#"{"to":"alice@example.com","note":"quarterly numbers"}"#;

/// The decoded text of the card built from `headers` and `body`.
fn decoded_text(headers: &[(String, Vec<u8>)], body: &[u8]) -> (String, Option<usize>) {
    let mut held = req("POST", "h", "/", &[], body);
    held.headers = headers.to_vec();
    let c = card(&held);
    (c.body.text.clone(), c.body.decoded.map(|d| d.size))
}

#[test]
fn showable_decodes_every_supported_coding() {
    let pretty = decoded_text(&[], TEXT).0;
    for (name, body) in [
        ("gzip", gzip(TEXT)),
        ("x-gzip", gzip(TEXT)),
        ("deflate", zlib(TEXT)),
        ("deflate", raw_deflate(TEXT)),
        ("br", br(TEXT)),
        ("zstd", zstd(TEXT)),
        ("GZIP", gzip(TEXT)),
    ] {
        assert_eq!(showable(&encoded(name), &body), Ok(()), "{name}");
        assert_eq!(
            decoded_text(&encoded(name), &body),
            (pretty.clone(), Some(TEXT.len())),
            "{name}"
        );
    }
    // `identity` is no coding at all.
    assert_eq!(decoded_text(&encoded("identity"), TEXT), (pretty.clone(), None));
    // Two layers, applied in the order named: gzip first, then br; in one header or two.
    let both = br(&gzip(TEXT));
    assert_eq!(showable(&encoded("gzip, br"), &both), Ok(()));
    assert_eq!(decoded_text(&encoded("gzip, br"), &both).0, pretty);
    let mut two = encoded("gzip");
    two.push(("content-encoding".into(), b"br".to_vec()));
    assert_eq!(decoded_text(&two, &both).0, pretty);
}

#[test]
fn showable_refuses_what_does_not_decode_whole() {
    let trailing = |mut b: Vec<u8>| {
        b.extend_from_slice(b"hidden");
        b
    };
    let mut truncated = zstd(TEXT);
    truncated.truncate(truncated.len() - 3);
    for (name, body) in [
        ("gzip", trailing(gzip(TEXT))),
        ("deflate", trailing(zlib(TEXT))),
        ("br", trailing(br(TEXT))),
        ("zstd", trailing(zstd(TEXT))),
        ("zstd", truncated),
        ("gzip", TEXT.to_vec()),
        ("br", TEXT.to_vec()),
    ] {
        let e = showable(&encoded(name), &body).unwrap_err();
        assert!(matches!(e, Unshowable::Undecodable { .. }), "{name}: {e}");
    }
    assert_eq!(
        showable(&encoded("compress"), TEXT),
        Err(Unshowable::UnknownEncoding("compress".into()))
    );
    // The agent's coding name is quoted inert and short.
    let e = showable(&encoded(&format!("\u{202e}{}", "x".repeat(500))), TEXT).unwrap_err();
    assert!(
        e.to_string().contains("<U+202E>xxx") && e.to_string().len() < 200,
        "{e}"
    );
    assert_eq!(
        showable(&encoded("gzip, gzip, gzip, gzip"), TEXT),
        Err(Unshowable::TooManyEncodings { count: 4, max: 3 })
    );
    // Binary is judged after decoding.
    let bin: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    assert_eq!(
        showable(&encoded("gzip"), &gzip(&bin)),
        Err(Unshowable::Binary { size: 4096, max: 512 })
    );
}

#[test]
fn decompression_bombs_stop_at_the_bound() {
    // 64 MiB of zeros compresses to a few KiB (tens of bytes for zstd and br).
    let zeros = vec![0u8; 64 << 20];
    for (name, bomb) in [("gzip", gzip(&zeros)), ("br", br(&zeros)), ("zstd", zstd(&zeros))] {
        assert!(bomb.len() < 128 << 10, "{name}: {}", bomb.len());
        let too_large = Err(Unshowable::TooLarge {
            limit: MAX_DECODED_BYTES,
        });
        assert_eq!(showable(&encoded(name), &bomb), too_large, "{name}");
        // The card shows it as sent, and says why.
        let (text, decoded) = decoded_text(&encoded(name), &bomb);
        assert!(decoded.is_none() && text.len() < 64 << 10, "{name}");
    }
    // Exactly at the bound still decodes.
    let at = vec![b'a'; MAX_DECODED_BYTES];
    assert_eq!(decoded_text(&encoded("gzip"), &gzip(&at)).1, Some(MAX_DECODED_BYTES));
}
