//! `browser_over_http`: the pages a browser opens also on a plain-HTTP loopback listener, the
//! back channel on HTTPS only.

use doximity_mock::{Endpoint, MockProvider};
use serde_json::Value;

use crate::support::{
    Harness, assert_unframeable_page, code_grant, cookie_header, csrf_field, location, pkce,
    query_map,
};

const BROWSER_FIELDS: [&str; 3] = [
    "authorization_endpoint",
    "end_session_endpoint",
    "check_session_iframe",
];
const BACK_CHANNEL_FIELDS: [&str; 4] =
    ["token_endpoint", "jwks_uri", "userinfo_endpoint", "issuer"];

async fn harness() -> Harness {
    Harness::start(MockProvider::builder().browser_over_http(true)).await
}

/// A client for the plain-HTTP listener, redirects off (the harness's, whose TLS set-up plain
/// HTTP does not use).
fn plain(h: &Harness) -> reqwest::Client {
    h.http.clone()
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn find<'a>(cookies: &'a [String], name: &str) -> &'a str {
    cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {cookies:?}"))
}

#[tokio::test]
async fn discovery_names_http_for_the_three_browser_endpoints_only() {
    let h = harness().await;
    let browser = h.mock.browser_base();
    let addr = h.mock.browser_addr().expect("a browser listener");
    assert_eq!(browser, format!("http://{addr}"));
    assert!(addr.ip().is_loopback());
    assert_ne!(addr, h.mock.addr());
    for document in ["openid-configuration", "oauth-authorization-server"] {
        let doc: Value = h.get_json(&format!("/.well-known/{document}")).await;
        for field in BROWSER_FIELDS {
            assert!(
                doc[field]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("{browser}/oauth/")),
                "{document} {field}: {}",
                doc[field]
            );
        }
        for field in BACK_CHANNEL_FIELDS {
            assert!(
                doc[field].as_str().unwrap().starts_with("https://"),
                "{document} {field}: {}",
                doc[field]
            );
        }
        if document == "oauth-authorization-server" {
            assert!(
                doc["revocation_endpoint"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://")
            );
        }
    }
}

#[tokio::test]
async fn by_default_everything_is_https_and_there_is_no_plain_listener() {
    let h = Harness::start(MockProvider::builder()).await;
    assert_eq!(h.mock.browser_base(), h.mock.issuer());
    assert!(h.mock.browser_addr().is_none());
    let doc: Value = h.get_json("/.well-known/openid-configuration").await;
    for field in BROWSER_FIELDS {
        assert!(
            doc[field]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/oauth/", h.mock.issuer())),
            "{field}"
        );
    }
}

#[tokio::test]
async fn the_back_channel_is_not_served_over_plain_http() {
    let h = harness().await;
    let browser = h.mock.browser_base();
    let http = plain(&h);
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/.well-known/jwks.json",
        "/oauth/userinfo",
        "/api/v1/users/current",
        "/api/v1/rate_limit",
    ] {
        let status = http
            .get(format!("{browser}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "GET {path}");
    }
    for path in ["/oauth/token", "/oauth/revoke"] {
        let status = http
            .post(format!("{browser}{path}"))
            .basic_auth(&h.client.client_id, Some(&h.client.client_secret))
            .form(&[("grant_type", "refresh_token"), ("token", "x")])
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "POST {path}");
    }
}

#[tokio::test]
async fn over_plain_http_the_sign_in_page_refuses_framing_and_its_cookies_work_without_secure() {
    let h = harness().await;
    let browser = h.mock.browser_base();
    let http = plain(&h);
    let (verifier, challenge) = pkce();
    let mut url = url::Url::parse(&format!("{browser}/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .extend_pairs(h.auth_params(&challenge));
    let page = http.get(url.as_str()).send().await.unwrap();
    assert_unframeable_page(&page);
    let raw = set_cookies(&page);
    let csrf_cookie = find(&raw, "mock_op_csrf");
    assert!(
        !csrf_cookie.contains("Secure") && !csrf_cookie.contains("__Host-"),
        "{csrf_cookie}"
    );
    assert!(csrf_cookie.contains("HttpOnly"), "{csrf_cookie}");
    let cookies = cookie_header(&page);
    let html = page.text().await.unwrap();
    let csrf = csrf_field(&html);

    let sub = h.mock.clinicians()[1].sub.clone();
    let approved = http
        .post(format!("{browser}/oauth/authorize"))
        .header("cookie", &cookies)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("action", "approve"),
            ("sub", &sub),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let raw = set_cookies(&approved);
    let session = find(&raw, "mock_op_session");
    assert!(!session.contains("Secure"), "{session}");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let state = find(&raw, "mock_op_browser_state");
    assert!(
        !state.contains("Secure") && !state.contains("HttpOnly"),
        "{state}"
    );
    assert!(
        state.contains("SameSite=Lax"),
        "SameSite=None needs Secure: {state}"
    );

    // The code from the plain-HTTP page is redeemed on the HTTPS token endpoint.
    let query = query_map(&location(&approved));
    let tokens = h
        .token_request(&code_grant(&query["code"], h.redirect_uri(), &verifier))
        .await;
    assert_eq!(tokens.status(), 200);
    let id_token: Value = tokens.json().await.unwrap();

    // The provider session cookie set over HTTP is honoured there: a second authorization
    // needs no page.
    let session_cookie = cookie_header(&approved);
    let again = http
        .get(url.as_str())
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 302, "the session cookie skips the page");

    // Signing out over HTTP clears both cookies, again without Secure.
    let mut logout = url::Url::parse(&format!("{browser}/oauth/logout")).unwrap();
    logout.query_pairs_mut().extend_pairs([
        ("id_token_hint", id_token["id_token"].as_str().unwrap()),
        ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
    ]);
    let out = http
        .get(logout.as_str())
        .header("cookie", &session_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 302);
    let raw = set_cookies(&out);
    for name in ["mock_op_session", "mock_op_browser_state"] {
        let cleared = find(&raw, name);
        assert!(
            cleared.contains("Max-Age=0") && !cleared.contains("Secure"),
            "{cleared}"
        );
    }
    assert!(h.mock.requests(Endpoint::Logout) >= 1);
}

#[tokio::test]
async fn the_session_iframe_share_page_and_photos_are_served_over_plain_http() {
    let h = harness().await;
    let browser = h.mock.browser_base();
    let http = plain(&h);
    let frame = http
        .get(format!("{browser}/oauth/session_state"))
        .send()
        .await
        .unwrap();
    assert_eq!(frame.status(), 200);
    assert!(
        frame.headers().get("x-frame-options").is_none(),
        "framable by design"
    );
    let alive: Value = http
        .get(format!(
            "{browser}/oauth/session_state/alive?browser_state=x"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alive["active"], false);
    let share = http
        .get(format!("{browser}/share?url=http%3A%2F%2F127.0.0.1%2F"))
        .send()
        .await
        .unwrap();
    assert_eq!(share.status(), 200);

    for clinician in h.mock.clinicians() {
        assert_eq!(
            clinician.profile_photo_url,
            format!("{browser}/photos/{}.svg", clinician.sub)
        );
        let photo = http.get(&clinician.profile_photo_url).send().await.unwrap();
        assert_eq!(photo.status(), 200);
        assert_eq!(photo.headers()["content-type"], "image/svg+xml");
        let svg = photo.text().await.unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains(&clinician.name),
            "{svg}"
        );
    }
    let missing = http
        .get(format!("{browser}/photos/nobody.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn photos_are_local_in_the_default_mode_too() {
    let h = Harness::start(MockProvider::builder()).await;
    let clinician = &h.mock.clinicians()[0];
    assert!(
        clinician
            .profile_photo_url
            .starts_with(&format!("{}/photos/", h.mock.issuer()))
    );
    let photo = h
        .http
        .get(&clinician.profile_photo_url)
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/svg+xml");
}
