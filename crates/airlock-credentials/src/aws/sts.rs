//! STS `AssumeRole`: the secret's own keys sign (Signature V4, `aws-sigv4`) one form POST to the
//! STS endpoint, whose XML answer holds temporary keys for the role; requests are then re-signed
//! with those. Errors name what went wrong (STS's error code and message, its status), never a key.

use std::time::{Duration, SystemTime};

use airlock_config::AssumeRole;
use airlock_vault::SecretBytes;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_types::date_time::{DateTime, Format};

use super::AwsKeys;

const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
/// An STS answer is a few kilobytes; anything much larger is not one.
const MAX_ANSWER: usize = 64 * 1024;

/// The temporary keys of an assumed role.
pub struct Assumed {
    pub key_id: SecretBytes,
    pub secret: SecretBytes,
    pub token: SecretBytes,
    /// When STS says they expire (ms since the epoch).
    pub expires_ms: i64,
}

impl std::fmt::Debug for Assumed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Assumed(redacted)")
    }
}

/// The `AssumeRole` form body for `role`.
pub fn form(role: &AssumeRole) -> String {
    let mut f = url::form_urlencoded::Serializer::new(String::new());
    f.append_pair("Action", "AssumeRole")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &role.role_arn)
        .append_pair("RoleSessionName", &role.session_name)
        .append_pair("DurationSeconds", &role.duration_secs.to_string());
    if let Some(id) = &role.external_id {
        f.append_pair("ExternalId", id);
    }
    f.finish()
}

/// Calls `AssumeRole` for `role`, signed with `base` at `now`.
pub async fn assume_role(
    http: &reqwest::Client,
    base: &AwsKeys,
    role: &AssumeRole,
    now: SystemTime,
) -> Result<Assumed, String> {
    // The URL normalised (a path of "/"), as reqwest will send it and as it is signed.
    let url = url::Url::parse(&role.sts_endpoint).map_err(|_| "the STS endpoint is not a URL".to_string())?;
    let body = form(role);
    let params = v4::SigningParams::builder()
        .identity(&base.identity)
        .region(&role.sts_region)
        .name("sts")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| "signing the AssumeRole request failed".to_string())?
        .into();
    let headers = [("content-type", FORM)];
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        headers.into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .map_err(|_| "signing the AssumeRole request failed".to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| "signing the AssumeRole request failed".to_string())?
        .into_parts();
    let mut req = http.post(url.clone()).header("content-type", FORM).body(body);
    for (name, value) in instructions.headers() {
        let mut v = reqwest::header::HeaderValue::from_str(value)
            .map_err(|_| "signing the AssumeRole request failed".to_string())?;
        v.set_sensitive(true);
        req = req.header(name, v);
    }
    let host = url.host_str().unwrap_or_default().to_string();
    let resp = req
        .send()
        .await
        .map_err(|e| format!("STS at {host} could not be reached ({})", reason(&e)))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("STS at {host} did not answer in full ({})", reason(&e)))?;
    if bytes.len() > MAX_ANSWER {
        return Err(format!("STS at {host} answered with more than {MAX_ANSWER} bytes"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("STS at {host} answered with non-UTF-8"))?;
    if !status.is_success() {
        let why = error_of(text).unwrap_or_else(|| "no STS error in the answer".to_string());
        return Err(format!("STS refused AssumeRole of {} ({status}): {why}", role.role_arn));
    }
    let assumed = parse_credentials(text).map_err(|why| format!("STS at {host} answered AssumeRole oddly: {why}"))?;
    // STS's clock, not ours: never trust the keys past the duration asked for.
    let asked = now + Duration::from_secs(u64::from(role.duration_secs));
    let asked_ms = asked
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Ok(Assumed {
        expires_ms: assumed.expires_ms.min(asked_ms),
        ..assumed
    })
}

/// What a failed `reqwest` call says, without its URL (ours, but kept short).
fn reason(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "transport error"
    }
}

/// `Code: Message` of an STS `ErrorResponse`, cut to a line.
pub fn error_of(xml: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let error = doc.descendants().find(|n| n.has_tag_name("Error"))?;
    let child = |name: &str| {
        error
            .children()
            .find(|n| n.has_tag_name(name))
            .and_then(|n| n.text())
            .map(str::trim)
    };
    let code = child("Code")?;
    let message: String = child("Message").unwrap_or_default().chars().take(300).collect();
    Some(format!("{code}: {message}").replace(['\r', '\n'], " "))
}

/// The `Credentials` of an `AssumeRoleResponse`.
pub fn parse_credentials(xml: &str) -> Result<Assumed, &'static str> {
    let doc = roxmltree::Document::parse(xml).map_err(|_| "not XML")?;
    let creds = doc
        .descendants()
        .find(|n| n.has_tag_name("Credentials") && n.parent().is_some_and(|p| p.has_tag_name("AssumeRoleResult")))
        .ok_or("no AssumeRoleResult/Credentials")?;
    let field = |name: &'static str| -> Result<&str, &'static str> {
        let mut all = creds.children().filter(|n| n.has_tag_name(name));
        match (all.next().and_then(|n| n.text()).map(str::trim), all.next()) {
            (Some(v), None) if !v.is_empty() && !v.contains(char::is_whitespace) => Ok(v),
            _ => Err(name),
        }
    };
    let (key_id, secret, token) = (
        field("AccessKeyId").map_err(|_| "no single AccessKeyId")?,
        field("SecretAccessKey").map_err(|_| "no single SecretAccessKey")?,
        field("SessionToken").map_err(|_| "no single SessionToken")?,
    );
    let expiration = field("Expiration").map_err(|_| "no single Expiration")?;
    let expires = DateTime::from_str(expiration, Format::DateTime).map_err(|_| "an Expiration that is no date")?;
    let expires_ms = expires.to_millis().map_err(|_| "an Expiration out of range")?;
    Ok(Assumed {
        key_id: SecretBytes::new(key_id.as_bytes().to_vec()),
        secret: SecretBytes::new(secret.as_bytes().to_vec()),
        token: SecretBytes::new(token.as_bytes().to_vec()),
        expires_ms,
    })
}

/// When keys expiring at `expires_ms` (obtained at `now_ms`) are replaced: five minutes before,
/// or halfway through a shorter life, so a refresh never races the expiry.
pub fn refresh_at(now_ms: i64, expires_ms: i64) -> i64 {
    let life = (expires_ms - now_ms).max(0);
    expires_ms - (life / 2).min(300_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/demo/TestAR</Arn>
      <AssumedRoleId>ARO123EXAMPLE123:TestAR</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY</SecretAccessKey>
      <SessionToken>
       AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==
      </SessionToken>
      <Expiration>2019-11-09T13:34:41Z</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>"#;

    /// AWS's documented example answer (the STS API reference's AssumeRole example).
    #[test]
    fn the_documented_answer_parses() {
        let a = parse_credentials(ANSWER).unwrap();
        assert_eq!(a.key_id.expose(), b"ASIAIOSFODNN7EXAMPLE");
        assert_eq!(a.secret.expose(), b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY");
        assert!(a.token.expose().starts_with(b"AQoDYXdzEPT//"));
        assert!(a.token.expose().ends_with(b"oLxBA=="));
        assert_eq!(a.expires_ms, 1_573_306_481_000);
        assert_eq!(format!("{a:?}"), "Assumed(redacted)");
    }

    #[test]
    fn odd_answers_are_refused() {
        let cases = [
            ("<x", "not XML"),
            ("<AssumeRoleResponse/>", "no AssumeRoleResult/Credentials"),
            (
                &ANSWER.replace("<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>", ""),
                "no single AccessKeyId",
            ),
            (
                &ANSWER.replace("<Expiration>", "<AccessKeyId>ASIAOTHER</AccessKeyId><Expiration>"),
                "no single AccessKeyId",
            ),
            (
                &ANSWER.replace("2019-11-09T13:34:41Z", "tomorrow"),
                "an Expiration that is no date",
            ),
        ];
        for (xml, want) in cases {
            assert_eq!(parse_credentials(xml).map(|_| ()).unwrap_err(), want);
        }
        // Fractional seconds are RFC 3339 too.
        let a = parse_credentials(&ANSWER.replace("13:34:41Z", "13:34:41.250Z")).unwrap();
        assert_eq!(a.expires_ms, 1_573_306_481_250);
    }

    #[test]
    fn sts_errors_are_named() {
        let xml = r#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform:
  sts:AssumeRole</Message></Error><RequestId>1</RequestId></ErrorResponse>"#;
        assert_eq!(
            error_of(xml).as_deref(),
            Some("AccessDenied: not authorized to perform:   sts:AssumeRole")
        );
        assert_eq!(error_of("<html>bad gateway</html>"), None);
    }

    #[test]
    fn the_form_names_the_role() {
        let role = AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/ops".into(),
            external_id: Some("tenant:42".into()),
            session_name: "airlock-aws".into(),
            duration_secs: 900,
            sts_endpoint: "https://sts.amazonaws.com".into(),
            sts_region: "us-east-1".into(),
        };
        assert_eq!(
            form(&role),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fops\
             &RoleSessionName=airlock-aws&DurationSeconds=900&ExternalId=tenant%3A42"
        );
    }

    /// Five minutes before expiry; halfway through a life shorter than ten minutes.
    #[test]
    fn keys_are_replaced_before_they_expire() {
        let now = 1_000_000_000;
        assert_eq!(refresh_at(now, now + 3_600_000), now + 3_300_000);
        assert_eq!(refresh_at(now, now + 900_000), now + 600_000);
        assert_eq!(refresh_at(now, now + 2_000), now + 1_000);
        assert_eq!(refresh_at(now, now - 5), now - 5);
    }
}
