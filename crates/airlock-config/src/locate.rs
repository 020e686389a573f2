//! Finding the line of a key path. The document is parsed a second time with `toml_edit`,
//! which keeps byte spans; a path is looked up step by step and the deepest step that has
//! a span wins (a key's own span is preferred, since the key starts the line that defines
//! it). Offsets become 1-based lines and columns here.

use std::ops::Range;

use toml_edit::{Document, Item, Table, TableLike, Value};

use crate::error::{KeyPath, Seg};

/// Answers "which line is this key on?" for one source text.
pub(crate) struct Locator<'s> {
    src: &'s str,
    doc: Option<Document<&'s str>>,
}

#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Value(&'d Value),
    Table(&'d Table),
}

impl<'d> Node<'d> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    fn table_like(self) -> Option<&'d dyn TableLike> {
        match self {
            Node::Item(i) => i.as_table_like(),
            Node::Value(v) => v.as_inline_table().map(|t| t as &dyn TableLike),
            Node::Table(t) => Some(t as &dyn TableLike),
        }
    }

    /// The child under `key`, with the key's own span.
    fn key(self, key: &str) -> Option<(Option<Range<usize>>, Node<'d>)> {
        let (k, item) = self.table_like()?.get_key_value(key)?;
        Some((k.span(), Node::Item(item)))
    }

    fn index(self, i: usize) -> Option<Node<'d>> {
        let array = match self {
            Node::Item(Item::ArrayOfTables(a)) => return a.get(i).map(Node::Table),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => a,
            _ => return None,
        };
        array.get(i).map(Node::Value)
    }
}

impl<'s> Locator<'s> {
    pub(crate) fn new(src: &'s str) -> Self {
        Locator {
            src,
            doc: Document::parse(src).ok(),
        }
    }

    /// Byte offset where `path` (or its nearest located ancestor) is defined.
    fn offset(&self, path: &KeyPath) -> Option<usize> {
        let doc = self.doc.as_ref()?;
        let mut node = Node::Item(doc.as_item());
        let mut best: Option<usize> = None;
        for seg in path.segs() {
            let (key_span, next) = match seg {
                Seg::Key(k) => match node.key(k) {
                    Some(found) => found,
                    None => break,
                },
                Seg::Index(i) => match node.index(*i) {
                    Some(n) => (None, n),
                    None => break,
                },
            };
            if let Some(start) = key_span.or_else(|| next.span()).map(|r| r.start) {
                best = Some(start);
            }
            node = next;
        }
        best
    }

    /// 1-based line of `path`, falling back to the nearest ancestor with a known place.
    pub(crate) fn line(&self, path: &KeyPath) -> Option<usize> {
        self.offset(path).map(|off| line_col(self.src, off).0)
    }
}

/// 1-based (line, column) of byte `offset` in `src`; the column counts characters.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut off = offset.min(src.len());
    while !src.is_char_boundary(off) {
        off -= 1;
    }
    let before = &src[..off];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "[gateway]\nlisten = \"x\"\n\n[[rules]]\nname = \"a\"\n\n[[rules]]\nname = \"b\"\n\
                       action = \"alow\"\nbody = { json = { \"/a\" = 1 } }\nmethods = [\n  \"GET\",\n  \"P\",\n]\n\
                       [secrets.gmail]\nhosts = [\"x\"]\n";

    fn line(path: KeyPath) -> Option<usize> {
        Locator::new(SRC).line(&path)
    }

    #[test]
    fn finds_lines() {
        let r = KeyPath::root();
        assert_eq!(line(r.key("gateway").key("listen")), Some(2));
        assert_eq!(line(r.key("rules").index(0)), Some(4));
        assert_eq!(line(r.key("rules").index(1).key("action")), Some(9));
        assert_eq!(
            line(r.key("rules").index(1).key("body").key("json").key("/a")),
            Some(10)
        );
        assert_eq!(line(r.key("rules").index(1).key("methods").index(1)), Some(13));
        // Missing keys fall back to the nearest ancestor.
        assert_eq!(line(r.key("rules").index(1).key("approvers")), Some(7));
        assert_eq!(line(r.key("secrets").key("gmail")), Some(15));
        assert_eq!(line(r.key("secrets").key("gmail").key("hosts").index(0)), Some(16));
        assert_eq!(line(r.key("nope")), None);
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncé d", 6), (2, 3));
        assert_eq!(line_col("ab\ncé d", 5), (2, 2));
        assert_eq!(line_col("", 10), (1, 1));
    }
}
