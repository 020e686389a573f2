//! `[[tests]]`: cases a policy file carries for itself — a request and the action the policy
//! must take — run by `airlock policy check` like unit tests. Only their shape is checked here;
//! deciding them needs the gateway's canonicalisation, which lives outside this crate.

use airlock_core::policy::Action;
use toml::Value;

use crate::error::{Errors, KeyPath};
use crate::raw::{Fields, single_line, valid_name, valid_token};
use crate::secrets::array_of_tables;

const KEYS: &[&str] = &["name", "request", "agent", "headers", "body", "expect", "rule"];

/// One `[[tests]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyCase {
    /// `name`, or `tests[N]` when none is given.
    pub name: String,
    /// Where the entry starts, for messages (`file:line`); set by the loader.
    pub line: Option<usize>,
    pub method: String,
    /// `http://` or `https://` URL.
    pub url: String,
    /// The agent sending it (any name: agents may also be created at run time).
    pub agent: String,
    /// `Name: value` lines.
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub expect: Action,
    /// The rule that must decide it (`None`: any, including the default).
    pub rule: Option<String>,
    /// The key path of the entry (for placing it on a line).
    pub(crate) path: KeyPath,
}

/// Reads `[[tests]]`; `rule_names` are the rules of the same file (a case naming another rule
/// is a typo that would make it fail forever).
pub(crate) fn read(value: Option<&Value>, rule_names: &[String], errs: &mut Errors) -> Vec<PolicyCase> {
    let mut out = Vec::new();
    for (path, t) in array_of_tables(value, "tests", errs) {
        let f = Fields::new(t, path.clone(), KEYS, errs);
        let name = match f.str("name", errs) {
            Some(n) if !n.is_empty() && single_line(n) => n.to_string(),
            Some(_) => {
                errs.push(&f.at("name"), "must be one line of text");
                continue;
            }
            None => format!("tests[{}]", out.len()),
        };
        let Some((method, url)) = request(&f, errs) else {
            continue;
        };
        let agent = match f.str("agent", errs) {
            Some(a) if valid_name(a) => a.to_string(),
            Some(a) => {
                errs.push(
                    &f.at("agent"),
                    format!("{a:?} is not an agent name ([A-Za-z0-9._-]{{1,64}})"),
                );
                continue;
            }
            None => "test".to_string(),
        };
        let mut headers = Vec::new();
        for (p, h) in f.strs("headers", errs) {
            match h.split_once(':') {
                Some((k, v)) if valid_token(k.trim()) && single_line(v) => {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()))
                }
                _ => errs.push(&p, format!("{h:?}: expected \"Name: value\"")),
            }
        }
        let body = f.str("body", errs).map(str::to_string);
        let Some(expect) = f.str("expect", errs).and_then(|e| match e {
            "allow" => Some(Action::Allow),
            "deny" => Some(Action::Deny),
            "approve" => Some(Action::Approve),
            other => {
                errs.push(&f.at("expect"), format!("{other:?}: expected allow, deny or approve"));
                None
            }
        }) else {
            if !f.has("expect") {
                errs.push(&path, "a test needs `expect` (allow, deny or approve)");
            }
            continue;
        };
        let rule = match f.str("rule", errs) {
            Some(r) if rule_names.iter().any(|n| n == r) => Some(r.to_string()),
            Some(r) => {
                errs.push(&f.at("rule"), format!("no rule is named {r:?} in this file"));
                continue;
            }
            None => None,
        };
        out.push(PolicyCase {
            name,
            line: None,
            method,
            url,
            agent,
            headers,
            body,
            expect,
            rule,
            path,
        });
    }
    out
}

/// `request = "METHOD URL"`.
fn request(f: &Fields<'_>, errs: &mut Errors) -> Option<(String, String)> {
    let Some(r) = f.str("request", errs) else {
        if !f.has("request") {
            errs.push(
                &f.path,
                "a test needs `request` (e.g. \"DELETE https://api.example.com/x\")",
            );
        }
        return None;
    };
    let (method, url) = r.trim().split_once(' ')?;
    let url = url.trim();
    if !valid_token(method) || !(url.starts_with("http://") || url.starts_with("https://")) || !single_line(url) {
        errs.push(
            &f.at("request"),
            format!("{r:?}: expected \"METHOD http(s)://host/path\""),
        );
        return None;
    }
    Some((method.to_string(), url.to_string()))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    const HEAD: &str =
        "[[rules]]\nname = \"reads\"\nhosts = [\"api.example.com\"]\nmethods = [\"GET\"]\naction = \"allow\"\n";

    #[test]
    fn cases_are_read_with_their_lines() {
        let src = format!(
            "{HEAD}\n[[tests]]\nname = \"a read\"\nrequest = \"GET https://api.example.com/x\"\nexpect = \"allow\"\nrule = \"reads\"\n\n[[tests]]\nrequest = \"POST https://api.example.com/x\"\nagent = \"bot\"\nheaders = [\"Content-Type: application/json\"]\nbody = \"{{}}\"\nexpect = \"deny\"\n"
        );
        let c = Config::parse(&src, Path::new("a.toml")).unwrap();
        assert_eq!(c.tests.len(), 2);
        assert_eq!(c.tests[0].name, "a read");
        assert_eq!(c.tests[0].line, Some(7));
        assert_eq!(c.tests[0].rule.as_deref(), Some("reads"));
        assert_eq!(c.tests[1].name, "tests[1]");
        assert_eq!(c.tests[1].agent, "bot");
        assert_eq!(
            c.tests[1].headers,
            vec![("content-type".into(), "application/json".into())]
        );
    }

    #[test]
    fn bad_cases_name_file_line_and_key() {
        let src = format!(
            "{HEAD}\n[[tests]]\nrequest = \"GET api.example.com\"\nexpect = \"allow\"\n\n[[tests]]\nrequest = \"GET https://x/\"\nexpect = \"permit\"\n\n[[tests]]\nrequest = \"GET https://x/\"\nexpect = \"allow\"\nrule = \"nope\"\n\n[[tests]]\nrequest = \"GET https://x/\"\n"
        );
        let e = Config::parse(&src, Path::new("a.toml")).unwrap_err().to_string();
        assert!(e.contains("a.toml:8: tests[0].request"), "{e}");
        assert!(e.contains("a.toml:13: tests[1].expect"), "{e}");
        assert!(e.contains("a.toml:18: tests[2].rule: no rule is named \"nope\""), "{e}");
        assert!(e.contains("tests[3]: a test needs `expect`"), "{e}");
    }
}
