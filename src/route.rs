//! Event × channels × renderer → deliveries (pure; `serve` and `render` share it).
//!
//! A channel takes an event when its `events` globs match the event key and, for confidential
//! issues and notes, when it opted in with `confidential = true`. The event is rendered once; a
//! template that fails at render time still tells the channel something happened, with a plain
//! fallback message naming the template error, so nothing accepted silently disappears.

use crate::config::ChannelConfig;
use crate::deliver::Delivery;
use crate::event::Event;
use crate::render::{RenderError, Rendered, Renderer};

/// Why an event produced no delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    /// No channel's filter matches the key.
    NoChannel,
    /// Confidential, and no matching channel opted in.
    Confidential,
    /// No template for this key (unknown kind or action).
    NoTemplate,
    /// The template chose to post nothing.
    Skipped,
}

impl Ignored {
    /// Short reason for logs and HTTP answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NoChannel => "no channel subscribes to this event",
            Ignored::Confidential => {
                "confidential, and no subscribed channel accepts confidential events"
            }
            Ignored::NoTemplate => "no template for this event",
            Ignored::Skipped => "the template chose not to post",
        }
    }
}

/// The routing of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Messages to post, one per channel.
    pub deliveries: Vec<Delivery>,
    /// Why nothing is posted, when `deliveries` is empty.
    pub ignored: Option<Ignored>,
    /// A template error replaced by the fallback message, if any.
    pub render_error: Option<RenderError>,
}

/// Does `key` pass a channel's `events` list? Empty lists take everything; `!glob` excludes.
pub fn wants(patterns: &[String], key: &str) -> bool {
    let mut positives = patterns.iter().filter(|p| !p.starts_with('!')).peekable();
    let included = positives.peek().is_none() || positives.any(|p| glob(p.trim(), key));
    let excluded = patterns
        .iter()
        .filter_map(|p| p.strip_prefix('!'))
        .any(|p| glob(p.trim(), key));
    included && !excluded
}

/// `*` matches any run of characters (including dots); everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Routes and renders `event` for `channels`. `request_id` goes into each delivery's id.
pub fn route(
    event: &Event,
    channels: &[ChannelConfig],
    renderer: &Renderer,
    request_id: &str,
) -> Routing {
    let subscribed: Vec<&ChannelConfig> = channels
        .iter()
        .filter(|c| wants(&c.events, &event.key))
        .collect();
    let targets: Vec<&ChannelConfig> = subscribed
        .iter()
        .copied()
        .filter(|c| !event.confidential || c.confidential)
        .collect();
    let nothing = |why| Routing {
        deliveries: Vec::new(),
        ignored: Some(why),
        render_error: None,
    };
    if targets.is_empty() {
        return nothing(if subscribed.is_empty() {
            Ignored::NoChannel
        } else {
            Ignored::Confidential
        });
    }
    let (body, render_error) = match renderer.render(event) {
        Ok(Rendered::Message(m, _)) => (m.to_json(), None),
        Ok(Rendered::Skipped(_)) => return nothing(Ignored::Skipped),
        Ok(Rendered::NoTemplate) => return nothing(Ignored::NoTemplate),
        Err(e) => (fallback_message(event, &e), Some(e)),
    };
    let ordering_key = event.object_key();
    Routing {
        deliveries: targets
            .into_iter()
            .map(|c| Delivery {
                id: format!("{request_id}/{}", c.name),
                channel: c.name.clone(),
                ordering_key: ordering_key.clone(),
                body: body.clone(),
            })
            .collect(),
        ignored: None,
        render_error,
    }
}

/// A plain message saying an event could not be rendered, and why.
pub fn fallback_message(event: &Event, error: &RenderError) -> String {
    let project = if event.project.path.is_empty() {
        String::new()
    } else {
        format!(" in {}", event.project.path)
    };
    let text = format!(
        "gitlab-chat-bridge could not render {}{project} by {}: {error}",
        event.key, event.actor.name
    );
    serde_json::json!({ "text": crate::render::helpers::truncate(&text, 1000) }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pats(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn globs() {
        let cases = [
            (&["issue.*"][..], "issue.open", true),
            (&["issue.*"][..], "merge_request.open", false),
            (&["push*"][..], "push", true),
            (&["push*"][..], "push.branch_created", true),
            (&["push.*"][..], "push", false),
            (&[][..], "anything", true),
            (&["note.*", "!note.snippet"][..], "note.snippet", false),
            (&["note.*", "!note.snippet"][..], "note.issue", true),
            (&["!note.snippet"][..], "issue.open", true),
            (&["*.merge"][..], "merge_request.merge", true),
        ];
        for (p, key, want) in cases {
            assert_eq!(wants(&pats(p), key), want, "{p:?} vs {key}");
        }
    }
}
