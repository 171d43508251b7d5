//! Compact JWS parsing and RS256 verification against the provider's JWKS.
//!
//! The algorithm is pinned to RS256: it is never taken from the token or from discovery, so
//! `none`, every HMAC algorithm (the classic "HS256 signed with the RSA public key or the client
//! secret" attack) and everything else is rejected before any key is touched. The RSA
//! arithmetic and the JWK model come from `openidconnect`.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreJsonWebKey, CoreJsonWebKeySet, CoreJsonWebKeyType, CoreJsonWebKeyUse,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse};
use serde::Deserialize;

use crate::error::JwtError;
use crate::text::escape;

/// Bound on a JWT's size: Doximity's are well under 4 KiB.
const MAX_JWT_LEN: usize = 16 * 1024;
/// How often an unknown `kid` may trigger a JWKS refetch.
pub(crate) const REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// How long a key set is used before it is fetched again, even without an unknown `kid`: keys
/// the provider retired leave the cache within a day.
pub(crate) const KEYS_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    kid: Option<String>,
    crit: Option<serde_json::Value>,
}

/// A JWT whose structure is valid and whose algorithm is RS256, not yet verified.
pub(crate) struct UnverifiedJwt<'a> {
    signing_input: &'a str,
    signature: Vec<u8>,
    pub(crate) kid: Option<String>,
    payload: Vec<u8>,
}

impl<'a> UnverifiedJwt<'a> {
    pub(crate) fn parse(jwt: &'a str) -> Result<Self, JwtError> {
        if jwt.len() > MAX_JWT_LEN {
            return Err(JwtError::Malformed("too long"));
        }
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three dot-separated parts"));
        };
        let decode = |part: &str, what: &'static str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| JwtError::Malformed(what))
        };
        let header: Header = serde_json::from_slice(&decode(h, "header is not base64url")?)
            .map_err(|_| JwtError::Malformed("header is not a JSON object"))?;
        let alg = header.alg.ok_or(JwtError::Malformed("header has no alg"))?;
        if alg != "RS256" {
            return Err(JwtError::DisallowedAlgorithm(escape(&alg)));
        }
        if header.crit.is_some() {
            return Err(JwtError::CriticalHeader);
        }
        let signature = decode(s, "signature is not base64url")?;
        if signature.is_empty() {
            return Err(JwtError::BadSignature);
        }
        let payload = decode(p, "payload is not base64url")?;
        Ok(Self {
            signing_input: &jwt[..h.len() + 1 + p.len()],
            signature,
            kid: header.kid,
            payload,
        })
    }

    /// Verifies the signature with `key` and returns the payload as a JSON object.
    pub(crate) fn verify(
        &self,
        key: &CoreJsonWebKey,
    ) -> Result<serde_json::Map<String, serde_json::Value>, JwtError> {
        key.verify_signature(
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            self.signing_input.as_bytes(),
            &self.signature,
        )
        .map_err(|_| JwtError::BadSignature)?;
        match serde_json::from_slice(&self.payload) {
            Ok(serde_json::Value::Object(map)) => Ok(map),
            _ => Err(JwtError::Malformed("payload is not a JSON object")),
        }
    }
}

/// The outcome of looking a `kid` up in one key set.
pub(crate) enum Lookup {
    Found(Box<CoreJsonWebKey>),
    NotFound,
    Ambiguous(usize),
}

fn usable_for_rs256(k: &CoreJsonWebKey) -> bool {
    *k.key_type() == CoreJsonWebKeyType::RSA
        && k.key_use().is_none_or(CoreJsonWebKeyUse::allows_signature)
        && match k.signing_alg() {
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Algorithm(a) => {
                *a == CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256
            }
            JsonWebKeyAlgorithm::Unsupported => false,
        }
}

pub(crate) fn lookup(set: &CoreJsonWebKeySet, kid: Option<&str>) -> Lookup {
    let mut usable = set.keys().iter().filter(|k| usable_for_rs256(k));
    match kid {
        Some(kid) => match usable.find(|k| k.key_id().is_some_and(|id| id.as_str() == kid)) {
            Some(k) => Lookup::Found(Box::new(k.clone())),
            None => Lookup::NotFound,
        },
        None => {
            let all: Vec<_> = usable.collect();
            match all.as_slice() {
                [only] => Lookup::Found(Box::new((*only).clone())),
                _ => Lookup::Ambiguous(all.len()),
            }
        }
    }
}

/// The cached key set and the bookkeeping of its single-flight, rate-bounded refetch.
pub(crate) struct KeyCache {
    keys: RwLock<(u64, Arc<CoreJsonWebKeySet>)>,
    /// Held while refetching; holds the time of the last refetch.
    refetch: tokio::sync::Mutex<Option<SystemTime>>,
    /// When the current set was fetched (set on first use by the client's clock).
    fetched_at: std::sync::Mutex<Option<SystemTime>>,
}

impl KeyCache {
    pub(crate) fn new(set: CoreJsonWebKeySet) -> Self {
        Self {
            keys: RwLock::new((0, Arc::new(set))),
            refetch: tokio::sync::Mutex::new(None),
            fetched_at: std::sync::Mutex::new(None),
        }
    }

    /// When the current set was fetched; `now` the first time it is asked.
    pub(crate) fn fetched_at(&self, now: SystemTime) -> SystemTime {
        *self
            .fetched_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(now)
    }

    /// A new set, fetched at `now`.
    pub(crate) fn replace_at(&self, set: CoreJsonWebKeySet, now: SystemTime) {
        self.replace(set);
        *self.fetched_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
    }

    pub(crate) fn current(&self) -> (u64, Arc<CoreJsonWebKeySet>) {
        let guard = self.keys.read().unwrap_or_else(|e| e.into_inner());
        (guard.0, guard.1.clone())
    }

    pub(crate) fn replace(&self, set: CoreJsonWebKeySet) {
        let mut guard = self.keys.write().unwrap_or_else(|e| e.into_inner());
        *guard = (guard.0 + 1, Arc::new(set));
    }

    /// The refetch gate: waits for any refetch in flight; the caller refetches only if the
    /// generation it saw is still current and the last refetch is older than a minute.
    pub(crate) async fn refetch_gate(&self) -> tokio::sync::MutexGuard<'_, Option<SystemTime>> {
        self.refetch.lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn rejects_every_algorithm_but_rs256() {
        for alg in [
            "none", "HS256", "HS384", "HS512", "RS384", "PS256", "ES256", "rs256", "RS256 ",
        ] {
            let jwt = format!(
                "{}.{}.{}",
                b64(&format!(r#"{{"alg":"{alg}"}}"#)),
                b64("{}"),
                b64("sig")
            );
            assert!(
                matches!(
                    UnverifiedJwt::parse(&jwt),
                    Err(JwtError::DisallowedAlgorithm(_))
                ),
                "{alg} accepted"
            );
        }
    }

    #[test]
    fn rejects_structural_garbage() {
        let ok_header = b64(r#"{"alg":"RS256","kid":"k"}"#);
        for jwt in [
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{ok_header}.{}.", b64("{}")),
            format!("!!.{}.{}", b64("{}"), b64("s")),
            format!("{}.{}.{}", b64("[]"), b64("{}"), b64("s")),
            format!("{}.{}.{}", b64(r#"{"kid":"k"}"#), b64("{}"), b64("s")),
            "x".repeat(MAX_JWT_LEN + 1),
        ] {
            assert!(UnverifiedJwt::parse(&jwt).is_err(), "{jwt:.40} accepted");
        }
        let crit = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256","crit":["b64"]}"#),
            b64("{}"),
            b64("s")
        );
        assert!(matches!(
            UnverifiedJwt::parse(&crit),
            Err(JwtError::CriticalHeader)
        ));
    }

    #[test]
    fn key_lookup_rules() {
        let set: CoreJsonWebKeySet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "use": "sig", "alg": "RS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        ]}))
        .unwrap();
        assert!(matches!(lookup(&set, Some("a")), Lookup::Found(_)));
        assert!(matches!(lookup(&set, Some("enc")), Lookup::NotFound));
        assert!(matches!(lookup(&set, Some("hmac")), Lookup::NotFound));
        assert!(matches!(lookup(&set, Some("zzz")), Lookup::NotFound));
        assert!(matches!(lookup(&set, None), Lookup::Found(_)));
        let two: CoreJsonWebKeySet = serde_json::from_value(serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "b", "n": "AQAB", "e": "AQAB"},
        ]}))
        .unwrap();
        assert!(matches!(lookup(&two, None), Lookup::Ambiguous(2)));
    }
}
