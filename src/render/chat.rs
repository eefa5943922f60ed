//! What every chat kind other than Cliq shares: the [`Platform`] a body is built for, a Cliq
//! card taken apart into [`Parts`], and its markup rewritten for the platform ([`Parts::text`]).
//!
//! Every kind's templates write the Cliq card form (the built-in ones, or a user's
//! `templates/<kind>/NAME.hbs`), so GitLab text in them is already escaped and its Cliq markup
//! neutralised ([`super::escape`]). Here the card's text is cut into runs of text, links
//! (`[label](url)`, which only the `link` helper writes) and mentions (`{@id}`, which only the
//! mention helpers write, with ids from `[mentions.<kind>]`), and each run is rewritten for the
//! platform: what the platform would read as markup or a mention in a text run is escaped
//! (Slack, Google Chat, Telegram and Matrix `&<>` as entities; Mattermost, Discord, Telegram and
//! Matrix `@` as `＠`; Mattermost, Discord and Teams `<>` as `‹›`), the template's own `*bold*`, `_italic_` and `~strike~` become the platform's, and links
//! and mentions are written in the platform's syntax. Titles are plain text: [`plain`].

use super::escape::neutralize;
use super::Message;
use serde_json::Value;

/// The chat a body is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    /// Zoho Cliq (and what takes a Cliq card as is: the console, `zoho_function`, `webhook`).
    #[default]
    Cliq,
    /// Slack: Block Kit blocks with a `text` fallback.
    Slack,
    /// Mattermost: `text` and `attachments`.
    Mattermost,
    /// Microsoft Teams: an Adaptive Card attachment.
    Teams,
    /// Google Chat: `cardsV2` and a `threadKey`.
    GoogleChat,
    /// Discord: `embeds` and `allowed_mentions`.
    Discord,
    /// Telegram: `sendMessage` with `parse_mode: "HTML"` and an inline keyboard.
    Telegram,
    /// Matrix: an `m.room.message` `m.notice` with `formatted_body` and `m.mentions`.
    Matrix,
}

impl Platform {
    /// The template subfolder and `[mentions.<name>]` of the platform.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Cliq => "cliq",
            Platform::Slack => "slack",
            Platform::Mattermost => "mattermost",
            Platform::Teams => "teams",
            Platform::GoogleChat => "google_chat",
            Platform::Discord => "discord",
            Platform::Telegram => "telegram",
            Platform::Matrix => "matrix",
        }
    }
}

/// A Cliq card taken apart: its title (plain text), its text (Cliq markup, GitLab text
/// neutralised), its buttons and the text its slides stand for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parts {
    /// Card title, plain text as the template wrote it (not yet escaped for any platform).
    pub title: String,
    /// The message text in Cliq markup, slides appended as lines.
    pub text: String,
    /// `(label, url)` of each `open.url` button.
    pub buttons: Vec<(String, String)>,
}

/// One piece of a Cliq text.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// Text, with the template's markup characters (`*`, `_`, `~`) in it.
    Text(String),
    /// `[label](url)`.
    Link(String, String),
    /// `{@id}`.
    Mention(String),
}

impl Parts {
    /// Takes a Cliq card apart.
    pub fn of(card: &Message) -> Parts {
        let m = card.as_map();
        let title = m
            .get("card")
            .and_then(|c| c.get("title"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut text = card.text().to_string();
        for slide in m
            .get("slides")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = slide.get("title").and_then(Value::as_str) {
                text.push_str(&format!("\n*{t}*"));
            }
            match slide.get("data") {
                Some(Value::String(s)) => text.push_str(&format!("\n{s}")),
                Some(Value::Array(items)) => {
                    for item in items {
                        match item {
                            Value::String(s) => text.push_str(&format!("\n• {s}")),
                            Value::Object(o) => {
                                let cells: Vec<String> = o
                                    .iter()
                                    .map(|(k, v)| {
                                        format!("{k}: {}", v.as_str().unwrap_or_default())
                                    })
                                    .collect();
                                text.push_str(&format!("\n• {}", cells.join(", ")));
                            }
                            _ => {}
                        }
                    }
                }
                Some(Value::Object(table)) => {
                    for row in table
                        .get("rows")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(o) = row.as_object() {
                            let cells: Vec<&str> = o.values().filter_map(Value::as_str).collect();
                            text.push_str(&format!("\n• {}", cells.join(" ∣ ")));
                        }
                    }
                }
                _ => {}
            }
        }
        let buttons = m
            .get("buttons")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|b| {
                let label = b.get("label")?.as_str()?.to_string();
                let url = b
                    .get("action")?
                    .get("data")?
                    .get("web")?
                    .as_str()?
                    .to_string();
                Some((label, url))
            })
            .collect();
        Parts {
            title,
            text,
            buttons,
        }
    }

    /// The text as runs of text, links and mentions.
    pub fn runs(&self) -> Vec<Run> {
        runs(&self.text)
    }

    /// The ids of the mentions in the text, in order, each once.
    pub fn mentions(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for r in self.runs() {
            if let Run::Mention(id) = r {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}

/// Cuts Cliq text into runs.
pub fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("{@") {
            if let Some(end) = rest.find('}') {
                let id = &rest[2..end];
                if !id.is_empty() && !id.contains(['{', '\n']) {
                    flush(&mut out, &mut plain);
                    out.push(Run::Mention(id.to_string()));
                    rest = &rest[end + 1..];
                    continue;
                }
            }
        }
        if c == '[' {
            if let Some((label, url, used)) = link_at(rest) {
                flush(&mut out, &mut plain);
                out.push(Run::Link(label, url));
                rest = &rest[used..];
                continue;
            }
        }
        plain.push(c);
        rest = &rest[c.len_utf8()..];
    }
    flush(&mut out, &mut plain);
    out
}

fn flush(out: &mut Vec<Run>, plain: &mut String) {
    if !plain.is_empty() {
        out.push(Run::Text(std::mem::take(plain)));
    }
}

/// `[label](url)` at the start of `s`: label, url and the bytes used.
fn link_at(s: &str) -> Option<(String, String, usize)> {
    let close = s.find("](")?;
    let label = &s[1..close];
    if label.contains(['[', '\n']) {
        return None;
    }
    let after = &s[close + 2..];
    let end = after.find(')')?;
    let url = &after[..end];
    if url.is_empty() || url.contains([' ', '\n']) {
        return None;
    }
    Some((label.to_string(), url.to_string(), close + 2 + end + 1))
}

/// `s` escaped for the platform's text: what it would read as markup or a mention is made
/// inert (entities for Slack and Google Chat, look-alikes elsewhere).
pub fn escape_text(platform: Platform, s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match (platform, c) {
            (Platform::Slack | Platform::GoogleChat, '&') => out.push_str("&amp;"),
            (Platform::Slack | Platform::GoogleChat, '<') => out.push_str("&lt;"),
            (Platform::Slack | Platform::GoogleChat, '>') => out.push_str("&gt;"),
            (Platform::Telegram | Platform::Matrix, '&') => out.push_str("&amp;"),
            (Platform::Telegram | Platform::Matrix, '<') => out.push_str("&lt;"),
            (Platform::Telegram | Platform::Matrix, '>') => out.push_str("&gt;"),
            (Platform::Telegram | Platform::Matrix, '"') => out.push_str("&quot;"),
            (
                Platform::Mattermost | Platform::Discord | Platform::Telegram | Platform::Matrix,
                '@',
            ) => out.push('\u{FF20}'),
            (Platform::Mattermost | Platform::Discord | Platform::Teams, '<') => {
                out.push('\u{2039}')
            }
            (Platform::Mattermost | Platform::Discord | Platform::Teams, '>') => {
                out.push('\u{203A}')
            }
            _ => out.push(c),
        }
    }
    out
}

/// A title or label as plain text for the platform: Cliq-style markup and mentions neutralised
/// ([`neutralize`]) and then [`escape_text`], for fields some platforms read as markup.
pub fn plain(platform: Platform, s: &str) -> String {
    escape_text(platform, &neutralize(s))
}

/// Text for a field the platform shows as plain text (a Slack `plain_text`, a Google Chat card
/// header or button): nothing there is read as markup, but a title that looks like `<!channel>`
/// should not even look like one, so markup takes look-alikes and `<>` become `‹›`.
pub fn plain_text(s: &str) -> String {
    neutralize(s)
        .replace('<', "\u{2039}")
        .replace('>', "\u{203A}")
}

/// How a platform writes the template's markup, links and mentions.
pub struct Markup {
    /// The platform (its escaping of text runs).
    pub platform: Platform,
    /// `*bold*` opens and closes as.
    pub bold: (&'static str, &'static str),
    /// `_italic_`.
    pub italic: (&'static str, &'static str),
    /// `~strike~`.
    pub strike: (&'static str, &'static str),
    /// `[label](url)` as: the label already escaped and its markup rewritten; the URL as the
    /// card had it.
    pub link: fn(label: &str, url: &str) -> String,
    /// `{@id}` as.
    pub mention: fn(id: &str) -> String,
}

/// The card's text (its runs) written in `markup`: text escaped and its markup rewritten, links
/// and mentions in the platform's syntax, and what was left open closed at the end.
pub fn write_runs(parts: &Parts, markup: &Markup) -> String {
    write_runs_with(parts, markup, &markup.mention)
}

/// [`write_runs`] with mentions written by `mention` (a builder that needs more than the id).
pub fn write_runs_with(parts: &Parts, markup: &Markup, mention: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut open = [false; 3];
    for run in parts.runs() {
        match run {
            Run::Text(t) => out.push_str(&rewrite(&t, markup, &mut open)),
            Run::Link(label, url) => {
                let label = rewrite(&label, markup, &mut [false; 3]);
                out.push_str(&(markup.link)(&label, &url));
            }
            Run::Mention(id) => out.push_str(&mention(&id)),
        }
    }
    out.push_str(&close(markup, &open));
    out
}

/// Rewrites the template's markup characters in a text run for `markup`, keeping open/closed
/// state across runs in `open` (bold, italic, strike). GitLab text carries look-alikes instead
/// of these characters, so every one left is the template's.
fn rewrite(text: &str, markup: &Markup, open: &mut [bool; 3]) -> String {
    let escaped = escape_text(markup.platform, text);
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        let i = match c {
            '*' => 0,
            '_' => 1,
            '~' => 2,
            _ => {
                out.push(c);
                continue;
            }
        };
        let (o, cl) = [markup.bold, markup.italic, markup.strike][i];
        out.push_str(if open[i] { cl } else { o });
        open[i] = !open[i];
    }
    out
}

/// Closes what [`rewrite`] left open at the end of a text.
fn close(markup: &Markup, open: &[bool; 3]) -> String {
    let mut out = String::new();
    for (i, (_, cl)) in [markup.bold, markup.italic, markup.strike]
        .iter()
        .enumerate()
        .rev()
    {
        if open[i] {
            out.push_str(cl);
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_find_links_and_mentions_only_in_helper_syntax() {
        let r = runs("*a* [x](https://e.test/1) {@42} {＠all} ［y］(z)");
        assert_eq!(
            r,
            vec![
                Run::Text("*a* ".into()),
                Run::Link("x".into(), "https://e.test/1".into()),
                Run::Text(" ".into()),
                Run::Mention("42".into()),
                Run::Text(" {＠all} ［y］(z)".into()),
            ]
        );
    }

    #[test]
    fn markup_is_rewritten_and_closed() {
        let md = Markup {
            platform: Platform::Discord,
            bold: ("**", "**"),
            italic: ("_", "_"),
            strike: ("~~", "~~"),
            link: |label, url| format!("[{label}]({url})"),
            mention: |id| format!("<@{id}>"),
        };
        let mut open = [false; 3];
        let s = rewrite("*Al* @everyone <@1> ~x", &md, &mut open);
        assert_eq!(s, "**Al** ＠everyone ‹＠1› ~~x");
        assert_eq!(close(&md, &open), "~~");
    }
}
