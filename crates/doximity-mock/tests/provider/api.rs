use serde_json::Value;

use crate::support::{Harness, cookie_value, set};

#[tokio::test]
async fn users_current_answers_the_profile_for_bearer_or_query_tokens() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    let who = &h.mock.clinicians()[0];
    let by_header: Value = h.users_current(&tokens.access).await.json().await.unwrap();
    assert_eq!(by_header["id"], who.sub.as_str());
    assert_eq!(by_header["firstname"], who.given_name.as_str());
    assert_eq!(by_header["lastname"], who.family_name.as_str());
    assert_eq!(by_header["specialty"], who.specialty.as_str());
    assert_eq!(by_header["email"], who.email.as_str());
    let by_query = h
        .http
        .get(h.url("/api/v1/users/current"))
        .query(&[("access_token", &tokens.access)])
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), 200);
    assert_eq!(by_query.json::<Value>().await.unwrap(), by_header);

    let missing = h
        .http
        .get(h.url("/api/v1/users/current"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    h.revoke(&tokens.access).await;
    let revoked = h.users_current(&tokens.access).await;
    assert_eq!(revoked.status(), 401);
}

#[tokio::test]
async fn share_page_escapes_what_it_shows() {
    let h = Harness::auto().await;
    let response = h
        .http
        .get(h.url("/share"))
        .query(&[
            ("url", "https://example.org/a?b=1&c=2"),
            ("subject", "<script>alert(1)</script>"),
            ("message", "\"quoted\" & 'single'"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let html = response.text().await.unwrap();
    assert!(html.contains("https://example.org/a?b=1&amp;c=2"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("&quot;quoted&quot; &amp; &#39;single&#39;"));
}

#[tokio::test]
async fn check_session_iframe_is_served_and_reflects_ended_sessions() {
    let h = Harness::auto().await;
    let response = h
        .http
        .get(h.url("/oauth/session_state"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // It must be framable by relying parties.
    assert!(response.headers().get("x-frame-options").is_none());
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    assert!(html.contains(&format!("<script nonce=\"{nonce}\">")));
    for needle in [
        "addEventListener(\"message\"",
        "mock_op_browser_state",
        "crypto.subtle.digest(\"SHA-256\"",
        "\"unchanged\"",
        "\"changed\"",
        "\"error\"",
        "postMessage(answer, event.origin)",
    ] {
        assert!(html.contains(needle), "{needle}");
    }

    let login = h.login_with(|p| set(p, "scope", "openid")).await;
    let browser_state = cookie_value(&login.cookies, "mock_op_browser_state").unwrap();
    let alive = |bs: String| {
        let h = &h;
        async move {
            h.http
                .get(h.url("/oauth/session_state/alive"))
                .query(&[("browser_state", bs)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["active"]
                .clone()
        }
    };
    assert_eq!(alive(browser_state.clone()).await, true);
    assert_eq!(alive("unknown".to_owned()).await, false);
    h.mock.end_provider_sessions();
    assert_eq!(alive(browser_state).await, false);
}
