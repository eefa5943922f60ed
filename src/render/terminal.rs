//! A Cliq message drawn as terminal text, for the `console` channel kind: the card title, the
//! text with Cliq's markup made readable (`*bold*`, `_italic_`, `~strike~` and `` `code` `` as
//! ANSI styles when painting, plain otherwise; `[text](url)` as `text <url>`; `{@id}` mentions
//! as `@id`), the buttons with their targets, and slides as simple tables and lists.
//!
//! Every value is hostile: terminal control characters (ESC and the other C0 and C1 controls but
//! the line feed, and the bidirectional overrides) are replaced with visible stand-ins before
//! any markup is read, so GitLab text can neither style, move the cursor, retitle the terminal
//! nor reorder what is shown; only this module's own styles reach the terminal. Pure: the caller
//! decides whether to paint ([`Paint::detect`]) and where the text goes.

use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::fmt::Write as _;

/// Whether output carries ANSI styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paint {
    /// Plain text (a pipe, a file, the journal, or `NO_COLOR`).
    Plain,
    /// ANSI styles (a terminal).
    Ansi,
}

impl Paint {
    /// ANSI only on a terminal, and never when `NO_COLOR` is set to a non-empty value
    /// (<https://no-color.org>).
    pub fn detect(is_terminal: bool, no_color: Option<&OsStr>) -> Paint {
        let no_color = no_color.is_some_and(|v| !v.is_empty());
        if is_terminal && !no_color {
            Paint::Ansi
        } else {
            Paint::Plain
        }
    }
}

/// Width of the rule above each message, in characters.
const RULE_WIDTH: usize = 64;

const BOLD: u8 = 1;
const ITALIC: u8 = 2;
const STRIKE: u8 = 4;
const CODE: u8 = 8;
const LINK: u8 = 16;
const MENTION: u8 = 32;
const DIM: u8 = 64;

/// A run of text in one style (a set of the bits above).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Span {
    text: String,
    style: u8,
}

/// Draws the message `body` (Cliq JSON) posted to `channel`, ending with a line feed. A body
/// that is not a JSON object is shown as text, made inert like everything else.
pub fn draw(channel: &str, body: &str, paint: Paint) -> String {
    let mut out = String::new();
    let head = format!("── {} ", clean_line(channel));
    let fill = RULE_WIDTH.saturating_sub(head.chars().count());
    out.push_str(&styled(&format!("{head}{}", "─".repeat(fill)), DIM, paint));
    out.push('\n');
    let message = match serde_json::from_str::<Value>(body) {
        Ok(Value::Object(m)) => m,
        _ => {
            out.push_str(&clean(body));
            out.push('\n');
            return out;
        }
    };
    if let Some(title) = message
        .get("card")
        .and_then(|c| c.get("title"))
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    {
        // Cliq shows titles as they are, not as markup.
        out.push_str(&styled(&clean_line(title.trim()), BOLD, paint));
        out.push('\n');
    }
    if let Some(text) = message.get("text").and_then(Value::as_str) {
        for line in clean(text).lines() {
            out.push_str(&emit(&inline(line), paint));
            out.push('\n');
        }
    }
    if let Some(Value::Array(slides)) = message.get("slides") {
        for slide in slides {
            draw_slide(&mut out, slide, paint);
        }
    }
    if let Some(Value::Array(buttons)) = message.get("buttons") {
        for b in buttons {
            draw_button(&mut out, b, paint);
        }
    }
    out
}

/// `[label] → url` for a link button; other actions by their type.
fn draw_button(out: &mut String, b: &Value, paint: Paint) {
    let label = clean_line(b.get("label").and_then(Value::as_str).unwrap_or_default());
    let action = b.get("action").unwrap_or(&Value::Null);
    let target = match action.pointer("/data/web").and_then(Value::as_str) {
        Some(url) => styled(&format!("<{}>", clean_line(url)), LINK, paint),
        None => {
            let kind = action.get("type").and_then(Value::as_str).unwrap_or("?");
            styled(&format!("({})", clean_line(kind)), DIM, paint)
        }
    };
    let _ = writeln!(
        out,
        "  {} {target}",
        styled(&format!("[{label}]"), BOLD, paint)
    );
}

/// A slide: its title, then a table, a list, key–value labels, text or image links.
fn draw_slide(out: &mut String, slide: &Value, paint: Paint) {
    out.push('\n');
    if let Some(title) = slide.get("title").and_then(Value::as_str) {
        out.push_str(&styled(&clean_line(title), BOLD, paint));
        out.push('\n');
    }
    let data = slide.get("data").unwrap_or(&Value::Null);
    match slide
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
    {
        "table" => draw_table(out, data, paint),
        "list" => {
            for item in data.as_array().into_iter().flatten() {
                let _ = writeln!(out, "  • {}", emit(&inline(&cell(item)), paint));
            }
        }
        "label" => {
            for pair in data.as_array().into_iter().flatten() {
                for (k, v) in pair.as_object().into_iter().flatten() {
                    let key = styled(&format!("{}:", clean_line(k)), BOLD, paint);
                    let _ = writeln!(out, "  {key} {}", emit(&inline(&cell(v)), paint));
                }
            }
        }
        "text" => {
            for line in clean(data.as_str().unwrap_or_default()).lines() {
                let _ = writeln!(out, "  {}", emit(&inline(line), paint));
            }
        }
        "images" => {
            for url in data.as_array().into_iter().flatten() {
                let link = styled(&format!("<{}>", cell(url)), LINK, paint);
                let _ = writeln!(out, "  image {link}");
            }
        }
        other => {
            let _ = writeln!(out, "  ({} slide) {}", clean_line(other), cell(data));
        }
    }
}

/// `headers` and `rows` (objects keyed by header) as an aligned table with `|` between cells.
fn draw_table(out: &mut String, data: &Value, paint: Paint) {
    let headers: Vec<String> = data
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(cell)
        .collect();
    let empty = Map::new();
    let rows: Vec<Vec<Vec<Span>>> = data
        .get("rows")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|row| {
            let row = row.as_object().unwrap_or(&empty);
            headers
                .iter()
                .map(|h| inline(&row.get(h).map(cell).unwrap_or_default()))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(c));
        }
    }
    let line = |cells: Vec<String>| format!("  | {} |\n", cells.join(" | "));
    out.push_str(&line(
        headers
            .iter()
            .zip(&widths)
            .map(|(h, w)| pad(styled(h, BOLD, paint), h.chars().count(), *w))
            .collect(),
    ));
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push_str(&line(
            row.iter()
                .zip(&widths)
                .map(|(c, w)| pad(emit(c, paint), width(c), *w))
                .collect(),
        ));
    }
}

fn pad(s: String, shown: usize, to: usize) -> String {
    format!("{s}{}", " ".repeat(to.saturating_sub(shown)))
}

/// A slide value as one clean line: strings as they are, anything else as compact JSON.
fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => clean_line(s),
        Value::Null => String::new(),
        other => clean_line(&other.to_string()),
    }
}

/// Replaces every character that a terminal would act on (C0 and C1 controls but the line feed,
/// DEL, bidirectional embeddings, overrides and isolates) with a visible stand-in.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push('\n'),
            '\t' => out.push(' '),
            '\u{1b}' => out.push('␛'),
            // Control Pictures: U+2400 + the control's code.
            '\0'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('�')),
            '\u{7f}' => out.push('␡'),
            '\u{80}'..='\u{9f}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}' => {
                let _ = write!(out, "<U+{:04X}>", c as u32);
            }
            '\u{2028}' | '\u{2029}' => out.push('\n'),
            c => out.push(c),
        }
    }
    out
}

/// [`clean`], on one line (line feeds become spaces).
fn clean_line(s: &str) -> String {
    clean(s).replace('\n', " ")
}

/// Cliq's inline markup in one clean line → styled spans.
fn inline(line: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    parse_into(&line.chars().collect::<Vec<_>>(), 0, &mut spans);
    spans
}

fn push(spans: &mut Vec<Span>, text: &str, style: u8) {
    match spans.last_mut() {
        Some(last) if last.style == style => last.text.push_str(text),
        _ if text.is_empty() => {}
        _ => spans.push(Span {
            text: text.to_string(),
            style,
        }),
    }
}

fn parse_into(s: &[char], style: u8, spans: &mut Vec<Span>) {
    let text = |a: usize, b: usize| s[a..b].iter().collect::<String>();
    let mut i = 0;
    let mut plain = String::new();
    let flush = |plain: &mut String, spans: &mut Vec<Span>| {
        push(spans, plain, style);
        plain.clear();
    };
    while i < s.len() {
        let c = s[i];
        // [label](url)
        if c == '[' {
            if let Some((label_end, url_end)) = link_at(s, i) {
                flush(&mut plain, spans);
                let label = text(i + 1, label_end);
                let url = text(label_end + 2, url_end);
                if label.trim() == url.trim() || label.trim().is_empty() {
                    push(spans, &format!("<{url}>"), style | LINK);
                } else {
                    parse_into(&s[i + 1..label_end], style, spans);
                    push(spans, " ", style);
                    push(spans, &format!("<{url}>"), style | LINK);
                }
                i = url_end + 1;
                continue;
            }
        }
        // {@id}
        if c == '{' && s.get(i + 1) == Some(&'@') {
            if let Some(end) = (i + 2..s.len()).find(|&j| s[j] == '}') {
                if end > i + 2 && !s[i + 2..end].iter().any(|c| c.is_whitespace() || *c == '{') {
                    flush(&mut plain, spans);
                    push(spans, &format!("@{}", text(i + 2, end)), style | MENTION);
                    i = end + 1;
                    continue;
                }
            }
        }
        if c == '`' {
            if let Some(end) = (i + 1..s.len()).find(|&j| s[j] == '`') {
                if end > i + 1 {
                    flush(&mut plain, spans);
                    push(spans, &text(i + 1, end), style | CODE);
                    i = end + 1;
                    continue;
                }
            }
        }
        let bit = match c {
            '*' => BOLD,
            '_' => ITALIC,
            '~' => STRIKE,
            _ => 0,
        };
        if bit != 0 && opens(s, i) {
            if let Some(end) = (i + 2..s.len()).find(|&j| s[j] == c && closes(s, j)) {
                flush(&mut plain, spans);
                parse_into(&s[i + 1..end], style | bit, spans);
                i = end + 1;
                continue;
            }
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, spans);
}

/// `[label](url)` starting at `i`: the index of `]` and of the closing `)`.
fn link_at(s: &[char], i: usize) -> Option<(usize, usize)> {
    let label_end = (i + 1..s.len()).find(|&j| s[j] == ']')?;
    if s.get(label_end + 1) != Some(&'(') {
        return None;
    }
    let url_end = (label_end + 2..s.len()).find(|&j| s[j] == ')')?;
    let url = &s[label_end + 2..url_end];
    (!url.is_empty() && !url.iter().any(|c| c.is_whitespace())).then_some((label_end, url_end))
}

/// A delimiter opens at the start or after a non-word character, before a non-blank.
fn opens(s: &[char], i: usize) -> bool {
    let before_ok = i == 0 || !s[i - 1].is_alphanumeric();
    before_ok
        && s.get(i + 1)
            .is_some_and(|c| !c.is_whitespace() && *c != s[i])
}

/// A delimiter closes after a non-blank, at the end or before a non-word character.
fn closes(s: &[char], j: usize) -> bool {
    let after_ok = s.get(j + 1).is_none_or(|c| !c.is_alphanumeric());
    after_ok && !s[j - 1].is_whitespace()
}

fn width(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.text.chars().count()).sum()
}

/// Spans as text, each styled span wrapped in its ANSI codes and a reset when painting.
fn emit(spans: &[Span], paint: Paint) -> String {
    spans
        .iter()
        .map(|s| styled(&s.text, s.style, paint))
        .collect()
}

fn styled(text: &str, style: u8, paint: Paint) -> String {
    if paint == Paint::Plain || style == 0 || text.is_empty() {
        return text.to_string();
    }
    let mut codes = Vec::new();
    for (bit, code) in [
        (BOLD, "1"),
        (DIM, "2"),
        (ITALIC, "3"),
        (LINK, "4"),
        (STRIKE, "9"),
        (CODE, "33"),
        (MENTION, "1;36"),
    ] {
        if style & bit != 0 {
            codes.push(code);
        }
    }
    format!("\x1b[{}m{text}\x1b[0m", codes.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::parse;
    use crate::render::{DateSettings, Rendered, Renderer};
    use serde_json::json;
    use std::sync::Arc;

    fn plain(body: &Value) -> String {
        draw("dev", &body.to_string(), Paint::Plain)
    }

    fn ansi(body: &Value) -> String {
        draw("dev", &body.to_string(), Paint::Ansi)
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert_eq!(Paint::detect(true, None), Paint::Ansi);
        assert_eq!(Paint::detect(false, None), Paint::Plain);
        assert_eq!(Paint::detect(true, Some(OsStr::new("1"))), Paint::Plain);
        assert_eq!(Paint::detect(false, Some(OsStr::new("1"))), Paint::Plain);
        // no-color.org: an empty NO_COLOR does not count.
        assert_eq!(Paint::detect(true, Some(OsStr::new(""))), Paint::Ansi);
    }

    #[test]
    fn markup_is_styled_when_painting_and_plain_otherwise() {
        let body = json!({"text": "*Ann* merged _this_ and ~that~ with `code` in snake_case_name and 2 * 3 * 4",
            "card": {"title": "MR !7: Fix", "theme": "modern-inline"}});
        let p = plain(&body);
        assert!(!p.contains('\u{1b}'), "{p:?}");
        assert!(p.contains("MR !7: Fix\n"), "{p}");
        assert!(
            p.contains("Ann merged this and that with code in snake_case_name and 2 * 3 * 4\n"),
            "{p}"
        );
        let a = ansi(&body);
        assert!(a.contains("\x1b[1mMR !7: Fix\x1b[0m"), "{a:?}");
        assert!(a.contains("\x1b[1mAnn\x1b[0m merged "), "{a:?}");
        assert!(a.contains("\x1b[3mthis\x1b[0m"), "{a:?}");
        assert!(a.contains("\x1b[9mthat\x1b[0m"), "{a:?}");
        assert!(a.contains("\x1b[33mcode\x1b[0m"), "{a:?}");
        assert!(a.contains(" in snake_case_name and 2 * 3 * 4"), "{a:?}");
    }

    #[test]
    fn nested_markup_keeps_both_styles() {
        let a = ansi(&json!({"text": "*bold _both_ bold*"}));
        assert!(
            a.contains("\x1b[1mbold \x1b[0m\x1b[1;3mboth\x1b[0m\x1b[1m bold\x1b[0m"),
            "{a:?}"
        );
    }

    #[test]
    fn links_show_their_target_and_mentions_their_id() {
        let body = json!({"text": "*Ann* opened [#23 New API](http://g.test/i/23) in [http://g.test/p](http://g.test/p) for {@12345}, [not a link] (x)"});
        let p = plain(&body);
        assert!(
            p.contains("Ann opened #23 New API <http://g.test/i/23> in <http://g.test/p> for @12345, [not a link] (x)\n"),
            "{p}"
        );
        let a = ansi(&body);
        assert!(a.contains("\x1b[4m<http://g.test/i/23>\x1b[0m"), "{a:?}");
        assert!(a.contains("\x1b[1;36m@12345\x1b[0m"), "{a:?}");
    }

    #[test]
    fn buttons_are_listed_with_their_targets() {
        let body = json!({"text": "x", "buttons": [
            {"label": "View issue", "type": "+", "action": {"type": "open.url", "data": {"web": "http://g.test/i/23"}}},
            {"label": "Ask", "type": "+", "action": {"type": "invoke.function", "data": {"name": "f"}}}]});
        let p = plain(&body);
        assert!(p.contains("  [View issue] <http://g.test/i/23>\n"), "{p}");
        assert!(p.contains("  [Ask] (invoke.function)\n"), "{p}");
    }

    #[test]
    fn slides_are_drawn_as_tables_and_lists() {
        let body = json!({"text": "Pipeline failed", "slides": [
            {"type": "table", "title": "Failed jobs", "data": {"headers": ["Job", "Stage"],
                "rows": [{"Job": "rspec", "Stage": "test"}, {"Job": "*lint*", "Stage": "verify"}]}},
            {"type": "list", "title": "Commits", "data": ["one", "two"]},
            {"type": "label", "data": [{"Branch": "main"}]},
        ]});
        let p = plain(&body);
        assert!(
            p.contains(
                "Failed jobs\n  | Job   | Stage  |\n  | ----- | ------ |\n  | rspec | test   |\n  | lint  | verify |\n"
            ),
            "{p}"
        );
        assert!(p.contains("Commits\n  • one\n  • two\n"), "{p}");
        assert!(p.contains("  Branch: main\n"), "{p}");
        // Styled cells keep the columns aligned.
        let a = ansi(&body);
        assert!(a.contains("| \x1b[1mlint\x1b[0m  | verify |"), "{a:?}");
    }

    #[test]
    fn control_characters_are_made_visible_not_sent() {
        let hostile = "\x1b[31mred\x1b]0;owned\x07 \u{9b}2J \r over \u{202e}evil\u{7f}";
        let body = json!({"text": hostile, "card": {"title": hostile},
            "buttons": [{"label": hostile, "action": {"type": "open.url", "data": {"web": hostile}}}],
            "slides": [{"type": "table", "title": hostile, "data": {"headers": [hostile], "rows": [{hostile: hostile}]}}]});
        for paint in [Paint::Plain, Paint::Ansi] {
            let out = draw(hostile, &body.to_string(), paint);
            // The only escapes are this module's own SGR styles.
            let stripped = out
                .replace("\x1b[0m", "")
                .replace("\x1b[1m", "")
                .replace("\x1b[2m", "")
                .replace("\x1b[4m", "");
            for bad in ['\u{1b}', '\u{7}', '\r', '\u{9b}', '\u{202e}', '\u{7f}'] {
                assert!(!stripped.contains(bad), "{bad:?} in {out:?}");
            }
            assert!(
                out.contains("␛[31mred␛]0;owned␇ <U+009B>2J ␍ over <U+202E>evil␡"),
                "{out}"
            );
        }
        assert_eq!(
            draw("dev", "\x1b[2Jnot json", Paint::Plain).lines().nth(1),
            Some("␛[2Jnot json")
        );
    }

    #[test]
    fn hostile_gitlab_text_is_printed_inert() {
        let dates = DateSettings {
            timezone: chrono_tz::UTC,
            date_format: "%d-%b-%Y %I:%M %p".into(),
            day_format: "%d-%b-%Y".into(),
            clock: Arc::new(chrono::Utc::now),
        };
        let renderer = match Renderer::new(Vec::new(), dates, false) {
            Ok(r) => r,
            Err(e) => panic!("{e:?}"),
        };
        let title = "\x1b[31m{@all} <script>alert(1)</script> *x*";
        let event = parse(
            Some("Issue Hook"),
            json!({"object_kind": "issue", "user": {"name": title, "username": "u"},
                "project": {"id": 1, "path_with_namespace": "a/b", "web_url": "https://g.test/a/b"},
                "object_attributes": {"action": "open", "iid": 1, "title": title,
                "url": "https://g.test/a/b/-/issues/1"}}),
        );
        let event = match event {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        };
        let Ok(Rendered::Message(message, _)) = renderer.render(&event) else {
            panic!("no message")
        };
        let out = draw("dev", &message.to_json(), Paint::Ansi);
        // The title line: shown literally, ESC made visible, no mention, no markup.
        assert!(
            out.contains("\x1b[1mIssue #1: ␛[31m{@all} <script>alert(1)</script> *x*\x1b[0m\n"),
            "{out:?}"
        );
        // In the text the renderer already broke the mention and the markup.
        assert!(
            out.contains("{＠all} <script>alert(1)</script> ∗x∗"),
            "{out:?}"
        );
        assert!(!out.contains("\x1b[1;36m"), "a mention was drawn: {out:?}");
        assert!(!out.contains("\x1b[31m"), "{out:?}");
        assert!(out.contains("<https://g.test/a/b/-/issues/1>"), "{out:?}");
    }
}
