use doximity_mock::MockProvider;
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::support::{
    Harness, assert_unframeable_page, code_grant, cookie_header, cookie_value, csrf_field, decode,
    fragment_map, location, pkce, query_map, remove, set,
};

/// Asserts an HTML 400 page that does not redirect anywhere.
async fn assert_error_page(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    response.text().await.unwrap()
}

/// Asserts an error redirected to the demo redirect URI; returns the error code.
fn assert_error_redirect(h: &Harness, response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302);
    let url = location(response);
    assert!(url.as_str().starts_with(h.redirect_uri()));
    let query = query_map(&url);
    assert_eq!(query["state"], "state-123");
    assert!(query.contains_key("error_description"));
    assert!(!query.contains_key("code"));
    query["error"].clone()
}

#[tokio::test]
async fn unknown_or_missing_client_is_an_error_page() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "client_id", "no-such-client");
    let body = assert_error_page(h.authorize(&params, None).await).await;
    assert!(body.contains("no-such-client"));
    remove(&mut params, "client_id");
    assert_error_page(h.authorize(&params, None).await).await;
}

#[tokio::test]
async fn bad_redirect_uri_is_an_error_page_never_a_redirect() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    for bad in [
        "https://evil.example/callback",
        "http://127.0.0.1:3000/auth/doximity/callback/",
        "http://127.0.0.1:3000/auth/doximity/callback?x=1",
    ] {
        let mut params = h.auth_params(&challenge);
        set(&mut params, "redirect_uri", bad);
        let body = assert_error_page(h.authorize(&params, None).await).await;
        assert!(!body.contains("evil.example"));
    }
    let mut params = h.auth_params(&challenge);
    remove(&mut params, "redirect_uri");
    assert_error_page(h.authorize(&params, None).await).await;
}

#[tokio::test]
async fn other_errors_redirect_with_error_and_state() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("code_challenge", None, "invalid_request"),
        ("code_challenge_method", None, "invalid_request"),
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("code_challenge", Some("too-short"), "invalid_request"),
        ("scope", Some("openid admin"), "invalid_scope"),
        ("scope", Some("openid basic"), "invalid_scope"),
        ("response_type", Some("token"), "unsupported_response_type"),
        ("response_type", None, "invalid_request"),
        ("prompt", Some("sometimes"), "invalid_request"),
        ("prompt", Some("none login"), "invalid_request"),
        ("display", Some("fullscreen"), "invalid_request"),
        ("response_mode", Some("form_post"), "invalid_request"),
        ("type", Some("signup"), "invalid_request"),
        ("id_token_hint", Some("not.a.jwt"), "invalid_request"),
    ];
    for (name, value, expected) in cases {
        let mut params = h.auth_params(&challenge);
        match value {
            Some(value) => set(&mut params, name, value),
            None => remove(&mut params, name),
        }
        let response = h.authorize(&params, None).await;
        assert_eq!(
            assert_error_redirect(&h, &response),
            expected,
            "{name}={value:?}"
        );
    }
}

#[tokio::test]
async fn auto_approve_redirects_with_code_state_and_session_state() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let response = h.authorize(&h.auth_params(&challenge), None).await;
    assert_eq!(response.status(), 302);
    let url = location(&response);
    assert_eq!(
        format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        h.redirect_uri()
    );
    assert!(url.fragment().is_none());
    let query = query_map(&url);
    assert!(query["code"].len() >= 43);
    assert_eq!(query["state"], "state-123");

    // session_state = sha256(client_id + " " + origin + " " + browser_state + " " + salt).salt
    let cookies = cookie_header(&response);
    let browser_state = cookie_value(&cookies, "mock_op_browser_state").unwrap();
    assert!(cookie_value(&cookies, "mock_op_session").is_some());
    let (hash, salt) = query["session_state"].rsplit_once('.').unwrap();
    let expected = Sha256::digest(
        format!("doximity-demo-client http://127.0.0.1:3000 {browser_state} {salt}").as_bytes(),
    );
    let expected: String = expected.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hash, expected);

    // The cookies' attributes.
    let raw: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    let session = raw
        .iter()
        .find(|c| c.starts_with("mock_op_session="))
        .unwrap();
    assert!(session.contains("HttpOnly") && session.contains("Secure"));
    let state = raw
        .iter()
        .find(|c| c.starts_with("mock_op_browser_state="))
        .unwrap();
    assert!(
        !state.contains("HttpOnly") && state.contains("SameSite=None") && state.contains("Secure")
    );
}

#[tokio::test]
async fn session_state_is_only_sent_with_openid() {
    let h = Harness::auto().await;
    let login = h
        .login_with(|p| set(p, "scope", "profile:read:basic"))
        .await;
    assert!(!login.query.contains_key("session_state"));
}

#[tokio::test]
async fn fragment_response_mode_puts_everything_in_the_fragment() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "response_mode", "fragment");
    let response = h.authorize(&params, None).await;
    let url = location(&response);
    assert!(url.query().is_none());
    let fragment = fragment_map(&url);
    assert!(fragment.contains_key("code"));
    assert_eq!(fragment["state"], "state-123");
    assert!(fragment.contains_key("session_state"));

    // Errors go to the fragment too.
    set(&mut params, "scope", "openid nope");
    let url = location(&h.authorize(&params, None).await);
    assert_eq!(fragment_map(&url)["error"], "invalid_scope");
}

#[tokio::test]
async fn hybrid_code_id_token_returns_a_signed_id_token_in_the_fragment() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "response_type", "code id_token");
    let url = location(&h.authorize(&params, None).await);
    let fragment = fragment_map(&url);
    let claims = h.verified_claims(&fragment["id_token"]).await;
    assert_eq!(claims["nonce"], "nonce-456");
    let c_hash = crate::support::at_hash(&fragment["code"]);
    assert_eq!(claims["c_hash"], c_hash);
}

/// GET the page and return (csrf token, Cookie header, HTML).
async fn page(
    h: &Harness,
    params: &[(String, String)],
    cookies: Option<&str>,
) -> (String, String, String) {
    let response = h.authorize(params, cookies).await;
    assert_unframeable_page(&response);
    let cookies = cookie_header(&response);
    let html = response.text().await.unwrap();
    (csrf_field(&html), cookies, html)
}

async fn submit(h: &Harness, form: &[(&str, &str)], cookies: &str) -> reqwest::Response {
    h.http
        .post(h.url("/oauth/authorize"))
        .header("cookie", cookies)
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_page_shows_the_app_and_deny_redirects_access_denied() {
    let h = Harness::start(MockProvider::builder()).await;
    let (_, challenge) = pkce();
    let (csrf, cookies, html) = page(&h, &h.auth_params(&challenge), None).await;
    assert!(html.contains("<title>Sign in with Doximity (mock)</title>"));
    assert!(html.contains("doximity-demo-client"));
    assert!(html.contains("profile:read:email"));
    for clinician in h.mock.clinicians() {
        assert!(html.contains(&clinician.sub));
    }
    assert!(html.contains(">Approve<") && html.contains(">Deny<"));

    let response = submit(&h, &[("csrf_token", &csrf), ("action", "deny")], &cookies).await;
    assert_eq!(response.status(), 302);
    let raw = response.headers()["location"].to_str().unwrap();
    assert!(
        raw.contains(
            "error=access_denied&error_description=The+user+denied+your+request.&state=state-123"
        ),
        "{raw}"
    );

    // The token is single-use.
    let again = submit(&h, &[("csrf_token", &csrf), ("action", "deny")], &cookies).await;
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn approving_on_the_page_issues_a_code_for_the_chosen_clinician() {
    let h = Harness::start(MockProvider::builder()).await;
    let (verifier, challenge) = pkce();
    let chosen = h.mock.clinicians()[2].sub.clone();
    let (csrf, cookies, _) = page(&h, &h.auth_params(&challenge), None).await;
    let response = submit(
        &h,
        &[
            ("csrf_token", &csrf),
            ("action", "approve"),
            ("sub", &chosen),
        ],
        &cookies,
    )
    .await;
    assert_eq!(response.status(), 302);
    let query = query_map(&location(&response));
    assert_eq!(query["state"], "state-123");
    let tokens = h
        .token_request(&code_grant(&query["code"], h.redirect_uri(), &verifier))
        .await;
    let json: serde_json::Value = tokens.json().await.unwrap();
    let (_, claims) = decode(json["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], chosen.as_str());
}

#[tokio::test]
async fn a_form_post_without_the_pages_cookie_is_refused() {
    let h = Harness::start(MockProvider::builder()).await;
    let (_, challenge) = pkce();
    let (csrf, _, _) = page(&h, &h.auth_params(&challenge), None).await;
    let sub = h.mock.clinicians()[0].sub.clone();
    let response = submit(
        &h,
        &[("csrf_token", &csrf), ("action", "approve"), ("sub", &sub)],
        "mock_op_csrf=forged",
    )
    .await;
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("location").is_none());
    let unknown = submit(&h, &[("csrf_token", "made-up"), ("action", "approve")], "").await;
    assert_eq!(unknown.status(), 400);
}

#[tokio::test]
async fn page_variants_for_create_popup_and_verify() {
    let h = Harness::start(MockProvider::builder()).await;
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "prompt", "create");
    let (_, _, html) = page(&h, &params, None).await;
    assert!(html.contains("Create your Doximity account (mock)"));

    let mut params = h.auth_params(&challenge);
    set(&mut params, "display", "popup");
    let (_, _, html) = page(&h, &params, None).await;
    assert!(html.contains("class=\"compact\""));

    let mut params = h.auth_params(&challenge);
    set(&mut params, "type", "verify");
    let (_, _, html) = page(&h, &params, None).await;
    assert!(html.contains("Verify your identity"));

    let mut params = h.auth_params(&challenge);
    let third = h.mock.clinicians()[2].clone();
    set(&mut params, "login_hint", &third.email);
    let (_, _, html) = page(&h, &params, None).await;
    assert!(html.contains(&format!("value=\"{}\" checked", third.sub)));
}

#[tokio::test]
async fn prompt_none_needs_a_provider_session() {
    let h = Harness::auto().await;
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "prompt", "none");
    let response = h.authorize(&params, None).await;
    assert_eq!(assert_error_redirect(&h, &response), "login_required");

    let login = h.login().await;
    let response = h.authorize(&params, Some(&login.cookies)).await;
    assert_eq!(response.status(), 302);
    let query = query_map(&location(&response));
    assert!(query.contains_key("code"));
    assert_eq!(query["state"], "state-123");

    h.mock.end_provider_sessions();
    let response = h.authorize(&params, Some(&login.cookies)).await;
    assert_eq!(assert_error_redirect(&h, &response), "login_required");
}

#[tokio::test]
async fn an_existing_session_skips_the_page_unless_prompt_forces_it() {
    let h = Harness::start(MockProvider::builder()).await;
    let (_, challenge) = pkce();
    let sub = h.mock.clinicians()[1].sub.clone();
    let (csrf, cookies, _) = page(&h, &h.auth_params(&challenge), None).await;
    let response = submit(
        &h,
        &[("csrf_token", &csrf), ("action", "approve"), ("sub", &sub)],
        &cookies,
    )
    .await;
    let session = cookie_header(&response);

    // Same browser, same app: straight back with a code.
    let again = h
        .authorize(&h.auth_params(&challenge), Some(&session))
        .await;
    assert_eq!(again.status(), 302);
    assert!(query_map(&location(&again)).contains_key("code"));

    for prompt in ["login", "consent"] {
        let mut params = h.auth_params(&challenge);
        set(&mut params, "prompt", prompt);
        let (_, _, html) = page(&h, &params, Some(&session)).await;
        assert!(html.contains(&format!("value=\"{sub}\" checked")));
    }
}

#[tokio::test]
async fn set_auto_approve_picks_the_clinician() {
    let h = Harness::auto().await;
    let second = h.mock.clinicians()[1].sub.clone();
    h.mock.set_auto_approve(Some(second.clone()));
    let tokens = h.tokens().await;
    assert_eq!(decode(&tokens.id_token).1["sub"], second.as_str());

    h.mock.set_auto_approve(None);
    let (_, challenge) = pkce();
    let response = h.authorize(&h.auth_params(&challenge), None).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn extra_redirect_uris_from_the_builder_are_registered_alongside_the_default() {
    let h = Harness::start(
        MockProvider::builder()
            .auto_approve(true)
            .redirect_uri("http://localhost:8080/cb"),
    )
    .await;
    assert_eq!(
        h.client.redirect_uris,
        vec![
            "http://127.0.0.1:3000/auth/doximity/callback".to_owned(),
            "http://localhost:8080/cb".to_owned()
        ]
    );
    let (_, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "redirect_uri", "http://localhost:8080/cb");
    let url: Url = location(&h.authorize(&params, None).await);
    assert_eq!(url.host_str(), Some("localhost"));
}
