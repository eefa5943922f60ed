//! `[delivery]`: the timeouts and retries of every post, as a [`RetryPolicy`].

use super::errors::{invalid, ConfigError};
use crate::deliver::RetryPolicy;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDelivery {
    timeout_secs: Option<u64>,
    max_attempts: Option<u32>,
    initial_backoff_ms: Option<u64>,
    max_backoff_secs: Option<u64>,
    max_age_hours: Option<u64>,
}

/// Validates `[delivery]`; what it leaves out is [`RetryPolicy::default`]'s.
pub(super) fn delivery_section(d: RawDelivery) -> Result<RetryPolicy, ConfigError> {
    let defaults = RetryPolicy::default();
    let retry = RetryPolicy {
        timeout: d.timeout_secs.map_or(defaults.timeout, Duration::from_secs),
        max_attempts: d.max_attempts.unwrap_or(defaults.max_attempts),
        initial_backoff: d
            .initial_backoff_ms
            .map_or(defaults.initial_backoff, Duration::from_millis),
        max_backoff: d
            .max_backoff_secs
            .map_or(defaults.max_backoff, Duration::from_secs),
        max_age: d
            .max_age_hours
            .map_or(defaults.max_age, |h| Duration::from_secs(h * 3600)),
    };
    if retry.max_attempts == 0 {
        return Err(invalid("delivery.max_attempts", "must be at least 1"));
    }
    if retry.timeout.is_zero() {
        return Err(invalid("delivery.timeout_secs", "must be at least 1"));
    }
    Ok(retry)
}
