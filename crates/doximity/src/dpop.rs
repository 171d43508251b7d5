//! DPoP (RFC 9449): proof-of-possession for the tokens Doximity issues.
//!
//! With a [`DpopKey`] in the [`Config`](crate::Config) and a provider whose metadata lists
//! `RS256` in `dpop_signing_alg_values_supported`, the client signs a proof JWT for every call
//! to the token endpoint (code exchange, refresh, device polling) and to userinfo, and the
//! provider binds the tokens it issues to the key. A stolen bound token is worthless without
//! the key. Without a key, or when the provider advertises no algorithm this crate implements,
//! everything stays plain `Bearer`.
//!
//! The algorithm comes only from the intersection of the provider's metadata and
//! [`SUPPORTED_ALGS`]; never from a token or a response.
//!
//! Signing goes through the rustls crypto provider the crate uses for TLS (`ring` or
//! `aws-lc-rs`), whose RSA signing is constant-time. The `rsa` crate only parses a key's DER
//! (to read its public half, with no arithmetic on the private key) and generates new keys.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs8::EncodePrivateKey as _;
use rustls::SignatureScheme;
use rustls::sign::SigningKey;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::error::Endpoint;
use crate::secret::AccessToken;

/// The proof algorithms this crate implements: RS256 only, as Doximity advertises.
pub const SUPPORTED_ALGS: &[&str] = &["RS256"];

/// The smallest RSA key accepted, in bits.
const MIN_BITS: usize = 2048;
/// The size of a generated key, in bits.
const GENERATED_BITS: usize = 2048;
/// The longest `DPoP-Nonce` value kept; a longer one is ignored.
pub(crate) const MAX_NONCE_LEN: usize = 512;

/// Why a DPoP key could not be used or a DPoP exchange failed. Messages never carry key
/// material, a proof, a nonce or a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// The PEM is not a usable RSA private key (PKCS#8 or PKCS#1, at least 2048 bits).
    #[error("the DPoP key is unusable: {0}")]
    InvalidKey(&'static str),
    /// No rustls crypto provider is available to sign with (see the crate's features).
    #[error("no rustls crypto provider to sign DPoP proofs with")]
    NoCryptoProvider,
    /// Signing a proof failed.
    #[error("could not sign a DPoP proof")]
    Signing,
    /// The provider asked for a DPoP nonce (`use_dpop_nonce`) without a usable `DPoP-Nonce`
    /// header.
    #[error("the Doximity {endpoint} asked for a DPoP nonce but sent none")]
    MissingNonce {
        /// Where the call went.
        endpoint: Endpoint,
    },
    /// The provider answered `use_dpop_nonce` again to the retry that carried its nonce.
    #[error("the Doximity {endpoint} refused the DPoP nonce twice in a row")]
    NonceRejected {
        /// Where the call went.
        endpoint: Endpoint,
    },
    /// The token is DPoP-bound, but this client cannot make proofs: it has no key, or the
    /// provider no longer advertises an algorithm this crate implements.
    #[error("the access token is DPoP-bound, but DPoP is not available to this client")]
    NotAvailable,
}

/// The RSA key DPoP proofs are signed with: one per deployment, shared by every instance
/// (see `docs/dpop.md`). Cheap to clone.
///
/// Its `Debug` shows only the key's RFC 7638 thumbprint; no key material is ever logged.
///
/// ```
/// let key = doximity::dpop::DpopKey::generate().unwrap();
/// assert_eq!(format!("{key:?}"), format!("DpopKey {{ thumbprint: {:?} }}", key.thumbprint()));
/// ```
#[derive(Clone)]
pub struct DpopKey {
    inner: Arc<KeyInner>,
}

struct KeyInner {
    signing: Arc<dyn SigningKey>,
    /// The public JWK's `n` and `e`, base64url.
    n: String,
    e: String,
    thumbprint: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("thumbprint", &self.inner.thumbprint)
            .finish()
    }
}

impl DpopKey {
    /// The deployment's key from `DOXIMITY_DPOP_KEY` (the PEM itself, or the path of a PEM
    /// file), shared by every instance so that a session's bound tokens work on each; unset,
    /// a random key for this process, with a warning (bound tokens then do not survive a
    /// restart: the next refresh fails and the user signs in again). Never logged.
    ///
    /// # Errors
    ///
    /// [`ConfigError::DpopKey`](crate::ConfigError::DpopKey) for a value that is not a usable
    /// key (nor a readable file holding one).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::ConfigError> {
        let value = lookup("DOXIMITY_DPOP_KEY").filter(|v| !v.trim().is_empty());
        let Some(value) = value else {
            tracing::warn!(
                "no DPoP key configured (DOXIMITY_DPOP_KEY): using a random one; DPoP-bound \
                 sessions will not survive a restart nor work across instances"
            );
            return Self::generate().map_err(crate::ConfigError::DpopKey);
        };
        let pem = if value.trim_start().starts_with("-----BEGIN") {
            value
        } else {
            std::fs::read_to_string(value.trim()).map_err(|_| {
                crate::ConfigError::DpopKey(DpopError::InvalidKey(
                    "not a PEM, nor a readable PEM file",
                ))
            })?
        };
        Self::from_pem(&pem).map_err(crate::ConfigError::DpopKey)
    }

    /// Reads an RSA private key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`), at least 2048 bits.
    ///
    /// # Errors
    ///
    /// [`DpopError::InvalidKey`] for anything else (the reason names no key material);
    /// [`DpopError::NoCryptoProvider`] without a rustls crypto provider.
    pub fn from_pem(pem: &str) -> Result<Self, DpopError> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|_| DpopError::InvalidKey("no PEM private key found"))?;
        Self::from_der(der)
    }

    /// Generates a fresh RSA-2048 key. Takes a moment: call it once at start, not per request.
    ///
    /// # Errors
    ///
    /// [`DpopError::NoCryptoProvider`] without a rustls crypto provider.
    pub fn generate() -> Result<Self, DpopError> {
        let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, GENERATED_BITS)
            .map_err(|_| DpopError::InvalidKey("key generation failed"))?;
        let der = private
            .to_pkcs8_der()
            .map_err(|_| DpopError::InvalidKey("key encoding failed"))?;
        Self::from_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            der.as_bytes().to_vec(),
        )))
    }

    /// Reads the public half by parsing the DER alone (no arithmetic on the private key), and
    /// hands the key to the rustls crypto provider, which does all the signing.
    fn from_der(der: PrivateKeyDer<'static>) -> Result<Self, DpopError> {
        let rsa_der = match &der {
            PrivateKeyDer::Pkcs8(d) => {
                rsa::pkcs8::PrivateKeyInfo::try_from(d.secret_pkcs8_der())
                    .map_err(|_| DpopError::InvalidKey("not a PKCS#8 private key"))?
                    .private_key
            }
            PrivateKeyDer::Pkcs1(d) => d.secret_pkcs1_der(),
            _ => return Err(DpopError::InvalidKey("not an RSA key (PKCS#8 or PKCS#1)")),
        };
        let parsed = rsa::pkcs1::RsaPrivateKey::try_from(rsa_der)
            .map_err(|_| DpopError::InvalidKey("not an RSA private key"))?;
        let (n, e) = (parsed.modulus.as_bytes(), parsed.public_exponent.as_bytes());
        if n.len() * 8 < MIN_BITS {
            return Err(DpopError::InvalidKey("shorter than 2048 bits"));
        }
        let n = b64(n);
        let e = b64(e);
        let provider = crate::http::crypto_provider().map_err(|_| DpopError::NoCryptoProvider)?;
        let signing = provider
            .key_provider
            .load_private_key(der)
            .map_err(|_| DpopError::InvalidKey("the crypto provider refuses it"))?;
        if signing
            .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
            .is_none()
        {
            return Err(DpopError::InvalidKey(
                "the crypto provider cannot sign RS256 with it",
            ));
        }
        let thumbprint = thumbprint(&n, &e);
        Ok(Self {
            inner: Arc::new(KeyInner {
                signing,
                n,
                e,
                thumbprint,
            }),
        })
    }

    /// The key's JWK SHA-256 thumbprint (RFC 7638), base64url: what the provider binds tokens
    /// to (`cnf.jkt`). Safe to log.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// The public key as a JWK (`kty`, `n`, `e`; never a private member).
    pub fn public_jwk(&self) -> serde_json::Value {
        json!({"kty": "RSA", "n": self.inner.n, "e": self.inner.e})
    }

    /// Signs a proof for `method` on `url` at `iat` (epoch seconds): `ath` when an access token
    /// is given, `nonce` when the server asked for one.
    pub(crate) fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&AccessToken>,
        nonce: Option<&str>,
        iat: i64,
    ) -> Result<DpopProof, DpopError> {
        let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": self.public_jwk()});
        let mut claims = json!({
            "jti": jti(),
            "htm": method,
            "htu": htu(url),
            "iat": iat,
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(ath(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signer = self
            .inner
            .signing
            .choose_scheme(&[SignatureScheme::RSA_PKCS1_SHA256])
            .ok_or(DpopError::Signing)?;
        let signature = signer
            .sign(signing_input.as_bytes())
            .map_err(|_| DpopError::Signing)?;
        Ok(DpopProof(format!("{signing_input}.{}", b64(signature))))
    }
}

/// A signed DPoP proof JWT: the value of a `DPoP` request header. Single use; its `Debug` is
/// redacted.
#[derive(Clone)]
pub struct DpopProof(String);

impl DpopProof {
    /// The compact JWT, for the `DPoP` header.
    ///
    /// # Security
    ///
    /// Do not log it: until its `iat` is stale it can be replayed with the token it covers.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DpopProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopProof([redacted])")
    }
}

/// The `htu` of a request to `url`: the URL without query and fragment (RFC 9449 §4.2). The
/// `url` crate has already lower-cased the scheme and host and dropped a default port.
pub fn htu(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// `ath`: base64url SHA-256 of the access token.
pub(crate) fn ath(token: &AccessToken) -> String {
    b64(Sha256::digest(token.secret().as_bytes()))
}

/// The RFC 7638 thumbprint of an RSA public key: SHA-256 of `{"e","kty","n"}` in that order,
/// no whitespace, base64url.
fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    b64(Sha256::digest(canonical.as_bytes()))
}

/// A fresh `jti`: 128 random bits from the OS, base64url.
fn jti() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    b64(bytes)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `metadata`'s advertised algorithms and ours meet.
pub(crate) fn alg_supported(advertised: &[String]) -> bool {
    advertised
        .iter()
        .any(|a| SUPPORTED_ALGS.contains(&a.as_str()))
}

/// A `DPoP-Nonce` value worth sending back: `1*NQCHAR` (RFC 9449 §8.1), bounded.
pub(crate) fn valid_nonce(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NONCE_LEN
        && value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

#[cfg(test)]
mod tests {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::pkcs8::EncodePrivateKey as _;
    use rsa::pkcs8::LineEnding;
    use rsa::signature::Verifier as _;
    use serde_json::Value;

    use super::*;

    fn decode(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn parts(proof: &DpopProof) -> (Value, Value, Vec<u8>, String) {
        let mut it = proof.as_str().split('.');
        let (h, c, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        assert!(it.next().is_none());
        (
            decode(h),
            decode(c),
            URL_SAFE_NO_PAD.decode(s).unwrap(),
            format!("{h}.{c}"),
        )
    }

    fn private_key() -> RsaPrivateKey {
        RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap()
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        // RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn proof_has_the_rfc_9449_header_and_claims_and_verifies() {
        let private = private_key();
        let key = DpopKey::from_pem(&private.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
        let url: Url = "https://auth.example/oauth/userinfo?x=1#frag"
            .parse()
            .unwrap();
        let token = AccessToken::new("the-access-token".into());
        let proof = key
            .proof("GET", &url, Some(&token), Some("n-1"), 1_700_000_000)
            .unwrap();
        let (header, claims, signature, input) = parts(&proof);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "RS256");
        let jwk = header["jwk"].as_object().unwrap();
        let mut members: Vec<_> = jwk.keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["e", "kty", "n"], "public members only");
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(claims["htm"], "GET");
        assert_eq!(claims["htu"], "https://auth.example/oauth/userinfo");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(
            claims["ath"],
            b64(Sha256::digest(b"the-access-token")).as_str()
        );
        assert!(claims["jti"].as_str().unwrap().len() >= 22);
        let verifying = VerifyingKey::<Sha256>::new(private.to_public_key());
        let signature = Signature::try_from(signature.as_slice()).unwrap();
        verifying.verify(input.as_bytes(), &signature).unwrap();
        // The thumbprint is that of the JWK in the header.
        assert_eq!(
            key.thumbprint(),
            thumbprint(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
        );
    }

    #[test]
    fn token_endpoint_proofs_have_no_ath_nor_nonce_and_jti_is_unique() {
        let key = DpopKey::generate().unwrap();
        let url: Url = "https://auth.example/oauth/token".parse().unwrap();
        let a = parts(&key.proof("POST", &url, None, None, 1).unwrap()).1;
        let b = parts(&key.proof("POST", &url, None, None, 1).unwrap()).1;
        assert!(a.get("ath").is_none());
        assert!(a.get("nonce").is_none());
        assert_eq!(a["htm"], "POST");
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn htu_drops_query_and_fragment_and_normalises() {
        let url: Url = "HTTPS://Auth.Example:443/oauth/token?code=secret#frag"
            .parse()
            .unwrap();
        assert_eq!(htu(&url), "https://auth.example/oauth/token");
        let url: Url = "https://auth.example:8443/a/b?".parse().unwrap();
        assert_eq!(htu(&url), "https://auth.example:8443/a/b");
    }

    #[test]
    fn pkcs1_and_pkcs8_load_the_same_key() {
        let private = private_key();
        let a = DpopKey::from_pem(&private.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap();
        let b = DpopKey::from_pem(&private.to_pkcs1_pem(LineEnding::LF).unwrap()).unwrap();
        assert_eq!(a.thumbprint(), b.thumbprint());
        assert_ne!(
            a.thumbprint(),
            DpopKey::generate().unwrap().thumbprint(),
            "generated keys differ"
        );
    }

    #[test]
    fn bad_keys_are_typed_errors() {
        for pem in [
            "",
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN RSA PRIVATE KEY-----\n!!!!\n-----END RSA PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                DpopKey::from_pem(pem),
                Err(DpopError::InvalidKey(_))
            ));
        }
        let small = RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024).unwrap();
        let e = DpopKey::from_pem(&small.to_pkcs8_pem(LineEnding::LF).unwrap()).unwrap_err();
        assert!(matches!(e, DpopError::InvalidKey("shorter than 2048 bits")));
    }

    #[test]
    fn debug_shows_only_the_thumbprint() {
        let private = private_key();
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        let key = DpopKey::from_pem(&pem).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(
            shown,
            format!("DpopKey {{ thumbprint: {:?} }}", key.thumbprint())
        );
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!shown.contains(&body[..40]));
        assert!(!shown.contains(&key.public_jwk()["n"].as_str().unwrap()[..20]));
        let url: Url = "https://auth.example/x".parse().unwrap();
        let proof = key.proof("GET", &url, None, None, 0).unwrap();
        assert_eq!(format!("{proof:?}"), "DpopProof([redacted])");
    }

    #[test]
    fn nonces_are_checked_before_use() {
        assert!(valid_nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v"));
        assert!(!valid_nonce(""));
        assert!(!valid_nonce("has space"));
        assert!(!valid_nonce("quote\""));
        assert!(!valid_nonce("back\\slash"));
        assert!(!valid_nonce(&"a".repeat(MAX_NONCE_LEN + 1)));
    }

    #[test]
    fn only_rs256_is_implemented() {
        assert!(alg_supported(&["ES256".into(), "RS256".into()]));
        assert!(!alg_supported(&["ES256".into(), "PS256".into()]));
        assert!(!alg_supported(&[]));
    }
}
