//! AWS calls in words: the service, the action, the region and the resource, read by the same
//! parser the gateway's `aws` matcher reads (`airlock_inspect::aws`), so the card names the call
//! the policy decided on — every reading of it when there are several.

use airlock_inspect::aws::{AwsRequest, calls};

use crate::HeldRequest;
use crate::text::one_line;

type Lines = Vec<(String, String)>;

pub(super) fn summarize(held: &HeldRequest, body: &[u8]) -> Option<(String, Lines)> {
    let lower: Vec<String> = held.headers.iter().map(|(n, _)| n.to_ascii_lowercase()).collect();
    let headers: Vec<(&str, &[u8])> = lower
        .iter()
        .zip(&held.headers)
        .map(|(n, (_, v))| (n.as_str(), v.as_slice()))
        .collect();
    let found = calls(&AwsRequest {
        method: &held.method,
        host: &held.host,
        target: &held.target,
        headers: &headers,
        body: Some(body),
    });
    let first = found.first()?;
    let action = |a: &Option<String>| a.clone().unwrap_or_else(|| "(could not be read)".into());
    let mut lines: Lines = vec![
        ("Service".into(), one_line(&first.service)),
        ("Action".into(), one_line(&action(&first.action))),
        (
            "Region".into(),
            one_line(first.region.as_deref().unwrap_or("(not named)")),
        ),
    ];
    if let Some(r) = &first.resource {
        lines.push(("Resource".into(), one_line(r)));
    }
    for other in &found[1..] {
        lines.push((
            "Also read as".into(),
            one_line(&format!("{} {}", other.service, action(&other.action))),
        ));
    }
    let title = format!("AWS {} {}", first.service, action(&first.action));
    Some((title, lines))
}
