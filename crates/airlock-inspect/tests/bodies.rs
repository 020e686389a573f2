//! Bodies as they arrive over HTTP: content types, GraphQL requests, JSON-RPC/MCP, JSON.

use airlock_core::facts::{BodyFacts, GraphqlOp, JsonRpcCall, SqlClass};
use airlock_inspect::{Want, inspect};
use serde_json::json;

const JSON: &str = "application/json";

fn gql(ct: Option<&str>, body: &str) -> Vec<GraphqlOp> {
    inspect(
        ct,
        body.as_bytes(),
        &[],
        Want {
            graphql: true,
            ..Want::default()
        },
    )
    .graphql
}

fn op(kind: &str, fields: &[&str]) -> GraphqlOp {
    GraphqlOp {
        kind: kind.to_owned(),
        name: None,
        fields: fields.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn named(kind: &str, name: &str, fields: &[&str]) -> GraphqlOp {
    GraphqlOp {
        name: Some(name.to_owned()),
        ..op(kind, fields)
    }
}

fn unparsed() -> GraphqlOp {
    op("unparsed", &[])
}

fn rpc(body: &str) -> Vec<JsonRpcCall> {
    inspect(
        Some(JSON),
        body.as_bytes(),
        &[],
        Want {
            jsonrpc: true,
            ..Want::default()
        },
    )
    .jsonrpc
}

fn call(method: &str, tool: Option<&str>) -> JsonRpcCall {
    JsonRpcCall {
        method: method.to_owned(),
        tool: tool.map(str::to_owned),
        tool_unread: false,
    }
}

fn unread_tool() -> JsonRpcCall {
    JsonRpcCall {
        tool_unread: true,
        ..call("tools/call", None)
    }
}

#[test]
fn nothing_wanted_nothing_computed() {
    let body = br#"{"query":"mutation { a }","method":"x","sql":"DROP TABLE t"}"#;
    assert_eq!(inspect(Some(JSON), body, &[], Want::default()), BodyFacts::default());
    let only_json = inspect(
        Some(JSON),
        body,
        &[],
        Want {
            json: true,
            ..Want::default()
        },
    );
    assert!(!only_json.json.is_empty() && only_json.graphql.is_empty() && only_json.sql.is_empty());
    assert!(only_json.jsonrpc.is_empty());
}

#[test]
fn json_detection() {
    let want = Want {
        json: true,
        ..Want::default()
    };
    let json_of = |ct: Option<&str>, body: &[u8]| {
        let f = inspect(ct, body, &[], want);
        (f.json, f.json_unread)
    };
    let v = json!({"a": [1, 2]});
    assert_eq!(
        json_of(Some("application/json; charset=utf-8"), br#"{"a":[1,2]}"#),
        (vec![v.clone()], false)
    );
    assert_eq!(
        json_of(Some("application/vnd.github+json"), br#"{"a":[1,2]}"#).0,
        std::slice::from_ref(&v)
    );
    assert_eq!(json_of(None, b" \n {\"a\":[1,2]}").0, std::slice::from_ref(&v));
    assert_eq!(json_of(Some("text/plain"), b"\xEF\xBB\xBF{\"a\":[1,2]}").0, [v]);
    assert_eq!(json_of(Some(JSON), b"[1,2]").0, [json!([1, 2])]);
    assert_eq!(json_of(Some(JSON), b"17").0, [json!(17)]);
    // Not JSON by type or look: no reading, nothing unread.
    assert_eq!(json_of(None, b"17"), (vec![], false));
    // Claims JSON and cannot be read: unread (restrictive rules match, allow rules never do).
    assert_eq!(json_of(Some(JSON), b"{\"a\":"), (vec![], true));
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(json_of(Some(JSON), deep.as_bytes()), (vec![], true));
}

#[test]
fn graphql_over_http() {
    let body = r#"{"query":"mutation Del($id: ID!) { x: deleteIssue(id: $id) { ok } }","operationName":"Del"}"#;
    assert_eq!(gql(Some(JSON), body), vec![named("mutation", "Del", &["deleteIssue"])]);
    assert_eq!(
        gql(Some("application/graphql"), "{ viewer { login } }"),
        vec![op("query", &["viewer"])]
    );
    // Shorthand query sent raw without a content type: it starts with `{` but is not JSON.
    assert_eq!(gql(None, "{ viewer { login } }"), vec![op("query", &["viewer"])]);
    let form = "query=mutation%20%7B%20deleteRepo%20%7D&query=%7B%20a%20%7D";
    assert_eq!(
        gql(Some("application/x-www-form-urlencoded"), form),
        vec![op("mutation", &["deleteRepo"]), op("query", &["a"])]
    );
    assert_eq!(gql(Some(JSON), r#"{"foo":1}"#), vec![]);
    assert_eq!(gql(Some("image/png"), "mutation { a }"), vec![]);
}

#[test]
fn graphql_batches() {
    let body = r#"[{"query":"{ a }"},{"query":"mutation { ...F } fragment F on Mutation { deleteAll }"}]"#;
    assert_eq!(
        gql(Some(JSON), body),
        vec![op("query", &["a"]), op("mutation", &["deleteAll"])]
    );
}

#[test]
fn graphql_fail_closed() {
    assert_eq!(gql(Some(JSON), r#"{"query":"mutation {"}"#), vec![unparsed()]);
    assert_eq!(
        gql(Some(JSON), r#"{"query":{"nested":"mutation { a }"}}"#),
        vec![unparsed()]
    );
    assert_eq!(gql(Some(JSON), "{not json"), vec![unparsed()]);
    assert_eq!(gql(Some("application/graphql"), "\u{0}\u{1}"), vec![unparsed()]);
    assert_eq!(
        gql(Some("multipart/form-data; boundary=x"), "--x\r\n"),
        vec![unparsed()]
    );
    let persisted = r#"{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"abc"}}}"#;
    assert_eq!(gql(Some(JSON), persisted), vec![unparsed()]);
    assert_eq!(
        gql(Some(JSON), r#"{"documentId":"abc","variables":{}}"#),
        vec![unparsed()]
    );
    // A repeated key: a first-wins server runs the mutation, a last-wins one the query.
    let dup = r#"{"query":"mutation { deleteAll }","query":"{ a }"}"#;
    assert_eq!(
        gql(Some(JSON), dup),
        vec![op("query", &["a"]), op("mutation", &["deleteAll"])]
    );
    assert_eq!(
        gql(Some(JSON), r#"{"query":"mutation { deleteAll }","query":null}"#),
        vec![op("mutation", &["deleteAll"])]
    );
}

#[test]
fn jsonrpc_and_mcp() {
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_file","arguments":{}}}"#;
    assert_eq!(rpc(body), vec![call("tools/call", Some("delete_file"))]);
    assert_eq!(
        rpc(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
        vec![call("notifications/initialized", None)]
    );
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},
        {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"exec"}},
        {"jsonrpc":"2.0","id":3,"result":{}},
        {"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":7}},
        "junk"]"#;
    assert_eq!(
        rpc(batch),
        vec![
            call("tools/list", None),
            call("tools/call", Some("exec")),
            unread_tool()
        ]
    );
    // Only tools/call names a tool.
    assert_eq!(
        rpc(r#"{"method":"resources/read","params":{"name":"x"}}"#),
        vec![call("resources/read", None)]
    );
    assert_eq!(rpc(r#"{"method":5}"#), vec![]);
    assert_eq!(rpc("not json"), vec![]);
}

#[test]
fn sql_in_http_bodies() {
    let sql = |ct: Option<&str>, body: &str| {
        let f = inspect(
            ct,
            body.as_bytes(),
            &[],
            Want {
                sql: true,
                ..Want::default()
            },
        );
        (f.sql, f.sql_unparsed)
    };
    use SqlClass::*;
    assert_eq!(sql(None, "DROP TABLE x; SELECT 1"), (vec![Ddl, Read], false));
    assert_eq!(sql(Some("text/plain"), "delete from t"), (vec![Write], false));
    assert_eq!(
        sql(Some(JSON), r#"{"query":"SELECT 1","params":[]}"#),
        (vec![Read], false)
    );
    assert_eq!(
        sql(Some(JSON), r#"{"statements":[{"statement":"DELETE FROM t"}]}"#),
        (vec![Write], false)
    );
    assert_eq!(sql(Some(JSON), r#"{"sql":"  "}"#), (vec![], false));
    assert_eq!(sql(Some(JSON), r#"{"rows":[1,2]}"#), (vec![], false));
    assert_eq!(
        sql(
            Some("application/x-www-form-urlencoded"),
            "sql=SELECT+1%3B+DROP+TABLE+t"
        ),
        (vec![Read, Ddl], false)
    );
    assert_eq!(sql(Some(JSON), r#"{"query":"SELEC 1"}"#), (vec![Other], true));
    assert_eq!(
        sql(Some(JSON), r#"{"query":"DROP TABLE t","query":"SELECT 1"}"#),
        (vec![Read, Ddl], false)
    );
    assert_eq!(sql(Some("application/sql"), "\u{0}"), (vec![Other], true));
    let f = inspect(
        Some("application/sql"),
        b"SELECT \xFF",
        &[],
        Want {
            sql: true,
            ..Want::default()
        },
    );
    assert_eq!((f.sql, f.sql_unparsed), (vec![Other], true));
    // A type we do not know: a server that runs the body as SQL whatever its type reads this.
    assert_eq!(sql(Some("image/png"), "DROP TABLE t"), (vec![Ddl], false));
}
