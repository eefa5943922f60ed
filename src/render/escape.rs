//! Escaping for values placed inside the JSON string literals of a template.
//!
//! Templates produce a Cliq message as JSON text, so every value is escaped for JSON (quotes,
//! backslashes, control characters), never for HTML. Text fields also get Cliq's markup and
//! mentions neutralised: Cliq documents no escape character, so markup characters from GitLab
//! are replaced by look-alike characters that Cliq does not interpret (`*` → `∗`, `[` → `［`,
//! `{@all}` → `{＠all}`, …). The text reads the same and cannot bold, link or notify anyone.

/// Markup characters and the look-alikes that replace them in user text.
const LOOKALIKES: [(char, char); 7] = [
    ('*', '\u{2217}'), // ∗ asterisk operator
    ('_', '\u{02CD}'), // ˍ modifier letter low macron
    ('~', '\u{223C}'), // ∼ tilde operator
    ('`', '\u{02CB}'), // ˋ modifier letter grave accent
    ('[', '\u{FF3B}'), // ［ fullwidth left square bracket
    (']', '\u{FF3D}'), // ］ fullwidth right square bracket
    ('|', '\u{2223}'), // ∣ divides (table cells)
];

/// Characters that are markup only at the start of a line (heading, block quote) and their look-alikes.
const LINE_START_LOOKALIKES: [(char, char); 3] = [
    ('#', '\u{FF03}'), // ＃
    ('!', '\u{01C3}'), // ǃ
    ('>', '\u{FF1E}'), // ＞
];

/// Escapes `s` for a JSON string literal only (no markup handling): card titles, URLs, labels.
pub fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_json_char(&mut out, c);
    }
    out
}

/// Escapes `s` for a JSON string literal and neutralises Cliq markup and mentions in it.
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in neutral_chars(s) {
        push_json_char(&mut out, c);
    }
    out
}

/// Neutralises Cliq markup and mentions in `s` without JSON escaping, for text that a message is
/// built from as a value (digests, fallback messages) rather than written into a template.
pub fn neutralize(s: &str) -> String {
    neutral_chars(s).collect()
}

/// The characters of `s` with markup replaced by look-alikes and `{@` mentions broken.
fn neutral_chars(s: &str) -> impl Iterator<Item = char> + '_ {
    // A value's first character follows template text, so only lines inside the value count.
    let mut at_line_start = false;
    let mut prev = '\0';
    s.chars().map(move |c| {
        let mut c2 = c;
        if let Some((_, l)) = LOOKALIKES.iter().find(|(m, _)| *m == c) {
            c2 = *l;
        } else if c == '@' && prev == '{' {
            c2 = '\u{FF20}'; // ＠: `{@all}` no longer mentions anyone
        } else if at_line_start {
            if let Some((_, l)) = LINE_START_LOOKALIKES.iter().find(|(m, _)| *m == c) {
                c2 = *l;
            }
        }
        at_line_start = c == '\n' || (at_line_start && (c == ' ' || c == '\t'));
        prev = c;
        c2
    })
}

fn push_json_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
            out.push_str(&format!("\\u{:04x}", c as u32));
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(escaped: &str) -> String {
        match serde_json::from_str::<String>(&format!("\"{escaped}\"")) {
            Ok(s) => s,
            Err(e) => panic!("not a valid JSON string body: {e}: {escaped}"),
        }
    }

    #[test]
    fn json_escaping_survives_hostile_input() {
        let hostile = "a\"b\\c\nd\te\u{1}f\u{2028}g";
        assert_eq!(roundtrip(&json(hostile)), hostile);
    }

    #[test]
    fn text_neutralises_markup_and_mentions() {
        let out = roundtrip(&text(
            "*bold* [x](http://evil) {@all} `c` ~s~\n# head\n  !quote",
        ));
        assert!(!out.contains("{@all}"), "{out}");
        for m in ['*', '[', ']', '`', '~', '#', '!'] {
            assert!(!out.contains(m), "{m} left in {out}");
        }
        assert!(out.contains("bold") && out.contains("head"));
        assert_eq!(roundtrip(&text("naïve 日本 ✓")), "naïve 日本 ✓");
    }

    #[test]
    fn neutralize_is_text_without_json_escaping() {
        let hostile = "*b* {@all} \"q\"\n> quote [x](http://evil)";
        assert_eq!(roundtrip(&text(hostile)), neutralize(hostile));
        assert!(!neutralize(hostile).contains("{@"));
    }
}
