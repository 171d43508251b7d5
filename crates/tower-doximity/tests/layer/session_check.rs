//! The session check's silent re-check (`prompt=none`).

use doximity_test::oneshot::{location, set_cookies};
use http::StatusCode;

use crate::harness::*;

/// The session check's silent re-check (`prompt=none`): when the provider has no session, the
/// local session ends and the browser goes back to `return_to`, not to an error page.
#[tokio::test]
async fn a_silent_recheck_that_finds_no_provider_session_signs_out_here() {
    let h = harness(Options::default()).await;
    let mut jar = h.sign_in("/me").await;
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // The provider session is gone (the harness's provider client keeps no cookies, and
    // auto-approve is off), so `prompt=none` answers `login_required`.
    h.mock.set_auto_approve(None);
    let callback = h.silent_recheck(&mut jar, "same-origin").await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/me");
    jar.update(&res);
    assert_eq!(
        h.get("/me", &jar).await.status(),
        StatusCode::SEE_OTHER,
        "signed out here too"
    );
}

/// A cross-site link to `login?prompt=none` cannot end a session, even when the provider has
/// none; the app's own session check (same-origin) can.
#[tokio::test]
async fn only_a_same_origin_silent_recheck_ends_a_session() {
    let h = harness(Options::default()).await;
    let mut jar = h.sign_in("/me").await;
    h.mock.set_auto_approve(None);
    for site in ["cross-site", "same-site", "none"] {
        let callback = h.silent_recheck(&mut jar, site).await;
        let res = h.get(&callback, &jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{site}");
        assert!(
            !set_cookies(&res)
                .iter()
                .any(|c| c.contains("doximity-session=") && c.contains("Max-Age=0")),
            "{site}"
        );
        assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK, "{site}");
    }
}
