//! The HTML that the Telegram and Matrix builders write: escaping, safe link targets, and a
//! [`fit`] that balances the tags and cuts to a budget without breaking a tag or an entity.
//!
//! The builders escape every `&`, `<` and `>` of text before adding their own tags, so in their
//! output every `<` opens one of those tags and every `&` starts an entity: that is all the
//! tokenizer here has to know. [`fit`] keeps the tags properly nested (a tag closed out of order
//! closes and reopens the ones inside it; a stray closing tag is dropped; what is left open is
//! closed at the end), and when the text is over budget it cuts between tokens, drops elements
//! left empty, ends with `…` and closes what is open.

/// `s` with `&`, `<`, `>` and `"` as entities (the named ones Telegram and Matrix both know).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Whether `url` may be a link target: `http://` or `https://` with a host, and nothing a
/// browser would read otherwise (no spaces, quotes, angle brackets or control characters).
pub fn safe_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    let rest = match lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))
    {
        Some(r) => r,
        None => return false,
    };
    !rest.is_empty()
        && !rest.starts_with('/')
        && url.len() == url.trim().len()
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
}

/// `<a href="url">label</a>` when `url` is [`safe_url`], else the label alone; `label` is
/// already HTML. GitLab sometimes sends `&amp;` in URLs: it is decoded before escaping, so the
/// link points where GitLab meant.
pub fn link(label: &str, url: &str) -> String {
    if safe_url(url) {
        format!(
            "<a href=\"{}\">{label}</a>",
            escape(&url.replace("&amp;", "&"))
        )
    } else {
        label.to_string()
    }
}

/// One piece of the builders' HTML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    /// `<name …>`.
    Open(&'a str, &'a str),
    /// `</name>`.
    Close(&'a str, &'a str),
    /// `<br>`, `<br/>`, `<hr>`: no content, no closing tag.
    Void(&'a str),
    /// One character or one entity (`&amp;`).
    Char(&'a str),
}

impl Token<'_> {
    /// The token as written.
    pub fn raw(&self) -> &str {
        match self {
            Token::Open(_, r) | Token::Close(_, r) | Token::Void(r) | Token::Char(r) => r,
        }
    }
}

/// Cuts the builders' HTML into tokens. A `<` without its `>` (never written by the builders)
/// and an `&` without its `;` count as characters.
pub fn tokens(html: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < html.len() {
        let rest = &html[i..];
        let c = rest.chars().next().unwrap_or(' ');
        if c == '<' {
            if let Some(end) = rest.find('>') {
                let raw = &rest[..=end];
                let inner = raw[1..raw.len() - 1].trim_end_matches('/');
                let (closing, inner) = match inner.strip_prefix('/') {
                    Some(n) => (true, n),
                    None => (false, inner),
                };
                let name = inner.split([' ', '\t', '\n']).next().unwrap_or_default();
                out.push(if closing {
                    Token::Close(name, raw)
                } else if matches!(name, "br" | "hr") {
                    Token::Void(raw)
                } else {
                    Token::Open(name, raw)
                });
                i += raw.len();
                continue;
            }
        }
        if c == '&' {
            if let Some(end) = rest.find(';').filter(|e| *e <= 10) {
                let name = &rest[1..end];
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#') {
                    out.push(Token::Char(&rest[..=end]));
                    i += end + 1;
                    continue;
                }
            }
        }
        out.push(Token::Char(&rest[..c.len_utf8()]));
        i += c.len_utf8();
    }
    out
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Text after entity parsing, in UTF-16 code units (Telegram's 4 096): tags count nothing,
    /// an entity one.
    Utf16Text,
    /// Bytes of the HTML as written (Matrix's event size).
    Bytes,
}

impl Measure {
    fn cost(self, t: &Token<'_>) -> usize {
        match (self, t) {
            (Measure::Bytes, t) => t.raw().len(),
            (Measure::Utf16Text, Token::Char(c)) if c.starts_with('&') && c.len() > 1 => 1,
            (Measure::Utf16Text, Token::Char(c)) => c.encode_utf16().count(),
            (Measure::Utf16Text, Token::Void(_)) => 1,
            (Measure::Utf16Text, _) => 0,
        }
    }

    /// The size of `html` in this measure.
    pub fn of(self, html: &str) -> usize {
        tokens(html).iter().map(|t| self.cost(t)).sum()
    }
}

/// The mark that ends a cut text.
pub const ELLIPSIS: &str = "…";

struct Open<'a> {
    name: &'a str,
    raw: &'a str,
    /// Output length before the opening tag.
    before: usize,
    /// Output length right after it.
    after: usize,
}

/// `html` with its tags balanced and, when it is over `max` in `measure`, cut between tokens
/// so that the result (closing tags and `…` included) is within `max`.
pub fn fit(html: &str, max: usize, measure: Measure) -> String {
    let balanced = balance(html, usize::MAX, measure);
    if measure.of(&balanced) <= max {
        return balanced;
    }
    balance(html, max, measure)
}

fn close_cost(measure: Measure, name: &str) -> usize {
    match measure {
        Measure::Bytes => name.len() + 3,
        Measure::Utf16Text => 0,
    }
}

fn balance(html: &str, max: usize, measure: Measure) -> String {
    let cutting = max != usize::MAX;
    let reserve = if cutting { measure.of(ELLIPSIS) } else { 0 };
    let mut out = String::with_capacity(html.len().min(max.saturating_mul(4)));
    let mut stack: Vec<Open<'_>> = Vec::new();
    let mut used = 0usize;
    let mut closing = 0usize;
    let mut cut = false;
    for t in tokens(html) {
        let cost = measure.cost(&t);
        match t {
            Token::Char(_) | Token::Void(_) => {
                if used + cost + reserve + closing > max {
                    cut = true;
                    break;
                }
                out.push_str(t.raw());
                used += cost;
            }
            Token::Open(name, raw) => {
                let more = close_cost(measure, name);
                if used + cost + more + reserve + closing > max {
                    cut = true;
                    break;
                }
                let before = out.len();
                out.push_str(raw);
                used += cost;
                closing += more;
                stack.push(Open {
                    name,
                    raw,
                    before,
                    after: out.len(),
                });
            }
            Token::Close(name, _) => {
                let Some(pos) = stack.iter().rposition(|o| o.name == name) else {
                    continue; // a closing tag with nothing to close
                };
                // Close the ones opened inside it, close it, reopen those: the reopened tags
                // cost what they cost the first time, which the budget already holds.
                let inner: Vec<Open<'_>> = stack.split_off(pos + 1);
                let mut extra = 0;
                for o in &inner {
                    extra +=
                        close_cost(measure, o.name) + measure.cost(&Token::Open(o.name, o.raw));
                }
                if used + extra + reserve + closing > max {
                    stack.extend(inner);
                    cut = true;
                    break;
                }
                for o in inner.iter().rev() {
                    push_close(&mut out, o.name);
                    used += close_cost(measure, o.name);
                }
                if let Some(o) = stack.pop() {
                    push_close(&mut out, o.name);
                    used += close_cost(measure, o.name);
                    closing -= close_cost(measure, o.name);
                }
                for o in inner {
                    let before = out.len();
                    out.push_str(o.raw);
                    used += measure.cost(&Token::Open(o.name, o.raw));
                    stack.push(Open {
                        after: out.len(),
                        before,
                        ..o
                    });
                }
            }
        }
    }
    if cut {
        // Elements the cut left empty go: Telegram refuses an empty link.
        while stack.last().is_some_and(|o| o.after == out.len()) {
            if let Some(o) = stack.pop() {
                out.truncate(o.before);
            }
        }
        out.push_str(ELLIPSIS);
    }
    for o in stack.iter().rev() {
        push_close(&mut out, o.name);
    }
    out
}

fn push_close(out: &mut String, name: &str) {
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_are_links() {
        assert_eq!(
            link("x", "https://e.test/a?b=1&amp;c=2"),
            "<a href=\"https://e.test/a?b=1&amp;c=2\">x</a>"
        );
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            " javascript:x",
            "data:text/html,x",
            "https://e.test/\"onmouseover=\"x",
            "http:///x",
            "https://",
            "tg://user?id=1",
        ] {
            assert_eq!(link("x", bad), "x", "{bad}");
        }
    }

    #[test]
    fn tags_are_balanced() {
        assert_eq!(
            fit("<b>a <i>b</b> c</i>", 100, Measure::Utf16Text),
            "<b>a <i>b</i></b><i> c</i>"
        );
        assert_eq!(fit("</s>x<b>y", 100, Measure::Utf16Text), "x<b>y</b>");
    }

    #[test]
    fn a_cut_never_breaks_a_tag_or_an_entity() {
        let html = "<b>ab &amp; cd</b> <a href=\"https://e.test/\">link text</a> tail";
        for max in 1..40 {
            let out = fit(html, max, Measure::Utf16Text);
            assert!(Measure::Utf16Text.of(&out) <= max, "{max}: {out}");
            let last = tokens(&out)
                .into_iter()
                .rev()
                .find(|t| !matches!(t, Token::Close(..)));
            assert!(
                last == Some(Token::Char("…")) || out == html,
                "{max}: {out}"
            );
            assert_eq!(
                out.matches("<b>").count(),
                out.matches("</b>").count(),
                "{out}"
            );
            assert_eq!(
                out.matches("<a ").count(),
                out.matches("</a>").count(),
                "{out}"
            );
            assert!(!out.contains("<a href=\"https://e.test/\"></a>"), "{out}");
            let t = tokens(&out);
            assert!(
                t.iter()
                    .all(|t| !matches!(t, Token::Char("&") | Token::Char("<"))),
                "{out}"
            );
        }
        for max in 1..120 {
            let out = fit(html, max, Measure::Bytes);
            assert!(out.len() <= max.max(ELLIPSIS.len()), "{max}: {out}");
        }
    }

    #[test]
    fn utf16_counts_astral_characters_twice() {
        assert_eq!(Measure::Utf16Text.of("a😀&lt;<b>b</b>"), 5);
    }
}
