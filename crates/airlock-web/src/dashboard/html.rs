//! The dashboard's markup. Every string that can come from an agent (titles, hosts, paths,
//! agent names, bodies) reaches HTML only through `render::html_card` or [`text`] (visible,
//! one line, cut, escaped); nothing agent-controlled is ever placed in an attribute, and the
//! only attribute values built from data are server-made ids and tokens, escaped anyway.

use airlock_approvals::ApprovalView;
use airlock_channels::render::{self, html_escape};
use airlock_store::GrantRow;

/// Agent-controlled text for element content: deceptive characters made visible, folded to
/// one line, cut to `max` bytes with a notice, then escaped.
pub(crate) fn text(s: &str, max: usize) -> String {
    html_escape(&render::one_line_cut(s, max))
}

/// Operator- or server-made text (person names, ids, messages): escaped.
pub(crate) fn esc(s: &str) -> String {
    html_escape(s)
}

const STYLE: &str = "
body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d1d1f;background:#f6f6f8}
header{display:flex;gap:1.2em;align-items:center;padding:.6em 1.2em;background:#1d2330;color:#fff}
header a{color:#cfe0ff;text-decoration:none}header .who{margin-left:auto}
header form{margin:0}main{max-width:70em;margin:1.2em auto;padding:0 1.2em}
ul.approvals{list-style:none;padding:0}ul.approvals li{background:#fff;border:1px solid #ddd;
border-radius:6px;padding:.6em .9em;margin:.5em 0}
.meta{color:#555;font-size:.9em}.req{font-family:ui-monospace,monospace;word-break:break-all}
.badge{font-size:.8em;background:#e6f0ff;border-radius:3px;padding:0 .4em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em 1.2em}
.card dl{display:grid;grid-template-columns:9em 1fr;gap:.2em 1em}.card dd{margin:0;word-break:break-all}
pre.body{white-space:pre-wrap;word-break:break-all;background:#f1f1f4;padding:.8em;border-radius:4px}
table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.actions{display:flex;gap:.8em;margin:1em 0}.actions form{margin:0}
button{font:inherit;padding:.35em 1em;border-radius:4px;border:1px solid #888;background:#fff;cursor:pointer}
button.approve{background:#1f7a38;color:#fff;border-color:#1f7a38}
button.deny{background:#b3261e;color:#fff;border-color:#b3261e}
.msg{padding:.6em .9em;border-radius:4px}.msg.ok{background:#e5f5e9}.msg.err{background:#fde8e6}
.login{max-width:22em;margin:4em auto;background:#fff;padding:1.5em;border:1px solid #ddd;border-radius:6px}
.login label{display:block;margin:.6em 0}.login input{width:100%;box-sizing:border-box;padding:.4em}
";

/// Who is signed in, for the header (and the sign-out form's CSRF token).
pub(crate) struct Who<'a> {
    pub person: &'a str,
    pub csrf: &'a str,
}

/// A complete page. `script` runs under the page's nonce (the CSP allows nothing else).
pub(crate) fn page(nonce: &str, title: &str, who: Option<&Who>, main: &str, script: Option<&str>) -> String {
    let header = match who {
        Some(w) => format!(
            "<header><strong>airlock</strong><a href=\"/dashboard\">Pending</a>\
             <a href=\"/dashboard/history\">History</a><a href=\"/dashboard/grants\">Grants</a>\
             <span class=\"who\">Signed in as <strong id=\"person\">{}</strong></span>\
             <form method=\"post\" action=\"/dashboard/logout\">{}<button type=\"submit\">Sign out</button></form>\
             </header>",
            esc(w.person),
            csrf_input(w.csrf)
        ),
        None => "<header><strong>airlock</strong></header>".to_string(),
    };
    let script = script.map_or(String::new(), |s| format!("<script nonce=\"{nonce}\">{s}</script>"));
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · airlock</title><style nonce=\"{nonce}\">{STYLE}</style></head>\n<body>{header}\n<main>\n{main}\n</main>{script}</body></html>\n",
        text(title, 200)
    )
}

pub(crate) fn csrf_input(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

pub(crate) fn message(ok: bool, msg: &str) -> String {
    format!(
        "<p class=\"msg {}\" role=\"status\" id=\"message\">{}</p>\n",
        if ok { "ok" } else { "err" },
        esc(msg)
    )
}

pub(crate) fn login(error: Option<&str>) -> String {
    let err = error.map_or(String::new(), |e| message(false, e));
    format!(
        "<form class=\"login\" method=\"post\" action=\"/dashboard/login\">\n<h1>Sign in</h1>\n{err}\
         <label>Person <input name=\"person\" id=\"person-input\" autocomplete=\"username\" required autofocus></label>\n\
         <label>Password <input name=\"password\" id=\"password-input\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
         <button type=\"submit\" id=\"sign-in\">Sign in</button>\n</form>"
    )
}

/// "42 s", "3 min", "2 h 5 min": coarse, for list lines.
fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

fn approval_href(id: &str) -> String {
    format!("/dashboard/approvals/{}", esc(id))
}

/// One approval on a list: title, agent, rules, request line, age, expiry and status line.
pub(crate) fn approval_item(v: &ApprovalView, now: u64, eligible: bool) -> String {
    let c = &v.card;
    let rules = c.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ");
    let expiry = if v.status.is_open() {
        let left = c.expires_ms.saturating_sub(now);
        format!(" · expires {} (in {})", render::utc_hms(c.expires_ms), ago(left))
    } else {
        String::new()
    };
    let badge = if eligible && v.status.is_open() {
        " <span class=\"badge\">you may decide</span>"
    } else {
        ""
    };
    format!(
        "<li class=\"approval\" data-id=\"{id}\"><a class=\"title\" href=\"{href}\">{title}</a>{badge}\n\
         <div class=\"meta\">agent <strong>{agent}</strong> · rule {rules}</div>\n\
         <div class=\"req\">{method} {host}{path}</div>\n\
         <div class=\"meta\">{age} ago{expiry}</div>\n\
         <div class=\"status\">{status}</div></li>\n",
        id = esc(&c.id),
        href = approval_href(&c.id),
        title = text(&render::title(c), 300),
        agent = text(&c.agent, 200),
        rules = text(&rules, 300),
        method = text(&c.method, 40),
        host = text(&c.host, 300),
        path = text(&c.path, 500),
        age = ago(now.saturating_sub(c.created_ms)),
        status = esc(&render::status_line_for(c, &v.status)),
    )
}

pub(crate) fn approval_list(
    items: &[ApprovalView],
    now: u64,
    eligible: impl Fn(&ApprovalView) -> bool,
    empty: &str,
) -> String {
    if items.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut out = String::from("<ul class=\"approvals\">\n");
    for v in items {
        out.push_str(&approval_item(v, now, eligible(v)));
    }
    out.push_str("</ul>");
    out
}

/// Live grants, each with its Revoke button.
pub(crate) fn grants_table(grants: &[GrantRow], csrf: &str, now: u64) -> String {
    if grants.is_empty() {
        return "<p class=\"empty\">No active grants.</p>".into();
    }
    let mut out = String::from(
        "<table class=\"grants\"><thead><tr><th>Agent</th><th>Rule</th><th>Host</th><th>Granted by</th>\
         <th>Expires</th><th></th></tr></thead><tbody>\n",
    );
    for g in grants {
        let expires = g.expires_ms.max(0) as u64;
        out.push_str(&format!(
            "<tr class=\"grant\" data-id=\"{id}\"><td>{agent}</td><td>{rule}</td><td>{host}</td><td>{by}</td>\
             <td>{exp} (in {left})</td><td><form method=\"post\" action=\"/dashboard/grants/{id}/revoke\">{csrf}\
             <button type=\"submit\" class=\"revoke\">Revoke</button></form></td></tr>\n",
            id = esc(&g.id),
            agent = text(&g.agent, 200),
            rule = text(&g.rule, 200),
            host = text(&g.host, 300),
            by = esc(&g.granted_by),
            exp = render::utc_hms(expires),
            left = ago(expires.saturating_sub(now)),
            csrf = csrf_input(csrf),
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// Votes recorded for one approval: who, how, through which channel, when.
pub(crate) fn votes_table(v: &ApprovalView) -> String {
    if v.votes.is_empty() {
        return "<p class=\"empty\" id=\"votes\">No votes yet.</p>".into();
    }
    let mut out = String::from(
        "<table class=\"votes\" id=\"votes\"><thead><tr><th>Who</th><th>Vote</th><th>Channel</th><th>When</th></tr></thead><tbody>\n",
    );
    for vote in &v.votes {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&vote.person),
            if vote.approve { "approve" } else { "deny" },
            esc(&vote.channel),
            render::utc_datetime(vote.at_ms.max(0) as u64)
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// The vote forms for an approval the signed-in person may decide. Labels and values are
/// the server's own; the card's content never shapes them.
pub(crate) fn vote_forms(id: &str, csrf: &str, grant_secs: Option<u64>) -> String {
    let form = |decision: &str, class: &str, label: &str| {
        format!(
            "<form class=\"vote\" method=\"post\" action=\"{}/vote\">{}\
             <input type=\"hidden\" name=\"decision\" value=\"{decision}\">\
             <button type=\"submit\" class=\"{class}\" id=\"vote-{decision}\">{}</button></form>\n",
            approval_href(id),
            csrf_input(csrf),
            esc(label)
        )
    };
    let mut out = String::from("<div class=\"actions\">\n");
    out.push_str(&form("approve", "approve", "Approve"));
    if let Some(secs) = grant_secs {
        out.push_str(&form(
            "grant",
            "grant",
            &format!("Approve for {}", render::duration(secs)),
        ));
    }
    out.push_str(&form("deny", "deny", "Deny"));
    out.push_str("</div>");
    out
}

/// The dashboard's live list: refetches the pending fragment on every approval event (and
/// once the stream is open, so nothing held between page load and connect is missed);
/// a decision also reloads the page so history and grants follow.
pub(crate) const DASHBOARD_SCRIPT: &str = r#"
(function () {
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch('/dashboard/fragment/pending', {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) {
        if (r.redirected || !r.ok) { location.reload(); return null; }
        return r.text();
      })
      .then(function (t) {
        var el = document.getElementById('pending');
        if (t !== null && el) { el.innerHTML = t; }
      })
      .catch(function () {})
      .finally(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var es = new EventSource('/dashboard/events');
  // A submitted form (revoke, sign out) is navigating away: a reload now would cancel it.
  document.addEventListener('submit', function () { es.close(); });
  es.addEventListener('open', refresh);
  es.addEventListener('approval', function (e) {
    var state = '';
    try { state = JSON.parse(e.data).state; } catch (err) {}
    if (state === 'pending' || state === 'lagged') { refresh(); } else { location.reload(); }
  });
})();
"#;

/// The detail page follows its own approval while it is open: another approver's vote reloads
/// it. A vote's result is rendered at the form's URL; the address bar is put back on the
/// detail page so a reload is a GET and never resubmits the vote.
pub(crate) const DETAIL_SCRIPT: &str = r#"
(function () {
  var card = document.getElementById('approval');
  var id = card.getAttribute('data-id');
  var here = '/dashboard/approvals/' + encodeURIComponent(id);
  if (location.pathname !== here) { history.replaceState(null, '', here); }
  if (card.getAttribute('data-open') !== 'true') { return; }
  var es = new EventSource('/dashboard/events');
  // A vote in flight announces itself as an event: navigating then would cancel the vote's page.
  document.addEventListener('submit', function () { es.close(); });
  // A vote between this page's render and the stream's start sent no event to us: compare.
  es.addEventListener('open', function () {
    fetch(here, {credentials: 'same-origin', cache: 'no-store'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (t) {
        if (t === null || es.readyState === 2) { return; }
        var doc = new DOMParser().parseFromString(t, 'text/html');
        var same = function (sel) {
          var a = doc.getElementById(sel), b = document.getElementById(sel);
          return a && b && a.textContent === b.textContent;
        };
        if (!same('approval') || !same('votes')) { es.close(); location.replace(here); }
      })
      .catch(function () {});
  });
  es.addEventListener('approval', function (e) {
    var ev = {};
    try { ev = JSON.parse(e.data); } catch (err) {}
    if (ev.id === id || ev.state === 'lagged') { es.close(); location.replace(here); }
  });
})();
"#;
