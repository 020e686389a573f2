//! GitHub REST summaries: which repository, and the action in words ("merge pull request #12",
//! "DELETE the repository", "move branch main" with the force flag).

use serde_json::Value;

use super::body::graphql_operation;
use super::{Req, mail, preview};
use crate::text::one_line;

type Lines = Vec<(String, String)>;

/// A JSON field at `path`, as one line: strings as they are, anything else as compact JSON.
fn val(j: Option<&Value>, path: &[&str]) -> Option<String> {
    let mut v = j?;
    for k in path {
        v = v.get(k)?;
    }
    Some(one_line(&match v {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    }))
}

/// Adds `label: value` for each present JSON field.
fn add(extra: &mut Lines, j: Option<&Value>, fields: &[(&str, &[&str])]) {
    for (label, path) in fields {
        if let Some(v) = val(j, path) {
            extra.push((label.to_string(), v));
        }
    }
}

pub(super) fn summarize(req: &Req) -> Option<(String, Lines)> {
    if req.host != "api.github.com" {
        return None;
    }
    let seg: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let j = req.parsed.json.as_ref();
    let mut lines = Vec::new();
    let mut extra = Vec::new();
    let action = match seg.as_slice() {
        [repos, owner, repo, rest @ ..] if repos.eq_ignore_ascii_case("repos") => {
            lines.push(("Repository".to_string(), one_line(&format!("{owner}/{repo}"))));
            repo_action(req, rest, j, &mut extra)
        }
        _ => other_action(req, &seg, j, &mut extra),
    };
    let action = one_line(&action);
    lines.push(("Action".into(), action.clone()));
    lines.append(&mut extra);
    Some((format!("GitHub: {action}"), lines))
}

fn fallback(req: &Req) -> String {
    format!("{} {}", req.method, req.path)
}

fn repo_action(req: &Req, rest: &[&str], j: Option<&Value>, extra: &mut Lines) -> String {
    let kw = |i: usize, w: &str| rest.get(i).is_some_and(|s| s.eq_ignore_ascii_case(w));
    let tail = |from: usize| rest.get(from..).map(|r| r.join("/")).unwrap_or_default();
    let n = rest.len();
    match req.method.as_str() {
        "DELETE" if n == 0 => "DELETE the repository".into(),
        "PATCH" if n == 0 => {
            add(
                extra,
                j,
                &[
                    ("Name", &["name"]),
                    ("Visibility", &["visibility"]),
                    ("Private", &["private"]),
                    ("Archived", &["archived"]),
                    ("Default branch", &["default_branch"]),
                ],
            );
            "change repository settings".into()
        }
        "PUT" if n == 3 && kw(0, "pulls") && kw(2, "merge") => {
            add(
                extra,
                j,
                &[
                    ("Merge method", &["merge_method"]),
                    ("Commit title", &["commit_title"]),
                    ("Head SHA", &["sha"]),
                ],
            );
            format!("merge pull request #{}", rest[1])
        }
        "POST" if n == 1 && kw(0, "pulls") => {
            add(
                extra,
                j,
                &[
                    ("Title", &["title"]),
                    ("From", &["head"]),
                    ("Into", &["base"]),
                    ("Draft", &["draft"]),
                ],
            );
            "open a pull request".into()
        }
        "PATCH" if n == 2 && kw(0, "pulls") => {
            add(
                extra,
                j,
                &[("State", &["state"]), ("Title", &["title"]), ("Into", &["base"])],
            );
            format!("edit pull request #{}", rest[1])
        }
        "POST" if n == 1 && kw(0, "issues") => {
            add(extra, j, &[("Title", &["title"])]);
            "open an issue".into()
        }
        "PATCH" if n == 2 && kw(0, "issues") => {
            add(extra, j, &[("State", &["state"]), ("Title", &["title"])]);
            format!("edit issue #{}", rest[1])
        }
        "POST" if n == 3 && kw(0, "issues") && kw(2, "comments") => {
            add(extra, j, &[("Comment", &["body"])]);
            format!("comment on #{}", rest[1])
        }
        "PUT" if n >= 2 && kw(0, "contents") => {
            add(
                extra,
                j,
                &[
                    ("Branch", &["branch"]),
                    ("Message", &["message"]),
                    ("Replaces blob", &["sha"]),
                ],
            );
            // The file arrives base64-encoded: show what will actually be written.
            if let Some(c) = j.and_then(|v| v.get("content")).and_then(Value::as_str) {
                let shown = match mail::b64(c.as_bytes()) {
                    Some(bytes) => match String::from_utf8(bytes) {
                        Ok(text) => preview(&text),
                        Err(e) => format!("{} bytes, binary", e.as_bytes().len()),
                    },
                    None => "(not valid base64)".into(),
                };
                extra.push(("Content".into(), shown));
            }
            format!("write file {}", tail(1))
        }
        "DELETE" if n >= 2 && kw(0, "contents") => {
            add(extra, j, &[("Branch", &["branch"]), ("Message", &["message"])]);
            format!("delete file {}", tail(1))
        }
        "POST" if n == 2 && kw(0, "git") && kw(1, "refs") => {
            add(extra, j, &[("At commit", &["sha"])]);
            let r = val(j, &["ref"]).unwrap_or_default();
            match (r.strip_prefix("refs/heads/"), r.strip_prefix("refs/tags/")) {
                (Some(b), _) => format!("create branch {b}"),
                (_, Some(t)) => format!("create tag {t}"),
                _ => format!("create ref {r}"),
            }
        }
        "PATCH" if n >= 4 && kw(0, "git") && kw(1, "refs") => {
            add(extra, j, &[("To commit", &["sha"])]);
            let force = j.and_then(|v| v.get("force")).and_then(Value::as_bool) == Some(true);
            if force {
                extra.push(("Force".into(), "yes: commits on the branch may be lost".into()));
            }
            let what = if kw(2, "heads") { "branch" } else { "ref" };
            let name = if kw(2, "heads") { tail(3) } else { tail(2) };
            format!("{}move {what} {name}", if force { "force-" } else { "" })
        }
        "DELETE" if n >= 4 && kw(0, "git") && kw(1, "refs") && kw(2, "heads") => format!("delete branch {}", tail(3)),
        "DELETE" if n >= 4 && kw(0, "git") && kw(1, "refs") && kw(2, "tags") => format!("delete tag {}", tail(3)),
        "POST" if n == 1 && kw(0, "releases") => {
            add(
                extra,
                j,
                &[
                    ("Tag", &["tag_name"]),
                    ("Name", &["name"]),
                    ("Target", &["target_commitish"]),
                    ("Draft", &["draft"]),
                    ("Prerelease", &["prerelease"]),
                ],
            );
            "publish a release".into()
        }
        "PUT" if n == 2 && kw(0, "collaborators") => {
            add(extra, j, &[("Permission", &["permission"])]);
            format!("add collaborator {}", rest[1])
        }
        "DELETE" if n == 2 && kw(0, "collaborators") => format!("remove collaborator {}", rest[1]),
        "POST" if n == 1 && kw(0, "hooks") => {
            // Where the webhook sends repository events: the line that matters most.
            add(extra, j, &[("Sends to", &["config", "url"]), ("Events", &["events"])]);
            "add a webhook".into()
        }
        "PATCH" if n == 2 && kw(0, "hooks") => {
            add(extra, j, &[("Sends to", &["config", "url"]), ("Events", &["events"])]);
            format!("edit webhook {}", rest[1])
        }
        "POST" if n == 1 && kw(0, "dispatches") => {
            add(
                extra,
                j,
                &[("Event", &["event_type"]), ("Payload", &["client_payload"])],
            );
            "trigger workflow (repository dispatch)".into()
        }
        "POST" if n == 4 && kw(0, "actions") && kw(1, "workflows") && kw(3, "dispatches") => {
            add(extra, j, &[("Ref", &["ref"]), ("Inputs", &["inputs"])]);
            format!("trigger workflow {}", rest[2])
        }
        "PUT" | "DELETE" if n >= 3 && kw(0, "branches") && kw(n - 1, "protection") => {
            let b = rest[1..n - 1].join("/");
            if req.method == "PUT" {
                format!("change branch protection for {b}")
            } else {
                format!("remove branch protection from {b}")
            }
        }
        "POST" if n == 1 && kw(0, "keys") => {
            add(extra, j, &[("Title", &["title"]), ("Read only", &["read_only"])]);
            "add a deploy key".into()
        }
        "PUT" if n == 3 && kw(0, "actions") && kw(1, "secrets") => format!("set Actions secret {}", rest[2]),
        "POST" if n == 1 && kw(0, "forks") => {
            add(extra, j, &[("Into", &["organization"])]);
            "fork the repository".into()
        }
        "POST" if n == 1 && kw(0, "transfer") => {
            format!(
                "transfer the repository to {}",
                val(j, &["new_owner"]).unwrap_or_default()
            )
        }
        _ => fallback(req),
    }
}

fn other_action(req: &Req, seg: &[&str], j: Option<&Value>, extra: &mut Lines) -> String {
    let is = |w: &[&str]| {
        seg.len() == w.len()
            && seg
                .iter()
                .zip(w)
                .all(|(a, b)| b.is_empty() || a.eq_ignore_ascii_case(b))
    };
    match req.method.as_str() {
        "POST" if is(&["user", "repos"]) => {
            add(extra, j, &[("Name", &["name"]), ("Private", &["private"])]);
            "create a repository".into()
        }
        "POST" if is(&["orgs", "", "repos"]) => {
            add(
                extra,
                j,
                &[
                    ("Name", &["name"]),
                    ("Visibility", &["visibility"]),
                    ("Private", &["private"]),
                ],
            );
            format!("create a repository in {}", seg[1])
        }
        "POST" if is(&["gists"]) => {
            add(extra, j, &[("Public", &["public"]), ("Description", &["description"])]);
            if let Some(files) = j.and_then(|v| v.get("files")).and_then(Value::as_object) {
                let names: Vec<&str> = files.keys().map(String::as_str).collect();
                extra.push(("Files".into(), one_line(&names.join(", "))));
            }
            "create a gist".into()
        }
        "POST" if is(&["graphql"]) => match &req.parsed.graphql {
            Some(q) => {
                extra.push(("Operation".into(), one_line(q.trim())));
                format!("GraphQL {}", graphql_operation(q))
            }
            None => fallback(req),
        },
        _ => fallback(req),
    }
}
