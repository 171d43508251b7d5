//! Signing in: the login route, the transaction cookie, the callback and what it refuses, the scopes asked for.

use std::collections::BTreeMap;

use axum::body::Body;
use doximity_mock::Endpoint;
use doximity_test::enc;
use doximity_test::oneshot::{Jar, body, location, set_cookies};
use http::{Request, Response, StatusCode};
use tower_cookies::cookie::time::Duration as CookieDuration;
use tower_cookies::cookie::{Cookie, SameSite};
use tower_doximity::{AuthError, MemoryStore};

use crate::harness::*;

#[tokio::test]
async fn login_sets_a_transaction_cookie_and_redirects_with_state_nonce_and_pkce() {
    let h = harness(Options::default()).await;
    let res = h
        .get("/auth/doximity/login?return_to=%2Fme", &Jar::default())
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    let c = &cookies[0];
    assert!(c.starts_with("__Host-doximity-login="), "{c}");
    let parsed = Cookie::parse(c.as_str()).unwrap();
    assert_eq!(parsed.http_only(), Some(true), "{c}");
    assert_eq!(parsed.same_site(), Some(SameSite::Lax), "{c}");
    assert_eq!(parsed.path(), Some("/"), "{c}");
    assert_eq!(parsed.secure(), Some(true), "{c}");
    assert_eq!(parsed.max_age(), Some(CookieDuration::seconds(600)), "{c}");
    let url = url::Url::parse(&location(&res)).unwrap();
    assert!(url.as_str().starts_with(&h.mock.issuer()));
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], REDIRECT);
    for k in ["state", "nonce", "code_challenge"] {
        assert!(q[k].len() >= 43, "{k}");
        assert!(!c.contains(&q[k]), "{k} visible in the cookie");
    }
}

#[tokio::test]
async fn full_login_then_authenticated_requests_make_no_provider_call() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h
        .to_provider("/auth/doximity/login?return_to=%2Fme%3Fx%3D1", &mut jar)
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/me?x=1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let cookies = set_cookies(&res);
    for c in &cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.len() < 4096, "cookie too large: {}", c.len());
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-session="))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-tokens="))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-login=;")
                || c.starts_with("__Host-doximity-login=") && c.contains("Max-Age=0"))
    );
    jar.update(&res);
    assert!(!jar.0.contains_key("__Host-doximity-login"));

    let before = counts(&h.mock);
    for _ in 0..5 {
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookies(&res).is_empty());
        let sub = body(res).await;
        assert!(h.mock.clinicians().iter().any(|c| c.sub == sub), "{sub}");
    }
    // Decrypting the access token is local too.
    let res = h.get("/token", &jar).await;
    assert_ne!(body(res).await, "0");
    assert_eq!(
        counts(&h.mock),
        before,
        "an authenticated request called the provider"
    );
}

#[tokio::test]
async fn forged_state_is_a_clear_400() {
    let h = harness(Options::default()).await;
    let (jar, _, code) = h.to_provider_for_code().await;
    let before = h.mock.requests(Endpoint::Token);
    let res = h
        .get(
            &format!("/auth/doximity/callback?code={code}&state=forged"),
            &jar,
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::Login(_))
    ));
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.contains("doximity-login=") && c.contains("Max-Age=0"))
    );
    let text = body(res).await;
    assert!(text.contains("state"), "{text}");
    assert!(!text.contains(&code), "the code leaked into the page");
    assert_eq!(h.mock.requests(Endpoint::Token), before);
}

#[tokio::test]
async fn a_replayed_transaction_cookie_is_refused_without_calling_the_provider() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let saved = jar.clone();
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let before = h.mock.requests(Endpoint::Token);
    let res = h.get(&callback, &saved).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::ReplayedTransaction)
    ));
    assert_eq!(h.mock.requests(Endpoint::Token), before);
}

#[tokio::test]
async fn a_missing_or_tampered_transaction_cookie_is_a_400_not_a_500() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    // A browser (it accepts HTML) gets a page; a client that asks for no HTML, JSON.
    let res = h
        .send(
            Request::get(&callback)
                .header("accept", "text/html,*/*;q=0.8")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::MissingTransaction)
    ));
    assert!(body(res).await.contains("<html>"));
    let res = h.get(&callback, &Jar::default()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("login_transaction_missing"));
    let mut tampered = jar.clone();
    for v in tampered.0.values_mut() {
        v.replace_range(5..9, "AAAA");
    }
    let res = h
        .send(
            Request::get(&callback)
                .header("cookie", tampered.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["error"], "login_transaction_missing");
}

#[tokio::test]
async fn access_denied_is_a_403_page_for_browsers_and_json_for_apis() {
    let h = harness(Options::default()).await;
    for accept in ["text/html", "application/json"] {
        let mut jar = Jar::default();
        let res = h.get("/auth/doximity/login", &jar).await;
        jar.update(&res);
        let authorize = url::Url::parse(&location(&res)).unwrap();
        let state: String = authorize
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let res = h
            .send(
                Request::get(format!(
                    "/auth/doximity/callback?error=access_denied&error_description=The+user+denied+your+request.&state={}",
                    enc(&state)
                ))
                .header("cookie", jar.header())
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let text = body(res).await;
        assert!(text.contains("denied"), "{text}");
        assert!(!text.contains(&state));
        if accept == "application/json" {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"], "access_denied");
        } else {
            assert!(text.contains("<html>"));
        }
    }
}

#[tokio::test]
async fn step_up_and_profile_once_per_session() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/profile").await;
    // Only `openid`: the profile is refused, the session stays.
    let res = h.get("/profile", &jar).await;
    assert!(body(res).await.contains("profile:read:basic"));
    // Step-up: a handler that needs the scope sends the browser to the login route with the
    // extra scope and the layer's tag.
    let res = h.get_html("/scoped", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let step_up = location(&res);
    assert!(step_up.contains("step_up="), "{step_up}");
    let mut jar = Jar::default();
    let (res, callback) = h.to_provider(&step_up, &mut jar).await;
    let url = url::Url::parse(&location(&res)).unwrap();
    let scope = url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(scope, "openid profile:read:basic");
    let userinfo = h.mock.requests(Endpoint::Userinfo);
    let res = h.get(&callback, &jar).await;
    jar.update(&res);
    assert_eq!(location(&res), "/scoped");
    // Fetched once at sign-in, then served from the session.
    assert_eq!(h.mock.requests(Endpoint::Userinfo), userinfo + 1);
    for _ in 0..3 {
        let res = h.get("/profile", &jar).await;
        let name = body(res).await;
        assert!(!name.is_empty() && !name.starts_with("error"), "{name}");
    }
    assert_eq!(h.mock.requests(Endpoint::Userinfo), userinfo + 1);
    // An invalid scope parameter is refused.
    let res = h
        .get(
            "/auth/doximity/login?scope=%22bad%5Cscope%22",
            &Jar::default(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_rate_limited_profile_fetch_does_not_fail_the_login() {
    let h = harness(Options {
        configure: |a| a.with_step_up_scopes(&"profile:read:basic".parse().unwrap()),
        ..Options::default()
    })
    .await;
    h.mock.inject(doximity_mock::Fault::UserinfoStatus(429));
    let mut jar = Jar::default();
    let (_, callback) = h
        .to_provider(
            "/auth/doximity/login?scope=profile%3Aread%3Abasic",
            &mut jar,
        )
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // On demand later, once the provider is back; then kept in the session.
    h.mock.clear_faults();
    let res = h.get("/profile", &jar).await;
    jar.update(&res);
    assert!(!body(res).await.starts_with("error"));
    let n = h.mock.requests(Endpoint::Userinfo);
    let res = h.get("/profile", &jar).await;
    assert!(!body(res).await.starts_with("error"));
    assert_eq!(h.mock.requests(Endpoint::Userinfo), n);
}

/// No session fixation: signing in always mints a new session id, even when the browser
/// already carries one (planted or its own), and the old id stops working.
#[tokio::test]
async fn signing_in_mints_a_new_session_id_and_retires_the_old_one() {
    let h = harness(Options {
        configure: |a| a.with_store(MemoryStore::new()),
        ..Options::default()
    })
    .await;
    let first = h.sign_in("/me").await;
    // The same browser signs in again, carrying the old session cookie into the callback.
    let mut jar = first.clone();
    let (_, callback) = h
        .to_provider("/auth/doximity/login?return_to=%2Fme", &mut jar)
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // The session the browser carried before is gone server-side: had the sign-in kept its
    // id, the old cookie would still open a live session.
    assert_eq!(h.get("/me", &first).await.status(), StatusCode::SEE_OTHER);
}

/// The login route forwards Doximity's `prompt` and the older `type` (the sign-in buttons'
/// Create and Verify variants); anything else is not passed on.
#[tokio::test]
async fn login_forwards_prompt_and_type() {
    let h = harness(Options::default()).await;
    let param = |url: &str, name: &str| {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let res = h
        .get(
            "/auth/doximity/login?prompt=create&type=verify",
            &Jar::default(),
        )
        .await;
    let to = location(&res);
    assert_eq!(param(&to, "prompt").as_deref(), Some("create"));
    assert_eq!(param(&to, "type").as_deref(), Some("verify"));
    let res = h
        .get(
            "/auth/doximity/login?prompt=select_account&type=x",
            &Jar::default(),
        )
        .await;
    let to = location(&res);
    assert_eq!(param(&to, "prompt"), None);
    assert_eq!(param(&to, "type"), None);
}

/// Contract v2, point 8: the login route requests the configured scopes, those the app lists
/// for step-up, and those of the layer's own (tagged) step-up link; nothing someone else added.
#[tokio::test]
async fn the_login_route_asks_only_for_allowed_scopes() {
    let scope_of = |res: &Response<Body>| {
        let url = url::Url::parse(&location(res)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let h = harness(Options {
        configure: |a| a.with_step_up_scopes(&"profile:read:basic".parse().unwrap()),
        ..Options::default()
    })
    .await;
    let jar = Jar::default();
    for (query, want) in [
        ("scope=profile%3Aread%3Aemail", "openid"),
        ("scope=colleagues%3Awrite+openid", "openid"),
        ("scope=profile%3Aread%3Abasic", "openid profile:read:basic"),
        (
            "scope=profile%3Aread%3Abasic+hipaa%3Aidentified",
            "openid profile:read:basic",
        ),
        // A made-up tag is no tag.
        ("scope=profile%3Aread%3Aemail&step_up=AAAA", "openid"),
        ("", "openid"),
    ] {
        let res = h.get(&format!("/auth/doximity/login?{query}"), &jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{query}");
        assert_eq!(scope_of(&res), want, "{query}");
    }
    // The layer's own step-up link carries a tag for exactly its scopes.
    let plain = harness(Options::default()).await;
    let jar = plain.sign_in("/me").await;
    let res = plain.get_html("/scoped", &jar).await;
    let link = location(&res);
    let res = plain.get(&link, &Jar::default()).await;
    assert_eq!(scope_of(&res), "openid profile:read:basic");
    // The same tag on other scopes is dropped.
    let tag = url::Url::parse(&format!("https://x{link}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "step_up")
        .unwrap()
        .1
        .into_owned();
    let forged = format!(
        "/auth/doximity/login?scope=openid+profile%3Aread%3Aemail&step_up={}",
        enc(&tag)
    );
    let res = plain.get(&forged, &Jar::default()).await;
    assert_eq!(scope_of(&res), "openid");
}

/// A callback with a forged `state` does not burn the real sign-in attempt.
#[tokio::test]
async fn a_forged_callback_does_not_burn_the_victims_login() {
    let h = harness(Options::default()).await;
    let (jar, callback, code) = h.to_provider_for_code().await;
    for forged in [
        format!("/auth/doximity/callback?code={}&state=forged", enc(&code)),
        format!("/auth/doximity/callback?code={}", enc(&code)),
    ] {
        let res = h.get(&forged, &jar).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{forged}");
    }
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", body(res).await);
}
