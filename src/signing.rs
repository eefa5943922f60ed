//! Signature primitives, in one place: Standard Webhooks (<https://www.standardwebhooks.com/>)
//! HMAC-SHA256, shared by the server (verifying GitLab's signed webhooks) and the sender (signing
//! what a `webhook` channel posts), and SHA256withRSA (PKCS#1 v1.5) verification with
//! [`RsaKeys`], for the Cliq extension's `X-Cliq-Signature`.
//!
//! A Standard Webhooks signature is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed
//! with the bytes a `whsec_<base64>` token decodes to. [`SigningKey`] has no `Debug` of its
//! value. Layer 0.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Prefix of Standard-Webhooks signing tokens.
pub const SIGNING_TOKEN_PREFIX: &str = "whsec_";

/// A decoded Standard-Webhooks signing key (the bytes after `whsec_`).
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(****)")
    }
}

impl SigningKey {
    /// Decodes `whsec_<base64>` (the prefix is optional, as in Standard Webhooks' libraries).
    pub fn parse(token: &str) -> Option<SigningKey> {
        let t = token.trim();
        let b64 = t.strip_prefix(SIGNING_TOKEN_PREFIX).unwrap_or(t);
        let bytes = STANDARD.decode(b64).ok()?;
        (!bytes.is_empty()).then_some(SigningKey(bytes))
    }

    /// `v1` signature of `{id}.{timestamp}.{body}`: HMAC-SHA256 with this key.
    fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// The `webhook-signature` header value (`v1,<base64>`) for a message.
    pub fn signature_header(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.sign(id, timestamp, body)))
    }

    /// Whether any of `signatures` (decoded `v1` values) signs the message, compared in
    /// constant time.
    pub fn verifies(&self, id: &str, timestamp: &str, body: &[u8], signatures: &[Vec<u8>]) -> bool {
        let expected = self.sign(id, timestamp, body);
        let mut ok = false;
        for s in signatures {
            ok |= bool::from(s.as_slice().ct_eq(expected.as_slice()));
        }
        ok
    }
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(a.ct_eq(b))
}

/// The decoded `v1` signatures of a `webhook-signature` header (space-separated `v1,<base64>`;
/// other versions and undecodable values are left out).
pub fn v1_signatures(header: &str) -> Vec<Vec<u8>> {
    header
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .collect()
}

/// RSA public keys, each verifying SHA256withRSA (PKCS#1 v1.5) signatures. Public keys are not
/// secrets.
pub struct RsaKeys(Vec<VerifyingKey<Sha256>>);

impl std::fmt::Debug for RsaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RsaKeys({} keys)", self.0.len())
    }
}

impl RsaKeys {
    /// Reads base64 X.509 SubjectPublicKeyInfo keys; on failure, the index of the first key
    /// that is not one.
    pub fn parse(base64_spki: &[String]) -> Result<RsaKeys, usize> {
        use rsa::pkcs8::DecodePublicKey;
        base64_spki
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let der = STANDARD.decode(k.trim()).map_err(|_| i)?;
                let key = rsa::RsaPublicKey::from_public_key_der(&der).map_err(|_| i)?;
                Ok(VerifyingKey::<Sha256>::new(key))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(RsaKeys)
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `signature` (base64) is any key's signature of `body`.
    pub fn verifies(&self, signature: &str, body: &[u8]) -> bool {
        use rsa::signature::Verifier as _;
        let Ok(bytes) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(signature) = Signature::try_from(bytes.as_slice()) else {
            return false;
        };
        self.0.iter().any(|k| k.verify(body, &signature).is_ok())
    }
}

/// SHA-256 of `parts`, one after the other.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest as _;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// The base64 SHA256withRSA signature of `body` by a PKCS#8 DER private key: what Cliq sends,
/// for tests.
#[cfg(test)]
pub fn rsa_sign(pkcs8_der: &[u8], body: &[u8]) -> Result<String, String> {
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let key = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8_der).map_err(|e| e.to_string())?;
    let key = rsa::pkcs1v15::SigningKey::<Sha256>::new(key);
    Ok(STANDARD.encode(key.sign(body).to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification.
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let Some(key) = key else {
            panic!("the spec's key decodes")
        };
        let body = br#"{"test": 2432232314}"#;
        let header = key.signature_header("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let sigs = v1_signatures(&format!("v0,xx {header}"));
        assert!(key.verifies("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body, &sigs));
        assert!(!key.verifies("msg_other", "1614265330", body, &sigs));
        assert_eq!(format!("{key:?}"), "SigningKey(****)");
    }
}
