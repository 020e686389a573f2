//! Google Chat REST calls with a service-account token (JWT bearer grant, RS256, scope
//! `https://www.googleapis.com/auth/chat.bot`), cached by [`crate::oauth`].

use airlock_vault::SecretBytes;
use serde_json::Value;

use crate::ChannelError;
use crate::jwt::SigningKey;
use crate::oauth::Grant;
pub(crate) use crate::oauth::{Api, enc};

pub const SCOPE: &str = "https://www.googleapis.com/auth/chat.bot";
/// Added when events are pulled from Cloud Pub/Sub.
pub const PUBSUB_SCOPE: &str = "https://www.googleapis.com/auth/pubsub";
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: "gchat",
        detail: detail.into(),
    }
}

/// A service account's JSON key (as downloaded from the Cloud console).
pub struct ServiceAccount {
    pub email: String,
    pub key_id: Option<String>,
    pub key: SigningKey,
    pub token_uri: Option<String>,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    /// Reads the key file's JSON. Errors never quote the key.
    pub fn from_json(raw: &SecretBytes) -> Result<ServiceAccount, String> {
        let v: Value =
            serde_json::from_slice(raw.expose()).map_err(|_| "not a JSON service account key".to_string())?;
        if v["type"] != "service_account" {
            return Err("not a service account key (type is not \"service_account\")".into());
        }
        let email = v["client_email"].as_str().ok_or("no client_email")?.to_string();
        let key = SigningKey::from_pem(v["private_key"].as_str().ok_or("no private_key")?)?;
        Ok(ServiceAccount {
            email,
            key_id: v["private_key_id"].as_str().map(str::to_string),
            key,
            token_uri: v["token_uri"].as_str().map(str::to_string),
        })
    }
}

pub(crate) fn client(token_url: &str, sa: ServiceAccount, pubsub: bool) -> Api {
    let scope = match pubsub {
        true => format!("{SCOPE} {PUBSUB_SCOPE}"),
        false => SCOPE.to_string(),
    };
    let grant = Grant::JwtBearer {
        email: sa.email,
        key_id: sa.key_id,
        key: Box::new(sa.key),
        scope,
    };
    Api::new("gchat", token_url, grant)
}
