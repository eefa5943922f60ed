//! `[mentions]` and `[mentions.<kind>]`: GitLab usernames or e-mails mapped to chat user ids, the
//! only source of `{@id}` mentions, each id checked safe inside `{@…}`.

use super::errors::{invalid, ConfigError};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A `[mentions]` entry: `alice = "id"`, or a `[mentions.<kind>]` table of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawMention {
    Id(String),
    Kind(BTreeMap<String, String>),
}

/// The kinds that may have a `[mentions.<kind>]` table.
pub const MENTION_KINDS: [&str; 5] = ["slack", "mattermost", "teams", "google_chat", "discord"];

/// Usernames or e-mails → user ids.
type Ids = BTreeMap<String, String>;

/// Splits `[mentions]` into its plain entries (validated later, by [`mentions_section`]) and its
/// `[mentions.<kind>]` tables, each validated.
pub(super) fn kind_tables(
    raw: BTreeMap<String, RawMention>,
) -> Result<(Ids, BTreeMap<String, Ids>), ConfigError> {
    let mut plain_mentions = BTreeMap::new();
    let mut kind_mentions = BTreeMap::new();
    for (name, m) in raw {
        match m {
            RawMention::Id(id) => {
                plain_mentions.insert(name, id);
            }
            RawMention::Kind(table) => {
                if !MENTION_KINDS.contains(&name.as_str()) {
                    return Err(invalid(
                        format!("mentions.{name}"),
                        format!(
                            "a table here names a kind: one of {}",
                            MENTION_KINDS.join(", ")
                        ),
                    ));
                }
                let checked = mentions_section(table, &format!("mentions.{name}"))?;
                kind_mentions.insert(name, checked);
            }
        }
    }
    Ok((plain_mentions, kind_mentions))
}

/// Validates `[mentions]` (or a `[mentions.<kind>]` table, `section`): usernames or e-mails
/// mapped to user ids that are safe inside `{@…}`.
pub(super) fn mentions_section(
    raw: BTreeMap<String, String>,
    section: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for (name, id) in raw {
        let key = format!("{section}.{name:?}");
        let user = name.trim().trim_start_matches('@').trim().to_string();
        if user.is_empty() {
            return Err(invalid(key, "the GitLab username or e-mail is empty"));
        }
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(invalid(key, "the Cliq user id is empty"));
        }
        if id
            .chars()
            .any(|c| matches!(c, '{' | '}' | '"' | '\\') || c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                key,
                format!("{id:?} is not a Cliq user id (no braces, quotes or blanks)"),
            ));
        }
        if matches!(
            id.to_ascii_lowercase().as_str(),
            "all" | "available" | "participants" | "channel" | "here" | "everyone"
        ) {
            return Err(invalid(
                key,
                format!("{id:?} is a group mention, not a user id"),
            ));
        }
        if let Some(other) = seen.insert(user.to_lowercase(), name.clone()) {
            return Err(invalid(
                key,
                format!("{user:?} is mapped twice (also as {other:?}); names are case-insensitive"),
            ));
        }
        out.insert(user, id);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::testing::parse;

    #[test]
    fn mentions_per_kind() {
        let base =
            "[server]\nsecret_token='x'\n[mentions]\nalice='111'\n[mentions.slack]\nalice='U1'\n";
        let cfg = match parse(base, &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.mentions.get("alice").map(String::as_str), Some("111"));
        assert_eq!(
            cfg.kind_mentions["slack"].get("alice").map(String::as_str),
            Some("U1")
        );
        let bad = parse(
            "[server]\nsecret_token='x'\n[mentions.skype]\nalice='U1'\n",
            &[],
        );
        assert!(bad
            .err()
            .is_some_and(|e| e.to_string().starts_with("mentions.skype")));
        let group = parse(
            "[server]\nsecret_token='x'\n[mentions.discord]\nalice='all'\n",
            &[],
        );
        assert!(group
            .err()
            .is_some_and(|e| e.to_string().starts_with("mentions.discord")));
    }

    #[test]
    fn mentions_are_validated() {
        let base = "[server]\nsecret_token='x'\n[mentions]\n";
        let ok = parse(
            &format!("{base}alice = '12345678'\n'@Bob' = ' bob@example.com '\n'carol@example.com' = '999'\n"),
            &[],
        );
        let m = match ok {
            Ok(c) => c.mentions,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(m.get("alice").map(String::as_str), Some("12345678"));
        assert_eq!(m.get("Bob").map(String::as_str), Some("bob@example.com"));
        assert_eq!(m.get("carol@example.com").map(String::as_str), Some("999"));
        let none = parse("[server]\nsecret_token='x'\n", &[]);
        assert!(none.map(|c| c.mentions.is_empty()).unwrap_or(false));
        for (bad, why) in [
            ("alice = ''", "empty"),
            ("alice = '{@all}'", "braces"),
            ("alice = '12 34'", "braces"),
            ("alice = 'all'", "group mention"),
            ("'' = '1'", "empty"),
            ("alice = '1'\nAlice = '2'", "mapped twice"),
        ] {
            let msg = parse(&format!("{base}{bad}\n"), &[])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(msg.starts_with("mentions."), "{bad}: {msg}");
            assert!(msg.contains(why), "{bad}: {msg}");
        }
    }
}
