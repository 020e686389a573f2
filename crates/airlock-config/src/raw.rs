//! Reading the parsed TOML tree: typed field access that records a located error (instead of
//! failing) on a wrong type or an unknown key, so one pass reports every problem in the file.

use toml::{Table, Value};

use crate::error::{Errors, KeyPath};

/// "a string", "an integer", … for messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn wrong_type(errs: &mut Errors, path: &KeyPath, want: &str, got: &Value) {
    errs.push(path, format!("expected {want}, found {}", type_name(got)));
}

/// `v` as a table, or an error at `path`.
pub(crate) fn as_table<'a>(v: &'a Value, path: &KeyPath, errs: &mut Errors) -> Option<&'a Table> {
    match v {
        Value::Table(t) => Some(t),
        other => {
            wrong_type(errs, path, "a table", other);
            None
        }
    }
}

/// `v` as a string, or an error at `path`.
pub(crate) fn as_str<'a>(v: &'a Value, path: &KeyPath, errs: &mut Errors) -> Option<&'a str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            wrong_type(errs, path, "a string", other);
            None
        }
    }
}

/// One table being read, with the keys it may hold.
pub(crate) struct Fields<'a> {
    pub(crate) table: &'a Table,
    pub(crate) path: KeyPath,
}

impl<'a> Fields<'a> {
    /// Starts reading `table`; every key not in `allowed` is reported as unknown.
    pub(crate) fn new(table: &'a Table, path: KeyPath, allowed: &[&str], errs: &mut Errors) -> Self {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                let msg = match suggest(key, allowed) {
                    Some(s) => format!("unknown key (did you mean \"{s}\"?)"),
                    None if allowed.is_empty() => "unknown key".to_string(),
                    None => format!("unknown key (expected one of: {})", allowed.join(", ")),
                };
                errs.push(&path.key(key), msg);
            }
        }
        Fields { table, path }
    }

    pub(crate) fn at(&self, key: &str) -> KeyPath {
        self.path.key(key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    pub(crate) fn value(&self, key: &str) -> Option<&'a Value> {
        self.table.get(key)
    }

    pub(crate) fn str(&self, key: &str, errs: &mut Errors) -> Option<&'a str> {
        as_str(self.value(key)?, &self.at(key), errs)
    }

    pub(crate) fn bool(&self, key: &str, errs: &mut Errors) -> Option<bool> {
        match self.value(key)? {
            Value::Boolean(b) => Some(*b),
            other => {
                wrong_type(errs, &self.at(key), "true or false", other);
                None
            }
        }
    }

    pub(crate) fn int(&self, key: &str, errs: &mut Errors) -> Option<i64> {
        match self.value(key)? {
            Value::Integer(i) => Some(*i),
            other => {
                wrong_type(errs, &self.at(key), "an integer", other);
                None
            }
        }
    }

    pub(crate) fn table(&self, key: &str, errs: &mut Errors) -> Option<&'a Table> {
        as_table(self.value(key)?, &self.at(key), errs)
    }

    /// An array of strings, each with its own path; absent → empty.
    pub(crate) fn strs(&self, key: &str, errs: &mut Errors) -> Vec<(KeyPath, &'a str)> {
        let Some(v) = self.value(key) else { return vec![] };
        let path = self.at(key);
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| {
                    let p = path.index(i);
                    as_str(item, &p, errs).map(|s| (p, s))
                })
                .collect(),
            other => {
                wrong_type(errs, &path, "an array of strings", other);
                vec![]
            }
        }
    }

    /// A string or an array of strings; absent → empty.
    pub(crate) fn str_or_strs(&self, key: &str, errs: &mut Errors) -> Vec<(KeyPath, &'a str)> {
        match self.value(key) {
            Some(Value::String(s)) => vec![(self.at(key), s.as_str())],
            _ => self.strs(key, errs),
        }
    }
}

/// The allowed key closest to a typo, when it is close enough to be what was meant.
fn suggest<'k>(key: &str, allowed: &[&'k str]) -> Option<&'k str> {
    allowed
        .iter()
        .map(|a| (edit_distance(key, a), *a))
        .filter(|(d, a)| *d <= 2 && *d < a.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a)
}

/// Optimal-string-alignment distance (a transposition counts as one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 2 || a.len() > 64 || b.len() > 64 {
        return usize::MAX;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `[A-Za-z0-9._-]{1,64}`: names of agents and secrets.
pub(crate) fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// An RFC 9110 token (method and header names).
pub(crate) fn valid_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Text that is safe to put on one line of a message or header: no control characters.
pub(crate) fn single_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let allowed = ["methods", "paths", "hosts", "name"];
        assert_eq!(suggest("mehtods", &allowed), Some("methods"));
        assert_eq!(suggest("path", &allowed), Some("paths"));
        assert_eq!(suggest("zzzzzz", &allowed), None);
        assert_eq!(edit_distance("abc", "acb"), 1);
    }

    #[test]
    fn names_and_tokens() {
        assert!(valid_name("mail.bot-1_x"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(valid_token("GET"));
        assert!(!valid_token("GE T"));
        assert!(!valid_token(""));
    }
}
