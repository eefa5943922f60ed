//! What the unit tests of `config` share: a fake environment, a parse through it, and one
//! channel's block parsed on its own.

use super::{ChannelConfig, Config, ConfigError, Environment};
use std::collections::HashMap;
use std::path::Path;

/// Variables and files by name (a file by its full path).
pub(super) struct FakeEnv(pub(super) HashMap<String, String>);

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(&path.display().to_string())
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// Parses `text` as `/etc/gcb/config.toml` with `env`'s variables and files.
pub(super) fn parse(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env = FakeEnv(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    Config::parse(text, Path::new("/etc/gcb/config.toml"), &env)
}

/// A config of a `[server]` and one `[[channels]]` block of `block`'s lines.
fn with_channel(block: &str) -> String {
    format!("[server]\nsecret_token='x'\n[[channels]]\n{block}\n")
}

/// The channel of `block` (see [`with_channel`]); panics with the error when it is refused.
pub(super) fn one_channel(block: &str, env: &[(&str, &str)]) -> ChannelConfig {
    match parse(&with_channel(block), env) {
        Ok(c) => c.channels[0].clone(),
        Err(e) => panic!("{block}: {e}"),
    }
}

/// Why the channel of `block` is refused; panics when it is accepted.
pub(super) fn one_channel_error(block: &str, env: &[(&str, &str)]) -> String {
    match parse(&with_channel(block), env) {
        Ok(_) => panic!("{block}: accepted"),
        Err(e) => e.to_string(),
    }
}

/// Why the channel of `block` is refused, checked to quote no `SECRET` of its credentials;
/// panics when it is accepted.
pub(super) fn one_channel_error_no_secret(block: &str, env: &[(&str, &str)]) -> String {
    let e = one_channel_error(block, env);
    assert!(!e.contains("SECRET"), "{e}");
    e
}
