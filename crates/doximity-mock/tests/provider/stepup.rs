//! Step-up: `acr_values` and `max_age` (OpenID Connect Core 3.1.2.1, RFC 9470) against a
//! provider session, with auto-approve and with the sign-in page. The provider's clock is
//! moved with `set_clock_offset`, never by sleeping.

use doximity_mock::{Fault, MockProvider};
use serde_json::{Value, json};

use crate::support::{
    Harness, assert_unframeable_page, cookie_header, cookie_value, csrf_field, decode,
    fragment_map, location, pkce, query_map, set,
};

/// An authorization request with the demo parameters edited, sent with `cookies`; the
/// verifier of its PKCE pair and the response.
async fn authorize(
    h: &Harness,
    cookies: Option<&str>,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> (String, reqwest::Response) {
    let (verifier, challenge) = pkce();
    let mut params = h.auth_params(&challenge);
    edit(&mut params);
    (verifier, h.authorize(&params, cookies).await)
}

/// The code of a successful authorization redirect.
fn code_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302, "authorize should redirect");
    let query = query_map(&location(response));
    assert!(!query.contains_key("error"), "{query:?}");
    query["code"].clone()
}

/// Exchanges a code; the token response's JSON.
async fn exchange(h: &Harness, code: &str, verifier: &str) -> Value {
    let response = h
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", h.redirect_uri()),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The verified claims of a token response's ID token.
async fn id_claims(h: &Harness, tokens: &Value) -> Value {
    h.verified_claims(tokens["id_token"].as_str().unwrap())
        .await
}

/// A silent or auto-approved authorization, then the code exchange: the ID token's claims.
async fn claims_after(h: &Harness, response: reqwest::Response, verifier: &str) -> Value {
    let code = code_of(&response);
    let tokens = exchange(h, &code, verifier).await;
    id_claims(h, &tokens).await
}

fn auth_time(claims: &Value) -> i64 {
    claims["auth_time"].as_i64().expect("a numeric auth_time")
}

/// Auto-approve signs in a browser with no session: its cookies and the ID token's claims.
async fn auto_sign_in(
    h: &Harness,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> (String, Value) {
    let (verifier, response) = authorize(h, None, edit).await;
    let cookies = cookie_header(&response);
    assert!(cookie_value(&cookies, "mock_op_session").is_some());
    (cookies, claims_after(h, response, &verifier).await)
}

/// The error of an authorization redirect.
fn error_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 302);
    let query = query_map(&location(response));
    assert!(!query.contains_key("code"));
    assert!(query.contains_key("error_description"));
    query["error"].clone()
}

#[tokio::test]
async fn discovery_advertises_the_acr_values_doximity_supports() {
    let h = Harness::start(MockProvider::builder()).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let document = h.get_json(path).await;
        assert_eq!(
            document["acr_values_supported"],
            json!(["1", "2", "3"]),
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_first_sign_in_is_at_the_requested_level_or_2() {
    let h = Harness::auto().await;
    let (_, claims) = auto_sign_in(&h, |_| {}).await;
    assert_eq!(claims["acr"], json!(2));
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "3")).await;
    assert_eq!(claims["acr"], json!(3));
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "1")).await;
    assert_eq!(claims["acr"], json!(1));
    // Unsupported values are ignored; the first supported one is the requested level.
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "urn:gold 4 3 1")).await;
    assert_eq!(claims["acr"], json!(3));
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "urn:gold 0")).await;
    assert_eq!(claims["acr"], json!(2));
}

#[tokio::test]
async fn auto_approve_steps_a_level_2_session_up_to_3_with_a_fresh_auth_time() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    assert_eq!(first["acr"], json!(2));
    let t0 = auth_time(&first);

    h.mock.set_clock_offset(100);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "acr_values", "3")).await;
    // Re-authenticated in the same provider session.
    assert_eq!(
        cookie_value(&cookie_header(&response), "mock_op_session"),
        cookie_value(&cookies, "mock_op_session")
    );
    let stepped = claims_after(&h, response, &verifier).await;
    assert_eq!(stepped["acr"], json!(3));
    let t1 = auth_time(&stepped);
    assert!(t1 >= t0 + 100, "auth_time {t1} not re-dated after {t0}");

    // The session is at level 3 now: asking for 3 again is silent.
    h.mock.set_clock_offset(200);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "acr_values", "3")).await;
    let again = claims_after(&h, response, &verifier).await;
    assert_eq!(again["acr"], json!(3));
    assert_eq!(auth_time(&again), t1);
}

#[tokio::test]
async fn a_lower_or_unsupported_level_on_a_level_2_session_is_silent() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    let t0 = auth_time(&first);
    h.mock.set_clock_offset(100);
    for values in ["1", "2", "9 urn:gold"] {
        let (verifier, response) =
            authorize(&h, Some(&cookies), |p| set(p, "acr_values", values)).await;
        let claims = claims_after(&h, response, &verifier).await;
        assert_eq!(claims["acr"], json!(2), "acr_values={values}");
        assert_eq!(auth_time(&claims), t0, "acr_values={values}");
    }
}

#[tokio::test]
async fn auto_approve_honours_max_age() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    let t0 = auth_time(&first);

    // Within max_age: the old sign-in stands.
    h.mock.set_clock_offset(50);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "max_age", "60")).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);

    // Beyond it: signed in again, now.
    h.mock.set_clock_offset(100);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "max_age", "60")).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert!(auth_time(&claims) >= t0 + 100);
    assert_eq!(claims["acr"], json!(2));
}

#[tokio::test]
async fn auto_approve_with_prompt_login_dates_a_new_sign_in() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    let t0 = auth_time(&first);
    h.mock.set_clock_offset(100);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "prompt", "login")).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert!(auth_time(&claims) >= t0 + 100);
}

#[tokio::test]
async fn prompt_none_answers_login_required_when_the_session_is_too_old_or_too_weak() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    let t0 = auth_time(&first);
    h.mock.set_clock_offset(100);

    let (_, response) = authorize(&h, Some(&cookies), |p| {
        set(p, "prompt", "none");
        set(p, "max_age", "60");
    })
    .await;
    assert_eq!(error_of(&response), "login_required");
    let (_, response) = authorize(&h, Some(&cookies), |p| {
        set(p, "prompt", "none");
        set(p, "acr_values", "3");
    })
    .await;
    assert_eq!(error_of(&response), "login_required");

    // A session that meets both answers, without re-dating it.
    let (verifier, response) = authorize(&h, Some(&cookies), |p| {
        set(p, "prompt", "none");
        set(p, "max_age", "600");
        set(p, "acr_values", "2");
    })
    .await;
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!(auth_time(&claims), t0);
    assert_eq!(claims["acr"], json!(2));
}

#[tokio::test]
async fn a_malformed_max_age_is_invalid_request() {
    let h = Harness::auto().await;
    for bad in ["-1", "1.5", "ten", "+5", " 5", "0x10", "60s"] {
        let (_, response) = authorize(&h, None, |p| set(p, "max_age", bad)).await;
        assert_eq!(error_of(&response), "invalid_request", "max_age={bad:?}");
        let query = query_map(&location(&response));
        assert!(query["error_description"].contains("max_age"));
        assert_eq!(query["state"], "state-123");
    }
    for good in ["0", "3600", "99999999999999999999999"] {
        let (_, response) = authorize(&h, None, |p| set(p, "max_age", good)).await;
        code_of(&response);
    }
}

#[tokio::test]
async fn a_refresh_keeps_the_grants_acr_and_auth_time() {
    let h = Harness::auto().await;
    let (verifier, response) = authorize(&h, None, |p| set(p, "acr_values", "3")).await;
    let tokens = exchange(&h, &code_of(&response), &verifier).await;
    let first = id_claims(&h, &tokens).await;
    assert_eq!(first["acr"], json!(3));

    h.mock.set_clock_offset(300);
    let response = h
        .refresh(tokens["refresh_token"].as_str().unwrap(), None)
        .await;
    assert_eq!(response.status(), 200);
    let refreshed = id_claims(&h, &response.json().await.unwrap()).await;
    assert_eq!(refreshed["acr"], json!(3));
    assert_eq!(auth_time(&refreshed), auth_time(&first));
    assert!(refreshed["iat"].as_i64().unwrap() >= first["iat"].as_i64().unwrap() + 300);
}

#[tokio::test]
async fn the_hybrid_id_token_carries_the_level_of_the_step_up() {
    let h = Harness::auto().await;
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    h.mock.set_clock_offset(100);
    let (_, response) = authorize(&h, Some(&cookies), |p| {
        set(p, "response_type", "code id_token");
        set(p, "acr_values", "3");
    })
    .await;
    let fragment = fragment_map(&location(&response));
    let claims = h.verified_claims(&fragment["id_token"]).await;
    assert_eq!(claims["acr"], json!(3));
    assert!(auth_time(&claims) >= auth_time(&first) + 100);
}

#[tokio::test]
async fn the_low_acr_fault_says_1_whatever_was_asked() {
    let h = Harness::auto().await;
    h.mock.inject(Fault::IdTokenLowAcr);
    let (verifier, response) = authorize(&h, None, |p| set(p, "acr_values", "3")).await;
    let code = code_of(&response);
    let tokens = exchange(&h, &code, &verifier).await;
    assert_eq!(id_claims(&h, &tokens).await["acr"], json!(1));
    let refreshed = h
        .refresh(tokens["refresh_token"].as_str().unwrap(), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(id_claims(&h, &refreshed).await["acr"], json!(1));

    // With the string fault too, the same level as a string.
    h.mock.inject(Fault::IdTokenStringAcr);
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "3")).await;
    assert_eq!(claims["acr"], json!("1"));

    // The grant itself was at level 3: without the fault its refresh says so.
    h.mock.clear_faults();
    let refreshed = h
        .refresh(refreshed["refresh_token"].as_str().unwrap(), None)
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(id_claims(&h, &refreshed).await["acr"], json!(3));
}

#[tokio::test]
async fn the_string_acr_fault_sends_the_requested_level_as_a_string() {
    let h = Harness::auto().await;
    h.mock.inject(Fault::IdTokenStringAcr);
    let (_, claims) = auto_sign_in(&h, |p| set(p, "acr_values", "3")).await;
    assert_eq!(claims["acr"], json!("3"));
}

#[tokio::test]
async fn the_stale_auth_time_fault_ignores_max_age_and_keeps_the_old_auth_time() {
    let h = Harness::auto().await;
    h.mock.inject(Fault::StaleAuthTime);
    let (cookies, first) = auto_sign_in(&h, |_| {}).await;
    let t0 = auth_time(&first);
    h.mock.set_clock_offset(100);

    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "max_age", "60")).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);
    let (_, response) = authorize(&h, Some(&cookies), |p| {
        set(p, "prompt", "none");
        set(p, "max_age", "60");
    })
    .await;
    code_of(&response);
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "prompt", "login")).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);
    // A step-up still raises the level, but keeps the old date.
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "acr_values", "3")).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!(claims["acr"], json!(3));
    assert_eq!(auth_time(&claims), t0);

    // Without the fault, the same session is too old for max_age.
    h.mock.clear_faults();
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "max_age", "60")).await;
    assert!(auth_time(&claims_after(&h, response, &verifier).await) >= t0 + 100);
}

/// The sign-in page for a request, sent with `session` cookies: the page's CSRF token, the
/// cookies the POST needs (the session's and the page's), and the HTML.
async fn page(
    h: &Harness,
    session: Option<&str>,
    edit: impl FnOnce(&mut Vec<(String, String)>),
) -> (String, String, String, String) {
    let (verifier, response) = authorize(h, session, edit).await;
    assert_unframeable_page(&response);
    let page_cookies = cookie_header(&response);
    let cookies = match session {
        Some(session) => format!("{session}; {page_cookies}"),
        None => page_cookies,
    };
    let html = response.text().await.unwrap();
    (verifier, csrf_field(&html), cookies, html)
}

/// Approves a page as `sub`.
async fn approve(h: &Harness, csrf: &str, cookies: &str, sub: &str) -> reqwest::Response {
    h.http
        .post(h.url("/oauth/authorize"))
        .header("cookie", cookies)
        .form(&[("csrf_token", csrf), ("action", "approve"), ("sub", sub)])
        .send()
        .await
        .unwrap()
}

/// Signs in on the page as the second demo clinician: the session's cookies, the claims.
async fn page_sign_in(h: &Harness) -> (String, Value) {
    let sub = h.mock.clinicians()[1].sub.clone();
    let (verifier, csrf, cookies, html) = page(h, None, |_| {}).await;
    assert!(!html.contains("class=\"banner\""));
    let response = approve(h, &csrf, &cookies, &sub).await;
    let session = cookie_header(&response);
    let claims = claims_after(h, response, &verifier).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["acr"], json!(2));
    (session, claims)
}

#[tokio::test]
async fn on_the_page_a_higher_level_asks_again_and_approve_steps_the_session_up() {
    let h = Harness::start(MockProvider::builder()).await;
    let sub = h.mock.clinicians()[1].sub.clone();
    let (session, first) = page_sign_in(&h).await;
    let t0 = auth_time(&first);

    // A lower level than the session's: straight back, still level 2, same date.
    h.mock.set_clock_offset(100);
    let (verifier, response) = authorize(&h, Some(&session), |p| set(p, "acr_values", "1")).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!(claims["acr"], json!(2));
    assert_eq!(auth_time(&claims), t0);

    // A higher one: the page, saying why, with the session's clinician selected.
    let (verifier, csrf, cookies, html) =
        page(&h, Some(&session), |p| set(p, "acr_values", "3")).await;
    assert!(html.contains("stronger sign-in (level 3)"), "{html}");
    assert!(html.contains(&format!("value=\"{sub}\" checked")));
    let response = approve(&h, &csrf, &cookies, &sub).await;
    assert_eq!(
        cookie_value(&cookie_header(&response), "mock_op_session"),
        cookie_value(&session, "mock_op_session")
    );
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!(claims["acr"], json!(3));
    let t1 = auth_time(&claims);
    assert!(t1 >= t0 + 100);

    // The session is at level 3 now: no page for level 3 again.
    h.mock.set_clock_offset(200);
    let (verifier, response) = authorize(&h, Some(&session), |p| set(p, "acr_values", "3")).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!((claims["acr"].clone(), auth_time(&claims)), (json!(3), t1));
}

#[tokio::test]
async fn on_the_page_max_age_and_prompt_login_re_date_the_session() {
    let h = Harness::start(MockProvider::builder()).await;
    let sub = h.mock.clinicians()[1].sub.clone();
    let (session, first) = page_sign_in(&h).await;
    let t0 = auth_time(&first);

    h.mock.set_clock_offset(30);
    let (verifier, response) = authorize(&h, Some(&session), |p| set(p, "max_age", "60")).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);

    h.mock.set_clock_offset(100);
    let (_, response) = authorize(&h, Some(&session), |p| {
        set(p, "prompt", "none");
        set(p, "max_age", "60");
    })
    .await;
    assert_eq!(error_of(&response), "login_required");
    let (verifier, csrf, cookies, html) =
        page(&h, Some(&session), |p| set(p, "max_age", "60")).await;
    assert!(html.contains("confirm it is you"), "{html}");
    assert!(html.contains(&format!("value=\"{sub}\" checked")));
    let response = approve(&h, &csrf, &cookies, &sub).await;
    let t1 = auth_time(&claims_after(&h, response, &verifier).await);
    assert!(t1 >= t0 + 100);

    h.mock.set_clock_offset(200);
    let (verifier, csrf, cookies, html) =
        page(&h, Some(&session), |p| set(p, "prompt", "login")).await;
    assert!(html.contains("confirm it is you"));
    let response = approve(&h, &csrf, &cookies, &sub).await;
    let claims = claims_after(&h, response, &verifier).await;
    assert!(auth_time(&claims) >= t0 + 200);
    assert_eq!(claims["acr"], json!(2));
}

#[tokio::test]
async fn on_the_page_the_stale_auth_time_fault_keeps_the_old_date() {
    let h = Harness::start(MockProvider::builder()).await;
    let sub = h.mock.clinicians()[1].sub.clone();
    let (session, first) = page_sign_in(&h).await;
    let t0 = auth_time(&first);
    h.mock.inject(Fault::StaleAuthTime);
    h.mock.set_clock_offset(100);

    // max_age is ignored: no page.
    let (verifier, response) = authorize(&h, Some(&session), |p| set(p, "max_age", "60")).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);

    // prompt=login still shows the page, but approving keeps the old auth_time.
    let (verifier, csrf, cookies, _) =
        page(&h, Some(&session), |p| set(p, "prompt", "login")).await;
    let response = approve(&h, &csrf, &cookies, &sub).await;
    assert_eq!(auth_time(&claims_after(&h, response, &verifier).await), t0);
}

#[tokio::test]
async fn approving_as_another_clinician_starts_a_new_session_at_the_requested_level() {
    let h = Harness::start(MockProvider::builder()).await;
    let (session, _) = page_sign_in(&h).await;
    let other = h.mock.clinicians()[2].sub.clone();
    h.mock.set_clock_offset(100);
    let (verifier, csrf, cookies, _) =
        page(&h, Some(&session), |p| set(p, "acr_values", "3")).await;
    let response = approve(&h, &csrf, &cookies, &other).await;
    assert_ne!(
        cookie_value(&cookie_header(&response), "mock_op_session"),
        cookie_value(&session, "mock_op_session")
    );
    let claims = claims_after(&h, response, &verifier).await;
    assert_eq!(claims["sub"], other.as_str());
    assert_eq!(claims["acr"], json!(3));
}

#[tokio::test]
async fn a_code_carries_the_sessions_level_at_issue() {
    let h = Harness::auto().await;
    let (cookies, _) = auto_sign_in(&h, |_| {}).await;
    // A level-2 code issued, then the session steps up before the code is exchanged.
    let (verifier, response) = authorize(&h, Some(&cookies), |_| {}).await;
    let code = code_of(&response);
    let (_, stepped) = authorize(&h, Some(&cookies), |p| set(p, "acr_values", "3")).await;
    code_of(&stepped);
    let tokens = exchange(&h, &code, &verifier).await;
    assert_eq!(
        decode(tokens["id_token"].as_str().unwrap()).1["acr"],
        json!(2)
    );

    // A later code says the session's level, not the lower one asked for.
    let (verifier, response) = authorize(&h, Some(&cookies), |p| set(p, "acr_values", "1")).await;
    assert_eq!(claims_after(&h, response, &verifier).await["acr"], json!(3));
}
