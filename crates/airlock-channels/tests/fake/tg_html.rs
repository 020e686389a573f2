//! A strict parser for Telegram's `parse_mode: "HTML"`, written from the Bot API's
//! "HTML style" section: only the listed tags (with their listed attributes), properly
//! nested, `<`, `>` and `&` only as part of a tag or an entity, and only the named entities
//! `&lt; &gt; &amp; &quot;` plus numeric ones. Returns the text after entity parsing and the
//! tags seen, or the reason Telegram would answer "can't parse entities".

pub struct Parsed {
    pub text: String,
    pub tags: Vec<String>,
}

impl Parsed {
    /// Length as Telegram counts it (UTF-16 code units).
    pub fn len(&self) -> usize {
        self.text.encode_utf16().count()
    }
}

fn attrs(s: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let name = rest[..end].to_string();
        rest = rest[end..].trim_start();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            let Some(r) = r.strip_prefix('"') else {
                return Err(format!("unquoted value of attribute {name}"));
            };
            let close = r.find('"').ok_or("unterminated attribute value")?;
            out.push((name, Some(r[..close].to_string())));
            rest = r[close + 1..].trim_start();
        } else {
            out.push((name, None));
        }
    }
    Ok(out)
}

fn check_tag(name: &str, attrs: &[(String, Option<String>)], stack: &[String]) -> Result<(), String> {
    let only = |allowed: &[&str]| {
        attrs
            .iter()
            .all(|(n, _)| allowed.contains(&n.as_str()))
            .then_some(())
            .ok_or(format!("unsupported attribute in <{name}>"))
    };
    match name {
        "b" | "strong" | "i" | "em" | "u" | "ins" | "s" | "strike" | "del" | "tg-spoiler" | "pre" => only(&[])?,
        "code" => {
            only(&["class"])?;
            if !attrs.is_empty() && stack.last().map(String::as_str) != Some("pre") {
                return Err("a language can only be given to code inside pre".into());
            }
        }
        "span" => {
            if attrs != [("class".to_string(), Some("tg-spoiler".to_string()))] {
                return Err("span needs class=\"tg-spoiler\"".into());
            }
        }
        "a" => {
            only(&["href"])?;
            if !attrs.iter().any(|(n, v)| n == "href" && v.is_some()) {
                return Err("a needs href".into());
            }
        }
        "blockquote" => only(&["expandable"])?,
        "tg-emoji" => only(&["emoji-id"])?,
        "tg-time" => only(&["unix", "format"])?,
        other => return Err(format!("unsupported start tag \"{other}\"")),
    }
    // pre and code hold plain text only (except code directly inside pre).
    if let Some(top) = stack.last()
        && (top == "code" || (top == "pre" && name != "code"))
    {
        return Err(format!("<{name}> inside <{top}>"));
    }
    if name == "blockquote" && stack.iter().any(|t| t == "blockquote") {
        return Err("nested blockquote".into());
    }
    if name == "a" && stack.iter().any(|t| t == "a") {
        return Err("nested a".into());
    }
    Ok(())
}

fn entity(name: &str) -> Result<char, String> {
    let n = match name {
        "lt" => return Ok('<'),
        "gt" => return Ok('>'),
        "amp" => return Ok('&'),
        "quot" => return Ok('"'),
        n if n.starts_with("#x") || n.starts_with("#X") => u32::from_str_radix(&n[2..], 16).ok(),
        n if n.starts_with('#') => n[1..].parse().ok(),
        _ => None,
    };
    n.and_then(char::from_u32)
        .ok_or_else(|| format!("unsupported entity &{name};"))
}

pub fn parse(html: &str) -> Result<Parsed, String> {
    let mut text = String::new();
    let mut tags = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let close = rest.find('>').ok_or("unclosed start tag")?;
                let inner = &rest[1..close];
                rest = &rest[close + 1..];
                if let Some(name) = inner.strip_prefix('/') {
                    let name = name.trim();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        _ => return Err(format!("unexpected end tag \"{name}\"")),
                    }
                } else {
                    let end = inner.find(char::is_whitespace).unwrap_or(inner.len());
                    let (name, attr_text) = inner.split_at(end);
                    if name.is_empty() {
                        return Err("empty tag name".into());
                    }
                    check_tag(name, &attrs(attr_text)?, &stack)?;
                    stack.push(name.to_string());
                    tags.push(name.to_string());
                }
            }
            '&' => {
                let semi = rest
                    .bytes()
                    .take(12)
                    .position(|b| b == b';')
                    .ok_or("unescaped & (no entity)")?;
                text.push(entity(&rest[1..semi])?);
                rest = &rest[semi + 1..];
            }
            '>' => return Err("unescaped >".into()),
            c => {
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!("unclosed tag \"{open}\""));
    }
    Ok(Parsed { text, tags })
}
