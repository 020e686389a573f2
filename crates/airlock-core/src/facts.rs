//! What the gateway knows about a request, in the form the policy reads it.
//! Built at the edge (`airlock-inspect` canonicalises the bytes); consumed here without IO.
//!
//! One request may be read more than one way by the servers behind airlock: a method override
//! header, a matrix parameter some frameworks strip, a JSON key repeated with two values. The
//! edge records every plausible reading; the policy (invariant 12) lets a request through an
//! `allow` rule only when every reading passes one, and triggers a `deny`/`approve` rule when any
//! reading matches it.

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
    /// Added to a statement's class where the database grammar tells more: SET ROLE, SET SESSION
    /// AUTHORIZATION, GRANT/REVOKE of roles, CREATE/ALTER/DROP ROLE.
    Role,
    /// COPY in either direction (with `write` or `read`; COPY … PROGRAM also `procedural`).
    Copy,
    /// Code that runs statements the parser cannot see: DO, CALL, functions known to run SQL or
    /// commands given as text (dblink, …), CREATE FUNCTION/PROCEDURE bodies.
    Procedural,
}

/// One GraphQL operation found in a request. `kind` "unparsed" stands for a document that could
/// not be read (it satisfies restrictive rules only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GraphqlOp {
    /// "query" | "mutation" | "subscription" | "unparsed"
    pub kind: String,
    /// The operation's own name, when given (chosen by the sender: it never allows anything).
    pub name: Option<String>,
    /// The real names (never aliases) of the fields selected at the top level.
    pub fields: Vec<String>,
}

/// A JSON-RPC call (MCP over HTTP is JSON-RPC 2.0; batches yield several).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JsonRpcCall {
    pub method: String,
    /// For MCP `tools/call`: `params.name`.
    pub tool: Option<String>,
    /// The call names a tool in a form that could not be read (e.g. positional `params`).
    pub tool_unread: bool,
}

/// What the edge learnt from the body and the URL (GraphQL and SQL may travel in the query
/// string). Each list holds every reading; the `*_unread` flags say part of it could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyFacts {
    /// Readings of the JSON document: last-wins, first-wins when a key repeats, each value of a
    /// stream, the text with comments removed.
    pub json: Vec<serde_json::Value>,
    /// The body claims or looks like JSON, and some of it could not be read.
    pub json_unread: bool,
    pub graphql: Vec<GraphqlOp>,
    pub jsonrpc: Vec<JsonRpcCall>,
    /// One entry per statement class (a statement may have two, e.g. `SELECT … INTO`).
    pub sql: Vec<SqlClass>,
    /// True when SQL was expected (a `sql` matcher exists) but some text did not parse.
    pub sql_unparsed: bool,
}

/// Whether and how the body was seen.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Body {
    /// No body, and nothing in the URL for the body matchers.
    #[default]
    Empty,
    /// Read and inspected (with the URL's GraphQL/SQL parameters).
    Inspected(BodyFacts),
    /// Not read: streamed through because no candidate rule needed it.
    Streamed,
    /// Too large to read within the limit, or not inspected in time: any rule that needs the
    /// body treats this as a match for deny/approve purposes, never for allow (fail closed).
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Http,
    Https,
}

/// One way a server may read part of the request, and why that reading exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading<T> {
    pub value: T,
    /// How this reading differs from the request as sent; `None` for the request as sent.
    pub how: Option<String>,
}

impl<T> Reading<T> {
    pub fn as_sent(value: T) -> Self {
        Reading { value, how: None }
    }

    pub fn derived(value: T, how: impl Into<String>) -> Self {
        Reading {
            value,
            how: Some(how.into()),
        }
    }
}

/// The request as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestFacts {
    pub agent: String,
    /// The request's method upper-cased first, then every method an override may select
    /// (`X-HTTP-Method-Override`, `_method`, …). `None`: an override that could not be read.
    pub methods: Vec<Reading<Option<String>>>,
    pub scheme: Scheme,
    /// Canonical: lower-case name without a trailing dot, or an IP literal in its one textual form.
    pub host: String,
    pub port: u16,
    /// The percent-decoded, dot-resolved path first, then every other plausible server reading
    /// (matrix parameters stripped, trailing slash removed, …).
    pub paths: Vec<Reading<String>>,
    /// Decoded query pairs, repeats included.
    pub query: Vec<(String, String)>,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

impl RequestFacts {
    /// Facts with one reading of each part: what tests and benches start from.
    pub fn new(agent: &str, method: &str, scheme: Scheme, host: &str, port: u16, path: &str) -> Self {
        RequestFacts {
            agent: agent.to_string(),
            methods: vec![Reading::as_sent(Some(method.to_ascii_uppercase()))],
            scheme,
            host: host.to_string(),
            port,
            paths: vec![Reading::as_sent(path.to_string())],
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// The method as sent, upper-cased.
    pub fn method(&self) -> &str {
        self.methods.first().and_then(|m| m.value.as_deref()).unwrap_or("")
    }

    /// The path as sent, decoded and resolved.
    pub fn path(&self) -> &str {
        self.paths.first().map_or("/", |p| p.value.as_str())
    }
}
