//! The session stores: the store suite through the layer, `MemoryStore`, signing a user out everywhere.

use std::time::Duration;

use doximity_mock::Endpoint;
use doximity_test::oneshot::body;
use http::StatusCode;
use tower_doximity::MemoryStore;

use crate::harness::*;
use crate::redis_server;

#[tokio::test]
async fn memory_store_keeps_only_an_id_in_the_cookie() {
    let h = harness(Options {
        configure: |a| a.with_store(MemoryStore::new()),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    assert!(jar.0.contains_key("__Host-doximity-session"));
    assert!(!jar.0.contains_key("__Host-doximity-tokens"));
    assert!(jar.0["__Host-doximity-session"].len() < 200);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    assert_ne!(body(h.get("/token", &jar).await).await, "0");
    // Logout deletes it server-side: the old cookie no longer works.
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// One behaviour suite, run against every backend: sign-in, a signed-in request without a
/// provider call, tampering, refresh once, idle timeout, logout.
#[tokio::test]
async fn store_behaviour_suite_runs_against_cookie_memory_and_redis_stores() {
    let redis = redis_server::RedisServer::shared().await;
    let backends = store_backends(redis.as_ref(), "suite").await;
    for (name, options) in backends {
        let h = harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..options
        })
        .await;
        let jar = h.sign_in("/me").await;
        let before = counts(&h.mock);
        assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK, "{name}");
        assert_eq!(counts(&h.mock), before, "{name}");
        let mut bad = jar.clone();
        for v in bad.0.values_mut() {
            v.replace_range(6..10, "CCCC");
        }
        assert_eq!(
            h.get("/me", &bad).await.status(),
            StatusCode::SEE_OTHER,
            "{name}"
        );
        h.advance(35);
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(h.mock.requests(Endpoint::Token), before[0] + 1, "{name}");
        let mut fresh = jar.clone();
        fresh.update(&res);
        assert_eq!(
            h.get("/token", &fresh).await.status(),
            StatusCode::OK,
            "{name}"
        );
        h.advance(31 * 60);
        assert_eq!(
            h.get("/me", &fresh).await.status(),
            StatusCode::SEE_OTHER,
            "{name}"
        );
        // Server-side stores end the session at logout, even for a copy of the cookie.
        if name != "cookie" {
            let jar = h.sign_in("/me").await;
            let res = h.logout(&jar).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{name}");
            assert_eq!(
                h.get("/me", &jar).await.status(),
                StatusCode::SEE_OTHER,
                "{name}"
            );
            h.auth.drain().await;
        }
    }
}

/// `sign_out_user` ends every session of one user in each store: deleted in the memory and
/// Redis stores, refused in process for the cookie store; the user can sign in again.
#[tokio::test]
async fn an_operator_signs_out_every_session_of_a_user_in_every_store() {
    let redis = redis_server::RedisServer::shared().await;
    let backends = store_backends(redis.as_ref(), "operator").await;
    for (name, options) in backends {
        let h = harness(options).await;
        let first = h.sign_in("/me").await;
        let second = h.sign_in("/me").await;
        let sub = body(h.get("/me", &first).await).await;
        assert_eq!(body(h.get("/me", &second).await).await, sub, "{name}");
        let deleted = h.auth.sign_out_user(&sub).await.unwrap();
        assert_eq!(deleted, if name == "cookie" { 0 } else { 2 }, "{name}");
        for jar in [&first, &second] {
            assert_eq!(
                h.get("/me", jar).await.status(),
                StatusCode::SEE_OTHER,
                "{name}"
            );
        }
        // A later sign-in is a new session, not refused.
        h.advance(1);
        let again = h.sign_in("/me").await;
        assert_eq!(
            h.get("/me", &again).await.status(),
            StatusCode::OK,
            "{name}"
        );
    }
}
