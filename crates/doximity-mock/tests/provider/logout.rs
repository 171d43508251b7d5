use crate::support::{Harness, location, query_map, set};

use doximity_mock::MockProvider;

async fn logout(h: &Harness, params: &[(&str, &str)], cookies: &str) -> reqwest::Response {
    h.http
        .get(h.url("/oauth/logout"))
        .query(params)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn logout_ends_the_session_and_redirects_with_state() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let tokens = crate::support::Tokens::from(
        h.exchange(&login)
            .await
            .json::<serde_json::Value>()
            .await
            .unwrap(),
    );
    let response = logout(
        &h,
        &[
            ("id_token_hint", tokens.id_token.as_str()),
            ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
            ("state", "bye"),
        ],
        &login.cookies,
    )
    .await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        response.headers()["location"],
        "http://127.0.0.1:3000/?state=bye"
    );
    let cleared: Vec<&str> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("mock_op_session=;") && c.contains("Max-Age=0"))
    );

    // The provider session is gone: prompt=none now needs a login.
    let (_, challenge) = crate::support::pkce();
    let mut params = h.auth_params(&challenge);
    set(&mut params, "prompt", "none");
    let response = h.authorize(&params, Some(&login.cookies)).await;
    assert_eq!(query_map(&location(&response))["error"], "login_required");
}

#[tokio::test]
async fn logout_by_post_form_works_too() {
    let h = Harness::start(
        MockProvider::builder()
            .auto_approve(true)
            .post_logout_redirect_uri("http://localhost:4000/bye"),
    )
    .await;
    let tokens = h.tokens().await;
    let response = h
        .http
        .post(h.url("/oauth/logout"))
        .form(&[
            ("id_token_hint", tokens.id_token.as_str()),
            ("post_logout_redirect_uri", "http://localhost:4000/bye"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(response.headers()["location"], "http://localhost:4000/bye");
}

#[tokio::test]
async fn logout_refuses_unregistered_uris_and_bad_hints_with_a_page() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    let cases: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("id_token_hint", tokens.id_token.clone()),
            (
                "post_logout_redirect_uri",
                "https://evil.example/".to_owned(),
            ),
        ],
        vec![
            (
                "id_token_hint",
                format!("{}x", &tokens.id_token[..tokens.id_token.len() - 2]),
            ),
            (
                "post_logout_redirect_uri",
                "http://127.0.0.1:3000/".to_owned(),
            ),
        ],
        vec![
            ("id_token_hint", "garbage".to_owned()),
            (
                "post_logout_redirect_uri",
                "http://127.0.0.1:3000/".to_owned(),
            ),
        ],
        vec![(
            "post_logout_redirect_uri",
            "http://127.0.0.1:3000/".to_owned(),
        )],
        vec![("id_token_hint", tokens.id_token.clone())],
    ];
    for params in cases {
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = logout(&h, &borrowed, "").await;
        assert_eq!(response.status(), 400, "{borrowed:?}");
        assert!(response.headers().get("location").is_none());
        assert_eq!(response.headers()["x-frame-options"], "DENY");
    }

    // An ID token signed with a key the provider no longer publishes is refused.
    h.mock.rotate_keys();
    h.mock.retire_old_keys();
    let response = logout(
        &h,
        &[
            ("id_token_hint", tokens.id_token.as_str()),
            ("post_logout_redirect_uri", "http://127.0.0.1:3000/"),
        ],
        "",
    )
    .await;
    assert_eq!(response.status(), 400);
}
