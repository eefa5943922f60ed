//! Why a configuration could not be loaded: [`ConfigError`], whose messages name the file or the
//! key (`channels[1].url`) and never a secret's value.
//!
//! A TOML mistake (a typo, an unknown key, a value of the wrong type) is told as the file, line,
//! column and dotted key, with toml's description of it but not the source line toml's own
//! message quotes: on a secret's line (`zapikeyy = "…"`) that line holds the secret, and the
//! message goes to the journal.

use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Line, column, the key when there is one, and what is wrong (no value).
        message: String,
    },
    /// A key has an invalid value.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted key (`channels[0].url`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A [`ConfigError::Invalid`] for `key`.
pub(super) fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// A [`ConfigError::Syntax`] for toml's error `e` in `text`, read from `path`: `line L, column C:
/// KEY: what is wrong`. The key comes from the parsed document (only when the TOML itself is
/// well formed: in a malformed line, what looks like a key may be a pasted secret), and the
/// value of the key, if toml's words repeat it, is left out.
pub(super) fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let mut message = String::new();
    let mut value = None;
    if let Some(span) = e.span() {
        let (line, column) = line_column(text, span.start);
        message.push_str(&format!("line {line}, column {column}: "));
        if let Some(place) = DeTable::parse(text)
            .ok()
            .and_then(|doc| innermost(doc.get_ref(), &span))
        {
            message.push_str(&place.key);
            message.push_str(": ");
            value = place.value;
        }
    }
    message.push_str(&without_value(e.message().trim_end(), value.as_deref()));
    ConfigError::Syntax {
        path: path.to_path_buf(),
        message: message.replace('\n', " "),
    }
}

/// 1-based line and column (in characters) of byte `at` of `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    )
}

/// A key, table header or value of the document: where it is, its dotted key, and its string
/// value if it is one.
struct Place {
    span: Range<usize>,
    key: String,
    value: Option<String>,
}

/// The key (or table header, or value) with the smallest span around `span`.
fn innermost(doc: &DeTable<'_>, span: &Range<usize>) -> Option<Place> {
    let mut places = Vec::new();
    visit_table(doc, "", &mut places);
    places
        .into_iter()
        .filter(|p| p.span.start <= span.start && span.end <= p.span.end.max(p.span.start + 1))
        .min_by_key(|p| p.span.len())
}

/// Every key and value of `table` (keys under `prefix`), into `out`.
fn visit_table(table: &DeTable<'_>, prefix: &str, out: &mut Vec<Place>) {
    for (k, v) in table.iter() {
        let key = join(prefix, k.get_ref());
        out.push(Place {
            span: k.span(),
            key: key.clone(),
            value: None,
        });
        visit_value(v.get_ref(), v.span(), key, out);
    }
}

/// `value` (at `span`, under `key`) and what it holds, into `out`.
fn visit_value(value: &DeValue<'_>, span: Range<usize>, key: String, out: &mut Vec<Place>) {
    match value {
        DeValue::Table(t) => visit_table(t, &key, out),
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                visit_value(item.get_ref(), item.span(), format!("{key}[{i}]"), out);
            }
        }
        _ => {}
    }
    out.push(Place {
        span,
        value: value.as_str().map(str::to_string),
        key,
    });
}

/// `prefix.name`, with `name` quoted when it is not a bare key.
fn join(prefix: &str, name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let name = if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}.{name}")
    }
}

/// toml's (serde's) message without the value it may quote: `invalid type: string "…", expected
/// a boolean` becomes `invalid type: string, expected a boolean`, and the string `value` found at
/// the error's place is cut out wherever else it appears.
fn without_value(message: &str, value: Option<&str>) -> String {
    let mut out = message.to_string();
    for lead in ["invalid type: ", "invalid value: "] {
        if let (Some(rest), Some(cut)) = (out.strip_prefix(lead), out.rfind(", expected ")) {
            let unexpected = &rest[..cut.saturating_sub(lead.len())];
            let kind = unexpected
                .split(['"', '`', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            out = format!("{lead}{kind}{}", &out[cut..]);
            break;
        }
    }
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        // serde quotes a value as a Rust string or in backticks.
        for quoted in [format!("{v:?}"), format!("`{v}`")] {
            out = out.replace(&quoted, "…");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        let e = toml::from_str::<toml::Table>(text)
            .err()
            .or_else(|| toml::from_str::<Strict>(text).err());
        match e.map(|e| syntax(Path::new("/c.toml"), text, &e)) {
            Some(ConfigError::Syntax { message, .. }) => message,
            other => panic!("{other:?}"),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Strict {
        flag: Option<bool>,
        #[serde(default)]
        list: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        name: String,
    }

    #[test]
    fn the_place_is_a_line_a_column_in_characters_and_a_dotted_key() {
        assert_eq!(
            message("# é\nflag = 'a'\n"),
            "line 2, column 8: flag: invalid type: string, expected a boolean"
        );
        assert_eq!(
            message("[[list]]\nname = 'a'\n[[list]]\n\"odd key\" = 1\n"),
            "line 4, column 1: list[1].\"odd key\": unknown field `odd key`, expected `name`"
        );
        assert_eq!(
            message("[[list]]\nname = 'a'\n[[list]]\n"),
            "line 3, column 1: list[1]: missing field `name`"
        );
    }

    #[test]
    fn a_malformed_line_names_no_key_and_no_value() {
        let m = message("flag = true\nglpat-hunter2\n");
        assert!(m.starts_with("line 2, column "), "{m}");
        assert!(!m.contains("hunter2"), "{m}");
    }

    #[test]
    fn quoted_values_are_cut_and_nothing_else() {
        assert_eq!(
            without_value("invalid value: string \"a, expected b\", expected c", None),
            "invalid value: string, expected c"
        );
        assert_eq!(
            without_value("invalid type: integer `5`, expected a string", None),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            without_value("no `s3cret` here, and a b c", Some("s3cret")),
            "no … here, and a b c"
        );
        assert_eq!(
            without_value("expected a boolean", Some("a")),
            "expected a boolean"
        );
    }
}
