//! What the unit tests of `config` share: a fake environment and a parse through it.

use super::{Config, ConfigError, Environment};
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
