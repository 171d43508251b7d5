//! RSA signing keys, the JWKS, and hand-written JWT encoding and verification.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// Base64url without padding, as JOSE wants it.
pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub(crate) fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// A fresh random value: 32 bytes from the OS, base64url. Used for codes and tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    b64(bytes)
}

/// SHA-256, base64url: the PKCE S256 transform.
pub(crate) fn s256(text: &str) -> String {
    b64(Sha256::digest(text.as_bytes()))
}

/// Left half of SHA-256, base64url: `at_hash` and `c_hash` for RS256.
pub(crate) fn half_hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    b64(&digest[..16])
}

/// SHA-256 as lowercase hex (used by OpenID Connect Session Management).
pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One RSA-2048 signing key and its `kid`.
pub(crate) struct SigningKeyEntry {
    pub(crate) kid: String,
    signing: SigningKey<Sha256>,
    public: RsaPublicKey,
}

impl SigningKeyEntry {
    /// Generates a new RSA-2048 key with a random UUID `kid`. Slow: run it on a blocking thread.
    pub(crate) fn generate() -> Result<Self, rsa::Error> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048)?;
        let public = private.to_public_key();
        Ok(Self {
            kid: uuid::Uuid::new_v4().to_string(),
            signing: SigningKey::new(private),
            public,
        })
    }

    /// The public key as a JWK.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": b64(self.public.n().to_bytes_be()),
            "e": b64(self.public.e().to_bytes_be()),
        })
    }

    fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        self.signing.try_sign(message).ok().map(|s| s.to_vec())
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(signature) = Signature::try_from(signature) else {
            return false;
        };
        VerifyingKey::<Sha256>::new(self.public.clone())
            .verify(message, &signature)
            .is_ok()
    }
}

/// The provider's keys: the current one, older ones still published, and a
/// "rogue" key that is never published (for [`Fault::IdTokenUnknownKid`](crate::Fault::IdTokenUnknownKid)).
pub(crate) struct KeySet {
    pub(crate) current: Arc<SigningKeyEntry>,
    pub(crate) previous: Vec<Arc<SigningKeyEntry>>,
    pub(crate) rogue: Option<Arc<SigningKeyEntry>>,
}

impl KeySet {
    pub(crate) fn new(current: SigningKeyEntry) -> Self {
        Self {
            current: Arc::new(current),
            previous: Vec::new(),
            rogue: None,
        }
    }

    /// Makes `next` current and keeps the old current key published.
    pub(crate) fn rotate(&mut self, next: SigningKeyEntry) {
        let old = std::mem::replace(&mut self.current, Arc::new(next));
        self.previous.push(old);
    }

    /// Drops every published key but the current one.
    pub(crate) fn retire_old(&mut self) {
        self.previous.clear();
    }

    /// The JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        let keys: Vec<Value> = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .map(|k| k.jwk())
            .collect();
        json!({ "keys": keys })
    }

    fn published(&self, kid: &str) -> Option<&SigningKeyEntry> {
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.kid == kid)
            .map(AsRef::as_ref)
    }

    /// Verifies an RS256 JWT against the published keys and returns its claims.
    /// Expiry is not checked.
    pub(crate) fn verify(&self, token: &str) -> Option<Value> {
        let mut parts = token.split('.');
        let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header_b64 = header;
        let header: Value = serde_json::from_slice(&b64_decode(header)?).ok()?;
        if header.get("alg")?.as_str()? != "RS256" {
            return None;
        }
        let key = self.published(header.get("kid")?.as_str()?)?;
        let signing_input = format!("{header_b64}.{payload}");
        if !key.verify(signing_input.as_bytes(), &b64_decode(signature)?) {
            return None;
        }
        serde_json::from_slice(&b64_decode(payload)?).ok()
    }
}

/// How to sign a JWT.
pub(crate) enum Signer<'a> {
    /// RS256 with this key; `kid` names it in the header.
    Rs256(&'a SigningKeyEntry),
    /// HS256 keyed with this secret; the header names `kid` (a confused-deputy trap).
    Hs256 { kid: &'a str, secret: &'a [u8] },
    /// No signature: `{"alg":"none"}` and an empty signature part.
    None,
}

/// Why a JWT could not be produced.
#[derive(Debug)]
pub(crate) struct SignError;

/// Encodes and signs a compact JWT.
pub(crate) fn encode_jwt(claims: &Value, signer: &Signer<'_>) -> Result<String, SignError> {
    let header = match signer {
        Signer::Rs256(key) => json!({"alg": "RS256", "kid": key.kid, "typ": "JWT"}),
        Signer::Hs256 { kid, .. } => json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
        Signer::None => json!({"alg": "none"}),
    };
    let header = serde_json::to_vec(&header).map_err(|_| SignError)?;
    let claims = serde_json::to_vec(claims).map_err(|_| SignError)?;
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = match signer {
        Signer::Rs256(key) => b64(key.sign(signing_input.as_bytes()).ok_or(SignError)?),
        Signer::Hs256 { secret, .. } => {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignError)?;
            mac.update(signing_input.as_bytes());
            b64(mac.finalize().into_bytes())
        }
        Signer::None => String::new(),
    };
    Ok(format!("{signing_input}.{signature}"))
}

/// Corrupts the signature of a compact JWT (flips bits of its first byte).
pub(crate) fn corrupt_signature(token: &str) -> String {
    let Some(dot) = token.rfind('.') else {
        return token.to_owned();
    };
    let (prefix, signature) = (&token[..dot], &token[dot + 1..]);
    let mut bytes = b64_decode(signature).unwrap_or_default();
    match bytes.first_mut() {
        Some(first) => *first ^= 0xff,
        None => bytes.push(0),
    }
    format!("{prefix}.{}", b64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_known_vectors() {
        // RFC 7636 appendix B.
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_eq!(half_hash("abc").len(), 22);
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn corrupting_changes_only_the_signature() {
        let token = "aGVhZA.cGF5bG9hZA.c2ln";
        let bad = corrupt_signature(token);
        assert!(bad.starts_with("aGVhZA.cGF5bG9hZA."));
        assert_ne!(bad, token);
    }
}
