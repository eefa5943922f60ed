//! Who may post webhooks: the TCP peer's network (`server.allow_networks`), `X-Gitlab-Token`
//! (any accepted token, compared in constant time), and GitLab ≥ 19's Standard-Webhooks
//! signature (`webhook-id`, `webhook-timestamp`, `webhook-signature`) checked against every
//! accepted signing key, with a timestamp tolerance and a memory of recently accepted
//! `webhook-id`s so a captured request cannot be replayed.
//!
//! Several tokens and keys may be active at once so they can be rotated without refusing
//! GitLab's requests in between. Secrets stay in [`Secret`] or [`SigningKey`]; neither shows its
//! value in `Debug`.

use crate::config::ServerConfig;
use crate::secret::Secret;
use crate::signing;
use ipnet::IpNet;
use std::borrow::Borrow;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;

/// Most `webhook-id`s remembered against replays; the oldest are forgotten first beyond this.
/// (The outbox's own dedupe still stops a forgotten one from being posted twice.)
pub const MAX_REMEMBERED_IDS: usize = 100_000;
/// Longest `webhook-id` accepted (GitLab sends a UUID).
pub const MAX_WEBHOOK_ID_LEN: usize = 256;
pub use crate::signing::{SigningKey, SIGNING_TOKEN_PREFIX};

/// A signing token that is not `whsec_` followed by base64.
#[derive(Debug, thiserror::Error)]
#[error("server.signing_token: accepted signing token #{0} is not \"whsec_\" followed by base64")]
pub struct BadSigningToken(pub usize);

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A signing token is configured but a header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header is not in the expected form.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// `webhook-timestamp` is further from now than the tolerance.
    #[error("webhook-timestamp is {0} s away from now, beyond the tolerance")]
    Stale(i64),
    /// No signature matches any accepted key.
    #[error("no webhook-signature matches")]
    Mismatch,
    /// This `webhook-id` was accepted before, within the tolerance.
    #[error("webhook-id already seen (replay)")]
    Replayed,
}

/// The signing headers of a request, read before its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `webhook-id`.
    pub id: String,
    /// `webhook-timestamp`, as sent (it is part of the signed text).
    pub timestamp: String,
    /// The `v1` signatures offered, decoded.
    signatures: Vec<Vec<u8>>,
}

/// A replay memory: when each key (a `webhook-id`, a Cliq body's hash) was accepted, oldest
/// first, so what is older than a horizon, or beyond a count, is forgotten first.
#[derive(Debug)]
struct Remembered<K> {
    at: HashMap<K, i64>,
    order: VecDeque<(i64, K)>,
}

impl<K> Default for Remembered<K> {
    fn default() -> Self {
        Remembered {
            at: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Remembered<K> {
    /// Forgets what was accepted before `horizon`, and the oldest beyond `max` keys.
    fn evict(&mut self, horizon: i64, max: usize) {
        while let Some((t, old)) = self.order.front().cloned() {
            if t >= horizon && self.order.len() < max {
                break;
            }
            self.order.pop_front();
            if self.at.get(&old) == Some(&t) {
                self.at.remove(&old);
            }
        }
    }

    /// When `key` was last accepted, while remembered.
    fn accepted_at<Q: Eq + Hash + ?Sized>(&self, key: &Q) -> Option<i64>
    where
        K: Borrow<Q>,
    {
        self.at.get(key).copied()
    }

    /// Remembers `key` as accepted at `now`.
    fn insert(&mut self, key: K, now: i64) {
        self.at.insert(key.clone(), now);
        self.order.push_back((now, key));
    }
}

/// Checks requests against the `[server]` authentication settings.
#[derive(Debug)]
pub struct Verifier {
    tokens: Vec<Secret>,
    keys: Vec<SigningKey>,
    tolerance_secs: i64,
    networks: Vec<IpNet>,
    seen: Mutex<Remembered<String>>,
}

impl Verifier {
    /// From `[server]`: every accepted token and signing key, the tolerance and the networks.
    pub fn new(server: &ServerConfig) -> Result<Verifier, BadSigningToken> {
        let keys = server
            .signing_tokens
            .iter()
            .enumerate()
            .map(|(i, t)| SigningKey::parse(t.expose()).ok_or(BadSigningToken(i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Verifier {
            tokens: server.secret_tokens.clone(),
            keys,
            tolerance_secs: server.signature_tolerance.as_secs().max(1) as i64,
            networks: server.allow_networks.clone(),
            seen: Mutex::new(Remembered::default()),
        })
    }

    /// Whether webhooks from `peer` are allowed (always, without `allow_networks`). IPv4
    /// addresses mapped into IPv6 (`::ffff:10.0.0.1`, from a dual-stack listener) count as IPv4.
    pub fn network_ok(&self, peer: Option<IpAddr>) -> bool {
        if self.networks.is_empty() {
            return true;
        }
        let Some(ip) = peer.map(|p| p.to_canonical()) else {
            return false;
        };
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Whether `got` equals one of the accepted tokens. Every token is compared, each in
    /// constant time, so the answer's timing tells nothing about which or how much matched.
    pub fn token_ok(&self, got: Option<&str>) -> bool {
        let Some(got) = got else {
            return false;
        };
        self.tokens.iter().fold(false, |ok, t| {
            ok | signing::constant_time_eq(got.as_bytes(), t.expose().as_bytes())
        })
    }

    /// Whether every request must be signed (a signing token is configured).
    pub fn signature_required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Reads the signing headers and checks the timestamp against `now` (unix seconds); done
    /// before the body is read. `header` gives a header's trimmed value.
    pub fn signed_headers<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        now: i64,
    ) -> Result<Signed, SignatureError> {
        let id = header("webhook-id").ok_or(SignatureError::Missing("webhook-id"))?;
        let timestamp =
            header("webhook-timestamp").ok_or(SignatureError::Missing("webhook-timestamp"))?;
        let signature =
            header("webhook-signature").ok_or(SignatureError::Missing("webhook-signature"))?;
        if id.len() > MAX_WEBHOOK_ID_LEN {
            return Err(SignatureError::Malformed("webhook-id"));
        }
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| SignatureError::Malformed("webhook-timestamp"))?;
        let skew = now.saturating_sub(ts);
        if skew.saturating_abs() > self.tolerance_secs {
            return Err(SignatureError::Stale(skew));
        }
        let signatures = signing::v1_signatures(signature);
        if signatures.is_empty() {
            return Err(SignatureError::Malformed("webhook-signature"));
        }
        Ok(Signed {
            id: id.to_string(),
            timestamp: timestamp.to_string(),
            signatures,
        })
    }

    /// Checks the signatures over the raw body against every accepted key; any match is enough.
    pub fn verify(&self, signed: &Signed, body: &[u8]) -> Result<(), SignatureError> {
        let ok = self
            .keys
            .iter()
            .any(|key| key.verifies(&signed.id, &signed.timestamp, body, &signed.signatures));
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    /// Remembers `id` as accepted at `now` (unix seconds); `Replayed` if it already was within
    /// twice the tolerance (a replayed request's timestamp stays valid for that long at most).
    pub fn remember(&self, id: &str, now: i64) -> Result<(), SignatureError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let horizon = now - 2 * self.tolerance_secs;
        seen.evict(horizon, MAX_REMEMBERED_IDS);
        if seen.accepted_at(id).is_some_and(|t| t >= horizon) {
            return Err(SignatureError::Replayed);
        }
        seen.insert(id.to_string(), now);
        Ok(())
    }

    /// Forgets `id` (its request was refused after all, so GitLab's re-send must pass).
    pub fn forget(&self, id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.at.remove(id);
    }
}

/// How far a Cliq invocation's `timestamp` may be from now: 5 minutes either way.
pub const CLIQ_WINDOW_MS: i64 = 5 * 60 * 1000;
/// Most Cliq invocation bodies remembered against replays; the oldest are forgotten first.
pub const MAX_REMEMBERED_INVOCATIONS: usize = 10_000;

/// Why a Cliq invocation was refused before it was read as a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliqRefusal {
    /// No `X-Cliq-Signature` header.
    #[error("missing X-Cliq-Signature header")]
    MissingSignature,
    /// The signature is not base64, or no configured key made it.
    #[error("X-Cliq-Signature does not verify with the extension's public key")]
    BadSignature,
    /// `timestamp` is missing, or more than 5 minutes from now.
    #[error("timestamp missing or more than 5 minutes from now")]
    Stale,
    /// The same body was accepted before.
    #[error("this invocation was already received")]
    Replayed,
}

/// A public key of the Cliq extension that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cliq_extension.public_keys[{0}] is not a base64 X.509 RSA public key")]
pub struct BadPublicKey(pub usize);

/// Who may invoke the Cliq extension: a `SHA256withRSA` signature of the raw body by one of the
/// extension's keys (the active one first, so keys rotate without refusals), a `timestamp`
/// within [`CLIQ_WINDOW_MS`] of now, and a memory of the bodies accepted within that window so a
/// captured invocation cannot be replayed. Public keys are not secrets; this holds nothing else.
pub struct CliqVerifier {
    keys: signing::RsaKeys,
    seen: Mutex<Remembered<[u8; 32]>>,
}

impl std::fmt::Debug for CliqVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CliqVerifier")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl CliqVerifier {
    /// Reads the extension's keys (base64 X.509 SubjectPublicKeyInfo).
    pub fn new(public_keys: &[String]) -> Result<CliqVerifier, BadPublicKey> {
        let keys = signing::RsaKeys::parse(public_keys).map_err(BadPublicKey)?;
        Ok(CliqVerifier {
            keys,
            seen: Mutex::new(Remembered::default()),
        })
    }

    /// Checks `signature` (the `X-Cliq-Signature` header) over the raw `body`.
    pub fn verify(&self, signature: Option<&str>, body: &[u8]) -> Result<(), CliqRefusal> {
        let signature = signature.ok_or(CliqRefusal::MissingSignature)?;
        if self.keys.verifies(signature, body) {
            Ok(())
        } else {
            Err(CliqRefusal::BadSignature)
        }
    }

    /// Checks the invocation's `timestamp` (unix ms) against `now` (unix ms).
    pub fn fresh(&self, timestamp: Option<i64>, now: i64) -> Result<(), CliqRefusal> {
        match timestamp {
            Some(t) if (now - t).abs() <= CLIQ_WINDOW_MS => Ok(()),
            _ => Err(CliqRefusal::Stale),
        }
    }

    /// Remembers `body` (received at `now`, unix ms) as accepted; refuses one accepted before.
    pub fn remember(&self, body: &[u8], now: i64) -> Result<(), CliqRefusal> {
        let hash = signing::sha256(&[body]);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        // Twice the window: a body older than that is refused as stale anyway.
        seen.evict(now - 2 * CLIQ_WINDOW_MS, MAX_REMEMBERED_INVOCATIONS);
        if seen.accepted_at(&hash).is_some() {
            return Err(CliqRefusal::Replayed);
        }
        seen.insert(hash, now);
        Ok(())
    }
}

#[cfg(test)]
mod cliq_tests {
    use super::*;

    fn data(file: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(file);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn sign(file: &str, body: &[u8]) -> String {
        signing::rsa_sign(&data(file), body).unwrap_or_else(|e| panic!("{file}: {e}"))
    }

    fn public(file: &str) -> String {
        String::from_utf8_lossy(&data(file)).trim().to_string()
    }

    #[test]
    fn signatures_windows_and_replays() {
        let other = public("cliq_other_key.pub.b64");
        // The active key is the second one listed: any configured key verifies.
        let v = match CliqVerifier::new(&[other, public("cliq_test_key.pub.b64")]) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let body = br#"{"type":"command","timestamp":1}"#;
        let good = sign("cliq_test_key.pk8.der", body);
        assert_eq!(v.verify(Some(&good), body), Ok(()));
        assert_eq!(v.verify(None, body), Err(CliqRefusal::MissingSignature));
        assert_eq!(v.verify(Some("%%%"), body), Err(CliqRefusal::BadSignature));
        assert_eq!(v.verify(Some(&good), b"{}"), Err(CliqRefusal::BadSignature));
        let only_test = match CliqVerifier::new(&[public("cliq_test_key.pub.b64")]) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        let by_other = sign("cliq_other_key.pk8.der", body);
        assert_eq!(
            only_test.verify(Some(&by_other), body),
            Err(CliqRefusal::BadSignature)
        );

        let now = 1_000_000_000;
        assert_eq!(v.fresh(Some(now - CLIQ_WINDOW_MS), now), Ok(()));
        assert_eq!(
            v.fresh(Some(now + CLIQ_WINDOW_MS + 1), now),
            Err(CliqRefusal::Stale)
        );
        assert_eq!(
            v.fresh(Some(now - CLIQ_WINDOW_MS - 1), now),
            Err(CliqRefusal::Stale)
        );
        assert_eq!(v.fresh(None, now), Err(CliqRefusal::Stale));
        assert_eq!(v.remember(body, now), Ok(()));
        assert_eq!(v.remember(body, now + 1), Err(CliqRefusal::Replayed));
        assert_eq!(v.remember(b"other", now + 1), Ok(()));
        assert!(CliqVerifier::new(&["TUlJQg==".to_string()]).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn verifier(tokens: &[&str], keys: &[&str], networks: &[&str]) -> Verifier {
        let text = format!(
            "[server]\nsecret_tokens = {tokens:?}\nsigning_tokens = {keys:?}\nallow_networks = {networks:?}\n"
        );
        struct NoEnv;
        impl crate::config::Environment for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
            fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
                Err(std::io::ErrorKind::NotFound.into())
            }
        }
        let cfg = crate::config::Config::parse(&text, std::path::Path::new("/x.toml"), &NoEnv);
        match cfg.map(|c| Verifier::new(&c.server)) {
            Ok(Ok(v)) => v,
            other => panic!("{other:?}"),
        }
    }

    fn headers<'a>(list: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |name| {
            list.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// Standard Webhooks' published test vector.
    #[test]
    fn standard_webhooks_test_vector() {
        let key = SigningKey::parse(KEY);
        let Some(key) = key else { panic!("key") };
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            key.signature_header("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn signatures_valid_wrong_stale_and_replayed() {
        let v = verifier(
            &["t"],
            &[KEY, "whsec_b2xkLWtleS1zdGlsbC1hY2NlcHRlZA=="],
            &[],
        );
        assert!(v.signature_required());
        let key = SigningKey::parse(KEY).unwrap_or_else(|| panic!("key"));
        let now = 1_800_000_000;
        let body = b"{\"object_kind\":\"push\"}";
        let ts = now.to_string();
        let good = key.signature_header("id-1", &ts, body);
        let list = [
            ("webhook-id", "id-1".to_string()),
            ("webhook-timestamp", ts.clone()),
            ("webhook-signature", format!("v1,AAAA {good} v1a,ignored")),
        ];
        let signed = v
            .signed_headers(headers(&list), now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.verify(&signed, body), Ok(()));
        assert_eq!(v.verify(&signed, b"{}"), Err(SignatureError::Mismatch));
        assert_eq!(v.remember("id-1", now), Ok(()));
        assert_eq!(v.remember("id-1", now + 5), Err(SignatureError::Replayed));
        v.forget("id-1");
        assert_eq!(v.remember("id-1", now + 6), Ok(()));
        // Much later the id may come again (its old timestamp would be stale by then anyway).
        assert_eq!(v.remember("id-1", now + 700), Ok(()));

        let stale = v.signed_headers(headers(&list), now + 301);
        assert_eq!(stale, Err(SignatureError::Stale(301)));
        assert!(v.signed_headers(headers(&list), now - 301).is_err());
        assert!(v.signed_headers(headers(&list), now + 300).is_ok());
        let missing = [("webhook-id", "x".to_string())];
        assert_eq!(
            v.signed_headers(headers(&missing), now),
            Err(SignatureError::Missing("webhook-timestamp"))
        );
        let bad_ts = [
            ("webhook-id", "x".to_string()),
            ("webhook-timestamp", "soon".to_string()),
            ("webhook-signature", good.clone()),
        ];
        assert_eq!(
            v.signed_headers(headers(&bad_ts), now),
            Err(SignatureError::Malformed("webhook-timestamp"))
        );
        // A signature made with the second (rotated-in) key is accepted too.
        let other = SigningKey::parse("whsec_b2xkLWtleS1zdGlsbC1hY2NlcHRlZA==")
            .unwrap_or_else(|| panic!("key"));
        let list2 = [
            ("webhook-id", "id-2".to_string()),
            ("webhook-timestamp", ts.clone()),
            (
                "webhook-signature",
                other.signature_header("id-2", &ts, body),
            ),
        ];
        let signed = v
            .signed_headers(headers(&list2), now)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.verify(&signed, body), Ok(()));
    }

    #[test]
    fn tokens_rotate_and_networks_filter() {
        let v = verifier(
            &["old", "new"],
            &[],
            &["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"],
        );
        assert!(!v.signature_required());
        assert!(v.token_ok(Some("old")));
        assert!(v.token_ok(Some("new")));
        assert!(!v.token_ok(Some("third")));
        assert!(!v.token_ok(Some("ol")));
        assert!(!v.token_ok(None));
        let ip = |s: &str| s.parse::<IpAddr>().ok();
        assert!(v.network_ok(ip("10.1.2.3")));
        assert!(v.network_ok(ip("::ffff:10.1.2.3")));
        assert!(v.network_ok(ip("2001:db8::1")));
        assert!(v.network_ok(ip("192.0.2.7")));
        assert!(!v.network_ok(ip("192.0.2.8")));
        assert!(!v.network_ok(ip("127.0.0.1")));
        assert!(!v.network_ok(None));
        let open = verifier(&["t"], &[], &[]);
        assert!(open.network_ok(None));
    }

    #[test]
    fn bad_signing_tokens_are_refused_and_keys_hidden() {
        let text = "[server]\nsecret_token = \"t\"\nsigning_token = \"whsec_not base64!\"\n";
        struct NoEnv;
        impl crate::config::Environment for NoEnv {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
            fn read(&self, _: &std::path::Path) -> std::io::Result<String> {
                Err(std::io::ErrorKind::NotFound.into())
            }
        }
        let cfg = crate::config::Config::parse(text, std::path::Path::new("/x.toml"), &NoEnv);
        let Ok(cfg) = cfg else { panic!("config") };
        assert!(Verifier::new(&cfg.server).is_err());
        let key = SigningKey::parse(KEY).unwrap_or_else(|| panic!("key"));
        assert_eq!(format!("{key:?}"), "SigningKey(****)");
    }
}
