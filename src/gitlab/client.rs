//! The HTTP side: requests with `PRIVATE-TOKEN`, pagination by the `Link` header, and GitLab's
//! rate limits.
//!
//! - Lists follow `Link: <…>; rel="next"` until it is absent. Project lists ask for keyset
//!   pagination (`pagination=keyset&order_by=id&sort=asc&per_page=100`) and fall back to offset
//!   pages when GitLab answers 405 (keyset not available there).
//! - The next-page link is re-based on the configured scheme, host and port: the token is only
//!   ever sent to the configured GitLab.
//! - 429 waits `Retry-After` (seconds) or until `RateLimit-Reset` (Unix time), capped by
//!   [`RetryPolicy::max_wait`]; 5xx and connection failures are retried with exponential backoff.
//!   A `POST` is retried only when GitLab cannot have acted on it (connection refused, 429, 502,
//!   503, 504), so a retry does not create a second hook; if one ever does, the next run reports
//!   it as a duplicate.

use super::error::GitlabError;
use super::hooks::{DesiredHook, HookLogEntry, Project, ProjectHook, User};
use crate::secret::Secret;
use backon::BackoffBuilder;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Items per page asked for (GitLab's maximum).
pub const PER_PAGE: u32 = 100;
/// Most pages followed in one listing (a million projects): a guard against a looping server.
pub const MAX_PAGES: usize = 10_000;
/// GitLab's `min_access_level` for Maintainer.
pub const MAINTAINER_ACCESS_LEVEL: u32 = 40;

/// How requests are timed and retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Requests sent at most for one call, the first included. Default 5.
    pub max_attempts: u32,
    /// First backoff after a 5xx or a connection failure; doubles, with jitter. Default 500 ms.
    pub min_backoff: Duration,
    /// Longest backoff. Default 8 s.
    pub max_backoff: Duration,
    /// Longest wait honoured from `Retry-After`/`RateLimit-Reset`. Default 120 s.
    pub max_wait: Duration,
    /// Timeout of one request. Default 30 s.
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_wait: Duration::from_secs(120),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A project named by its numeric ID or full path, with the label shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRef {
    /// The ID or `group/project` path, as the API takes it (encoded by the client).
    pub id_or_path: String,
    /// What to call it in messages (the path when known).
    pub label: String,
}

impl ProjectRef {
    /// A reference to a listed project.
    pub fn from_project(p: &Project) -> ProjectRef {
        ProjectRef {
            id_or_path: p.id.to_string(),
            label: p.label(),
        }
    }
}

/// A path GitLab shows the token's user, with its full path as GitLab spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Visible {
    /// A project (`group/project`).
    Project(String),
    /// A group (`group/subgroup`).
    Group(String),
}

/// A GitLab REST API v4 client. Cheap to clone (the connection pool is shared).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: Secret,
    retry: RetryPolicy,
}

impl Client {
    /// A client for the instance at `base_url` (`https://gitlab.example.com`, or with a relative
    /// root such as `https://example.com/gitlab`).
    pub fn new(base_url: &str, token: Secret, retry: RetryPolicy) -> Result<Client, GitlabError> {
        let bad = |message: String| GitlabError::BadBaseUrl { message };
        let base = Url::parse(base_url.trim())
            .map_err(|e| bad(format!("{base_url:?} is not a URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https")
            || base.host_str().is_none()
            || base.cannot_be_a_base()
        {
            return Err(bad(format!("{base_url:?} must be an http(s) URL")));
        }
        let http = reqwest::Client::builder()
            .timeout(retry.timeout)
            .connect_timeout(retry.timeout)
            .user_agent(concat!("gitlab-chat-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("cannot build the HTTP client: {}", e.without_url())))?;
        Ok(Client {
            http,
            base,
            token,
            retry,
        })
    }

    /// `/api/v4/<segments>` under the base URL, each segment percent-encoded (`/` included, so a
    /// project path becomes `group%2Fproject`).
    pub fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        url.set_query(None);
        url.set_fragment(None);
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().push("api").push("v4").extend(segments);
        }
        url
    }

    /// `GET /user`: whom the token belongs to.
    pub async fn current_user(&self) -> Result<User, GitlabError> {
        let what = "checking the token (GET /user)";
        let resp = self
            .send(Method::GET, self.api_url(&["user"]), None, what)
            .await?;
        decode(resp, what).await
    }

    /// What `path` is to the token's user: a project it can see, a group it can see, or
    /// nothing it can see (`None`: GitLab answers 404 to both, as it does for what exists but is
    /// hidden from the token).
    pub async fn visible(&self, path: &str) -> Result<Option<Visible>, GitlabError> {
        let what = format!("looking up project {path}");
        match self
            .send(Method::GET, self.api_url(&["projects", path]), None, &what)
            .await
        {
            Ok(resp) => {
                let p: Project = decode(resp, &what).await?;
                return Ok(Some(Visible::Project(
                    p.path_with_namespace.unwrap_or_else(|| path.to_string()),
                )));
            }
            Err(GitlabError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let what = format!("looking up group {path}");
        match self
            .send(Method::GET, self.api_url(&["groups", path]), None, &what)
            .await
        {
            Ok(resp) => {
                let g: serde_json::Value = decode(resp, &what).await?;
                let full = g["full_path"].as_str().unwrap_or(path).to_string();
                Ok(Some(Visible::Group(full)))
            }
            Err(GitlabError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every unarchived project where the token's user is Maintainer or Owner.
    pub async fn member_projects(&self) -> Result<Vec<Project>, GitlabError> {
        let mut url = self.api_url(&["projects"]);
        url.query_pairs_mut()
            .append_pair("membership", "true")
            .append_pair("min_access_level", &MAINTAINER_ACCESS_LEVEL.to_string())
            .append_pair("archived", "false")
            .append_pair("simple", "true");
        self.list_projects(
            url,
            "listing the projects where the token's user is Maintainer",
        )
        .await
    }

    /// Every unarchived project of `group` (ID or full path) and its subgroups.
    pub async fn group_projects(&self, group: &str) -> Result<Vec<Project>, GitlabError> {
        let mut url = self.api_url(&["groups", group, "projects"]);
        url.query_pairs_mut()
            .append_pair("include_subgroups", "true")
            .append_pair("archived", "false")
            .append_pair("simple", "true");
        self.list_projects(url, &format!("listing the projects of group {group}"))
            .await
    }

    /// The hooks of `project`.
    pub async fn hooks(&self, project: &ProjectRef) -> Result<Vec<ProjectHook>, GitlabError> {
        let mut url = self.api_url(&["projects", &project.id_or_path, "hooks"]);
        url.query_pairs_mut()
            .append_pair("per_page", &PER_PAGE.to_string());
        self.get_all(url, &format!("listing hooks of project {}", project.label))
            .await
    }

    /// Creates `desired` on `project`.
    pub async fn create_hook(
        &self,
        project: &ProjectRef,
        desired: &DesiredHook,
    ) -> Result<ProjectHook, GitlabError> {
        let what = format!("creating the hook on project {}", project.label);
        let url = self.api_url(&["projects", &project.id_or_path, "hooks"]);
        let resp = self
            .send(Method::POST, url, Some(&desired.request_body()), &what)
            .await?;
        decode(resp, &what).await
    }

    /// Makes hook `hook_id` of `project` match `desired` (URL and token included).
    pub async fn update_hook(
        &self,
        project: &ProjectRef,
        hook_id: u64,
        desired: &DesiredHook,
    ) -> Result<ProjectHook, GitlabError> {
        let what = format!("updating hook #{hook_id} on project {}", project.label);
        let id = hook_id.to_string();
        let url = self.api_url(&["projects", &project.id_or_path, "hooks", &id]);
        let resp = self
            .send(Method::PUT, url, Some(&desired.request_body()), &what)
            .await?;
        decode(resp, &what).await
    }

    /// Deletes hook `hook_id` of `project`.
    pub async fn delete_hook(&self, project: &ProjectRef, hook_id: u64) -> Result<(), GitlabError> {
        let what = format!("deleting hook #{hook_id} on project {}", project.label);
        let id = hook_id.to_string();
        let url = self.api_url(&["projects", &project.id_or_path, "hooks", &id]);
        self.send(Method::DELETE, url, None, &what).await?;
        Ok(())
    }

    /// One page of hook `hook_id`'s delivery log (newest first): the first page when `page` is
    /// `None`, else the page a previous call returned as next. Returns the entries and the next
    /// page, if GitLab's `Link` header names one.
    pub async fn hook_events_page(
        &self,
        project: &ProjectRef,
        hook_id: u64,
        page: Option<Url>,
    ) -> Result<(Vec<HookLogEntry>, Option<Url>), GitlabError> {
        let what = format!(
            "reading the delivery log of hook #{hook_id} on project {}",
            project.label
        );
        let url = match page {
            Some(u) => u,
            None => {
                let id = hook_id.to_string();
                let mut u =
                    self.api_url(&["projects", &project.id_or_path, "hooks", &id, "events"]);
                u.query_pairs_mut()
                    .append_pair("per_page", &PER_PAGE.to_string());
                u
            }
        };
        let resp = self.send(Method::GET, url.clone(), None, &what).await?;
        let next = next_link(resp.headers());
        let entries: Vec<HookLogEntry> = decode(resp, &what).await?;
        let next = match next {
            Some(n) => Some(
                self.rebase(&url, &n)
                    .map_err(|message| GitlabError::Unexpected {
                        what: what.clone(),
                        message,
                    })?,
            ),
            None => None,
        };
        Ok((entries, next))
    }

    /// Asks GitLab to deliver log entry `event_id` of hook `hook_id` again (GitLab ≥ 17.4; at
    /// most 5 a minute per hook and user, a 429 beyond).
    pub async fn resend_hook_event(
        &self,
        project: &ProjectRef,
        hook_id: u64,
        event_id: u64,
    ) -> Result<(), GitlabError> {
        let what = format!(
            "re-sending delivery #{event_id} of hook #{hook_id} on project {}",
            project.label
        );
        let (hook, event) = (hook_id.to_string(), event_id.to_string());
        let url = self.api_url(&[
            "projects",
            &project.id_or_path,
            "hooks",
            &hook,
            "events",
            &event,
            "resend",
        ]);
        self.send(Method::POST, url, None, &what).await?;
        Ok(())
    }

    /// Sends hook `hook_id` a test request of `trigger` (`push_events`, …): GitLab re-enables a
    /// disabled hook when the test is answered 2xx.
    pub async fn test_hook(
        &self,
        project: &ProjectRef,
        hook_id: u64,
        trigger: &str,
    ) -> Result<(), GitlabError> {
        let what = format!("testing hook #{hook_id} on project {}", project.label);
        let id = hook_id.to_string();
        let url = self.api_url(&[
            "projects",
            &project.id_or_path,
            "hooks",
            &id,
            "test",
            trigger,
        ]);
        self.send(Method::POST, url, None, &what).await?;
        Ok(())
    }

    /// How many commits `GET /projects/:id/repository/compare?from=FROM&to=TO` lists (merge-base
    /// comparison: the commits of `to` that are not in `from`).
    pub async fn compare_commit_count(
        &self,
        project: &ProjectRef,
        from: &str,
        to: &str,
    ) -> Result<usize, GitlabError> {
        #[derive(serde::Deserialize)]
        struct Compare {
            #[serde(default)]
            commits: Vec<serde_json::Value>,
        }
        let what = format!("comparing commits on project {}", project.label);
        let mut url = self.api_url(&["projects", &project.id_or_path, "repository", "compare"]);
        url.query_pairs_mut()
            .append_pair("from", from)
            .append_pair("to", to);
        let resp = self.send(Method::GET, url, None, &what).await?;
        let c: Compare = decode(resp, &what).await?;
        Ok(c.commits.len())
    }

    /// A project list with keyset pagination, or offset pages where GitLab has no keyset (405).
    async fn list_projects(&self, url: Url, what: &str) -> Result<Vec<Project>, GitlabError> {
        let per_page = PER_PAGE.to_string();
        let mut offset = url;
        offset
            .query_pairs_mut()
            .append_pair("order_by", "id")
            .append_pair("sort", "asc")
            .append_pair("per_page", &per_page);
        let mut keyset = offset.clone();
        keyset.query_pairs_mut().append_pair("pagination", "keyset");
        match self.get_all(keyset, what).await {
            Err(GitlabError::Status { status: 405, .. }) => self.get_all(offset, what).await,
            other => other,
        }
    }

    /// GETs `url` and every page its `Link` header (or, without one, `X-Next-Page`) leads to.
    pub(super) async fn get_all<T: DeserializeOwned>(
        &self,
        first: Url,
        what: &str,
    ) -> Result<Vec<T>, GitlabError> {
        let mut items = Vec::new();
        let mut seen = HashSet::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let resp = self.send(Method::GET, url.clone(), None, what).await?;
            let next = next_link(resp.headers()).or_else(|| next_page(&url, resp.headers()));
            let page: Vec<T> = decode(resp, what).await?;
            items.extend(page);
            let Some(next) = next else {
                return Ok(items);
            };
            url = self
                .rebase(&url, &next)
                .map_err(|message| GitlabError::Unexpected {
                    what: what.to_string(),
                    message,
                })?;
            if !seen.insert(url.to_string()) {
                return Err(GitlabError::Unexpected {
                    what: what.to_string(),
                    message: "the Link header leads back to a page already read".into(),
                });
            }
        }
        Err(GitlabError::Unexpected {
            what: what.to_string(),
            message: format!("more than {MAX_PAGES} pages"),
        })
    }

    /// The next page's URL on the configured scheme, host and port.
    fn rebase(&self, current: &Url, next: &str) -> Result<Url, String> {
        let parsed = current
            .join(next)
            .map_err(|e| format!("bad next-page link: {e}"))?;
        let mut url = self.base.clone();
        url.set_path(parsed.path());
        url.set_query(parsed.query());
        url.set_fragment(None);
        Ok(url)
    }

    /// Sends one request, retrying as the module doc says; returns only 2xx answers.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&serde_json::Value>,
        what: &str,
    ) -> Result<reqwest::Response, GitlabError> {
        let mut backoff = backon::ExponentialBuilder::default()
            .with_min_delay(self.retry.min_backoff)
            .with_max_delay(self.retry.max_backoff)
            .with_jitter()
            .without_max_times()
            .build();
        let is_post = method == Method::POST;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let last = attempt >= self.retry.max_attempts.max(1);
            let mut req = self
                .http
                .request(method.clone(), url.clone())
                .header("PRIVATE-TOKEN", self.token.expose());
            if let Some(b) = body {
                req = req.json(b);
            }
            let wait = match req.send().await {
                Err(e) => {
                    let retryable =
                        e.is_connect() || (!is_post && (e.is_timeout() || e.is_request()));
                    let message = e.without_url().to_string();
                    if last || !retryable {
                        return Err(GitlabError::Network {
                            what: what.to_string(),
                            message,
                        });
                    }
                    tracing::warn!(what, attempt, error = %message, "cannot reach GitLab; retrying");
                    backoff.next()
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if resp.status().is_success() {
                        return Ok(resp);
                    }
                    let retryable = match status {
                        429 | 502..=504 => true,
                        500..=599 => !is_post,
                        _ => false,
                    };
                    if last || !retryable {
                        let bytes = resp.bytes().await.unwrap_or_default();
                        return Err(GitlabError::from_answer(what, status, &bytes, attempt));
                    }
                    let hinted = if status == 429 {
                        rate_limit_wait(resp.headers(), SystemTime::now())
                    } else {
                        None
                    };
                    let wait = hinted
                        .or_else(|| backoff.next())
                        .map(|w| w.min(self.retry.max_wait));
                    tracing::warn!(
                        what,
                        status,
                        attempt,
                        wait_ms = wait.map_or(0, |w| w.as_millis()),
                        "GitLab answered {status}; retrying"
                    );
                    wait
                }
            };
            tokio::time::sleep(wait.unwrap_or(self.retry.max_backoff)).await;
        }
    }
}

/// Reads a JSON answer.
pub(super) async fn decode<T: DeserializeOwned>(
    resp: reqwest::Response,
    what: &str,
) -> Result<T, GitlabError> {
    let bytes = resp.bytes().await.map_err(|e| GitlabError::Network {
        what: what.to_string(),
        message: e.without_url().to_string(),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| GitlabError::Unexpected {
        what: what.to_string(),
        message: format!("not the JSON GitLab documents: {e}"),
    })
}

/// The target of the `rel="next"` entry of the `Link` header(s), if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_in_link_value)
}

/// The next page of an offset listing from `X-Next-Page` (GitLab sends it with, and for very
/// long lists instead of, the `Link` header): `current` with its `page` replaced.
fn next_page(current: &Url, headers: &HeaderMap) -> Option<String> {
    let page: u64 = headers
        .get("x-next-page")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let mut url = current.clone();
    let pairs: Vec<(String, String)> = current
        .query_pairs()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", &page.to_string());
    Some(url.to_string())
}

/// Parses one `Link` value (`<url>; rel="next", <url>; rel="first"`); commas inside `<…>` are
/// part of the URL.
fn next_in_link_value(value: &str) -> Option<String> {
    let mut rest = value;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let params_and_more = &after[end + 1..];
        let params = params_and_more
            .find('<')
            .map_or(params_and_more, |i| &params_and_more[..i]);
        let is_next = params.split(';').any(|p| {
            let p = p.trim().trim_end_matches(',').trim();
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim()
                        .trim_matches('"')
                        .split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("next"))
            })
        });
        if is_next {
            return Some(target.to_string());
        }
        rest = params_and_more;
    }
    None
}

/// How long a 429 asks to wait: `Retry-After` in seconds, else `RateLimit-Reset` (GitLab sends a
/// Unix time; a small number is taken as seconds from now).
pub fn rate_limit_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    if let Some(secs) = number("retry-after") {
        return Some(Duration::from_secs(secs));
    }
    let reset = number("ratelimit-reset")?;
    const UNIX_TIME_FLOOR: u64 = 1_000_000_000;
    if reset < UNIX_TIME_FLOOR {
        return Some(Duration::from_secs(reset));
    }
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(*k, v);
            }
        }
        h
    }

    #[test]
    fn next_link_is_found_among_others() {
        let h = headers(&[(
            "link",
            r#"<https://gitlab.example.com/api/v4/projects?id_after=100&per_page=100&topic=a,b>; rel="next", <https://gitlab.example.com/api/v4/projects?page=1>; rel="first""#,
        )]);
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://gitlab.example.com/api/v4/projects?id_after=100&per_page=100&topic=a,b")
        );
        let last = headers(&[(
            "link",
            r#"<https://x/a?page=1>; rel="first", <https://x/a?page=3>; rel="last""#,
        )]);
        assert_eq!(next_link(&last), None);
        let split = headers(&[
            ("link", "<https://x/a?page=1>; rel=first"),
            ("link", "<https://x/a?page=2>; rel=next"),
        ]);
        assert_eq!(next_link(&split).as_deref(), Some("https://x/a?page=2"));
        assert_eq!(next_link(&HeaderMap::new()), None);
    }

    #[test]
    fn x_next_page_replaces_the_page_parameter() {
        let url = Url::parse(
            "https://x/api/v4/projects/1/merge_requests?state=opened&page=2&per_page=100",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            next_page(&url, &headers(&[("x-next-page", "3")])).as_deref(),
            Some("https://x/api/v4/projects/1/merge_requests?state=opened&per_page=100&page=3")
        );
        assert_eq!(next_page(&url, &headers(&[("x-next-page", "")])), None);
        assert_eq!(next_page(&url, &HeaderMap::new()), None);
    }

    #[test]
    fn rate_limit_wait_reads_retry_after_then_reset() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            rate_limit_wait(
                &headers(&[("retry-after", "7"), ("ratelimit-reset", "1700000060")]),
                now
            ),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("ratelimit-reset", "1700000060")]), now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("ratelimit-reset", "1600000000")]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("ratelimit-reset", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            rate_limit_wait(&headers(&[("retry-after", "soon")]), now),
            None
        );
    }

    #[test]
    fn paths_are_encoded_and_next_links_stay_on_the_configured_host() {
        let client = match Client::new(
            "https://gitlab.example.com/gitlab/",
            Secret::new("t"),
            RetryPolicy::default(),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let url = client.api_url(&["projects", "group/sub/app", "hooks"]);
        assert_eq!(
            url.as_str(),
            "https://gitlab.example.com/gitlab/api/v4/projects/group%2Fsub%2Fapp/hooks"
        );
        let next = client.rebase(
            &url,
            "http://internal:8080/gitlab/api/v4/projects?id_after=5&per_page=100",
        );
        assert_eq!(
            next.map(|u| u.to_string()).ok().as_deref(),
            Some("https://gitlab.example.com/gitlab/api/v4/projects?id_after=5&per_page=100")
        );
        assert!(Client::new("ftp://x", Secret::new("t"), RetryPolicy::default()).is_err());
        assert!(Client::new("gitlab", Secret::new("t"), RetryPolicy::default()).is_err());
    }
}
