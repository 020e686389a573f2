//! The approver's side of an emailed card: a link to the control plane's landing page
//! (`/email/vote?a=ADDRESS&t=TOKEN`) and the confirming POST that page makes. Pure functions
//! over what the request carries; the web layer does the IO.
//!
//! Mail scanners and link previews follow links, so a GET never votes: it shows the card and
//! one form. The form's POST votes once, and only with a CSRF proof (a double-submit cookie the
//! GET set, `SameSite=Strict`, equal to a hidden field), so another site cannot make an
//! approver's browser vote. Whoever holds the link holds the vote of the person it was minted
//! for (like ntfy): the token is bound to that person ([`crate::Channel::binds_tokens`]) and
//! the hub counts each person once.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde_json::json;

use crate::token::ct_eq;
use crate::{CallbackError, Click};

/// The landing page's path on the control listener.
pub const PATH: &str = "/email/vote";
/// The CSRF cookie: random, `HttpOnly`, `SameSite=Strict`, scoped to [`PATH`].
pub const CSRF_COOKIE: &str = "airlock_email_csrf";
/// Longest address accepted (RFC 5321's path limit).
pub const MAX_ADDRESS: usize = 254;

/// True for something shaped like `local@domain`: no spaces, controls or angle brackets, so it
/// can be neither a header injection nor markup.
pub fn is_address(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    s.len() <= MAX_ADDRESS
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | '"' | '\\' | ',' | ';' | '(' | ')'))
        && !local.contains('@')
}

/// The link's query for one person and one decision (address and token percent-encoded).
pub fn link_query(address: &str, token: &str) -> String {
    format!("a={}&t={}", encode(address), encode(token))
}

/// Everything but RFC 3986's unreserved characters is escaped.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

fn encode(s: &str) -> String {
    utf8_percent_encode(s, QUERY).to_string()
}

/// `application/x-www-form-urlencoded` decoding ('+' is a space); `None` on invalid UTF-8.
fn decode(s: &str) -> Option<String> {
    let s = s.replace('+', " ");
    percent_decode_str(&s).decode_utf8().ok().map(|c| c.into_owned())
}

/// A link's address and token, shape-checked (the hub verifies the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub address: String,
    pub token: String,
}

/// Reads `a=…&t=…` (a query string or a form body). Unknown fields are refused: the page's
/// own links and form carry exactly these (plus `csrf` in the form, see [`confirm`]).
fn fields(s: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, CallbackError> {
    if s.len() > 1024 {
        return Err(CallbackError::Malformed("over 1024 bytes".into()));
    }
    let mut out = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (decode(k), decode(v)) else {
            return Err(CallbackError::Malformed("not UTF-8".into()));
        };
        if !allowed.contains(&k.as_str()) || out.iter().any(|(seen, _)| *seen == k) {
            return Err(CallbackError::Malformed(format!("unexpected field {k:?}")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn get<'a>(f: &'a [(String, String)], key: &'static str) -> Result<&'a str, CallbackError> {
    f.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| CallbackError::Malformed(format!("missing {key}")))
}

fn link_of(f: &[(String, String)]) -> Result<Link, CallbackError> {
    let address = get(f, "a")?;
    let token = get(f, "t")?;
    if !is_address(address) {
        return Err(CallbackError::Malformed("a is not an email address".into()));
    }
    if token.is_empty() || token.len() > crate::token::MAX_LEN {
        return Err(CallbackError::Malformed("t must be 1-64 bytes".into()));
    }
    Ok(Link {
        address: address.to_string(),
        token: token.to_string(),
    })
}

/// The link a GET followed: shown, never voted on.
pub fn link(query: &str) -> Result<Link, CallbackError> {
    link_of(&fields(query, &["a", "t"])?)
}

/// The confirming POST: its form (`a`, `t`, `csrf`), the CSRF cookie the GET set, and the
/// browser's `Sec-Fetch-Site` when it sends one. Only then a [`Click`] for the hub.
pub fn confirm(form: &str, cookie: Option<&str>, fetch_site: Option<&str>) -> Result<Click, CallbackError> {
    // Browsers say where a request comes from; another site's form is refused outright.
    if let Some(site) = fetch_site
        && !matches!(site, "same-origin" | "none")
    {
        return Err(CallbackError::BadSignature);
    }
    let f = fields(form, &["a", "t", "csrf"])?;
    let link = link_of(&f)?;
    let field = get(&f, "csrf").map_err(|_| CallbackError::MissingHeader("csrf"))?;
    let Some(cookie) = cookie.filter(|c| c.len() >= 32) else {
        return Err(CallbackError::MissingHeader(CSRF_COOKIE));
    };
    if !ct_eq(cookie.as_bytes(), field.as_bytes()) {
        return Err(CallbackError::BadSignature);
    }
    Ok(Click {
        done: Default::default(),
        channel: super::NAME,
        ack: json!({}),
        user: link.address,
        token: link.token,
    })
}

/// The CSRF cookie's value among a request's `Cookie` headers.
pub fn csrf_cookie<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    cookie_headers
        .into_iter()
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSRF: &str = "0123456789abcdef0123456789abcdef01234567890";

    #[test]
    fn a_link_round_trips() {
        let q = link_query("alice+ops@example.com", "AbC_12-x.a.6553f100.tag-_x");
        assert_eq!(
            link(&q).unwrap(),
            Link {
                address: "alice+ops@example.com".into(),
                token: "AbC_12-x.a.6553f100.tag-_x".into()
            }
        );
    }

    #[test]
    fn a_confirmation_needs_the_cookie_the_page_set() {
        let form = format!("{}&csrf={CSRF}", link_query("alice@example.com", "tok.a.1.x"));
        let c = confirm(&form, Some(CSRF), Some("same-origin")).unwrap();
        assert_eq!(
            (c.channel, c.user.as_str(), c.token.as_str()),
            ("email", "alice@example.com", "tok.a.1.x")
        );
        // No browser header at all (older browsers, curl) is fine with the cookie.
        confirm(&form, Some(CSRF), None).unwrap();
        assert_eq!(
            confirm(&form, None, None).unwrap_err(),
            CallbackError::MissingHeader(CSRF_COOKIE)
        );
        assert_eq!(
            confirm(&form, Some("short"), None).unwrap_err(),
            CallbackError::MissingHeader(CSRF_COOKIE)
        );
        let other = CSRF.replace('0', "1");
        assert_eq!(
            confirm(&form, Some(&other), None).unwrap_err(),
            CallbackError::BadSignature
        );
        for site in ["cross-site", "same-site"] {
            assert_eq!(
                confirm(&form, Some(CSRF), Some(site)).unwrap_err(),
                CallbackError::BadSignature
            );
        }
        let no_field = link_query("alice@example.com", "tok.a.1.x");
        assert_eq!(
            confirm(&no_field, Some(CSRF), None).unwrap_err(),
            CallbackError::MissingHeader("csrf")
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for q in [
            "",
            "a=alice%40example.com",
            "t=x",
            "a=alice&t=x",
            "a=alice%40example.com&t=",
            "a=alice%40example.com&t=x&t=y",
            "a=alice%40example.com&t=x&who=bob",
            "a=%3Cscript%3E%40example.com&t=x",
            "a=alice%0D%0ABcc%3A%20eve%40example.com%40example.com&t=x",
            "a=alice%40example.com&t=%FF",
        ] {
            assert!(matches!(link(q), Err(CallbackError::Malformed(_))), "{q}");
        }
        let long = format!("a=alice%40example.com&t={}", "x".repeat(65));
        assert!(matches!(link(&long), Err(CallbackError::Malformed(_))));
        assert!(matches!(link(&"a".repeat(2000)), Err(CallbackError::Malformed(_))));
        assert!(is_address("a.b-c+d@mail.example.org"));
        for bad in [
            "a@b",
            "@example.com",
            "a@.com",
            "a@com.",
            "a b@example.com",
            "a@b@example.com",
            "ä@example.com",
        ] {
            assert!(!is_address(bad), "{bad}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(csrf_cookie(["x=1; airlock_email_csrf=abc; y=2"]), Some("abc"));
        assert_eq!(
            csrf_cookie(["airlock_session=zzz", "airlock_email_csrf=def"]),
            Some("def")
        );
        assert_eq!(csrf_cookie(["airlock_email_csrf="]), None);
        assert_eq!(csrf_cookie(Vec::<&str>::new()), None);
    }
}
