//! `[secrets.NAME] kind = "oauth2" | "github_app" | "aws"`: presets, defaults (slot, format, GitHub's
//! hosts) and the mistakes refused at load (a client secret written in the file, plain-HTTP token
//! endpoints, a slot on a github_app, a missing client id or installation).

use std::path::Path;

use airlock_config::{AssumeRole, ClientAuth, Config, ConfigError, CredentialKind, SecretRef};
use airlock_core::inject::Slot;

fn parse(src: &str) -> Result<Config, String> {
    Config::parse(src, Path::new("airlock.toml")).map_err(|e| match e {
        ConfigError::Invalid { errors } => errors
            .iter()
            .map(|e| format!("{} {}", e.key, e.message))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    })
}

#[test]
fn a_google_connection_gets_the_preset_endpoints_and_bearer_slot() {
    let cfg = parse(
        "[secrets.gmail]\nkind = \"oauth2\"\nprovider = \"google\"\nclient_id = \"id.apps.googleusercontent.com\"\n\
         client_secret = \"env:GMAIL_CLIENT_SECRET\"\nscopes = [\"https://www.googleapis.com/auth/gmail.send\"]\n\
         hosts = [\"gmail.googleapis.com\"]\n",
    )
    .unwrap();
    let d = cfg.secrets.get("gmail").unwrap();
    assert_eq!(d.slot, Slot::Header("authorization".into()));
    assert_eq!(d.format, "Bearer {secret}");
    let CredentialKind::OAuth2(o) = &cfg.credential("gmail").unwrap().kind else {
        panic!()
    };
    assert_eq!(o.token_url, "https://oauth2.googleapis.com/token");
    assert!(o.auth_params.contains(&("access_type".into(), "offline".into())));
    assert_eq!(o.client_secret, Some(SecretRef::Env("GMAIL_CLIENT_SECRET".into())));
    assert_eq!(o.client_auth, ClientAuth::Post);
}

#[test]
fn a_microsoft_connection_uses_its_tenant() {
    let cfg = parse(
        "[secrets.outlook]\nkind = \"oauth2\"\nprovider = \"microsoft\"\ntenant = \"contoso.onmicrosoft.com\"\n\
         client_id = \"abc\"\nhosts = [\"graph.microsoft.com\"]\n",
    )
    .unwrap();
    let CredentialKind::OAuth2(o) = &cfg.credential("outlook").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        o.token_url,
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn a_github_app_defaults_to_githubs_hosts_and_the_authorization_slot() {
    let cfg = parse("[secrets.gh]\nkind = \"github_app\"\napp_id = 12345\ninstallation_id = 678\n").unwrap();
    let d = cfg.secrets.get("gh").unwrap();
    let hosts: Vec<String> = d.hosts.iter().map(|h| h.to_string()).collect();
    assert_eq!(hosts, ["api.github.com", "github.com"]);
    assert_eq!(
        d.slot,
        Slot::Authorization {
            basic_user: "x-access-token".into()
        }
    );
    let CredentialKind::GithubApp(a) = &cfg.credential("gh").unwrap().kind else {
        panic!()
    };
    assert_eq!(
        (a.app_id.as_str(), a.installation_id, a.api_url.as_str()),
        ("12345", 678, "https://api.github.com")
    );
    // A static secret is no credential.
    let cfg = parse("[secrets.k]\nhosts = [\"a.example\"]\nheader = \"X-Key\"\n").unwrap();
    assert!(cfg.credentials.is_empty());
}

#[test]
fn aws_keys_get_the_sigv4_slot_and_both_placeholders() {
    let cfg = parse(
        "[secrets.aws]\nkind = \"aws\"\naccess_key_id = \"vault:aws-key-id\"\nsession_token = \"env:AWS_REAL_TOKEN\"\n\
         hosts = [\"*.amazonaws.com\"]\nplaceholder = \"AKIAAIRLOCKPLACEHOLDER\"\n",
    )
    .unwrap();
    let d = cfg.secrets.get("aws").unwrap();
    assert_eq!(d.slot, Slot::AwsSignature);
    assert_eq!(d.env.as_deref(), Some("AWS_ACCESS_KEY_ID"));
    assert_eq!(d.placeholder, "AKIAAIRLOCKPLACEHOLDER");
    let CredentialKind::Aws(a) = &cfg.credential("aws").unwrap().kind else {
        panic!("not aws")
    };
    assert_eq!(a.access_key_id, SecretRef::Vault("aws-key-id".into()));
    assert_eq!(a.session_token, Some(SecretRef::Env("AWS_REAL_TOKEN".into())));
    assert_eq!(a.secret_placeholder, "airlock-aws-secret-placeholder-aws");
    assert_eq!(a.assume_role, None);
}

#[test]
fn an_aws_role_to_assume_gets_sts_defaults() {
    let base = "[secrets.aws]\nkind = \"aws\"\naccess_key_id = \"env:K\"\nhosts = [\"*.amazonaws.com\"]\n";
    let role = |cfg: &Config| match &cfg.credential("aws").unwrap().kind {
        CredentialKind::Aws(a) => a.assume_role.clone().expect("a role"),
        _ => panic!("not aws"),
    };
    let r = role(
        &parse(&format!(
            "{base}role_arn = \"arn:aws:iam::123456789012:role/agent-ops\"\n"
        ))
        .unwrap(),
    );
    assert_eq!(
        r,
        AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/agent-ops".into(),
            external_id: None,
            session_name: "airlock-aws".into(),
            duration_secs: 3600,
            sts_endpoint: "https://sts.amazonaws.com".into(),
            sts_region: "us-east-1".into(),
        }
    );
    let r = role(
        &parse(&format!(
            "{base}role_arn = \"arn:aws-cn:iam::123456789012:role/path/ops\"\nexternal_id = \"tenant:42\"\n\
             session_name = \"agent@ops\"\nduration = \"15m\"\nsts_endpoint = \"https://sts.cn-north-1.amazonaws.com.cn\"\n\
             sts_region = \"cn-north-1\"\n"
        ))
        .unwrap(),
    );
    assert_eq!(
        (
            r.external_id.as_deref(),
            r.session_name.as_str(),
            r.duration_secs,
            r.sts_region.as_str()
        ),
        (Some("tenant:42"), "agent@ops", 900, "cn-north-1")
    );
    // A test's STS on loopback may be plain HTTP.
    let r = role(
        &parse(&format!(
            "{base}role_arn = \"arn:aws:iam::123456789012:role/x\"\nsts_endpoint = \"http://127.0.0.1:4566\"\n"
        ))
        .unwrap(),
    );
    assert_eq!(r.sts_endpoint, "http://127.0.0.1:4566");
}

#[test]
fn aws_role_mistakes_are_refused_with_their_key() {
    let base = "[secrets.aws]\nkind = \"aws\"\naccess_key_id = \"env:K\"\nhosts = [\"*.amazonaws.com\"]\n";
    let role = "role_arn = \"arn:aws:iam::123456789012:role/ops\"\n";
    let cases: &[(&str, &str)] = &[
        (
            "role_arn = \"arn:aws:iam::123456789012:user/ops\"\n",
            "secrets.aws.role_arn",
        ),
        ("role_arn = \"ops\"\n", "not an IAM role ARN"),
        ("role_arn = 7\n", "secrets.aws.role_arn"),
        (
            "external_id = \"x1\"\n",
            "secrets.aws.external_id external_id only applies to an assumed role",
        ),
        ("duration = \"1h\"\n", "set role_arn too"),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nduration = \"10m\"\n",
            "secrets.aws.duration",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nduration = \"13h\"\n",
            "\"15m\" to \"12h\"",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nduration = 3600\n",
            "secrets.aws.duration",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nsession_name = \"has space\"\n",
            "secrets.aws.session_name",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nexternal_id = \"a\"\n",
            "secrets.aws.external_id",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nsts_region = \"US East\"\n",
            "secrets.aws.sts_region",
        ),
        (
            "role_arn = \"arn:aws:iam::123456789012:role/ops\"\nsts_endpoint = \"http://sts.amazonaws.com\"\n",
            "secrets.aws.sts_endpoint http:// sends",
        ),
    ];
    for (extra, want) in cases {
        let src = format!("{base}{extra}");
        let e = parse(&src).expect_err(&src);
        assert!(e.contains(want), "{src}\n→ {e}");
    }
    assert!(parse(&format!("{base}{role}")).is_ok());
}

#[test]
fn mistakes_are_refused_at_load() {
    let cases: &[(&str, &str)] = &[
        (
            "[secrets.m]\nkind = \"oauth2\"\nprovider = \"google\"\nclient_id = \"x\"\nclient_secret = \"GOCSPX-real\"\nhosts = [\"a.example\"]\n",
            "env:NAME",
        ),
        (
            "[secrets.m]\nkind = \"oauth2\"\nauth_url = \"http://auth.example/a\"\ntoken_url = \"https://auth.example/t\"\nclient_id = \"x\"\nhosts = [\"a.example\"]\n",
            "http://",
        ),
        (
            "[secrets.m]\nkind = \"oauth2\"\nclient_id = \"x\"\nhosts = [\"a.example\"]\n",
            "auth_url and token_url",
        ),
        (
            "[secrets.m]\nkind = \"oauth2\"\nprovider = \"yahoo\"\nclient_id = \"x\"\nhosts = [\"a.example\"]\n",
            "unknown provider",
        ),
        (
            "[secrets.m]\nkind = \"oauth2\"\nprovider = \"github\"\nhosts = [\"a.example\"]\n",
            "client_id",
        ),
        (
            "[secrets.g]\nkind = \"github_app\"\napp_id = 1\ninstallation_id = 2\nheader = \"X\"\n",
            "slot is the Authorization header",
        ),
        ("[secrets.g]\nkind = \"github_app\"\napp_id = 1\n", "installation id"),
        ("[secrets.g]\nkind = \"azure\"\nhosts = [\"a.example\"]\n", "kind is"),
        (
            "[secrets.a]\nkind = \"aws\"\nhosts = [\"*.amazonaws.com\"]\n",
            "access_key_id",
        ),
        (
            "[secrets.a]\nkind = \"aws\"\naccess_key_id = \"AKIAIOSFODNN7EXAMPLE\"\nhosts = [\"*.amazonaws.com\"]\n",
            "env:NAME",
        ),
        (
            "[secrets.a]\nkind = \"aws\"\naccess_key_id = \"env:K\"\nheader = \"X\"\nhosts = [\"*.amazonaws.com\"]\n",
            "SigV4 Authorization",
        ),
        (
            "[secrets.a]\nkind = \"aws\"\naccess_key_id = \"env:K\"\nallow_http = true\nhosts = [\"*.amazonaws.com\"]\n",
            "TLS only",
        ),
        (
            "[secrets.a]\nkind = \"aws\"\naccess_key_id = \"env:K\"\n",
            "at least one host",
        ),
        (
            "[secrets.g]\nkind = \"github_app\"\napp_id = 1\ninstallation_id = 2\nclient_id = \"x\"\n",
            "unknown key",
        ),
    ];
    for (src, want) in cases {
        let e = parse(src).expect_err(src);
        assert!(e.contains(want), "{src}\n→ {e}");
        assert!(!e.contains("GOCSPX-real"), "the secret is echoed: {e}");
        assert!(!e.contains("AKIAIOSFODNN7EXAMPLE"), "the key id is echoed: {e}");
    }
}
