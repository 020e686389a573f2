//! Readable summaries on the card: Gmail sends and GitHub actions.

use airlock_channels::{BodyKind, Card};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

mod common;

use common::{JSON, card, line, req};

// ---- Gmail ----

const MSG: &str = "From: Agent <agent@example.com>\r\n\
To: Alice <alice@example.com>,\r\n\tBob <bob@example.org>\r\n\
Cc: carol@example.com\r\n\
Subject: =?utf-8?B?UXVhcnRlcmx5IHJlcG9ydCDinJM=?=\r\n =?utf-8?Q?_=E2=80=94_final?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello Alice,\r\nplease find the numbers below.\r\n";

fn gmail_summary_ok(c: &Card) {
    assert_eq!(c.summary_title.as_deref(), Some("Send email"));
    assert_eq!(line(c, "To"), Some("Alice <alice@example.com>, Bob <bob@example.org>"));
    assert_eq!(line(c, "Cc"), Some("carol@example.com"));
    assert_eq!(line(c, "Bcc"), None);
    assert_eq!(line(c, "Subject"), Some("Quarterly report ✓ — final"));
    assert_eq!(line(c, "Body"), Some("Hello Alice, please find the numbers below."));
}

#[test]
fn gmail_raw_json_base64url_and_standard() {
    for raw in [URL_SAFE_NO_PAD.encode(MSG), STANDARD.encode(MSG)] {
        let body = serde_json::json!({ "raw": raw, "threadId": "t1" }).to_string();
        let c = card(&req(
            "POST",
            "gmail.googleapis.com",
            "/gmail/v1/users/me/messages/send",
            &[("Content-Type", JSON)],
            body.as_bytes(),
        ));
        gmail_summary_ok(&c);
        assert_eq!(line(&c, "Thread"), Some("t1"));
    }
}

#[test]
fn gmail_rfc822_upload_and_disguised_path() {
    let c = card(&req(
        "POST",
        "www.googleapis.com",
        "/upload/gmail/v1/users/me/messages/%73end?uploadType=media",
        &[("Content-Type", b"message/rfc822")],
        MSG.as_bytes(),
    ));
    gmail_summary_ok(&c);
    assert_eq!(c.body.kind, BodyKind::Text);
    assert!(c.body.text.contains("please find the numbers"));
}

#[test]
fn gmail_multipart_bcc_latin1_and_attachment() {
    let msg = "To: x@example.com\nBcc: hidden@example.net\nSubject: =?iso-8859-1?Q?caf=E9?=\n\
Content-Type: multipart/mixed; boundary=zz\n\n--zz\nContent-Type: text/html\n\n<p>ignored if plain exists</p>\n\
--zz\nContent-Type: text/plain\nContent-Transfer-Encoding: base64\n\nU2VjcmV0IHBsYW5z\n\
--zz\nContent-Type: application/zip\nContent-Disposition: attachment; filename=\"db.zip\"\n\
Content-Transfer-Encoding: base64\n\nUEsDBA==\n--zz--\n";
    let body = serde_json::json!({ "raw": URL_SAFE_NO_PAD.encode(msg) }).to_string();
    let c = card(&req(
        "POST",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/messages/send",
        &[("Content-Type", JSON)],
        body.as_bytes(),
    ));
    assert_eq!(line(&c, "Bcc"), Some("hidden@example.net"));
    assert_eq!(line(&c, "Subject"), Some("café"));
    assert_eq!(line(&c, "Body"), Some("Secret plans"));
    assert_eq!(line(&c, "Attachments"), Some("db.zip (application/zip, 4 bytes)"));
}

#[test]
fn gmail_without_raw_still_says_send_email() {
    let c = card(&req(
        "POST",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/messages/send",
        &[("Content-Type", JSON)],
        br#"{"threadId":"t9"}"#,
    ));
    assert_eq!(c.summary_title.as_deref(), Some("Send email"));
    assert_eq!(line(&c, "Thread"), Some("t9"));
    let c = card(&req(
        "POST",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/drafts/send",
        &[("Content-Type", JSON)],
        br#"{"id":"r-42"}"#,
    ));
    assert_eq!(c.summary_title.as_deref(), Some("Send email (saved draft)"));
    assert_eq!(line(&c, "Draft"), Some("r-42"));
    // Other Gmail calls are not sends.
    let c = card(&req(
        "GET",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/messages",
        &[],
        b"",
    ));
    assert_eq!(c.summary_title, None);
}

#[test]
fn gmail_long_body_is_previewed_with_a_count() {
    let msg = format!("To: a@b\r\nSubject: s\r\n\r\n{}", "word ".repeat(200));
    let body = serde_json::json!({ "raw": URL_SAFE_NO_PAD.encode(msg) }).to_string();
    let c = card(&req(
        "POST",
        "gmail.googleapis.com",
        "/gmail/v1/users/me/messages/send",
        &[],
        body.as_bytes(),
    ));
    let b = line(&c, "Body").unwrap();
    assert!(b.ends_with("(699 more characters)"), "{b}");
}

// ---- GitHub ----

fn gh(method: &str, target: &str, body: &[u8]) -> Card {
    card(&req(method, "api.github.com", target, &[("Content-Type", JSON)], body))
}

#[test]
fn github_actions_in_words() {
    let c = gh("PUT", "/repos/acme/web/pulls/12/merge", br#"{"merge_method":"squash"}"#);
    assert_eq!(c.summary_title.as_deref(), Some("GitHub: merge pull request #12"));
    assert_eq!(line(&c, "Repository"), Some("acme/web"));
    assert_eq!(line(&c, "Merge method"), Some("squash"));

    let c = gh("DELETE", "/repos/acme/web", b"");
    assert_eq!(line(&c, "Action"), Some("DELETE the repository"));

    let c = gh(
        "PUT",
        "/repos/acme/web/contents/.github/workflows/ci.yml",
        br#"{"message":"ci","content":"eA==","branch":"main"}"#,
    );
    assert_eq!(line(&c, "Action"), Some("write file .github/workflows/ci.yml"));
    assert_eq!(line(&c, "Branch"), Some("main"));
    assert_eq!(line(&c, "Message"), Some("ci"));
    assert_eq!(line(&c, "Content"), Some("x"));

    let c = gh(
        "DELETE",
        "/repos/acme/web/contents/README.md",
        br#"{"message":"rm","sha":"abc"}"#,
    );
    assert_eq!(line(&c, "Action"), Some("delete file README.md"));

    let c = gh(
        "PATCH",
        "/repos/acme/web/git/refs/heads/main",
        br#"{"sha":"deadbeef","force":true}"#,
    );
    assert_eq!(c.summary_title.as_deref(), Some("GitHub: force-move branch main"));
    assert!(line(&c, "Force").is_some());

    let c = gh(
        "POST",
        "/repos/acme/web/pulls",
        br#"{"title":"Fix\nit","head":"fix","base":"main"}"#,
    );
    assert_eq!(line(&c, "Action"), Some("open a pull request"));
    assert_eq!(line(&c, "Title"), Some("Fix it"));
    assert_eq!((line(&c, "From"), line(&c, "Into")), (Some("fix"), Some("main")));

    let c = gh(
        "POST",
        "/repos/acme/web/hooks",
        br#"{"config":{"url":"https://evil.example"}}"#,
    );
    assert_eq!(line(&c, "Sends to"), Some("https://evil.example"));
    let c = gh("PUT", "/repos/acme/web/collaborators/mallory", b"");
    assert_eq!(line(&c, "Action"), Some("add collaborator mallory"));
    let c = gh(
        "POST",
        "/repos/acme/web/actions/workflows/deploy.yml/dispatches",
        br#"{"ref":"main"}"#,
    );
    assert_eq!(line(&c, "Action"), Some("trigger workflow deploy.yml"));
    let c = gh("POST", "/repos/acme/web/issues", br#"{"title":"Bug"}"#);
    assert_eq!(
        (line(&c, "Action"), line(&c, "Title")),
        (Some("open an issue"), Some("Bug"))
    );
    let c = gh("POST", "/repos/acme/web/releases", br#"{"tag_name":"v1"}"#);
    assert_eq!(
        (line(&c, "Action"), line(&c, "Tag")),
        (Some("publish a release"), Some("v1"))
    );

    let c = gh("GET", "/user", b"");
    assert_eq!(c.summary_title.as_deref(), Some("GitHub: GET /user"));
}

// ---- AWS ----

#[test]
fn aws_calls_in_words_service_action_region_resource() {
    let c = card(&req(
        "POST",
        "dynamodb.eu-west-1.amazonaws.com",
        "/",
        &[
            ("Content-Type", b"application/x-amz-json-1.0"),
            ("X-Amz-Target", b"DynamoDB_20120810.DeleteTable"),
        ],
        br#"{"TableName":"orders"}"#,
    ));
    assert_eq!(c.summary_title.as_deref(), Some("AWS dynamodb DeleteTable"));
    assert_eq!(line(&c, "Service"), Some("dynamodb"));
    assert_eq!(line(&c, "Action"), Some("DeleteTable"));
    assert_eq!(line(&c, "Region"), Some("eu-west-1"));
    assert_eq!(line(&c, "Resource"), Some("orders"));

    // S3 through a local endpoint: the signature's scope names service and region.
    let auth = b"AWS4-HMAC-SHA256 Credential=AKID/20250101/us-west-2/s3/aws4_request, SignedHeaders=host, Signature=00";
    let c = card(&req(
        "DELETE",
        "localhost",
        "/backups/2025/db.dump",
        &[("Authorization", auth)],
        b"",
    ));
    assert_eq!(c.summary_title.as_deref(), Some("AWS s3 DeleteObject"));
    assert_eq!(line(&c, "Region"), Some("us-west-2"));
    assert_eq!(line(&c, "Resource"), Some("backups/2025/db.dump"));

    // An action in the URL and another in the form: the card shows both readings.
    let c = card(&req(
        "POST",
        "ec2.us-east-1.amazonaws.com",
        "/?Action=DescribeInstances",
        &[("Content-Type", b"application/x-www-form-urlencoded")],
        b"Action=TerminateInstances&InstanceId.1=i-0abc",
    ));
    assert_eq!(line(&c, "Action"), Some("DescribeInstances"));
    assert_eq!(line(&c, "Also read as"), Some("ec2 TerminateInstances"));
    assert_eq!(line(&c, "Resource"), Some("i-0abc"));
}
