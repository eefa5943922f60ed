//! Conversation root cards: the `merge_request.root`, `issue.root` and `pipeline.root`
//! templates (built in, overridable like any other) rendered from an object's accumulated state
//! ([`crate::event::state::ObjectState`]) rather than from one event, with the context
//! `{"root": state}`. [`VARIABLES`] documents it in `docs/templates.md`; [`sample`] is a state
//! with every variable set, for `check` (strict mode).
//!
//! The card goes through the same escaping, limits and per-chat builders as every event's.

use super::{RenderError, Rendered, Renderer};
use crate::event::state::{ObjectState, PipelineState, ProjectState};
use crate::event::state::{Person, KINDS};
use serde_json::json;

/// The root template of objects of `kind` (`merge_request` → `merge_request.root`).
pub fn template(kind: &str) -> String {
    format!("{kind}.root")
}

/// Every root template's name, in the order the docs list them.
pub fn templates() -> Vec<String> {
    KINDS.iter().map(|k| template(k)).collect()
}

/// Every variable of the root templates, documented in `docs/templates.md`.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "root",
        "the object's state (not an event: these are the only variables)",
    ),
    (
        "root.kind",
        "`merge_request`, `issue` or `pipeline`: which root template renders it",
    ),
    ("root.title", "title (a pipeline: its name, else its ref)"),
    ("root.url", "web page"),
    (
        "root.iid",
        "project-scoped number (`!1`, `#23`; a pipeline's iid)",
    ),
    ("root.project", "where it lives"),
    ("root.project.path", "`group/project`"),
    ("root.project.url", "the project's web page"),
    (
        "root.state",
        "`opened`, `draft`, `merged`, `closed` or `reopened` (a pipeline: its status)",
    ),
    (
        "root.author",
        "who opened it (who triggered a pipeline), when an event said so: `name`, `username`",
    ),
    ("root.assignees", "assigned people (`name`, `username`)"),
    ("root.reviewers", "requested reviewers (merge requests)"),
    (
        "root.approved_by",
        "who approved it and did not take it back (merge requests)",
    ),
    ("root.labels", "label titles"),
    (
        "root.source_branch",
        "branch the changes come from (merge requests)",
    ),
    (
        "root.target_branch",
        "branch the changes go to (merge requests)",
    ),
    (
        "root.pipeline",
        "the last pipeline (a merge request's latest; empty before the first)",
    ),
    ("root.pipeline.id", "its id"),
    ("root.pipeline.status", "`success`, `failed`, `running`, …"),
    ("root.pipeline.url", "its web page"),
    ("root.pipeline.ref", "the branch or tag it ran for"),
    (
        "root.comments",
        "how many comments people wrote (GitLab's system notes aside) since the state began \
         (the built-in cards leave it out, so a comment does not edit the root)",
    ),
    (
        "root.updated_at",
        "when the object last changed, as GitLab said (RFC 3339; `{{date root.updated_at}}`)",
    ),
];

/// A state of `kind` with every variable set, for `check` and tests.
pub fn sample(kind: &str) -> ObjectState {
    let person = |name: &str, username: &str| Person {
        name: name.into(),
        username: Some(username.into()),
    };
    let (title, url) = match kind {
        "issue" => (
            "Crash on *start*",
            "https://gitlab.example.com/acme/app/-/issues/23",
        ),
        "pipeline" => (
            "main",
            "https://gitlab.example.com/acme/app/-/pipelines/981",
        ),
        _ => (
            "Add the [review] reminder",
            "https://gitlab.example.com/acme/app/-/merge_requests/12",
        ),
    };
    ObjectState {
        kind: kind.to_string(),
        title: title.into(),
        url: Some(url.into()),
        iid: Some(12),
        project: ProjectState {
            path: "acme/app".into(),
            url: Some("https://gitlab.example.com/acme/app".into()),
        },
        state: Some(
            if kind == "pipeline" {
                "success"
            } else {
                "merged"
            }
            .into(),
        ),
        author: Some(person("Carol", "carol")),
        assignees: vec![person("Alice Liddell", "alice")],
        reviewers: vec![person("Bob", "bob")],
        approved_by: vec![person("Bob", "bob")],
        labels: vec!["backend".into(), "needs review".into()],
        source_branch: Some("feature/reminder".into()),
        target_branch: Some("main".into()),
        pipeline: Some(PipelineState {
            id: Some(981),
            status: "success".into(),
            url: Some("https://gitlab.example.com/acme/app/-/pipelines/981".into()),
            git_ref: Some("feature/reminder".into()),
        }),
        comments: 3,
        updated_at: Some("2026-12-01T08:00:00Z".into()),
    }
}

impl Renderer {
    /// Renders `state`'s root card with its kind's root template (`NoTemplate` for a kind
    /// without one).
    pub fn render_root(&self, state: &ObjectState) -> Result<Rendered, RenderError> {
        let name = template(&state.kind);
        if self.origin(&name).is_none() {
            return Ok(Rendered::NoTemplate);
        }
        self.render_value(&name, json!({ "root": state }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{DateSettings, Platform, TemplateSource};
    use std::sync::Arc;

    fn renderer(user: Vec<TemplateSource>) -> Renderer {
        let dates = DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y".into(),
            day_format: "%d-%b-%Y".into(),
            clock: Arc::new(chrono::Utc::now),
        };
        Renderer::new(user, dates, true).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn card(r: &Renderer, state: &ObjectState) -> crate::render::Message {
        match r.render_root(state) {
            Ok(Rendered::Message(m, _)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn built_in_roots_show_the_state_in_strict_mode() {
        let r = renderer(Vec::new());
        for kind in KINDS {
            let m = card(&r, &sample(kind));
            let v: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap_or_default();
            let text = v["text"].as_str().unwrap_or_default();
            assert!(text.contains("acme/app"), "{kind}: {text}");
            // GitLab's markup characters are neutralised like in every card.
            assert!(
                !text.contains("[review]") && !text.contains("*start*"),
                "{text}"
            );
        }
        let v: serde_json::Value =
            serde_json::from_str(&card(&r, &sample("merge_request")).to_json()).unwrap_or_default();
        let text = v["text"].as_str().unwrap_or_default();
        for want in ["*State:* merged", "✅ passed", "*Approved by:* Bob"] {
            assert!(text.contains(want), "{want}: {text}");
        }
        // The count stays a variable, but the built-in card leaves it out: a comment does not
        // edit the root.
        assert!(!text.contains("Comments"), "{text}");
        assert_eq!(
            r.render_root(&ObjectState {
                kind: "push".into(),
                ..ObjectState::default()
            }),
            Ok(Rendered::NoTemplate)
        );
    }

    #[test]
    fn every_variable_is_documented() {
        let documented: Vec<&str> = VARIABLES.iter().map(|(p, _)| *p).collect();
        let v = serde_json::to_value(sample("merge_request")).unwrap_or_default();
        let mut paths = Vec::new();
        for (k, x) in v.as_object().into_iter().flatten() {
            paths.push(format!("root.{k}"));
            // People are documented as `name`, `username` with their list.
            if k != "author" {
                for sub in x.as_object().into_iter().flat_map(|o| o.keys()) {
                    paths.push(format!("root.{k}.{sub}"));
                }
            }
        }
        assert!(paths.len() > 20, "{paths:?}");
        for p in &paths {
            assert!(documented.contains(&p.as_str()), "{p} is not in VARIABLES");
        }
    }

    #[test]
    fn an_empty_state_still_renders_outside_strict_mode() {
        let dates = DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y".into(),
            day_format: "%d-%b-%Y".into(),
            clock: Arc::new(chrono::Utc::now),
        };
        let r = Renderer::new(Vec::new(), dates, false).unwrap_or_else(|e| panic!("{e:?}"));
        for kind in KINDS {
            let bare = ObjectState {
                kind: kind.into(),
                ..ObjectState::default()
            };
            assert!(
                matches!(r.render_root(&bare), Ok(Rendered::Message(..))),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_user_root_template_wins_and_other_kinds_keep_the_built_in() {
        let r = renderer(vec![TemplateSource {
            name: "merge_request.root".into(),
            origin: "mine/merge_request.root.hbs".into(),
            text: r#"{"text": "mine: {{root.title}} is {{root.state}}"}"#.into(),
        }]);
        let v: serde_json::Value =
            serde_json::from_str(&card(&r, &sample("merge_request")).to_json()).unwrap_or_default();
        assert!(
            v["text"].as_str().unwrap_or_default().starts_with("mine: "),
            "{v}"
        );
        assert_eq!(r.origin("issue.root"), Some("built-in:issue.root.hbs"));
        // Every platform's builder takes the root like any card.
        let m = card(&r, &sample("issue"));
        for p in [
            Platform::Cliq,
            Platform::Slack,
            Platform::Mattermost,
            Platform::Teams,
            Platform::GoogleChat,
            Platform::Discord,
            Platform::Telegram,
            Platform::Matrix,
        ] {
            assert!(!p.body(&m, "acme/app/issue/12").to_json().is_empty());
        }
    }
}
