//! Project hooks as GitLab shows them, the hook the bridge wants, and the pure rules that compare
//! the two: which hook is ours (URL matching) and what to do about it ([`reconcile`]).
//!
//! No I/O here: the client fetches the hooks, `commands::setup` applies the plan.

use crate::secret::Secret;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeSet;

/// The name GitLab shows for hooks this bridge creates (GitLab ≥ 17.1 has hook names; older
/// versions ignore it). It is informative only: hooks are matched by URL.
pub const HOOK_NAME: &str = "gitlab-chat-bridge";
/// The description sent with created and updated hooks.
pub const HOOK_DESCRIPTION: &str = "Managed by `gitlab-chat-bridge setup`";

/// A hook event kind the bridge can subscribe to, named as in the config (`[gitlab] events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookEvent {
    /// `push`: branch pushes (`push_events`).
    Push,
    /// `tag_push`: tag pushes (`tag_push_events`).
    TagPush,
    /// `issues`: issues and work items (`issues_events`).
    Issues,
    /// `confidential_issues`: confidential issues (`confidential_issues_events`).
    ConfidentialIssues,
    /// `merge_requests`: merge requests (`merge_requests_events`).
    MergeRequests,
    /// `note`: comments (`note_events`).
    Note,
    /// `confidential_note`: comments on confidential items (`confidential_note_events`).
    ConfidentialNote,
    /// `pipeline`: pipelines (`pipeline_events`).
    Pipeline,
    /// `job`: CI jobs (`job_events`).
    Job,
    /// `releases`: releases (`releases_events`).
    Releases,
    /// `wiki_page`: wiki pages (`wiki_page_events`).
    WikiPage,
    /// `deployment`: deployments (`deployment_events`).
    Deployment,
}

impl HookEvent {
    /// Every kind, in GitLab's order.
    pub const ALL: [HookEvent; 12] = [
        HookEvent::Push,
        HookEvent::TagPush,
        HookEvent::Issues,
        HookEvent::ConfidentialIssues,
        HookEvent::MergeRequests,
        HookEvent::Note,
        HookEvent::ConfidentialNote,
        HookEvent::Pipeline,
        HookEvent::Job,
        HookEvent::Releases,
        HookEvent::WikiPage,
        HookEvent::Deployment,
    ];

    /// The default subscription: push, tag push, issues, confidential issues, merge requests,
    /// notes, confidential notes, pipelines.
    pub const DEFAULT: [HookEvent; 8] = [
        HookEvent::Push,
        HookEvent::TagPush,
        HookEvent::Issues,
        HookEvent::ConfidentialIssues,
        HookEvent::MergeRequests,
        HookEvent::Note,
        HookEvent::ConfidentialNote,
        HookEvent::Pipeline,
    ];

    /// The name used in the config file.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::Push => "push",
            HookEvent::TagPush => "tag_push",
            HookEvent::Issues => "issues",
            HookEvent::ConfidentialIssues => "confidential_issues",
            HookEvent::MergeRequests => "merge_requests",
            HookEvent::Note => "note",
            HookEvent::ConfidentialNote => "confidential_note",
            HookEvent::Pipeline => "pipeline",
            HookEvent::Job => "job",
            HookEvent::Releases => "releases",
            HookEvent::WikiPage => "wiki_page",
            HookEvent::Deployment => "deployment",
        }
    }

    /// The boolean field of GitLab's hook API for this kind (`push_events`, …).
    pub fn field(self) -> &'static str {
        match self {
            HookEvent::Push => "push_events",
            HookEvent::TagPush => "tag_push_events",
            HookEvent::Issues => "issues_events",
            HookEvent::ConfidentialIssues => "confidential_issues_events",
            HookEvent::MergeRequests => "merge_requests_events",
            HookEvent::Note => "note_events",
            HookEvent::ConfidentialNote => "confidential_note_events",
            HookEvent::Pipeline => "pipeline_events",
            HookEvent::Job => "job_events",
            HookEvent::Releases => "releases_events",
            HookEvent::WikiPage => "wiki_page_events",
            HookEvent::Deployment => "deployment_events",
        }
    }

    /// The kind with this config name, if any.
    pub fn from_name(name: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// One project hook as `GET /projects/:id/hooks` shows it (unknown fields kept for the flags).
#[derive(Debug, Clone, Deserialize)]
pub struct ProjectHook {
    /// The hook's ID.
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    /// The URL GitLab calls.
    #[serde(default)]
    pub url: String,
    /// Branch filter for push events (`null` or empty: every branch).
    #[serde(default)]
    pub push_events_branch_filter: Option<String>,
    /// Whether GitLab verifies the TLS certificate (absent: GitLab's default, true).
    #[serde(default)]
    pub enable_ssl_verification: Option<bool>,
    /// `executable`, `disabled` or `temporarily_disabled` on GitLab ≥ 15.7.
    #[serde(default)]
    pub alert_status: Option<String>,
    /// Every other field, including the `*_events` flags.
    #[serde(flatten)]
    pub rest: serde_json::Map<String, serde_json::Value>,
}

impl ProjectHook {
    /// Whether the hook is subscribed to `event` (an absent or `null` flag counts as off).
    pub fn has(&self, event: HookEvent) -> bool {
        self.rest
            .get(event.field())
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    /// The events among [`HookEvent::ALL`] the hook is subscribed to.
    pub fn events(&self) -> BTreeSet<HookEvent> {
        HookEvent::ALL
            .into_iter()
            .filter(|e| self.has(*e))
            .collect()
    }

    /// True when GitLab has stopped calling the hook after repeated failures.
    pub fn is_disabled(&self) -> bool {
        matches!(
            self.alert_status.as_deref(),
            Some("disabled" | "temporarily_disabled")
        )
    }
}

/// A project as GitLab's project lists show it (only what setup needs).
#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    /// The project's ID.
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    /// `group/subgroup/project`.
    #[serde(default)]
    pub path_with_namespace: Option<String>,
    /// Whether the project is archived (absent in `simple` views: the listing filters instead).
    #[serde(default)]
    pub archived: Option<bool>,
}

impl Project {
    /// The path if known, else the ID.
    pub fn label(&self) -> String {
        self.path_with_namespace
            .clone()
            .unwrap_or_else(|| self.id.to_string())
    }
}

/// The user a token belongs to (`GET /user`).
#[derive(Debug, Clone, Deserialize)]
pub struct User {
    /// The user's ID.
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    /// The login name.
    #[serde(default)]
    pub username: String,
}

/// GitLab documents IDs as integers, but its own OpenAPI file types some as strings: take both.
fn flexible_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Num(u64),
        Text(String),
    }
    match Id::deserialize(d)? {
        Id::Num(n) => Ok(n),
        Id::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("id {s:?} is not a number"))),
    }
}

/// One delivery in a hook's log, as `GET /projects/:id/hooks/:hook_id/events` shows it
/// (GitLab ≥ 17.3; the last 7 days, newest first). GitLab redacts the secret token in
/// `request_headers`; the other headers are those it sent.
#[derive(Debug, Clone, Deserialize)]
pub struct HookLogEntry {
    /// The log entry's ID (the `hook_event_id` of the resend call).
    #[serde(deserialize_with = "flexible_id")]
    pub id: u64,
    /// What triggered it (`push_hooks`, …).
    #[serde(default)]
    pub trigger: Option<String>,
    /// The headers GitLab sent (`Idempotency-Key`, `X-Gitlab-Event`, …), if logged.
    #[serde(default)]
    pub request_headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// The body GitLab sent (a JSON object, or its text), if logged.
    #[serde(default)]
    pub request_data: Option<serde_json::Value>,
    /// The receiver's answer (`"200"`, `500`, or a word such as `internal error` when no HTTP
    /// answer came).
    #[serde(default)]
    pub response_status: Option<serde_json::Value>,
}

impl HookLogEntry {
    /// Whether the receiver answered 2xx.
    pub fn succeeded(&self) -> bool {
        let code = match &self.response_status {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        code.is_some_and(|c| (200..300).contains(&c))
    }

    /// The request header `name` (any case), if logged.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request_headers
            .as_ref()?
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    }

    /// The key the bridge deduplicates this delivery on, as its receiver computes it:
    /// `Idempotency-Key`, else `X-Gitlab-Webhook-UUID`.
    pub fn dedupe_key(&self) -> Option<&str> {
        self.header("idempotency-key")
            .or_else(|| self.header("x-gitlab-webhook-uuid"))
    }

    /// The body as sent, when the log holds it as one JSON object.
    pub fn body(&self) -> Option<Vec<u8>> {
        match self.request_data.as_ref()? {
            // An empty object is what a log without the body shows.
            v @ serde_json::Value::Object(o) if !o.is_empty() => serde_json::to_vec(v).ok(),
            serde_json::Value::String(text) => {
                let v: serde_json::Value = serde_json::from_str(text).ok()?;
                let full = v.as_object().is_some_and(|o| !o.is_empty());
                full.then(|| text.as_bytes().to_vec())
            }
            _ => None,
        }
    }
}

/// The hook the bridge wants on every selected project.
#[derive(Debug, Clone)]
pub struct DesiredHook {
    /// The URL GitLab should call (`[gitlab] hook_url`).
    pub url: String,
    /// The secret GitLab sends in `X-Gitlab-Token` (`server.secret_token`).
    pub token: Secret,
    /// The Standard-Webhooks signing token (`server.signing_token`), if configured.
    pub signing_token: Option<Secret>,
    /// The subscribed events; the other kinds of [`HookEvent::ALL`] are turned off.
    pub events: BTreeSet<HookEvent>,
    /// Branch filter for push events; `None` means every branch.
    pub push_events_branch_filter: Option<String>,
    /// Whether GitLab must verify the bridge's TLS certificate.
    pub enable_ssl_verification: bool,
}

impl DesiredHook {
    /// The trigger of the test request that re-enables a disabled hook (GitLab re-enables it
    /// when the bridge answers 2xx): the first subscribed event with a test trigger, else push.
    pub fn test_trigger(&self) -> &'static str {
        self.events
            .iter()
            .map(|e| e.field())
            .find(|f| *f != "deployment_events")
            .unwrap_or("push_events")
    }

    /// The JSON body of `POST`/`PUT …/hooks`. It carries the secrets: build it only to send it.
    pub fn request_body(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        body.insert("url".into(), self.url.clone().into());
        body.insert("name".into(), HOOK_NAME.into());
        body.insert("description".into(), HOOK_DESCRIPTION.into());
        // Always sent: GitLab resets the secret whenever the URL changes.
        body.insert("token".into(), self.token.expose().into());
        if let Some(s) = &self.signing_token {
            body.insert("signing_token".into(), s.expose().into());
        }
        for e in HookEvent::ALL {
            body.insert(e.field().into(), self.events.contains(&e).into());
        }
        body.insert(
            "push_events_branch_filter".into(),
            self.push_events_branch_filter
                .clone()
                .unwrap_or_default()
                .into(),
        );
        body.insert(
            "enable_ssl_verification".into(),
            self.enable_ssl_verification.into(),
        );
        serde_json::Value::Object(body)
    }

    /// What differs between `hook` and this, one fragment per setting; empty when identical.
    /// The tokens cannot be compared: GitLab never returns them.
    pub fn differences(&self, hook: &ProjectHook) -> Vec<String> {
        let mut out = Vec::new();
        let have = hook.events();
        let added: Vec<&str> = self.events.difference(&have).map(|e| e.name()).collect();
        let removed: Vec<&str> = have.difference(&self.events).map(|e| e.name()).collect();
        if !added.is_empty() || !removed.is_empty() {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("+{}", added.join(" +")));
            }
            if !removed.is_empty() {
                parts.push(format!("-{}", removed.join(" -")));
            }
            out.push(format!("events {}", parts.join(" ")));
        }
        let want = self.push_events_branch_filter.as_deref().unwrap_or("");
        let got = hook.push_events_branch_filter.as_deref().unwrap_or("");
        if want != got {
            out.push(format!("branch filter {got:?} → {want:?}"));
        }
        // GitLab's default is on, so an absent flag means on.
        let ssl = hook.enable_ssl_verification.unwrap_or(true);
        if ssl != self.enable_ssl_verification {
            let word = |b: bool| if b { "on" } else { "off" };
            out.push(format!(
                "ssl verification {} → {}",
                word(ssl),
                word(self.enable_ssl_verification)
            ));
        }
        out
    }
}

/// The canonical form of a hook URL for matching: scheme, host and port (default ports made
/// explicit), the path without a trailing slash, and the query pairs sorted. The fragment is
/// ignored. A string that does not parse is compared as trimmed text without a trailing slash.
pub fn normalize_hook_url(raw: &str) -> String {
    let trimmed = raw.trim();
    let Ok(url) = url::Url::parse(trimmed) else {
        return trimmed.trim_end_matches('/').to_string();
    };
    let mut pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let userinfo = match (url.username(), url.password()) {
        ("", None) => String::new(),
        (u, None) => format!("{u}@"),
        (u, Some(p)) => format!("{u}:{p}@"),
    };
    format!(
        "{}://{}{}:{}{}?{}",
        url.scheme(),
        userinfo,
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0),
        url.path().trim_end_matches('/'),
        query.join("&")
    )
}

/// Whether two hook URLs designate the same hook (ignoring a trailing slash and query order).
pub fn same_hook_url(a: &str, b: &str) -> bool {
    normalize_hook_url(a) == normalize_hook_url(b)
}

/// What setup should do for one project.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Make sure the bridge's hook exists and is current.
    Install {
        /// Delete extra copies of the bridge's hook (`--yes`); otherwise only report them.
        delete_duplicates: bool,
    },
    /// Delete every hook of the bridge (`--remove`), and nothing else.
    Remove,
}

/// One step of a project's plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// No hook of ours: create it.
    Create,
    /// Our hook differs: update it.
    Update {
        /// The hook to update.
        hook_id: u64,
        /// What differs (see [`DesiredHook::differences`]).
        changes: Vec<String>,
    },
    /// Our hook is as wanted.
    Unchanged {
        /// The hook.
        hook_id: u64,
        /// GitLab has stopped calling it after failures.
        disabled: bool,
    },
    /// Delete one of our hooks.
    Delete {
        /// The hook to delete.
        hook_id: u64,
        /// Why: a duplicate of this hook, or `None` for `--remove`.
        duplicate_of: Option<u64>,
    },
    /// A duplicate of our hook, left in place because `--yes` was not given.
    KeepDuplicate {
        /// The duplicate.
        hook_id: u64,
        /// The hook that is kept as ours.
        of: u64,
    },
    /// `--remove` on a project that has no hook of ours.
    NothingToRemove,
}

impl Op {
    /// The action word shown in the plan table.
    pub fn action(&self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update { .. } => "update",
            Op::Unchanged { .. } | Op::NothingToRemove => "unchanged",
            Op::Delete { .. } => "delete",
            Op::KeepDuplicate { .. } => "skip",
        }
    }

    /// Why, as shown in the plan table.
    pub fn reason(&self) -> String {
        match self {
            Op::Create => "no hook with the bridge's URL".to_string(),
            Op::Update { hook_id, changes } => format!("hook #{hook_id}: {}", changes.join("; ")),
            Op::Unchanged {
                hook_id,
                disabled: false,
            } => format!("hook #{hook_id} is up to date"),
            Op::Unchanged {
                hook_id,
                disabled: true,
            } => format!(
                "hook #{hook_id} is up to date but GitLab disabled it after failures \
                 (`setup --repair` re-enables it)"
            ),
            Op::Delete {
                hook_id,
                duplicate_of: Some(of),
            } => format!("hook #{hook_id} duplicates hook #{of}"),
            Op::Delete {
                hook_id,
                duplicate_of: None,
            } => format!("hook #{hook_id} is the bridge's (--remove)"),
            Op::KeepDuplicate { hook_id, of } => {
                format!("hook #{hook_id} duplicates hook #{of}; pass --yes to delete it")
            }
            Op::NothingToRemove => "no hook of the bridge".to_string(),
        }
    }

    /// Whether applying this step sends a changing request.
    pub fn writes(&self) -> bool {
        matches!(self, Op::Create | Op::Update { .. } | Op::Delete { .. })
    }
}

/// Decides what to do with one project's `hooks` (pure). Hooks whose URL is not the bridge's are
/// never touched. Among several hooks of ours, the first identical one (else the lowest ID) is
/// kept and the others are duplicates.
pub fn reconcile(hooks: &[ProjectHook], desired: &DesiredHook, mode: Mode) -> Vec<Op> {
    let mut ours: Vec<&ProjectHook> = hooks
        .iter()
        .filter(|h| same_hook_url(&h.url, &desired.url))
        .collect();
    ours.sort_by_key(|h| h.id);
    let delete_duplicates = match mode {
        Mode::Install { delete_duplicates } => delete_duplicates,
        Mode::Remove if ours.is_empty() => return vec![Op::NothingToRemove],
        Mode::Remove => {
            return ours
                .iter()
                .map(|h| Op::Delete {
                    hook_id: h.id,
                    duplicate_of: None,
                })
                .collect()
        }
    };
    let keep = ours
        .iter()
        .find(|h| desired.differences(h).is_empty())
        .or_else(|| ours.first());
    let Some(keep) = keep else {
        return vec![Op::Create];
    };
    let changes = desired.differences(keep);
    let mut plan = vec![if changes.is_empty() {
        Op::Unchanged {
            hook_id: keep.id,
            disabled: keep.is_disabled(),
        }
    } else {
        Op::Update {
            hook_id: keep.id,
            changes,
        }
    }];
    for h in ours.iter().filter(|h| h.id != keep.id) {
        plan.push(if delete_duplicates {
            Op::Delete {
                hook_id: h.id,
                duplicate_of: Some(keep.id),
            }
        } else {
            Op::KeepDuplicate {
                hook_id: h.id,
                of: keep.id,
            }
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URL: &str = "https://bridge.example.com/hooks/gitlab?b=2&a=1";

    #[test]
    fn log_entries_tell_failures_keys_and_bodies() {
        let entry = |v: serde_json::Value| -> HookLogEntry {
            match serde_json::from_value(v) {
                Ok(e) => e,
                Err(e) => panic!("{e}"),
            }
        };
        // As GitLab documents it: headers and body logged, status as text.
        let full = entry(
            json!({"id": 1, "trigger": "push_hooks", "response_status": "500",
            "request_headers": {"Idempotency-Key": "k1", "X-Gitlab-Event": "Push Hook"},
            "request_data": {"object_kind": "push"}}),
        );
        assert!(!full.succeeded());
        assert_eq!(full.dedupe_key(), Some("k1"));
        assert_eq!(full.header("x-gitlab-event"), Some("Push Hook"));
        assert_eq!(
            full.body().as_deref(),
            Some(&br#"{"object_kind":"push"}"#[..])
        );
        let bare = entry(json!({"id": "2", "response_status": "internal error",
            "request_headers": {}, "request_data": {}}));
        assert!(!bare.succeeded());
        assert_eq!((bare.dedupe_key(), bare.body()), (None, None));
        let ok = entry(json!({"id": 3, "response_status": 204,
            "request_headers": {"X-Gitlab-Webhook-UUID": "u3"}, "request_data": "{\"a\":1}"}));
        assert!(ok.succeeded());
        assert_eq!(ok.dedupe_key(), Some("u3"));
        assert_eq!(ok.body().as_deref(), Some(&br#"{"a":1}"#[..]));
    }

    fn desired() -> DesiredHook {
        DesiredHook {
            url: URL.to_string(),
            token: Secret::new("s3cret"),
            signing_token: None,
            events: HookEvent::DEFAULT.into_iter().collect(),
            push_events_branch_filter: None,
            enable_ssl_verification: true,
        }
    }

    fn hook(id: u64, url: &str, events: &[HookEvent]) -> ProjectHook {
        let mut v = json!({"id": id, "url": url, "enable_ssl_verification": true,
            "push_events_branch_filter": null});
        for e in HookEvent::ALL {
            v[e.field()] = json!(events.contains(&e));
        }
        match serde_json::from_value(v) {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn urls_match_ignoring_trailing_slash_query_order_and_default_port() {
        assert!(same_hook_url(
            URL,
            "https://BRIDGE.example.com:443/hooks/gitlab/?a=1&b=2"
        ));
        assert!(same_hook_url("https://x.test/h/", "https://x.test/h"));
        assert!(!same_hook_url(
            URL,
            "http://bridge.example.com/hooks/gitlab?a=1&b=2"
        ));
        assert!(!same_hook_url(
            URL,
            "https://bridge.example.com/hooks/other?a=1&b=2"
        ));
        assert!(!same_hook_url(
            URL,
            "https://bridge.example.com/hooks/gitlab?a=1"
        ));
        assert!(same_hook_url("not a url/", "not a url"));
    }

    #[test]
    fn no_hook_means_create_and_others_are_ignored() {
        let hooks = [hook(1, "https://ci.example.com/hook", &HookEvent::ALL)];
        let plan = reconcile(
            &hooks,
            &desired(),
            Mode::Install {
                delete_duplicates: true,
            },
        );
        assert_eq!(plan, vec![Op::Create]);
        assert_eq!(
            reconcile(&hooks, &desired(), Mode::Remove),
            vec![Op::NothingToRemove]
        );
    }

    #[test]
    fn identical_hook_is_left_alone() {
        let hooks = [hook(
            4,
            "https://bridge.example.com/hooks/gitlab/?a=1&b=2",
            &HookEvent::DEFAULT,
        )];
        let plan = reconcile(
            &hooks,
            &desired(),
            Mode::Install {
                delete_duplicates: false,
            },
        );
        assert_eq!(
            plan,
            vec![Op::Unchanged {
                hook_id: 4,
                disabled: false
            }]
        );
        assert!(!plan[0].writes());
    }

    #[test]
    fn stale_events_filter_or_ssl_mean_update() {
        let mut h = hook(7, URL, &[HookEvent::Push, HookEvent::Job]);
        h.push_events_branch_filter = Some("main".into());
        h.enable_ssl_verification = Some(false);
        let plan = reconcile(
            &[h],
            &desired(),
            Mode::Install {
                delete_duplicates: false,
            },
        );
        let [Op::Update {
            hook_id: 7,
            changes,
        }] = plan.as_slice()
        else {
            panic!("{plan:?}");
        };
        assert_eq!(
            changes,
            &vec![
                "events +tag_push +issues +confidential_issues +merge_requests +note \
                 +confidential_note +pipeline -job"
                    .to_string(),
                "branch filter \"main\" → \"\"".to_string(),
                "ssl verification off → on".to_string(),
            ]
        );
    }

    #[test]
    fn duplicates_keep_the_identical_one_and_need_yes_to_delete() {
        let hooks = [
            hook(3, URL, &[HookEvent::Push]),
            hook(9, URL, &HookEvent::DEFAULT),
            hook(5, "https://other.example.com/", &HookEvent::DEFAULT),
            hook(12, URL, &HookEvent::DEFAULT),
        ];
        let report = reconcile(
            &hooks,
            &desired(),
            Mode::Install {
                delete_duplicates: false,
            },
        );
        assert_eq!(
            report,
            vec![
                Op::Unchanged {
                    hook_id: 9,
                    disabled: false
                },
                Op::KeepDuplicate { hook_id: 3, of: 9 },
                Op::KeepDuplicate { hook_id: 12, of: 9 },
            ]
        );
        let delete = reconcile(
            &hooks,
            &desired(),
            Mode::Install {
                delete_duplicates: true,
            },
        );
        assert_eq!(
            delete[1..],
            [
                Op::Delete {
                    hook_id: 3,
                    duplicate_of: Some(9)
                },
                Op::Delete {
                    hook_id: 12,
                    duplicate_of: Some(9)
                },
            ]
        );
    }

    #[test]
    fn duplicates_without_an_identical_one_keep_the_lowest_id() {
        let hooks = [hook(8, URL, &[HookEvent::Push]), hook(2, URL, &[])];
        let plan = reconcile(
            &hooks,
            &desired(),
            Mode::Install {
                delete_duplicates: true,
            },
        );
        assert!(matches!(plan[0], Op::Update { hook_id: 2, .. }), "{plan:?}");
        assert_eq!(
            plan[1],
            Op::Delete {
                hook_id: 8,
                duplicate_of: Some(2)
            }
        );
    }

    #[test]
    fn remove_deletes_only_ours() {
        let hooks = [
            hook(1, "https://other.example.com/hook", &[]),
            hook(2, URL, &[]),
            hook(3, "https://bridge.example.com/hooks/gitlab/?a=1&b=2", &[]),
        ];
        assert_eq!(
            reconcile(&hooks, &desired(), Mode::Remove),
            vec![
                Op::Delete {
                    hook_id: 2,
                    duplicate_of: None
                },
                Op::Delete {
                    hook_id: 3,
                    duplicate_of: None
                },
            ]
        );
    }

    #[test]
    fn request_body_sets_every_managed_flag_and_the_token() {
        let mut d = desired();
        d.signing_token = Some(Secret::new("whsec_abc"));
        d.push_events_branch_filter = Some("main".into());
        let body = d.request_body();
        assert_eq!(body["token"], "s3cret");
        assert_eq!(body["signing_token"], "whsec_abc");
        assert_eq!(body["push_events"], true);
        assert_eq!(body["job_events"], false);
        assert_eq!(body["push_events_branch_filter"], "main");
        assert_eq!(body["enable_ssl_verification"], true);
        assert!(!format!("{d:?}").contains("s3cret"));
    }

    #[test]
    fn ids_may_be_strings_and_unknown_flags_are_off() {
        let h: Result<ProjectHook, _> = serde_json::from_value(
            json!({"id": "17", "url": "https://x.test", "push_events": null}),
        );
        let h = match h {
            Ok(h) => h,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(h.id, 17);
        assert!(h.events().is_empty());
        assert_eq!(h.enable_ssl_verification, None);
    }

    #[test]
    fn event_names_round_trip() {
        for e in HookEvent::ALL {
            assert_eq!(HookEvent::from_name(e.name()), Some(e));
        }
        assert_eq!(HookEvent::from_name("pushes"), None);
    }
}
