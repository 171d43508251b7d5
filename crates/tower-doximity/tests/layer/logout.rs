//! Signing out: revocation, same-origin POSTs only, copies of old cookies, a failing store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use doximity_mock::Endpoint;
use doximity_test::oneshot::{Jar, body, location, set_cookies};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_doximity::MemoryStore;

use crate::harness::*;

#[tokio::test]
async fn logout_destroys_the_session_revokes_and_redirects_to_the_provider() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let revokes = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Only the layer's own cookies are deleted: no `Clear-Site-Data` by default.
    assert!(res.headers().get("clear-site-data").is_none());
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cleared = set_cookies(&res);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-doximity-session=") && c.contains("Max-Age=0"))
    );
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-doximity-tokens=") && c.contains("Max-Age=0"))
    );
    let url = url::Url::parse(&location(&res)).unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth/logout", h.mock.issuer()))
    );
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(q["post_logout_redirect_uri"], AFTER_LOGOUT);
    assert!(q["state"].len() >= 22);
    // The provider accepts it.
    let at = h.browser.get(url.as_str()).send().await.unwrap();
    assert!(at.status().is_redirection());
    h.auth.drain().await;
    assert_eq!(h.mock.requests(Endpoint::Revoke), revokes + 1);
    // Without a session: home, no provider call.
    let res = h.logout(&Jar::default()).await;
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn a_failing_revocation_never_blocks_logout() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    h.mock.inject(doximity_mock::Fault::RevokeStatus(400));
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// Contract v2, point 3: sign-out is a same-origin POST; anything else leaves the session.
#[tokio::test]
async fn logout_signs_out_only_on_a_same_origin_post() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let post = |jar: &Jar, headers: &[(&str, &str)]| {
        let mut r = Request::post("/auth/doximity/logout").header("cookie", jar.header());
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(Body::empty()).unwrap()
    };
    let app = "https://app.example";
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "none")],
        // The browser's own word wins over a matching Origin.
        &[("sec-fetch-site", "cross-site"), ("origin", app)],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("origin", "https://app.example.evil.example")],
        &[("origin", "http://app.example")],
        &[("referer", "https://evil.example/page")],
        &[("referer", "not a url")],
    ];
    for headers in refused {
        let res = h.send(post(&jar, headers)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(set_cookies(&res).is_empty(), "{headers:?}");
        assert_eq!(
            h.get("/me", &jar).await.status(),
            StatusCode::OK,
            "{headers:?}"
        );
    }
    // GET answers a page whose button POSTs; HEAD its headers. Neither signs out.
    let res = h.get("/auth/doximity/logout", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    let page = body(res).await;
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(page.contains("action=\"/auth/doximity/logout\""), "{page}");
    let res = h
        .send(
            Request::head("/auth/doximity/logout")
                .header("cookie", jar.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // Signed out: the browser's word, or (without it) the app's own Origin or Referer.
    let accepted: &[&[(&str, &str)]] = &[
        &[("sec-fetch-site", "same-origin")],
        &[("origin", app)],
        &[("referer", "https://app.example/account?x=1")],
    ];
    for headers in accepted {
        let jar = h.sign_in("/me").await;
        let res = h.send(post(&jar, headers)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{headers:?}");
        assert_eq!(
            h.get("/me", &jar).await.status(),
            StatusCode::SEE_OTHER,
            "{headers:?}"
        );
    }
    h.auth.drain().await;
}

/// Contract v2, point 4: after a sign-out, a copy of the cookies made before it is refused,
/// in the default cookie-store mode too, including one that was about to be refreshed.
#[tokio::test]
async fn a_copy_of_the_cookies_is_refused_after_logout() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let copy = jar.clone();
    assert_eq!(h.logout(&jar).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &copy).await.status(), StatusCode::SEE_OTHER);
    // Refresh due: still refused, and no refresh at the provider.
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    assert_eq!(h.get("/me", &copy).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.mock.requests(Endpoint::Token), before);
    // Another layer made from the same `DoximityAuth` (another router) refuses it too.
    let other = app_with(&h.auth);
    let res = other
        .oneshot(
            Request::get("/me")
                .header("cookie", copy.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// A store whose deletes fail while `failing` is set.
#[derive(Clone, Default)]
struct FlakyDeletes {
    inner: MemoryStore,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl tower_doximity::SessionStore for FlakyDeletes {
    fn load<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
    ) -> tower_doximity::StoreFuture<'a, Option<tower_doximity::StoredSession>> {
        self.inner.load(id)
    }
    fn store<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
        session: &'a tower_doximity::StoredSession,
    ) -> tower_doximity::StoreFuture<'a, ()> {
        self.inner.store(id, session)
    }
    fn delete<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
    ) -> tower_doximity::StoreFuture<'a, ()> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(tower_doximity::StoreError::new("the store is down")) });
        }
        self.inner.delete(id)
    }
}

/// Logout fails closed: when the store cannot delete the session, the answer is 503, no
/// cookie is cleared, nothing is revoked, and the session is still whole; once the store is
/// back, signing out works.
#[tokio::test]
async fn logout_fails_closed_when_the_store_fails() {
    let store = FlakyDeletes::default();
    let failing = store.failing.clone();
    let h = harness(Options {
        extra: Some(Box::new(move |a| a.with_store(store))),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    failing.store(true, Ordering::SeqCst);
    let revokes = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    h.auth.drain().await;
    assert_eq!(
        h.mock.requests(Endpoint::Revoke),
        revokes,
        "revoked while the session lives"
    );
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    failing.store(false, Ordering::SeqCst);
    assert_eq!(h.logout(&jar).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// A revocation that fails while the provider is unavailable is tried again in the background,
/// a bounded number of times (three), and never holds up the sign-out.
#[tokio::test]
async fn a_failed_revocation_is_retried_in_the_background_a_bounded_number_of_times() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    h.mock.inject(doximity_mock::Fault::RevokeStatus(503));
    let before = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // `drain` waits for the background task to give up (no sleep here).
    h.auth.drain().await;
    assert_eq!(h.mock.requests(Endpoint::Revoke), before + 3);
}
