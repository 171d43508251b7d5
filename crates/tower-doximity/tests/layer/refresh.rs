//! Refreshing tokens near expiry: once, under load, and when the provider refuses or fails.

use std::sync::Arc;
use std::time::Duration;

use doximity_mock::Endpoint;
use doximity_test::oneshot::{body, set_cookies};
use http::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn refresh_near_expiry_rotates_tokens_once() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let before = h.mock.requests(Endpoint::Token);
    // 29 s into a 40 s token: skew is 10 s, no refresh yet.
    h.advance(29);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before);
    h.advance(2);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
    let mut fresh = jar.clone();
    fresh.update(&res);
    assert_ne!(fresh.0, jar.0, "the refreshed session was not sent back");
    // A late request with the old cookie is upgraded from memory, not refreshed again.
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!set_cookies(&res).is_empty());
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
    // The new session works without a provider call.
    let res = h.get("/token", &fresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_make_exactly_one_refresh() {
    let h = Arc::new(
        harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..Options::default()
        })
        .await,
    );
    let jar = h.sign_in("/me").await;
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (h, jar) = (h.clone(), jar.clone());
        tasks.push(tokio::spawn(async move {
            let res = h.get("/me", &jar).await;
            (res.status(), set_cookies(&res))
        }));
    }
    for t in tasks {
        let (status, cookies) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("__Host-doximity-tokens=")),
            "a racing request left without the new cookie"
        );
    }
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let sub = body(h.get("/me", &jar).await).await;
    h.mock.revoke_all_for(&sub);
    h.advance(35);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
}

/// Contract v2, point 7: a 5xx, a timeout, or an answer that is not JSON from the token
/// endpoint while refreshing never signs the user out, even once the access token has
/// expired; once the provider answers again, the next request refreshes once and succeeds with
/// the same cookies.
#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_session() {
    for fault in [
        doximity_mock::Fault::TokenStatus(503),
        doximity_mock::Fault::TokenStatus(500),
        doximity_mock::Fault::TokenStatus(403),
        doximity_mock::Fault::TokenGarbage,
    ] {
        let name = format!("{fault:?}");
        let h = harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..Options::default()
        })
        .await;
        let jar = h.sign_in("/me").await;
        h.mock.inject(fault);
        h.advance(35);
        let res = h.get("/me", &jar).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{name}: signed out while refresh due"
        );
        assert!(
            set_cookies(&res).is_empty(),
            "{name}: {:?}",
            set_cookies(&res)
        );
        // The access token has expired: still signed in, never sent to sign in.
        h.advance(10);
        let before = h.mock.requests(Endpoint::Token);
        let res = h.get("/me", &jar).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{name}: signed out after expiry"
        );
        assert!(set_cookies(&res).is_empty(), "{name}");
        assert_eq!(
            h.mock.requests(Endpoint::Token),
            before + 1,
            "{name}: not retried"
        );
        // The provider is back: the next request refreshes once, with the same cookies.
        h.mock.clear_faults();
        let before = h.mock.requests(Endpoint::Token);
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert!(
            set_cookies(&res)
                .iter()
                .any(|c| c.contains("doximity-tokens=")),
            "{name}: no new session cookies"
        );
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(h.mock.requests(Endpoint::Token), before + 1, "{name}");
    }
}
