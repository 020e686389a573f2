//! Bot Framework Connector calls with an Entra access token obtained by client credentials
//! (scope `https://api.botframework.com/.default`), cached by [`crate::oauth`].

use airlock_vault::SecretBytes;

use crate::ChannelError;
use crate::oauth::Grant;
pub(crate) use crate::oauth::{Api, enc};

pub const SCOPE: &str = "https://api.botframework.com/.default";

pub(crate) fn platform(detail: impl Into<String>) -> ChannelError {
    ChannelError::Platform {
        channel: "teams",
        detail: detail.into(),
    }
}

pub(crate) fn connector(token_url: &str, app_id: &str, app_password: SecretBytes) -> Api {
    let grant = Grant::ClientCredentials {
        client_id: app_id.to_string(),
        secret: app_password,
        scope: SCOPE.to_string(),
    };
    Api::new("teams", token_url, grant)
}
