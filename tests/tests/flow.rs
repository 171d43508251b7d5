//! The demo app end to end: a browser stand-in, the app on a real socket, the mock provider
//! over HTTPS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use doximity_mock::{Endpoint, MockProvider};
use e2e::{App, Browser};

fn mock() -> doximity_mock::MockProviderBuilder {
    MockProvider::builder()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

async fn signed_in(app: &App) -> Browser {
    let browser = app.browser();
    let (_, res) = browser.follow(&app.url("/me")).await;
    assert_eq!(res.status(), 200, "sign-in ends on /me");
    browser
}

#[tokio::test]
async fn a_browser_signs_in_and_lands_back_on_the_page_it_asked_for() {
    let app = App::start(mock()).await;
    let browser = app.browser();
    let (hops, res) = browser.follow(&app.url("/me")).await;
    let statuses: Vec<u16> = hops.iter().map(|h| h.status).collect();
    assert_eq!(statuses, [303, 303, 302, 303, 200], "{hops:#?}");
    assert!(
        hops[0]
            .location
            .as_deref()
            .unwrap()
            .starts_with(&app.url("/auth/doximity/login?return_to="))
    );
    assert!(
        hops[1]
            .location
            .as_deref()
            .unwrap()
            .starts_with(&app.mock.issuer())
    );
    assert!(
        hops[2]
            .location
            .as_deref()
            .unwrap()
            .starts_with(&app.url("/auth/doximity/callback?"))
    );
    assert_eq!(hops[3].location.as_deref(), Some(app.url("/me").as_str()));
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["sub"], app.mock.clinicians()[0].sub);
}

#[tokio::test]
async fn unauthenticated_clients_get_the_answer_they_understand() {
    let app = App::start(mock()).await;
    let client = app.browser();
    let api = client.api_get(&app.url("/me")).await;
    assert_eq!(api.status(), 401);
    assert_eq!(api.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = api.json().await.unwrap();
    assert!(body["error"].is_string());

    let grpc = client
        .http
        .post(app.url("/pkg.Service/Method"))
        .header("content-type", "application/grpc")
        .send()
        .await
        .unwrap();
    assert_eq!(grpc.status(), 200);
    assert_eq!(grpc.headers()["grpc-status"], "16");

    let page = app.browser().navigate(&app.url("/me?tab=1")).await;
    assert_eq!(page.status(), 303);
    let location = page.headers()["location"].to_str().unwrap();
    assert_eq!(
        query_param(&app.url(location), "return_to").as_deref(),
        Some("/me?tab=1")
    );

    // The public page needs no session.
    assert_eq!(app.browser().navigate(&app.url("/")).await.status(), 200);
}

#[tokio::test]
async fn profile_steps_up_to_profile_read_basic() {
    let app = App::start(mock()).await;
    let browser = signed_in(&app).await;
    let (hops, res) = browser.follow(&app.url("/profile")).await;
    assert_eq!(res.status(), 200, "{hops:#?}");
    let authorize = hops
        .iter()
        .find(|h| h.url.starts_with(&app.mock.issuer()))
        .expect("went to the provider");
    let scope = query_param(&authorize.url, "scope").unwrap();
    assert!(
        scope.split(' ').any(|s| s == "profile:read:basic"),
        "{scope}"
    );
    assert!(scope.split(' ').any(|s| s == "openid"), "{scope}");
    let profile: serde_json::Value = res.json().await.unwrap();
    assert_eq!(profile["name"], app.mock.clinicians()[0].name);
    // Another user, signed in with `openid` only, calling as an API client: 403 naming the
    // scope it needs.
    let api = signed_in(&app).await;
    let res = api.api_get(&app.url("/profile")).await;
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("profile:read:basic"),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_signed_in_request_makes_no_provider_call() {
    let app = App::start(mock()).await;
    let browser = signed_in(&app).await;
    let counts = |m: &MockProvider| {
        [
            Endpoint::Token,
            Endpoint::Userinfo,
            Endpoint::Jwks,
            Endpoint::OpenIdConfiguration,
            Endpoint::Revoke,
        ]
        .map(|e| m.requests(e))
    };
    let before = counts(&app.mock);
    for _ in 0..10 {
        assert_eq!(browser.navigate(&app.url("/me")).await.status(), 200);
    }
    assert_eq!(counts(&app.mock), before);
}

#[tokio::test]
async fn an_expiring_session_is_refreshed_once_however_many_requests_race() {
    let app = App::start(mock()).await;
    let browser = signed_in(&app).await;
    let before = app.mock.requests(Endpoint::Token);
    // The access token lives 1800 s; move to its last seconds.
    app.advance(1795);
    let me = app.url("/me");
    let requests = (0..200).map(|_| browser.api_get(&me));
    let responses = futures_util::future::join_all(requests).await;
    for res in responses {
        assert_eq!(res.status(), 200);
    }
    assert_eq!(
        app.mock.requests(Endpoint::Token),
        before + 1,
        "exactly one refresh at the provider"
    );
    // The new session is in the jar: later requests need no refresh.
    assert_eq!(browser.navigate(&app.url("/me")).await.status(), 200);
    assert_eq!(app.mock.requests(Endpoint::Token), before + 1);
}

#[tokio::test]
async fn logout_ends_the_session_revokes_and_signs_out_at_the_provider() {
    let app = App::start(mock()).await;
    let browser = signed_in(&app).await;
    // Someone else's page cannot sign the user out: 403, and the session stays.
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let res = browser
            .http
            .post(app.url("/auth/doximity/logout"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
        assert_eq!(browser.navigate(&app.url("/me")).await.status(), 200);
    }
    // The app's own page: `Origin` is the app's.
    let origin = app.url("/");
    let res = browser
        .http
        .post(app.url("/auth/doximity/logout"))
        .header("origin", origin.trim_end_matches('/'))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers().get("clear-site-data").is_none());
    let to_provider = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_provider.starts_with(&format!("{}/oauth/logout?", app.mock.issuer())),
        "{to_provider}"
    );
    assert!(query_param(&to_provider, "id_token_hint").is_some());
    assert_eq!(
        query_param(&to_provider, "post_logout_redirect_uri").as_deref(),
        Some(app.url("/").as_str())
    );
    let (hops, res) = browser.follow(&to_provider).await;
    assert_eq!(res.status(), 200, "{hops:#?}");
    assert_eq!(
        hops.last().unwrap().url.split('?').next(),
        Some(app.url("/").as_str())
    );
    // Signed out here...
    let me = browser.api_get(&app.url("/me")).await;
    assert_eq!(me.status(), 401);
    // ...and the refresh token was revoked (in the background; wait for it, no sleep).
    app.auth.drain().await;
    assert_eq!(app.mock.requests(Endpoint::Revoke), 1);
}

#[tokio::test]
async fn a_forged_callback_makes_no_session() {
    let app = App::start(mock()).await;
    let browser = app.browser();
    let login = browser
        .navigate(&app.url("/auth/doximity/login?return_to=%2Fme"))
        .await;
    assert_eq!(login.status(), 303);
    let before = app.mock.requests(Endpoint::Token);
    let res = browser
        .navigate(&app.url("/auth/doximity/callback?code=stolen&state=forged"))
        .await;
    assert!(res.status().is_client_error(), "{}", res.status());
    assert_eq!(
        app.mock.requests(Endpoint::Token),
        before,
        "no code exchange on a forged state"
    );
    let me = browser.api_get(&app.url("/me")).await;
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn a_denied_sign_in_gets_a_clear_page_and_no_session() {
    let app = App::start(mock()).await;
    let browser = app.browser();
    let login = browser.navigate(&app.url("/auth/doximity/login")).await;
    let authorize = login.headers()["location"].to_str().unwrap().to_owned();
    let state = query_param(&authorize, "state").unwrap();
    let callback = format!(
        "{}?error=access_denied&error_description=The+user+denied+your+request.&state={}",
        app.url("/auth/doximity/callback"),
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    let res = browser.navigate(&callback).await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = res.text().await.unwrap();
    assert!(page.to_lowercase().contains("denied"), "{page}");
    assert!(!page.contains(&state));
    let me = browser.api_get(&app.url("/me")).await;
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let app = App::start(mock()).await;
    let browser = app.browser();
    let (hops, _) = browser.follow(&app.url("/me")).await;
    let callback = hops
        .iter()
        .find(|h| h.url.contains("/auth/doximity/callback"))
        .unwrap()
        .url
        .clone();
    // The same callback again, from a fresh browser holding the old transaction cookie too.
    let again = browser.navigate(&callback).await;
    assert!(again.status().is_client_error(), "{}", again.status());
}

#[tokio::test]
async fn hostile_return_to_lands_on_the_home_page() {
    let app = App::start(mock()).await;
    for hostile in [
        "//evil.example/x",
        "/\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "/%2F%2Fevil.example",
    ] {
        let browser = app.browser();
        let url = format!(
            "{}?return_to={}",
            app.url("/auth/doximity/login"),
            url::form_urlencoded::byte_serialize(hostile.as_bytes()).collect::<String>()
        );
        let (hops, res) = browser.follow(&url).await;
        assert_eq!(res.status(), 200, "{hostile}: {hops:#?}");
        assert_eq!(hops.last().unwrap().url, app.url("/"), "{hostile}");
    }
}

#[tokio::test]
async fn a_tampered_session_cookie_is_simply_not_signed_in() {
    let app = App::start(mock()).await;
    let browser = signed_in(&app).await;
    let cookies = browser.cookies_for(&app.url("/"));
    assert!(!cookies.is_empty());
    let tampered: String = cookies
        .split("; ")
        .map(|c| {
            let (name, value) = c.split_once('=').unwrap();
            let mut v: Vec<char> = value.chars().collect();
            let mid = v.len() / 2;
            v[mid] = if v[mid] == 'A' { 'B' } else { 'A' };
            format!("{name}={}", v.into_iter().collect::<String>())
        })
        .collect::<Vec<_>>()
        .join("; ");
    // A fresh browser (empty jar) presenting the tampered cookies.
    let res = app
        .browser()
        .http
        .get(app.url("/me"))
        .header("accept", "application/json")
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
