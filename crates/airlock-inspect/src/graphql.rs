//! A GraphQL document → its operations and the top-level fields each one selects.

use std::collections::{HashMap, HashSet};

use airlock_core::facts::GraphqlOp;
use graphql_parser::query::{Definition, FragmentDefinition, OperationDefinition, Selection, SelectionSet};

/// The operation a rule sees when the document cannot be read: restrictive rules match it.
pub(crate) fn unparsed() -> GraphqlOp {
    GraphqlOp {
        kind: "unparsed".to_owned(),
        name: None,
        fields: Vec::new(),
    }
}

/// Every operation of `doc`, or one `unparsed` operation.
///
/// graphql-parser bounds bracket nesting itself (50 levels, counted on tokens, so strings
/// cannot hide any) and reports deeper documents as errors: no stack overflow.
pub(crate) fn operations(doc: &str) -> Vec<GraphqlOp> {
    let Ok(parsed) = graphql_parser::parse_query::<&str>(doc) else {
        return vec![unparsed()];
    };
    // Every definition of a name is kept: a duplicate is invalid, but the server might use either.
    let mut fragments: HashMap<&str, Vec<&FragmentDefinition<'_, &str>>> = HashMap::new();
    for def in &parsed.definitions {
        if let Definition::Fragment(f) = def {
            fragments.entry(f.name).or_default().push(f);
        }
    }
    parsed
        .definitions
        .iter()
        .filter_map(|def| match def {
            Definition::Operation(op) => Some(operation(op, &fragments)),
            Definition::Fragment(_) => None,
        })
        .collect()
}

fn operation<'a>(
    op: &'a OperationDefinition<'a, &'a str>,
    fragments: &HashMap<&str, Vec<&'a FragmentDefinition<'a, &'a str>>>,
) -> GraphqlOp {
    let (kind, name, selection) = match op {
        OperationDefinition::SelectionSet(s) => ("query", None, s),
        OperationDefinition::Query(q) => ("query", q.name, &q.selection_set),
        OperationDefinition::Mutation(m) => ("mutation", m.name, &m.selection_set),
        OperationDefinition::Subscription(s) => ("subscription", s.name, &s.selection_set),
    };
    let mut fields: Vec<String> = Vec::new();
    for field in top_level_fields(selection, fragments) {
        if !fields.iter().any(|n| n == field) {
            fields.push(field.to_owned());
        }
    }
    GraphqlOp {
        kind: kind.to_owned(),
        name: name.map(str::to_owned),
        fields,
    }
}

/// Real names (never aliases) of the fields selected at the top level, looking through inline
/// fragments and fragment spreads. Each named fragment is expanded once: cycles and
/// exponential spread trees stay linear.
fn top_level_fields<'a>(
    root: &'a SelectionSet<'a, &'a str>,
    fragments: &HashMap<&str, Vec<&'a FragmentDefinition<'a, &'a str>>>,
) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut expanded: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&'a SelectionSet<'a, &'a str>> = vec![root];
    while let Some(set) = stack.pop() {
        for item in &set.items {
            match item {
                Selection::Field(f) => out.push(f.name),
                Selection::InlineFragment(i) => stack.push(&i.selection_set),
                Selection::FragmentSpread(s) => {
                    if expanded.insert(s.fragment_name) {
                        for def in fragments.get(s.fragment_name).into_iter().flatten() {
                            stack.push(&def.selection_set);
                        }
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, operation name then fields), as the policy's restrictive side sees them.
    fn ops(doc: &str) -> Vec<(String, Vec<String>)> {
        operations(doc)
            .into_iter()
            .map(|o| (o.kind, o.name.into_iter().chain(o.fields).collect()))
            .collect()
    }

    fn op(kind: &str, names: &[&str]) -> (String, Vec<String>) {
        (kind.to_owned(), names.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn kinds_and_names() {
        assert_eq!(ops("{ viewer { login } }"), vec![op("query", &["viewer"])]);
        assert_eq!(ops("query Q { a b { c } }"), vec![op("query", &["Q", "a", "b"])]);
        assert_eq!(
            ops("mutation { deleteIssue(id: 1) { ok } }"),
            vec![op("mutation", &["deleteIssue"])]
        );
        assert_eq!(
            ops("subscription S { events }"),
            vec![op("subscription", &["S", "events"])]
        );
        assert_eq!(
            ops("query A { a } mutation B { b }"),
            vec![op("query", &["A", "a"]), op("mutation", &["B", "b"])]
        );
    }

    #[test]
    fn aliases_resolve_to_the_real_field() {
        assert_eq!(
            ops("mutation { x: deleteIssue(id: 1) { ok } }"),
            vec![op("mutation", &["deleteIssue"])]
        );
        assert_eq!(
            ops("mutation { createIssue: deleteIssue { ok } }"),
            vec![op("mutation", &["deleteIssue"])]
        );
    }

    #[test]
    fn fragments_at_top_level_are_followed() {
        let doc = "mutation M { ...F ... on Mutation { inline } } fragment F on Mutation { deleteRepo { id } ...G }
                   fragment G on Mutation { g: deep }";
        assert_eq!(ops(doc), vec![op("mutation", &["M", "inline", "deleteRepo", "deep"])]);
        // Fields nested below the top level are not operation names.
        assert_eq!(
            ops("query { a { ...F } } fragment F on A { deleteRepo }"),
            vec![op("query", &["a"])]
        );
    }

    #[test]
    fn fragment_cycles_and_duplicates_terminate() {
        let doc = "mutation { ...A } fragment A on M { a ...B } fragment B on M { b ...A } fragment A on M { a2 }";
        let got = ops(doc);
        assert_eq!(got.len(), 1);
        for want in ["a", "b", "a2"] {
            assert!(got[0].1.iter().any(|n| n == want), "{want} missing from {got:?}");
        }
    }

    #[test]
    fn unparsable_and_too_deep_fail_closed() {
        assert_eq!(operations("mutation {"), vec![unparsed()]);
        assert_eq!(operations(""), vec![unparsed()]);
        let deep = format!("{}{}", "{a".repeat(100_000), "}".repeat(100_000));
        assert_eq!(operations(&deep), vec![unparsed()]);
        let list = format!("{{ a(x: {}1{}) }}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(operations(&list), vec![unparsed()]);
    }

    #[test]
    fn strings_cannot_hide_nesting() {
        let level = "{a(s: \"}}}}\", b: \"\"\"}}}\\\"\"\"}}\"\"\") # }}}\n";
        let doc = format!("{}{}", level.repeat(60), "}".repeat(60));
        assert_eq!(operations(&doc), vec![unparsed()]);
        let shallow = format!("{}{}", level.repeat(10), "}".repeat(10));
        assert_eq!(ops(&shallow), vec![op("query", &["a"])]);
    }

    #[test]
    fn moderately_deep_documents_parse() {
        let depth = 32;
        let doc = format!("query {}x{}", "{a".repeat(depth), "}".repeat(depth));
        assert_eq!(ops(&doc), vec![op("query", &["a"])]);
    }
}
