//! [`Event`] → Zoho Cliq message, through Handlebars templates (pure: templates are handed in).
//!
//! Templates are compiled once. A template for `merge_request.merge` is looked up as
//! `merge_request.merge`, then `merge_request`; the built-in defaults (embedded from
//! `templates/`) are used for any name the user's folder does not provide. Every template may be
//! used as a partial by its name (`{{> header}}`). Values are escaped for JSON with Cliq markup
//! neutralised (see [`escape`]); the output is parsed as JSON and held to Cliq's limits ([`cliq`]).
//! A template whose output is blank, or that calls `{{skip}}`, posts nothing. Other chats get
//! the card rebuilt in their own shape ([`chat::Platform::body`]: `slack`, `mattermost`, `teams`,
//! `google_chat`, `discord`, `telegram`, `matrix`; [`html`] is the HTML the last two share), and `format = "event"` channels the event JSON ([`event_json`]).
//! A review reminder is not an event: it has its own entry, [`Renderer::render_reminder`], with
//! the `reminder` template and a context of its own ([`reminder`]). So is a conversation's root
//! card: [`Renderer::render_root`] renders an object's accumulated state with its kind's
//! `KIND.root` template ([`root`]).

pub mod chat;
pub mod cliq;
pub mod discord;
pub mod escape;
pub mod event_json;
pub mod google_chat;
pub mod helpers;
pub mod html;
pub mod matrix;
pub mod mattermost;
pub mod mentions;
pub mod reference;
pub mod reminder;
pub mod root;
pub mod slack;
pub mod teams;
pub mod telegram;
pub mod terminal;

use crate::event::{Detail, Event};
use handlebars::Handlebars;
use serde_json::Value;
use std::collections::HashMap;

pub use chat::Platform;
pub use cliq::Message;
pub use helpers::{Clock, DateSettings};
pub use mentions::Mentions;

/// Everything a renderer needs besides its templates: how dates are shown and who can be
/// mentioned. A bare [`DateSettings`] converts into one with no mentions.
#[derive(Clone)]
pub struct RenderSettings {
    /// Time zone and formats of the date helpers.
    pub dates: DateSettings,
    /// GitLab people → Cliq ids for the `mention` helpers (`[mentions]`).
    pub mentions: Mentions,
}

impl From<DateSettings> for RenderSettings {
    fn from(dates: DateSettings) -> RenderSettings {
        RenderSettings {
            dates,
            mentions: Mentions::default(),
        }
    }
}

impl Platform {
    /// Builds this platform's body from a Cliq card; `thread` is the event's object key (Google
    /// Chat threads by it). Cliq's own card is returned as is.
    pub fn body(self, card: &Message, thread: &str) -> Message {
        self.body_for(card, thread, &Mentions::default())
    }

    /// [`Platform::body`] with the platform's `[mentions.<kind>]`, for the builders that label
    /// a mention with the person's name (Telegram, Matrix).
    pub fn body_for(self, card: &Message, thread: &str, mentions: &Mentions) -> Message {
        let parts = chat::Parts::of(card);
        let v = match self {
            Platform::Cliq => return card.clone(),
            Platform::Slack => slack::body(&parts),
            Platform::Mattermost => mattermost::body(&parts),
            Platform::Teams => teams::body(&parts),
            Platform::GoogleChat => google_chat::body(&parts, thread),
            Platform::Discord => discord::body(&parts),
            Platform::Telegram => telegram::body(&parts, mentions),
            Platform::Matrix => matrix::body(&parts, mentions),
        };
        match v {
            Value::Object(m) => Message::from_map(m),
            _ => card.clone(),
        }
    }
}

/// A template's text and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    /// Lookup name: the file name without `.hbs` (`issue`, `merge_request.merge`).
    pub name: String,
    /// Where it came from, for messages: a file path or `built-in:NAME.hbs`.
    pub origin: String,
    /// Handlebars text.
    pub text: String,
}

// `BUILTIN`: every `templates/*.hbs`, listed by `build.rs`, so a new template needs no edit here.
include!(concat!(env!("OUT_DIR"), "/builtin_templates.rs"));

/// The default templates shipped inside the binary.
pub fn builtin_templates() -> Vec<TemplateSource> {
    BUILTIN
        .iter()
        .map(|(name, text)| TemplateSource {
            name: (*name).to_string(),
            origin: format!("built-in:{name}.hbs"),
            text: (*text).to_string(),
        })
        .collect()
}

/// A template that does not compile.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{origin}:{line}:{column}: {reason}")]
pub struct TemplateError {
    /// File (or built-in name) of the template.
    pub origin: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// 1-based column, 0 when unknown.
    pub column: usize,
    /// What is wrong.
    pub reason: String,
}

/// A template that compiled but failed for one event.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// Handlebars failed (a helper error, or a missing value in strict mode).
    #[error("{origin}:{line}:{column}: {reason}")]
    Template {
        /// File of the template.
        origin: String,
        /// 1-based line, 0 when unknown.
        line: usize,
        /// 1-based column, 0 when unknown.
        column: usize,
        /// What went wrong.
        reason: String,
    },
    /// The output is not JSON or not a Cliq message.
    #[error("{origin}: output is not a valid Cliq message: {reason}")]
    Output {
        /// File of the template.
        origin: String,
        /// What is wrong with the output.
        reason: String,
    },
}

/// True when a template may read `raw` (a word-level look: `raw` inside another name does not count).
fn mentions_raw(text: &str) -> bool {
    text.match_indices("raw").any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + 3..].chars().next();
        let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !ident(before) && !ident(after)
    })
}

/// What rendering an event gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    /// A message to post, and the template it came from.
    Message(Message, String),
    /// The template chose to post nothing (blank output).
    Skipped(String),
    /// No template applies to this event.
    NoTemplate,
}

/// Compiled templates plus helpers.
pub struct Renderer {
    hb: Handlebars<'static>,
    mentions: Mentions,
    origins: HashMap<String, String>,
    /// Whether any template mentions `raw`: copying the payload into every context halves
    /// rendering speed, so it is done only when a template can use it.
    uses_raw: bool,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.origins.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Renderer {
    /// Compiles the built-in templates overlaid with `user` ones (same name wins).
    ///
    /// Returns every compile error, not just the first. `strict` makes a reference to a missing
    /// value an error (used by `check`).
    pub fn new(
        user: Vec<TemplateSource>,
        settings: impl Into<RenderSettings>,
        strict: bool,
    ) -> Result<Renderer, Vec<TemplateError>> {
        let settings = settings.into();
        let mut hb = Handlebars::new();
        hb.set_strict_mode(strict);
        hb.register_escape_fn(escape::text);
        helpers::register(&mut hb, settings.dates);
        mentions::register(&mut hb, settings.mentions.clone());
        let mut by_name: HashMap<String, TemplateSource> = HashMap::new();
        for t in builtin_templates().into_iter().chain(user) {
            by_name.insert(t.name.clone(), t);
        }
        let mut errors = Vec::new();
        let mut origins = HashMap::new();
        let uses_raw = by_name.values().any(|t| mentions_raw(&t.text));
        for (name, t) in by_name {
            match hb.register_template_string(&name, &t.text) {
                Ok(()) => {
                    origins.insert(name, t.origin);
                }
                Err(e) => errors.push(TemplateError {
                    origin: t.origin,
                    line: e.pos().map_or(0, |p| p.0),
                    column: e.pos().map_or(0, |p| p.1),
                    reason: e.reason().to_string(),
                }),
            }
        }
        errors.sort_by(|a, b| a.origin.cmp(&b.origin));
        if errors.is_empty() {
            Ok(Renderer {
                hb,
                mentions: settings.mentions,
                origins,
                uses_raw,
            })
        } else {
            Err(errors)
        }
    }

    /// Who its `mention` helpers can mention (a platform's `[mentions.<kind>]`).
    pub fn mentions(&self) -> &Mentions {
        &self.mentions
    }

    /// Names of the compiled templates, sorted.
    pub fn template_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.origins.keys().cloned().collect();
        v.sort();
        v
    }

    /// Where the template of this name came from.
    pub fn origin(&self, name: &str) -> Option<&str> {
        self.origins.get(name).map(String::as_str)
    }

    /// The template that renders `event`, if any.
    ///
    /// Known events fall back from `kind.action` to `kind`; an action we do not know only renders
    /// with a template named for its exact key, so new GitLab actions are not posted by surprise.
    pub fn template_for(&self, event: &Event) -> Option<&str> {
        let fallback = event.known || matches!(event.detail, Detail::Other {});
        let mut key = event.key.as_str();
        loop {
            if let Some((name, _)) = self.origins.get_key_value(key) {
                return Some(name.as_str());
            }
            if !fallback {
                return None;
            }
            key = key.rsplit_once('.')?.0;
        }
    }

    /// Renders `event` with its template.
    pub fn render(&self, event: &Event) -> Result<Rendered, RenderError> {
        let Some(name) = self.template_for(event) else {
            return Ok(Rendered::NoTemplate);
        };
        self.render_with(name, event)
    }

    /// Renders `event` with the named template.
    pub fn render_with(&self, name: &str, event: &Event) -> Result<Rendered, RenderError> {
        let origin = self.origin(name).unwrap_or(name).to_string();
        let mut value = serde_json::to_value(event).map_err(|e| RenderError::Output {
            origin: origin.clone(),
            reason: format!("cannot build the template context: {e}"),
        })?;
        if self.uses_raw {
            value["raw"] = event.raw.clone();
        }
        self.render_value(name, value)
    }

    /// Renders the named template with `value` as its context (everything but events: review
    /// reminders, [`reminder`]).
    fn render_value(&self, name: &str, value: Value) -> Result<Rendered, RenderError> {
        let origin = self.origin(name).unwrap_or(name).to_string();
        let ctx = handlebars::Context::from(value);
        let text = self
            .hb
            .render_with_context(name, &ctx)
            .map_err(|e| RenderError::Template {
                origin: e
                    .template_name
                    .as_deref()
                    .and_then(|n| self.origin(n))
                    .unwrap_or(&origin)
                    .to_string(),
                line: e.line_no.unwrap_or(0),
                column: e.column_no.unwrap_or(0),
                reason: e.reason().to_string(),
            })?;
        if text.trim().is_empty() || text.contains(helpers::SKIP_MARK) {
            return Ok(Rendered::Skipped(name.to_string()));
        }
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| RenderError::Output {
                origin: origin.clone(),
                reason: format!("{e} (output line {}, column {})", e.line(), e.column()),
            })?;
        let message = cliq::shape(value).map_err(|reason| RenderError::Output {
            origin: origin.clone(),
            reason,
        })?;
        Ok(Rendered::Message(message, name.to_string()))
    }
}
