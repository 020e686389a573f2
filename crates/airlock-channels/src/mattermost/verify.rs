//! Mattermost's action callback ("Interactive messages"): when a user presses a button, the
//! Mattermost *server* POSTs JSON to the action's integration URL with the pressing user's
//! `user_id`, the `post_id`, and the `context` airlock put on the button. The server keeps the
//! context to itself (clients never receive it), so a context secret, compared in constant
//! time, shows the request came from the server; the user is then looked up through the API
//! (see `Mattermost::identify`) before the vote counts.

use serde::Deserialize;
use serde_json::json;

use crate::token::ct_eq;
use crate::{CallbackError, Click};

/// Larger bodies are not Mattermost's action callbacks.
pub const MAX_BODY: usize = 16 * 1024;

/// Mattermost ids: 26 lowercase letters and digits.
pub fn is_id(s: &str) -> bool {
    s.len() == 26 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[derive(Deserialize)]
struct Callback {
    user_id: String,
    post_id: String,
    #[serde(default)]
    channel_id: String,
    context: Context,
}

#[derive(Deserialize)]
struct Context {
    secret: String,
    token: String,
}

/// Authenticates an action callback by its context secret and extracts the click; `user` is
/// the Mattermost user id as the server reports it.
pub fn callback(secret: &[u8], body: &[u8]) -> Result<Option<Click>, CallbackError> {
    if body.len() > MAX_BODY {
        return Err(CallbackError::Malformed(format!("body over {MAX_BODY} bytes")));
    }
    let cb: Callback = serde_json::from_slice(body).map_err(|_| CallbackError::BadSignature)?;
    if !ct_eq(cb.context.secret.as_bytes(), secret) {
        return Err(CallbackError::BadSignature);
    }
    if !is_id(&cb.user_id) || !is_id(&cb.post_id) {
        return Err(CallbackError::Malformed(
            "user_id and post_id must be Mattermost ids".into(),
        ));
    }
    if cb.context.token.is_empty() || cb.context.token.len() > crate::token::MAX_LEN {
        return Err(CallbackError::Malformed("context.token must be 1-64 bytes".into()));
    }
    Ok(Some(Click {
        done: Default::default(),
        channel: super::NAME,
        ack: json!({ "post_id": cb.post_id, "channel_id": is_id(&cb.channel_id).then_some(cb.channel_id) }),
        user: cb.user_id,
        token: cb.context.token,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "u1234567890abcdefghijklmno";
    const P: &str = "p1234567890abcdefghijklmno";

    fn body(secret: &str, user: &str, token: &str) -> Vec<u8> {
        json!({"user_id": user, "user_name": "alice", "post_id": P, "channel_id": "", "team_id": "",
               "trigger_id": "x", "type": "", "data_source": "",
               "context": {"secret": secret, "token": token}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn the_server_is_known_by_the_context_secret() {
        let c = callback(b"s3cret", &body("s3cret", U, "tok")).unwrap().unwrap();
        assert_eq!((c.user.as_str(), c.token.as_str()), (U, "tok"));
        assert_eq!(c.ack["post_id"], P);
        for bad in [
            body("s3cres", U, "tok"),
            body("", U, "tok"),
            body("s3cret-and-more", U, "tok"),
            b"{}".to_vec(),
        ] {
            assert_eq!(callback(b"s3cret", &bad).unwrap_err(), CallbackError::BadSignature);
        }
        assert!(matches!(
            callback(b"s3cret", &body("s3cret", "alice", "tok")),
            Err(CallbackError::Malformed(_))
        ));
        assert!(matches!(
            callback(b"s3cret", &body("s3cret", U, &"t".repeat(65))),
            Err(CallbackError::Malformed(_))
        ));
        assert!(ct_eq(b"a", b"a") && !ct_eq(b"a", b"b") && !ct_eq(b"a", b"ab"));
    }
}
