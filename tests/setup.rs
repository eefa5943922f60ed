//! `setup` (and the GitLab part of `check`) driven through the real binary against a fake GitLab
//! on loopback, shaped on GitLab's documented API: keyset `Link` pagination over more than 100
//! projects, a one-time 429 with `Retry-After: 1`, a 403 on one project, a project with our hook
//! but stale events, one with a duplicate of our hook, one with an unrelated hook, an archived
//! project and one where the user is only Developer. The fake records every request.
//!
//! A second part runs setup against Prism serving GitLab's own OpenAPI document
//! (`specs/gitlab/hooks-openapi.yaml`, vendored), so the requests we send are checked against
//! GitLab's schema. It needs `scripts/install-prism.sh` to have run (`GCB_SKIP_PRISM=1` skips it).

use crate::support::cli::{self, CliOutput};
use crate::support::prism::{self, Prism};
use crate::support::temp::TempDir;
use crate::support::turn;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The token the fake GitLab accepts.
pub(crate) const TOKEN: &str = "glpat-test-token-123";
const SECRET: &str = "s3cret-hook-token";
pub(crate) const HOOK_URL: &str = "https://bridge.example.com/hooks/gitlab";
/// Projects 1..=MEMBER_PROJECTS are Maintainer projects (more than one page of 100).
const MEMBER_PROJECTS: u64 = 130;
const ARCHIVED: u64 = 131;
const DEVELOPER_ONLY: u64 = 132;
const STALE: u64 = 2;
const DUPLICATED: u64 = 3;
const UNRELATED: u64 = 4;
const FORBIDDEN: u64 = 5;
const TRAILING_SLASH: u64 = 6;
pub(crate) const DEFAULT_EVENTS: [&str; 8] = [
    "push_events",
    "tag_push_events",
    "issues_events",
    "confidential_issues_events",
    "merge_requests_events",
    "note_events",
    "confidential_note_events",
    "pipeline_events",
];
const OTHER_EVENTS: [&str; 4] = [
    "job_events",
    "releases_events",
    "wiki_page_events",
    "deployment_events",
];

// ---------------------------------------------------------------------------------------------
// The fake GitLab
// ---------------------------------------------------------------------------------------------

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    /// Path and query, as sent (still percent-encoded).
    target: String,
    body: Option<Value>,
    private_token: Option<String>,
    status: u16,
}

#[derive(Debug, Clone)]
struct FakeProject {
    id: u64,
    path: String,
    archived: bool,
    access_level: u32,
    forbidden: bool,
    hooks: Vec<Value>,
}

#[derive(Debug)]
struct State {
    base: String,
    projects: BTreeMap<u64, FakeProject>,
    /// Tokens the fake stored per hook ID (GitLab never shows them).
    hook_tokens: BTreeMap<u64, Option<String>>,
    next_hook_id: u64,
    throttle_pending: bool,
    /// The first listing of project 10's hooks answers 502.
    bad_gateway_pending: bool,
    requests: Vec<Recorded>,
    /// Each hook's delivery log, newest first (`GET …/hooks/:id/events`, two entries a page).
    logs: BTreeMap<u64, Vec<Value>>,
    /// Resend calls answered 200, as (hook id, log entry id).
    resent: Vec<(u64, u64)>,
    /// The first resend call answers 429 with `Retry-After: 1`.
    resend_throttle_pending: bool,
    /// Test calls answered, as (hook id, trigger); each re-enables its hook.
    tested: Vec<(u64, String)>,
    /// Compare answers by `from..to`: how many commits (`None`: 404).
    compare: BTreeMap<String, Option<usize>>,
    /// A compare call with this `from` is answered only after 3 s.
    slow_compare: Option<String>,
}

pub(crate) struct FakeGitlab {
    pub(crate) base: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub(crate) fn hook_json(id: u64, project_id: u64, url: &str, on: &[&str]) -> Value {
    let mut h = json!({
        "id": id,
        "url": url,
        "name": "",
        "description": "",
        "project_id": project_id,
        "created_at": "2026-01-02T03:04:05.000Z",
        "push_events_branch_filter": null,
        "branch_filter_strategy": "wildcard",
        "enable_ssl_verification": true,
        "alert_status": "executable",
        "disabled_until": null,
        "repository_update_events": false,
        "emoji_events": false,
        "feature_flag_events": false,
    });
    for f in DEFAULT_EVENTS.iter().chain(&OTHER_EVENTS) {
        h[*f] = json!(on.contains(f));
    }
    h
}

impl FakeGitlab {
    pub(crate) fn start(with_forbidden: bool) -> FakeGitlab {
        let mut projects = BTreeMap::new();
        let mut add = |id: u64, path: String, archived: bool, access_level: u32| {
            projects.insert(
                id,
                FakeProject {
                    id,
                    path,
                    archived,
                    access_level,
                    forbidden: false,
                    hooks: Vec::new(),
                },
            );
        };
        for id in 1..=MEMBER_PROJECTS {
            let path = if id == 7 || id == 8 {
                format!("acme/sub/lib-{id}")
            } else {
                format!("acme/app-{id}")
            };
            add(id, path, false, 40);
        }
        add(ARCHIVED, "acme/archived-app".into(), true, 40);
        add(DEVELOPER_ONLY, "other/guest-app".into(), false, 30);
        let p = projects.get_mut(&STALE).unwrap();
        p.hooks.push(hook_json(
            1001,
            STALE,
            HOOK_URL,
            &["push_events", "job_events"],
        ));
        let p = projects.get_mut(&DUPLICATED).unwrap();
        p.hooks
            .push(hook_json(1002, DUPLICATED, HOOK_URL, &DEFAULT_EVENTS));
        p.hooks.push(hook_json(
            1003,
            DUPLICATED,
            &format!("{HOOK_URL}/"),
            &DEFAULT_EVENTS,
        ));
        let p = projects.get_mut(&UNRELATED).unwrap();
        p.hooks.push(hook_json(
            1004,
            UNRELATED,
            "https://ci.example.com/hook",
            &["push_events"],
        ));
        let p = projects.get_mut(&TRAILING_SLASH).unwrap();
        p.hooks.push(hook_json(
            1006,
            TRAILING_SLASH,
            &format!("{HOOK_URL}/"),
            &DEFAULT_EVENTS,
        ));
        projects.get_mut(&FORBIDDEN).unwrap().forbidden = with_forbidden;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = Arc::new(Mutex::new(State {
            base: base.clone(),
            projects,
            hook_tokens: BTreeMap::new(),
            next_hook_id: 5000,
            throttle_pending: true,
            bad_gateway_pending: true,
            requests: Vec::new(),
            logs: BTreeMap::new(),
            resent: Vec::new(),
            resend_throttle_pending: true,
            tested: Vec::new(),
            compare: BTreeMap::new(),
            slow_compare: None,
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shared = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let state = shared.clone();
                        async move {
                            let slow = state.lock().unwrap().slow_compare.clone();
                            let query = uri.query().unwrap_or_default();
                            if slow.is_some_and(|s| query.contains(&format!("from={s}"))) {
                                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                            }
                            handle(&state, &method, &uri, &headers, &body)
                        }
                    },
                );
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        FakeGitlab {
            base,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    fn hooks(&self, project: u64) -> Vec<Value> {
        self.state.lock().unwrap().projects[&project].hooks.clone()
    }

    /// Adds `hook` to `project`.
    pub(crate) fn add_hook(&self, project: u64, hook: Value) {
        let mut st = self.state.lock().unwrap();
        st.projects.get_mut(&project).unwrap().hooks.push(hook);
    }

    /// Sets the `alert_status` of hook `hook` of `project`.
    fn set_alert_status(&self, project: u64, hook: u64, status: &str) {
        let mut st = self.state.lock().unwrap();
        let hooks = &mut st.projects.get_mut(&project).unwrap().hooks;
        let h = hooks.iter_mut().find(|h| h["id"] == hook).unwrap();
        h["alert_status"] = json!(status);
    }

    /// Logs a delivery of `hook` as the newest entry.
    pub(crate) fn log(&self, hook: u64, entry: Value) {
        let mut st = self.state.lock().unwrap();
        st.logs.entry(hook).or_default().insert(0, entry);
    }

    pub(crate) fn resent(&self) -> Vec<(u64, u64)> {
        self.state.lock().unwrap().resent.clone()
    }

    fn tested(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().tested.clone()
    }

    /// The log entry `id` of `hook`.
    fn log_entry(&self, hook: u64, id: u64) -> Value {
        let st = self.state.lock().unwrap();
        st.logs[&hook]
            .iter()
            .find(|e| e["id"] == id)
            .cloned()
            .unwrap()
    }
}

/// A delivery-log entry shaped as GitLab documents it. `key`: the `Idempotency-Key` (no
/// request headers logged when `None`); `body`: the request body (`{}` logged when `None`).
pub(crate) fn log_json(
    id: u64,
    status: &str,
    event: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Value {
    let headers = match key {
        Some(k) => json!({
            "Content-Type": "application/json",
            "User-Agent": "GitLab/17.4.0",
            "Idempotency-Key": k,
            "X-Gitlab-Event": event,
            "X-Gitlab-Webhook-UUID": format!("uuid-{k}"),
            "X-Gitlab-Instance": "https://gitlab.example.com",
            "X-Gitlab-Event-UUID": format!("event-uuid-{k}"),
            "X-Gitlab-Token": "[REDACTED]",
        }),
        None => json!({}),
    };
    json!({
        "id": id,
        "url": HOOK_URL,
        "trigger": "issue_hooks",
        "request_headers": headers,
        "request_data": body.cloned().unwrap_or_else(|| json!({})),
        "response_headers": {},
        "response_body": "",
        "execution_duration": 0.01,
        "response_status": status,
    })
}

impl Drop for FakeGitlab {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn decode(segment: &str) -> String {
    url::form_urlencoded::parse(format!("x={segment}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({ "message": text }))).into_response()
}

fn handle(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let mut st = state.lock().unwrap();
    let private_token = headers
        .get("private-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body_json: Option<Value> = if body.is_empty() {
        None
    } else {
        serde_json::from_slice(body).ok()
    };
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let resp = route(
        &mut st,
        method,
        uri.path(),
        &query,
        private_token.as_deref(),
        body_json.as_ref(),
    );
    st.requests.push(Recorded {
        method: method.to_string(),
        target: uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        body: body_json,
        private_token,
        status: resp.status().as_u16(),
    });
    resp
}

fn project_json(p: &FakeProject) -> Value {
    json!({
        "id": p.id,
        "name": p.path.rsplit('/').next(),
        "path": p.path.rsplit('/').next(),
        "path_with_namespace": p.path,
        "name_with_namespace": p.path.replace('/', " / "),
        "web_url": format!("https://gitlab.example.com/{}", p.path),
        "archived": p.archived,
    })
}

/// A project list with keyset (`pagination=keyset&order_by=id`) or offset pagination, and a
/// `Link` header to the next page as GitLab sends it.
fn list_projects(
    st: &mut State,
    path: &str,
    query: &BTreeMap<String, String>,
    mut rows: Vec<FakeProject>,
) -> Response {
    let q = |k: &str| query.get(k).map(String::as_str);
    if q("archived") == Some("false") {
        rows.retain(|p| !p.archived);
    }
    if let Some(level) = q("min_access_level").and_then(|l| l.parse::<u32>().ok()) {
        rows.retain(|p| p.access_level >= level);
    }
    let per_page = q("per_page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let keyset = q("pagination") == Some("keyset");
    if keyset && q("order_by") != Some("id") {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            axum::Json(
                json!({"error": "Keyset pagination is not yet available for this type of request"}),
            ),
        )
            .into_response();
    }
    if q("sort") == Some("desc") {
        rows.reverse();
    }
    let (page, next): (Vec<FakeProject>, Option<(String, String)>) = if keyset {
        let after: u64 = q("id_after").and_then(|n| n.parse().ok()).unwrap_or(0);
        let rest: Vec<FakeProject> = rows.into_iter().filter(|p| p.id > after).collect();
        let page: Vec<FakeProject> = rest.iter().take(per_page).cloned().collect();
        let next = (rest.len() > per_page)
            .then(|| {
                page.last()
                    .map(|p| ("id_after".to_string(), p.id.to_string()))
            })
            .flatten();
        (page, next)
    } else {
        let n: usize = q("page").and_then(|n| n.parse().ok()).unwrap_or(1).max(1);
        let page: Vec<FakeProject> = rows
            .iter()
            .skip((n - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        let next = (rows.len() > n * per_page).then(|| ("page".to_string(), (n + 1).to_string()));
        (page, next)
    };
    let body: Vec<Value> = page.iter().map(project_json).collect();
    let mut resp = axum::Json(body).into_response();
    if let Some((k, v)) = next {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(key, _)| key.as_str() != k)
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        pairs.push((k, v));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let link = format!("<{}{path}?{qs}>; rel=\"next\"", st.base);
        resp.headers_mut()
            .insert("link", HeaderValue::from_str(&link).unwrap());
    }
    resp
}

fn find_project<'a>(st: &'a mut State, id: &str) -> Option<&'a mut FakeProject> {
    let id = decode(id);
    st.projects
        .values_mut()
        .find(|p| p.id.to_string() == id || p.path == id)
}

fn route(
    st: &mut State,
    method: &Method,
    path: &str,
    query: &BTreeMap<String, String>,
    token: Option<&str>,
    body: Option<&Value>,
) -> Response {
    if token != Some(TOKEN) {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    let Some(rest) = path.strip_prefix("/api/v4/") else {
        return message(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let seg: Vec<&str> = rest.split('/').collect();
    // The one-time throttle: the first request for the second page of projects.
    if query.contains_key("id_after") && st.throttle_pending {
        st.throttle_pending = false;
        let mut resp = message(StatusCode::TOO_MANY_REQUESTS, "Retry later");
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        resp.headers_mut()
            .insert("ratelimit-reset", HeaderValue::from_static("1"));
        return resp;
    }
    match (method.as_str(), seg.as_slice()) {
        ("GET", ["user"]) => {
            axum::Json(json!({"id": 77, "username": "bridge-bot", "name": "Bridge Bot"}))
                .into_response()
        }
        ("GET", ["projects"]) => {
            let membership = query.get("membership").map(String::as_str) == Some("true");
            let rows: Vec<FakeProject> = st
                .projects
                .values()
                .filter(|p| !membership || p.access_level >= 10)
                .cloned()
                .collect();
            list_projects(st, path, query, rows)
        }
        ("GET", ["groups", group, "projects"]) => {
            let group = decode(group);
            // Like a GitLab without keyset pagination for this listing.
            if group == "acme" && query.contains_key("pagination") {
                return (
                    StatusCode::METHOD_NOT_ALLOWED,
                    axum::Json(json!({"error": "Keyset pagination is not yet available for this type of request"})),
                )
                    .into_response();
            }
            let subgroups = query.get("include_subgroups").map(String::as_str) == Some("true");
            let known = st
                .projects
                .values()
                .any(|p| p.path.starts_with(&format!("{group}/")));
            if !known {
                return message(StatusCode::NOT_FOUND, "404 Group Not Found");
            }
            let rows: Vec<FakeProject> = st
                .projects
                .values()
                .filter(|p| match p.path.strip_prefix(&format!("{group}/")) {
                    Some(rest) => subgroups || !rest.contains('/'),
                    None => false,
                })
                .cloned()
                .collect();
            list_projects(st, path, query, rows)
        }
        ("GET", ["projects", _, "repository", "compare"]) => {
            let key = format!(
                "{}..{}",
                query.get("from").map(String::as_str).unwrap_or(""),
                query.get("to").map(String::as_str).unwrap_or("")
            );
            match st.compare.get(&key) {
                Some(Some(n)) => {
                    let commits: Vec<Value> = (0..*n)
                        .map(|i| json!({"id": format!("{i:040}"), "title": "gone"}))
                        .collect();
                    axum::Json(json!({"commit": null, "commits": commits, "diffs": [],
                        "compare_timeout": false, "compare_same_ref": false}))
                    .into_response()
                }
                _ => message(StatusCode::NOT_FOUND, "404 Not found"),
            }
        }
        ("GET", ["projects", id]) => match find_project(st, id) {
            Some(p) => axum::Json(project_json(p)).into_response(),
            None => message(StatusCode::NOT_FOUND, "404 Project Not Found"),
        },
        (_, ["projects", id, "hooks", ..]) => {
            let Some(p) = find_project(st, id) else {
                return message(StatusCode::NOT_FOUND, "404 Project Not Found");
            };
            if p.forbidden {
                return message(StatusCode::FORBIDDEN, "403 Forbidden");
            }
            let project_id = p.id;
            if project_id == 10 && method == Method::GET && st.bad_gateway_pending {
                st.bad_gateway_pending = false;
                return (StatusCode::BAD_GATEWAY, "<html>502 Bad Gateway</html>").into_response();
            }
            hooks_route(st, method, project_id, &seg[3..], query, body)
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

fn hooks_route(
    st: &mut State,
    method: &Method,
    project_id: u64,
    rest: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> Response {
    match (method.as_str(), rest) {
        ("GET", [hook_id, "events"]) => {
            let Ok(hook_id) = hook_id.parse::<u64>() else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            // Two entries a page, whatever was asked, so the client follows several pages.
            let n: usize = query
                .get("page")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
                .max(1);
            let log = st.logs.get(&hook_id).cloned().unwrap_or_default();
            let page: Vec<Value> = log.iter().skip((n - 1) * 2).take(2).cloned().collect();
            let mut resp = axum::Json(page).into_response();
            if log.len() > n * 2 {
                let link = format!(
                    "<{}/api/v4/projects/{project_id}/hooks/{hook_id}/events?page={}&per_page=2>; rel=\"next\"",
                    st.base,
                    n + 1
                );
                resp.headers_mut()
                    .insert("link", HeaderValue::from_str(&link).unwrap());
            }
            resp
        }
        ("POST", [hook_id, "events", event_id, "resend"]) => {
            if st.resend_throttle_pending {
                st.resend_throttle_pending = false;
                let mut resp = message(StatusCode::TOO_MANY_REQUESTS, "Retry later");
                resp.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("1"));
                return resp;
            }
            let (Ok(hook_id), Ok(event_id)) = (hook_id.parse::<u64>(), event_id.parse::<u64>())
            else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            st.resent.push((hook_id, event_id));
            axum::Json(json!({"response_status": 200})).into_response()
        }
        ("POST", [hook_id, "test", trigger]) => {
            let Ok(hook_id) = hook_id.parse::<u64>() else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            st.tested.push((hook_id, trigger.to_string()));
            let hooks = &mut st.projects.get_mut(&project_id).unwrap().hooks;
            if let Some(h) = hooks.iter_mut().find(|h| h["id"] == hook_id) {
                h["alert_status"] = json!("executable");
                h["disabled_until"] = Value::Null;
            }
            (
                StatusCode::CREATED,
                axum::Json(json!({"message": "201 Created"})),
            )
                .into_response()
        }
        ("GET", []) => {
            let per_page = query
                .get("per_page")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(20);
            let hooks = &st.projects[&project_id].hooks;
            axum::Json(hooks.iter().take(per_page).cloned().collect::<Vec<_>>()).into_response()
        }
        ("POST", []) => {
            let Some(body) = body else {
                return message(StatusCode::BAD_REQUEST, "400 Bad request - url is missing");
            };
            let url = body["url"].as_str().unwrap_or("");
            if url.is_empty() {
                return message(StatusCode::BAD_REQUEST, "400 Bad request - url is missing");
            }
            if url.contains("localhost") || url.contains("127.0.0.1") {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(json!({"message": {"url": ["is blocked: Requests to localhost are not allowed"]}})),
                )
                    .into_response();
            }
            let id = st.next_hook_id;
            st.next_hook_id += 1;
            let mut hook = hook_json(id, project_id, url, &["push_events"]);
            merge_hook_fields(&mut hook, body);
            st.hook_tokens
                .insert(id, body["token"].as_str().map(str::to_string));
            st.projects
                .get_mut(&project_id)
                .unwrap()
                .hooks
                .push(hook.clone());
            (StatusCode::CREATED, axum::Json(hook)).into_response()
        }
        ("PUT", [hook_id]) => {
            let Ok(hook_id) = hook_id.parse::<u64>() else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            let body = body.cloned().unwrap_or(json!({}));
            let hooks = &mut st.projects.get_mut(&project_id).unwrap().hooks;
            let Some(hook) = hooks.iter_mut().find(|h| h["id"] == hook_id) else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            // GitLab drops the secret token when the URL changes and none is given.
            let url_changed = body["url"].as_str().is_some_and(|u| u != hook["url"]);
            merge_hook_fields(hook, &body);
            let hook = hook.clone();
            match body["token"].as_str() {
                Some(t) => {
                    st.hook_tokens.insert(hook_id, Some(t.to_string()));
                }
                None if url_changed => {
                    st.hook_tokens.insert(hook_id, None);
                }
                None => {}
            }
            axum::Json(hook).into_response()
        }
        ("DELETE", [hook_id]) => {
            let Ok(hook_id) = hook_id.parse::<u64>() else {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            };
            let hooks = &mut st.projects.get_mut(&project_id).unwrap().hooks;
            let before = hooks.len();
            hooks.retain(|h| h["id"] != hook_id);
            if hooks.len() == before {
                return message(StatusCode::NOT_FOUND, "404 Not found");
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

/// Copies the documented hook attributes of a POST/PUT body onto the stored hook.
fn merge_hook_fields(hook: &mut Value, body: &Value) {
    let Some(fields) = body.as_object() else {
        return;
    };
    for (k, v) in fields {
        let known = k == "url"
            || k == "name"
            || k == "description"
            || k == "push_events_branch_filter"
            || k == "enable_ssl_verification"
            || k.ends_with("_events");
        if known {
            hook[k] = v.clone();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Driving the binary
// ---------------------------------------------------------------------------------------------

fn write_config(dir: &TempDir, gitlab_url: &str, token: &str, hook_url: &str) -> PathBuf {
    dir.write("gitlab-token", &format!("{token}\n"));
    dir.write(
        "config.toml",
        &format!(
            r#"[server]
secret_token = "{SECRET}"

[[channels]]
name = "dev"
url = "https://cliq.zoho.com/api/v2/channelsbyname/dev/message"
zapikey = "zk-test"

[gitlab]
url = "{gitlab_url}"
token_file = "gitlab-token"
hook_url = "{hook_url}"
"#
        ),
    )
}

/// `setup --config CONFIG ARGS…`; fails if a secret shows in its output.
fn run(config: &Path, args: &[&str]) -> CliOutput {
    let mut all = vec![
        OsStr::new("setup"),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    let r = cli::run(all);
    for secret in [TOKEN, SECRET] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "a secret leaked:\n{}\n{}",
            r.stdout,
            r.stderr
        );
    }
    r
}

/// The plan-table row of `project` with `action`, if any (columns are padded with spaces).
fn row<'a>(out: &'a str, project: &str, action: &str) -> Option<&'a str> {
    out.lines().find(|l| {
        let mut cols = l.split_whitespace();
        cols.next() == Some(project) && cols.next() == Some(action)
    })
}

/// Asserts a plan-table row of `project` with `action` whose reason contains `reason_part`.
fn assert_row(out: &str, project: &str, action: &str, reason_part: &str) {
    let found = out.lines().any(|l| {
        let mut cols = l.split_whitespace();
        cols.next() == Some(project) && cols.next() == Some(action) && l.contains(reason_part)
    });
    assert!(
        found,
        "no row {project} {action} …{reason_part}… in:\n{out}"
    );
}

fn flag(v: &Value, field: &str) -> bool {
    v[field].as_bool().unwrap_or(false)
}

// ---------------------------------------------------------------------------------------------
// Tests against the fake
// ---------------------------------------------------------------------------------------------

#[test]
fn member_projects_are_reconciled_and_a_second_run_changes_nothing() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(true);
    let dir = TempDir::new("setup-member");
    let cfg = write_config(&dir, &gl.base, TOKEN, HOOK_URL);

    let first = run(&cfg, &["--all-member-projects"]);
    let out = &first.stdout;
    assert_eq!(
        first.code,
        Some(1),
        "the 403 project fails the run:\n{out}\n{}",
        first.stderr
    );
    assert!(
        out.lines().next().unwrap_or("").starts_with("PROJECT"),
        "{out}"
    );
    assert_row(out, "acme/app-1", "create", "no hook");
    assert_row(out, "acme/app-130", "create", "no hook");
    assert_row(out, "acme/app-2", "update", "hook #1001: events +tag_push");
    assert_row(out, "acme/app-2", "update", "-job");
    assert_row(out, "acme/app-3", "unchanged", "hook #1002 is up to date");
    assert_row(
        out,
        "acme/app-3",
        "skip",
        "hook #1003 duplicates hook #1002; pass --yes",
    );
    assert_row(out, "acme/app-4", "create", "no hook");
    assert_row(out, "acme/app-5", "error", "403 forbidden");
    assert_row(out, "acme/app-5", "error", "Maintainer");
    assert_row(out, "acme/app-6", "unchanged", "hook #1006");
    assert!(
        !out.contains("archived-app") && !out.contains("guest-app"),
        "{out}"
    );
    assert!(
        out.contains(
            "summary: 126 created, 1 updated, 0 deleted, 2 unchanged, 1 skipped, 1 failed (130 project(s))"
        ),
        "{out}"
    );
    assert!(
        out.contains("failures:") && out.contains("project acme/app-5"),
        "{out}"
    );
    // Plain progress lines, as stdout is not a terminal.
    assert!(out.contains("] acme/app-1: created hook #"), "{out}");
    // A project whose hooks cannot be read gets no progress line: its row says why.
    assert!(!out.contains("] acme/app-5:"), "{out}");

    let reqs = gl.requests();
    assert!(reqs
        .iter()
        .all(|r| r.private_token.as_deref() == Some(TOKEN)));
    let listings: Vec<&Recorded> = reqs
        .iter()
        .filter(|r| r.target.starts_with("/api/v4/projects?"))
        .collect();
    assert_eq!(
        listings.len(),
        3,
        "page 1, page 2 throttled, page 2: {listings:?}"
    );
    for part in [
        "membership=true",
        "min_access_level=40",
        "archived=false",
        "pagination=keyset",
        "order_by=id",
        "sort=asc",
        "per_page=100",
    ] {
        assert!(listings[0].target.contains(part), "{}", listings[0].target);
    }
    assert_eq!(listings[1].status, 429);
    assert!(listings[1].target.contains("id_after=100"));
    assert_eq!(listings[2].status, 200);
    assert_eq!(listings[2].target, listings[1].target);

    let p10: Vec<u16> = reqs
        .iter()
        .filter(|r| r.target.starts_with("/api/v4/projects/10/hooks?"))
        .map(|r| r.status)
        .collect();
    assert_eq!(p10, [502, 200], "a 5xx is retried");
    let posts: Vec<&Recorded> = reqs.iter().filter(|r| r.method == "POST").collect();
    assert_eq!(posts.len(), 126);
    for p in &posts {
        let b = p.body.as_ref().unwrap();
        assert_eq!(b["url"], HOOK_URL);
        assert_eq!(b["token"], SECRET);
        assert!(DEFAULT_EVENTS.iter().all(|f| flag(b, f)), "{b}");
        assert!(OTHER_EVENTS.iter().all(|f| !flag(b, f)), "{b}");
        assert_eq!(b["enable_ssl_verification"], true);
    }
    let puts: Vec<&Recorded> = reqs.iter().filter(|r| r.method == "PUT").collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].target, "/api/v4/projects/2/hooks/1001");
    assert_eq!(puts[0].body.as_ref().unwrap()["token"], SECRET);
    assert!(reqs.iter().all(|r| r.method != "DELETE"));
    assert!(!reqs
        .iter()
        .any(|r| r.target.contains("/projects/131/") || r.target.contains("/projects/132/")));
    let stale = &gl.hooks(STALE)[0];
    assert!(flag(stale, "pipeline_events") && !flag(stale, "job_events"));
    let unrelated = gl.hooks(UNRELATED);
    assert_eq!(
        unrelated.len(),
        2,
        "the unrelated hook stays, ours is added"
    );
    assert_eq!(unrelated[0]["url"], "https://ci.example.com/hook");
    {
        let st = gl.state.lock().unwrap();
        let tokens: Vec<&Option<String>> = st.hook_tokens.values().collect();
        assert!(tokens.iter().all(|t| t.as_deref() == Some(SECRET)));
    }

    // Second run: idempotent.
    gl.clear_requests();
    let second = run(&cfg, &["--all-member-projects"]);
    assert_eq!(second.code, Some(1), "{}", second.stdout);
    assert!(gl.writes().is_empty(), "{:?}", gl.writes());
    assert!(row(&second.stdout, "acme/app-1", "create").is_none());
    assert_row(&second.stdout, "acme/app-1", "unchanged", "up to date");
    assert_row(&second.stdout, "acme/app-2", "unchanged", "up to date");
    assert!(
        second.stdout.contains(
            "summary: 0 created, 0 updated, 0 deleted, 129 unchanged, 1 skipped, 1 failed"
        ),
        "{}",
        second.stdout
    );

    // With --yes the duplicate goes, and nothing else.
    gl.clear_requests();
    let third = run(&cfg, &["--all-member-projects", "--yes"]);
    assert_eq!(third.code, Some(1));
    assert_row(
        &third.stdout,
        "acme/app-3",
        "delete",
        "hook #1003 duplicates hook #1002",
    );
    let writes = gl.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].method, "DELETE");
    assert_eq!(writes[0].target, "/api/v4/projects/3/hooks/1003");
    assert_eq!(gl.hooks(DUPLICATED).len(), 1);
}

#[test]
fn dry_run_sends_no_writing_request() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(true);
    let dir = TempDir::new("setup-dry");
    let cfg = write_config(&dir, &gl.base, TOKEN, HOOK_URL);

    let r = run(&cfg, &["--all-member-projects", "--yes", "--dry-run"]);
    assert_eq!(
        r.code,
        Some(1),
        "the 403 project counts as failed:\n{}",
        r.stdout
    );
    assert_row(&r.stdout, "acme/app-1", "create", "no hook");
    assert_row(&r.stdout, "acme/app-3", "delete", "duplicates");
    assert!(
        r.stdout.contains("dry run: would create 126, update 1, delete 1; 2 unchanged, 0 skipped, 1 failed; nothing was changed"),
        "{}",
        r.stdout
    );
    assert!(gl.writes().is_empty(), "{:?}", gl.writes());

    let r = run(
        &cfg,
        &["--project", "1", "--project", "acme/app-2", "--dry-run"],
    );
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(gl.writes().is_empty());

    let r = run(&cfg, &["--project", "2", "--remove", "--dry-run"]);
    assert_eq!(r.code, Some(0));
    assert_row(&r.stdout, "2", "delete", "hook #1001");
    assert!(gl.writes().is_empty());
}

#[test]
fn remove_deletes_only_the_bridge_hooks() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(true);
    let dir = TempDir::new("setup-remove");
    let cfg = write_config(&dir, &gl.base, TOKEN, HOOK_URL);

    let pasted = format!("{}/acme/app-9/", gl.base);
    let r = run(
        &cfg,
        &[
            "--project",
            "acme/app-3",
            "--project",
            "4",
            "--project",
            "2",
            "--project",
            &pasted,
            "--project",
            "acme/app-3",
            "--remove",
        ],
    );
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_row(&r.stdout, "acme/app-3", "delete", "hook #1002");
    assert_row(&r.stdout, "acme/app-3", "delete", "hook #1003");
    assert_row(&r.stdout, "4", "unchanged", "no hook of the bridge");
    assert_row(&r.stdout, "2", "delete", "hook #1001");
    assert_row(
        &r.stdout,
        "acme/app-9",
        "unchanged",
        "no hook of the bridge",
    );
    assert_eq!(
        r.stdout.matches("acme/app-3 ").count(),
        2,
        "listed once:\n{}",
        r.stdout
    );
    let mut deleted: Vec<String> = gl
        .writes()
        .iter()
        .inspect(|w| assert_eq!(w.method, "DELETE"))
        .map(|w| w.target.clone())
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        [
            "/api/v4/projects/2/hooks/1001",
            "/api/v4/projects/acme%2Fapp-3/hooks/1002",
            "/api/v4/projects/acme%2Fapp-3/hooks/1003",
        ]
    );
    assert!(gl.hooks(DUPLICATED).is_empty() && gl.hooks(STALE).is_empty());
    assert_eq!(
        gl.hooks(UNRELATED).len(),
        1,
        "the unrelated hook is untouched"
    );
    assert!(
        r.stdout.contains(
            "summary: 0 created, 0 updated, 3 deleted, 2 unchanged, 0 skipped, 0 failed (4 project(s))"
        ),
        "{}",
        r.stdout
    );
}

#[test]
fn a_group_selects_its_subgroups_and_unknown_groups_fail_clearly() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(true);
    let dir = TempDir::new("setup-group");
    let cfg = write_config(&dir, &gl.base, TOKEN, HOOK_URL);

    let r = run(&cfg, &["--group", "acme/sub", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert_row(&r.stdout, "acme/sub/lib-7", "create", "no hook");
    assert_row(&r.stdout, "acme/sub/lib-8", "create", "no hook");
    assert_eq!(
        r.stdout.lines().count(),
        4,
        "header, two rows, dry-run line:\n{}",
        r.stdout
    );
    let listing = &gl.requests()[0];
    assert!(
        listing
            .target
            .starts_with("/api/v4/groups/acme%2Fsub/projects?include_subgroups=true"),
        "{}",
        listing.target
    );
    assert!(listing.target.contains("pagination=keyset"));

    // Where GitLab has no keyset pagination (405), offset pages are followed by `Link`.
    gl.clear_requests();
    let r = run(&cfg, &["--group", "acme", "--dry-run"]);
    assert_eq!(r.code, Some(1), "the 403 project fails:\n{}", r.stdout);
    assert_row(&r.stdout, "acme/app-130", "create", "no hook");
    assert_row(&r.stdout, "acme/sub/lib-8", "create", "no hook");
    let listings: Vec<(u16, String)> = gl
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/api/v4/groups/"))
        .map(|r| (r.status, r.target))
        .collect();
    assert_eq!(listings.len(), 3, "{listings:?}");
    assert_eq!(listings[0].0, 405);
    assert!(!listings[1].1.contains("pagination=") && !listings[1].1.contains("page=2"));
    assert!(listings[2].1.contains("page=2"), "{listings:?}");
    assert!(gl.writes().is_empty());

    let r = run(&cfg, &["--group", "nope"]);
    assert_eq!(r.code, Some(1));
    assert!(
        r.stdout
            .contains("listing the projects of group nope: 404 not found"),
        "{}",
        r.stdout
    );
    assert!(gl.writes().is_empty());
}

#[test]
fn gitlab_errors_are_named_clearly() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(true);
    let dir = TempDir::new("setup-errors");
    let bad_token = write_config(&dir, &gl.base, "glpat-wrong", HOOK_URL);
    let r = run(&bad_token, &["--project", "1"]);
    assert_eq!(r.code, Some(1));
    assert_row(&r.stdout, "1", "error", "401 unauthorized");
    assert!(r.stdout.contains("`api` scope"), "{}", r.stdout);
    assert!(!r.stdout.contains("glpat-wrong") && !r.stderr.contains("glpat-wrong"));

    let local = write_config(&dir, &gl.base, TOKEN, "http://localhost:8080/hooks/gitlab");
    let r = run(&local, &["--project", "1", "--project", "9999"]);
    assert_eq!(r.code, Some(1));
    assert_row(&r.stdout, "9999", "error", "404 not found");
    assert!(
        r.stdout.contains("creating the hook on project 1: 422 invalid request: url is blocked: Requests to localhost are not allowed"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("hook_url"));

    // No selection is a usage error (exit 2), from clap.
    let r = run(&local, &[]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);

    // Missing [gitlab] keys are named.
    let path = dir.write(
        "no-gitlab.toml",
        &format!("[server]\nsecret_token = \"{SECRET}\"\n"),
    );
    let r = run(&path, &["--project", "1"]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("no [gitlab] section"), "{}", r.stderr);
}

#[test]
fn check_verifies_the_token_and_lists_projects_lacking_the_hook() {
    let _turn = turn::shared();
    let gl = FakeGitlab::start(false);
    let dir = TempDir::new("setup-check");
    let cfg = write_config(&dir, &gl.base, TOKEN, HOOK_URL);
    let out = cli::run([OsStr::new("check"), OsStr::new("--config"), cfg.as_os_str()]);
    let stdout = out.stdout;
    assert_eq!(out.code, Some(0), "{stdout}");
    assert!(
        stdout.contains("gitlab: token ok (user @bridge-bot, id 77)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("gitlab: 127 of 130 Maintainer project(s) lack the hook (run `setup`): acme/app-1, acme/app-4,"),
        "{stdout}"
    );
    assert!(stdout.contains("and 107 more"), "{stdout}");
    assert!(
        stdout
            .contains("gitlab: the hook is out of date on 1 project(s) (run `setup`): acme/app-2"),
        "{stdout}"
    );
    assert!(gl.writes().is_empty());
    assert!(gl.requests().iter().any(|r| r.target == "/api/v4/user"));

    let bad = write_config(&dir, &gl.base, "glpat-wrong", HOOK_URL);
    let out = cli::run([OsStr::new("check"), OsStr::new("--config"), bad.as_os_str()]);
    let stdout = out.stdout;
    assert_eq!(out.code, Some(1), "{stdout}");
    assert!(
        stdout.contains("checking the token (GET /user): 401 unauthorized"),
        "{stdout}"
    );
}

// ---------------------------------------------------------------------------------------------
// Against GitLab's own OpenAPI document (Prism)
// ---------------------------------------------------------------------------------------------

#[test]
fn requests_match_gitlabs_openapi_document() {
    let _turn = turn::shared();
    let Some(bin) = prism::binary() else {
        return;
    };
    let prism = Prism::start(&bin, &prism::spec("gitlab/hooks-openapi.yaml"), false);
    let dir = TempDir::new("setup-prism");
    // Prism's example project has ID 1 and a hook to https://webhook.site with every event on.
    let create = write_config(&dir, &prism.base(), TOKEN, HOOK_URL);
    let r = run(&create, &["--project", "1", "--project", "group/project"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_row(&r.stdout, "1", "create", "no hook");
    assert!(r.stdout.contains("summary: 2 created"), "{}", r.stdout);

    let theirs = dir.write(
        "webhook-site.toml",
        &std::fs::read_to_string(&create)
            .unwrap()
            .replace(HOOK_URL, "https://webhook.site"),
    );
    let r = run(&theirs, &["--project", "1"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_row(&r.stdout, "1", "update", "hook #1");
    assert!(r.stdout.contains("1 updated"), "{}", r.stdout);

    let r = run(&theirs, &["--project", "1", "--remove"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("1 deleted"), "{}", r.stdout);

    let r = run(&create, &["--all-member-projects", "--dry-run"]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_row(&r.stdout, "namespace1/project1", "create", "no hook");

    let log = prism.log_text();
    let passed = log
        .matches("The request passed the validation rules")
        .count();
    assert!(
        passed >= 9,
        "expected every request to be validated:\n{log}"
    );
    for bad in ["Request did not pass", "Violation: request"] {
        assert!(
            !log.contains(bad),
            "Prism found a request violation:\n{log}"
        );
    }
    for method in ["get", "post", "put", "delete"] {
        assert!(
            log.contains(&format!("[HTTP SERVER] {method} /api/v4/projects")),
            "no {method} reached Prism:\n{log}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Catch-up and repair
// ---------------------------------------------------------------------------------------------

/// An issue webhook whose title is `marker`.
fn issue_body(marker: &str) -> Value {
    let mut v = crate::support::samples::json("issue__open.json");
    v["object_attributes"]["title"] = json!(marker);
    v
}

/// `catch-up --config CONFIG ARGS…` from async code.
async fn catch_up(config: &Path, args: &[&str]) -> CliOutput {
    let config = config.display().to_string();
    let mut all = vec!["catch-up", "--config", config.as_str()];
    all.extend(args);
    let r = cli::run_async(&all, std::time::Duration::from_secs(60)).await;
    assert!(!r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_recovers_each_failed_delivery_once_and_repair_re_enables() {
    use crate::support::daemon::{ChannelSpec, Daemon, Settings};
    use crate::support::fake_cliq::FakeCliq;
    use crate::support::unique;
    const A: u64 = 20;
    const B: u64 = 21;
    let _turn = turn::shared_async().await;
    let gitlab = FakeGitlab::start(true);
    let cliq = FakeCliq::start(0).await;
    let channel = unique("caught");
    let dir = TempDir::new("catch-up");
    dir.write("gitlab-token", TOKEN);
    let mut settings = Settings::new(vec![ChannelSpec::new("caught", cliq.url(&channel))]);
    settings.rest = format!(
        "[gitlab]\nurl = \"{}\"\ntoken_file = \"gitlab-token\"\nhook_url = \"{HOOK_URL}\"\n\
         watch_hooks_minutes = 0\n",
        gitlab.base
    );
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let deliver = |key: &str, marker: &str| {
        let hooks = daemon.hooks();
        let (key, body) = (key.to_string(), issue_body(marker).to_string().into_bytes());
        async move {
            let a = hooks.post("Issue Hook", body, None, Some(&key)).await;
            assert_eq!(a.status, 200, "{}", a.body);
        }
    };

    gitlab.add_hook(A, hook_json(2001, A, HOOK_URL, &DEFAULT_EVENTS));
    let mut failing = hook_json(2101, B, HOOK_URL, &DEFAULT_EVENTS);
    failing["alert_status"] = json!("temporarily_disabled");
    gitlab.add_hook(B, failing);
    gitlab.add_hook(
        B,
        hook_json(2102, B, "https://ci.example.com/hook", &["issues_events"]),
    );
    // Hook A's log, oldest first: failures with and without the body, deliveries the bridge
    // received, and one failure GitLab itself re-sent successfully.
    let body = |m: &str| issue_body(m);
    let entries_a = [
        log_json(
            1,
            "500",
            "Issue Hook",
            Some("k-old"),
            Some(&body("marker-old")),
        ),
        log_json(
            2,
            "200",
            "Issue Hook",
            Some("k-last"),
            Some(&body("marker-last")),
        ),
        log_json(
            3,
            "500",
            "Issue Hook",
            Some("k-a3"),
            Some(&body("marker-a3")),
        ),
        log_json(4, "internal error", "Issue Hook", Some("k-a4"), None),
        log_json(
            5,
            "502",
            "Issue Hook",
            Some("k-a5"),
            Some(&body("marker-a5")),
        ),
        log_json(
            6,
            "200",
            "Issue Hook",
            Some("k-a5"),
            Some(&body("marker-a5")),
        ),
        log_json(
            7,
            "500",
            "Issue Hook",
            Some("k-a7"),
            Some(&body("marker-a7")),
        ),
    ];
    for e in entries_a {
        gitlab.log(2001, e);
    }
    gitlab.log(
        2101,
        log_json(
            8,
            "500",
            "Issue Hook",
            Some("k-b8"),
            Some(&body("marker-b8")),
        ),
    );
    gitlab.log(
        2101,
        log_json(9, "internal error", "Issue Hook", Some("k-b9"), None),
    );
    gitlab.log(
        2102,
        log_json(
            20,
            "500",
            "Issue Hook",
            Some("k-ci"),
            Some(&body("marker-ci")),
        ),
    );
    deliver("k-last", "marker-last").await;
    deliver("k-a5", "marker-a5").await;
    cliq.wait_for_accepted(2, std::time::Duration::from_secs(10))
        .await;

    let projects = [
        "--project",
        "5",
        "--project",
        &A.to_string(),
        "--project",
        &B.to_string(),
    ];
    let args = |extra: &[&'static str]| -> Vec<String> {
        projects
            .iter()
            .map(|s| s.to_string())
            .chain(extra.iter().map(|s| s.to_string()))
            .collect()
    };
    let dry = args(&["--dry-run"]);
    let dry: Vec<&str> = dry.iter().map(String::as_str).collect();
    let out = catch_up(&config, &dry).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("5: error: listing hooks of project 5: 403"),
        "{}",
        out.stdout
    );
    for line in [
        "hook #2001: delivery #1 (Issue Hook): would store it from the log",
        "hook #2001: delivery #3 (Issue Hook): would store it from the log",
        "hook #2001: delivery #4 (Issue Hook): would ask GitLab to re-send it",
        "hook #2001: delivery #7 (Issue Hook): would store it from the log",
        "hook #2101: delivery #8 (Issue Hook): would store it from the log",
        "hook #2101: delivery #9 (Issue Hook): would ask GitLab to re-send it",
    ] {
        assert!(
            out.stdout.contains(line),
            "{line:?} missing:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("delivery #5 ") && !out.stdout.contains("delivery #20 "));
    assert!(out.stdout.contains("nothing was changed"), "{}", out.stdout);
    assert!(gitlab.resent().is_empty());

    // For real: two stored from the log, two re-sent (the first resend call is throttled and
    // retried after its Retry-After), the rest already received or out of range.
    let real = args(&[]);
    let real: Vec<&str> = real.iter().map(String::as_str).collect();
    let out = catch_up(&config, &real).await;
    assert_eq!(out.code, Some(1), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("catch-up: recovered 6 of 7 failed deliveries (4 from the log, 2 re-sent by GitLab); 1 already received"),
        "{}",
        out.stdout
    );
    assert_eq!(gitlab.resent(), [(2001, 4), (2101, 9)]);
    assert_eq!(gitlab.log_entry(2001, 4)["request_data"], json!({}));
    // GitLab delivers what it was asked to re-send (with the original Idempotency-Key) and logs it.
    for (hook, id, key, marker) in [
        (2001, 10, "k-a4", "marker-a4"),
        (2101, 11, "k-b9", "marker-b9"),
    ] {
        deliver(key, marker).await;
        gitlab.log(
            hook,
            log_json(id, "200", "Issue Hook", Some(key), Some(&body(marker))),
        );
    }
    cliq.wait_for_accepted(8, std::time::Duration::from_secs(10))
        .await;

    // A second run finds nothing new and asks GitLab for nothing.
    let out = catch_up(&config, &real).await;
    assert!(
        out.stdout
            .contains("catch-up: recovered 0 of 7 failed deliveries (0 from the log, 0 re-sent by GitLab); 7 already received"),
        "{}",
        out.stdout
    );
    assert_eq!(gitlab.resent().len(), 2);
    // With --since 0s the log is read back only to the newest delivery the bridge received.
    let since = args(&["--dry-run", "--since", "0s"]);
    let since: Vec<&str> = since.iter().map(String::as_str).collect();
    let out = catch_up(&config, &since).await;
    assert!(
        out.stdout.contains("would recover 0 of 0 failed"),
        "{}",
        out.stdout
    );

    // Every delivery reached the channel exactly once (a sentinel shows nothing else is queued).
    deliver(&unique("k"), "marker-end").await;
    cliq.wait_for_accepted(9, std::time::Duration::from_secs(10))
        .await;
    let seen = cliq.snapshot();
    for m in [
        "marker-old",
        "marker-last",
        "marker-a3",
        "marker-a4",
        "marker-a5",
        "marker-a7",
        "marker-b8",
        "marker-b9",
        "marker-end",
    ] {
        assert_eq!(seen.count(&channel, m), 1, "{m}: {}", seen.summary());
    }
    assert_eq!(seen.count(&channel, "marker-ci"), 0);
    drop(daemon.stop());

    // `setup --repair` re-enables the disabled hook with a test request, and only that one.
    let out = run(
        &config,
        &[
            "--project",
            &A.to_string(),
            "--project",
            &B.to_string(),
            "--repair",
        ],
    );
    assert!(
        out.stdout.contains("hook #2101: test request sent"),
        "{}",
        out.stdout
    );
    assert_eq!(gitlab.tested(), [(2101, "push_events".to_string())]);
    assert_eq!(gitlab.hooks(B)[0]["alert_status"], "executable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_one_alert_per_hook_state_change() {
    use crate::support::daemon::{ChannelSpec, Daemon, Settings};
    use crate::support::fake_cliq::FakeCliq;
    use crate::support::unique;
    let _turn = turn::shared_async().await;
    let gitlab = FakeGitlab::start(false);
    let cliq = FakeCliq::start(0).await;
    let ops = unique("ops");
    let dir = TempDir::new("hook-watch");
    dir.write("gitlab-token", TOKEN);
    let dev = unique("dev");
    let mut settings = Settings::new(vec![
        ChannelSpec {
            events: Some(vec!["nothing"]),
            ..ChannelSpec::new("ops", cliq.url(&ops))
        },
        ChannelSpec::new("dev", cliq.url(&dev)),
    ]);
    // 0.01 minutes: a poll every 0.6 s.
    settings.rest = format!(
        "[gitlab]\nurl = \"{}\"\ntoken_file = \"gitlab-token\"\nhook_url = \"{HOOK_URL}\"\n\
         watch_hooks_minutes = 0.01\nops_channel = \"ops\"\n",
        gitlab.base
    );
    gitlab.add_hook(20, hook_json(2001, 20, HOOK_URL, &DEFAULT_EVENTS));
    let mut paused = hook_json(2101, 21, HOOK_URL, &DEFAULT_EVENTS);
    paused["alert_status"] = json!("temporarily_disabled");
    paused["disabled_until"] = json!("2026-11-29T21:00:00.000Z");
    gitlab.add_hook(21, paused);
    let mut off = hook_json(2201, 22, HOOK_URL, &DEFAULT_EVENTS);
    off["alert_status"] = json!("disabled");
    gitlab.add_hook(22, off);
    // Not the bridge's: never reported.
    let mut other = hook_json(2301, 23, "https://ci.example.com/hook", &["push_events"]);
    other["alert_status"] = json!("disabled");
    gitlab.add_hook(23, other);
    // What GitLab failed to deliver: caught up at start (hook 2101) and when hook 2001 is seen
    // failing.
    gitlab.log(
        2101,
        log_json(
            31,
            "200",
            "Issue Hook",
            Some("k-w1"),
            Some(&issue_body("marker-w1")),
        ),
    );
    gitlab.log(
        2101,
        log_json(
            32,
            "500",
            "Issue Hook",
            Some("k-w2"),
            Some(&issue_body("marker-w2")),
        ),
    );
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let wait = std::time::Duration::from_secs(15);
    cliq.wait_for_accepted(3, wait).await;
    gitlab.log(
        2001,
        log_json(
            33,
            "500",
            "Issue Hook",
            Some("k-w3"),
            Some(&issue_body("marker-w3")),
        ),
    );
    gitlab.set_alert_status(20, 2001, "temporarily_disabled");
    gitlab.set_alert_status(21, 2101, "executable");
    cliq.wait_for_accepted(6, wait).await;
    // A last change: once its card is in, every poll before it has been seen.
    gitlab.set_alert_status(22, 2201, "executable");
    cliq.wait_for_accepted(7, wait).await;
    let seen = cliq.snapshot();
    assert_eq!(
        (seen.count(&dev, "marker-w2"), seen.count(&dev, "marker-w3")),
        (1, 1),
        "{}",
        seen.summary()
    );
    assert_eq!(seen.count(&dev, "marker-w1"), 0);
    let titles: Vec<String> = seen
        .accepted
        .iter()
        .filter(|a| a.channel == ops)
        .map(|a| {
            a.body["card"]["title"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "Webhook #2001 on acme/app-20: temporarily_disabled",
            "Webhook #2101 on acme/app-21: executable",
            "Webhook #2101 on acme/app-21: temporarily_disabled",
            "Webhook #2201 on acme/app-22: disabled",
            "Webhook #2201 on acme/app-22: executable",
        ],
        "{titles:?}"
    );
    assert_eq!(
        titles.last().map(String::as_str),
        Some("Webhook #2201 on acme/app-22: executable")
    );
    let paused_card = &seen
        .accepted
        .iter()
        .find(|a| a.text().contains("#2101") && a.text().contains("temporarily"))
        .unwrap();
    assert!(
        paused_card
            .text()
            .contains("until 2026-11-29T21:00:00.000Z"),
        "{}",
        paused_card.text()
    );
    assert!(
        paused_card.text().contains("setup --repair"),
        "{}",
        paused_card.text()
    );
    drop(daemon.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_pushes_are_told_apart_in_the_router_stage() {
    use crate::support::daemon::{ChannelSpec, Daemon, Settings};
    use crate::support::fake_cliq::FakeCliq;
    use crate::support::unique;
    let _turn = turn::shared_async().await;
    let gitlab = FakeGitlab::start(false);
    let cliq = FakeCliq::start(0).await;
    let dev = unique("pushes");
    let dir = TempDir::new("force-push");
    dir.write("gitlab-token", TOKEN);
    let mut settings = Settings::new(vec![ChannelSpec::new("dev", cliq.url(&dev))]);
    settings.rest = format!(
        "[gitlab]\nurl = \"{}\"\ntoken_file = \"gitlab-token\"\n",
        gitlab.base
    );
    let sha = |c: char| c.to_string().repeat(40);
    {
        // The bridge asks compare?from=AFTER&to=BEFORE: the commits of `before` not in `after`.
        let mut st = gitlab.state.lock().unwrap();
        st.compare
            .insert(format!("{}..{}", sha('b'), sha('a')), Some(0));
        st.compare
            .insert(format!("{}..{}", sha('d'), sha('c')), Some(3));
        st.slow_compare = Some(sha('h'));
        st.compare
            .insert(format!("{}..{}", sha('h'), sha('g')), Some(2));
    }
    let config = settings.write_config(&dir);
    let daemon = Daemon::spawn(&config).await;
    let header = crate::support::samples::header("push__basic.json");
    for (branch, before, after) in [
        ("fast-forward", 'a', 'b'),
        ("forced", 'c', 'd'),
        ("unknown", 'e', 'f'),
        ("slow", 'g', 'h'),
    ] {
        let mut v = crate::support::samples::json("push__basic.json");
        v["ref"] = json!(format!("refs/heads/{branch}"));
        v["before"] = json!(sha(before));
        v["after"] = json!(sha(after));
        let started = std::time::Instant::now();
        let a = daemon
            .post(&header, v.to_string().into_bytes(), None, None)
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        // Acknowledging never waits for GitLab's answer.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{branch}: {:?}",
            started.elapsed()
        );
    }
    cliq.wait_for_accepted(4, std::time::Duration::from_secs(15))
        .await;
    let seen = cliq.snapshot();
    let text = |branch: &str| -> String {
        seen.accepted
            .iter()
            .find(|a| {
                a.body["card"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with(branch)
            })
            .map(|a| a.text().to_string())
            .unwrap_or_default()
    };
    assert!(
        text("forced").contains("force-pushed to"),
        "{}",
        text("forced")
    );
    assert!(
        text("forced").contains("dropping 3 commits"),
        "{}",
        text("forced")
    );
    assert!(text("forced").contains("compare"), "{}", text("forced"));
    for plain in ["fast-forward", "unknown", "slow"] {
        let t = text(plain);
        assert!(t.contains("pushed") && !t.contains("force"), "{plain}: {t}");
    }
    drop(daemon.stop());
}
