//! The loader's errors. Every message names the file, the line (when known) and the key path,
//! e.g. `airlock.toml:23: rules[2].action: unknown action "alow" (expected allow, deny or approve)`.

use std::fmt;
use std::path::PathBuf;

/// One step of a key path: a table key or an array index (0-based).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Where in the document a value lives: `rules[2].action`, `secrets.gmail.hosts[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(pub Vec<Seg>);

impl KeyPath {
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path extended by a table key.
    pub fn key(&self, k: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(k.to_string()));
        KeyPath(v)
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        KeyPath(v)
    }

    pub fn segs(&self) -> &[Seg] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

fn is_bare(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare(k) {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One semantic error in the file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file as it was named to the loader.
    pub file: PathBuf,
    /// 1-based; None when the place could not be found in the source.
    pub line: Option<usize>,
    pub key: KeyPath,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if self.key.is_root() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("{}: no such configuration file; run \"airlock init\" to create one", path.display())]
    NotFound { path: PathBuf },
    /// The file exists but could not be read (permissions, not UTF-8, …).
    #[error("{}: cannot read the configuration file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML. Line and column are 1-based (column in characters).
    #[error("{}: TOML syntax error: {message}", at(path, *line, *column))]
    Syntax {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// The TOML is well-formed but says something invalid; every problem found, in file order.
    #[error("{}", list(errors))]
    Invalid { errors: Vec<Located> },
}

fn at(path: &std::path::Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

fn list(errors: &[Located]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// Errors gathered while walking the document, placed later.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    pub(crate) list: Vec<(KeyPath, String)>,
}

impl Errors {
    pub(crate) fn push(&mut self, path: &KeyPath, msg: impl Into<String>) {
        self.list.push((path.clone(), msg.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_display() {
        let p = KeyPath::root().key("rules").index(2).key("headers").key("X-Env");
        assert_eq!(p.to_string(), "rules[2].headers.X-Env");
        let p = KeyPath::root()
            .key("rules")
            .index(0)
            .key("body")
            .key("json")
            .key("/action");
        assert_eq!(p.to_string(), "rules[0].body.json.\"/action\"");
        assert_eq!(KeyPath::root().to_string(), "");
    }
}
