//! The Matrix body: an `m.room.message` event's content, `m.notice` with an HTML
//! `formatted_body`, and `m.mentions` that lets nobody be pinged but the people mapped.
//!
//! `{"msgtype": "m.notice", "body", "format": "org.matrix.custom.html", "formatted_body",
//! "m.mentions": {"user_ids"?: […]}}`, sent with `PUT …/send/m.room.message/{txnId}`
//! (<https://spec.matrix.org/v1.7/client-server-api/#mroommessage-msgtypes>). `m.mentions` is
//! always there: an empty object turns off `@room` and display-name pings, and the people
//! `[mentions.matrix]` maps (`@alice:example.org`) are listed in `user_ids` and written as pills
//! (`<a href="https://matrix.to/#/@alice:example.org">`). The HTML uses only `b i del a br` from
//! the spec's allowed tags, links only to http(s). GitLab text has `&<>"` as entities and `@` as
//! `＠`, in `body` too, so it can neither write a tag nor look like a mention. An event is at most
//! 65 536 bytes; the content is kept within [`MAX_CONTENT_BYTES`], room for the envelope.

use super::chat::{cut, plain, write_runs_with, Markup, Parts, Platform, Run};
use super::escape::neutralize;
use super::html::{self, fit, Measure};
use super::Mentions;
use serde_json::{json, Value};

/// The most bytes of an event (the spec's limit, envelope included).
pub const MAX_EVENT_BYTES: usize = 65_536;
/// The most bytes of the content as JSON: the event's limit less room for the envelope the
/// homeserver adds (ids, sender, signatures, hashes, unsigned data).
pub const MAX_CONTENT_BYTES: usize = 60_000;
/// The tags the spec allows in `formatted_body`.
pub const ALLOWED_TAGS: [&str; 32] = [
    "del",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "p",
    "a",
    "ul",
    "ol",
    "sup",
    "sub",
    "li",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "s",
    "code",
    "hr",
    "br",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
];

const MARKUP: Markup = Markup {
    platform: Platform::Matrix,
    bold: ("<b>", "</b>"),
    italic: ("<i>", "</i>"),
    strike: ("<del>", "</del>"),
    link: html::link,
    mention: html::escape,
};

/// Whether `id` is a Matrix user id (`@localpart:server`).
pub fn user_id(id: &str) -> bool {
    let Some((local, server)) = id.strip_prefix('@').and_then(|r| r.split_once(':')) else {
        return false;
    };
    id.len() <= 255
        && !local.is_empty()
        && !server.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._=-/+".contains(&b))
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// `s` with `@` as `＠`: GitLab text in `body` cannot look like `@room` or a user id.
fn at_free(s: &str) -> String {
    s.replace('@', "\u{FF20}")
}

/// Template text for `body`: its markup characters dropped, `@` as `＠`.
fn unmarked(s: &str) -> String {
    at_free(&s.replace(['*', '_', '~'], ""))
}

/// A pill for a Matrix user id, else the id as text.
fn pill(id: &str, mentions: &Mentions) -> String {
    if user_id(id) {
        let label = html::escape(mentions.name_of(id).unwrap_or(id));
        format!("<a href=\"https://matrix.to/#/{id}\">{label}</a>")
    } else {
        html::escape(&at_free(id))
    }
}

/// The card as `formatted_body` HTML (not yet cut).
pub fn formatted(parts: &Parts, mentions: &Mentions) -> String {
    let title = plain(Platform::Matrix, parts.title.trim());
    let text = write_runs_with(parts, &MARKUP, &|id| pill(id, mentions));
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!("<b>{title}</b>\n"));
    }
    out.push_str(text.trim());
    let links: Vec<String> = parts
        .buttons
        .iter()
        .filter(|(_, url)| html::safe_url(url))
        .map(|(label, url)| html::link(&plain(Platform::Matrix, label), url))
        .collect();
    if !links.is_empty() {
        out.push('\n');
        out.push_str(&links.join(" · "));
    }
    out.trim().replace('\n', "<br>")
}

/// The card as the plain-text `body`: markup dropped, links as `label (url)`, people as their
/// user ids.
pub fn plain_body(parts: &Parts) -> String {
    let mut out = String::new();
    let title = at_free(&neutralize(parts.title.trim()));
    if !title.is_empty() {
        out.push_str(&title);
        out.push('\n');
    }
    for run in parts.runs() {
        match run {
            Run::Text(t) => out.push_str(&unmarked(&t)),
            Run::Link(label, url) => {
                out.push_str(&unmarked(&label));
                if html::safe_url(&url) {
                    out.push_str(&format!(" ({})", url.replace("&amp;", "&")));
                }
            }
            Run::Mention(id) if user_id(&id) => out.push_str(&id),
            Run::Mention(id) => out.push_str(&at_free(&id)),
        }
    }
    for (label, url) in &parts.buttons {
        if html::safe_url(url) {
            out.push_str(&format!(
                "\n{}: {}",
                at_free(&neutralize(label)),
                url.replace("&amp;", "&")
            ));
        }
    }
    let out = out.trim().to_string();
    if out.is_empty() {
        "GitLab".to_string()
    } else {
        out
    }
}

/// The mapped people the card mentions, valid Matrix user ids, each once.
pub fn mentioned(parts: &Parts) -> Vec<String> {
    parts
        .mentions()
        .into_iter()
        .filter(|id| user_id(id))
        .collect()
}

/// `s` cut to at most `max` bytes on a character boundary, ending with `…` when cut.
fn cut_bytes(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub(html::ELLIPSIS.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &s[..end], html::ELLIPSIS)
}

/// The Matrix content of a card, within [`MAX_CONTENT_BYTES`] as JSON.
pub fn body(parts: &Parts, mentions: &Mentions) -> Value {
    let full_html = formatted(parts, mentions);
    let full_plain = plain_body(parts);
    let users = mentioned(parts);
    let m_mentions = if users.is_empty() {
        json!({})
    } else {
        json!({ "user_ids": users })
    };
    let (mut html_max, mut plain_max) = (full_html.len(), full_plain.len());
    for _ in 0..12 {
        let content = json!({
            "msgtype": "m.notice",
            "body": cut_bytes(&full_plain, plain_max),
            "format": "org.matrix.custom.html",
            "formatted_body": fit(&full_html, html_max, Measure::Bytes),
            "m.mentions": m_mentions,
        });
        let size = content.to_string().len();
        if size <= MAX_CONTENT_BYTES {
            return content;
        }
        // Shrink both in proportion, a little more than needed (JSON escaping varies).
        let keep = MAX_CONTENT_BYTES as f64 / size as f64 * 0.95;
        html_max = (html_max as f64 * keep) as usize;
        plain_max = (plain_max as f64 * keep) as usize;
    }
    json!({
        "msgtype": "m.notice",
        "body": cut(&full_plain, 1_000),
        "m.mentions": m_mentions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Parts {
        Parts {
            title: "Issue <b>#1</b> @room".into(),
            text: text.into(),
            buttons: vec![
                ("Open".into(), "https://gitlab.test/i/1".into()),
                ("Evil".into(), "javascript:alert(1)".into()),
            ],
        }
    }

    #[test]
    fn hostile_text_stays_text_and_pings_nobody() {
        let m = Mentions::new([("alice", "@alice:example.org")]);
        let hostile = "@room @everyone </b><script>alert(1)</script> <a href=\"javascript:x\">y</a> {@all} [j](javascript:alert(1))";
        let b = body(
            &parts(&format!(
                "*Hi* {hostile} cc {{@@alice:example.org}} {{@all}}"
            )),
            &m,
        );
        let html = b["formatted_body"].as_str().unwrap_or_default();
        let plain = b["body"].as_str().unwrap_or_default();
        for t in html::tokens(html) {
            if let html::Token::Open(n, _) | html::Token::Close(n, _) = t {
                assert!(ALLOWED_TAGS.contains(&n), "{n} in {html}");
            }
        }
        assert!(!html.contains("href=\"javascript"), "{html}");
        assert!(!plain.contains("(javascript:"), "{plain}");
        for s in [html, plain] {
            assert!(!s.contains("@room") && !s.contains("@everyone"), "{s}");
        }
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("<a href=\"https://matrix.to/#/@alice:example.org\">alice</a>"),
            "{html}"
        );
        assert!(
            html.starts_with("<b>Issue &lt;b&gt;#1&lt;/b&gt; ＠room</b><br><b>Hi</b>"),
            "{html}"
        );
        assert!(
            html.ends_with("<a href=\"https://gitlab.test/i/1\">Open</a>"),
            "{html}"
        );
        assert!(plain.contains("cc @alice:example.org"), "{plain}");
        assert!(plain.ends_with("Open: https://gitlab.test/i/1"), "{plain}");
        assert_eq!(b["msgtype"], "m.notice");
        assert_eq!(b["format"], "org.matrix.custom.html");
        assert_eq!(b["m.mentions"], json!({"user_ids": ["@alice:example.org"]}));
    }

    #[test]
    fn no_mentions_is_an_empty_object() {
        let b = body(&parts("plain"), &Mentions::default());
        assert_eq!(b["m.mentions"], json!({}));
        let b = body(&parts("{@@Not Valid}"), &Mentions::default());
        assert_eq!(b["m.mentions"], json!({}));
    }

    #[test]
    fn a_huge_card_fits_the_event_limit() {
        let text = "*x* \"quoted\" <tag> & [l](https://e.test/) \u{1}\n".repeat(5_000);
        let b = body(&parts(&text), &Mentions::default());
        assert!(b.to_string().len() <= MAX_CONTENT_BYTES);
        let html = b["formatted_body"].as_str().unwrap_or_default();
        assert!(html.len() > 20_000, "{}", html.len());
        assert!(
            html.ends_with('…') || html.ends_with("</b>") || html.ends_with("</a>"),
            "{}",
            &html[html.len() - 30..]
        );
        assert_eq!(html.matches("<b>").count(), html.matches("</b>").count());
        assert_eq!(html.matches("<a ").count(), html.matches("</a>").count());
    }

    #[test]
    fn user_ids() {
        assert!(user_id("@alice:example.org"));
        assert!(user_id("@a.b-c_1:matrix.example.org:8448"));
        for bad in [
            "alice",
            "@alice",
            "@:e.org",
            "@Alice Smith:e.org",
            "@a\"b:e.org",
            "@room",
        ] {
            assert!(!user_id(bad), "{bad}");
        }
    }
}
