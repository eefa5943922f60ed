//! `[cliq_extension]`: the bridge as the backend of a Cliq extension (`/gitlab` command, card
//! buttons, chats subscribing themselves): its path, public keys, admins, allowed projects and
//! the credential chats are posted with.

use super::channels::DEFAULT_RATE_PER_MINUTE;
use super::errors::{invalid, ConfigError};
use super::gitlab::GitlabConfig;
use super::secrets::{secret, Environment, SecretSources};
use crate::deliver::{Auth, Endpoint};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default `[cliq_extension] path`: where Cliq posts the extension's invocations.
pub const DEFAULT_CLIQ_PATH: &str = "/hooks/cliq";

/// Default `[cliq_extension] answer_within_ms`.
pub const DEFAULT_CLIQ_ANSWER_WITHIN_MS: u64 = 4_000;

/// Default `[cliq_extension] api_url`: the Cliq host chats are posted to.
pub const DEFAULT_CLIQ_API_URL: &str = "https://cliq.zoho.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCliqExtension {
    path: Option<String>,
    public_keys: Option<Vec<String>>,
    public_key_files: Option<Vec<PathBuf>>,
    admins: Option<Vec<String>>,
    allowed_projects: Option<Vec<String>>,
    api_url: Option<String>,
    zapikey: Option<String>,
    zapikey_file: Option<PathBuf>,
    zapikey_env: Option<String>,
    oauth_token: Option<String>,
    oauth_token_file: Option<PathBuf>,
    oauth_token_env: Option<String>,
    button_function: Option<String>,
    data_center: Option<String>,
    organization_id: Option<String>,
    #[serde(default)]
    confidential: bool,
    rate_per_minute: Option<u32>,
    answer_within_ms: Option<u64>,
}

/// The `[cliq_extension]` section, validated: the bridge as the backend of a webhook-based
/// Cliq extension (`/gitlab` command, card buttons, chats subscribing themselves).
#[derive(Debug, Clone)]
pub struct CliqExtensionConfig {
    /// Path of the callback URL (default [`DEFAULT_CLIQ_PATH`]).
    pub path: String,
    /// The extension's public keys (base64 X.509 SubjectPublicKeyInfo, as the Connectors tab
    /// shows them), the active one first; an invocation signed by any of them is accepted.
    pub public_keys: Vec<String>,
    /// Cliq user ids or e-mails (lower case) allowed to run `/gitlab setup`.
    pub admins: Vec<String>,
    /// Project or group path globs a chat may subscribe to.
    pub allowed_projects: Vec<String>,
    /// Subscribed chats are posted to `{api_url}/api/v2/chats/{chat_id}/message`, and how.
    pub api: Endpoint,
    /// The extension's function card buttons invoke; `None`: no buttons.
    pub button_function: Option<String>,
    /// Invocations from another data centre (`params.environment.data_center`) are refused.
    pub data_center: Option<String>,
    /// Invocations from another organisation (`params.access.organization.id`) are refused.
    pub organization_id: Option<String>,
    /// Whether subscribed chats may receive confidential issues and comments.
    pub confidential: bool,
    /// Posts per minute allowed for the extension's credential, shared by every chat.
    pub rate_per_minute: u32,
    /// How long an answer may take before it is sent through the invocation's `response_url`
    /// instead (Cliq waits 5 s for the HTTP answer); default [`DEFAULT_CLIQ_ANSWER_WITHIN_MS`].
    pub answer_within: Duration,
}

/// Validates `[cliq_extension]`. It needs `[gitlab]` with a token: a chat may only subscribe
/// to what that token can see.
pub(super) fn cliq_extension_section(
    x: RawCliqExtension,
    gitlab: Option<&GitlabConfig>,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<CliqExtensionConfig, ConfigError> {
    let key = |k: &str| format!("cliq_extension.{k}");
    if gitlab.is_none_or(|g| g.token.is_none()) {
        return Err(invalid(
            "cliq_extension",
            "needs [gitlab] with url and token: chats may only subscribe to what that token can see",
        ));
    }
    let path = x.path.unwrap_or_else(|| DEFAULT_CLIQ_PATH.to_string());
    if !path.starts_with('/') || path.contains(char::is_whitespace) || path == "/hooks/gitlab" {
        return Err(invalid(
            key("path"),
            format!("{path:?} is not a path of its own (e.g. \"{DEFAULT_CLIQ_PATH}\")"),
        ));
    }
    let mut public_keys = Vec::new();
    for (i, k) in x.public_keys.into_iter().flatten().enumerate() {
        public_keys.push((format!("{}[{i}]", key("public_keys")), k));
    }
    for (i, p) in x.public_key_files.into_iter().flatten().enumerate() {
        let path = resolve(p);
        let text = env.read(&path).map_err(|e| {
            invalid(
                format!("{}[{i}]", key("public_key_files")),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        public_keys.push((format!("{}[{i}]", key("public_key_files")), text));
    }
    let mut keys = Vec::new();
    for (k, text) in public_keys {
        // The Connectors tab shows bare base64; a PEM file's armour lines are dropped too.
        let b64: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("-----"))
            .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
            .collect();
        if b64.is_empty()
            || !b64
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
        {
            return Err(invalid(
                k,
                "not a base64 public key (copy it from the extension's Connectors tab)",
            ));
        }
        if !keys.contains(&b64) {
            keys.push(b64);
        }
    }
    if keys.is_empty() {
        return Err(invalid(
            key("public_keys"),
            "required (or public_key_files): the extension's public key from its Connectors tab",
        ));
    }
    let admins = x
        .admins
        .unwrap_or_default()
        .iter()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    let allowed_projects: Vec<String> = x
        .allowed_projects
        .unwrap_or_default()
        .iter()
        .map(|p| p.trim().trim_matches('/').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    if allowed_projects.is_empty() {
        return Err(invalid(
            key("allowed_projects"),
            "required: the project or group paths chats may subscribe to (globs; [\"*\"] for all)",
        ));
    }
    let api_url = x
        .api_url
        .unwrap_or_else(|| DEFAULT_CLIQ_API_URL.to_string())
        .trim()
        .trim_end_matches('/')
        .to_string();
    match url::Url::parse(&api_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => {
            return Err(invalid(
                key("api_url"),
                format!("{api_url:?} is not an http(s) URL such as \"{DEFAULT_CLIQ_API_URL}\""),
            ))
        }
    }
    let zapikey = secret(
        SecretSources {
            key: &key("zapikey"),
            inline: x.zapikey,
            file: x.zapikey_file.map(resolve),
            env: x.zapikey_env,
        },
        env,
    )?;
    let oauth = secret(
        SecretSources {
            key: &key("oauth_token"),
            inline: x.oauth_token,
            file: x.oauth_token_file.map(resolve),
            env: x.oauth_token_env,
        },
        env,
    )?;
    let auth = match (zapikey, oauth) {
        (Some(k), None) => Auth::ZapiKey(k),
        (None, Some(t)) => Auth::OAuth(t),
        (None, None) => {
            return Err(invalid(
                key("zapikey"),
                "required (or oauth_token): the credential chats are posted to with",
            ))
        }
        (Some(_), Some(_)) => {
            return Err(invalid(
                key("zapikey"),
                "give a zapikey or an oauth_token, not both",
            ))
        }
    };
    let button_function = x
        .button_function
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty());
    let rate_per_minute = x.rate_per_minute.unwrap_or(DEFAULT_RATE_PER_MINUTE);
    if rate_per_minute == 0 {
        return Err(invalid(key("rate_per_minute"), "must be at least 1"));
    }
    let answer_within = x.answer_within_ms.unwrap_or(DEFAULT_CLIQ_ANSWER_WITHIN_MS);
    if !(1..=4_500).contains(&answer_within) {
        return Err(invalid(
            key("answer_within_ms"),
            "must be between 1 and 4500: Cliq waits 5 s for an answer",
        ));
    }
    let answer_within = Duration::from_millis(answer_within);
    Ok(CliqExtensionConfig {
        path,
        public_keys: keys,
        admins,
        allowed_projects,
        api: Endpoint { url: api_url, auth },
        button_function,
        data_center: x
            .data_center
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        organization_id: x
            .organization_id
            .map(|d| d.trim().to_string())
            .filter(|d| !d.is_empty()),
        confidential: x.confidential,
        rate_per_minute,
        answer_within,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn the_cliq_extension_needs_keys_projects_a_credential_and_gitlab() {
        let gitlab =
            "[server]\nsecret_token='x'\n[gitlab]\nurl='https://gitlab.example.com'\ntoken='t'\n";
        let ext = "[cliq_extension]\npublic_keys=['TUlJQg==']\nallowed_projects=['acme/*']\nzapikey='z'\n";
        let cfg = match parse(&format!("{gitlab}{ext}admins=[' Bob@Example.com ']\n"), &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let x = cfg.cliq_extension.as_ref().map(|x| {
            (
                x.path.clone(),
                x.api.url.clone(),
                x.admins.clone(),
                x.answer_within,
            )
        });
        assert_eq!(
            x,
            Some((
                DEFAULT_CLIQ_PATH.to_string(),
                DEFAULT_CLIQ_API_URL.to_string(),
                vec!["bob@example.com".to_string()],
                Duration::from_millis(DEFAULT_CLIQ_ANSWER_WITHIN_MS)
            ))
        );
        let pem = "-----BEGIN PUBLIC KEY-----\nTUlJ\nQg==\n-----END PUBLIC KEY-----\n";
        let from_file = parse(
            &format!("{gitlab}[cliq_extension]\npublic_key_files=['k.pem']\nallowed_projects=['*']\nzapikey='z'\n"),
            &[("/etc/gcb/k.pem", pem)],
        );
        assert_eq!(
            from_file
                .ok()
                .and_then(|c| c.cliq_extension)
                .map(|x| x.public_keys),
            Some(vec!["TUlJQg==".to_string()])
        );
        for (text, key) in [
            (
                format!("[server]\nsecret_token='x'\n{ext}"),
                "cliq_extension:",
            ),
            (
                format!("{gitlab}{ext}").replace("public_keys=['TUlJQg==']", ""),
                "cliq_extension.public_keys",
            ),
            (
                format!("{gitlab}{ext}")
                    .replace("public_keys=['TUlJQg==']", "public_keys=['not base64!']"),
                "cliq_extension.public_keys[0]",
            ),
            (
                format!("{gitlab}{ext}").replace("allowed_projects=['acme/*']", ""),
                "cliq_extension.allowed_projects",
            ),
            (
                format!("{gitlab}{ext}").replace("zapikey='z'", ""),
                "cliq_extension.zapikey",
            ),
            (
                format!("{gitlab}{ext}path='/hooks/gitlab'\n"),
                "cliq_extension.path",
            ),
            (
                format!("{gitlab}{ext}api_url='ftp://x'\n"),
                "cliq_extension.api_url",
            ),
            (
                format!("{gitlab}{ext}answer_within_ms=6000\n"),
                "cliq_extension.answer_within_ms",
            ),
        ] {
            let e = parse(&text, &[]).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().starts_with(key)),
                "{key}: {e:?}"
            );
        }
    }
}
