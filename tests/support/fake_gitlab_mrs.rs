//! A fake GitLab with open merge requests, for review reminders, shaped on GitLab's documented
//! REST API v4 (facts in `docs/CONTRACTS`' "Facts for review reminders"):
//! - `GET /projects/:id/merge_requests?state=opened`: offset pages (`page`, `per_page`, default
//!   20, at most 100) with `Link: <…>; rel="next"` and `X-Next-Page`;
//! - `GET /groups/:id/merge_requests?state=opened&include_subgroups=true` and
//!   `GET /merge_requests?scope=all&state=opened`: the same rows for the projects the token can
//!   read, paged by `X-Next-Page` alone (as GitLab does past 10 000 rows: no `Link`);
//! - `GET /projects/:id` and `GET /groups/:id` (what `/gitlab reviews` asks first);
//! - `GET /projects/:id/merge_requests/:iid/approvals` (`approved`, `approvals_left`,
//!   `approved_by`) and `GET /projects/:id/merge_requests/:iid` (with `head_pipeline`).
//!
//! Merge requests have reviewers, drafts, approvals, head pipelines and an age; a project can be
//! hidden from the token (404), the first listing can be throttled once (429 with
//! `Retry-After: 1`), and approvals can be slowed down. Every request is recorded. It serves on
//! loopback from a thread of its own, so blocking tests (the binary) and async ones can use it.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The token the fake accepts.
pub const TOKEN: &str = "glpat-reminders-test";

/// One merge request to serve.
#[derive(Debug, Clone)]
pub struct Mr {
    /// `group/project`.
    pub project: String,
    /// Its number.
    pub iid: u64,
    /// Its title.
    pub title: String,
    /// Reviewers' usernames.
    pub reviewers: Vec<String>,
    /// A draft.
    pub draft: bool,
    /// Approvals still needed (0: approved).
    pub approvals_left: u32,
    /// Hours since it was opened.
    pub age_hours: i64,
    /// The head pipeline's status, if any.
    pub pipeline: Option<String>,
}

impl Mr {
    /// An open merge request of `project` waiting for `reviewers`: not a draft, one approval
    /// left, `age_hours` old, no pipeline.
    pub fn new(project: &str, iid: u64, age_hours: i64, reviewers: &[&str]) -> Mr {
        Mr {
            project: project.into(),
            iid,
            title: format!("Change {iid} of {project}"),
            reviewers: reviewers.iter().map(|r| r.to_string()).collect(),
            draft: false,
            approvals_left: 1,
            age_hours,
            pipeline: None,
        }
    }
}

#[derive(Default)]
struct State {
    base: String,
    /// path → id.
    projects: BTreeMap<String, u64>,
    hidden: Vec<String>,
    mrs: Vec<Mr>,
    throttle_once: bool,
    slow_approvals: Option<Duration>,
    requests: Vec<String>,
}

/// The fake, stopped on drop.
pub struct FakeGitlabMrs {
    base: String,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FakeGitlabMrs {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl FakeGitlabMrs {
    /// Starts serving `mrs` on 127.0.0.1.
    pub fn start(mrs: Vec<Mr>) -> FakeGitlabMrs {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let mut projects = BTreeMap::new();
        for m in &mrs {
            let next = projects.len() as u64 + 1;
            projects.entry(m.project.clone()).or_insert(next);
        }
        let state = Arc::new(Mutex::new(State {
            base: base.clone(),
            projects,
            mrs,
            ..State::default()
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
                    move |method: Method, uri: Uri, headers: HeaderMap| {
                        let state = shared.clone();
                        async move {
                            let slow = state.lock().unwrap().slow_approvals;
                            if let Some(d) = slow.filter(|_| uri.path().ends_with("/approvals")) {
                                tokio::time::sleep(d).await;
                            }
                            handle(&state, &method, &uri, &headers)
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
        FakeGitlabMrs {
            base,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Hides `project` from the token: 404 on its own routes, left out of group lists.
    pub fn hide(&self, project: &str) {
        let mut st = self.state.lock().unwrap();
        let next = st.projects.len() as u64 + 1;
        st.projects.entry(project.into()).or_insert(next);
        st.hidden.push(project.into());
    }

    /// Answers the next merge request listing 429 with `Retry-After: 1`.
    pub fn throttle_once(&self) {
        self.state.lock().unwrap().throttle_once = true;
    }

    /// Answers each approvals request after `d`.
    pub fn slow_approvals(&self, d: Duration) {
        self.state.lock().unwrap().slow_approvals = Some(d);
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
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

fn handle(state: &Mutex<State>, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response {
    let mut st = state.lock().unwrap();
    st.requests.push(format!(
        "{method} {}",
        uri.path_and_query().map(|p| p.as_str()).unwrap_or_default()
    ));
    if headers.get("private-token").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    if method != Method::GET {
        return message(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let path = uri.path().trim_start_matches("/api/v4/");
    let parts: Vec<&str> = path.split('/').collect();
    let listing = parts.last() == Some(&"merge_requests");
    if listing && std::mem::take(&mut st.throttle_once) {
        let mut r = message(StatusCode::TOO_MANY_REQUESTS, "Retry later");
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    if listing && query.get("state").map(String::as_str) != Some("opened") {
        return message(StatusCode::BAD_REQUEST, "this fake lists only state=opened");
    }
    let visible = |st: &State, project: &str| !st.hidden.iter().any(|h| h == project);
    match parts[..] {
        ["merge_requests"] => {
            let rows: Vec<Mr> = st
                .mrs
                .iter()
                .filter(|m| visible(&st, &m.project))
                .cloned()
                .collect();
            page(&st, uri.path(), &query, rows, false)
        }
        ["groups", group, "merge_requests"] => {
            let group = decode(group);
            let prefix = format!("{group}/");
            if !st.projects.keys().any(|p| p.starts_with(&prefix)) {
                return message(StatusCode::NOT_FOUND, "404 Group Not Found");
            }
            let rows: Vec<Mr> = st
                .mrs
                .iter()
                .filter(|m| m.project.starts_with(&prefix) && visible(&st, &m.project))
                .cloned()
                .collect();
            page(&st, uri.path(), &query, rows, false)
        }
        ["projects", id] => match find(&st, id).filter(|p| visible(&st, p)) {
            Some(path) => {
                let pid = st.projects.get(&path).copied().unwrap_or(0);
                axum::Json(json!({"id": pid, "path_with_namespace": path})).into_response()
            }
            None => message(StatusCode::NOT_FOUND, "404 Project Not Found"),
        },
        ["groups", group] => {
            let group = decode(group);
            if st
                .projects
                .keys()
                .any(|p| p.starts_with(&format!("{group}/")))
            {
                axum::Json(json!({"id": 1, "full_path": group})).into_response()
            } else {
                message(StatusCode::NOT_FOUND, "404 Group Not Found")
            }
        }
        ["projects", id, "merge_requests", ..] => {
            let Some(project) = find(&st, id).filter(|p| visible(&st, p)) else {
                return message(StatusCode::NOT_FOUND, "404 Project Not Found");
            };
            let rows: Vec<Mr> = st
                .mrs
                .iter()
                .filter(|m| m.project == project)
                .cloned()
                .collect();
            match parts[3..] {
                [] => page(&st, uri.path(), &query, rows, true),
                [iid] | [iid, "approvals"] => {
                    let Some(m) = rows.iter().find(|m| m.iid.to_string() == iid) else {
                        return message(StatusCode::NOT_FOUND, "404 Not found");
                    };
                    if parts.len() == 5 {
                        axum::Json(approvals(m)).into_response()
                    } else {
                        axum::Json(mr_json(&st, m, true)).into_response()
                    }
                }
                _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
            }
        }
        _ => message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

fn find(st: &State, id: &str) -> Option<String> {
    let id = decode(id);
    st.projects
        .iter()
        .find(|(path, n)| **path == id || n.to_string() == id)
        .map(|(path, _)| path.clone())
}

fn person(username: &str) -> Value {
    let id = username.bytes().map(u64::from).sum::<u64>();
    json!({"id": id, "username": username, "name": username.to_uppercase(), "state": "active",
           "avatar_url": null, "web_url": format!("https://gitlab.example.com/{username}")})
}

fn mr_json(st: &State, m: &Mr, single: bool) -> Value {
    let created = chrono::Utc::now() - chrono::Duration::hours(m.age_hours);
    let pid = st.projects.get(&m.project).copied().unwrap_or(0);
    let mut v = json!({
        "id": pid * 10_000 + m.iid,
        "iid": m.iid,
        "project_id": pid,
        "title": m.title,
        "state": "opened",
        "created_at": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "author": person("carol"),
        "assignees": [],
        "reviewers": m.reviewers.iter().map(|r| person(r)).collect::<Vec<_>>(),
        "draft": m.draft,
        "work_in_progress": m.draft,
        "detailed_merge_status": if m.draft { "draft_status" } else if m.approvals_left > 0 { "not_approved" } else { "mergeable" },
        "references": {"short": format!("!{}", m.iid), "relative": format!("!{}", m.iid), "full": format!("{}!{}", m.project, m.iid)},
        "web_url": format!("https://gitlab.example.com/{}/-/merge_requests/{}", m.project, m.iid),
        "labels": [],
    });
    if single {
        v["head_pipeline"] = match &m.pipeline {
            Some(status) => json!({"id": 900 + m.iid, "status": status, "ref": "feature",
                "web_url": format!("https://gitlab.example.com/{}/-/pipelines/{}", m.project, 900 + m.iid)}),
            None => Value::Null,
        };
    }
    v
}

fn approvals(m: &Mr) -> Value {
    let approved_by: Vec<Value> = if m.approvals_left == 0 {
        vec![json!({"user": person("dave")})]
    } else {
        Vec::new()
    };
    json!({
        "id": m.iid, "iid": m.iid, "state": "opened",
        "approved": m.approvals_left == 0,
        "approvals_required": 1,
        "approvals_left": m.approvals_left,
        "approved_by": approved_by,
    })
}

/// One offset page of `rows`, with `Link` (when `link`) and `X-Next-Page` to the next one.
fn page(
    st: &State,
    path: &str,
    query: &BTreeMap<String, String>,
    rows: Vec<Mr>,
    link: bool,
) -> Response {
    let per_page = query
        .get("per_page")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 100);
    let n: usize = query
        .get("page")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let body: Vec<Value> = rows
        .iter()
        .skip((n - 1) * per_page)
        .take(per_page)
        .map(|m| mr_json(st, m, false))
        .collect();
    let mut resp = axum::Json(body).into_response();
    let next = (rows.len() > n * per_page).then(|| (n + 1).to_string());
    let h = resp.headers_mut();
    h.insert(
        "x-next-page",
        HeaderValue::from_str(next.as_deref().unwrap_or("")).unwrap(),
    );
    h.insert("x-page", HeaderValue::from_str(&n.to_string()).unwrap());
    h.insert(
        "x-per-page",
        HeaderValue::from_str(&per_page.to_string()).unwrap(),
    );
    if let (Some(next), true) = (next, link) {
        let mut pairs: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(a, b)| (a.clone(), b.clone()))
            .collect();
        pairs.push(("page".into(), next));
        let qs = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let value = format!("<{}{path}?{qs}>; rel=\"next\"", st.base);
        h.insert("link", HeaderValue::from_str(&value).unwrap());
    }
    resp
}
