//! The demo driven through the configuration contract: environment variables and routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;

use axum_app::{Demo, Env, start_on};
use doximity_mock::{ClientRegistration, Fault, MockProvider};

fn env(vars: &[(&str, String)]) -> Env {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Arc::new(move |k| map.get(k).cloned())
}

async fn listener() -> (tokio::net::TcpListener, String) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    (l, base)
}

/// A browser stand-in: a cookie jar, no automatic redirect, the mock's CA as its only root.
fn browser(mock: &MockProvider) -> reqwest::Client {
    doximity_test::Browser::new(mock).http
}

/// The demo with its embedded mock (no credentials) and the variables `vars`: the demo, its
/// base URL and a browser stand-in that trusts the mock.
async fn embedded(vars: &[(&str, String)]) -> (Demo, String, reqwest::Client) {
    let (l, base) = listener().await;
    let demo = start_on(l, env(vars)).await.unwrap();
    let http = browser(mock(&demo));
    (demo, base, http)
}

/// The embedded mock.
fn mock(demo: &Demo) -> &MockProvider {
    demo.mock
        .as_ref()
        .expect("no DOXIMITY_CLIENT_ID: the mock is embedded")
}

/// A person would pick a clinician on the mock's page; the tests approve as the first one.
fn approve_as_first(mock: &MockProvider) {
    mock.set_auto_approve(Some(mock.clinicians()[0].sub.clone()));
}

/// Starts the demo on `l`, pointed at `provider` as the client `credentials` (the mock's demo
/// client when `None`), the callback on `base`, plus the variables `extra`.
async fn start_for(
    provider: &MockProvider,
    l: tokio::net::TcpListener,
    base: &str,
    credentials: Option<(&str, &str)>,
    extra: &[(&str, String)],
) -> anyhow::Result<Demo> {
    let demo_client = provider.client();
    let (client_id, secret) =
        credentials.unwrap_or((&demo_client.client_id, &demo_client.client_secret));
    let mut vars = vec![
        ("DOXIMITY_CLIENT_ID", client_id.to_owned()),
        ("DOXIMITY_CLIENT_SECRET", secret.to_owned()),
        ("DOXIMITY_ISSUER", provider.issuer()),
        (
            "DOXIMITY_REDIRECT_URI",
            format!("{base}/auth/doximity/callback"),
        ),
        ("DOXIMITY_CA_CERT", provider.ca_path().display().to_string()),
    ];
    vars.extend(extra.iter().cloned());
    start_on(l, env(&vars)).await
}

/// Registers the client `app-under-test` at `provider` for the demo at `base`, and starts the
/// demo on `l` as that client, plus the variables `extra`.
async fn start_as_app_under_test(
    provider: &MockProvider,
    l: tokio::net::TcpListener,
    base: &str,
    extra: &[(&str, String)],
) -> Demo {
    provider.register_client(
        ClientRegistration::new("app-under-test", "app-secret")
            .with_redirect_uri(format!("{base}/auth/doximity/callback"))
            .with_post_logout_redirect_uri(format!("{base}/")),
    );
    let credentials = Some(("app-under-test", "app-secret"));
    start_for(provider, l, base, credentials, extra)
        .await
        .unwrap()
}

/// A provider whose discovery names another issuer, and the demo started against it as the
/// mock's demo client: the provider, the demo, its base URL and a browser stand-in.
async fn against_a_wrong_issuer() -> (MockProvider, Demo, String, reqwest::Client) {
    let provider = MockProvider::builder().start().await.unwrap();
    provider.inject(Fault::DiscoveryWrongIssuer);
    let (l, base) = listener().await;
    let demo = start_for(&provider, l, &base, None, &[]).await.unwrap();
    let http = browser(&provider);
    (provider, demo, base, http)
}

/// Asserts the layer's JSON answer to `path` when the provider cannot be used: 503,
/// `provider_unavailable`, and a description that names `reason`.
async fn assert_provider_unavailable(res: reqwest::Response, reason: &str, path: &str) {
    assert_eq!(res.status(), 503, "{path}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"], "provider_unavailable", "{path}");
    assert!(
        body["error_description"].as_str().unwrap().contains(reason),
        "{path}: {body}"
    );
}

/// A plain `GET url` (no `Accept`), its response.
async fn get(http: &reqwest::Client, url: impl reqwest::IntoUrl) -> reqwest::Response {
    http.get(url).send().await.unwrap()
}

/// `GET url` with `Accept: accept`, its response.
async fn get_accepting(
    http: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    accept: &str,
) -> reqwest::Response {
    http.get(url).header("accept", accept).send().await.unwrap()
}

/// Follows redirects by hand; returns the final response.
async fn follow(http: &reqwest::Client, mut url: String) -> reqwest::Response {
    for _ in 0..10 {
        let res = get_accepting(http, &url, "text/html").await;
        if !res.status().is_redirection() {
            return res;
        }
        url = res
            .url()
            .join(res.headers()["location"].to_str().unwrap())
            .unwrap()
            .to_string();
    }
    panic!("too many redirects");
}

/// The page at the end of the redirects from `url`.
async fn page(http: &reqwest::Client, url: String) -> String {
    follow(http, url).await.text().await.unwrap()
}

#[tokio::test]
async fn without_credentials_it_embeds_the_mock_provider() {
    let (demo, base, http) = embedded(&[]).await;
    let mock = mock(&demo);
    approve_as_first(mock);
    let res = follow(&http, format!("{base}/me")).await;
    assert_eq!(res.status(), 200);
    let me: serde_json::Value = res.json().await.unwrap();
    assert_eq!(me["sub"], mock.clinicians()[0].sub);
    assert_eq!(follow(&http, format!("{base}/")).await.status(), 200);
    demo.shutdown().await;
}

#[tokio::test]
async fn with_credentials_it_uses_the_configured_provider() {
    let provider = MockProvider::builder()
        .auto_approve(true)
        .start()
        .await
        .unwrap();
    let (l, base) = listener().await;
    let key = "A".repeat(86) + "==";
    let extra = [
        ("DOXIMITY_SCOPES", "openid profile:read:basic".into()),
        ("DOXIMITY_COOKIE_KEY", key),
    ];
    let demo = start_as_app_under_test(&provider, l, &base, &extra).await;
    assert!(demo.mock.is_none());
    let http = browser(&provider);
    let res = follow(&http, format!("{base}/profile")).await;
    assert_eq!(
        res.status(),
        200,
        "DOXIMITY_SCOPES asked for the profile at sign-in"
    );
    let profile: serde_json::Value = res.json().await.unwrap();
    assert_eq!(profile["name"], provider.clinicians()[0].name);
    demo.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_fails_discovery_leaves_the_app_up_but_refusing() {
    let (_provider, demo, base, http) = against_a_wrong_issuer().await;
    assert_eq!(get(&http, format!("{base}/")).await.status(), 200);
    for path in ["/me", "/auth/doximity/login"] {
        let res = get(&http, format!("{base}{path}")).await;
        assert_provider_unavailable(res, "issuer", path).await;
    }
    demo.shutdown().await;
}

#[tokio::test]
async fn a_malformed_cookie_key_is_a_start_up_error() {
    let provider = MockProvider::builder().start().await.unwrap();
    let (l, base) = listener().await;
    let credentials = Some(("doximity-demo-client", "x"));
    let extra = [("DOXIMITY_COOKIE_KEY", "too-short".into())];
    let err = start_for(&provider, l, &base, credentials, &extra)
        .await
        .err()
        .expect("a bad key must not start");
    assert!(
        format!("{err:#}").contains("DOXIMITY_COOKIE_KEY"),
        "{err:#}"
    );
    assert!(
        !format!("{err:#}").contains("too-short"),
        "the key is not echoed"
    );
}

#[tokio::test]
async fn the_home_page_has_the_buttons_and_signed_in_the_session_check_under_a_nonce() {
    let (demo, base, http) = embedded(&[]).await;
    let mock = mock(&demo);

    let res = follow(&http, format!("{base}/")).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    for (href, text) in [
        (
            "/auth/doximity/login?return_to=%2F",
            "Sign in with Doximity®",
        ),
        (
            "/auth/doximity/login?return_to=%2F&amp;type=verify",
            "Verify with Doximity®",
        ),
        (
            "/auth/doximity/login?return_to=%2F&amp;prompt=create",
            "Sign up with Doximity®",
        ),
    ] {
        assert!(
            html.contains(&format!(r#"href="{href}""#)) && html.contains(&format!(">{text}</a>")),
            "{text}: {html}"
        );
    }
    assert!(
        html.contains("no account is needed"),
        "says what the demo shows"
    );
    let own_url = format!("{base}/").replace(':', "%3A").replace('/', "%2F");
    assert!(
        html.contains(&format!(
            r#"<a class="doximity-share-button" href="{}/share?url={own_url}&amp;message="#,
            mock.browser_base()
        )),
        "the Share Button shares the demo's URL through the mock's /share: {html}"
    );
    assert!(html.contains(r#"aria-label="Share via Doximity""#));
    assert!(
        !html.contains("<script"),
        "no share script from a mock, no session check signed out"
    );
    assert!(!html.contains("<iframe"));

    approve_as_first(mock);
    assert_eq!(follow(&http, format!("{base}/me")).await.status(), 200);
    for path in ["/", "/session"] {
        let res = follow(&http, format!("{base}{path}")).await;
        assert_eq!(res.status(), 200, "{path}");
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = res.text().await.unwrap();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        assert!(
            csp.contains(&format!("frame-src {}", mock.browser_base())),
            "{csp}"
        );
        assert!(
            html.contains(&format!(
                r#"<iframe id="doximity-op" src="{}/oauth/session_state""#,
                mock.browser_base()
            )),
            "{path}: {html}"
        );
        assert!(
            html.contains(&format!(r#"<script nonce="{nonce}">"#)),
            "{path}"
        );
        assert!(
            html.contains(r#""clientId":"doximity-demo-client""#),
            "{path}"
        );
    }
    demo.shutdown().await;
}

#[tokio::test]
async fn the_profile_page_shows_what_the_granted_scopes_gave() {
    let scopes = "openid profile:read:basic profile:read:email profile:read:permissions";
    let (demo, base, http) = embedded(&[("DOXIMITY_SCOPES", scopes.into())]).await;
    let mock = mock(&demo);
    let who = mock.clinicians()[0].clone();
    approve_as_first(mock);
    assert_eq!(follow(&http, format!("{base}/me")).await.status(), 200);
    let html = page(&http, format!("{base}/")).await;
    assert!(
        html.contains(&format!(
            r#"<code id="profile-uuid">{}</code>"#,
            who.profile_uuid
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"<dd id="primary-email">{}</dd>"#, who.email)),
        "{html}"
    );
    for email in &who.emails {
        assert!(html.contains(&format!("<li>{email}</li>")), "{html}");
    }
    for permission in &who.permissions {
        assert!(html.contains(&format!("<li>{permission}</li>")), "{html}");
    }
    demo.shutdown().await;

    // With the basic profile alone: the profile id, and no email or permission.
    let (demo, base, http) = signed_in_demo().await;
    let html = page(&http, format!("{base}/show-profile")).await;
    assert!(html.contains(r#"id="profile-uuid""#), "{html}");
    assert!(!html.contains(&who.email), "{html}");
    assert!(!html.contains(r#"id="permissions""#), "{html}");
    demo.shutdown().await;
}

/// Signs in through the embedded mock (auto-approving as the first clinician) and returns the
/// demo, its base URL and the browser stand-in.
async fn signed_in_demo() -> (Demo, String, reqwest::Client) {
    let (demo, base, http) = embedded(&[]).await;
    approve_as_first(mock(&demo));
    assert_eq!(follow(&http, format!("{base}/me")).await.status(), 200);
    (demo, base, http)
}

#[tokio::test]
async fn the_embedded_mock_sends_the_browser_to_plain_http_loopback_pages_only() {
    let (demo, base, http) = embedded(&[]).await;
    let mock = mock(&demo);
    let browser_base = mock.browser_base();
    assert!(
        browser_base.starts_with("http://127.0.0.1:"),
        "{browser_base}"
    );
    assert!(
        mock.issuer().starts_with("https://"),
        "the back channel stays HTTPS"
    );
    let login = get_accepting(&http, format!("{base}/auth/doximity/login"), "text/html").await;
    assert_eq!(login.status(), 303);
    let location = login.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!("{browser_base}/oauth/authorize?")),
        "{location}"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn signed_in_home_shows_the_opaque_id_then_after_step_up_the_profile() {
    let (demo, base, http) = signed_in_demo().await;
    let mock = mock(&demo);
    let who = mock.clinicians()[0].clone();

    let html = page(&http, format!("{base}/")).await;
    assert!(
        html.contains(&format!(r#"<code id="sub">{}</code>"#, who.sub)),
        "{html}"
    );
    assert!(!html.contains(&who.name), "openid alone: no name");
    assert!(html.contains(r#"href="/show-profile""#), "a step-up button");
    assert!(
        html.contains("<li><code>openid</code></li>"),
        "the scopes granted"
    );
    assert!(html.contains("at the latest"), "when the session ends");
    assert!(
        html.contains(r#"id="session-status""#),
        "the session check's status"
    );
    assert!(
        html.contains(r#"<form class="actions" method="post" action="/auth/doximity/logout">"#),
        "sign-out is a POST form"
    );

    let res = follow(&http, format!("{base}/show-profile")).await;
    assert_eq!(res.url().path(), "/", "the step-up comes back home");
    let html = res.text().await.unwrap();
    assert!(
        html.contains(&format!("{}, {}", who.name, who.credentials)),
        "{html}"
    );
    assert!(html.contains(&who.specialty));
    assert!(
        html.contains(&format!(
            r#"<img id="photo" src="{}""#,
            who.profile_photo_url
        )),
        "{html}"
    );
    assert!(
        who.profile_photo_url.starts_with(&mock.browser_base()),
        "a local photo"
    );
    assert!(html.contains("<li><code>profile:read:basic</code></li>"));
    assert!(!html.contains(r#"href="/show-profile""#));

    // The JSON routes of the contract are unchanged.
    let me: serde_json::Value = get(&http, format!("{base}/me")).await.json().await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": who.sub, "scopes": "openid profile:read:basic"})
    );
    let profile: serde_json::Value = get(&http, format!("{base}/profile"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["name"], who.name.as_str());
    demo.shutdown().await;
}

/// The callback with `error=access_denied` for a login started in `http`'s jar.
async fn denied_callback(http: &reqwest::Client, base: &str) -> String {
    let login = get_accepting(http, format!("{base}/auth/doximity/login"), "text/html").await;
    let authorize = url::Url::parse(login.headers()["location"].to_str().unwrap()).unwrap();
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    let mut callback = url::Url::parse(&format!("{base}/auth/doximity/callback")).unwrap();
    callback.query_pairs_mut().extend_pairs([
        ("error", "access_denied"),
        ("error_description", "The user denied your request."),
        ("state", &state),
    ]);
    callback.to_string()
}

#[tokio::test]
async fn a_denied_sign_in_shows_the_access_denied_page_to_browsers_and_json_to_apis() {
    let (demo, base, http) = embedded(&[]).await;
    let callback = denied_callback(&http, &base).await;
    let res = get_accepting(&http, &callback, "text/html,*/*;q=0.8").await;
    assert_eq!(res.status(), 403);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = res.text().await.unwrap();
    assert!(
        html.contains("<h1>Sign-in cancelled: access denied</h1>"),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/auth/doximity/login?return_to=%2F""#),
        "sign in again"
    );
    assert!(
        html.contains(r#"href="/">Back to the home page</a>"#),
        "a way back"
    );

    let http = browser(mock(&demo));
    let callback = denied_callback(&http, &base).await;
    let res = get_accepting(&http, &callback, "application/json").await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["error"], "access_denied",
        "API clients keep the layer's JSON"
    );
    demo.shutdown().await;
}

#[tokio::test]
async fn a_provider_failing_at_the_callback_shows_the_provider_unavailable_page() {
    let (demo, base, http) = embedded(&[]).await;
    approve_as_first(mock(&demo));
    mock(&demo).inject(Fault::TokenStatus(503));
    let res = follow(&http, format!("{base}/me")).await;
    assert_eq!(res.status(), 503);
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Doximity® is unavailable</h1>"), "{html}");
    assert!(html.contains(r#"href="/">Back to the home page</a>"#));
    demo.shutdown().await;
}

#[tokio::test]
async fn a_provider_that_fails_discovery_shows_browsers_the_provider_unavailable_page() {
    let (_provider, demo, base, http) = against_a_wrong_issuer().await;
    let res = get_accepting(&http, format!("{base}/me"), "text/html").await;
    assert_eq!(res.status(), 503);
    // The client's backoff until its next discovery attempt (5 s at first).
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Doximity® is unavailable</h1>"), "{html}");
    assert!(html.contains("issuer"), "the reason: {html}");
    demo.shutdown().await;
}

#[tokio::test]
async fn the_session_ended_page_and_the_recheck_route() {
    let (demo, base, http) = embedded(&[]).await;
    let res = get(
        &http,
        format!("{base}/session-recheck?prompt=none&return_to=%2F"),
    )
    .await;
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "/auth/doximity/login?prompt=none&return_to=%2Fsession-ended"
    );
    let res = follow(&http, format!("{base}/session-ended")).await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Your session ended</h1>"), "{html}");
    assert!(
        html.contains(r#"href="/auth/doximity/login?return_to=%2F""#),
        "sign in again"
    );
    demo.shutdown().await;

    // Signed in after all: home.
    let (demo, base, http) = signed_in_demo().await;
    let res = get_accepting(&http, format!("{base}/session-ended"), "text/html").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    demo.shutdown().await;
}

#[tokio::test]
async fn a_configured_provider_never_gets_the_loopback_http_exception() {
    // The same mock, but configured through the environment as any provider would be: its
    // http browser pages break contract v2's strict discovery, so nothing signs in.
    let provider = MockProvider::builder()
        .browser_over_http(true)
        .start()
        .await
        .unwrap();
    let (l, base) = listener().await;
    let demo = start_as_app_under_test(&provider, l, &base, &[]).await;
    let http = browser(&provider);
    let res = get(&http, format!("{base}/auth/doximity/login")).await;
    assert_provider_unavailable(res, "https", "/auth/doximity/login").await;
    demo.shutdown().await;
}

/// `/metrics` (feature `metrics`, on for the demo's tests) serves the layer's metrics in
/// Prometheus's text format, public, with the sign-in just made counted.
#[tokio::test]
async fn metrics_are_served_in_prometheus_format() {
    let (demo, base, http) = signed_in_demo().await;
    let res = http
        .get(format!("{base}{}", axum_app::METRICS_PATH))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = res.text().await.unwrap();
    // Other tests of this binary sign in too (one recorder per process): at least one each.
    for name in [
        "doximity_sign_ins_total{outcome=\"started\"}",
        "doximity_sign_ins_total{outcome=\"completed\"}",
        "doximity_provider_latency_seconds_count{endpoint=\"token\"}",
        "# TYPE doximity_provider_latency_seconds summary",
    ] {
        assert!(text.contains(name), "{name} not in\n{text}");
    }
    demo.shutdown().await;
}
