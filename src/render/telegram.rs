//! The Telegram Bot API body: `sendMessage` with `parse_mode: "HTML"`, URL buttons as an inline
//! keyboard, link previews off.
//!
//! `{"text", "parse_mode": "HTML", "link_preview_options": {"is_disabled": true},
//! "reply_markup"?: {"inline_keyboard": [[{"text", "url"}…]…]}}`; the sender adds `chat_id` (and
//! `message_thread_id`) from the channel at send time, so a chat that migrates keeps its stored
//! messages. Limits (<https://core.telegram.org/bots/api#sendmessage>): `text` 1–4 096
//! characters after entity parsing, counted here in UTF-16 code units as Telegram does; the
//! HTML may use only `b strong i em u ins s strike del span.tg-spoiler tg-spoiler a[href] code
//! pre blockquote` and the named entities `&lt; &gt; &amp; &quot;`. This builder writes `b`, `i`,
//! `s` and `a` (http(s) links, and `tg://user?id=N` for people `[mentions.telegram]` maps), cuts
//! between tokens and closes what is open ([`super::html::fit`]). GitLab text has `&<>` as
//! entities and `@` as `＠`, so it can neither write a tag nor mention a `@username`.

use super::chat::{cut, plain, plain_text, write_runs_with, Markup, Parts, Platform};
use super::html::{self, fit, Measure};
use super::Mentions;
use serde_json::{json, Value};

/// Most characters of `text` after entity parsing (UTF-16 code units).
pub const MAX_TEXT: usize = 4_096;
/// Most buttons kept.
pub const MAX_BUTTONS: usize = 8;
/// Buttons in one row of the keyboard.
pub const BUTTONS_PER_ROW: usize = 2;
/// Longest button text kept.
pub const MAX_BUTTON_TEXT_CHARS: usize = 64;
/// The tags Telegram's HTML parse mode accepts.
pub const ALLOWED_TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
];

const MARKUP: Markup = Markup {
    platform: Platform::Telegram,
    bold: ("<b>", "</b>"),
    italic: ("<i>", "</i>"),
    strike: ("<s>", "</s>"),
    link: html::link,
    mention: html::escape,
};

/// Whether `id` is a Telegram user id (a positive integer).
pub fn user_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// A mapped person: `<a href="tg://user?id=N">name</a>`; an id that is not a user id as text.
fn mention(id: &str, mentions: &Mentions) -> String {
    let name = html::escape(mentions.name_of(id).unwrap_or(id));
    if user_id(id) {
        format!("<a href=\"tg://user?id={id}\">{name}</a>")
    } else {
        name
    }
}

/// The message text in Telegram's HTML, within [`MAX_TEXT`].
pub fn text(parts: &Parts, mentions: &Mentions) -> String {
    let title = plain(Platform::Telegram, parts.title.trim());
    let body = write_runs_with(parts, &MARKUP, &|id| mention(id, mentions));
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!("<b>{title}</b>"));
    }
    let body = body.trim();
    if !body.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(body);
    }
    let out = fit(&out, MAX_TEXT, Measure::Utf16Text);
    let visible = html::tokens(&out)
        .iter()
        .any(|t| matches!(t, html::Token::Char(c) if !c.trim().is_empty()));
    if visible {
        out
    } else {
        "GitLab".to_string()
    }
}

/// The Telegram body of a card (without `chat_id`, which the sender adds).
pub fn body(parts: &Parts, mentions: &Mentions) -> Value {
    let mut out = json!({
        "text": text(parts, mentions),
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": true},
    });
    let buttons: Vec<Value> = parts
        .buttons
        .iter()
        .filter(|(_, url)| html::safe_url(url))
        .filter_map(|(label, url)| {
            let label = cut(plain_text(label).trim(), MAX_BUTTON_TEXT_CHARS);
            (!label.is_empty()).then(|| json!({"text": label, "url": url.replace("&amp;", "&")}))
        })
        .take(MAX_BUTTONS)
        .collect();
    if !buttons.is_empty() {
        let rows: Vec<Value> = buttons
            .chunks(BUTTONS_PER_ROW)
            .map(|r| Value::Array(r.to_vec()))
            .collect();
        out["reply_markup"] = json!({ "inline_keyboard": rows });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(title: &str, text: &str) -> Parts {
        Parts {
            title: title.into(),
            text: text.into(),
            buttons: vec![
                ("Open".into(), "https://gitlab.test/a?x=1&amp;y=2".into()),
                ("Evil".into(), "javascript:alert(1)".into()),
            ],
        }
    }

    fn tags(html: &str) -> Vec<String> {
        html::tokens(html)
            .iter()
            .filter_map(|t| match t {
                html::Token::Open(n, _) | html::Token::Close(n, _) => Some(n.to_string()),
                html::Token::Void(r) => Some(r.to_string()),
                html::Token::Char(_) => None,
            })
            .collect()
    }

    #[test]
    fn hostile_text_stays_text() {
        let m = Mentions::new([("alice", "4242")]);
        let hostile = "@room @everyone </b><script>alert(1)</script> <a href=\"javascript:x\">y</a> {@all} &amp; [j](javascript:alert(1))";
        let p = parts(
            "T <i>x</i> @all",
            &format!("*Bold* {hostile} by {{@4242}} and {{@all}}"),
        );
        let b = body(&p, &m);
        let t = b["text"].as_str().unwrap_or_default();
        assert!(
            tags(t).iter().all(|n| ALLOWED_TAGS.contains(&n.as_str())),
            "{t}"
        );
        assert!(
            !t.contains("<script") && !t.contains("javascript:x\">"),
            "{t}"
        );
        assert!(!t.contains("href=\"javascript"), "{t}");
        assert!(
            t.contains("&lt;/b&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{t}"
        );
        assert!(t.contains("<a href=\"tg://user?id=4242\">alice</a>"), "{t}");
        assert!(
            !t.contains("@room") && !t.contains("@everyone") && !t.contains("@all"),
            "{t}"
        );
        assert!(
            t.starts_with("<b>T &lt;i&gt;x&lt;/i&gt; ＠all</b>\n<b>Bold</b>"),
            "{t}"
        );
        assert_eq!(b["parse_mode"], "HTML");
        assert_eq!(b["link_preview_options"]["is_disabled"], true);
        assert_eq!(
            b["reply_markup"]["inline_keyboard"],
            json!([[{"text": "Open", "url": "https://gitlab.test/a?x=1&y=2"}]])
        );
    }

    #[test]
    fn long_text_is_cut_within_the_limit_with_tags_closed() {
        let line = "*bold & <b>* [link](https://e.test/x) 😀 text\n";
        let p = parts("Title", &line.repeat(400));
        let t = body(&p, &Mentions::default())["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(
            Measure::Utf16Text.of(&t) <= MAX_TEXT,
            "{}",
            Measure::Utf16Text.of(&t)
        );
        assert!(Measure::Utf16Text.of(&t) > MAX_TEXT - 40);
        assert!(
            t.ends_with('…') || t.ends_with("…</b>") || t.ends_with("…</a>"),
            "{}",
            &t[t.len() - 40..]
        );
        let mut depth = 0i32;
        for tok in html::tokens(&t) {
            match tok {
                html::Token::Open(..) => depth += 1,
                html::Token::Close(..) => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!(depth, 0, "{t}");
    }

    #[test]
    fn an_empty_card_still_has_text() {
        let p = Parts::default();
        assert_eq!(body(&p, &Mentions::default())["text"], "GitLab");
        assert!(body(&p, &Mentions::default()).get("reply_markup").is_none());
    }

    #[test]
    fn unmapped_or_odd_ids_are_not_links() {
        let m = Mentions::new([("bob", "not-a-number")]);
        let p = parts("", "hi {@not-a-number}");
        let t = text(&p, &m);
        assert_eq!(t, "hi bob");
    }
}
