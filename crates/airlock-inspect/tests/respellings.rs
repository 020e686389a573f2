//! Invariant 12's adversarial corpus: a request respelled the way a real server behind airlock
//! still reads as the original must be refused or held as the original is — and a request that
//! can be read two ways passes an `allow` rule only if both readings do. Each case names the
//! server or framework whose parsing it mirrors. Facts are built by the same canonicalisation
//! the gateway and `policy explain` use (`airlock_inspect::request`); the policy is TOML as an
//! operator writes it.

use std::path::Path;

use airlock_config::Config;
use airlock_core::facts::Scheme;
use airlock_core::policy::{Action, Decision, Policy};
use airlock_inspect::request::{Head, request_facts};

/// The restrictive side: default allow, so any refusal or hold is a rule's doing.
const GUARDS: &str = r#"
[gateway]
default = "allow"

[people.alice]
roles = ["owner"]

[[rules]]
name = "send needs approval"
hosts = ["gmail.googleapis.com"]
methods = ["POST"]
paths = ["/gmail/v1/users/*/messages/send"]
action = "approve"
approvers = ["owner"]

[[rules]]
name = "no deletes"
hosts = ["gmail.googleapis.com"]
methods = ["DELETE"]
action = "deny"

[[rules]]
name = "no secret reads"
hosts = ["vault.example.com"]
methods = ["GET"]
paths = ["/secrets/**"]
action = "deny"

[[rules]]
name = "no metadata"
hosts = ["169.254.169.254", "127.0.0.1", "::1"]
action = "deny"

[[rules]]
name = "no ddl"
hosts = ["db.example.com"]
body = { sql = ["ddl"] }
action = "deny"

[[rules]]
name = "no deploys"
hosts = ["deploy.example.com"]
body = { json = { "/action" = "deploy" } }
action = "deny"

[[rules]]
name = "no big refunds"
hosts = ["pay.example.com"]
body = { json = { "/amount" = 1000 } }
action = "deny"

[[rules]]
name = "no repo deletes"
hosts = ["api.github.com"]
body = { graphql = { operation = "mutation", name = ["deleteRepository"] } }
action = "deny"

[[rules]]
name = "no email tool"
hosts = ["mcp.example.com"]
body = { jsonrpc = { method = "tools/call", tool = ["send_email"] } }
action = "approve"
approvers = ["owner"]
"#;

/// The permissive side: default deny, so only a full allow lets a request through.
const ALLOWS: &str = r#"
[gateway]
default = "deny"

[[rules]]
name = "sql reads"
hosts = ["db.example.com"]
body = { sql = ["read"] }
action = "allow"

[[rules]]
name = "graphql queries of the viewer"
hosts = ["api.github.com"]
body = { graphql = { operation = "query", name = ["viewer"] } }
action = "allow"

[[rules]]
name = "file reads"
hosts = ["mcp.example.com"]
body = { jsonrpc = { method = "tools/call", tool = ["read_file"] } }
action = "allow"

[[rules]]
name = "status checks"
hosts = ["deploy.example.com"]
body = { json = { "/action" = "status" } }
action = "allow"

[[rules]]
name = "public reads"
hosts = ["api.example.com"]
methods = ["GET"]
paths = ["/public/**"]
query = { mode = "read" }
action = "allow"
"#;

fn policy(src: &str) -> Policy {
    Config::parse(src, Path::new("respellings.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .policy
}

/// One request: `METHOD https://host/target`, headers, body → the decision, or the gateway's
/// 400 (an undecodable host or path) as `Err`.
fn decide(p: &Policy, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Result<Decision, String> {
    let rest = url.strip_prefix("https://").expect("https URL");
    let cut = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(cut);
    let target = if target.is_empty() { "/" } else { target };
    let host = airlock_core::host::canonical_host(authority).map_err(|e| e.to_string())?;
    let hv: Vec<(String, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.as_bytes()))
        .collect();
    let hv: Vec<(&str, &[u8])> = hv.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    let head = Head {
        agent: "bot",
        method,
        scheme: Scheme::Https,
        host: &host,
        port: 443,
        target,
        headers: &hv,
        keep_headers: true,
    };
    let facts = request_facts(&head, p, body.as_bytes()).map_err(|e| e.to_string())?;
    Ok(p.evaluate(&facts))
}

fn action(p: &Policy, method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Option<Action> {
    decide(p, method, url, headers, body).ok().map(|d| d.action)
}

const JSON: (&str, &str) = ("content-type", "application/json");
const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const SEND: &str = "https://gmail.googleapis.com/gmail/v1/users/me/messages/send";

#[test]
fn the_originals_and_harmless_requests() {
    let g = policy(GUARDS);
    assert_eq!(action(&g, "POST", SEND, &[], ""), Some(Action::Approve));
    assert_eq!(
        action(&g, "DELETE", "https://gmail.googleapis.com/x", &[], ""),
        Some(Action::Deny)
    );
    assert_eq!(
        action(
            &g,
            "POST",
            "https://gmail.googleapis.com/gmail/v1/users/me/messages/list",
            &[],
            ""
        ),
        Some(Action::Allow)
    );
    assert_eq!(
        action(&g, "GET", "https://vault.example.com/public/x", &[], ""),
        Some(Action::Allow)
    );
    assert_eq!(
        action(
            &g,
            "POST",
            "https://deploy.example.com/x",
            &[JSON],
            r#"{"action":"status"}"#
        ),
        Some(Action::Allow)
    );
    assert_eq!(
        action(
            &g,
            "POST",
            "https://db.example.com/q",
            &[JSON],
            r#"{"query":"SELECT 1"}"#
        ),
        Some(Action::Allow)
    );
    // A body-less request that still declares a form (clients set content-type on every call)
    // carries no `_method`: it is read as sent, not as "any method".
    for ct in [JSON, ("content-type", "application/x-www-form-urlencoded")] {
        for body in ["", " \r\n"] {
            assert_eq!(
                action(
                    &g,
                    "GET",
                    "https://gmail.googleapis.com/gmail/v1/users/me/messages",
                    &[ct],
                    body
                ),
                Some(Action::Allow),
                "{ct:?} {body:?}"
            );
        }
    }
    let a = policy(ALLOWS);
    assert_eq!(
        action(
            &a,
            "POST",
            "https://db.example.com/q",
            &[JSON],
            r#"{"query":"SELECT 1"}"#
        ),
        Some(Action::Allow)
    );
    assert_eq!(
        action(
            &a,
            "POST",
            "https://api.github.com/graphql",
            &[JSON],
            r#"{"query":"{ viewer { login } }"}"#
        ),
        Some(Action::Allow)
    );
    let rpc = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"}}"#;
    assert_eq!(
        action(&a, "POST", "https://mcp.example.com/", &[JSON], rpc),
        Some(Action::Allow)
    );
    assert_eq!(
        action(
            &a,
            "POST",
            "https://deploy.example.com/x",
            &[JSON],
            r#"{"action":"status"}"#
        ),
        Some(Action::Allow)
    );
    assert_eq!(
        action(&a, "GET", "https://api.example.com/public/x?mode=read", &[], ""),
        Some(Action::Allow)
    );
    assert_eq!(
        action(&a, "HEAD", "https://api.example.com/public/x?mode=read", &[], ""),
        Some(Action::Allow)
    );
}

#[test]
fn paths_read_as_servers_route_them() {
    let g = policy(GUARDS);
    for (path, server) in [
        ("/send;param", "Tomcat, Jetty, Spring: matrix parameters"),
        ("/send;jsessionid=1", "Tomcat: session id"),
        ("/x/..;/send", "Tomcat: ..; is a dot-segment"),
        ("/send/", "Spring, Express: trailing slash"),
        ("/send;x/", "Spring: both"),
        ("/send.json", "Rails: (.:format)"),
        ("/send.anything", "Spring: suffix pattern match"),
        ("/send.", "IIS: trailing dot"),
        ("/send%20", "IIS: trailing space"),
        ("/SEND", "Express (case-insensitive routing by default), ASP.NET"),
        ("/Send/", "Express: case and slash"),
        ("/%73end", "every server: percent-decoding"),
        ("/se%6Ed", "every server: percent-decoding"),
        ("/%2573end", "a server that decodes twice"),
        ("/x/%2e%2e/send", "encoded dot-segment"),
        ("/x/%252e%252e/send", "double-encoded dot-segment"),
        (
            "/x%2F..%2Fsend",
            "encoded slashes as separators (nginx, Apache with AllowEncodedSlashes)",
        ),
        ("/x\\..\\send", "IIS: backslash separators"),
        ("//send", "empty segments"),
        ("/./send", "dot segment"),
        ("/send#frag", "fragment never reaches the server"),
    ] {
        let url = format!("https://gmail.googleapis.com/gmail/v1/users/me/messages{path}");
        let d = decide(&g, "POST", &url, &[], "").unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(d.action, Action::Approve, "{path} ({server}): {d:?}");
    }
    // Undecodable paths are refused outright (400): servers disagree on them.
    for path in ["/send%00", "/send%2500", "/send%C0", "/send%FF", "/s%E9nd"] {
        let url = format!("https://gmail.googleapis.com/gmail/v1/users/me/messages{path}");
        assert!(decide(&g, "POST", &url, &[], "").is_err(), "{path} was not refused");
    }
    // The reason says which reading decided.
    let d = decide(&g, "POST", &format!("{SEND};x"), &[], "").expect("decides");
    assert!(d.reason.contains("matrix parameters removed"), "{}", d.reason);
}

#[test]
fn methods_read_as_servers_override_them() {
    let g = policy(GUARDS);
    let url = "https://gmail.googleapis.com/gmail/v1/users/me/messages/1";
    let mp = "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n";
    for (method, headers, body, server) in [
        ("delete", vec![], "", "methods compare case-insensitively"),
        ("Delete", vec![], "", "methods compare case-insensitively"),
        (
            "POST",
            vec![("X-HTTP-Method-Override", "DELETE")],
            "",
            "Google APIs, ASP.NET, Express method-override",
        ),
        (
            "POST",
            vec![("X-HTTP-Method-Override", "delete")],
            "",
            "Express method-override upper-cases",
        ),
        ("POST", vec![("X-HTTP-Method", "DELETE")], "", "ASP.NET Web API"),
        ("POST", vec![("X-Method-Override", "DELETE")], "", "Symfony and others"),
        (
            "PUT",
            vec![("X-HTTP-Method-Override", "DELETE")],
            "",
            "any method may carry it",
        ),
        (
            "POST",
            vec![FORM],
            "a=1&_method=DELETE",
            "Rails Rack::MethodOverride, Symfony, Spring",
        ),
        ("POST", vec![FORM], "_method=delete", "Rails upper-cases"),
        (
            "POST",
            vec![JSON],
            r#"{"_method":"DELETE"}"#,
            "Laravel reads JSON input",
        ),
        (
            "POST",
            vec![("content-type", "multipart/form-data; boundary=b")],
            mp,
            "Rails: multipart params",
        ),
    ] {
        assert_eq!(
            action(&g, method, url, &headers, body),
            Some(Action::Deny),
            "{method} {headers:?} {body} ({server})"
        );
    }
    for q in ["?_method=DELETE", "?_method=delete", "?_METHOD=DELETE"] {
        assert_eq!(
            action(&g, "POST", &format!("{url}{q}"), &[], ""),
            Some(Action::Deny),
            "{q} (Laravel)"
        );
    }
    // HEAD is GET without a body: GET's deny governs it.
    assert_eq!(
        action(&g, "HEAD", "https://vault.example.com/secrets/x", &[], ""),
        Some(Action::Deny)
    );
    assert_eq!(
        action(&g, "head", "https://vault.example.com/secrets/x", &[], ""),
        Some(Action::Deny)
    );
    // A form that cannot be read may carry any override.
    let d = decide(
        &g,
        "POST",
        url,
        &[("content-type", "multipart/form-data; boundary=b")],
        "junk",
    )
    .expect("decides");
    assert_eq!(d.action, Action::Deny, "{d:?}");
}

#[test]
fn hosts_in_every_spelling_getaddrinfo_takes() {
    let g = policy(GUARDS);
    for host in [
        "127.0.0.1",
        "2130706433",
        "127.1",
        "127.0.1",
        "0177.0.0.1",
        "0x7f000001",
        "0x7f.0.0.1",
        "0x7F.1",
        "017700000001",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "127.0.0.1.",
        "169.254.169.254",
        "2852039166",
        "0xa9fea9fe",
        "0251.0376.0251.0376",
        "169.254.43518",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
    ] {
        let url = format!("https://{host}/latest/meta-data/");
        assert_eq!(action(&g, "GET", &url, &[], ""), Some(Action::Deny), "{host}");
    }
    assert!(decide(&g, "GET", "https://[fe80::1%25eth0]/", &[], "").is_err());
}

#[test]
fn json_bodies_read_as_parsers_read_them() {
    let g = policy(GUARDS);
    let url = "https://deploy.example.com/run";
    for (body, parser) in [
        (
            r#"{"action":"deploy","action":"status"}"#,
            "first-wins parsers (some Java, PHP)",
        ),
        (
            r#"{"action":"status","action":"deploy"}"#,
            "last-wins (serde_json, Python, JS)",
        ),
        (
            r#"{"Action":"deploy"}"#,
            "Go encoding/json matches keys case-insensitively",
        ),
        (r#"{"ACTION":"deploy"}"#, "Go encoding/json"),
        (
            r#"{"action":"status"} {"action":"deploy"}"#,
            "a stream decoder (Go json.Decoder) reads on",
        ),
        (r#"{"action":"deploy"}garbage"#, "Go json.Decoder reads the first value"),
        (r#"{"action":"deploy"}{"#, "first value, then junk"),
        ("{\"action\": /* hi */ \"deploy\"}", "JSON5, Jackson ALLOW_COMMENTS"),
        (
            "{\"action\": \"deploy\", // hi\n}",
            "JSON5: comments and trailing commas",
        ),
        ("\u{feff}{\"action\":\"deploy\"}", "a byte-order mark some servers skip"),
        (r#"{"action":"deploy""#, "truncated: unreadable, read restrictively"),
        (r#"{"action":"\u0064eploy"}"#, "escaped characters"),
    ] {
        assert_eq!(
            action(&g, "POST", url, &[JSON], body),
            Some(Action::Deny),
            "{body} ({parser})"
        );
    }
    // Numbers compare by value.
    for amount in ["1000", "1000.0", "1e3", "1.0e3", "10e2"] {
        let body = format!(r#"{{"amount":{amount}}}"#);
        assert_eq!(
            action(&g, "POST", "https://pay.example.com/refund", &[JSON], &body),
            Some(Action::Deny),
            "{amount}"
        );
    }
    // A lenient server parses JSON whatever the content type says.
    assert_eq!(
        action(&g, "POST", url, &[], r#"{"action":"deploy"}"#),
        Some(Action::Deny)
    );
    assert_eq!(
        action(
            &g,
            "POST",
            url,
            &[("content-type", "text/plain")],
            r#"{"action":"deploy"}"#
        ),
        Some(Action::Deny)
    );
}

#[test]
fn graphql_wherever_servers_take_it() {
    let g = policy(GUARDS);
    let url = "https://api.github.com/graphql";
    let m = "mutation { deleteRepository(input: {}) { clientMutationId } }";
    let enc = "mutation%20%7B%20deleteRepository%20%7D";
    for (method, target, headers, body, server) in [
        (
            "GET",
            format!("?query={enc}"),
            vec![],
            String::new(),
            "GraphQL over GET (graphql-http)",
        ),
        (
            "POST",
            format!("?query={enc}"),
            vec![JSON],
            r#"{"query":"{ viewer { login } }"}"#.to_string(),
            "express-graphql prefers the URL's query",
        ),
        (
            "POST",
            String::new(),
            vec![JSON],
            format!(r#"[{{"query":"{{ viewer {{ login }} }}"}},{{"query":"{m}"}}]"#),
            "batched operations (Apollo)",
        ),
        (
            "POST",
            String::new(),
            vec![JSON],
            format!(r#"{{"Query":"{m}"}}"#),
            "gqlgen (Go): keys in any case",
        ),
        (
            "POST",
            String::new(),
            vec![JSON],
            format!(r#"{{"query":"{m}","query":"{{ viewer {{ login }} }}"}}"#),
            "first-wins JSON parser",
        ),
        (
            "POST",
            String::new(),
            vec![("content-type", "application/graphql")],
            m.to_string(),
            "application/graphql",
        ),
        (
            "POST",
            String::new(),
            vec![FORM],
            format!("query={enc}"),
            "form-encoded",
        ),
        (
            "POST",
            String::new(),
            vec![("content-type", "multipart/form-data; boundary=b")],
            format!(
                "--b\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n{{\"query\":\"{m}\"}}\r\n--b--\r\n"
            ),
            "multipart upload spec",
        ),
        (
            "POST",
            String::new(),
            vec![JSON],
            r#"{"query":"mutation {"}"#.to_string(),
            "unparsable: read restrictively",
        ),
        (
            "POST",
            String::new(),
            vec![JSON],
            r#"{"extensions":{"persistedQuery":{"sha256Hash":"x"}}}"#.to_string(),
            "persisted query we cannot see",
        ),
    ] {
        let full = format!("{url}{target}");
        assert_eq!(
            action(&g, method, &full, &headers, &body),
            Some(Action::Deny),
            "{method} {target} {body} ({server})"
        );
    }
}

#[test]
fn json_rpc_calls_wherever_servers_take_them() {
    let g = policy(GUARDS);
    let url = "https://mcp.example.com/mcp";
    for (body, server) in [
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"send_email"}}]"#,
            "a batch",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["send_email",{}]}"#,
            "positional params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[7]}"#,
            "positional params it cannot read",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","Params":{"Name":"send_email"}}"#,
            "Go: keys in any case",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email","name":"read_file"}}"#,
            "first-wins parser",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"read_file","Name":"send_email"}}"#,
            "case variants",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"send_email"}} junk"#,
            "a stream decoder",
        ),
    ] {
        assert_eq!(
            action(&g, "POST", url, &[JSON], body),
            Some(Action::Approve),
            "{body} ({server})"
        );
    }
}

#[test]
fn sql_wherever_servers_take_it() {
    let g = policy(GUARDS);
    let url = "https://db.example.com/query";
    for (target, headers, body, server) in [
        (
            "",
            vec![JSON],
            r#"{"query":"SELECT 1; DROP TABLE x"}"#,
            "multi-statement",
        ),
        (
            "",
            vec![("content-type", "application/x-sql")],
            "DROP TABLE x",
            "application/x-sql",
        ),
        (
            "",
            vec![("content-type", "application/sql")],
            "DROP TABLE x",
            "application/sql",
        ),
        (
            "",
            vec![FORM],
            "DROP TABLE x",
            "curl -d default form type, ClickHouse runs the body",
        ),
        ("", vec![], "DROP TABLE x", "no content type"),
        (
            "",
            vec![("content-type", "application/octet-stream")],
            "DROP TABLE x",
            "any type: ClickHouse",
        ),
        ("?query=DROP%20TABLE%20x", vec![], "", "ClickHouse: SQL in the URL"),
        ("?QUERY=DROP%20TABLE%20x", vec![], "", "keys in any case"),
        (
            "",
            vec![JSON],
            r#"{"type":"run_sql","args":{"sql":"DROP TABLE x"}}"#,
            "Hasura run_sql",
        ),
        (
            "",
            vec![JSON],
            r#"{"type":"bulk","args":[{"type":"run_sql","args":{"sql":"DROP TABLE x"}}]}"#,
            "Hasura bulk",
        ),
        ("", vec![JSON], r#"{"SQL":"DROP TABLE x"}"#, "keys in any case"),
        (
            "",
            vec![JSON],
            r#"{"query":"DROP TABLE x","query":"SELECT 1"}"#,
            "first-wins parser",
        ),
        (
            "",
            vec![("content-type", "multipart/form-data; boundary=b")],
            "--b\r\nContent-Disposition: form-data; name=\"sql\"\r\n\r\nDROP TABLE x\r\n--b--\r\n",
            "multipart field",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"SELECT * INTO backup FROM users"}"#,
            "SELECT INTO creates a table",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"CREATE TABLE t2 AS SELECT 1"}"#,
            "CREATE TABLE AS",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"IF 1 = 1 THEN DROP TABLE t; END IF"}"#,
            "procedural block",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"EXECUTE IMMEDIATE 'DROP TABLE t'"}"#,
            "dynamic SQL (BigQuery, Snowflake, Oracle)",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"EXEC sp_executesql N'DROP TABLE t'"}"#,
            "dynamic SQL (SQL Server)",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"SELECT dblink_exec('x', 'DROP TABLE t')"}"#,
            "dynamic SQL (PostgreSQL dblink)",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"SELECT 1 /*! ; DROP TABLE t */"}"#,
            "MySQL executable comment",
        ),
        (
            "",
            vec![JSON],
            r#"{"query":"SELECT 'a\\'; DROP TABLE t; -- '"}"#,
            "dialects disagree on the string",
        ),
    ] {
        let full = format!("{url}{target}");
        assert_eq!(
            action(&g, "POST", &full, &headers, body),
            Some(Action::Deny),
            "{target} {body} ({server})"
        );
    }
}

#[test]
fn allow_rules_hold_for_every_reading_or_not_at_all() {
    let a = policy(ALLOWS);
    let denied = |method: &str, url: &str, headers: &[(&str, &str)], body: &str, why: &str| {
        assert_eq!(
            action(&a, method, url, headers, body),
            Some(Action::Deny),
            "{method} {url} {body}: {why}"
        );
    };
    let db = "https://db.example.com/q";
    denied(
        "POST",
        db,
        &[JSON],
        r#"{"query":"SELECT 1; DROP TABLE x"}"#,
        "every statement must be a read",
    );
    denied(
        "POST",
        db,
        &[JSON],
        r#"{"query":"SELECT 1","query":"DELETE FROM t"}"#,
        "both readings must be reads",
    );
    denied(
        "POST",
        db,
        &[JSON],
        r#"{"query":"SELECT 1","sql":"UPDATE t SET a = 1"}"#,
        "every carrier counts",
    );
    denied(
        "POST",
        &format!("{db}?query=DELETE%20FROM%20t"),
        &[JSON],
        r#"{"query":"SELECT 1"}"#,
        "the URL's SQL counts",
    );
    denied(
        "POST",
        db,
        &[JSON],
        r#"{"query":"SELEC 1"}"#,
        "unparsable SQL never passes",
    );
    denied(
        "POST",
        db,
        &[JSON],
        r#"{"query":"SELECT 1"} junk"#,
        "a partly unreadable body never passes",
    );
    denied("POST", db, &[JSON], "", "no statement is not a read");
    let gh = "https://api.github.com/graphql";
    denied(
        "POST",
        gh,
        &[JSON],
        r#"[{"query":"{ viewer { login } }"},{"query":"mutation { deleteRepository { id } }"}]"#,
        "every operation",
    );
    denied(
        "POST",
        gh,
        &[JSON],
        r#"{"query":"query viewer { secrets { value } }"}"#,
        "an operation's own name passes nothing",
    );
    denied(
        "POST",
        gh,
        &[JSON],
        r#"{"query":"{ viewer { login } secrets { value } }"}"#,
        "every top-level field",
    );
    let mcp = "https://mcp.example.com/";
    denied(
        "POST",
        mcp,
        &[JSON],
        r#"[{"method":"tools/call","params":{"name":"read_file"}},{"method":"tools/call","params":{"name":"send_email"}}]"#,
        "every call",
    );
    denied(
        "POST",
        mcp,
        &[JSON],
        r#"{"method":"tools/call","params":["read_file"]}"#,
        "positional params are read restrictively",
    );
    denied(
        "POST",
        mcp,
        &[JSON],
        r#"{"method":"tools/call","params":{"name":"read_file","Name":"send_email"}}"#,
        "case variants",
    );
    let dep = "https://deploy.example.com/x";
    denied(
        "POST",
        dep,
        &[JSON],
        r#"{"action":"status","action":"deploy"}"#,
        "first-wins reading",
    );
    denied(
        "POST",
        dep,
        &[JSON],
        r#"{"action":"status","Action":"deploy"}"#,
        "Go's case-insensitive reading",
    );
    denied(
        "POST",
        dep,
        &[JSON],
        r#"{"action":"status"} {"action":"deploy"}"#,
        "stream reading",
    );
    let api = "https://api.example.com";
    denied(
        "GET",
        &format!("{api}/public/..;/private?mode=read"),
        &[],
        "",
        "Tomcat's ..; reading",
    );
    denied(
        "GET",
        &format!("{api}/public/x?mode=read"),
        &[("X-HTTP-Method-Override", "DELETE")],
        "",
        "the override's reading",
    );
    denied(
        "GET",
        &format!("{api}/public/x?mode=read&mode=write"),
        &[],
        "",
        "every value of a repeated key",
    );
    denied(
        "GET",
        &format!("{api}/public/x?mode=read&MODE=write"),
        &[],
        "",
        "keys in any case (ASP.NET)",
    );
    denied(
        "GET",
        &format!("{api}/PUBLIC/x?mode=read"),
        &[],
        "",
        "a literal allow is case-sensitive",
    );
    let d = decide(&a, "GET", &format!("{api}/public/..;/private?mode=read"), &[], "").expect("decides");
    assert!(
        d.reason.contains("matrix parameters removed") && d.reason.contains("/private"),
        "{}",
        d.reason
    );
}
