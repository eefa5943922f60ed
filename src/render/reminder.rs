//! The review reminder's card: the `reminder` template (built in, overridable like any other)
//! rendered with a context of its own, not an event's: `{"reminder": {...}}`, the reminder's
//! name and content as [`crate::gitlab::reviews::Reviews`] serialises it (built by the caller,
//! which may import `gitlab`; this layer does not). [`VARIABLES`] documents it in
//! `docs/templates.md`; [`sample`] is a context with every variable, for `check` (strict mode)
//! and the preview page.
//!
//! The card goes through the same escaping, limits and per-chat builders as every event's.

use super::{RenderError, Rendered, Renderer};
use serde_json::{json, Value};

/// The template's name (`reminder.hbs`).
pub const TEMPLATE: &str = "reminder";

/// Every variable of the `reminder` template, documented in `docs/templates.md`.
pub const VARIABLES: &[(&str, &str)] = &[
    ("reminder", "the review reminder (not an event: these are the only variables)"),
    ("reminder.name", "the reminder's `name` (`[[reminders]]`)"),
    ("reminder.count", "how many distinct merge requests wait for review"),
    ("reminder.reviewers", "reviewers with waiting merge requests, by username"),
    ("reminder.reviewers[].username", "GitLab username (`{{mention username}}` mentions them through `[mentions]`)"),
    ("reminder.reviewers[].name", "display name"),
    ("reminder.reviewers[].count", "how many merge requests wait for them"),
    ("reminder.reviewers[].merge_requests", "the oldest of them (at most the reminder's `max_per_reviewer`), oldest first"),
    ("reminder.reviewers[].more", "how many more are not listed (0 when all are)"),
    ("reminder.reviewers[].more_url", "GitLab's list of the open merge requests they review"),
    ("reminder.unassigned", "merge requests without a reviewer for longer than the reminder's `unassigned_after` (empty unless set), oldest first"),
    ("reminder.incomplete", "true when the list may be incomplete (a project could not be read, or GitLab was too slow)"),
    ("reminder.unreadable", "what could not be read (`project acme/secret`)"),
    ("reminder.reviewers[].merge_requests[].reference", "`group/project!12` (the same fields for `reminder.unassigned[]`)"),
    ("reminder.reviewers[].merge_requests[].title", "title"),
    ("reminder.reviewers[].merge_requests[].url", "web page"),
    ("reminder.reviewers[].merge_requests[].author", "the author's username"),
    ("reminder.reviewers[].merge_requests[].age", "how long it has been open (`3d 4h`, `5h 10m`, `40m`)"),
    ("reminder.reviewers[].merge_requests[].age_seconds", "the same in seconds"),
    ("reminder.reviewers[].merge_requests[].opened_at", "when it was opened (RFC 3339, UTC; `{{date opened_at}}`)"),
    ("reminder.reviewers[].merge_requests[].pipeline", "its head pipeline's status (`failed`, `success`, …), empty when not read (`pipelines = true` reads it)"),
    ("reminder.reviewers[].merge_requests[].pipeline_failed", "true when its head pipeline failed"),
];

/// The template context of a reminder: `{"reminder": content}` with `name` added. `content`
/// is the serialised [`crate::gitlab::reviews::Reviews`].
pub fn context(name: &str, content: Value) -> Value {
    let mut content = match content {
        Value::Object(m) => Value::Object(m),
        _ => json!({}),
    };
    content["name"] = Value::String(name.to_string());
    json!({ "reminder": content })
}

/// One waiting merge request for [`sample`].
fn sample_mr(reference: &str, title: &str, hours: u64, pipeline: &str) -> Value {
    let (project, iid) = reference.split_once('!').unwrap_or((reference, "1"));
    json!({
        "reference": reference,
        "title": title,
        "url": format!("https://gitlab.example.com/{project}/-/merge_requests/{iid}"),
        "author": "carol",
        "age": if hours >= 24 { format!("{}d {}h", hours / 24, hours % 24) } else { format!("{hours}h") },
        "age_seconds": hours * 3600,
        "opened_at": "2026-12-01T08:00:00Z",
        "pipeline": pipeline,
        "pipeline_failed": pipeline == "failed",
    })
}

/// A reminder context with every variable set: two reviewers, one with more than is shown, an
/// unassigned merge request and an unreadable project.
pub fn sample() -> Value {
    context(
        "reviews",
        json!({
            "count": 3,
            "reviewers": [
                {
                    "username": "alice", "name": "Alice Liddell", "count": 3,
                    "merge_requests": [
                        sample_mr("acme/app!12", "Add the *review* reminder", 52, "failed"),
                        sample_mr("acme/lib!7", "Fix the parser", 30, "success"),
                    ],
                    "more": 1,
                    "more_url": "https://gitlab.example.com/dashboard/merge_requests?state=opened&reviewer_username=alice",
                },
                {
                    "username": "bob", "name": "Bob", "count": 1,
                    "merge_requests": [sample_mr("acme/app!12", "Add the *review* reminder", 52, "failed")],
                    "more": 0,
                    "more_url": "https://gitlab.example.com/dashboard/merge_requests?state=opened&reviewer_username=bob",
                },
            ],
            "unassigned": [sample_mr("acme/app!15", "Nobody looks at me", 100, "")],
            "incomplete": true,
            "unreadable": ["project acme/secret"],
        }),
    )
}

impl Renderer {
    /// Renders a review reminder (its [`context`]) with the `reminder` template.
    pub fn render_reminder(&self, context: &Value) -> Result<Rendered, RenderError> {
        if self.origin(TEMPLATE).is_none() {
            return Ok(Rendered::NoTemplate);
        }
        self.render_value(TEMPLATE, context.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::{DateSettings, Mentions, Platform, RenderSettings};

    fn dates() -> DateSettings {
        DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y %I:%M %p".into(),
            day_format: "%d-%b-%Y".into(),
            clock: std::sync::Arc::new(chrono::Utc::now),
        }
    }

    fn renderer(strict: bool) -> Renderer {
        let settings = RenderSettings {
            dates: dates(),
            mentions: Mentions::new([("alice", "11111")]),
        };
        Renderer::new(Vec::new(), settings, strict).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn card(r: &Renderer, ctx: &Value) -> Value {
        match r.render_reminder(ctx) {
            Ok(Rendered::Message(m, name)) => {
                assert_eq!(name, TEMPLATE);
                serde_json::from_str(&m.to_json()).unwrap_or_else(|e| panic!("{e}"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_sample_renders_strictly_with_mentions_slides_and_escaping() {
        let v = card(&renderer(true), &sample());
        let text = v["text"].as_str().unwrap_or_default();
        assert!(text.contains("3 merge requests wait for review"), "{text}");
        assert!(text.contains("• {@11111}: 3 ([all of them](https://gitlab.example.com/dashboard/merge_requests?state=opened&reviewer_username=alice))"), "{text}");
        assert!(
            text.contains("• Bob: 1") || text.contains("• bob: 1"),
            "{text}"
        );
        assert!(
            text.contains("1 merge request without a reviewer"),
            "{text}"
        );
        assert!(
            text.contains("may be incomplete: cannot read project acme/secret"),
            "{text}"
        );
        assert_eq!(v["card"]["title"], "Review reminder: reviews");
        let slides = v["slides"].as_array().cloned().unwrap_or_default();
        assert_eq!(slides.len(), 3);
        assert_eq!(slides[0]["type"], "table");
        assert_eq!(slides[0]["title"], "Alice Liddell (3)");
        let rows = slides[0]["data"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(rows.len(), 3);
        // GitLab's markup in a title is neutralised; the link is the template's.
        assert_eq!(
            rows[0]["Merge request"],
            "[acme/app!12 Add the ∗review∗ reminder](https://gitlab.example.com/acme/app/-/merge_requests/12)"
        );
        assert_eq!(rows[0]["Waiting"], "2d 4h ❌ pipeline failed");
        assert_eq!(rows[1]["Waiting"], "1d 6h");
        assert_eq!(
            rows[2]["Merge request"],
            "[…and 1 more](https://gitlab.example.com/dashboard/merge_requests?state=opened&reviewer_username=alice)"
        );
        assert_eq!(slides[2]["title"], "No reviewer");
    }

    #[test]
    fn other_chats_get_the_card_in_their_shape() {
        let r = renderer(false);
        let Ok(Rendered::Message(m, _)) = r.render_reminder(&sample()) else {
            panic!("no message");
        };
        let slack = Platform::Slack.body(&m, "reminder:reviews").to_json();
        assert!(
            slack.contains("<@11111>") || slack.contains("11111"),
            "{slack}"
        );
        assert!(slack.contains("acme/app!12"), "{slack}");
        let discord = Platform::Discord.body(&m, "reminder:reviews").to_json();
        assert!(discord.contains("…and 1 more"), "{discord}");
    }

    #[test]
    fn nothing_waiting_gives_the_all_clear_and_one_merge_request_is_singular() {
        let r = renderer(true);
        let clear = context(
            "daily",
            json!({"count": 0, "reviewers": [], "unassigned": [], "incomplete": false, "unreadable": []}),
        );
        let v = card(&r, &clear);
        assert_eq!(v["text"], "✅ No merge request waits for review.");
        assert!(v.get("slides").is_none());
        let mut one = sample();
        one["reminder"]["count"] = json!(1);
        one["reminder"]["reviewers"] = json!([one["reminder"]["reviewers"][1].clone()]);
        one["reminder"]["unassigned"] = json!([]);
        one["reminder"]["incomplete"] = json!(false);
        let v = card(&r, &one);
        assert_eq!(v["text"], "👀 *1 merge request waits for review*\n• bob: 1");
    }

    #[test]
    fn a_user_template_replaces_the_built_in_one() {
        let user = crate::render::TemplateSource {
            name: TEMPLATE.into(),
            origin: "mine/reminder.hbs".into(),
            text: r#"{"text": "{{reminder.name}}: {{reminder.count}}"}"#.into(),
        };
        let r = Renderer::new(vec![user], dates(), true).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(card(&r, &sample())["text"], "reviews: 3");
    }
}
