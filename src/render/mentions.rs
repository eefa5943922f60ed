//! Cliq mentions for GitLab people, only from the configured `[mentions]` table.
//!
//! The escape function neutralises every `{@` that comes from GitLab (see [`super::escape`]), so
//! a Cliq mention can only be written here, and only for a username or e-mail the configuration
//! maps to a Cliq user id:
//!
//! | helper | example | gives |
//! |---|---|---|
//! | `mention` | `{{mention merge_request.reviewers}}`, `{{mention actor}}`, `{{mention "alice"}}` | `{@12345678}` for mapped people, the escaped name for the others; lists are joined with `, ` (or the second argument) |
//! | `mention_text` | `{{mention_text (truncate note.body 1500)}}` | the text escaped as usual, with `@alice` turned into `{@12345678}` when `alice` is mapped |
//!
//! Lookups are case-insensitive. With an empty table both helpers cost one branch over plain
//! escaping.

use super::escape;
use super::helpers::write_text;
use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// GitLab usernames and e-mails → Cliq user ids, from `[mentions]`.
#[derive(Debug, Clone, Default)]
pub struct Mentions {
    /// Lower-cased username or e-mail → Cliq id.
    ids: Arc<HashMap<String, String>>,
}

/// Whether `id` can be written inside `{@…}` without changing its meaning.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && !id
            .chars()
            .any(|c| matches!(c, '{' | '}' | '"' | '\\') || c.is_whitespace() || c.is_control())
        && !matches!(
            id.to_ascii_lowercase().as_str(),
            "all" | "available" | "participants" | "channel" | "here" | "everyone"
        )
}

impl Mentions {
    /// Builds the table from (username or e-mail, Cliq id) pairs. Keys are matched without a
    /// leading `@` and case-insensitively; pairs whose id [`valid_id`] rejects are left out
    /// (the configuration refuses them before they get here).
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: impl IntoIterator<Item = (K, V)>) -> Mentions {
        let ids = pairs
            .into_iter()
            .filter(|(_, id)| valid_id(id.as_ref().trim()))
            .map(|(k, id)| (normalize(k.as_ref()), id.as_ref().trim().to_string()))
            .filter(|(k, _)| !k.is_empty())
            .collect();
        Mentions { ids: Arc::new(ids) }
    }

    /// True when no one is mapped.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The Cliq id of a username or e-mail, if mapped.
    pub fn id(&self, name: &str) -> Option<&str> {
        if self.ids.is_empty() {
            return None;
        }
        self.ids.get(&normalize(name)).map(String::as_str)
    }

    /// The username (or e-mail) mapped to `id`, lower-cased: a mention's label where the chat
    /// needs one (Telegram, Matrix). The first in order when several map to it.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.ids
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .map(|(k, _)| k.as_str())
            .min()
    }

    /// The Cliq id of a person as the event serialises them (`username`, then `email`).
    fn id_of_person(&self, person: &serde_json::Map<String, Value>) -> Option<&str> {
        ["username", "email"]
            .iter()
            .filter_map(|k| person.get(*k).and_then(Value::as_str))
            .find_map(|n| self.id(n))
    }

    /// `text` escaped like any value, with `@username` made a mention for mapped usernames.
    pub fn text(&self, text: &str) -> String {
        if self.ids.is_empty() || !text.contains('@') {
            return escape::text(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut plain_from = 0;
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'@' && (i == 0 || !is_name_byte(bytes[i - 1])) {
                let start = i + 1;
                let mut end = start;
                while end < bytes.len() && is_name_byte(bytes[end]) {
                    end += 1;
                }
                // A sentence may end right after the name.
                while end > start && bytes[end - 1] == b'.' {
                    end -= 1;
                }
                let followed_by_at = bytes.get(end) == Some(&b'@');
                if end > start && !followed_by_at {
                    if let Some(id) = self.id(&text[start..end]) {
                        out.push_str(&escape::text(&text[plain_from..i]));
                        push_mention(&mut out, id);
                        plain_from = end;
                    }
                }
                i = end.max(i + 1);
            } else {
                i += 1;
            }
        }
        out.push_str(&escape::text(&text[plain_from..]));
        out
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_start_matches('@').to_lowercase()
}

/// Characters of a GitLab username.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn push_mention(out: &mut String, id: &str) {
    out.push_str("{@");
    out.push_str(&escape::json(id));
    out.push('}');
}

/// Registers `mention` and `mention_text` on `hb`.
pub fn register(hb: &mut Handlebars<'static>, mentions: Mentions) {
    hb.register_helper("mention", Box::new(MentionHelper(mentions.clone())));
    hb.register_helper("mention_text", Box::new(MentionTextHelper(mentions)));
}

struct MentionHelper(Mentions);

impl MentionHelper {
    /// A mention for a mapped person, else their name (escaped like any value).
    fn one(&self, v: &Value, rc: &RenderContext<'_, '_>, out: &mut dyn Output) -> HelperResult {
        let (id, name) = match v {
            Value::Object(person) => (
                self.0.id_of_person(person),
                person
                    .get("name")
                    .and_then(Value::as_str)
                    .or_else(|| person.get("username").and_then(Value::as_str))
                    .unwrap_or(""),
            ),
            Value::String(s) => (self.0.id(s), s.as_str()),
            _ => (None, ""),
        };
        match id {
            Some(id) => {
                let mut s = String::with_capacity(id.len() + 3);
                push_mention(&mut s, id);
                out.write(&s)?;
                Ok(())
            }
            None => write_text(rc, out, name),
        }
    }
}

impl handlebars::HelperDef for MentionHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let Some(v) = h.param(0).map(|p| p.value()) else {
            return Err(RenderError::from(RenderErrorReason::Other(
                "mention: needs a person, a list of people or a username".into(),
            )));
        };
        match v {
            Value::Array(items) => {
                let sep = h
                    .param(1)
                    .and_then(|p| p.value().as_str())
                    .unwrap_or(", ")
                    .to_string();
                let mut first = true;
                for item in items {
                    if !first {
                        write_text(rc, out, &sep)?;
                    }
                    first = false;
                    self.one(item, rc, out)?;
                }
                Ok(())
            }
            other => self.one(other, rc, out),
        }
    }
}

struct MentionTextHelper(Mentions);

impl handlebars::HelperDef for MentionTextHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        rc: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let text = match h.param(0).map(|p| p.value()) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        };
        if rc.is_disable_escape() {
            // As a subexpression the outer helper escapes the result, mentions included: leave
            // the text as it is rather than writing mentions that would be neutralised anyway.
            out.write(&text)?;
        } else {
            out.write(&self.0.text(&text))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Mentions {
        Mentions::new([
            ("alice", "12345678"),
            ("@Bob.Smith", "bob@example.com"),
            ("carol@example.com", "999"),
            ("mallory", "{@all}"),
            ("eve", "all"),
        ])
    }

    fn unjson(escaped: &str) -> String {
        match serde_json::from_str::<String>(&format!("\"{escaped}\"")) {
            Ok(s) => s,
            Err(e) => panic!("not a JSON string body: {e}: {escaped}"),
        }
    }

    #[test]
    fn only_mapped_usernames_become_mentions() {
        let m = table();
        assert_eq!(m.id("ALICE"), Some("12345678"));
        assert_eq!(m.id("@bob.smith"), Some("bob@example.com"));
        assert_eq!(m.id("mallory"), None, "ids with braces are refused");
        assert_eq!(m.id("eve"), None, "group mentions are refused as ids");
        let out = unjson(&m.text(
            "@alice and @bob.smith. cc @dave, mail alice@example.com or @alice@host; (@alice)",
        ));
        assert_eq!(
            out,
            "{@12345678} and {@bob@example.com}. cc @dave, mail alice@example.com or @alice@host; ({@12345678})"
        );
    }

    #[test]
    fn gitlab_text_cannot_mention_anyone() {
        let m = table();
        for hostile in [
            "{@all} {@12345678}",
            "{@alice}",
            "{{@alice}",
            "@all @available",
            "*bold* [x](http://e) @alice",
        ] {
            let out = unjson(&m.text(hostile));
            let own = out.matches("{@12345678}").count();
            // `@alice` is alice wherever it stands (even in braces); nothing else is anyone.
            let wanted = hostile.matches("@alice").count() - hostile.matches("@alice@").count();
            assert_eq!(own, wanted, "{hostile} → {out}");
            assert!(
                !out.contains("{@all}") && !out.contains("{@available}"),
                "{out}"
            );
            assert!(!out.contains('*') && !out.contains('['), "{out}");
        }
    }

    #[test]
    fn empty_table_is_plain_escaping() {
        let m = Mentions::default();
        assert!(m.is_empty());
        let s = "hi @alice {@all} \"q\"\n# x";
        assert_eq!(m.text(s), escape::text(s));
    }
}
