//! Responses the gateway writes itself: a status, `X-Airlock-Decision`, and a short JSON
//! body naming the rule and the reason. Never a secret: reasons are built from names.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};

use crate::upstream::UpBody;

pub const DECISION_HEADER: &str = "x-airlock-decision";

pub fn empty() -> UpBody {
    Empty::<Bytes>::new().map_err(|never| match never {}).boxed()
}

pub fn full(b: impl Into<Bytes>) -> UpBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// A JSON answer from the gateway.
pub fn answer(status: StatusCode, decision: &str, rule: Option<&str>, reason: &str) -> Response<UpBody> {
    let body = serde_json::json!({
        "airlock": { "decision": decision, "rule": rule, "reason": reason }
    });
    let mut resp = Response::new(full(format!("{body}\n")));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        DECISION_HEADER,
        HeaderValue::from_str(decision).unwrap_or(HeaderValue::from_static("deny")),
    );
    resp
}

/// 407 asking for the agent's credentials; nothing is dialed before they check out.
pub fn proxy_auth_required(reason: &str) -> Response<UpBody> {
    let mut r = answer(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "deny", None, reason);
    r.headers_mut().insert(
        http::header::PROXY_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"airlock\""),
    );
    r
}
