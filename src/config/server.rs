//! `[server]`: the listen address, the webhook tokens and signing keys (with rotation), the
//! source networks, request limits and TLS files.

use super::errors::{invalid, ConfigError};
use super::secrets::{secret, secret_list, with_rotation, Environment, SecretSources};
use crate::secret::Secret;
use ipnet::IpNet;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Environment variable that, when set, replaces `server.secret_token`.
pub const SECRET_TOKEN_ENV: &str = "GITLAB_CHAT_BRIDGE_SECRET_TOKEN";

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// Default body limit: GitLab's own payload maximum, 25 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 25 * 1024 * 1024;

/// Default `server.signature_tolerance_secs`: how far a `webhook-timestamp` may be from now, in
/// seconds (Standard Webhooks' recommendation, 5 minutes).
pub const DEFAULT_SIGNATURE_TOLERANCE_SECS: u64 = 300;

/// Default `server.request_timeout_secs`: the longest a client may take to send a request's
/// headers, and to send its body and get its answer, in seconds.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 10;

/// Default `server.max_connections`: open connections at once; more wait in the listen backlog.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<String>,
    secret_token: Option<String>,
    secret_token_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    signing_token: Option<String>,
    signing_token_file: Option<PathBuf>,
    secret_tokens: Option<Vec<String>>,
    secret_token_files: Option<Vec<PathBuf>>,
    signing_tokens: Option<Vec<String>>,
    signing_token_files: Option<Vec<PathBuf>>,
    signature_tolerance_secs: Option<u64>,
    allow_networks: Option<Vec<String>>,
    request_timeout_secs: Option<u64>,
    max_connections: Option<usize>,
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
}

/// The `[server]` section, validated.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `address:port` to listen on.
    pub listen: String,
    /// The current shared secret GitLab sends in `X-Gitlab-Token` (the one `setup` registers):
    /// `GITLAB_CHAT_BRIDGE_SECRET_TOKEN`, else `secret_token(_file)`, else the first of the lists.
    pub secret_token: Secret,
    /// Every accepted `X-Gitlab-Token`, current first, then `secret_tokens` and
    /// `secret_token_files` (several at once while a token is rotated); no duplicates.
    pub secret_tokens: Vec<Secret>,
    /// Largest accepted body, in bytes.
    pub max_body_bytes: usize,
    /// The current Standard-Webhooks signing token (`whsec_…`, the one `setup` registers).
    pub signing_token: Option<Secret>,
    /// Every accepted signing token, current first. When not empty, every webhook must carry a
    /// valid `webhook-signature` made with one of them.
    pub signing_tokens: Vec<Secret>,
    /// How far `webhook-timestamp` may be from now (either way). Default 300 s.
    pub signature_tolerance: Duration,
    /// Networks webhooks may come from (the TCP peer's address); empty: any.
    pub allow_networks: Vec<IpNet>,
    /// Longest a client may take to send its headers, and to send its body and be answered.
    /// Default 10 s.
    pub request_timeout: Duration,
    /// Most connections open at once. Default 1024.
    pub max_connections: usize,
    /// Serve HTTPS with this certificate and key, when set.
    pub tls: Option<TlsFiles>,
}

/// PEM files of the TLS certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// `server.tls_cert_file`: the certificate chain, leaf first.
    pub cert: PathBuf,
    /// `server.tls_key_file`: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`) or a single address.
fn parse_network(raw: &str) -> Option<IpNet> {
    let raw = raw.trim();
    raw.parse::<IpNet>()
        .ok()
        .or_else(|| raw.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// Validates `[server]`.
pub(super) fn server_section(
    s: RawServer,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<ServerConfig, ConfigError> {
    let single = match env.var(SECRET_TOKEN_ENV).filter(|v| !v.is_empty()) {
        Some(v) => Some(Secret::new(v.trim())),
        None => secret(
            SecretSources {
                key: "server.secret_token",
                inline: s.secret_token,
                file: s.secret_token_file.map(resolve),
                env: None,
            },
            env,
        )?,
    };
    if single.as_ref().is_some_and(|t| t.expose().is_empty()) {
        return Err(invalid("server.secret_token", "must not be empty"));
    }
    let others = secret_list(
        "server.secret_tokens",
        s.secret_tokens,
        "server.secret_token_files",
        s.secret_token_files,
        env,
        resolve,
    )?;
    let secret_tokens = with_rotation(single, others);
    let secret_token = secret_tokens.first().cloned().ok_or_else(|| {
        invalid(
            "server.secret_token",
            format!(
                "required (or server.secret_token_file, server.secret_tokens, or {SECRET_TOKEN_ENV})"
            ),
        )
    })?;
    let signing_single = secret(
        SecretSources {
            key: "server.signing_token",
            inline: s.signing_token,
            file: s.signing_token_file.map(resolve),
            env: None,
        },
        env,
    )?;
    if signing_single
        .as_ref()
        .is_some_and(|t| t.expose().is_empty())
    {
        return Err(invalid("server.signing_token", "must not be empty"));
    }
    let signing_others = secret_list(
        "server.signing_tokens",
        s.signing_tokens,
        "server.signing_token_files",
        s.signing_token_files,
        env,
        resolve,
    )?;
    let signing_tokens = with_rotation(signing_single, signing_others);
    let signing_token = signing_tokens.first().cloned();

    let listen = s.listen.unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            "server.listen",
            format!("{listen:?} is not an address:port"),
        ));
    }
    let max_body_bytes = s.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_body_bytes == 0 {
        return Err(invalid("server.max_body_bytes", "must be greater than 0"));
    }
    let tolerance = s
        .signature_tolerance_secs
        .unwrap_or(DEFAULT_SIGNATURE_TOLERANCE_SECS);
    if tolerance == 0 {
        return Err(invalid(
            "server.signature_tolerance_secs",
            "must be at least 1",
        ));
    }
    let mut allow_networks = Vec::new();
    for (i, n) in s.allow_networks.into_iter().flatten().enumerate() {
        let net = parse_network(&n).ok_or_else(|| {
            invalid(
                format!("server.allow_networks[{i}]"),
                format!("{n:?} is not a network (10.0.0.0/8, 2001:db8::/32) or an address"),
            )
        })?;
        allow_networks.push(net);
    }
    let request_timeout = s
        .request_timeout_secs
        .unwrap_or(DEFAULT_REQUEST_TIMEOUT_SECS);
    if request_timeout == 0 {
        return Err(invalid("server.request_timeout_secs", "must be at least 1"));
    }
    let max_connections = s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    if max_connections == 0 {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    let tls = match (s.tls_cert_file, s.tls_key_file) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: resolve(cert),
            key: resolve(key),
        }),
        (Some(_), None) => {
            return Err(invalid(
                "server.tls_key_file",
                "required with server.tls_cert_file",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "server.tls_cert_file",
                "required with server.tls_key_file",
            ))
        }
    };
    Ok(ServerConfig {
        listen,
        secret_token,
        secret_tokens,
        max_body_bytes,
        signing_token,
        signing_tokens,
        signature_tolerance: Duration::from_secs(tolerance),
        allow_networks,
        request_timeout: Duration::from_secs(request_timeout),
        max_connections,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LogFormat};
    use std::path::Path;

    struct Files;

    impl Environment for Files {
        fn var(&self, name: &str) -> Option<String> {
            (name == SECRET_TOKEN_ENV).then(|| "from-env".to_string())
        }
        fn read(&self, path: &Path) -> std::io::Result<String> {
            match path.to_str() {
                Some("/etc/gcb/old-token") => Ok("old\n".into()),
                Some("/etc/gcb/next-key") => Ok("whsec_bmV4dA==\n".into()),
                _ => Err(std::io::ErrorKind::NotFound.into()),
            }
        }
    }

    fn parse(text: &str) -> Result<ServerConfig, String> {
        Config::parse(
            text,
            Path::new("/etc/gcb/config.toml"),
            &RealEnvironmentless,
        )
        .map(|c| c.server)
        .map_err(|e| e.to_string())
    }

    /// No environment, no files.
    struct RealEnvironmentless;

    impl Environment for RealEnvironmentless {
        fn var(&self, _: &str) -> Option<String> {
            None
        }
        fn read(&self, _: &Path) -> std::io::Result<String> {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }

    #[test]
    fn defaults() {
        let s = parse("[server]\nsecret_token = 't'\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.secret_tokens, vec![Secret::new("t")]);
        assert!(s.signing_tokens.is_empty() && s.signing_token.is_none());
        assert_eq!(s.signature_tolerance, Duration::from_secs(300));
        assert_eq!(s.request_timeout, Duration::from_secs(10));
        assert_eq!(s.max_connections, 1024);
        assert!(s.allow_networks.is_empty() && s.tls.is_none());
    }

    #[test]
    fn rotation_lists_join_the_single_keys() {
        let text = "[server]\nsecret_token = 'new'\nsecret_tokens = ['older', 'new']\nsecret_token_files = ['old-token']\n\
                    signing_tokens = ['whsec_a2V5']\nsigning_token_files = ['next-key']\n\
                    allow_networks = ['10.1.2.3/8', '2001:db8::/32', '192.0.2.1']\n\
                    tls_cert_file = 'c.pem'\ntls_key_file = '/k.pem'\n";
        let cfg = Config::parse(text, Path::new("/etc/gcb/config.toml"), &Files);
        let s = match cfg {
            Ok(c) => c.server,
            Err(e) => panic!("{e}"),
        };
        // The environment variable wins over secret_token; the lists stay accepted.
        assert_eq!(s.secret_token.expose(), "from-env");
        let tokens: Vec<&str> = s.secret_tokens.iter().map(Secret::expose).collect();
        assert_eq!(tokens, ["from-env", "older", "new", "old"]);
        assert_eq!(
            s.signing_token.as_ref().map(Secret::expose),
            Some("whsec_a2V5")
        );
        assert_eq!(s.signing_tokens.len(), 2);
        let nets: Vec<String> = s.allow_networks.iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]);
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: PathBuf::from("/etc/gcb/c.pem"),
                key: PathBuf::from("/k.pem"),
            })
        );
        let dbg = format!("{s:?}");
        for secret in ["older", "whsec_a2V5", "bmV4dA"] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |extra: &str| {
            parse(&format!("[server]\nsecret_token = 't'\n{extra}\n"))
                .err()
                .unwrap_or_default()
        };
        assert!(err("allow_networks = ['10.0.0.0/33']").starts_with("server.allow_networks[0]"));
        assert!(err("allow_networks = ['intranet']").starts_with("server.allow_networks[0]"));
        assert!(err("request_timeout_secs = 0").starts_with("server.request_timeout_secs"));
        assert!(err("max_connections = 0").starts_with("server.max_connections"));
        assert!(err("signature_tolerance_secs = 0").starts_with("server.signature_tolerance_secs"));
        assert!(err("tls_cert_file = 'c.pem'").starts_with("server.tls_key_file"));
        assert!(err("secret_tokens = ['']").starts_with("server.secret_tokens[0]"));
        assert!(err("signing_token_files = ['nope']").starts_with("server.signing_token_files[0]"));
        assert!(err("[log]\nformat = 'xml'").starts_with("log.format"));
        let only_list = parse("[server]\nsecret_tokens = ['a', 'b']\n");
        assert_eq!(
            only_list.map(|s| s.secret_token.expose().to_string()),
            Ok("a".to_string())
        );
        assert!(parse("[server]\n").is_err_and(|e| e.starts_with("server.secret_token")));
        let json = Config::parse(
            "[server]\nsecret_token = 't'\n[log]\nformat = 'json'\n",
            Path::new("/c.toml"),
            &RealEnvironmentless,
        );
        assert_eq!(json.map(|c| c.log.format).ok(), Some(LogFormat::Json));
    }
}
