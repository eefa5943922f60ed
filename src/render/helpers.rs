//! Handlebars helpers available to every template.
//!
//! The list, with examples, is [`HELPERS`] (it also goes into `docs/templates.md`).
//!
//! Helpers that return text are escaped like any `{{value}}`; `plain`, `url` and `link` write
//! their own escaping.

use super::escape;
use crate::event::{
    clean_url,
    time::{parse_when, When},
};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, ScopedJson,
};
use serde_json::Value;
use std::sync::Arc;

/// Every helper: (name, example, what it gives). Kept next to the code; documented from here.
pub const HELPERS: &[(&str, &str, &str)] = &[
    ("date", "{{date issue.due_date}}, {{date ts tz=\"Asia/Kolkata\" format=\"%H:%M\"}}", "a timestamp in the configured zone and `date_format`; a calendar date (due dates) in `day_format`, on its own day in every zone; unparseable dates as they came"),
    ("due_in", "{{due_in issue.due_date}}", "`due today`, `due tomorrow`, `due in 3 days`, `overdue by 2 days`, against today in the zone"),
    ("join", "{{join issue.assignees}}, {{join issue.labels \" · \"}}, {{join x key=\"username\"}}", "a list as text (`name` of objects unless `key=`)"),
    ("first_line", "{{first_line commit.message}}", "the first non-empty line"),
    ("truncate", "{{truncate note.body 200}}", "at most 200 characters, `…` when cut"),
    ("pluralize", "{{pluralize push.total_commits \"commit\"}}", "`1 commit`, `4 commits` (a third argument gives an irregular plural)"),
    ("default", "{{default issue.state \"unknown\"}}", "the value, or the fallback when it is empty"),
    ("concat", "{{concat \"#\" issue.iid \" \" issue.title}}", "its arguments as one text"),
    ("link", "{{link issue.title issue.url}}", "`[title](url)`; only the title when the URL is missing or not http(s)"),
    ("url", "\"web\": \"{{url issue.url}}\"", "the URL if it is http(s), else nothing"),
    ("plain", "\"title\": \"{{plain issue.title}}\"", "JSON-escaped only, markup characters kept (card titles)"),
    ("skip", "{{#unless push.protected}}{{skip}}{{/unless}}", "post nothing for this event"),
    ("mention", "{{mention merge_request.reviewers}}, {{mention actor}}, {{mention \"alice\"}}", "`{@id}` for people mapped in `[mentions]` (by username, then e-mail), the name otherwise; lists joined with `, ` (or the second argument)"),
    ("mention_text", "{{mention_text (truncate note.body 1500)}}", "the text escaped as usual, with `@username` turned into `{@id}` for usernames mapped in `[mentions]`"),
];

/// A source of "now", so relative dates can be tested.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How dates are shown, shared by the date helpers.
#[derive(Clone)]
pub struct DateSettings {
    /// Zone used unless a call passes `tz=`.
    pub timezone: Tz,
    /// strftime format for timestamps.
    pub date_format: String,
    /// strftime format for calendar dates (no time of day).
    pub day_format: String,
    /// Where "today" comes from.
    pub clock: Clock,
}

/// Registers every helper on `hb`.
pub fn register(hb: &mut Handlebars<'static>, dates: DateSettings) {
    hb.register_helper("date", Box::new(DateHelper(dates.clone())));
    hb.register_helper("due_in", Box::new(DueInHelper(dates)));
    hb.register_helper("join", Box::new(join));
    hb.register_helper("first_line", Box::new(first_line));
    hb.register_helper("truncate", Box::new(truncate_helper));
    hb.register_helper("pluralize", Box::new(pluralize));
    hb.register_helper("default", Box::new(default_helper));
    hb.register_helper("plain", Box::new(plain));
    hb.register_helper("url", Box::new(url));
    hb.register_helper("link", Box::new(link));
    hb.register_helper("concat", Box::new(concat));
    hb.register_helper("skip", Box::new(skip));
}

/// Text of a JSON value as a template shows it: strings as-is, `null` as nothing.
fn as_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn param_text(h: &Helper<'_>, i: usize) -> String {
    h.param(i).map(|p| as_text(p.value())).unwrap_or_default()
}

fn hash_text(h: &Helper<'_>, key: &str) -> Option<String> {
    h.hash_get(key)
        .map(|p| as_text(p.value()))
        .filter(|s| !s.is_empty())
}

fn bad_param(helper: &'static str, why: String) -> RenderError {
    RenderErrorReason::Other(format!("{helper}: {why}")).into()
}

fn zone(h: &Helper<'_>, settings: &DateSettings) -> Result<Tz, RenderError> {
    match hash_text(h, "tz") {
        None => Ok(settings.timezone),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| bad_param("date", format!("unknown time zone {name:?}"))),
    }
}

/// Formats `when` in `tz`; calendar dates are formatted as they are, in any zone.
pub fn format_when(raw: &str, tz: Tz, date_format: &str, day_format: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let ok = match parse_when(raw) {
        Some(When::Instant(t)) => {
            write!(out, "{}", t.with_timezone(&tz).format(date_format)).is_ok()
        }
        Some(When::Date(d)) => write!(out, "{}", d.format(day_format)).is_ok(),
        None => false,
    };
    if ok {
        out
    } else {
        // Unparseable dates (or a format chrono rejects) degrade to the raw text.
        raw.to_string()
    }
}

/// Phrase for a due date relative to `today`.
pub fn due_phrase(due: NaiveDate, today: NaiveDate) -> String {
    let days = (due - today).num_days();
    match days {
        0 => "due today".to_string(),
        1 => "due tomorrow".to_string(),
        -1 => "overdue by 1 day".to_string(),
        d if d > 1 => format!("due in {d} days"),
        d => format!("overdue by {} days", -d),
    }
}

struct DateHelper(DateSettings);

impl HelperDef for DateHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let raw = param_text(h, 0);
        if raw.is_empty() {
            return Ok(ScopedJson::Derived(Value::String(String::new())));
        }
        let tz = zone(h, &self.0)?;
        let format = hash_text(h, "format");
        let date_format = format.as_deref().unwrap_or(&self.0.date_format);
        let day_format = format.as_deref().unwrap_or(&self.0.day_format);
        Ok(ScopedJson::Derived(Value::String(format_when(
            &raw,
            tz,
            date_format,
            day_format,
        ))))
    }
}

struct DueInHelper(DateSettings);

impl HelperDef for DueInHelper {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let raw = param_text(h, 0);
        let tz = zone(h, &self.0)?;
        let due = match parse_when(&raw) {
            Some(When::Date(d)) => Some(d),
            Some(When::Instant(t)) => Some(t.with_timezone(&tz).date_naive()),
            None => None,
        };
        let today = (self.0.clock)().with_timezone(&tz).date_naive();
        let phrase = due.map(|d| due_phrase(d, today)).unwrap_or_default();
        Ok(ScopedJson::Derived(Value::String(phrase)))
    }
}

fn join<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let sep = h
        .param(1)
        .map(|p| as_text(p.value()))
        .unwrap_or_else(|| ", ".to_string());
    let key = hash_text(h, "key").unwrap_or_else(|| "name".to_string());
    let items: Vec<String> = match h.param(0).map(|p| p.value()) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::Object(o) => o.get(&key).map(as_text).unwrap_or_default(),
                other => as_text(other),
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(other) => vec![as_text(other)],
        None => Vec::new(),
    };
    out.write(&escape::text(&items.join(&sep)))?;
    Ok(())
}

fn first_line<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let s = param_text(h, 0);
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    write_text(rc, out, line)
}

/// Cuts `s` to at most `max` characters, ending in `…` when it was cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", keep.trim_end())
}

fn truncate_helper<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let s = param_text(h, 0);
    let max = h
        .param(1)
        .and_then(|p| p.value().as_u64())
        .ok_or_else(|| bad_param("truncate", "second argument must be a number".into()))?;
    write_text(
        rc,
        out,
        &truncate(&s, usize::try_from(max).unwrap_or(usize::MAX)),
    )
}

fn pluralize<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let n = match h.param(0).map(|p| p.value()) {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::Array(a)) => a.len() as f64,
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    };
    let singular = param_text(h, 1);
    let plural = h
        .param(2)
        .map(|p| as_text(p.value()))
        .unwrap_or_else(|| format!("{singular}s"));
    let word = if n == 1.0 { singular } else { plural };
    write_text(rc, out, &format!("{n} {word}"))
}

fn default_helper<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let v = h.param(0).map(|p| p.value().clone()).unwrap_or(Value::Null);
    let empty = match &v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    let s = if empty { param_text(h, 1) } else { as_text(&v) };
    write_text(rc, out, &s)
}

fn concat<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    rc: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let s: String = h.params().iter().map(|p| as_text(p.value())).collect();
    write_text(rc, out, &s)
}

/// Written by `{{skip}}`; the escape function can never produce it from data (control
/// characters are escaped), so only a template can ask to skip.
pub const SKIP_MARK: &str = "\u{1}gcb:skip\u{1}";

fn skip<'rc>(
    _: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(SKIP_MARK)?;
    Ok(())
}

fn plain<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    out.write(&escape::json(&param_text(h, 0)))?;
    Ok(())
}

fn url<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    if let Some(u) = clean_url(&param_text(h, 0)) {
        out.write(&escape::json(&markdown_safe_url(&u)))?;
    }
    Ok(())
}

fn link<'rc>(
    h: &Helper<'rc>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let label = param_text(h, 0);
    let label = if label.trim().is_empty() {
        "link".to_string()
    } else {
        label
    };
    // A link label is one line: newlines would end the link in Cliq's markup.
    let label = label.replace(['\r', '\n'], " ");
    match clean_url(&param_text(h, 1)) {
        Some(u) => out.write(&format!(
            "[{}]({})",
            escape::text(&label),
            escape::json(&markdown_safe_url(&u))
        ))?,
        None => out.write(&escape::text(&label))?,
    }
    Ok(())
}

/// Percent-encodes the characters that would end a Markdown link target early, and the braces
/// (`{@all}` in a URL would otherwise reach Cliq as a mention; raw braces are not valid in a URL).
fn markdown_safe_url(u: &str) -> String {
    u.replace('(', "%28")
        .replace(')', "%29")
        .replace(' ', "%20")
        .replace('{', "%7B")
        .replace('}', "%7D")
}

/// Writes helper output the way `{{value}}` would be written: escaped unless in `{{{…}}}`.
pub(crate) fn write_text(
    rc: &RenderContext<'_, '_>,
    out: &mut dyn Output,
    s: &str,
) -> HelperResult {
    if rc.is_disable_escape() {
        out.write(s)?;
    } else {
        out.write(&escape::text(s))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_phrases() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_default();
        assert_eq!(due_phrase(d("2026-11-24"), d("2026-11-24")), "due today");
        assert_eq!(due_phrase(d("2026-11-25"), d("2026-11-24")), "due tomorrow");
        assert_eq!(
            due_phrase(d("2026-11-27"), d("2026-11-24")),
            "due in 3 days"
        );
        assert_eq!(
            due_phrase(d("2026-11-23"), d("2026-11-24")),
            "overdue by 1 day"
        );
        assert_eq!(
            due_phrase(d("2026-11-22"), d("2026-11-24")),
            "overdue by 2 days"
        );
    }

    #[test]
    fn truncation_is_clean() {
        assert_eq!(truncate("hello world", 20), "hello world");
        assert_eq!(truncate("hello world", 7), "hello…");
        assert_eq!(truncate("日本語テキスト", 4).chars().count(), 4);
    }
}
