//! A local Zoho Cliq REST API with Zoho's OAuth token endpoint, enforcing the contract of a
//! Cliq channel's OAuth mode (conversations): `POST /oauth/v2/token?grant_type=refresh_token&…`
//! issues short-lived access tokens (`{access_token, expires_in}`; `{"error":"invalid_code"}`
//! for a wrong client or grant, answered 200 as Zoho does) and counts refreshes; every API call
//! needs `Authorization: Zoho-oauthtoken` with a live token (else 401
//! `{"code":"oauthtoken_invalid"}`). `POST /api/v2/channelsbyname/{name}/message` holds the
//! message contract (`cliq_violations`: text ≤ 5 000, …) plus `sync_message` (→ 200
//! `{message_id}`, else 204), `thread_message_id` (a root of that channel, else 404
//! `{"code":"message_not_found"}`) and `post_in_parent` (only with a thread);
//! `GET /api/v2/channelsbyname/{name}` gives the channel's `chat_id`; `PUT
//! /api/v2/chats/{chat_id}/messages/{message_id}` takes `{text}` alone (`notify_edit` allowed).
//! Scriptable: tokens expired at once, refreshes refused, threads or edits refused, a root
//! deleted, 429 with `Retry-After`. It counts the posts and edits it took per minute.

use super::cliq::cliq_violations;
use super::fake_api::FakeApi;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Json;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The OAuth client's id.
pub const CLIENT_ID: &str = "1000.CLIENTID-SECRET-7731";
/// The OAuth client's secret.
pub const CLIENT_SECRET: &str = "cs-SECRET-client-9911";
/// The refresh token (a user's grant).
pub const REFRESH_TOKEN: &str = "1000.rt-SECRET-refresh-4242";
/// How every access token the fake issues starts.
pub const ACCESS_TOKEN_PREFIX: &str = "1000.at-SECRET-";

/// One message the fake took.
#[derive(Debug, Clone)]
pub struct Message {
    /// Its id (answered to `sync_message`).
    pub id: String,
    /// The channel's unique name.
    pub channel: String,
    /// The body as posted.
    pub body: Value,
    /// Its text now (after edits).
    pub text: String,
    /// `thread_message_id`: the root it replies to.
    pub thread: Option<String>,
    /// `post_in_parent`: also shown in the channel.
    pub in_parent: bool,
    /// `sync_message`.
    pub sync: bool,
    /// Deleted in the chat.
    pub deleted: bool,
    /// The texts it was edited to, in order.
    pub edits: Vec<String>,
}

#[derive(Default)]
struct Inner {
    /// Live access tokens → when they expire.
    tokens: HashMap<String, Instant>,
    refreshes: usize,
    refused_refreshes: usize,
    refuse_refresh: bool,
    token_life: u64,
    messages: Vec<Message>,
    /// Answers 401 to a call with a missing, unknown or expired token.
    unauthorized: usize,
    lookups: usize,
    violations: Vec<String>,
    throttle: usize,
    retry_after: u64,
    throttled: usize,
    threads_refused: HashSet<String>,
    edits_refused: bool,
    /// When each post and edit was taken.
    taken: Vec<Instant>,
    /// Every call to the message API: (method, path, status).
    calls: Vec<(String, String, u16)>,
    next_id: u64,
}

/// A local Cliq REST API with Zoho's token endpoint.
pub struct FakeCliqApi {
    api: FakeApi<Inner>,
}

/// The chat id of channel `name`.
pub fn chat_id(name: &str) -> String {
    format!("CT_2230_{name}")
}

impl FakeCliqApi {
    /// Starts on 127.0.0.1; access tokens live an hour.
    pub async fn start() -> FakeCliqApi {
        let inner = Inner {
            token_life: 3600,
            next_id: 1_700_000_000_000,
            ..Inner::default()
        };
        let api = FakeApi::routed(inner, |r| {
            r.route("/oauth/v2/token", post(token))
                .route("/api/v2/channelsbyname/{name}/message", post(message))
                .route("/api/v2/channelsbyname/{name}", get(channel))
                .route("/api/v2/chats/{chat}/messages/{id}", put(edit))
                .fallback(unexpected)
        })
        .await;
        FakeCliqApi { api }
    }

    /// The accounts host and the Cliq host (one server): `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://{}", self.api.addr())
    }

    /// The message URL of channel `name`.
    pub fn url(&self, name: &str) -> String {
        format!("{}/api/v2/channelsbyname/{name}/message", self.base())
    }

    /// Access tokens issued from now on live `secs` seconds.
    pub fn set_token_life(&self, secs: u64) {
        self.api.state().token_life = secs;
    }

    /// Every access token issued so far expires now (answered 401 from now on).
    pub fn expire_tokens(&self) {
        self.api.state().tokens.clear();
    }

    /// Refuses every refresh from now on (`{"error":"invalid_code"}`).
    pub fn refuse_refresh(&self) {
        self.api.state().refuse_refresh = true;
    }

    /// Refresh tokens traded for access tokens so far.
    pub fn refreshes(&self) -> usize {
        self.api.state().refreshes
    }

    /// Refreshes refused so far.
    pub fn refused_refreshes(&self) -> usize {
        self.api.state().refused_refreshes
    }

    /// Calls answered 401 (no live access token).
    pub fn unauthorized(&self) -> usize {
        self.api.state().unauthorized
    }

    /// `GET /api/v2/channelsbyname/{name}` calls answered.
    pub fn lookups(&self) -> usize {
        self.api.state().lookups
    }

    /// Contract violations seen (answered 400).
    pub fn violations(&self) -> Vec<String> {
        self.api.state().violations.clone()
    }

    /// Every call to the message API: method, path and status.
    pub fn calls(&self) -> Vec<(String, String, u16)> {
        self.api.state().calls.clone()
    }

    /// The messages `channel` took, in order.
    pub fn messages_in(&self, channel: &str) -> Vec<Message> {
        let inner = self.api.state();
        inner
            .messages
            .iter()
            .filter(|m| m.channel == channel)
            .cloned()
            .collect()
    }

    /// Edits taken, over every message.
    pub fn edits(&self) -> usize {
        let inner = self.api.state();
        inner.messages.iter().map(|m| m.edits.len()).sum()
    }

    /// Deletes message `id` in the chat.
    pub fn delete(&self, id: &str) {
        let mut inner = self.api.state();
        for m in inner.messages.iter_mut().filter(|m| m.id == id) {
            m.deleted = true;
        }
    }

    /// `channel`'s reply mode allows no threads: a `thread_message_id` is refused (400).
    pub fn refuse_threads(&self, channel: &str) {
        let mut inner = self.api.state();
        inner.threads_refused.insert(channel.to_string());
    }

    /// Edits are refused (403 `access_denied`, as without the `ZohoCliq.Messages.UPDATE` scope).
    pub fn refuse_edits(&self) {
        self.api.state().edits_refused = true;
    }

    /// The next `n` posts or edits are answered 429 with `Retry-After: secs`.
    pub fn throttle(&self, n: usize, secs: u64) {
        let mut inner = self.api.state();
        inner.throttle = n;
        inner.retry_after = secs;
    }

    /// Most posts and edits taken within any 60 s.
    pub fn max_per_minute(&self) -> usize {
        let inner = self.api.state();
        let t = &inner.taken;
        (0..t.len())
            .map(|i| {
                t[i..]
                    .iter()
                    .take_while(|x| x.duration_since(t[i]) < Duration::from_secs(60))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    /// Posts and edits taken so far.
    pub fn taken(&self) -> usize {
        self.api.state().taken.len()
    }
}

fn cliq_error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, Json(json!({ "code": code, "message": message }))).into_response()
}

async fn unexpected(State(s): State<Arc<Mutex<Inner>>>, uri: axum::http::Uri) -> Response {
    let mut inner = s.lock().unwrap();
    inner
        .violations
        .push(format!("404 unexpected {}", uri.path()));
    cliq_error(StatusCode::NOT_FOUND, "url_not_found", "no such endpoint")
}

/// Zoho's token endpoint: the refresh-token grant, its parameters in the query.
async fn token(State(s): State<Arc<Mutex<Inner>>>, RawQuery(query): RawQuery) -> Response {
    let mut inner = s.lock().unwrap();
    let q: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |k: &str| q.get(k).map(String::as_str);
    if param("grant_type") != Some("refresh_token") {
        inner.violations.push("400 token: grant_type".into());
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "unsupported_grant_type"})),
        )
            .into_response();
    }
    let right = param("client_id") == Some(CLIENT_ID)
        && param("client_secret") == Some(CLIENT_SECRET)
        && param("refresh_token") == Some(REFRESH_TOKEN);
    if !right || inner.refuse_refresh {
        inner.refused_refreshes += 1;
        // Zoho answers a refused grant with 200.
        return Json(json!({"error": "invalid_code"})).into_response();
    }
    inner.refreshes += 1;
    let n = inner.refreshes;
    let value = format!("{ACCESS_TOKEN_PREFIX}{n:04}-{}", inner.next_id);
    let life = inner.token_life;
    inner
        .tokens
        .insert(value.clone(), Instant::now() + Duration::from_secs(life));
    Json(json!({
        "access_token": value,
        "api_domain": "https://www.zohoapis.com",
        "token_type": "Bearer",
        "expires_in": life,
    }))
    .into_response()
}

/// Checks the access token; `Some` is the 401 to answer.
fn refuse_token(inner: &mut Inner, headers: &HeaderMap) -> Option<Response> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let live = auth
        .strip_prefix("Zoho-oauthtoken ")
        .and_then(|t| inner.tokens.get(t))
        .is_some_and(|until| Instant::now() < *until);
    if live {
        return None;
    }
    inner.unauthorized += 1;
    Some(cliq_error(
        StatusCode::UNAUTHORIZED,
        "oauthtoken_invalid",
        "Invalid OAuth access token.",
    ))
}

/// A 429 when throttling.
fn throttled(inner: &mut Inner) -> Option<Response> {
    if inner.throttle == 0 {
        return None;
    }
    inner.throttle -= 1;
    inner.throttled += 1;
    let mut r = cliq_error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "Too many requests within a certain time frame.",
    );
    r.headers_mut()
        .insert("retry-after", HeaderValue::from(inner.retry_after));
    Some(r)
}

/// A JSON object body, checked for its content type.
fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<serde_json::Map<String, Value>, String> {
    let ct = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.to_ascii_lowercase().starts_with("application/json") {
        return Err(format!("content-type is {ct:?}"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(o)) => Ok(o),
        _ => Err("the body is not a JSON object".into()),
    }
}

async fn message(
    State(s): State<Arc<Mutex<Inner>>>,
    UrlPath(channel): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = s.lock().unwrap();
    let r = post_message(&mut inner, &channel, &headers, &body);
    let status = r.status().as_u16();
    inner
        .calls
        .push(("POST".into(), format!("channelsbyname/{channel}"), status));
    r
}

/// What a message call passes first: the token, the scripted throttle, then a JSON object body
/// (refused 400, recorded as a violation of `what`).
fn admit(
    inner: &mut Inner,
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<serde_json::Map<String, Value>, Box<Response>> {
    if let Some(r) = refuse_token(inner, headers) {
        return Err(Box::new(r));
    }
    if let Some(r) = throttled(inner) {
        return Err(Box::new(r));
    }
    json_body(headers, body).map_err(|why| {
        inner.violations.push(format!("400 {what}: {why}"));
        Box::new(cliq_error(StatusCode::BAD_REQUEST, "invalid_body", &why))
    })
}

fn post_message(inner: &mut Inner, channel: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let o = match admit(inner, headers, body, channel) {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let msg = Value::Object(o.clone());
    let mut wrong = cliq_violations(&msg);
    let sync = match o.get("sync_message") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            wrong.push(format!("sync_message {other} is not a boolean"));
            false
        }
    };
    let thread = match o.get("thread_message_id") {
        None => None,
        Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
        Some(other) => {
            wrong.push(format!("thread_message_id {other} is not a message id"));
            None
        }
    };
    let in_parent = match o.get("post_in_parent") {
        None => false,
        Some(Value::Bool(b)) if thread.is_some() => *b,
        Some(other) => {
            wrong.push(format!(
                "post_in_parent {other}: a boolean, with thread_message_id"
            ));
            false
        }
    };
    if !wrong.is_empty() {
        let what = wrong.join("; ");
        inner.violations.push(format!("400 {channel}: {what}"));
        return cliq_error(StatusCode::BAD_REQUEST, "invalid_body", &what);
    }
    if let Some(t) = &thread {
        if inner.threads_refused.contains(channel) {
            return cliq_error(
                StatusCode::BAD_REQUEST,
                "operation_not_allowed",
                "thread_message_id: threads are not allowed in this channel's reply mode.",
            );
        }
        let root_ok = inner
            .messages
            .iter()
            .any(|m| &m.id == t && m.channel == channel && !m.deleted && m.thread.is_none());
        if !root_ok {
            return cliq_error(
                StatusCode::NOT_FOUND,
                "message_not_found",
                "Requested message could not be found.",
            );
        }
    }
    inner.next_id += 1;
    let id = format!("{}_{}", inner.next_id, 51_531_973_059u64);
    inner.messages.push(Message {
        id: id.clone(),
        channel: channel.to_string(),
        text: o["text"].as_str().unwrap_or_default().to_string(),
        body: msg,
        thread,
        in_parent,
        sync,
        deleted: false,
        edits: Vec::new(),
    });
    inner.taken.push(Instant::now());
    if sync {
        Json(json!({ "message_id": id })).into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

async fn channel(
    State(s): State<Arc<Mutex<Inner>>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let mut inner = s.lock().unwrap();
    if let Some(r) = refuse_token(&mut inner, &headers) {
        return r;
    }
    inner.lookups += 1;
    inner
        .calls
        .push(("GET".into(), format!("channelsbyname/{name}"), 200));
    Json(json!({
        "name": format!("#{name}"),
        "unique_name": name,
        "channel_id": format!("O2230_{name}"),
        "chat_id": chat_id(&name),
        "level": "organization",
    }))
    .into_response()
}

async fn edit(
    State(s): State<Arc<Mutex<Inner>>>,
    UrlPath((chat, id)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = s.lock().unwrap();
    let r = edit_message(&mut inner, &chat, &id, &headers, &body);
    let status = r.status().as_u16();
    inner
        .calls
        .push(("PUT".into(), format!("chats/{chat}/messages/{id}"), status));
    r
}

fn edit_message(
    inner: &mut Inner,
    chat: &str,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let o = match admit(inner, headers, body, "edit") {
        Ok(o) => o,
        Err(r) => return *r,
    };
    let text = o.get("text").and_then(Value::as_str).unwrap_or_default();
    let n = text.chars().count();
    let extra: Vec<&String> = o
        .keys()
        .filter(|k| !matches!(k.as_str(), "text" | "notify_edit"))
        .collect();
    if !(1..=5000).contains(&n) || !extra.is_empty() {
        let what = format!("an edit takes text (1–5000 characters, got {n}) alone, not {extra:?}");
        inner.violations.push(format!("400 edit: {what}"));
        return cliq_error(StatusCode::BAD_REQUEST, "invalid_body", &what);
    }
    let Some(i) = inner
        .messages
        .iter()
        .position(|m| m.id == id && chat_id(&m.channel) == chat && !m.deleted)
    else {
        return cliq_error(
            StatusCode::NOT_FOUND,
            "message_not_found",
            "Requested message could not be found.",
        );
    };
    if inner.edits_refused {
        return cliq_error(
            StatusCode::FORBIDDEN,
            "access_denied",
            "You do not have permission to edit this message.",
        );
    }
    let m = &mut inner.messages[i];
    m.text = text.to_string();
    m.edits.push(text.to_string());
    inner.taken.push(Instant::now());
    StatusCode::NO_CONTENT.into_response()
}
