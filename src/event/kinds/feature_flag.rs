//! Feature flags: `Feature Flag Hook`, keyed `on` or `off` from `object_attributes.active`.

use crate::event::shared::under;
use crate::event::table::{with, Action, Input, Parsed, Variant};
use crate::event::value::{bool_at, str_at, u64_at};
use crate::event::variables::KindVariables;
use crate::event::Detail;
use serde::Serialize;
use serde_json::Value;

/// Turned on, turned off.
pub(super) const ACTIONS: &[Action] = &[
    Action::new("on", "turned on"),
    Action::new("off", "turned off"),
];

/// A feature flag turned on or off.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeatureFlag {
    /// Flag id.
    pub id: Option<u64>,
    /// Flag name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Whether it is on now.
    pub active: bool,
    /// Web page of the project's feature flags.
    pub url: Option<String>,
}

/// A feature flag event; without `active` it is keyed `feature_flag` alone.
pub(super) fn parse(input: &mut Input<'_>) -> Option<Parsed> {
    let a = input.attrs();
    let active = bool_at(a, &["active"]);
    let flag = FeatureFlag {
        id: u64_at(a, &["id"]),
        name: str_at(a, &["name"]).unwrap_or_else(|| "(unnamed)".to_string()),
        description: str_at(a, &["description"]),
        active: active.unwrap_or(false),
        url: under(&input.project, "feature_flags"),
    };
    Some(
        input
            .keyed(active.map(|on| if on { "on" } else { "off" }))
            .with(Detail::FeatureFlag(Box::new(flag))),
    )
}

/// Messages about one flag stay in order.
pub(super) fn object_key(f: &FeatureFlag, p: &str) -> String {
    format!("{p}/feature_flag/{}", f.name)
}

/// The sample (turned on), and turned off.
pub(super) fn variants(base: &Value) -> Vec<Variant> {
    vec![
        (String::new(), base.clone()),
        (
            "turned off".into(),
            with(base, &["object_attributes", "active"], Value::Bool(false)),
        ),
    ]
}

/// Template variables of feature flags.
pub(super) const VARIABLES: KindVariables = (
    "feature_flag",
    &[
        ("feature_flag", "the feature flag"),
        ("feature_flag.id", "flag id"),
        ("feature_flag.name", "flag name"),
        ("feature_flag.description", "description"),
        ("feature_flag.active", "whether it is on now"),
        ("feature_flag.url", "web page of the project's feature flags"),
    ],
);
