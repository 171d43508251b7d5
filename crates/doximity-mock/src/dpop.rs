//! DPoP (RFC 9449) at the provider: proofs checked at the token endpoint and the resources,
//! tokens bound to the proof key's thumbprint (`cnf.jkt`), nonces demanded on request.

use std::collections::{HashMap, VecDeque};

use axum::response::Response;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::faults::{DpopCheck, Fault};
use crate::keys::{b64, b64_decode, random_token};
use crate::routes::{invalid_token, oauth_error};
use crate::state::State;

/// How far a proof's `iat` may be from the provider's clock, either way, in seconds.
pub(crate) const IAT_WINDOW: i64 = 60;
/// The most `jti`s remembered at once. Past it (within one freshness window), proofs are
/// refused rather than let through unchecked.
pub(crate) const REPLAY_CACHE_MAX: usize = 10_000;
/// The proof algorithms the provider advertises and accepts.
pub(crate) const ALGS: [&str; 1] = ["RS256"];

const DPOP: HeaderName = HeaderName::from_static("dpop");
const DPOP_NONCE: HeaderName = HeaderName::from_static("dpop-nonce");

/// The `jti`s seen within the freshness window: a bounded replay cache.
#[derive(Default)]
pub(crate) struct ReplayCache {
    seen: HashMap<String, i64>,
    order: VecDeque<(i64, String)>,
}

impl ReplayCache {
    /// Records `jti` (until `until`); `Err` when it was already seen, or the cache is full.
    fn insert(&mut self, jti: &str, now: i64, until: i64) -> Result<(), &'static str> {
        while let Some((expiry, _)) = self.order.front() {
            if *expiry > now {
                break;
            }
            if let Some((_, old)) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        if self.seen.contains_key(jti) {
            return Err("The DPoP proof was already used (jti replayed).");
        }
        if self.seen.len() >= REPLAY_CACHE_MAX {
            return Err("Too many DPoP proofs in the freshness window; try again shortly.");
        }
        self.seen.insert(jti.to_owned(), until);
        self.order.push_back((until, jti.to_owned()));
        Ok(())
    }
}

/// The provider's DPoP state.
#[derive(Default)]
pub(crate) struct DpopState {
    /// Demand a server nonce in every proof (the builder's `require_dpop_nonce`).
    pub(crate) require_nonce: bool,
    /// The current nonce, made on first demand.
    pub(crate) nonce: Option<String>,
    pub(crate) replay: ReplayCache,
}

/// A checked proof.
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub(crate) jkt: String,
}

/// Why a proof was refused.
pub(crate) enum ProofError {
    /// `invalid_dpop_proof`.
    Invalid(&'static str),
    /// `use_dpop_nonce`, with this fresh nonce.
    UseNonce(String),
}

/// Whether the check is on (no `DpopCheckOff` fault for it).
fn on(state: &State, check: DpopCheck) -> bool {
    !state.has_fault(Fault::DpopCheckOff(check))
}

/// The current nonce, made if there is none.
fn current_nonce(state: &mut State) -> String {
    state.dpop.nonce.get_or_insert_with(random_token).clone()
}

/// The `htu` a proof must carry for `url`: without query and fragment.
fn normalise_htu(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    Some(url.to_string())
}

/// The RFC 7638 thumbprint of an RSA JWK.
pub(crate) fn thumbprint(n: &str, e: &str) -> String {
    b64(Sha256::digest(
        format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#).as_bytes(),
    ))
}

/// Checks the request's `DPoP` header, if any, for `method` on `url` (the endpoint's own
/// public URL). `access_token` is given at resources: the proof's `ath` must match it.
/// `Ok(None)`: no proof was sent.
pub(crate) fn check(
    state: &mut State,
    headers: &HeaderMap,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<Option<Proof>, ProofError> {
    let mut values = headers.get_all(DPOP).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Invalid("More than one DPoP header."));
    }
    let invalid = ProofError::Invalid;
    let jwt = value
        .to_str()
        .map_err(|_| invalid("The DPoP header is not text."))?;
    let mut parts = jwt.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("The DPoP proof is not a compact JWS."));
    };
    let json = |part: &str| -> Option<Value> { serde_json::from_slice(&b64_decode(part)?).ok() };
    let header = json(header_b64).ok_or(invalid("The DPoP proof header is not JSON."))?;
    let claims = json(claims_b64).ok_or(invalid("The DPoP proof claims are not JSON."))?;
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_owned);

    if on(state, DpopCheck::Typ) && text(&header, "typ").as_deref() != Some("dpop+jwt") {
        return Err(invalid("The DPoP proof's typ must be dpop+jwt."));
    }
    if on(state, DpopCheck::Alg)
        && !ALGS.contains(&text(&header, "alg").unwrap_or_default().as_str())
    {
        return Err(invalid("The DPoP proof's alg must be RS256."));
    }
    let jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(invalid("The DPoP proof has no jwk."))?;
    if jwk.contains_key("d") || jwk.contains_key("p") || jwk.contains_key("q") {
        return Err(invalid("The DPoP proof's jwk holds a private key."));
    }
    let (Some("RSA"), Some(n), Some(e)) = (
        jwk.get("kty").and_then(Value::as_str),
        jwk.get("n").and_then(Value::as_str),
        jwk.get("e").and_then(Value::as_str),
    ) else {
        return Err(invalid("The DPoP proof's jwk must be an RSA public key."));
    };
    let public = match (b64_decode(n), b64_decode(e)) {
        (Some(n), Some(e)) => {
            RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                .map_err(|_| invalid("The DPoP proof's jwk is not a usable RSA key."))?
        }
        _ => return Err(invalid("The DPoP proof's jwk is not base64url.")),
    };
    if public.size() * 8 < 2048 {
        return Err(invalid("The DPoP proof's key is shorter than 2048 bits."));
    }
    if on(state, DpopCheck::Signature) {
        let signature = b64_decode(signature_b64)
            .and_then(|s| Signature::try_from(s.as_slice()).ok())
            .ok_or(invalid("The DPoP proof's signature is malformed."))?;
        VerifyingKey::<Sha256>::new(public)
            .verify(format!("{header_b64}.{claims_b64}").as_bytes(), &signature)
            .map_err(|_| invalid("The DPoP proof's signature does not verify."))?;
    }

    let jti = text(&claims, "jti")
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .ok_or(invalid("The DPoP proof has no usable jti."))?;
    if on(state, DpopCheck::Htm) && text(&claims, "htm").as_deref() != Some(method) {
        return Err(invalid(
            "The DPoP proof's htm is not this request's method.",
        ));
    }
    if on(state, DpopCheck::Htu)
        && (text(&claims, "htu").and_then(|h| normalise_htu(&h)) != normalise_htu(url))
    {
        return Err(invalid("The DPoP proof's htu is not this endpoint."));
    }
    let now = state.now();
    let iat = claims.get("iat").and_then(Value::as_i64);
    if on(state, DpopCheck::Iat) && iat.is_none_or(|iat| (iat - now).abs() > IAT_WINDOW) {
        return Err(invalid("The DPoP proof's iat is missing or not recent."));
    }
    if state.has_fault(Fault::DpopNonceEveryRequest) {
        let fresh = random_token();
        state.dpop.nonce = Some(fresh.clone());
        return Err(ProofError::UseNonce(fresh));
    }
    if state.dpop.require_nonce && on(state, DpopCheck::Nonce) {
        let expected = current_nonce(state);
        if text(&claims, "nonce").as_deref() != Some(expected.as_str()) {
            return Err(ProofError::UseNonce(expected));
        }
    }
    if let Some(token) = access_token
        && on(state, DpopCheck::Ath)
        && text(&claims, "ath") != Some(b64(Sha256::digest(token.as_bytes())))
    {
        return Err(invalid(
            "The DPoP proof's ath does not match the access token.",
        ));
    }
    if on(state, DpopCheck::Replay) {
        state
            .dpop
            .replay
            .insert(&jti, now, now + 2 * IAT_WINDOW)
            .map_err(invalid)?;
    }
    Ok(Some(Proof {
        jkt: thumbprint(n, e),
    }))
}

/// The token endpoint's answer to a refused proof (RFC 9449 §5 and §8).
pub(crate) fn token_error(error: ProofError) -> Response {
    match error {
        ProofError::Invalid(description) => {
            oauth_error(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
        }
        ProofError::UseNonce(nonce) => {
            let mut response = oauth_error(
                StatusCode::BAD_REQUEST,
                "use_dpop_nonce",
                "Authorization server requires nonce in DPoP proof.",
            );
            add_nonce(&mut response, &nonce);
            response
        }
    }
}

/// A resource's 401 with a `DPoP` challenge (RFC 9449 §7.1 and §9).
fn resource_error(error: &str, description: &str, nonce: Option<&str>) -> Response {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, error, description);
    let algs = ALGS.join(" ");
    let challenge =
        format!("DPoP algs=\"{algs}\", error=\"{error}\", error_description=\"{description}\"");
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    if let Some(nonce) = nonce {
        add_nonce(&mut response, nonce);
    }
    response
}

fn add_nonce(response: &mut Response, nonce: &str) {
    if let Ok(value) = HeaderValue::from_str(nonce) {
        response.headers_mut().insert(DPOP_NONCE, value);
    }
}

/// How an access token was presented.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    Dpop,
}

/// The scheme and token of an `Authorization: Bearer` or `Authorization: DPoP` header.
pub(crate) fn authorization(headers: &HeaderMap) -> Option<(Scheme, &str)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    if token.is_empty() {
        return None;
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        Some((Scheme::Bearer, token))
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some((Scheme::Dpop, token))
    } else {
        None
    }
}

/// Checks how a live access token was presented at a resource: a DPoP-bound token needs the
/// `DPoP` scheme and a valid proof by its key; an unbound one needs `Bearer`. `bound` is the
/// token's `cnf.jkt`. `Err` is the ready 401.
#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP answer, built once per request"
)]
pub(crate) fn check_resource(
    state: &mut State,
    headers: &HeaderMap,
    method: &str,
    url: &str,
    scheme: Scheme,
    token: &str,
    bound: Option<&str>,
) -> Result<(), Response> {
    let binding = on(state, DpopCheck::Binding);
    match scheme {
        Scheme::Bearer if bound.is_some() && binding => Err(invalid_token(
            "The access token is DPoP-bound: present it with the DPoP scheme and a proof.",
        )),
        Scheme::Bearer => Ok(()),
        Scheme::Dpop => {
            let proof = match check(state, headers, method, url, Some(token)) {
                Ok(Some(proof)) => proof,
                Ok(None) => {
                    return Err(resource_error(
                        "invalid_dpop_proof",
                        "The DPoP scheme needs a DPoP proof.",
                        None,
                    ));
                }
                Err(ProofError::Invalid(description)) => {
                    return Err(resource_error("invalid_dpop_proof", description, None));
                }
                Err(ProofError::UseNonce(nonce)) => {
                    return Err(resource_error(
                        "use_dpop_nonce",
                        "Resource server requires nonce in DPoP proof.",
                        Some(&nonce),
                    ));
                }
            };
            match bound {
                _ if !binding => Ok(()),
                Some(jkt) if jkt == proof.jkt => Ok(()),
                Some(_) => Err(resource_error(
                    "invalid_token",
                    "The access token is bound to another DPoP key.",
                    None,
                )),
                None => Err(resource_error(
                    "invalid_token",
                    "The access token is not DPoP-bound: present it as Bearer.",
                    None,
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_ignores_query_and_fragment() {
        assert_eq!(
            normalise_htu("https://127.0.0.1:8443/oauth/token?x=1#y"),
            normalise_htu("https://127.0.0.1:8443/oauth/token")
        );
        assert_ne!(
            normalise_htu("https://127.0.0.1:8443/oauth/userinfo"),
            normalise_htu("https://127.0.0.1:8443/oauth/token")
        );
    }

    #[test]
    fn replay_cache_refuses_repeats_and_forgets_after_the_window() {
        let mut cache = ReplayCache::default();
        assert!(cache.insert("a", 100, 220).is_ok());
        assert!(cache.insert("a", 150, 270).is_err());
        assert!(cache.insert("b", 150, 270).is_ok());
        assert!(
            cache.insert("a", 220, 340).is_ok(),
            "forgotten after its expiry"
        );
    }

    #[test]
    fn replay_cache_is_bounded() {
        let mut cache = ReplayCache::default();
        for i in 0..REPLAY_CACHE_MAX {
            assert!(cache.insert(&i.to_string(), 0, 120).is_ok());
        }
        assert!(cache.insert("one more", 0, 120).is_err());
        assert!(cache.insert("one more", 120, 240).is_ok(), "room again");
    }
}
