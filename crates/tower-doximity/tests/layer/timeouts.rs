//! The idle and absolute session timeouts.

use std::time::Duration;

use doximity_test::oneshot::set_cookies;
use http::StatusCode;

use crate::harness::*;

#[tokio::test]
async fn idle_timeout_ends_the_session_and_activity_extends_it() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let mut jar2 = jar.clone();
    // Activity every 20 minutes keeps the session alive (last_seen is written back).
    for _ in 0..3 {
        h.advance(20 * 60);
        let res = h.get("/me", &jar2).await;
        assert_eq!(res.status(), StatusCode::OK);
        jar2.update(&res);
    }
    // The original cookie was idle for an hour.
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    h.advance(31 * 60);
    assert_eq!(h.get("/me", &jar2).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn absolute_timeout_ends_the_session() {
    let h = harness(Options {
        configure: |a| {
            a.with_idle_timeout(Duration::from_secs(24 * 3600))
                .with_absolute_timeout(Duration::from_secs(3600))
        },
        ttl: Some(Duration::from_secs(7200)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    h.advance(3599);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    h.advance(1);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
}
