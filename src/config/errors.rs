//! Why a configuration could not be loaded: [`ConfigError`], whose messages name the file or the
//! key (`channels[1].url`) and never a secret's value.

use std::path::PathBuf;

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
        /// toml's message, with line and key.
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
