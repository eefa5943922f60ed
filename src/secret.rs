//! [`Secret`]: a credential wrapped from the moment it is read until the one place it is used.
//!
//! Tokens, zapikeys and signing keys travel through the program as `Secret`s, whose `Debug` shows
//! `Secret(****)` and which have no `Display`, so no log line, error or panic message can show
//! one by accident. Layer 0: it imports nothing of the crate, so every layer may hold secrets.

/// A secret value: never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}
