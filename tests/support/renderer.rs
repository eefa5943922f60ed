//! Renderers with the built-in templates (or given ones) and known date settings, and what they
//! render as JSON.

use chrono::{DateTime, Utc};
use gitlab_chat_bridge::event::Event;
use gitlab_chat_bridge::render::{
    DateSettings, RenderSettings, Rendered, Renderer, TemplateSource,
};
use serde_json::Value;
use std::sync::Arc;

/// Timestamps as the default config shows them.
pub const DATE_FORMAT: &str = "%d-%b-%Y %I:%M %p";
/// Calendar dates as the default config shows them.
pub const DAY_FORMAT: &str = "%d-%b-%Y";

/// Dates in zone `tz` with the default formats, on the real clock.
pub fn dates(tz: &str) -> DateSettings {
    DateSettings {
        timezone: tz.parse().unwrap(),
        date_format: DATE_FORMAT.into(),
        day_format: DAY_FORMAT.into(),
        clock: Arc::new(Utc::now),
    }
}

/// Like [`dates`], on a clock stopped at `now`.
pub fn dates_at(tz: &str, now: DateTime<Utc>) -> DateSettings {
    DateSettings {
        clock: Arc::new(move || now),
        ..dates(tz)
    }
}

/// `templates` (over the built-in ones) with `settings`, not strict.
pub fn renderer_with(
    templates: Vec<TemplateSource>,
    settings: impl Into<RenderSettings>,
) -> Renderer {
    Renderer::new(templates, settings, false).unwrap()
}

/// The built-in templates, dates in UTC on the real clock.
pub fn renderer() -> Renderer {
    renderer_with(Vec::new(), dates("UTC"))
}

/// The message `r` renders for `ev`, as JSON; fails unless it is a message.
pub fn message(r: &Renderer, ev: &Event) -> Value {
    match r.render(ev) {
        Ok(Rendered::Message(m, _)) => serde_json::from_str(&m.to_json()).unwrap(),
        other => panic!("{}: expected a message, got {other:?}", ev.key),
    }
}

/// A message's `text`; fails if it has none.
pub fn text(m: &Value) -> String {
    m["text"].as_str().unwrap().to_string()
}
