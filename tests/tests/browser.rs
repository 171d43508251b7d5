//! The demo in a real browser: headless Chromium (through chromedriver) against the demo app
//! and its embedded mock provider, the provider's sign-in page clicked as a person would. See
//! `docs/html-helpers.md`.
//!
//! The embedded mock serves the pages a browser opens over plain HTTP on loopback
//! (`http://127.0.0.1:OTHER_PORT`), so the newcomer tests run the demo exactly as
//! `cargo run -p axum-app` does, in a stock browser: a fresh profile, no CA installed, no
//! certificate flag. The app at `http://127.0.0.1:PORT` is then the same site as those pages,
//! so the session-check iframe may read the provider's cookie. Some tests serve the app behind
//! a TLS front at `https://127.0.0.1:PORT` (its session cookie is then `__Host-`, `Secure`),
//! whose CA the browser trusts; there the provider's `http` pages are another site (sites are
//! schemeful), so the home page's session check answers `changed` and re-checks once, as
//! across sites ([`settle_home`]). The last test puts the app on another site
//! (`http://localhost`) to show what a browser that blocks third-party cookies does to the
//! check, and that the re-check cannot loop.
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

/// The demo exactly as `cargo run -p axum-app` starts it (no variable set), on a free port:
/// `http://127.0.0.1:PORT`.
async fn demo_as_run() -> (Demo, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let env: Env = Arc::new(|_| None);
    (axum_app::start_on(listener, env).await.unwrap(), base)
}

/// A test's demo, its base URL, the provider's browser pages, the browser, and the TLS front
/// when there is one.
type InBrowser = (Demo, String, String, Chrome, Option<TlsFront>);

/// Starts a browser for `demo` at `base`: one that trusts the TLS front's CA when there is a
/// front (and nothing of the mock's: its browser pages are plain HTTP on loopback), else a
/// stock one. `None` when no browser is available: the test then skips.
async fn in_browser(demo: Demo, base: String, front: Option<TlsFront>) -> Option<InBrowser> {
    let pages = mock(&demo).browser_base();
    let chrome = match &front {
        Some(front) => Chrome::start(&[front.ca_pem.as_bytes()]).await?,
        None => Chrome::stock().await?,
    };
    Some((demo, base, pages, chrome, front))
}

/// [`in_browser`] with the demo behind a TLS front ([`demo`]).
async fn behind_front() -> Option<InBrowser> {
    let (demo, base, front) = demo().await;
    in_browser(demo, base, Some(front)).await
}

/// [`in_browser`] with the demo as `cargo run -p axum-app` starts it ([`demo_as_run`]), in a
/// stock browser.
async fn as_run() -> Option<InBrowser> {
    let (demo, base) = demo_as_run().await;
    in_browser(demo, base, None).await
}

/// [`as_run`], signed in through the mock's page.
async fn signed_in_as_run() -> Option<InBrowser> {
    let (demo, base, pages, chrome, front) = as_run().await?;
    sign_in(&chrome, &base, &pages).await;
    Some((demo, base, pages, chrome, front))
}

/// Closes the browser, then stops the demo.
async fn finish(chrome: Chrome, demo: Demo) {
    chrome.close().await;
    demo.shutdown().await;
}

fn mock(demo: &Demo) -> &MockProvider {
    demo.mock.as_ref().expect("mock mode")
}

/// Opens `/me` signed out: the browser lands on the mock's sign-in page.
async fn open_me_at_the_sign_in_page(chrome: &Chrome, base: &str, pages: &str) {
    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{pages}/oauth/authorize"))
        .await;
}

/// `/me` → the mock's sign-in page → Approve → back on `/me`. Returns the `sub` shown.
async fn sign_in(chrome: &Chrome, base: &str, pages: &str) -> String {
    open_me_at_the_sign_in_page(chrome, base, pages).await;
    chrome.click("button.approve").await;
    chrome.wait_for_url(&format!("{base}/me")).await;
    let me: serde_json::Value = serde_json::from_str(&chrome.text().await).unwrap();
    me["sub"].as_str().unwrap().to_owned()
}

/// Opens the home page of a signed-in person whose session check is cross-site (the app behind
/// the TLS front, or on another site) and waits for its one silent re-check to be done (back home, the next one
/// skipped), so that the page no longer navigates by itself.
async fn settle_home(chrome: &Chrome, base: &str) {
    chrome.goto(&format!("{base}/")).await;
    chrome
        .wait_until("the home page's re-check to settle", || async {
            chrome
                .root_attribute("data-doximity-recheck")
                .await
                .as_deref()
                == Some("skipped")
        })
        .await;
    assert_eq!(chrome.url().await, format!("{base}/"));
}

async fn session_state_attribute(chrome: &Chrome) -> Option<String> {
    chrome.root_attribute("data-doximity-session").await
}

/// Waits for the signed-out home page at `base`, which shows the sign-in link `sign_in_css`.
async fn wait_for_signed_out_home(chrome: &Chrome, base: &str, sign_in_css: &str) {
    chrome
        .wait_until("the signed-out home page", || async {
            chrome.url().await.starts_with(&format!("{base}/")) && chrome.has(sign_in_css).await
        })
        .await;
}

/// Waits for the page's session check to answer `state` (`unchanged` or `changed`).
async fn wait_for_session_state(chrome: &Chrome, state: &str) {
    chrome
        .wait_until(&format!("the session check to answer {state}"), || async {
            session_state_attribute(chrome).await.as_deref() == Some(state)
        })
        .await;
}

#[tokio::test]
async fn approving_on_the_sign_in_page_lands_back_on_me_showing_the_sub() {
    let Some((demo, base, pages, chrome, _front)) = behind_front().await else {
        return;
    };
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for("a.doximity-signin").await;
    chrome.screenshot("home").await;

    chrome.goto(&format!("{base}/me")).await;
    chrome
        .wait_for_url(&format!("{pages}/oauth/authorize?"))
        .await;
    let page = chrome.text().await;
    assert!(
        page.contains("Sign in with Doximity (mock)") && page.contains("doximity-demo-client"),
        "{page}"
    );
    chrome.screenshot("mock-signin").await;
    chrome.click("button.approve").await;

    chrome.wait_for_url(&format!("{base}/me")).await;
    assert_eq!(chrome.url().await, format!("{base}/me"));
    let me: serde_json::Value = serde_json::from_str(&chrome.text().await).unwrap();
    assert_eq!(me["sub"], mock(&demo).clinicians()[0].sub);
    chrome.screenshot("me").await;

    settle_home(&chrome, &base).await;
    let home = chrome.text().await;
    assert!(home.contains("You are signed in"), "{home}");
    assert!(
        home.contains(&format!(
            "Signed in as Doximity® member {}",
            me["sub"].as_str().unwrap()
        )),
        "{home}"
    );
    chrome.screenshot("home-signed-in").await;
    finish(chrome, demo).await;
}

#[tokio::test]
async fn denying_shows_a_clear_error_page_and_leaves_no_session() {
    let Some((demo, base, pages, chrome, _front)) = behind_front().await else {
        return;
    };
    open_me_at_the_sign_in_page(&chrome, &base, &pages).await;
    chrome.click("button.deny").await;

    chrome
        .wait_for_url(&format!("{base}/auth/doximity/callback?"))
        .await;
    let page = chrome.text().await;
    assert!(
        page.contains("access denied"),
        "the page says what happened: {page}"
    );
    assert!(chrome.has("a[href]").await, "a way back");

    // No session: /me sends the browser to sign in again.
    open_me_at_the_sign_in_page(&chrome, &base, &pages).await;
    chrome.wait_for("button.approve").await;
    finish(chrome, demo).await;
}

#[tokio::test]
async fn signing_out_ends_the_app_session_and_the_provider_session() {
    let Some((demo, base, pages, chrome, _front)) = behind_front().await else {
        return;
    };
    let sub = sign_in(&chrome, &base, &pages).await;

    settle_home(&chrome, &base).await;
    chrome
        .click("form[action='/auth/doximity/logout'] button")
        .await;
    // App logout → the provider's end_session_endpoint → back home, signed out.
    wait_for_signed_out_home(&chrome, &base, "a.doximity-signin").await;
    assert!(!chrome.text().await.contains(&sub));

    // /me no longer shows the user, and the provider asks again: had its session survived,
    // it would have answered at once (the client is already approved) without this page.
    open_me_at_the_sign_in_page(&chrome, &base, &pages).await;
    chrome.wait_for("button.approve").await;
    assert!(!chrome.text().await.contains(&format!("\"sub\":\"{sub}\"")));
    finish(chrome, demo).await;
}

#[tokio::test]
async fn the_session_check_reports_unchanged_then_changed_after_sign_out_in_another_tab() {
    let Some((demo, base, _pages, chrome, _front)) = signed_in_as_run().await else {
        return;
    };

    chrome.goto(&format!("{base}/session")).await;
    wait_for_session_state(&chrome, "unchanged").await;
    chrome.screenshot("session-unchanged").await;
    let first_tab = chrome.client.window().await.unwrap();

    // Another tab signs out (the app, then the provider's end_session_endpoint).
    let second = chrome.client.new_window(true).await.unwrap();
    chrome.client.switch_to_window(second.handle).await.unwrap();
    chrome.goto(&format!("{base}/")).await;
    chrome
        .click("form[action='/auth/doximity/logout'] button")
        .await;
    wait_for_signed_out_home(&chrome, &base, "a.doximity-signin").await;

    chrome.client.switch_to_window(first_tab).await.unwrap();
    wait_for_session_state(&chrome, "changed").await;
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
    finish(chrome, demo).await;
}

#[tokio::test]
async fn on_the_home_page_a_changed_session_is_rechecked_and_ends_on_the_session_ended_page() {
    let Some((demo, base, pages, chrome, _front)) = signed_in_as_run().await else {
        return;
    };
    chrome.goto(&format!("{base}/")).await;
    wait_for_session_state(&chrome, "unchanged").await;

    // The provider ends its sessions on its own (signed out elsewhere).
    mock(&demo).end_provider_sessions();

    // The home page re-checks silently (`prompt=none`) through the login route; the
    // provider, whose session is gone, answers `login_required`, so the session here ends too
    // and the browser lands on the page that says so, with a way to sign in again.
    chrome.wait_for_url(&format!("{base}/session-ended")).await;
    chrome.wait_for("a.doximity-signin").await;
    assert!(
        chrome.text().await.contains("Your session ended"),
        "{}",
        chrome.text().await
    );
    open_me_at_the_sign_in_page(&chrome, &base, &pages).await;
    finish(chrome, demo).await;
}

#[tokio::test]
async fn the_share_button_is_accessible_and_reaches_the_share_endpoint_with_its_parameters() {
    let Some((demo, base, pages, chrome, _front)) = behind_front().await else {
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
    assert_eq!(&href[..url::Position::AfterPath], format!("{pages}/share"));
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
    chrome.wait_for_url(&format!("{pages}/share?")).await;
    let page = chrome.text().await;
    assert!(page.contains("Share on Doximity (mock)"), "{page}");
    for shown in [format!("{base}/").as_str(), message, subject] {
        assert!(
            page.contains(shown),
            "the share page shows {shown:?}: {page}"
        );
    }
    chrome.screenshot("share").await;
    finish(chrome, demo).await;
}

#[tokio::test]
async fn across_sites_the_blocked_provider_cookie_reads_as_changed_and_the_recheck_runs_once() {
    // The app on another site than the provider, as in production.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", app.local_addr().unwrap().port());
    let demo = demo_at(app, &base).await;
    let Some((demo, base, pages, chrome, _front)) = in_browser(demo, base, None).await else {
        return;
    };
    sign_in(&chrome, &base, &pages).await;
    let authorizations = mock(&demo).requests(Endpoint::Authorize);

    // Chromium withholds the provider's cookie from the cross-site iframe, so the check
    // answers changed; the default action re-checks once through the login route, the
    // provider (its session alive, first-party at the top level) signs the user straight back
    // in, and on the way back the re-check is skipped instead of looping.
    settle_home(&chrome, &base).await;
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
    finish(chrome, demo).await;
}

/// Waits for the demo's home page at `base`, signed in, showing the profile (`#name`); clicks
/// Approve on the way if the provider asks again.
async fn wait_for_profile(chrome: &Chrome, base: &str) {
    chrome
        .wait_until(
            "the profile on the home page, or the consent page",
            || async {
                let home = chrome.url().await.starts_with(&format!("{base}/"))
                    && chrome.has("#name").await;
                if !home
                    && let Ok(approve) = chrome.client.find(Locator::Css("button.approve")).await
                {
                    let _ = approve.click().await;
                }
                home
            },
        )
        .await;
}

/// Whether the image loaded (a broken or blocked image has no natural width).
async fn image_loaded(chrome: &Chrome, css: &str) -> bool {
    chrome
        .client
        .execute(
            "const i = document.querySelector(arguments[0]); \
             return !!i && i.complete && i.naturalWidth > 0",
            vec![serde_json::json!(css)],
        )
        .await
        .unwrap()
        .as_bool()
        .unwrap()
}

#[tokio::test]
async fn a_newcomer_signs_in_steps_up_and_signs_out_in_a_stock_browser() {
    // A fresh profile, no CA, no certificate flag.
    let Some((demo, base, pages, chrome, _front)) = as_run().await else {
        return;
    };
    assert!(pages.starts_with("http://127.0.0.1:"), "{pages}");
    let chosen = mock(&demo).clinicians()[1].clone();

    // 1. The home page.
    chrome.goto(&format!("{base}/")).await;
    let home = chrome.text().await;
    assert!(home.contains("Sign in as a verified clinician"), "{home}");

    // 2. Sign in: the mock's page opens without a certificate warning.
    chrome.click("a.doximity-signin-login").await;
    chrome
        .wait_for_url(&format!("{pages}/oauth/authorize?"))
        .await;
    let page = chrome.text().await;
    assert!(page.contains("Sign in with Doximity (mock)"), "{page}");

    // 3. Pick a clinician and approve.
    chrome
        .click(&format!("input[name='sub'][value='{}']", chosen.sub))
        .await;
    chrome.click("button.approve").await;

    // 4. Signed in, back home: who it is (with `openid` alone, the opaque id), the scopes,
    //    and the live session check.
    chrome.wait_for_url(&format!("{base}/")).await;
    let sub = chrome.wait_for("#sub").await.text().await.unwrap();
    assert_eq!(sub, chosen.sub, "the clinician picked");
    assert_eq!(
        chrome.wait_for("#scopes").await.text().await.unwrap(),
        "openid"
    );
    wait_for_session_state(&chrome, "unchanged").await;

    // 5. Step up: the name, credentials, specialty and photo.
    chrome.click("a#step-up").await;
    wait_for_profile(&chrome, &base).await;
    assert_eq!(
        chrome.wait_for("#name").await.text().await.unwrap(),
        format!("{}, {}", chosen.name, chosen.credentials)
    );
    assert_eq!(
        chrome.wait_for("#specialty").await.text().await.unwrap(),
        chosen.specialty
    );
    chrome
        .wait_until("the photo to load from the mock", || async {
            image_loaded(&chrome, "#photo").await
        })
        .await;
    assert!(
        chrome
            .wait_for("#scopes")
            .await
            .text()
            .await
            .unwrap()
            .contains("profile:read:basic")
    );

    // 6. Sign out with the form (a POST from the app's own page): the signed-out home.
    chrome
        .click("form[method='post'][action='/auth/doximity/logout'] button#sign-out")
        .await;
    wait_for_signed_out_home(&chrome, &base, "a.doximity-signin-login").await;
    let home = chrome.text().await;
    assert!(
        !home.contains(&chosen.sub) && !home.contains(&chosen.name),
        "{home}"
    );
    finish(chrome, demo).await;
}

#[tokio::test]
async fn a_newcomer_who_denies_sees_the_access_denied_page_in_a_stock_browser() {
    let Some((demo, base, pages, chrome, _front)) = as_run().await else {
        return;
    };
    chrome.goto(&format!("{base}/")).await;
    chrome.click("a.doximity-signin-login").await;
    chrome
        .wait_for_url(&format!("{pages}/oauth/authorize?"))
        .await;
    chrome.click("button.deny").await;
    chrome
        .wait_for_url(&format!("{base}/auth/doximity/callback?"))
        .await;
    assert_eq!(
        chrome.wait_for("h1").await.text().await.unwrap(),
        "Sign-in cancelled: access denied"
    );
    // A way back: home, signed out.
    chrome.click("a[href='/'].button").await;
    chrome.wait_for("a.doximity-signin-login").await;
    assert_eq!(chrome.url().await, format!("{base}/"));
    finish(chrome, demo).await;
}

#[tokio::test]
async fn the_pages_fit_a_375_px_wide_screen() {
    let Some((demo, base, _pages, chrome, _front)) = as_run().await else {
        return;
    };
    let mock = mock(&demo);
    let width = chrome.set_viewport(375, 812).await;
    assert_eq!(width, 375, "the viewport is a phone's");
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for("a.doximity-signin-login").await;
    assert!(!chrome.overflows_horizontally().await, "signed-out home");
    chrome.goto(&format!("{base}/session-ended")).await;
    chrome.wait_for("h1").await;
    assert!(!chrome.overflows_horizontally().await, "session ended");
    mock.set_auto_approve(Some(mock.clinicians()[3].sub.clone()));
    chrome.goto(&format!("{base}/show-profile")).await;
    wait_for_profile(&chrome, &base).await;
    assert!(!chrome.overflows_horizontally().await, "signed-in home");
    finish(chrome, demo).await;
}

/// Writes the screenshots in `docs/images/` (the README shows `demo-home-signed-in.png`):
///
/// ```text
/// cargo test -p e2e --test browser -- --ignored --exact write_screenshots
/// ```
#[tokio::test]
#[ignore = "writes docs/images/*.png; run on purpose"]
async fn write_screenshots() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
    let Some((demo, base, pages, chrome, _front)) = as_run().await else {
        return;
    };
    let chosen = mock(&demo).clinicians()[0].clone();
    chrome.set_viewport(900, 900).await;
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for("a.doximity-signin-login").await;
    chrome.screenshot_into(&dir, "demo-home").await;

    chrome.click("a.doximity-signin-login").await;
    chrome
        .wait_for_url(&format!("{pages}/oauth/authorize?"))
        .await;
    chrome.wait_for("button.approve").await;
    chrome.screenshot_into(&dir, "demo-mock-signin").await;
    chrome.click("button.deny").await;
    chrome.wait_for("h1").await;
    chrome.screenshot_into(&dir, "demo-access-denied").await;

    chrome.goto(&format!("{base}/auth/doximity/login")).await;
    chrome.click("button.approve").await;
    chrome.wait_for("#sub").await;
    wait_for_session_state(&chrome, "unchanged").await;
    chrome.screenshot_into(&dir, "demo-home-openid").await;

    chrome.click("a#step-up").await;
    wait_for_profile(&chrome, &base).await;
    chrome
        .wait_until("the photo", || async {
            image_loaded(&chrome, "#photo").await
        })
        .await;
    wait_for_session_state(&chrome, "unchanged").await;
    assert!(chrome.text().await.contains(&chosen.name));
    chrome.screenshot_into(&dir, "demo-home-signed-in").await;

    chrome.set_viewport(375, 812).await;
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for("#name").await;
    chrome
        .wait_until("the photo", || async {
            image_loaded(&chrome, "#photo").await
        })
        .await;
    chrome
        .screenshot_into(&dir, "demo-home-signed-in-375")
        .await;
    chrome.set_viewport(900, 900).await;

    // The provider ends its session: the home page's check notices.
    mock(&demo).end_provider_sessions();
    chrome.goto(&format!("{base}/")).await;
    chrome.wait_for_url(&format!("{base}/session-ended")).await;
    chrome.wait_for("h1").await;
    chrome.screenshot_into(&dir, "demo-session-ended").await;

    // The provider's token endpoint fails during a sign-in.
    mock(&demo).inject(doximity_mock::Fault::TokenStatus(503));
    chrome.goto(&format!("{base}/auth/doximity/login")).await;
    chrome.click("button.approve").await;
    chrome
        .wait_until("the provider-unavailable page", || async {
            chrome.text().await.contains("unavailable")
        })
        .await;
    chrome
        .screenshot_into(&dir, "demo-provider-unavailable")
        .await;
    finish(chrome, demo).await;
}
