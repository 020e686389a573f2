//! Turns a request body into the [`BodyFacts`] the policy reads.
//!
//! Every byte here comes from the agent, so nothing panics, recursion is bounded everywhere
//! (JSON, GraphQL and SQL), and when a body claims to be something it cannot be read as, the
//! facts say so (`unparsed`) so that restrictive rules still match: fail closed.

#![forbid(unsafe_code)]

mod graphql;
mod json;
mod sources;
mod sql;

use airlock_core::facts::{BodyFacts, GraphqlOp, JsonRpcCall, SqlClass};
use airlock_core::policy::BodyNeeds;
use serde_json::Value;

use sources::MediaType;

/// Which facts to compute: only those some candidate rule reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub json: bool,
    pub graphql: bool,
    pub jsonrpc: bool,
    pub sql: bool,
}

impl Want {
    /// Every fact.
    pub const ALL: Want = Want {
        json: true,
        graphql: true,
        jsonrpc: true,
        sql: true,
    };

    fn any(&self) -> bool {
        self.json || self.graphql || self.jsonrpc || self.sql
    }
}

impl From<BodyNeeds> for Want {
    fn from(n: BodyNeeds) -> Self {
        Want {
            json: n.json,
            graphql: n.graphql,
            jsonrpc: n.jsonrpc,
            sql: n.sql,
        }
    }
}

/// The facts `want` asks for about `body`, sent with `content_type`.
pub fn inspect(content_type: Option<&str>, body: &[u8], want: Want) -> BodyFacts {
    let mut facts = BodyFacts::default();
    if !want.any() {
        return facts;
    }
    // Servers that skip a UTF-8 byte-order mark must not see a body we failed to parse.
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let media = MediaType::of(content_type);
    let parsed = if media.is_json() || sources::looks_like_json(body) {
        json::parse(body)
    } else {
        None
    };

    if want.graphql {
        facts.graphql = graphql_ops(&media, body, parsed.as_ref());
    }
    if want.jsonrpc {
        facts.jsonrpc = parsed.as_ref().map(|p| jsonrpc_calls(&p.value)).unwrap_or_default();
    }
    if want.sql {
        let (texts, mut unparsed) = sources::sql_texts(&media, body, parsed.as_ref());
        // An empty text runs nothing.
        for text in texts.iter().filter(|t| !t.trim().is_empty()) {
            match sql::classify_text(text) {
                Ok(classes) => facts.sql.extend(classes),
                Err(classes) => {
                    facts.sql.extend(classes);
                    unparsed = true;
                }
            }
        }
        if unparsed && !facts.sql.contains(&SqlClass::Other) {
            facts.sql.push(SqlClass::Other);
        }
        facts.sql_unparsed = unparsed;
    }
    if want.json {
        facts.json = parsed.map(|p| p.value);
    }
    facts
}

/// GraphQL over HTTP: a JSON request object or batch array, `application/graphql` text, or
/// (some servers accept it) the raw document as text or in a form field.
fn graphql_ops(media: &MediaType, body: &[u8], parsed: Option<&json::Parsed>) -> Vec<GraphqlOp> {
    if let Some(p) = parsed {
        let mut ops = match &p.value {
            Value::Object(_) => graphql_request(&p.value),
            Value::Array(items) => items.iter().flat_map(graphql_request).collect(),
            _ => Vec::new(),
        };
        // A repeated key may hide a document that a first-wins server would run.
        if p.duplicate_keys {
            ops.push(graphql::unparsed());
        }
        return ops;
    }
    if media.is_json() {
        // Declared JSON that does not parse (or nests too deep): we cannot tell what it runs.
        return vec![graphql::unparsed()];
    }
    if media.is_form() {
        let docs = sources::form_values(body, &["query"]);
        return docs
            .iter()
            .flat_map(|d| {
                d.as_deref()
                    .map_or_else(|| vec![graphql::unparsed()], graphql::operations)
            })
            .collect();
    }
    if media.is_text_or_absent() || media.is("application/graphql") {
        return match std::str::from_utf8(body) {
            Ok(doc) => graphql::operations(doc),
            Err(_) => vec![graphql::unparsed()],
        };
    }
    if media.is_multipart() {
        // GraphQL multipart uploads carry the operation in a form part we do not parse.
        return vec![graphql::unparsed()];
    }
    Vec::new()
}

/// One element of a GraphQL request: `{"query": "...", "operationName": ...}`.
fn graphql_request(v: &Value) -> Vec<GraphqlOp> {
    let Value::Object(obj) = v else { return Vec::new() };
    match obj.get("query") {
        Some(Value::String(doc)) => graphql::operations(doc),
        Some(Value::Null) | None => {
            // Persisted queries run a document stored on the server, which we cannot see.
            let marker = |k: &str| obj.contains_key(k);
            let persisted = obj.get("extensions").and_then(|e| e.get("persistedQuery")).is_some()
                || ["documentId", "doc_id", "queryId"].into_iter().any(marker)
                || (marker("id") && (marker("variables") || marker("operationName")));
            if persisted {
                vec![graphql::unparsed()]
            } else {
                Vec::new()
            }
        }
        Some(_) => vec![graphql::unparsed()],
    }
}

/// JSON-RPC 2.0 calls: an object or a batch array of them. A request needs a string `method`;
/// the `jsonrpc` member is not required, as lenient servers do not require it either.
fn jsonrpc_calls(v: &Value) -> Vec<JsonRpcCall> {
    let one = |v: &Value| -> Option<JsonRpcCall> {
        let method = v.get("method")?.as_str()?.to_owned();
        let tool = match method.as_str() {
            "tools/call" => v
                .get("params")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            _ => None,
        };
        Some(JsonRpcCall { method, tool })
    };
    match v {
        Value::Array(items) => items.iter().filter_map(one).collect(),
        _ => one(v).into_iter().collect(),
    }
}
