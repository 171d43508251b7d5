//! The demo in a real browser: headless Chromium (through chromedriver) against the demo app
//! and its embedded mock provider over HTTPS, the provider's sign-in page clicked as a person
//! would. See `docs/html-helpers.md`.
//!
//! The demo is served behind a TLS front at `https://127.0.0.1:PORT`, the same site as the
//! mock provider (`https://127.0.0.1:OTHER_PORT`), so the session-check iframe is same-site
//! and may read the provider's cookie; its session cookie is then `__Host-`, `Secure`. The last
//! test puts the app on another site (`http://localhost`) to show what a browser that blocks
//! third-party cookies does to the check, and that the re-check cannot loop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum_app::{Demo, Env};
use doximity_mock::{Endpoint, MockProvider};
use e2e::browser::Chrome;
use e2e::tls_front::TlsFront;
use fantoccini::Locator;

/// The demo (no credentials: the embedded mock, whose sign-in page is not skipped) at `base`.
async fn demo_at(listener: tokio::net::TcpListener, base: &str) -> Demo {
    let vars: HashMap<&str, String> = HashMap::from([(
        "DOXIMITY_REDIRECT_URI",
        format!("{base}/auth/doximity/callback"),
    )]);
    let env: Env = Arc::new(move |k| vars.get(k).cloned());
    axum_app::start_on(listener, env).await.unwrap()
}

/// The demo behind a TLS front: `https://127.0.0.1:PORT`, same site as the provider.
async fn demo() -> (Demo, String, TlsFront) {
    let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", front.local_addr().unwrap());
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    let demo = demo_at(app, &base).await;
    (demo, base, TlsFront::start(front, app_addr))
}

async fn chrome(demo: &Demo, front: &TlsFront) -> Option<Chrome> {
    Chrome::start(&[mock(demo).ca_pem(), front.ca_pem.as_bytes()]).await
}

fn mock(demo: &Demo) -> &MockProvider {
    demo.mock.as_ref().expect("mock mode")
}

/// `/me` → the mock's sign-in page → Approve → back on `/me`. Returns the `sub` shown.
async fn sign_in(chrome: &Chrome, base: &str, issuer: &str) -> String {
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize"))
        .await;
    chrome
        .wait_for("button.approve")
        .await
        .click()
        .await
        .unwrap();
    chrome.wait_for_url(&format!("{base}/me")).await;
    let me: serde_json::Value = serde_json::from_str(&chrome.text().await).unwrap();
    me["sub"].as_str().unwrap().to_owned()
}

async fn session_state_attribute(chrome: &Chrome) -> Option<String> {
    chrome.root_attribute("data-doximity-session").await
}

#[tokio::test]
async fn approving_on_the_sign_in_page_lands_back_on_me_showing_the_sub() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for("a.doximity-signin").await;
    chrome.screenshot("home").await;

    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize?"))
        .await;
    let page = chrome.text().await;
    assert!(
        page.contains("Sign in with Doximity (mock)") && page.contains("doximity-demo-client"),
        "{page}"
    );
    chrome.screenshot("mock-signin").await;
    chrome
        .wait_for("button.approve")
        .await
        .click()
        .await
        .unwrap();

    chrome.wait_for_url(&format!("{base}/me")).await;
    assert_eq!(chrome.url().await, format!("{base}/me"));
    let me: serde_json::Value = serde_json::from_str(&chrome.text().await).unwrap();
    assert_eq!(me["sub"], mock(&demo).clinicians()[0].sub);
    chrome.screenshot("me").await;

    chrome.goto(&format!("{base}/")).await;
    let home = chrome.text().await;
    assert!(home.contains(&format!("Signed in as {}", me["sub"].as_str().unwrap())));
    chrome.screenshot("home-signed-in").await;
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn denying_shows_a_clear_error_page_and_leaves_no_session() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize"))
        .await;
    chrome.wait_for("button.deny").await.click().await.unwrap();

    chrome
        .wait_for_url(&format!("{base}/auth/doximity/callback?"))
        .await;
    let page = chrome.text().await;
    assert!(page.contains("403"), "{page}");
    assert!(
        page.contains("denied"),
        "the page says what happened: {page}"
    );
    assert!(
        chrome.client.find(Locator::Css("a[href]")).await.is_ok(),
        "a way back"
    );

    // No session: /me sends the browser to sign in again.
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize"))
        .await;
    chrome.wait_for("button.approve").await;
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn signing_out_ends_the_app_session_and_the_provider_session() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    let sub = sign_in(&chrome, &base, &issuer).await;

    chrome.goto(&format!("{base}/")).await;
    chrome
        .wait_for("form[action='/auth/doximity/logout'] button")
        .await
        .click()
        .await
        .unwrap();
    // App logout → the provider's end_session_endpoint → back home, signed out.
    chrome
        .wait_until("the signed-out home page", || async {
            chrome.url().await.starts_with(&format!("{base}/"))
                && chrome
                    .client
                    .find(Locator::Css("a.doximity-signin"))
                    .await
                    .is_ok()
        })
        .await;
    assert!(!chrome.text().await.contains(&sub));

    // /me no longer shows the user, and the provider asks again: had its session survived,
    // it would have answered at once (the client is already approved) without this page.
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize"))
        .await;
    chrome.wait_for("button.approve").await;
    assert!(!chrome.text().await.contains(&format!("\"sub\":\"{sub}\"")));
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn the_session_check_reports_unchanged_then_changed_after_sign_out_in_another_tab() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    sign_in(&chrome, &base, &issuer).await;

    chrome.goto(&format!("{base}/session")).await;
    chrome
        .wait_until("the session check to answer unchanged", || async {
            session_state_attribute(&chrome).await.as_deref() == Some("unchanged")
        })
        .await;
    chrome.screenshot("session-unchanged").await;
    let first_tab = chrome.client.window().await.unwrap();

    // Another tab signs out (the app, then the provider's end_session_endpoint).
    let second = chrome.client.new_window(true).await.unwrap();
    chrome.client.switch_to_window(second.handle).await.unwrap();
    chrome.goto(&format!("{base}/")).await;
    chrome
        .wait_for("form[action='/auth/doximity/logout'] button")
        .await
        .click()
        .await
        .unwrap();
    chrome
        .wait_until("the signed-out home page", || async {
            chrome
                .client
                .find(Locator::Css("a.doximity-signin"))
                .await
                .is_ok()
        })
        .await;

    chrome.client.switch_to_window(first_tab).await.unwrap();
    chrome
        .wait_until("the session check to answer changed", || async {
            session_state_attribute(&chrome).await.as_deref() == Some("changed")
        })
        .await;
    let shown = chrome
        .client
        .execute(
            "return getComputedStyle(document.getElementById('session-status'), '::after').content",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        shown.as_str().unwrap().contains("ended or changed"),
        "the page tells the person: {shown}"
    );
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn on_the_home_page_a_changed_session_is_rechecked_through_the_login_route() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    sign_in(&chrome, &base, &issuer).await;
    chrome.goto(&format!("{base}/")).await;
    chrome
        .wait_until("the session check to answer unchanged", || async {
            session_state_attribute(&chrome).await.as_deref() == Some("unchanged")
        })
        .await;

    // The provider ends its sessions on its own (signed out elsewhere).
    mock(&demo).end_provider_sessions();

    // The default action re-checks silently (`prompt=none`) through the login route; the
    // provider, whose session is gone, answers `login_required`, so the session here ends too
    // and the browser comes back to the home page, signed out.
    chrome.wait_for("a.doximity-signin").await;
    assert_eq!(chrome.url().await, format!("{base}/"));
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{issuer}/oauth/authorize"))
        .await;
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn the_share_button_is_accessible_and_reaches_the_share_endpoint_with_its_parameters() {
    let (demo, base, front) = demo().await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = chrome(&demo, &front).await else {
        return;
    };
    chrome.goto(&format!("{base}/")).await;
    let button = chrome.wait_for("a.doximity-share-button").await;
    assert!(button.is_displayed().await.unwrap());
    let (role, name) = chrome.accessibility(&button).await;
    assert_eq!(role, "link");
    assert_eq!(name, "Share via Doximity");

    let message = "Sign in with Doximity® from Rust — tower, axum & tonic";
    let subject = "doximity-rs demo";
    assert_eq!(
        button.attr("data-url").await.unwrap().as_deref(),
        Some(format!("{base}/").as_str())
    );
    assert_eq!(
        button.attr("data-message").await.unwrap().as_deref(),
        Some(message)
    );
    assert_eq!(
        button.attr("data-subject").await.unwrap().as_deref(),
        Some(subject)
    );
    // The property is the URL the browser resolved from the attribute.
    let href = url::Url::parse(&button.prop("href").await.unwrap().unwrap()).unwrap();
    assert_eq!(&href[..url::Position::AfterPath], format!("{issuer}/share"));
    let params: Vec<(String, String)> = href.query_pairs().into_owned().collect();
    assert_eq!(
        params,
        [
            ("url".to_owned(), format!("{base}/")),
            ("message".to_owned(), message.to_owned()),
            ("subject".to_owned(), subject.to_owned()),
        ]
    );
    assert!(
        href.query().unwrap().contains("%26%20tonic") && !href.query().unwrap().contains('+'),
        "& and spaces are percent-encoded: {href}"
    );

    button.click().await.unwrap();
    chrome.wait_for_url(&format!("{issuer}/share?")).await;
    let page = chrome.text().await;
    assert!(page.contains("Share on Doximity (mock)"), "{page}");
    for shown in [format!("{base}/").as_str(), message, subject] {
        assert!(
            page.contains(shown),
            "the share page shows {shown:?}: {page}"
        );
    }
    chrome.screenshot("share").await;
    chrome.close().await;
    demo.shutdown().await;
}

#[tokio::test]
async fn across_sites_the_blocked_provider_cookie_reads_as_changed_and_the_recheck_runs_once() {
    // The app on another site than the provider, as in production.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", app.local_addr().unwrap().port());
    let demo = demo_at(app, &base).await;
    let issuer = mock(&demo).issuer();
    let Some(chrome) = Chrome::start(&[mock(&demo).ca_pem()]).await else {
        return;
    };
    sign_in(&chrome, &base, &issuer).await;
    let authorizations = mock(&demo).requests(Endpoint::Authorize);

    // Chromium withholds the provider's cookie from the cross-site iframe, so the check
    // answers changed; the default action re-checks once through the login route, the
    // provider (its session alive, first-party at the top level) signs the user straight back
    // in, and on the way back the re-check is skipped instead of looping.
    chrome.goto(&format!("{base}/")).await;
    chrome
        .wait_until("the re-check to be skipped on return", || async {
            chrome
                .root_attribute("data-doximity-recheck")
                .await
                .as_deref()
                == Some("skipped")
        })
        .await;
    assert_eq!(chrome.url().await, format!("{base}/"));
    assert_eq!(
        session_state_attribute(&chrome).await.as_deref(),
        Some("changed")
    );
    assert!(
        chrome.text().await.contains("Signed in as"),
        "still signed in"
    );
    let authorize_pages = mock(&demo).requests(Endpoint::Authorize) - authorizations;
    assert_eq!(authorize_pages, 1, "exactly one silent re-check, no loop");
    chrome.close().await;
    demo.shutdown().await;
}
