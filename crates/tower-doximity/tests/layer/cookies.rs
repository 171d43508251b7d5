//! The session cookies: tampering, binding, caching, key rotation, and no secret in `Debug`.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity::Client;
use doximity_mock::MockProvider;
use doximity_test::oneshot::{self, Jar, body, set_cookies};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_doximity::{DoximityAuth, DoximityIdentity};

use crate::harness::*;

#[tokio::test]
async fn tampered_truncated_or_foreign_session_cookies_are_simply_unauthenticated() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    // Both layers have opened these cookies, so their session caches hold them: a variant
    // must not be answered from a cache (one byte differs, or another layer's key opened it).
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    let other = harness(Options::default()).await;
    let foreign = other.sign_in("/me").await;
    assert_eq!(other.get("/me", &foreign).await.status(), StatusCode::OK);
    let mut variants = Vec::new();
    let mut t = jar.clone();
    for v in t.0.values_mut() {
        v.replace_range(10..14, "BBBB");
    }
    variants.push(t);
    for at in [0, 1] {
        // The first or the last character (the tag's) changed, the length kept.
        let mut t = jar.clone();
        for v in t.0.values_mut() {
            let i = if at == 0 { 0 } else { v.len() - 1 };
            let c = if v.as_bytes()[i] == b'A' { "B" } else { "A" };
            v.replace_range(i..=i, c);
        }
        variants.push(t);
    }
    let mut t = jar.clone();
    for v in t.0.values_mut() {
        v.truncate(v.len() / 2);
    }
    variants.push(t);
    variants.push(foreign);
    let mut t = Jar::default();
    t.0.insert("__Host-doximity-session".into(), "%%%not base64".into());
    variants.push(t);
    for bad in variants {
        let res = h
            .send(
                Request::get("/me")
                    .header("cookie", bad.header())
                    .header("accept", "application/json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    }
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tokens_cookie_serves_only_the_session_it_was_sealed_for() {
    let h = harness(Options::default()).await;
    let a = h.sign_in("/me").await;
    let b = h.sign_in("/me").await;
    // Each session reads its own tokens: the access token and the ID-token claims.
    for jar in [&a, &b] {
        assert_ne!(body(h.get("/token", jar).await).await, "0");
        assert_eq!(body(h.get("/iss", jar).await).await, h.mock.issuer());
    }
    // A's identity with B's tokens cookie (both sealed with the same key): no token, no
    // claims of B.
    let mut mixed = a.clone();
    let tokens = "__Host-doximity-tokens";
    mixed.0.insert(tokens.into(), b.0[tokens].clone());
    assert_eq!(h.get("/me", &mixed).await.status(), StatusCode::OK);
    assert_eq!(body(h.get("/token", &mixed).await).await, "0");
    assert_eq!(body(h.get("/iss", &mixed).await).await, "");
}

#[tokio::test]
async fn plain_http_redirect_uri_drops_the_host_prefix() {
    let h = harness(Options {
        redirect: "http://127.0.0.1:3000/auth/doximity/callback",
        ..Options::default()
    })
    .await;
    let res = h.get("/auth/doximity/login", &Jar::default()).await;
    let c = &set_cookies(&res)[0];
    assert!(c.starts_with("doximity-login="), "{c}");
    assert!(!c.contains("Secure"));
    let jar = h.sign_in("/me").await;
    assert!(jar.0.contains_key("doximity-session"));
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let debug = format!("{:?} {:?}", h.auth, h.auth.layer());
    for v in jar.0.values() {
        assert!(!debug.contains(v.as_str()));
    }
    assert!(debug.contains("[redacted]"));
    // The identity's Debug: no token, no session id.
    let app = Router::new()
        .route(
            "/dbg",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                let token = user.access_token().unwrap();
                let d = format!("{user:?}");
                assert!(!d.contains(token.secret().as_str()));
                d
            }),
        )
        .layer(h.auth.layer());
    let res = oneshot::send(&app, oneshot::get("/dbg", &jar)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = body(res).await;
    assert!(d.contains("DoximityIdentity"), "{d}");
}

/// Contract v2, point 5: every response that carries a session `Set-Cookie` is `no-store`.
#[tokio::test]
async fn responses_that_set_session_cookies_are_never_cached() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(400)),
        ..Options::default()
    })
    .await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.headers()["cache-control"], "no-store", "callback");
    jar.update(&res);
    // A touch (last_seen written back) on the fast path.
    h.advance(61);
    let res = h.get("/me", &jar).await;
    assert!(!set_cookies(&res).is_empty(), "no touch");
    assert_eq!(res.headers()["cache-control"], "no-store", "touch");
    jar.update(&res);
    // A refresh.
    h.advance(320);
    let res = h.get("/me", &jar).await;
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.contains("doximity-tokens=")),
        "no refresh"
    );
    assert_eq!(res.headers()["cache-control"], "no-store", "refresh");
    jar.update(&res);
    // A request that sets no cookie is left alone.
    let res = h.get("/me", &jar).await;
    assert!(set_cookies(&res).is_empty());
    assert!(res.headers().get("cache-control").is_none());
    // Logout.
    let res = h.logout(&jar).await;
    assert_eq!(res.headers()["cache-control"], "no-store", "logout");
    h.auth.drain().await;
}

/// Contract v2, points 1 and 2: a ring of cookie keys, newest first; a cookie opens only for
/// the issuer and client it was sealed for.
#[tokio::test]
async fn cookie_keys_rotate_and_bind_to_issuer_and_client() {
    let (old, new) = (
        tower_doximity::Key::generate(),
        tower_doximity::Key::generate(),
    );
    let h = harness(Options::default()).await;
    let app = |auth: DoximityAuth| app_with(&auth);
    let sealed_by_old = app(h.auth.clone().with_cookie_keys([old.clone()]));
    let mut jar = Jar::default();
    oneshot::sign_in(&sealed_by_old, &h.browser, "/auth/doximity/login", &mut jar).await;
    let status = |app: Router, jar: Jar| async move {
        app.oneshot(
            Request::get("/token")
                .header("cookie", jar.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
    };
    assert_eq!(
        status(sealed_by_old.clone(), jar.clone()).await,
        StatusCode::OK
    );
    // Rotated: the new key first, the old one still listed: both open (the tokens too).
    let rotated = app(h.auth.clone().with_cookie_keys([new.clone(), old.clone()]));
    assert_eq!(status(rotated, jar.clone()).await, StatusCode::OK);
    // The old key dropped: not signed in, never a 500.
    let dropped = app(h.auth.clone().with_cookie_keys([new.clone()]));
    assert_eq!(status(dropped, jar.clone()).await, StatusCode::UNAUTHORIZED);
    // The same key, another client id or another issuer: not signed in.
    let demo = h.mock.client();
    let other_client = Client::discover(doximity_test::config(
        &h.mock,
        "another-client",
        &demo.client_secret,
        REDIRECT,
    ))
    .await
    .unwrap();
    let other_app = app(DoximityAuth::new(other_client).with_cookie_keys([old.clone()]));
    assert_eq!(
        status(other_app, jar.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let other_mock = MockProvider::builder().start().await.unwrap();
    let other_issuer = Client::discover(doximity_test::config(
        &other_mock,
        &demo.client_id,
        &demo.client_secret,
        REDIRECT,
    ))
    .await
    .unwrap();
    let other_app = app(DoximityAuth::new(other_issuer).with_cookie_keys([old]));
    assert_eq!(status(other_app, jar).await, StatusCode::UNAUTHORIZED);
}
