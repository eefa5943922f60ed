//! Secrets as the file gives them: a value, a `_file` or an `_env` (at most one of them), or
//! lists of values and files for rotation; each read through an [`Environment`] (the process's,
//! or a test's) and wrapped in [`Secret`] at once.

use super::errors::{invalid, ConfigError};
use crate::secret::Secret;
use std::path::{Path, PathBuf};

/// Where a secret may come from.
pub(super) struct SecretSources<'a> {
    pub(super) key: &'a str,
    pub(super) inline: Option<String>,
    pub(super) file: Option<PathBuf>,
    pub(super) env: Option<String>,
}

/// Reads a file and the environment through these functions, so tests need neither.
pub trait Environment {
    /// The value of an environment variable.
    fn var(&self, name: &str) -> Option<String>;
    /// The text of a file.
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// The process environment and file system.
pub struct RealEnvironment;

impl Environment for RealEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// Reads at most one of a secret's sources; more than one is an error naming the key.
pub(super) fn secret(
    src: SecretSources<'_>,
    env: &dyn Environment,
) -> Result<Option<Secret>, ConfigError> {
    let given = [src.inline.is_some(), src.file.is_some(), src.env.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid(
            src.key,
            "give only one of the value, _file or _env for this secret",
        ));
    }
    if let Some(v) = src.inline {
        return Ok(Some(Secret::new(v.trim())));
    }
    if let Some(path) = src.file {
        let v = env.read(&path).map_err(|e| {
            invalid(
                format!("{}_file", src.key),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        return Ok(Some(Secret::new(v.trim())));
    }
    if let Some(var) = src.env {
        let v = env
            .var(&var)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| invalid(format!("{}_env", src.key), format!("${var} is not set")))?;
        return Ok(Some(Secret::new(v.trim())));
    }
    Ok(None)
}

/// Reads a list of inline secrets and secret files (`KEY = [...]`, `KEY_files`-style keys).
pub(super) fn secret_list(
    key: &str,
    inline: Option<Vec<String>>,
    files_key: &str,
    files: Option<Vec<PathBuf>>,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<Secret>, ConfigError> {
    let mut out = Vec::new();
    for (i, v) in inline.into_iter().flatten().enumerate() {
        out.push((format!("{key}[{i}]"), Secret::new(v.trim())));
    }
    for (i, p) in files.into_iter().flatten().enumerate() {
        let path = resolve(p);
        let v = env.read(&path).map_err(|e| {
            invalid(
                format!("{files_key}[{i}]"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        out.push((format!("{files_key}[{i}]"), Secret::new(v.trim())));
    }
    out.into_iter()
        .map(|(k, v)| {
            if v.expose().is_empty() {
                Err(invalid(k, "must not be empty"))
            } else {
                Ok(v)
            }
        })
        .collect()
}

/// `current` first, then `others`, without duplicates.
pub(super) fn with_rotation(current: Option<Secret>, others: Vec<Secret>) -> Vec<Secret> {
    let mut all: Vec<Secret> = Vec::with_capacity(others.len() + 1);
    for s in current.into_iter().chain(others) {
        if !all.contains(&s) {
            all.push(s);
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use crate::config::testing::parse;
    use crate::deliver::Auth;
    use crate::secret::Secret;

    #[test]
    fn secrets_come_from_file_env_or_url_and_stay_hidden() {
        let cfg = parse(
            "[server]\nsecret_token_file='tok'\n[[channels]]\nname='a'\nurl='https://cliq.zoho.eu/api/v2/channelsbyname/a/message?zapikey=K1'\n[[channels]]\nname='b'\nurl='https://cliq.zoho.in/x'\nzapikey_env='ZK'\n",
            &[("/etc/gcb/tok", "s3cret\n"), ("ZK", "K2")],
        );
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(cfg.server.secret_token.expose(), "s3cret");
        assert_eq!(
            cfg.channels[0].endpoint.url,
            "https://cliq.zoho.eu/api/v2/channelsbyname/a/message"
        );
        assert_eq!(
            cfg.channels[0].endpoint.auth,
            Auth::ZapiKey(Secret::new("K1"))
        );
        assert_eq!(
            cfg.channels[1].endpoint.auth,
            Auth::ZapiKey(Secret::new("K2"))
        );
        let dbg = format!("{cfg:?}");
        for s in ["s3cret", "K1", "K2"] {
            assert!(!dbg.contains(s), "{s} leaked in Debug");
        }
    }
}
