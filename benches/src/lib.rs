//! Benchmarks for doximity-rs (not published).
//!
//! - `cargo run --release -p doximity-benches --bin load`: the layer's server CPU per request
//!   and throughput against the same handler served bare, with a real signed-in session.
//! - `cargo run --release -p doximity-benches --bin deployed`: the same question in the shape
//!   people deploy: the demo binary (`axum-app`) as its own process, configured through its
//!   environment, against a bare axum process (`bare-me`), driven by `wrk`.
//! - `cargo bench -p doximity-benches --bench session`: criterion micro-benchmarks of the
//!   identity cookie's decode (open + parse, on every request) and encode (serialise + seal).
//!
//! `docs/benchmarks.md` explains the method and holds the results. This library holds the
//! fixtures (sessions shaped like the ones Doximity's documented tokens produce) and, in
//! [`server`], what both load binaries share.

pub mod server;

use doximity::scope::Scopes;
use doximity::{IdTokenClaims, UserInfo};
use http::header::{COOKIE, HeaderMap, HeaderValue};
use tower_doximity::__bench::Record;

/// Doximity's issuer.
pub const ISSUER: &str = "https://auth.doximity.com";

/// A client id as long as an OAuth application uid usually is (43 characters).
pub const CLIENT_ID: &str = "Vq3dN8kR2xLm7TzQ4wYp1sHc6JfB9gEa0UoIrK5nXvM";

/// The length of the sealed tokens cookie value the load benchmark's real sign-in at the mock
/// produced (access, refresh and RS256 ID token): it rides in the same `Cookie` header on
/// every request, so the decoder has to skip it.
pub const TOKENS_COOKIE_LEN: usize = 2_000;

/// ID-token claims as Doximity documents them (`iss`, `sub`, `aud` with the issuer and the
/// client, `azp`, `exp`, `iat`, `auth_time`, `at_hash`), plus the `nonce` and the numeric
/// `acr` it sends, for a token issued at `now` that lives 30 minutes.
pub fn claims(now: i64) -> IdTokenClaims {
    let value = serde_json::json!({
        "iss": ISSUER,
        "sub": "3f6c1a2e-8b4d-4c7e-9a15-2d8f0b6e4c91",
        "aud": [ISSUER, CLIENT_ID],
        "azp": CLIENT_ID,
        "exp": now + 1_800,
        "iat": now,
        "auth_time": now - 60,
        "nonce": "p0Jq9w3XlZr8cT5vN2yK7mB4hD1sF6gA0eUiOaLtRkE",
        "acr": 2,
        "at_hash": "5naHMnnHJ0Iq2cVfR7kLxA",
    });
    // A literal of the documented shape: it always parses.
    serde_json::from_value(value).expect("the fixture claims parse")
}

/// The userinfo profile of Doximity's documented example (`profile:read:basic`).
pub fn profile() -> UserInfo {
    let value = serde_json::json!({
        "iss": ISSUER,
        "aud": [ISSUER, CLIENT_ID],
        "sub": "3f6c1a2e-8b4d-4c7e-9a15-2d8f0b6e4c91",
        "name": "John Doe",
        "given_name": "John",
        "family_name": "Doe",
        "middle_name": "",
        "credentials": "MD",
        "profile_photo_url": "https://doximity.com/assets/phone_lists/default-image-907954f09786b801ee41da03c2992ae1c2d75b50190b4460fde6d042025ca4e0.png",
        "specialty": "Anesthesiology",
    });
    serde_json::from_value(value).expect("the fixture profile parses")
}

/// The identity cookie's record of the session a sign-in at `now` makes: `openid` only (the
/// default scope), or with `profile:read:basic` and the profile fetched at sign-in. (The
/// ID-token [`claims`] ride in the tokens cookie.)
pub fn session(with_profile: bool, now: i64) -> Record {
    let (scopes, profile) = if with_profile {
        let scopes: Scopes = "openid profile:read:basic".parse().expect("valid scopes");
        (scopes, Some(profile()))
    } else {
        (Scopes::openid(), None)
    };
    Record::new(claims(now).sub, scopes, profile, now, Some(now + 1_800))
}

/// The request headers a signed-in browser sends: the identity cookie from `set_cookie` (a
/// `Set-Cookie` value) and, after it, a tokens cookie of realistic size.
pub fn request_headers(set_cookie: &HeaderValue, tokens_cookie: &str) -> HeaderMap {
    let pair = set_cookie
        .to_str()
        .ok()
        .and_then(|s| s.split(';').next())
        .unwrap_or_default();
    let filler = "A".repeat(TOKENS_COOKIE_LEN);
    let mut headers = HeaderMap::new();
    let value = format!("{pair}; {tokens_cookie}={filler}");
    headers.insert(
        COOKIE,
        HeaderValue::from_str(&value).expect("cookie pairs are header-safe"),
    );
    headers
}
