//! The fuzz targets' entry points: the callback query, compact JWTs, ID-token and userinfo
//! claims, and JSON Web Key Sets, each fed from arbitrary bytes.
//!
//! Not part of the API: compiled only with the `fuzzing` feature, for the coverage-guided
//! targets in `fuzz/` and for the replay of their corpus under `cargo test`. Each function
//! must return normally for every input; a panic (an `assert!` below included) is a finding.
//! Besides "no panic", each checks what must hold of what it accepted, and that every error
//! message is safe to log (no control or line-breaking character from the input).
//!
//! The key set and the signed token are fixtures made by `fuzz/make-fixture.sh`.

use std::fmt::Display;
use std::sync::OnceLock;

use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet};
use serde_json::{Map, Value};

use crate::authorize::PendingLogin;
use crate::callback::{CallbackParams, IssParameter};
use crate::claims::{self, Expect};
use crate::jwt::{Lookup, UnverifiedJwt, lookup};
use crate::scope::Scopes;
use crate::secret::{AccessToken, CsrfToken, Nonce, PkceCodeVerifier};

/// The issuer the targets expect (the fixture tokens' `iss`).
pub const ISSUER: &str = "https://auth.doximity.com";
/// The client id the targets expect (the fixture tokens' `aud` and `azp`).
pub const CLIENT_ID: &str = "fuzz-client";
/// The `sub` of the fixture tokens, expected by the userinfo rules.
pub const SUB: &str = "00000000-0000-4000-8000-000000000001";
/// The login's `state`: a callback must carry it to reach the rules after the state check.
pub const STATE: &str = "fuzz-state";
/// The login's `nonce` (the fixture ID token carries it).
pub const NONCE: &str = "fuzz-nonce";
/// The access token whose `at_hash` the fixture ID token carries.
pub const ACCESS_TOKEN: &str = "fuzz-access-token";
/// The registered claims the ID-token rules read into their own fields.
pub const REGISTERED_CLAIMS: [&str; 9] = claims::REGISTERED;
/// "Now" for every time rule, epoch seconds: the fixture tokens are valid then.
pub const NOW: i64 = 1_700_000_100;
/// The clock leeway of the claim rules.
const LEEWAY: i64 = 60;

/// The provider's key set (public key only).
pub const JWKS: &str = include_str!("fuzzing/jwks.json");
/// An ID token signed by the key in [`JWKS`], valid at [`NOW`] for every rule.
pub const ID_TOKEN: &str = include_str!("fuzzing/id-token.jwt");

/// Parses the callback query (or fragment) and applies the callback rules to it, for a login
/// that sent [`STATE`], both with `iss` optional and required (RFC 9207).
pub fn callback(data: &[u8]) {
    let Ok(query) = std::str::from_utf8(data) else {
        return;
    };
    for iss_parameter in [IssParameter::Optional, IssParameter::Required] {
        let params = match CallbackParams::parse(query) {
            Ok(params) => params,
            Err(e) => return loggable("callback parse error", &e),
        };
        let _ = params.error();
        loggable("callback parameters", &format_args!("{params:?}"));
        // The parser refuses repeats, so the first of each is the one it kept.
        let param = |name: &str| {
            url::form_urlencoded::parse(query.trim_start_matches(['?', '#']).as_bytes())
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        let (state, iss) = (param("state"), param("iss"));
        match params.validate(&pending(), ISSUER, iss_parameter, NOW) {
            Ok(authorized) => {
                assert_eq!(state.as_deref(), Some(STATE), "accepted another state");
                assert!(
                    !authorized.code.secret().is_empty(),
                    "accepted an empty code"
                );
                assert!(
                    iss.as_deref().is_none_or(|iss| iss == ISSUER),
                    "accepted another issuer"
                );
                if iss_parameter == IssParameter::Required {
                    assert!(iss.is_some(), "accepted a callback without `iss`");
                }
            }
            Err(e) => loggable("callback error", &e),
        }
    }
}

/// Parses a compact JWT, finds its key in [`JWKS`], verifies its RS256 signature, and applies
/// the ID-token and userinfo rules to what verifies.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(set) = fixture_key_set() else {
        return;
    };
    verify_with(set, text);
}

/// Applies the ID-token rules (code exchange and refresh) and the userinfo rules to a JSON
/// payload, as if its signature had verified: the claim rules without the signature barrier.
pub fn jwt_claims(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Some(set) = fixture_key_set() else {
        return;
    };
    if let Lookup::Found(key) = lookup(set, Some("fuzz-1")) {
        check_claims(payload, &key);
    }
}

/// Parses a JSON Web Key Set as the provider's `jwks_uri` would answer it, looks keys up as a
/// token's `kid` would, and verifies [`ID_TOKEN`] with what it finds.
pub fn jwks(data: &[u8]) {
    let Ok(set) = serde_json::from_slice::<CoreJsonWebKeySet>(data) else {
        return;
    };
    for kid in [Some("fuzz-1"), None, Some("")] {
        let _ = lookup(&set, kid);
    }
    verify_with(&set, ID_TOKEN);
}

/// The fixture key set, parsed once.
fn fixture_key_set() -> Option<&'static CoreJsonWebKeySet> {
    static SET: OnceLock<Option<CoreJsonWebKeySet>> = OnceLock::new();
    SET.get_or_init(|| serde_json::from_str(JWKS).ok()).as_ref()
}

fn verify_with(set: &CoreJsonWebKeySet, token: &str) {
    let jwt = match UnverifiedJwt::parse(token) {
        Ok(jwt) => jwt,
        Err(e) => return loggable("JWT parse error", &e),
    };
    let key = match lookup(set, jwt.kid.as_deref()) {
        Lookup::Found(key) => key,
        Lookup::NotFound | Lookup::Ambiguous(_) => return,
    };
    match jwt.verify(&key) {
        Ok(payload) => check_claims(payload, &key),
        Err(e) => loggable("JWT verify error", &e),
    }
}

fn check_claims(payload: Map<String, Value>, key: &CoreJsonWebKey) {
    let expect = Expect {
        issuer: ISSUER,
        client_id: CLIENT_ID,
        now: NOW,
        leeway: LEEWAY,
    };
    let nonce = Nonce::new(NONCE.into());
    let access = AccessToken::new(ACCESS_TOKEN.into());
    match claims::check_id_token(payload.clone(), &expect, key, Some(&nonce), Some(&access)) {
        Ok(c) => {
            assert_eq!(c.iss, ISSUER);
            assert!(c.aud.iter().any(|a| a == CLIENT_ID), "accepted another aud");
            assert!(
                c.aud.iter().all(|a| a == CLIENT_ID || a == ISSUER),
                "accepted an untrusted aud"
            );
            assert!(c.azp.as_deref().is_none_or(|azp| azp == CLIENT_ID));
            assert!(
                NOW <= c.exp.saturating_add(LEEWAY),
                "accepted an expired token"
            );
            assert!(c.iat <= NOW + LEEWAY, "accepted a token from the future");
            assert_eq!(c.nonce.as_deref(), Some(NONCE), "accepted another nonce");
            assert!(!c.sub.is_empty());
            assert!(claims::check_refreshed(&c, &c).is_ok());
            loggable("ID-token claims", &format_args!("{c:?}"));
        }
        Err(e) => loggable("ID-token error", &e),
    }
    match claims::check_id_token(payload.clone(), &expect, key, None, None) {
        Ok(c) => assert_eq!(c.iss, ISSUER),
        Err(e) => loggable("refreshed ID-token error", &e),
    }
    match claims::check_userinfo(payload, &expect, SUB) {
        Ok(info) => assert_eq!(info.sub, SUB),
        Err(e) => loggable("userinfo error", &e),
    }
}

/// A login that sent [`STATE`] and [`NONCE`] half a minute before [`NOW`].
fn pending() -> PendingLogin {
    PendingLogin {
        state: CsrfToken::new(STATE.into()),
        nonce: Nonce::new(NONCE.into()),
        pkce_verifier: PkceCodeVerifier::new("v".repeat(43)),
        redirect_uri: "https://app.example/auth/doximity/callback".into(),
        scopes: Scopes::openid(),
        response_mode: None,
        created_at: NOW - 30,
        acr_values: Vec::new(),
        max_age: None,
    }
}

/// Asserts that `what` can go to a log line as it is: no control character and no character
/// that breaks or reorders a line.
fn loggable(what: &str, text: &dyn Display) {
    let text = text.to_string();
    assert!(
        !text.chars().any(|c| c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')),
        "{what} is not safe to log: {text:?}"
    );
}
