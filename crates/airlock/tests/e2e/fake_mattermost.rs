//! A local Mattermost server speaking what its REST API v4 and "Interactive messages" docs
//! describe: bearer-token auth on every call, users by id and by username, direct channels
//! between the bot and a user, posts with message-attachment actions (an `integration` with
//! `url` and `context` per button), post patches. A button press is built as the Mattermost
//! server sends it: the clicker's `user_id`, the `post_id`, and the button's context.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const BOT: &str = "mm-bot-token-e2e-9a8b7c6d5e";

/// A 26-character Mattermost id made from a name.
pub fn mmid(name: &str) -> String {
    let s: String = name.chars().filter(char::is_ascii_lowercase).take(26).collect();
    format!("{s:z<26}")
}

#[derive(Default)]
struct St {
    /// id → user object.
    users: Mutex<HashMap<String, Value>>,
    /// post id → post.
    posts: Mutex<HashMap<String, Value>>,
    /// Every accepted call: (method path, body).
    calls: Mutex<Vec<(String, Value)>>,
    violations: Mutex<Vec<String>>,
    changed: Notify,
}

type Answer = (StatusCode, Json<Value>);

fn refuse(st: &St, code: StatusCode, why: &str) -> Answer {
    st.violations.lock().unwrap().push(why.to_string());
    st.changed.notify_waiters();
    (
        code,
        Json(json!({"id": why, "message": why, "status_code": code.as_u16()})),
    )
}

fn authed(st: &St, h: &HeaderMap) -> Result<(), Answer> {
    match h.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(v) if v == format!("Bearer {BOT}") => Ok(()),
        _ => Err(refuse(
            st,
            StatusCode::UNAUTHORIZED,
            "api.context.session_expired.app_error",
        )),
    }
}

fn record(st: &St, call: &str, body: Value) {
    st.calls.lock().unwrap().push((call.to_string(), body));
    st.changed.notify_waiters();
}

fn check_props(props: &Value) -> Result<(), String> {
    let atts = props["attachments"]
        .as_array()
        .ok_or("props.attachments is not an array")?;
    for a in atts {
        for action in a["actions"].as_array().into_iter().flatten() {
            let id = action["id"].as_str().unwrap_or_default();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!("action id {id:?} must be alphanumeric"));
            }
            if !action["name"].is_string() || !action["integration"]["url"].is_string() {
                return Err("an action needs a name and integration.url".into());
            }
            if !action["integration"]["context"].is_object() {
                return Err("integration.context must be an object".into());
            }
        }
    }
    Ok(())
}

async fn me(State(st): State<Arc<St>>, h: HeaderMap) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    let bot = st.users.lock().unwrap().get(&mmid("bot")).cloned().unwrap();
    (StatusCode::OK, Json(bot))
}

async fn user(State(st): State<Arc<St>>, h: HeaderMap, Path(id): Path<String>) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    record(&st, "GET /users/{id}", json!(id));
    match st.users.lock().unwrap().get(&id).cloned() {
        Some(u) => (StatusCode::OK, Json(u)),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"id": "app.user.missing_account.const"})),
        ),
    }
}

async fn by_name(State(st): State<Arc<St>>, h: HeaderMap, Path(name): Path<String>) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    let found = st
        .users
        .lock()
        .unwrap()
        .values()
        .find(|u| u["username"] == name.as_str())
        .cloned();
    match found {
        Some(u) => (StatusCode::OK, Json(u)),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"id": "app.user.missing_account.const"})),
        ),
    }
}

async fn direct(State(st): State<Arc<St>>, h: HeaderMap, Json(ids): Json<Value>) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    let ids: Vec<String> = ids
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect();
    let users = st.users.lock().unwrap().clone();
    if ids.len() != 2 || !ids.iter().all(|i| users.contains_key(i)) || !ids.contains(&mmid("bot")) {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            "channels/direct takes the bot and one user id",
        );
    }
    record(&st, "POST /channels/direct", json!(ids));
    (
        StatusCode::CREATED,
        Json(json!({"id": mmid(&format!("dm{}", ids[1])), "type": "D"})),
    )
}

async fn create_post(State(st): State<Arc<St>>, h: HeaderMap, Json(p): Json<Value>) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    if !p["channel_id"].as_str().is_some_and(|c| c.starts_with("dm")) || !p["message"].is_string() {
        return refuse(
            &st,
            StatusCode::BAD_REQUEST,
            "a post needs a DM channel_id and a message",
        );
    }
    if let Err(e) = check_props(&p["props"]) {
        return refuse(&st, StatusCode::BAD_REQUEST, &e);
    }
    let id = {
        let mut posts = st.posts.lock().unwrap();
        let id = mmid(&format!("post{}", "x".repeat(posts.len())));
        let mut stored = p.clone();
        stored["id"] = json!(id);
        posts.insert(id.clone(), stored);
        id
    };
    record(&st, "POST /posts", p.clone());
    let mut answer = p;
    answer["id"] = json!(id);
    (StatusCode::CREATED, Json(answer))
}

async fn patch(State(st): State<Arc<St>>, h: HeaderMap, Path(id): Path<String>, Json(p): Json<Value>) -> Answer {
    if let Err(a) = authed(&st, &h) {
        return a;
    }
    if let Err(e) = check_props(&p["props"]) {
        return refuse(&st, StatusCode::BAD_REQUEST, &e);
    }
    let updated = {
        let mut posts = st.posts.lock().unwrap();
        let Some(post) = posts.get_mut(&id) else {
            drop(posts);
            return refuse(&st, StatusCode::NOT_FOUND, "no such post");
        };
        post["props"] = p["props"].clone();
        post.clone()
    };
    record(&st, "PUT /posts/{id}/patch", p);
    (StatusCode::OK, Json(updated))
}

pub struct FakeMattermost {
    pub url: String,
    st: Arc<St>,
}

impl FakeMattermost {
    /// Users: the bot, and each of `people` as (username, active).
    pub async fn start(people: &[(&str, bool)]) -> FakeMattermost {
        let st = Arc::new(St::default());
        {
            let mut users = st.users.lock().unwrap();
            users.insert(
                mmid("bot"),
                json!({"id": mmid("bot"), "username": "airlock-bot", "is_bot": true, "delete_at": 0}),
            );
            for (name, active) in people {
                let delete_at = if *active { 0 } else { 1_700_000_000_000u64 };
                users.insert(
                    mmid(name),
                    json!({"id": mmid(name), "username": name, "is_bot": false, "delete_at": delete_at}),
                );
            }
        }
        let app = axum::Router::new()
            .route("/api/v4/users/me", get(me))
            .route("/api/v4/users/username/{name}", get(by_name))
            .route("/api/v4/users/{id}", get(user))
            .route("/api/v4/channels/direct", post(direct))
            .route("/api/v4/posts", post(create_post))
            .route("/api/v4/posts/{id}/patch", put(patch))
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeMattermost { url, st }
    }

    pub fn post(&self, id: &str) -> Option<Value> {
        self.st.posts.lock().unwrap().get(id).cloned()
    }

    pub fn calls(&self, call: &str) -> Vec<Value> {
        self.st
            .calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, _)| c == call)
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.st.violations.lock().unwrap().clone()
    }

    /// Waits (bounded, no sleeping) until `pred` holds.
    pub async fn wait_until(&self, what: &str, pred: impl Fn(&FakeMattermost) -> bool) {
        let wait = async {
            loop {
                let notified = self.st.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if pred(self) {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("never: {what} (violations: {:?})", self.violations()));
    }

    /// The body Mattermost's server POSTs to an action's integration URL when `user` presses it.
    pub fn press_body(user: &str, post_id: &str, action: &Value) -> Value {
        json!({
            "user_id": mmid(user), "user_name": user, "channel_id": mmid(&format!("dm{}", mmid(user))),
            "channel_name": "", "team_id": "", "team_domain": "", "post_id": post_id,
            "trigger_id": "trigger", "type": "", "data_source": "",
            "context": action["integration"]["context"],
        })
    }
}
