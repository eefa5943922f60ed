//! Every event kind with the default templates, table-driven over GitLab's real payloads: each
//! fixture renders a Cliq-shaped message naming the actor, the object and a link; the odd shapes
//! real payloads take (Test button, > 20 commits, empty commit lists, System Hook bodies, missing
//! objects) degrade gracefully; updates say what changed; `[mentions]` turns mapped people into
//! Cliq mentions and nothing else does.

use crate::support::cliq::cliq_violations;
use crate::support::renderer::{dates_at, message, renderer_with, text};
use crate::support::samples;
use crate::support::turn;
use chrono::{TimeZone, Utc};
use gitlab_chat_bridge::event::{self, Event};
use gitlab_chat_bridge::render::{DateSettings, Mentions, RenderSettings, Renderer};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn parse(header: &str, v: Value) -> Event {
    event::parse(Some(header), v).unwrap()
}

/// UTC, on a clock stopped at 2026-01-01 12:00.
fn dates() -> DateSettings {
    dates_at("UTC", Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap())
}

fn renderer() -> Renderer {
    renderer_with(Vec::new(), dates())
}

fn renderer_with_mentions(pairs: &[(&str, &str)]) -> Renderer {
    let settings = RenderSettings {
        dates: dates(),
        mentions: Mentions::new(pairs.iter().copied()),
    };
    renderer_with(Vec::new(), settings)
}

/// Problems any rendered message must not have: `null`, template syntax, empty `Label:` lines.
fn text_problems(m: &Value) -> Vec<String> {
    let t = text(m);
    let mut out = Vec::new();
    for bad in ["null", "undefined", "{{", "}}"] {
        if t.contains(bad) || m["card"]["title"].as_str().unwrap_or("").contains(bad) {
            out.push(format!("{bad:?} in message"));
        }
    }
    for l in t.lines() {
        let l = l.trim();
        if l.ends_with(':') || l.ends_with(":*") || l.is_empty() {
            out.push(format!("empty line or field {l:?}"));
        }
    }
    out
}

/// Payloads with no URL at all (group webhooks): their messages cannot link anywhere.
const NO_URL_IN_PAYLOAD: [&str; 20] = [
    "access_token__group.json",
    "member__access_request.json",
    "member__access_request_denied.json",
    "member__add_to_group.json",
    "member__remove_from_group.json",
    "member__update_for_group.json",
    "project__create.json",
    "project__destroy.json",
    "subgroup__create.json",
    "subgroup__destroy.json",
    "user__create.json",
    "user__failed_login.json",
    "project_member__add.json",
    "project_member__remove.json",
    "project_member__update.json",
    "group__create.json",
    "group__destroy.json",
    "group__rename.json",
    "ssh_key__create.json",
    "ssh_key__destroy.json",
];

/// Payloads that name no user: their messages cannot name an actor.
const NO_ACTOR_IN_PAYLOAD: [&str; 16] = [
    "access_token__group.json",
    "access_token__project.json",
    "milestone__create.json",
    "project__create.json",
    "project__destroy.json",
    "release__create.json",
    "subgroup__create.json",
    "subgroup__destroy.json",
    "vulnerability__basic.json",
    "user__create.json",
    "user__failed_login.json",
    "group__create.json",
    "group__destroy.json",
    "group__rename.json",
    "ssh_key__create.json",
    "ssh_key__destroy.json",
];

/// (fixture, key, what the message must show: the object's title/name/ref/tag and its link).
const FIXTURES: [(&str, &str, &[&str]); 41] = [
    (
        "access_token__group.json",
        "access_token.expiring",
        &["Group access token", "acd", "twitter", "26-Jan-2024"],
    ),
    (
        "access_token__project.json",
        "access_token.expiring",
        &[
            "Project access token",
            "acd",
            "flightjs/Flight",
            "https://example.com/flightjs/Flight/-/settings/access_tokens",
        ],
    ),
    (
        "deployment__basic.json",
        "deployment.success",
        &[
            "deployed",
            "279484c0",
            "staging",
            "https://staging.example.com",
            "/-/jobs/796",
        ],
    ),
    (
        "deployment__approved.json",
        "deployment.approved",
        &[
            "approved the deployment of",
            "279484c0",
            "staging",
            "Looks good to me",
        ],
    ),
    (
        "deployment__rejected.json",
        "deployment.rejected",
        &[
            "rejected the deployment of",
            "staging",
            "Not during the release freeze",
        ],
    ),
    (
        "emoji__award.json",
        "emoji.award",
        &[
            "reacted 👍 to",
            "a comment on issue #42",
            "New issue!",
            "http://example.com/flightjs/Flight/-/issues/42#note_363",
            "Testing 123",
        ],
    ),
    (
        "feature_flag__basic.json",
        "feature_flag.on",
        &[
            "turned on",
            "test-feature-flag",
            "http://example.com/gitlabhq/gitlab-test/-/feature_flags",
        ],
    ),
    (
        "issue__open.json",
        "issue.open",
        &[
            "opened issue",
            "New API: create/update/delete file",
            "http://example.com/diaspora/issues/23",
            "User1",
            "API",
        ],
    ),
    (
        "job__basic.json",
        "job.created",
        &[
            "Job [test]",
            "gitlab-script-trigger",
            "/-/jobs/1977",
            "/-/pipelines/2366",
            "2293ada6",
        ],
    ),
    (
        "member__access_request.json",
        "member.access_request",
        &["Test User", "requested access to", "webhook-test", "Guest"],
    ),
    (
        "member__access_request_denied.json",
        "member.access_request_denied",
        &["Test User", "was denied access to", "webhook-test"],
    ),
    (
        "member__add_to_group.json",
        "member.add",
        &["Test User", "was added to", "webhook-test", "Guest"],
    ),
    (
        "member__remove_from_group.json",
        "member.remove",
        &["Test User", "was removed from", "webhook-test"],
    ),
    (
        "member__update_for_group.json",
        "member.update",
        &["Test User", "webhook-test", "now Developer"],
    ),
    (
        "merge_request__open.json",
        "merge_request.open",
        &[
            "opened merge request",
            "MS-Viewport",
            "http://example.com/diaspora/merge_requests/1",
            "ms-viewport → master",
            "*Reviewers:* User1",
        ],
    ),
    (
        "milestone__create.json",
        "milestone.create",
        &[
            "Milestone",
            "v1.0",
            "was created",
            "http://example.com/gitlabhq/gitlab-test/-/milestones/10",
            "30-Jun-2025",
        ],
    ),
    (
        "note__commit.json",
        "note.commit",
        &["commit cfe32cf6", "This is a commit comment.", "#note_1243"],
    ),
    (
        "note__issue.json",
        "note.issue",
        &[
            "issue #17",
            "Hello world",
            "http://example.com/gitlab-org/gitlab-test/issues/17#note_1241",
        ],
    ),
    (
        "note__merge_request.json",
        "note.merge_request",
        &["merge request !1", "This MR needs work.", "#note_1244"],
    ),
    (
        "note__snippet.json",
        "note.snippet",
        &["snippet $53", "Is this snippet doing what it", "#note_1245"],
    ),
    (
        "pipeline__basic.json",
        "pipeline.success",
        &[
            "Pipeline [#31]",
            "passed on master",
            "http://example.com/gitlab-org/gitlab-test/-/pipelines/31",
            "(1m 3s)",
            "test-build",
            "/-/jobs/378",
            "!1 Test",
            "upstream-project #30",
        ],
    ),
    (
        "project__create.json",
        "project.create",
        &["Project *group1/project1* was created", "private", "John"],
    ),
    (
        "project__destroy.json",
        "project.destroy",
        &["Project *group1/project1* was deleted"],
    ),
    (
        "push__basic.json",
        "push",
        &[
            "pushed 4 commits to",
            "master",
            "/-/compare/",
            "fixed readme",
            "2 more commits",
        ],
    ),
    (
        "release__create.json",
        "release.create",
        &[
            "Release",
            "v1.1",
            "was created",
            "https://example.com/gitlab-org/release-webhook-example/-/releases/v1.1",
            "Changelog",
        ],
    ),
    (
        "subgroup__create.json",
        "subgroup.create",
        &["Subgroup *group1/subgroup1* was created", "group1"],
    ),
    (
        "subgroup__destroy.json",
        "subgroup.destroy",
        &["Subgroup *group1/subgroup1* was deleted"],
    ),
    (
        "tag_push__basic.json",
        "tag_push.create",
        &[
            "pushed tag",
            "v1.0.0",
            "http://example.com/jsmith/example/-/tags/v1.0.0",
            "82b3d5ae",
        ],
    ),
    (
        "vulnerability__basic.json",
        "vulnerability.confirmed",
        &[
            "REXML DoS vulnerability",
            "(high)",
            "was confirmed",
            "https://example.com/flightjs/Flight/-/security/vulnerabilities/1",
            "flightjs/Flight",
            "CVE-2024-41123",
        ],
    ),
    (
        "wiki_page__create.json",
        "wiki_page.create",
        &[
            "created wiki page",
            "Awesome",
            "http://example.com/root/awesome-project/-/wikis/awesome",
        ],
    ),
    (
        "user__create.json",
        "user.create",
        &["User *John Smith* (@js) was created", "js@gitlabhq.com"],
    ),
    (
        "user__failed_login.json",
        "user.failed_login",
        &["John Smith", "failed to sign in", "blocked"],
    ),
    (
        "project_member__add.json",
        "project_member.add",
        &[
            "John Smith",
            "was added to",
            "jsmith/storecloud",
            "as Maintainer",
        ],
    ),
    (
        "project_member__remove.json",
        "project_member.remove",
        &["John Smith", "was removed from", "jsmith/storecloud"],
    ),
    (
        "project_member__update.json",
        "project_member.update",
        &["John Smith", "now Maintainer"],
    ),
    (
        "group__create.json",
        "group.create",
        &["Group *storecloud* was created"],
    ),
    (
        "group__destroy.json",
        "group.destroy",
        &["Group *storecloud* was deleted"],
    ),
    (
        "group__rename.json",
        "group.rename",
        &[
            "parent-group/better-name",
            "was renamed",
            "parent-group/old-name",
        ],
    ),
    (
        "ssh_key__create.json",
        "ssh_key.create",
        &["SSH key added for *root*", "ssh-rsa", "john@localhost"],
    ),
    (
        "ssh_key__destroy.json",
        "ssh_key.destroy",
        &["SSH key removed for *root*"],
    ),
    (
        "repository__update.json",
        "repository.update",
        &[
            "John Smith",
            "pushed to",
            "jsmith/example",
            "8205ea8d → 4045ea7a",
            "/-/compare/",
        ],
    ),
];

#[test]
fn every_fixture_renders_actor_object_and_link() {
    let _turn = turn::shared();
    let r = renderer();
    let idx = samples::index();
    let listed: BTreeSet<&str> = FIXTURES.iter().map(|f| f.0).collect();
    let indexed: BTreeSet<&str> = idx.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(listed, indexed, "FIXTURES must cover INDEX.tsv exactly");
    let mut failures = Vec::new();
    for samples::Sample { file, header, .. } in &idx {
        let (_, key, needles) = FIXTURES.iter().find(|f| f.0 == file).unwrap();
        let payload = samples::json(file);
        let has_url = payload.to_string().contains("http");
        let ev = parse(header, payload);
        let mut fail = |why: String| failures.push(format!("{file}: {why}"));
        if ev.key != *key {
            fail(format!("key {} (want {key})", ev.key));
        }
        let m = message(&r, &ev);
        let t = text(&m);
        for v in cliq_violations(&m).into_iter().chain(text_problems(&m)) {
            fail(format!("{v} in {t:?}"));
        }
        let all = format!("{t}\n{}\n{}", m["card"]["title"], m["buttons"]);
        for n in *needles {
            if !all.contains(n) {
                fail(format!("{n:?} missing from {all:?}"));
            }
        }
        // The actor, whenever the payload names one.
        if ev.actor.name == "someone" {
            if !NO_ACTOR_IN_PAYLOAD.contains(&file.as_str()) {
                fail("payload has a user but the event has no actor".into());
            }
        } else if !t.contains(&ev.actor.name) {
            fail(format!("actor {:?} missing from {t:?}", ev.actor.name));
        }
        // A link, whenever the payload has any URL.
        if has_url {
            if !t.contains("](http") {
                fail(format!("no link in {t:?}"));
            }
        } else if !NO_URL_IN_PAYLOAD.contains(&file.as_str()) {
            fail("listed as URL-less but has no URL".into());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn system_hook_bodies_render_as_their_kind() {
    let _turn = turn::shared();
    let r = renderer();
    for (file, key) in [
        ("push__basic.json", "push"),
        ("tag_push__basic.json", "tag_push.create"),
        ("merge_request__open.json", "merge_request.open"),
        ("project__create.json", "project.create"),
    ] {
        let ev = parse("System Hook", samples::json(file));
        assert_eq!(ev.key, key, "{file}");
        let m = message(&r, &ev);
        assert_eq!(cliq_violations(&m), Vec::<String>::new(), "{file}");
        assert_eq!(text_problems(&m), Vec::<String>::new(), "{file}");
    }
}

type Mutate = fn(&mut Value);

/// Odd but real payload shapes.
/// (label, header, fixture, change, key, must show, must not show).
type EdgeCase = (
    &'static str,
    &'static str,
    &'static str,
    Mutate,
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);

const EDGE_CASES: [EdgeCase; 18] = [
    (
        "issue Test button",
        "Issue Hook",
        "issue__open.json",
        |v| {
            v["object_attributes"]
                .as_object_mut()
                .unwrap()
                .remove("action");
        },
        "issue.test",
        &["sent a test event for issue", "#23"],
        &[],
    ),
    (
        "merge request Test button",
        "Merge Request Hook",
        "merge_request__open.json",
        |v| {
            v["object_attributes"]
                .as_object_mut()
                .unwrap()
                .remove("action");
        },
        "merge_request.test",
        &["sent a test event for merge request", "!1"],
        &[],
    ),
    (
        "release Test button",
        "Release Hook",
        "release__create.json",
        |v| {
            v.as_object_mut().unwrap().remove("action");
        },
        "release",
        &["Release", "v1.1", "was updated"],
        &[],
    ),
    (
        "issue without assignees, labels, repository, project",
        "Issue Hook",
        "issue__open.json",
        |v| {
            v["assignees"] = Value::Null;
            v["labels"] = Value::Null;
            v["object_attributes"]["labels"] = Value::Null;
            v["repository"] = Value::Null;
            v["project"] = Value::Null;
            v.as_object_mut().unwrap().remove("assignee");
        },
        "issue.open",
        &[
            "opened issue",
            "#23",
            "http://example.com/diaspora/issues/23",
        ],
        &["Assignees", "Labels", " in "],
    ),
    (
        "merge request without reviewers and labels",
        "Merge Request Hook",
        "merge_request__open.json",
        |v| {
            v.as_object_mut().unwrap().remove("reviewers");
            v.as_object_mut().unwrap().remove("assignees");
            v["labels"] = json!([]);
            v["object_attributes"]["labels"] = Value::Null;
        },
        "merge_request.open",
        &["MS-Viewport"],
        &["Reviewers", "Assignees", "Labels"],
    ),
    (
        "push with project null uses the repository",
        "Push Hook",
        "push__basic.json",
        |v| {
            v["project"] = Value::Null;
        },
        "push",
        &["pushed 4 commits", "](http://example.com/mike/diaspora)"],
        &[],
    ),
    (
        "push with neither project nor repository",
        "Push Hook",
        "push__basic.json",
        |v| {
            v["project"] = Value::Null;
            v["repository"] = Value::Null;
        },
        "push",
        &["pushed 4 commits", "master"],
        &["compare"],
    ),
    (
        "push with no new commits",
        "Push Hook",
        "push__basic.json",
        |v| {
            v["commits"] = json!([]);
            v["total_commits_count"] = json!(0);
        },
        "push",
        &[
            "updated branch",
            "master",
            "(no new commits)",
            "/-/compare/",
        ],
        &["0 commits", "•"],
    ),
    (
        "push of more than 20 commits",
        "Push Hook",
        "push__basic.json",
        |v| {
            let c = v["commits"][0].clone();
            v["commits"] = Value::Array(
                (0..20)
                    .map(|i| {
                        let mut c = c.clone();
                        c["id"] = json!(format!("{i:040}"));
                        c
                    })
                    .collect(),
            );
            v["total_commits_count"] = json!(45);
        },
        "push",
        &[
            "pushed 45 commits",
            "…and 25 more commits",
            "[compare](http://example.com/mike/diaspora/-/compare/",
        ],
        &[],
    ),
    (
        "push with commits null",
        "Push Hook",
        "push__basic.json",
        |v| {
            v["commits"] = Value::Null;
            v["total_commits_count"] = Value::Null;
        },
        "push",
        &["updated branch", "(no new commits)"],
        &[],
    ),
    (
        "tag deleted",
        "Tag Push Hook",
        "tag_push__basic.json",
        |v| {
            v["before"] = v["after"].clone();
            v["after"] = json!("0000000000000000000000000000000000000000");
            v["checkout_sha"] = Value::Null;
        },
        "tag_push.delete",
        &["deleted tag", "v1.0.0"],
        &["/-/commit/"],
    ),
    (
        "pipeline with many failed jobs, child",
        "Pipeline Hook",
        "pipeline__basic.json",
        |v| {
            let b = v["builds"][2].clone();
            v["builds"] = Value::Array(
                (0..15)
                    .map(|i| {
                        let mut b = b.clone();
                        b["id"] = json!(1000 + i);
                        b["name"] = json!(format!("job-{i}"));
                        b
                    })
                    .collect(),
            );
            v["object_attributes"]["status"] = json!("failed");
            v["object_attributes"]["source"] = json!("parent_pipeline");
            v.as_object_mut().unwrap().remove("merge_request");
        },
        "pipeline.failed",
        &[
            "❌ Child pipeline",
            "failed on master",
            "*Failed jobs:* 15",
            "job-0",
            "job-9",
            "…and 5 more failed jobs",
        ],
        &["job-10", "Merge request"],
    ),
    (
        "pipeline without builds, commit or url",
        "Pipeline Hook",
        "pipeline__basic.json",
        |v| {
            v["builds"] = Value::Null;
            v["commit"] = Value::Null;
            v["source_pipeline"] = Value::Null;
            v["object_attributes"]
                .as_object_mut()
                .unwrap()
                .remove("url");
            v["object_attributes"]["status"] = json!("canceled");
        },
        "pipeline.canceled",
        &[
            "canceled",
            "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/pipelines/31",
        ],
        &["Failed jobs", "Commit", "Upstream"],
    ),
    (
        "old job payload without project",
        "Build Hook",
        "job__basic.json",
        |v| {
            v["project"] = Value::Null;
            v["build_status"] = json!("failed");
        },
        "job.failed",
        &[
            "❌ Job",
            "failed",
            "gitlab-org/gitlab-test",
            "http://192.168.64.1:3005/gitlab-org/gitlab-test/-/jobs/1977",
            "*Reason:* script",
        ],
        &[],
    ),
    (
        "group milestone",
        "Milestone Hook",
        "milestone__create.json",
        |v| {
            v["project"] = Value::Null;
            v["group"] = json!({"group_name": "wh-sub", "group_path": "wh-sub", "group_id": 102, "full_path": "wh-group/wh-sub"});
            v["action"] = json!("close");
        },
        "milestone.close",
        &["Milestone v1.0 was closed in group wh-group/wh-sub"],
        &[],
    ),
    (
        "emoji on a merge request, revoked",
        "Emoji Hook",
        "emoji__award.json",
        |v| {
            v["object_attributes"]["awardable_type"] = json!("MergeRequest");
            v["object_attributes"]["action"] = json!("revoke");
            v["object_attributes"]["name"] = json!("partyparrot");
            v["object_attributes"]["awarded_on_url"] =
                json!("http://example.com/flightjs/Flight/-/merge_requests/7");
            v["merge_request"] = json!({"iid": 7, "title": "Faster", "url": "http://example.com/flightjs/Flight/-/merge_requests/7"});
            v.as_object_mut().unwrap().remove("note");
        },
        "emoji.revoke",
        &["removed :partyparrot: from merge request !7", "Faster"],
        &["Testing 123"],
    ),
    (
        "work item epic without project",
        "Issue Hook",
        "issue__open.json",
        |v| {
            v["object_kind"] = json!("work_item");
            v["event_type"] = json!("work_item");
            v["object_attributes"]["type"] = json!("Epic");
            v["project"] = Value::Null;
            v["repository"] = Value::Null;
        },
        "work_item.open",
        &[
            "opened Epic",
            "#23 New API",
            "http://example.com/diaspora/issues/23",
        ],
        &[" in "],
    ),
    (
        "feature flag turned off",
        "Feature Flag Hook",
        "feature_flag__basic.json",
        |v| {
            v["object_attributes"]["active"] = json!(false);
        },
        "feature_flag.off",
        &["turned off feature flag", "test-feature-flag"],
        &[],
    ),
];

#[test]
fn odd_payload_shapes_degrade_gracefully() {
    let _turn = turn::shared();
    let r = renderer();
    let mut failures = Vec::new();
    for (label, header, file, mutate, key, wanted, unwanted) in EDGE_CASES {
        let mut v = samples::json(file);
        mutate(&mut v);
        let ev = parse(header, v);
        if ev.key != key {
            failures.push(format!("{label}: key {} (want {key})", ev.key));
            continue;
        }
        let m = message(&r, &ev);
        let t = text(&m);
        for p in cliq_violations(&m).into_iter().chain(text_problems(&m)) {
            failures.push(format!("{label}: {p} in {t:?}"));
        }
        for w in wanted {
            if !t.contains(w) {
                failures.push(format!("{label}: {w:?} missing from {t:?}"));
            }
        }
        for u in unwanted {
            if t.contains(u) {
                failures.push(format!("{label}: {u:?} should not be in {t:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn update(header: &str, file: &str, changes: Value) -> Event {
    let mut v = samples::json(file);
    v["object_attributes"]["action"] = json!("update");
    v["changes"] = changes;
    parse(header, v)
}

#[test]
fn updates_say_what_changed() {
    let _turn = turn::shared();
    let r = renderer_with_mentions(&[("bob", "555")]);
    let ev = update(
        "Issue Hook",
        "issue__open.json",
        json!({
            "updated_at": {"previous": "2017-09-15 16:50:55 UTC", "current": "2017-09-15 16:52:00 UTC"},
            "title": {"previous": "Old *title*", "current": "New API: create/update/delete file"},
            "labels": {"previous": [{"title": "API"}], "current": [{"title": "Platform"}]},
            "assignees": {"previous": [{"name": "Ann", "username": "ann"}], "current": [{"name": "Bob", "username": "bob"}]},
            "due_date": {"previous": "2026-01-02", "current": null},
            "milestone_id": {"previous": null, "current": 3},
            "description": {"previous": "a", "current": "b"},
            "state_id": {"previous": 2, "current": 1}
        }),
    );
    let t = text(&message(&r, &ev));
    for want in [
        "*Administrator* updated issue",
        "\n*Title:* Old ∗title∗ → New API: create/update/delete file",
        "\n*State:* closed → opened",
        "\n*Description:* edited",
        "\n*Labels:* +Platform, −API",
        "\n*Assignees:* +{@555}, −Ann",
        "\n*Milestone:* set",
        "\n*Due date:* 02-Jan-2026 → none",
    ] {
        assert!(t.contains(want), "{want:?} missing from {t:?}");
    }
    assert!(!t.contains("updated_at") && !t.contains("*Due:*"), "{t}");

    // Draft → ready on a merge request (the fixture's own `changes`), as a typed list too.
    let ev = update(
        "Merge Request Hook",
        "merge_request__open.json",
        samples::json("merge_request__open.json")["changes"].clone(),
    );
    match &ev.detail {
        event::Detail::MergeRequest(mr) => {
            let fields: Vec<&str> = mr.changes.iter().map(|c| c.field).collect();
            assert_eq!(fields, ["draft", "labels"]);
            assert_eq!(mr.changes[0].summary, "marked as ready");
        }
        other => panic!("{other:?}"),
    }
    let t = text(&message(&r, &ev));
    assert!(t.contains("\n*Draft:* marked as ready"), "{t}");
    assert!(t.contains("\n*Labels:* +Platform, −API"), "{t}");

    // An update that changed nothing worth telling keeps the usual summary, not a bare "updated".
    let ev = update(
        "Issue Hook",
        "issue__open.json",
        json!({"updated_at": {"previous": "a", "current": "b"}}),
    );
    let m = message(&r, &ev);
    assert!(text(&m).contains("\n*State:* opened"), "{}", text(&m));
    assert_eq!(text_problems(&m), Vec::<String>::new());

    // Work items show their changes the same way.
    let mut v = samples::json("issue__open.json");
    v["object_kind"] = json!("work_item");
    v["object_attributes"]["type"] = json!("Task");
    v["object_attributes"]["action"] = json!("update");
    let t = text(&message(&r, &parse("Issue Hook", v)));
    assert!(
        t.contains("updated Task") && t.contains("*Labels:* +Platform, −API"),
        "{t}"
    );
}

#[test]
fn mapped_people_become_mentions_and_nobody_else() {
    let _turn = turn::shared();
    let r = renderer_with_mentions(&[
        ("user1", "12345678"),
        ("root", "root@cliq.example"),
        ("carol@example.com", "777"),
    ]);
    // Assignees and reviewers.
    let t = text(&message(
        &r,
        &parse(
            "Merge Request Hook",
            samples::json("merge_request__open.json"),
        ),
    ));
    assert!(t.contains("*Assignees:* {@12345678}"), "{t}");
    assert!(t.contains("*Reviewers:* {@12345678}"), "{t}");
    // Unmapped people stay plain text; a mapping by e-mail works too.
    let mut v = samples::json("issue__open.json");
    v["assignees"] = json!([
        {"name": "Dave", "username": "dave"},
        {"name": "Carol", "username": "carol", "email": "carol@example.com"}
    ]);
    let t = text(&message(&r, &parse("Issue Hook", v)));
    assert!(t.contains("*Assignees:* Dave, {@777}"), "{t}");
    // Without [mentions] the same message names people.
    let t = text(&message(
        &renderer(),
        &parse(
            "Merge Request Hook",
            samples::json("merge_request__open.json"),
        ),
    ));
    assert!(t.contains("*Reviewers:* User1") && !t.contains("{@"), "{t}");

    // @name in comments: mapped → mention, unmapped → plain; GitLab text never mentions by itself.
    let mut v = samples::json("note__issue.json");
    v["object_attributes"]["note"] =
        json!("@root and @user1: please look. cc @dave {@all} {@available} {@12345678} mail root@example.com");
    let t = text(&message(&r, &parse("Note Hook", v)));
    assert!(
        t.contains("{@root@cliq.example} and {@12345678}: please look. cc @dave"),
        "{t}"
    );
    assert_eq!(
        t.matches("{@").count(),
        2,
        "only the two mapped mentions: {t}"
    );
    assert!(t.contains("mail root@example.com"), "{t}");

    // Hostile names and titles: a person called `{@all}` is not a mention; nor is a mapped
    // person's name written as text.
    let mut v = samples::json("issue__open.json");
    v["assignees"] = json!([{"name": "{@all}", "username": "mallory"}]);
    v["object_attributes"]["title"] = json!("{@all} @user1 {@12345678}");
    let m = message(&r, &parse("Issue Hook", v));
    let t = text(&m);
    assert!(!t.contains("{@all}") && !t.contains("{@12345678}"), "{t}");
    assert_eq!(cliq_violations(&m), Vec::<String>::new());
}

#[test]
fn every_kind_has_documented_variables() {
    let _turn = turn::shared();
    let kinds: BTreeSet<&str> = event::variables().iter().map(|(k, _)| *k).collect();
    for k in [
        "common",
        "issue",
        "work_item",
        "merge_request",
        "push",
        "tag_push",
        "note",
        "pipeline",
        "job",
        "release",
        "wiki_page",
        "deployment",
        "milestone",
        "emoji",
        "feature_flag",
        "access_token",
        "member",
        "project_event",
        "subgroup",
        "vulnerability",
    ] {
        assert!(kinds.contains(k), "{k} missing from event::variables()");
    }
    let documented: BTreeSet<&str> = event::variables()
        .iter()
        .flat_map(|(_, v)| v.iter().map(|(p, _)| *p))
        .collect();
    for (file, ev) in samples::events() {
        for p in event::serialized_paths(&ev) {
            assert!(documented.contains(p.as_str()), "{file}: {p} undocumented");
        }
    }
}
