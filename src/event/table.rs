//! The machinery behind the table of kinds (the rows are in `kinds/mod.rs`): the row type
//! [`KindRow`], the `kinds!` macro that turns one list of rows into the [`Kind`] enum, the
//! [`Detail`] enum and [`KINDS`], how a kind is recognised from the header and the body, and
//! what a kind's parser is given and gives back.
//!
//! Each kind's file under `kinds/` provides, by these names (the macro refers to them):
//! - `ACTIONS`: its actions or statuses with their verbs ([`Action`]);
//! - `VARIABLES`: its template variables, as `docs/templates.md` lists them;
//! - `parse(&mut Input) -> Option<Parsed>`: the payload → key, verb and typed detail, or `None`
//!   when the body lacks what the kind needs (it is then keyed but untyped, [`Detail::Other`]);
//! - `object_key(&detail, project_key) -> String`: which messages must stay in order;
//! - `variants(&sample) -> Vec<Variant>`: the payloads `check` renders for its bundled sample.

use super::shared::{Project, User};
use super::value::{obj_at, str_at};
use super::variables::KindVariables;
use super::{Detail, Kind, KINDS};
use serde_json::Value;

/// The `X-Gitlab-Event` of instance-wide system hooks; their bodies say what they are.
pub const SYSTEM_HOOK: &str = "System Hook";

/// One action or status of a kind: the key's last part, its words for people, and how GitLab
/// spells it in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The key's last part (`open`, `failed`, `add`); empty for the kind's bare key (`push`).
    pub word: &'static str,
    /// Past-tense words for people (`opened`, `failed`, `was added to`).
    pub verb: &'static str,
    /// What GitLab sends for it (`user_add_to_group` for `add`); empty when GitLab sends no
    /// action at all (the *Test* button's `issue.test`).
    pub sent: &'static str,
}

impl Action {
    /// An action GitLab spells as its word.
    pub const fn new(word: &'static str, verb: &'static str) -> Action {
        Action {
            word,
            verb,
            sent: word,
        }
    }

    /// The same action, spelled `sent` in the payload.
    pub const fn sent_as(self, sent: &'static str) -> Action {
        Action { sent, ..self }
    }
}

/// A sample variant for `check`: what was changed (empty for the sample as bundled), and the
/// payload.
pub type Variant = (String, Value);

/// One row of the table of kinds: how GitLab announces the kind, what its keys and verbs are,
/// its variables and its bundled samples.
#[derive(Debug)]
pub struct KindRow {
    /// The kind.
    pub kind: Kind,
    /// Its name, the first part of its keys (`merge_request`).
    pub name: &'static str,
    /// `X-Gitlab-Event` values that announce it (a `Confidential ` prefix is ignored).
    pub headers: &'static [&'static str],
    /// `object_kind` values that name it.
    pub object_kinds: &'static [&'static str],
    /// `event_name` values that name it when no header or `object_kind` does (`*` matches any
    /// run of characters).
    pub event_names: &'static [&'static str],
    /// Its actions or statuses, with their verbs; any other word is keyed but not known.
    pub actions: &'static [Action],
    /// Its template variables: (entry name, [(path, meaning)]).
    pub variables: KindVariables,
    /// Bundled sample payloads: (file in `samples/`, its text).
    pub samples: &'static [(&'static str, &'static str)],
    /// Posted only where a filter names it: channels and routes without `events`, or with only
    /// patterns that do not name the kind (`*`), do not get it. For the system-hook events an
    /// instance's administrators route to an ops channel.
    pub opt_in: bool,
    pub(super) parse: fn(&mut Input<'_>) -> Option<Parsed>,
    pub(super) variants: fn(&Value) -> Vec<Variant>,
}

impl KindRow {
    /// The `X-Gitlab-Event` its samples are sent with (`System Hook` when no header is its own).
    pub fn sample_header(&self) -> &'static str {
        self.headers.first().copied().unwrap_or(SYSTEM_HOOK)
    }

    /// Every key of this kind's actions (`push`, `push.branch_created`, …).
    pub fn keys(&self) -> Vec<String> {
        self.actions
            .iter()
            .map(|a| match a.word {
                "" => self.name.to_string(),
                w => format!("{}.{w}", self.name),
            })
            .collect()
    }

    /// The payloads `check` renders: each bundled sample and its variants (each action or status,
    /// and the odd shapes GitLab sends), labelled `FILE (what changed)`.
    pub fn sample_payloads(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for (file, text) in self.samples {
            let Ok(base) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            for (what, v) in (self.variants)(&base) {
                let label = match what.as_str() {
                    "" => (*file).to_string(),
                    w => format!("{file} ({w})"),
                };
                out.push((label, v));
            }
        }
        out
    }
}

/// The kind's name in a header (`Confidential Issue Hook` → `Issue Hook`).
fn header_name(h: &str) -> &str {
    let h = h.trim();
    h.strip_prefix("Confidential ").unwrap_or(h)
}

/// `*` in `pattern` matches any run of characters; everything else matches itself.
pub(super) fn wildcard(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(rest) = parts.next().and_then(|first| text.strip_prefix(first)) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    let mut rest = rest;
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

impl Kind {
    /// The kind a header's name (without `Confidential `) announces, if any.
    fn from_header(h: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|r| r.headers.contains(&h))
            .map(|r| r.kind.clone())
    }

    fn from_object_kind(s: &str) -> Kind {
        KINDS
            .iter()
            .find(|r| r.object_kinds.contains(&s))
            .map_or_else(|| Kind::Unknown(s.to_string()), |r| r.kind.clone())
    }

    fn from_event_name(name: &str) -> Option<Kind> {
        KINDS
            .iter()
            .find(|r| r.event_names.iter().any(|p| wildcard(p, name)))
            .map(|r| r.kind.clone())
    }

    /// Whether filters must name this kind for it to be posted (see [`KindRow::opt_in`]).
    pub fn opt_in(&self) -> bool {
        self.row().is_some_and(|r| r.opt_in)
    }

    /// The kind of a body received with `header`: the header first, then the body's
    /// `object_kind`, then its `event_name`.
    pub(super) fn detect(header: Option<&str>, v: &Value) -> Kind {
        let name = header.map(header_name);
        let from_body = str_at(v, &["object_kind"]).map(|k| Kind::from_object_kind(&k));
        match (name.and_then(Kind::from_header), from_body) {
            // One header may announce several kinds (`Issue Hook`: issues and work items); the
            // body tells them apart.
            (Some(_), Some(b))
                if b.row()
                    .zip(name)
                    .is_some_and(|(r, h)| r.headers.contains(&h)) =>
            {
                b
            }
            (Some(h), _) => h,
            (None, Some(Kind::Unknown(k))) => str_at(v, &["event_name"])
                .and_then(|n| Kind::from_event_name(&n))
                .unwrap_or(Kind::Unknown(k)),
            (None, Some(b)) => b,
            (None, None) => match str_at(v, &["event_name"]) {
                Some(n) => Kind::from_event_name(&n).unwrap_or(Kind::Unknown(key_word(&n))),
                None => Kind::Unknown(
                    header
                        .map(|h| key_word(h.trim().trim_end_matches(" Hook")))
                        .unwrap_or_else(|| "unknown".to_string()),
                ),
            },
        }
    }
}

/// Lower-cases and keeps key-safe characters so odd actions cannot forge a key.
pub(super) fn key_word(s: &str) -> String {
    if s.is_empty() {
        return "unknown".to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// What a kind's parser reads, and the parts of the event it may correct.
pub(super) struct Input<'a> {
    /// The payload.
    pub(super) v: &'a Value,
    /// The kind's row.
    pub(super) row: &'static KindRow,
    /// `object_attributes.action`, else the top-level `action`.
    pub(super) action: Option<String>,
    /// Who did it (a parser may know better, e.g. a deployment's approver).
    pub(super) actor: User,
    /// Where it happened (a parser may fill it from fields only its kind has).
    pub(super) project: Project,
}

/// `null`, for payloads without an object a parser reads from.
static NULL: Value = Value::Null;

impl<'a> Input<'a> {
    /// The payload's `object_attributes`, or `null`.
    pub(super) fn attrs(&self) -> &'a Value {
        obj_at(self.v, &["object_attributes"]).unwrap_or(&NULL)
    }

    /// The word of the action GitLab spells `sent` (`user_add_to_group` → `add`; no action at
    /// all → the action sent as nothing, if the kind has one).
    pub(super) fn word_sent_as(&self, sent: Option<&str>) -> Option<&'static str> {
        let sent = sent.unwrap_or("");
        self.row
            .actions
            .iter()
            .find(|a| a.sent == sent)
            .map(|a| a.word)
    }

    /// The word of the payload's `event_name`: the action GitLab spells so, else the name
    /// without `prefix` (`user_frob_for_team` → `frob_for_team`).
    pub(super) fn event_word(&self, prefix: &str) -> Option<String> {
        let name = str_at(self.v, &["event_name"])?;
        Some(match self.word_sent_as(Some(&name)) {
            Some(w) => w.to_string(),
            None => name.strip_prefix(prefix).unwrap_or(&name).to_string(),
        })
    }

    /// Keys the event `KIND.WORD` with the word's verb. A word the kind does not list is keyed
    /// (made key-safe) but not known; no word at all keys the kind alone.
    pub(super) fn keyed(&self, word: Option<&str>) -> Keyed {
        let verb_of = |w: &str| {
            self.row
                .actions
                .iter()
                .find(|a| a.word == w)
                .map(|a| a.verb)
        };
        let name = self.row.name;
        match word.map(str::trim).filter(|w| !w.is_empty()) {
            None => Keyed {
                key: name.to_string(),
                action: None,
                verb: verb_of("").unwrap_or_default().to_string(),
                known: true,
            },
            Some(w) => match verb_of(w) {
                Some(v) => Keyed {
                    key: format!("{name}.{w}"),
                    action: Some(w.to_string()),
                    verb: v.to_string(),
                    known: true,
                },
                None => Keyed {
                    key: format!("{name}.{}", key_word(w)),
                    action: Some(w.to_string()),
                    verb: w.to_string(),
                    known: false,
                },
            },
        }
    }

    /// Keys the event by the payload's action, for kinds whose *Test* button sends none (the
    /// action sent as nothing: `issue.test`). `action` stays what GitLab sent.
    pub(super) fn keyed_by_action(&self) -> Keyed {
        let sent = self.action.as_deref();
        let mut k = self.keyed(self.word_sent_as(sent).or(sent));
        k.action = self.action.clone();
        k
    }
}

/// An event's key, action and verb, before its detail is attached.
pub(super) struct Keyed {
    /// The event key (`pipeline.failed`).
    pub(super) key: String,
    /// The event's `action`.
    pub(super) action: Option<String>,
    /// Words for people (`failed`), empty when there is none.
    pub(super) verb: String,
    /// Whether the action or status is one the kind lists.
    pub(super) known: bool,
}

impl Keyed {
    /// The parse result with its typed detail.
    pub(super) fn with(self, detail: Detail) -> Parsed {
        Parsed {
            key: self.key,
            action: self.action,
            verb: self.verb,
            known: self.known,
            confidential: false,
            detail,
        }
    }
}

/// What a kind's parser found.
pub(super) struct Parsed {
    /// The event key.
    pub(super) key: String,
    /// The event's `action`.
    pub(super) action: Option<String>,
    /// Words for people.
    pub(super) verb: String,
    /// Whether the kind and action are known.
    pub(super) known: bool,
    /// Whether the object itself is marked confidential.
    pub(super) confidential: bool,
    /// The typed detail.
    pub(super) detail: Detail,
}

impl Parsed {
    /// Marks the event confidential when `yes`.
    pub(super) fn confidential(mut self, yes: bool) -> Parsed {
        self.confidential |= yes;
        self
    }
}

/// `base` with the value at `path` set (objects along the path are created).
pub(super) fn with(base: &Value, path: &[&str], value: Value) -> Value {
    let mut v = base.clone();
    let mut cur = &mut v;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(serde_json::Map::new());
        }
        cur = &mut cur[*key];
    }
    *cur = value;
    v
}

/// `base` without the last key of `path`.
pub(super) fn without(base: &Value, path: &[&str]) -> Value {
    let mut v = base.clone();
    if let Some((key, parent)) = path.split_last() {
        let mut cur = &mut v;
        for p in parent {
            cur = &mut cur[*p];
        }
        if let Some(o) = cur.as_object_mut() {
            o.remove(*key);
        }
    }
    v
}

/// The sample as bundled, then once per action with the action spelled as GitLab sends it at
/// `path` (removed for the action GitLab sends as nothing), labelled `WHAT WORD`.
pub(super) fn each_action(
    base: &Value,
    path: &[&str],
    actions: &[Action],
    what: &str,
) -> Vec<Variant> {
    let mut out = vec![(String::new(), base.clone())];
    for a in actions {
        out.push(match a.sent {
            "" => (format!("no {what}: {}", a.word), without(base, path)),
            sent => (
                format!("{what} {}", a.word),
                with(base, path, Value::String(sent.to_string())),
            ),
        });
    }
    out
}

/// Only the sample as bundled.
pub(super) fn as_bundled(base: &Value) -> Vec<Variant> {
    vec![(String::new(), base.clone())]
}

/// Declares the kinds: one row each, as `KindVariant => module, DetailVariant(payload type)
/// { name, headers, object_kinds, event_names, samples, opt_in, detail }`, with the kind's
/// documentation above it. Generates `mod module;` for each (and re-exports its public types),
/// [`Kind`], [`Detail`], [`KINDS`], `Kind::as_str`, `Kind::row` and the dispatch to each
/// module's `object_key`.
macro_rules! kinds {
    ($(
        $(#[doc = $doc:literal])+
        $kind:ident => $module:ident, $detail:ident($payload:ty) {
            name: $name:literal,
            headers: [$($header:literal),* $(,)?],
            object_kinds: [$($object_kind:literal),* $(,)?],
            event_names: [$($event_name:literal),* $(,)?],
            samples: [$($sample:literal),* $(,)?],
            opt_in: $opt_in:literal,
            detail: $detail_doc:literal $(,)?
        }
    )*) => {
        $(mod $module;)*
        // A kind may have no public type of its own (work items reuse `Issue`).
        $(#[allow(unused_imports)] pub use $module::*;)*

        /// The kind of GitLab event, from the header and the body: one per row of [`KINDS`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Kind {
            $($(#[doc = $doc])+ $kind,)*
            /// Anything else, with the name we saw.
            Unknown(String),
        }

        /// The kind-specific part of an event; serialised under its name (`issue`, `push`, …).
        #[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum Detail {
            $(#[doc = $detail_doc] $detail($payload),)*
            /// A kind we acknowledge but do not model; templates can still use `raw`.
            Other {},
        }

        /// Positions of the rows in [`KINDS`].
        #[derive(Clone, Copy)]
        enum Row {
            $($kind,)*
        }

        /// How many kinds there are.
        const COUNT: usize = [$(Row::$kind),*].len();

        /// The table of kinds: what the bridge knows of each GitLab event kind. `Kind`'s
        /// strings, `check`'s samples and the template reference are derived from it.
        pub static KINDS: [KindRow; COUNT] = [$(
            KindRow {
                kind: Kind::$kind,
                name: $name,
                headers: &[$($header),*],
                object_kinds: &[$($object_kind),*],
                event_names: &[$($event_name),*],
                actions: $module::ACTIONS,
                variables: $module::VARIABLES,
                samples: &[$((
                    $sample,
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/samples/", $sample)),
                )),*],
                opt_in: $opt_in,
                parse: $module::parse,
                variants: $module::variants,
            },
        )*];

        impl Kind {
            /// The dotted-key prefix of this kind (`merge_request`, `push`, …).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Kind::$kind => $name,)*
                    Kind::Unknown(s) => s,
                }
            }

            /// This kind's row in [`KINDS`]; `None` for [`Kind::Unknown`].
            pub fn row(&self) -> Option<&'static KindRow> {
                match self {
                    $(Kind::$kind => Some(&KINDS[Row::$kind as usize]),)*
                    Kind::Unknown(_) => None,
                }
            }
        }

        impl Detail {
            /// The ordering key of a typed detail, under the project's key `p`.
            pub(in crate::event) fn object_key(&self, p: &str) -> Option<String> {
                match self {
                    $(Detail::$detail(d) => Some($module::object_key(d, p)),)*
                    Detail::Other {} => None,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("push", "push", true),
            ("push", "push2", false),
            ("user_*group*", "user_add_to_group", true),
            ("user_*group*", "user_access_request_denied_for_group", true),
            ("user_*group*", "user_add_to_team", false),
            ("project_*", "project_create", true),
            ("project_*", "user_add_to_project", false),
            ("*access_token", "expiring_access_token", true),
            ("*access_token", "access_token_x", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "acb", false),
        ] {
            assert_eq!(wildcard(p, t), want, "{p} vs {t}");
        }
    }

    #[test]
    fn variants_set_or_remove_the_action() {
        let base = serde_json::json!({"a": {"action": "open"}});
        let actions = [
            Action::new("close", "closed"),
            Action::new("test", "tested").sent_as(""),
        ];
        let v = each_action(&base, &["a", "action"], &actions, "action");
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].1["a"]["action"], "close");
        assert_eq!(v[2].0, "no action: test");
        assert!(v[2].1["a"].get("action").is_none());
    }
}
