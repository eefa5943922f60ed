//! `[log]`: how log lines are written.

use super::errors::{invalid, ConfigError};
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    format: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// The `[log]` section, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log.format`: `"text"` (default) or `"json"`.
    pub format: LogFormat,
}

/// Validates `[log]`.
pub(super) fn log_section(raw: RawLog) -> Result<LogConfig, ConfigError> {
    let format = match raw.format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            return Err(invalid(
                "log.format",
                format!("{other:?} is not \"text\" or \"json\""),
            ))
        }
    };
    Ok(LogConfig { format })
}
