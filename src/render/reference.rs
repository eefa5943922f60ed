//! The template reference, `docs/templates.md`, generated from [`crate::event::variables`] and the
//! helper list, so the document cannot drift from the types (a test compares them).

use super::helpers::HELPERS;
use super::{reminder, root};
use crate::event::variables;
use std::fmt::Write;

/// The whole `docs/templates.md` text.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str(
        "# Template reference\n\n\
         Generated from the code (`gitlab_chat_bridge::render::reference::markdown`); a test fails \
         when the types change and this file does not. Regenerate with \
         `UPDATE_DOCS=1 cargo test --test tests docs::`.\n\n\
         A template renders one event into a Zoho Cliq message, written as JSON. `{{value}}` is \
         escaped for a JSON string and Cliq markup and mentions in it are neutralised; keep the \
         quotes around values. The README's *Templates* section explains lookup (`KIND.ACTION.hbs`, \
         then `KIND.hbs`), partials, reloading and `check`/`render`.\n\n\
         Paths are written from the context's root: `issue.title`; fields of list items as \
         `issue.assignees[].username` (inside `{{#each issue.assignees}}` just `username`).\n\n",
    );
    out.push_str("## Helpers\n\n| helper | example | gives |\n|---|---|---|\n");
    for (name, example, gives) in HELPERS {
        let _ = writeln!(out, "| `{name}` | `{example}` | {gives} |");
    }
    out.push('\n');
    for (kind, vars) in variables() {
        let title = if *kind == "common" {
            "Every event".to_string()
        } else {
            format!("`{kind}` events")
        };
        let _ = writeln!(out, "## {title}\n\n| variable | meaning |\n|---|---|");
        for (path, meaning) in *vars {
            let _ = writeln!(out, "| `{path}` | {} |", meaning.replace('|', "\\|"));
        }
        out.push('\n');
    }
    out.push_str(
        "## Review reminders (`reminder.hbs`)\n\n\
         Not an event: the `reminder` template renders a review reminder (`[[reminders]]`, \
         `/gitlab reviews`, `/gitlab remind`) and sees only these variables. A merge request is \
         listed when it is open, in the reminder's projects, not a draft, has a reviewer, still \
         needs approvals and is older than `min_age`.\n\n\
         | variable | meaning |\n|---|---|\n",
    );
    for (path, meaning) in reminder::VARIABLES {
        let _ = writeln!(out, "| `{path}` | {} |", meaning.replace('|', "\\|"));
    }
    out.push_str(
        "\n## Conversation root cards (`merge_request.root.hbs`, `issue.root.hbs`, `pipeline.root.hbs`)\n\n\
         Not an event: on a channel with `conversation = \"thread+edit\"`, the root card of a merge \
         request's, an issue's or a pipeline's thread is rendered by its kind's root template from \
         the object's state, gathered from every event about it (a merge request's comments and \
         pipelines join it; an issue's comments join it), and the root is edited when it changed. \
         These are its only variables. A value an event does not carry keeps what an earlier \
         event said; lists keep at most 20 people and 30 labels.\n\n\
         | variable | meaning |\n|---|---|\n",
    );
    for (path, meaning) in root::VARIABLES {
        let _ = writeln!(out, "| `{path}` | {} |", meaning.replace('|', "\\|"));
    }
    out
}
