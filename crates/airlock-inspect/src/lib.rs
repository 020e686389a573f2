//! The edge's canonicalisation: request bytes → the facts the policy reads.
//!
//! [`request`] turns a head into [`RequestFacts`](airlock_core::facts::RequestFacts) with every
//! plausible reading of its method and path ([`target`]); [`inspect`] turns a body (and the URL's
//! GraphQL/SQL parameters) into [`BodyFacts`] with every reading a common parser could make.
//!
//! Every byte here comes from the agent, so nothing panics, recursion is bounded everywhere
//! (JSON, GraphQL and SQL), and when something claims to be a form it cannot be read as, the
//! facts say so (`unparsed`/`unread`) so that restrictive rules still match: fail closed.

#![forbid(unsafe_code)]

pub mod aws;
mod graphql;
mod json;
mod multipart;
pub mod request;
mod sources;
mod sql;
pub mod target;

use airlock_core::facts::{BodyFacts, GraphqlOp, JsonRpcCall, SqlClass};
use airlock_core::policy::BodyNeeds;
use serde_json::Value;

use sources::{MediaType, members, query_values};

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

/// The `_method` values `body` carries as a form field, multipart part or top-level JSON member
/// (Rails, Laravel, Symfony, Spring read them on POST); `Err` when it claims such a form but
/// cannot be read, which the edge reads as "any method".
pub fn body_methods(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, Unreadable> {
    let body = strip_bom(body);
    // Nothing but whitespace carries no field, whatever the content type claims (a GET sent
    // with `content-type: application/json` and no body is common).
    if body.trim_ascii().is_empty() {
        return Ok(Vec::new());
    }
    sources::body_methods(content_type, body)
}

/// A body that claims a form (JSON, multipart, urlencoded) it cannot be read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// Servers that skip a UTF-8 byte-order mark must not see a body we failed to parse.
fn strip_bom(body: &[u8]) -> &[u8] {
    body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body)
}

/// The facts `want` asks for about `body`, sent with `content_type`, and about the URL's
/// `query` (GraphQL and SQL travel there too).
pub fn inspect(content_type: Option<&str>, body: &[u8], query: &[(String, String)], want: Want) -> BodyFacts {
    let mut facts = BodyFacts::default();
    if !want.any() {
        return facts;
    }
    let body = strip_bom(body);
    let media = MediaType::of(content_type);
    // Declared JSON is JSON even when it does not parse; a body that only looks like JSON is
    // JSON when some reading of it parses (a raw GraphQL document starts with `{` too).
    let json = (!body.is_empty() && (media.is_json() || sources::looks_like_json(body)))
        .then(|| json::readings(body))
        .filter(|r| media.is_json() || !r.values.is_empty());

    if want.graphql {
        facts.graphql = graphql_ops(&media, content_type, body, json.as_ref(), query);
    }
    if want.jsonrpc {
        for v in json.iter().flat_map(|j| &j.values) {
            jsonrpc_calls(v, &mut facts.jsonrpc);
        }
    }
    if want.sql {
        let (texts, mut unparsed) = sources::sql_texts(&media, content_type, body, json.as_ref(), query);
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
    if let Some(j) = json {
        facts.json_unread = j.unread;
        if want.json {
            facts.json = j.values;
        }
    }
    facts
}

/// GraphQL over HTTP: the URL's `query` parameter (GET, and express-graphql prefers it on POST
/// too), a JSON request object or batch array, `application/graphql` text, a form field, the
/// multipart `operations` field of an upload, or (some servers accept it) the raw document.
fn graphql_ops(
    media: &MediaType,
    content_type: Option<&str>,
    body: &[u8],
    json: Option<&json::Readings>,
    query: &[(String, String)],
) -> Vec<GraphqlOp> {
    let mut ops: Vec<GraphqlOp> = query_values(query, &["query"]).flat_map(graphql::operations).collect();
    if let Some(j) = json {
        for v in &j.values {
            match v {
                Value::Object(_) => ops.extend(graphql_request(v)),
                Value::Array(items) => ops.extend(items.iter().flat_map(graphql_request)),
                _ => {}
            }
        }
        // Declared or looks like JSON, but some of it could not be read: we cannot tell what it runs.
        if j.unread {
            ops.push(graphql::unparsed());
        }
        return ops;
    }
    if media.is_form() {
        for d in sources::form_values(body, &["query"]) {
            ops.extend(
                d.as_deref()
                    .map_or_else(|| vec![graphql::unparsed()], graphql::operations),
            );
        }
    } else if media.is_multipart() {
        // GraphQL multipart uploads carry the request as JSON in the `operations` field.
        let parts = multipart::parts(content_type, body).unwrap_or_default();
        let mut found = false;
        for p in parts.iter().filter(|p| p.name.as_deref() == Some("operations")) {
            found = true;
            let r = json::readings(p.body);
            ops.extend(r.values.iter().flat_map(|v| match v {
                Value::Array(items) => items.iter().flat_map(graphql_request).collect(),
                v => graphql_request(v),
            }));
            if r.unread {
                ops.push(graphql::unparsed());
            }
        }
        if !found {
            ops.push(graphql::unparsed());
        }
    } else if !body.is_empty() && (media.is_text_or_absent() || media.is("application/graphql")) {
        match std::str::from_utf8(body) {
            Ok(doc) => ops.extend(graphql::operations(doc)),
            Err(_) => ops.push(graphql::unparsed()),
        }
    }
    ops
}

/// One element of a GraphQL request: `{"query": "...", "operationName": ...}` (keys in any case).
fn graphql_request(v: &Value) -> Vec<GraphqlOp> {
    let Value::Object(obj) = v else { return Vec::new() };
    let mut ops = Vec::new();
    for q in members(obj, "query") {
        match q {
            Value::String(doc) => ops.extend(graphql::operations(doc)),
            Value::Null => {}
            _ => ops.push(graphql::unparsed()),
        }
    }
    // Persisted queries run a document stored on the server, which we cannot see.
    let marker = |k: &str| members(obj, k).next().is_some();
    let persisted = obj
        .get("extensions")
        .and_then(Value::as_object)
        .is_some_and(|e| members(e, "persistedQuery").next().is_some())
        || ["documentId", "doc_id", "queryId"].into_iter().any(marker)
        || (marker("id") && (marker("variables") || marker("operationName")));
    if ops.is_empty() && persisted {
        ops.push(graphql::unparsed());
    }
    ops
}

/// JSON-RPC 2.0 calls: an object or a batch array of them. A request needs a string `method`;
/// the `jsonrpc` member is not required, as lenient servers do not require it either. Keys are
/// read in any case, and every candidate (a repeated `method` or `name`) is a call of its own.
fn jsonrpc_calls(v: &Value, out: &mut Vec<JsonRpcCall>) {
    let Value::Object(obj) = v else {
        if let Value::Array(items) = v {
            for item in items.iter().filter(|i| i.is_object()) {
                jsonrpc_calls(item, out);
            }
        }
        return;
    };
    for method in members(obj, "method").filter_map(Value::as_str) {
        let mut call = |tool: Option<String>, tool_unread: bool| {
            let c = JsonRpcCall {
                method: method.to_owned(),
                tool,
                tool_unread,
            };
            if !out.contains(&c) {
                out.push(c);
            }
        };
        if method != "tools/call" {
            call(None, false);
            continue;
        }
        let mut named = false;
        for params in members(obj, "params") {
            match params {
                Value::Object(p) => {
                    for name in members(p, "name") {
                        named = true;
                        match name.as_str() {
                            Some(t) => call(Some(t.to_owned()), false),
                            None => call(None, true),
                        }
                    }
                }
                // Positional parameters are not MCP: how a lenient server maps them to a tool
                // cannot be known, so the tool is unread (restrictive rules match, allow rules never).
                Value::Array(_) => {
                    named = true;
                    call(None, true);
                }
                _ => {}
            }
        }
        if !named {
            call(None, false);
        }
    }
}
