//! Platform-neutral treatment of agent-controlled text before any markup escaping:
//! invisible and direction-changing characters become visible escapes, and long text is cut
//! with an explicit count of what was left out (invariant 8).

/// Characters that could hide or reorder text on an approver's screen: C0/C1 controls
/// (except newline and tab), zero-width characters, bidirectional overrides and isolates,
/// and other default-ignorable format characters.
pub fn is_deceptive(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{b}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{ad}'                    // soft hyphen
        | '\u{34f}'                   // combining grapheme joiner
        | '\u{61c}'                   // arabic letter mark
        | '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' // hangul fillers
        | '\u{17b4}' | '\u{17b5}'
        | '\u{180b}'..='\u{180f}'
        | '\u{200b}'..='\u{200f}'     // zero-width space/joiners, LRM, RLM
        | '\u{2028}'..='\u{202e}'     // line/paragraph separators, embeddings, overrides
        | '\u{2060}'..='\u{206f}'     // word joiner, invisible operators, isolates
        | '\u{fe00}'..='\u{fe0f}'     // variation selectors
        | '\u{feff}'                  // BOM / zero-width no-break space
        | '\u{fff9}'..='\u{fffb}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0000}'..='\u{e0fff}'   // tags, variation selectors supplement
    )
}

/// Replaces every deceptive character with a visible `<U+XXXX>` marker; keeps `\n` and `\t`.
pub fn visible(s: &str) -> String {
    if !s.chars().any(is_deceptive) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_deceptive(c) {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Serialized JSON with every deceptive character written as a `\uXXXX` escape: the same
/// value to any JSON reader, inert on a terminal. serde_json escapes C0 controls but writes
/// DEL, C1 controls (U+009B is a CSI), bidi overrides and zero-width characters as they are.
/// `json` must be serializer output, where such characters can only stand inside strings.
pub fn json_visible(json: &str) -> String {
    if !json.chars().any(is_deceptive) {
        return json.to_string();
    }
    let mut out = String::with_capacity(json.len() + 16);
    let mut units = [0u16; 2];
    for c in json.chars() {
        if is_deceptive(c) {
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Like [`visible`], and also folds newlines and tabs to spaces: for one-line fields
/// (paths, header values, summary lines).
pub fn one_line(s: &str) -> String {
    visible(s).replace(['\n', '\r', '\t'], " ")
}

/// A piece of text cut to fit, and how much of the original was left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub text: String,
    /// Bytes of the original (UTF-8) not included in `text`.
    pub omitted_bytes: usize,
}

impl Cut {
    /// The explicit notice renderers append when something was cut.
    pub fn notice(&self) -> Option<String> {
        (self.omitted_bytes > 0).then(|| format!("… {} more bytes — full request on the dashboard", self.omitted_bytes))
    }
}

/// Cuts `s` to at most `max_bytes` bytes and `max_lines` lines, on a character boundary.
pub fn truncate(s: &str, max_bytes: usize, max_lines: usize) -> Cut {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if let Some((i, _)) = s[..end].match_indices('\n').nth(max_lines.saturating_sub(1)) {
        end = i;
    }
    Cut {
        text: s[..end].to_string(),
        omitted_bytes: s.len() - end,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deceptive_characters_become_visible() {
        let s = "pay\u{202e}lmx.exe\u{200b}ok\u{feff}\u{7}\u{e0041}";
        assert_eq!(visible(s), "pay<U+202E>lmx.exe<U+200B>ok<U+FEFF><U+0007><U+E0041>");
        assert_eq!(visible("plain\ttext\nok"), "plain\ttext\nok");
        assert_eq!(one_line("a\nb\tc\u{2028}d"), "a b c<U+2028>d");
    }

    #[test]
    fn json_stays_the_same_value_and_turns_inert() {
        let v = serde_json::json!({ "path": "/a\u{1b}[2J\u{9b}31m\u{202e}gpj.exe\u{7f}\u{e0041}", "n": [1, "é"] });
        let raw = v.to_string();
        assert!(
            raw.contains('\u{9b}') && raw.contains('\u{202e}'),
            "serde_json writes them raw"
        );
        let inert = json_visible(&raw);
        assert!(!inert.chars().any(is_deceptive), "{inert}");
        assert!(inert.contains("\\u009b") && inert.contains("\\u202e") && inert.contains("\\udb40\\udc41"));
        assert!(inert.contains('é'), "ordinary text is kept");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&inert).unwrap(), v);
    }

    #[test]
    fn truncation_counts_what_it_drops() {
        let c = truncate("héllo world", 2, 10);
        assert_eq!(c.text, "h");
        assert_eq!(c.omitted_bytes, "héllo world".len() - 1);
        assert!(c.notice().unwrap().contains("more bytes"));
        let many = "x\n".repeat(10_000);
        let c = truncate(&many, 1 << 20, 20);
        assert_eq!(c.text.lines().count(), 20);
        assert_eq!(c.omitted_bytes, many.len() - c.text.len());
        let c = truncate("short", 100, 100);
        assert_eq!((c.text.as_str(), c.omitted_bytes, c.notice()), ("short", 0, None));
    }
}
