//! What the gateway knows about a request, in the form the policy reads it.
//! Built at the edge (the gateway parses bytes); consumed here without IO.

use serde::Serialize;

/// The class of one SQL statement, as classified by a real parser at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SqlClass {
    /// SELECT, SHOW, EXPLAIN, DESCRIBE …
    Read,
    /// INSERT, UPDATE, DELETE, MERGE, COPY FROM …
    Write,
    /// CREATE, ALTER, DROP, TRUNCATE, RENAME, GRANT, REVOKE …
    Ddl,
    /// Anything else, including text that does not parse (fail closed: rules on "other" catch it).
    Other,
}

impl SqlClass {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            "ddl" => Some(Self::Ddl),
            "other" => Some(Self::Other),
            _ => None,
        }
    }
}

/// One GraphQL operation found in a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphqlOp {
    /// "query" | "mutation" | "subscription"
    pub kind: String,
    /// The operation name when given, plus the top-level field names selected.
    pub names: Vec<String>,
}

/// A JSON-RPC call (MCP over HTTP is JSON-RPC 2.0; batches yield several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonRpcCall {
    pub method: String,
    /// For MCP `tools/call`: `params.name`.
    pub tool: Option<String>,
}

/// What the edge could learn from the body. Absent facts mean "not that kind of body".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyFacts {
    pub json: Option<serde_json::Value>,
    pub graphql: Vec<GraphqlOp>,
    pub jsonrpc: Vec<JsonRpcCall>,
    /// One entry per statement; empty when the body is not SQL.
    pub sql: Vec<SqlClass>,
    /// True when SQL was expected (a `sql` matcher exists) but the text did not parse.
    pub sql_unparsed: bool,
}

/// Whether and how the body was seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Body {
    /// No body (or an empty one).
    #[default]
    Empty,
    /// Read and inspected.
    Inspected(BodyFacts),
    /// Not read: streamed through because no candidate rule needed it.
    Streamed,
    /// Too large to read within the limit: any rule that needs the body treats this as a match
    /// for deny/approve purposes (fail closed) — see `policy`.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

/// The request as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFacts {
    pub agent: String,
    pub method: String,
    pub scheme: Scheme,
    /// Lower-case host without port or trailing dot.
    pub host: String,
    pub port: u16,
    /// Normalized (percent-decoded, dot-segments resolved) path — see [`crate::path::normalize`].
    pub path: String,
    /// Decoded query pairs.
    pub query: Vec<(String, String)>,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}
