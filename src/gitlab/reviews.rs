//! Which open merge requests a review reminder lists, and how: pure, from what
//! [`super::merge_requests::fetch_open`] fetched and the time now to the reminder's content.
//!
//! A merge request waits for review when it is open, in scope (its project path matches one of
//! the reminder's globs), not a draft, has at least one reviewer, still needs approvals
//! (`approvals_left > 0`) and was opened at least `min_age` ago. It is listed under each of its
//! reviewers (reviewers by username, their merge requests oldest first, at most
//! `max_per_reviewer` shown, then "and N more" with a link to GitLab's list of that reviewer's
//! merge requests). Optionally, merge requests with no reviewer for longer than
//! `unassigned_after` are listed apart.

use super::merge_requests::{Candidate, Fetched, MergeRequest};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a reminder asks for.
pub struct Rules<'a> {
    /// The time now.
    pub now: DateTime<Utc>,
    /// Merge requests younger than this are left out.
    pub min_age: Duration,
    /// Whether a project path is in scope (the reminder's globs).
    pub in_scope: &'a (dyn Fn(&str) -> bool + Sync),
    /// Most merge requests shown per reviewer (at least 1).
    pub max_per_reviewer: usize,
    /// The GitLab web address (`https://gitlab.example.com`), for the "and N more" links.
    pub gitlab_url: &'a str,
    /// List merge requests with no reviewer opened longer ago than this (`None`: do not).
    pub unassigned_after: Option<Duration>,
}

/// One merge request as the card shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    /// `group/project!12`.
    pub reference: String,
    /// The title.
    pub title: String,
    /// The merge request's page.
    pub url: String,
    /// The author's username (empty if unknown).
    pub author: String,
    /// How long it has been open, short (`3d 4h`, `5h`, `40m`).
    pub age: String,
    /// How long it has been open, in seconds.
    pub age_seconds: u64,
    /// When it was opened (RFC 3339, UTC).
    pub opened_at: String,
    /// Its head pipeline's status (`failed`, `success`, …), empty if not read.
    pub pipeline: String,
    /// Whether its head pipeline failed.
    pub pipeline_failed: bool,
}

/// One reviewer and the merge requests waiting for them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewerRow {
    /// The GitLab username (the template maps it to a mention).
    pub username: String,
    /// The display name.
    pub name: String,
    /// How many merge requests wait for them in all.
    pub count: usize,
    /// The oldest of them, at most `max_per_reviewer`.
    pub merge_requests: Vec<Waiting>,
    /// How many more are not shown.
    pub more: usize,
    /// GitLab's list of the open merge requests they review.
    pub more_url: String,
}

/// A reminder's content.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reviews {
    /// Reviewers with waiting merge requests, by username.
    pub reviewers: Vec<ReviewerRow>,
    /// How many distinct merge requests wait for review.
    pub count: usize,
    /// Merge requests without a reviewer for longer than `unassigned_after`, oldest first.
    pub unassigned: Vec<Waiting>,
    /// Whether the list may be incomplete (a project could not be read, or time ran out).
    pub incomplete: bool,
    /// What could not be read (`project acme/secret`, …).
    pub unreadable: Vec<String>,
}

impl Reviews {
    /// Nothing waits: no card is posted (unless the reminder wants an "all clear").
    pub fn is_empty(&self) -> bool {
        self.reviewers.is_empty() && self.unassigned.is_empty()
    }
}

/// Whether `mr` is worth reading approvals for: everything but the approvals test.
pub fn worth_asking(mr: &MergeRequest, rules: &Rules<'_>) -> bool {
    let Some(age) = age(mr, rules.now) else {
        return false;
    };
    if (mr.state != "opened" && !mr.state.is_empty()) || mr.is_draft() {
        return false;
    }
    if !(rules.in_scope)(&mr.project_path()) {
        return false;
    }
    if mr.reviewers.is_empty() {
        return rules.unassigned_after.is_some_and(|after| age >= after);
    }
    age >= rules.min_age
}

/// The reminder's content from what was fetched.
pub fn select(fetched: &Fetched, rules: &Rules<'_>) -> Reviews {
    let mut by_reviewer: BTreeMap<String, (String, Vec<(u64, Waiting)>)> = BTreeMap::new();
    let mut unassigned: Vec<(u64, Waiting)> = Vec::new();
    let mut count = 0;
    for Candidate { mr, approvals } in &fetched.candidates {
        if !worth_asking(mr, rules) {
            continue;
        }
        let Some(age) = age(mr, rules.now) else {
            continue;
        };
        let row = waiting(mr, age);
        if mr.reviewers.is_empty() {
            unassigned.push((age.as_secs(), row));
            continue;
        }
        // Approvals that could not be read: GitLab's merge status decides.
        let waits = match approvals {
            Some(a) => a.waiting(),
            None => mr.detailed_merge_status == "not_approved",
        };
        if !waits {
            continue;
        }
        count += 1;
        for r in &mr.reviewers {
            by_reviewer
                .entry(r.username.clone())
                .or_insert_with(|| (r.name.clone(), Vec::new()))
                .1
                .push((age.as_secs(), row.clone()));
        }
    }
    let oldest_first = |v: &mut Vec<(u64, Waiting)>| {
        v.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then_with(|| a.1.reference.cmp(&b.1.reference))
        });
    };
    let keep = rules.max_per_reviewer.max(1);
    let base = rules.gitlab_url.trim_end_matches('/');
    let reviewers = by_reviewer
        .into_iter()
        .map(|(username, (name, mut rows))| {
            oldest_first(&mut rows);
            let total = rows.len();
            let more_url = format!(
                "{base}/dashboard/merge_requests?state=opened&reviewer_username={}",
                url::form_urlencoded::byte_serialize(username.as_bytes()).collect::<String>()
            );
            ReviewerRow {
                username,
                name,
                count: total,
                merge_requests: rows.into_iter().take(keep).map(|(_, w)| w).collect(),
                more: total.saturating_sub(keep),
                more_url,
            }
        })
        .collect();
    oldest_first(&mut unassigned);
    Reviews {
        reviewers,
        count,
        unassigned: unassigned.into_iter().map(|(_, w)| w).collect(),
        incomplete: fetched.incomplete,
        unreadable: fetched.unreadable.iter().map(|(s, _)| s.label()).collect(),
    }
}

/// How long `mr` has been open (`None` if GitLab did not say when it was opened).
fn age(mr: &MergeRequest, now: DateTime<Utc>) -> Option<Duration> {
    (now - mr.opened_at()?)
        .to_std()
        .ok()
        .or(Some(Duration::ZERO))
}

fn waiting(mr: &MergeRequest, age: Duration) -> Waiting {
    let pipeline = mr
        .head_pipeline
        .as_ref()
        .map(|p| p.status.clone())
        .unwrap_or_default();
    Waiting {
        reference: mr.reference(),
        title: mr.title.clone(),
        url: mr.web_url.clone(),
        author: mr
            .author
            .as_ref()
            .map(|a| a.username.clone())
            .unwrap_or_default(),
        age: age_text(age),
        age_seconds: age.as_secs(),
        opened_at: mr
            .opened_at()
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        pipeline_failed: pipeline == "failed",
        pipeline,
    }
}

/// `3d 4h`, `5h 10m`, `40m` (two units at most; under a minute is `0m`).
pub fn age_text(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, minutes) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    match (days, hours) {
        (0, 0) => format!("{minutes}m"),
        (0, h) if minutes > 0 => format!("{h}h {minutes}m"),
        (0, h) => format!("{h}h"),
        (d, 0) => format!("{d}d"),
        (d, h) => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gitlab::merge_requests::{Approvals, Source};
    use serde_json::json;

    const NOW: &str = "2026-12-06T12:00:00Z";

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(NOW)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// A merge request of `project`, `hours` old, with `reviewers`.
    fn mr(project: &str, iid: u64, hours: i64, reviewers: &[&str]) -> MergeRequest {
        let opened = now() - chrono::Duration::hours(hours);
        serde_json::from_value(json!({
            "iid": iid, "project_id": 1, "title": format!("Change {iid}"), "state": "opened",
            "web_url": format!("https://gitlab.example.com/{project}/-/merge_requests/{iid}"),
            "author": {"username": "carol", "name": "Carol"},
            "reviewers": reviewers.iter().map(|r| json!({"username": r, "name": r.to_uppercase()})).collect::<Vec<_>>(),
            "draft": false, "created_at": opened.to_rfc3339(),
            "detailed_merge_status": "not_approved",
            "references": {"full": format!("{project}!{iid}")}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn left(n: u32) -> Option<Approvals> {
        Some(Approvals {
            approved: Some(n == 0),
            approvals_left: Some(n),
            approved_by: Vec::new(),
        })
    }

    fn candidates(c: Vec<(MergeRequest, Option<Approvals>)>) -> Fetched {
        Fetched {
            candidates: c
                .into_iter()
                .map(|(mr, approvals)| Candidate { mr, approvals })
                .collect(),
            ..Fetched::default()
        }
    }

    fn acme(path: &str) -> bool {
        path.starts_with("acme/")
    }

    fn rules(max: usize) -> Rules<'static> {
        Rules {
            now: now(),
            min_age: Duration::from_secs(4 * 3600),
            in_scope: &acme,
            max_per_reviewer: max,
            gitlab_url: "https://gitlab.example.com/",
            unassigned_after: None,
        }
    }

    fn refs(r: &ReviewerRow) -> Vec<&str> {
        r.merge_requests
            .iter()
            .map(|w| w.reference.as_str())
            .collect()
    }

    #[test]
    fn each_exclusion_leaves_the_merge_request_out() {
        let mut draft = mr("acme/app", 2, 30, &["alice"]);
        draft.draft = Some(true);
        let mut closed = mr("acme/app", 7, 30, &["alice"]);
        closed.state = "merged".into();
        let f = candidates(vec![
            (mr("acme/app", 1, 30, &["alice"]), left(1)),
            (draft, left(1)),
            (mr("acme/app", 3, 30, &["alice"]), left(0)),
            (mr("acme/app", 4, 3, &["alice"]), left(1)),
            (mr("acme/app", 5, 30, &[]), left(1)),
            (mr("other/app", 6, 30, &["alice"]), left(1)),
            (closed, left(1)),
        ]);
        let r = select(&f, &rules(10));
        assert_eq!(r.count, 1);
        assert_eq!(r.reviewers.len(), 1);
        assert_eq!(refs(&r.reviewers[0]), vec!["acme/app!1"]);
        assert!(r.unassigned.is_empty());
        // Exactly min_age old counts.
        let f = candidates(vec![(mr("acme/app", 8, 4, &["alice"]), left(2))]);
        assert_eq!(select(&f, &rules(10)).count, 1);
    }

    #[test]
    fn grouped_by_reviewer_oldest_first_and_cut_with_a_link() {
        let f = candidates(vec![
            (mr("acme/app", 1, 10, &["bob", "alice"]), left(1)),
            (mr("acme/app", 2, 50, &["alice"]), left(1)),
            (mr("acme/lib", 3, 30, &["alice"]), left(2)),
            (mr("acme/lib", 4, 20, &["alice"]), left(1)),
        ]);
        let r = select(&f, &rules(2));
        assert_eq!(r.count, 4);
        let names: Vec<&str> = r.reviewers.iter().map(|x| x.username.as_str()).collect();
        assert_eq!(names, vec!["alice", "bob"]);
        let alice = &r.reviewers[0];
        assert_eq!(refs(alice), vec!["acme/app!2", "acme/lib!3"]);
        assert_eq!((alice.count, alice.more), (4, 2));
        assert_eq!(alice.name, "ALICE");
        assert_eq!(
            alice.more_url,
            "https://gitlab.example.com/dashboard/merge_requests?state=opened&reviewer_username=alice"
        );
        assert_eq!(alice.merge_requests[0].age, "2d 2h");
        assert_eq!(alice.merge_requests[0].author, "carol");
        assert_eq!(refs(&r.reviewers[1]), vec!["acme/app!1"]);
        assert_eq!(r.reviewers[1].more, 0);
        assert!(!r.is_empty());
    }

    #[test]
    fn unknown_approvals_follow_the_merge_status_and_unreadable_projects_show() {
        let mut mergeable = mr("acme/app", 2, 30, &["alice"]);
        mergeable.detailed_merge_status = "mergeable".into();
        let mut f = candidates(vec![
            (mr("acme/app", 1, 30, &["alice"]), None),
            (mergeable, None),
        ]);
        f.incomplete = true;
        f.unreadable = vec![(Source::Project("acme/secret".into()), "404".into())];
        let r = select(&f, &rules(10));
        assert_eq!(refs(&r.reviewers[0]), vec!["acme/app!1"]);
        assert!(r.incomplete);
        assert_eq!(r.unreadable, vec!["project acme/secret"]);
    }

    #[test]
    fn unassigned_merge_requests_are_listed_apart_when_asked() {
        let f = candidates(vec![
            (mr("acme/app", 1, 80, &[]), None),
            (mr("acme/app", 2, 10, &[]), None),
        ]);
        assert!(select(&f, &rules(10)).is_empty());
        let mut with = rules(10);
        with.unassigned_after = Some(Duration::from_secs(48 * 3600));
        let r = select(&f, &with);
        assert_eq!(r.count, 0);
        assert_eq!(
            r.unassigned
                .iter()
                .map(|w| w.reference.as_str())
                .collect::<Vec<_>>(),
            vec!["acme/app!1"]
        );
    }

    #[test]
    fn failed_pipelines_are_flagged() {
        let mut m = mr("acme/app", 1, 30, &["alice"]);
        m.head_pipeline = serde_json::from_value(json!({"status": "failed"})).ok();
        let r = select(&candidates(vec![(m, left(1))]), &rules(10));
        let w = &r.reviewers[0].merge_requests[0];
        assert!(w.pipeline_failed);
        assert_eq!(w.pipeline, "failed");
    }

    #[test]
    fn ages_are_short() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(age_text(Duration::from_secs(59)), "0m");
        assert_eq!(age_text(Duration::from_secs(40 * 60)), "40m");
        assert_eq!(age_text(h(5)), "5h");
        assert_eq!(age_text(h(5) + Duration::from_secs(600)), "5h 10m");
        assert_eq!(age_text(h(48)), "2d");
        assert_eq!(age_text(h(76)), "3d 4h");
    }
}
