//! `multipart/form-data` (RFC 7578) split into named parts, for the fields the policy reads
//! (`_method`, SQL and GraphQL `operations`). Lenient where servers are: LF line ends, missing
//! preamble; `None` when the body cannot be split at all, which callers read restrictively.

/// One part: its form field name (when it has one) and its content.
pub(crate) struct Part<'a> {
    pub name: Option<String>,
    pub body: &'a [u8],
}

/// The parts of `body`, given the `boundary` parameter of its Content-Type.
pub(crate) fn parts<'a>(content_type: Option<&str>, body: &'a [u8]) -> Option<Vec<Part<'a>>> {
    let boundary = content_type?
        .split(';')
        .skip(1)
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))?;
    if boundary.is_empty() {
        return None;
    }
    let delim = format!("--{boundary}");
    let mut out = Vec::new();
    let mut rest = &body[find(body, delim.as_bytes())? + delim.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(out);
        }
        let next = find(rest, delim.as_bytes())?;
        let chunk = &rest[..next];
        rest = &rest[next + delim.len()..];
        // The part: line end, headers, blank line, content, line end before the next delimiter.
        let chunk = trim_line_end(chunk.strip_prefix(b"\r\n").or_else(|| chunk.strip_prefix(b"\n"))?);
        let (head, content) = match find(chunk, b"\r\n\r\n") {
            Some(i) => (&chunk[..i], &chunk[i + 4..]),
            None => {
                let i = find(chunk, b"\n\n")?;
                (&chunk[..i], &chunk[i + 2..])
            }
        };
        out.push(Part {
            name: field_name(head),
            body: content,
        });
    }
}

fn trim_line_end(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r\n").or_else(|| b.strip_suffix(b"\n")).unwrap_or(b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `name="x"` of the part's Content-Disposition.
fn field_name(head: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(head);
    let line = head.lines().find(|l| {
        l.split(':')
            .next()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    line.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("name")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_named_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XyZ\r\ncontent-disposition: form-data; name=file; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld\r\n--XyZ--\r\n";
        let got = parts(Some("multipart/form-data; boundary=XyZ"), body).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_deref(), Some("_method"));
        assert_eq!(got[0].body, b"DELETE");
        assert_eq!(got[1].name.as_deref(), Some("file"));
        assert_eq!(got[1].body, b"hello\r\nworld");
        let lf = b"--b\nContent-Disposition: form-data; name=\"q\"\n\nx\n--b--";
        assert_eq!(
            parts(Some("multipart/form-data; boundary=\"b\""), lf).unwrap()[0].body,
            b"x"
        );
    }

    #[test]
    fn unsplittable_bodies_are_none() {
        assert!(parts(Some("multipart/form-data"), b"--x\r\n").is_none());
        assert!(parts(Some("multipart/form-data; boundary=x"), b"no delimiter").is_none());
        assert!(parts(Some("multipart/form-data; boundary=x"), b"--x\r\nno end").is_none());
        assert!(parts(None, b"").is_none());
    }
}
