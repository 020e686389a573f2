//! The canonicalisation stage: a request head → the [`RequestFacts`] the core decides on, with
//! every plausible reading of the method and the path (invariant 12). The gateway and
//! `airlock policy explain` both build facts here, so they cannot disagree.

use airlock_core::facts::{Body, Reading, RequestFacts, Scheme};
use airlock_core::policy::{BodyNeeds, Policy};

use crate::Want;
use crate::aws::{self, AwsCall, AwsRequest};
use crate::target::{BadPath, path_readings, split_target};

/// Headers through which clients ask a server to act as another method (Google APIs, ASP.NET,
/// Express's method-override, Symfony, Laravel).
pub const METHOD_OVERRIDE_HEADERS: [&str; 3] = ["x-http-method-override", "x-http-method", "x-method-override"];

pub use crate::sources::METHOD_FIELD;

/// What the edge knows of a request before its body.
pub struct Head<'a> {
    pub agent: &'a str,
    pub method: &'a str,
    pub scheme: Scheme,
    /// Already canonical ([`airlock_core::host::canonical_host`]).
    pub host: &'a str,
    pub port: u16,
    /// Path and query as sent.
    pub target: &'a str,
    /// Header names lower-case.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// Copy header values into the facts (only when some rule reads headers).
    pub keep_headers: bool,
}

/// Facts from the head alone; the body is read later, if a rule needs it.
pub fn head_facts(h: &Head<'_>) -> Result<RequestFacts, BadPath> {
    let (raw_path, query) = split_target(h.target);
    let paths = path_readings(raw_path)?;
    let methods = method_readings(h.method, &query, h.headers);
    let headers = if h.keep_headers {
        h.headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(RequestFacts {
        agent: h.agent.to_string(),
        methods,
        scheme: h.scheme,
        host: h.host.to_string(),
        port: h.port,
        paths,
        query,
        headers,
        body: Body::Empty,
    })
}

/// The method upper-cased (servers compare it so), then each override a server may apply.
pub fn method_readings(
    method: &str,
    query: &[(String, String)],
    headers: &[(&str, &[u8])],
) -> Vec<Reading<Option<String>>> {
    let mut out = vec![Reading::as_sent(Some(method.to_ascii_uppercase()))];
    for (name, value) in headers {
        if let Some(h) = METHOD_OVERRIDE_HEADERS.iter().find(|h| **h == *name) {
            let how = format!("the {h} header");
            match std::str::from_utf8(value) {
                Ok(v) => add_method(&mut out, v, &how),
                Err(_) => out.push(Reading::derived(None, how)),
            }
        }
    }
    for (k, v) in query {
        if k.eq_ignore_ascii_case(METHOD_FIELD) {
            add_method(&mut out, v, "the _method query parameter");
        }
    }
    out
}

/// Adds the override(s) in `value` (a comma-separated list counts each) unless already present.
pub fn add_method(out: &mut Vec<Reading<Option<String>>>, value: &str, how: &str) {
    for m in value.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m = m.to_ascii_uppercase();
        if !out.iter().any(|r| r.value.as_deref() == Some(m.as_str())) {
            out.push(Reading::derived(Some(m), how));
        }
    }
}

/// What the body must be read for, decided before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyPlan {
    /// The matchers some candidate rule reads.
    pub needs: BodyNeeds,
    /// A `_method` field in the body could change the decision (a rule names methods).
    pub overridable: bool,
}

impl BodyPlan {
    /// The body must be read whole (up to the inspection limit) before deciding.
    pub fn read(&self) -> bool {
        self.needs.any() || self.overridable
    }
}

/// Plans the body's reading. Until the body is read, an override it may carry could name any
/// method: that reading is added now, so rules that need the body are found for it too.
pub fn plan_body(facts: &mut RequestFacts, policy: &Policy, content_type: Option<&str>) -> BodyPlan {
    let overridable = body_may_override(content_type) && policy.methods_matter(facts);
    if overridable {
        facts.methods.push(Reading::derived(None, UNREAD_OVERRIDE));
    }
    BodyPlan {
        needs: policy.body_needs(facts),
        overridable,
    }
}

const UNREAD_OVERRIDE: &str = "a _method field in a body that was not read whole";

/// Settles the method readings once the body is read: `whole` is the entire body, or `None`
/// when it was larger than could be read (the "any method" reading then stays).
pub fn settle_methods(facts: &mut RequestFacts, plan: &BodyPlan, content_type: Option<&str>, whole: Option<&[u8]>) {
    let Some(body) = whole.filter(|_| plan.overridable) else {
        return;
    };
    facts.methods.retain(|m| m.how.as_deref() != Some(UNREAD_OVERRIDE));
    match crate::body_methods(content_type, body) {
        Ok(methods) => {
            for m in methods {
                add_method(&mut facts.methods, &m, "the _method field of the body");
            }
        }
        Err(_) => facts.methods.push(Reading::derived(
            None,
            "a body that claims a form it is not, which may carry _method",
        )),
    }
}

/// The body facts, read on the spot (the gateway moves large bodies to its blocking pool and
/// calls [`crate::inspect`] itself): streamed when no rule reads it, restrictive when it was not
/// read whole.
pub fn body_state(
    plan: &BodyPlan,
    content_type: Option<&str>,
    whole: Option<&[u8]>,
    query: &[(String, String)],
) -> Body {
    match whole {
        _ if !plan.needs.any() => Body::Streamed,
        None => Body::TooLarge,
        Some(b) => Body::Inspected(crate::inspect(content_type, b, query, Want::from(plan.needs))),
    }
}

/// Adds the AWS calls of a request meant for AWS to its JSON-RPC readings (the `aws` matcher is
/// a JSON-RPC matcher on `aws:<service>` calls), when some rule reads them. JSON-RPC calls in the
/// body may not pose as AWS calls.
pub fn add_aws_calls(facts: &mut RequestFacts, plan: &BodyPlan, request: &AwsRequest<'_>) {
    let Body::Inspected(b) = &mut facts.body else { return };
    if plan.needs.jsonrpc {
        b.jsonrpc.retain(|c| !c.method.starts_with(aws::METHOD_PREFIX));
        b.jsonrpc.extend(aws::calls(request).iter().map(AwsCall::as_jsonrpc));
    }
}

/// The whole canonicalisation for a request whose body is at hand (`policy explain`, tests,
/// fuzzing): what the gateway's facts stage computes in steps around its reads.
pub fn request_facts(head: &Head<'_>, policy: &Policy, body: &[u8]) -> Result<RequestFacts, BadPath> {
    let mut facts = head_facts(head)?;
    let content_type = head
        .headers
        .iter()
        .find(|(n, _)| *n == "content-type")
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    let plan = plan_body(&mut facts, policy, content_type);
    settle_methods(&mut facts, &plan, content_type, Some(body));
    facts.body = body_state(&plan, content_type, Some(body), &facts.query);
    let aws = AwsRequest {
        method: head.method,
        host: head.host,
        target: head.target,
        headers: head.headers,
        body: Some(body),
    };
    add_aws_calls(&mut facts, &plan, &aws);
    Ok(facts)
}

/// Whether a body of this media type may carry a `_method` field that a server applies: form,
/// multipart and JSON bodies (Laravel reads JSON input too).
pub fn body_may_override(content_type: Option<&str>) -> bool {
    let media = crate::sources::MediaType::of(content_type);
    media.is_form() || media.is_multipart() || media.is_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn methods(method: &str, target: &str, headers: &[(&str, &str)]) -> Vec<Option<String>> {
        let (_, query) = split_target(target);
        let hv: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        method_readings(method, &query, &hv)
            .into_iter()
            .map(|r| r.value)
            .collect()
    }

    fn s(m: &str) -> Option<String> {
        Some(m.to_owned())
    }

    #[test]
    fn methods_are_upper_cased_and_overrides_count() {
        assert_eq!(methods("delete", "/", &[]), [s("DELETE")]);
        assert_eq!(
            methods("POST", "/", &[("x-http-method-override", "delete")]),
            [s("POST"), s("DELETE")]
        );
        assert_eq!(methods("POST", "/", &[("x-http-method", "PUT")]), [s("POST"), s("PUT")]);
        assert_eq!(
            methods("POST", "/", &[("x-method-override", "PATCH")]),
            [s("POST"), s("PATCH")]
        );
        assert_eq!(methods("POST", "/?_method=delete", &[]), [s("POST"), s("DELETE")]);
        assert_eq!(methods("POST", "/?_METHOD=delete", &[]), [s("POST"), s("DELETE")]);
        assert_eq!(
            methods("POST", "/", &[("x-http-method-override", "GET, DELETE")]),
            [s("POST"), s("GET"), s("DELETE")]
        );
        assert_eq!(methods("POST", "/", &[("x-http-method-override", "post")]), [s("POST")]);
    }

    #[test]
    fn an_unreadable_override_is_a_reading_of_its_own() {
        let hv: Vec<(&str, &[u8])> = vec![("x-http-method-override", b"\xff")];
        let got = method_readings("POST", &[], &hv);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].value, None);
    }
}
