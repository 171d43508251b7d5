//! The layer in process (`oneshot` through an axum router) against the mock provider over
//! HTTPS. Time moves through an injected clock: no sleeps.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

#[path = "support/http.rs"]
mod http_support;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity::secret::ClientSecret;
use doximity::{Client, Clock, Config};
use doximity_mock::{Endpoint, MockProvider};
use http::{Request, Response, StatusCode};
use http_support::{Jar, body, set_cookies};
use tower::ServiceExt;
use tower_doximity::{AuthError, DoximityAuth, DoximityIdentity, MemoryStore, Mode, RedisStore};

const REDIRECT: &str = "https://app.example/auth/doximity/callback";
const AFTER_LOGOUT: &str = "https://app.example/";

struct Harness {
    mock: MockProvider,
    auth: DoximityAuth,
    app: Router,
    offset: Arc<AtomicI64>,
    browser: reqwest::Client,
}

struct Options {
    redirect: &'static str,
    ttl: Option<Duration>,
    configure: fn(DoximityAuth) -> DoximityAuth,
    /// Applied after `configure`, for what a plain function cannot carry (a connected store).
    extra: Option<Box<dyn FnOnce(DoximityAuth) -> DoximityAuth>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redirect: REDIRECT,
            ttl: None,
            configure: |a| a,
            extra: None,
        }
    }
}

async fn harness(options: Options) -> Harness {
    let mut builder = MockProvider::builder()
        .auto_approve(true)
        .redirect_uri(options.redirect)
        .post_logout_redirect_uri(AFTER_LOGOUT);
    if let Some(ttl) = options.ttl {
        builder = builder.access_token_ttl(ttl);
    }
    let mock = builder.start().await.unwrap();
    let demo = mock.client();
    let config = Config::new(
        demo.client_id.clone(),
        ClientSecret::new(demo.client_secret.clone()),
        options.redirect.parse().unwrap(),
    )
    .with_issuer(&mock.issuer())
    .unwrap()
    .with_ca_cert_pem(mock.ca_pem().to_vec())
    .with_post_logout_redirect_uri(AFTER_LOGOUT.parse().unwrap());
    let offset = Arc::new(AtomicI64::new(0));
    let o = offset.clone();
    let clock = Clock::new(move || {
        let off = o.load(Ordering::SeqCst);
        let now = SystemTime::now();
        if off >= 0 {
            now + Duration::from_secs(off.unsigned_abs())
        } else {
            now - Duration::from_secs(off.unsigned_abs())
        }
    });
    let client = Client::discover_with_clock(config, clock).await.unwrap();
    let mut auth = (options.configure)(
        DoximityAuth::new(client).with_cookie_key(tower_doximity::Key::generate()),
    );
    if let Some(extra) = options.extra {
        auth = extra(auth);
    }
    let app = app_with(&auth);
    let browser = reqwest::Client::builder()
        .use_preconfigured_tls(mock.rustls_client_config())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    Harness {
        mock,
        auth,
        app,
        offset,
        browser,
    }
}

/// The three session stores, as harness options: the cookie store, `MemoryStore`, and (when a
/// `redis-server` runs) `RedisStore` under a key prefix of its own.
async fn store_backends(
    redis: Option<&redis_server::RedisServer>,
    prefix: &str,
) -> Vec<(&'static str, Options)> {
    let mut backends: Vec<(&str, Options)> = vec![
        (
            "cookie",
            Options {
                configure: |a| a.with_cookie_store(),
                ..Options::default()
            },
        ),
        (
            "memory",
            Options {
                configure: |a| a.with_store(MemoryStore::new()),
                ..Options::default()
            },
        ),
    ];
    if let Some(server) = redis {
        // The same key seals the cookie and the sessions in Redis.
        let key = tower_doximity::Key::generate();
        let store = RedisStore::connect(server.url())
            .await
            .unwrap()
            .with_prefix(format!("{prefix}{}:", std::process::id()));
        backends.push((
            "redis",
            Options {
                extra: Some(Box::new(move |a| a.with_cookie_key(key).with_store(store))),
                ..Options::default()
            },
        ));
    }
    backends
}

/// The test app's routes behind `auth`'s layer.
fn app_with(auth: &DoximityAuth) -> Router {
    Router::new()
        .route(
            "/me",
            get(
                |Extension(user): Extension<DoximityIdentity>| async move { user.sub().to_owned() },
            ),
        )
        .route(
            "/profile",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                match user.profile().await {
                    Ok(p) => p.name.unwrap_or_default(),
                    Err(e) => format!("error: {e}"),
                }
            }),
        )
        .route(
            "/token",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                user.access_token()
                    .map(|t| t.secret().len())
                    .unwrap_or(0)
                    .to_string()
            }),
        )
        .route(
            "/iss",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                user.claims().map_or_else(String::new, |c| c.iss.clone())
            }),
        )
        .route(
            "/maybe",
            get(|user: Option<Extension<DoximityIdentity>>| async move {
                user.map_or_else(|| "anonymous".to_owned(), |u| u.sub().to_owned())
            }),
        )
        .route("/submit", axum::routing::post(|| async { "posted" }))
        .route(
            "/scoped",
            get(|_: axum_doximity::Scoped<doximity::scope::ProfileReadBasic>| async { "scoped" }),
        )
        .layer(auth.layer())
}

impl Harness {
    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }

    async fn get(&self, path: &str, jar: &Jar) -> Response<Body> {
        self.send(
            Request::get(path)
                .header("cookie", jar.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Signs out as the app's own sign-out button does: a same-origin POST.
    async fn logout(&self, jar: &Jar) -> Response<Body> {
        self.send(
            Request::post("/auth/doximity/logout")
                .header("cookie", jar.header())
                .header("sec-fetch-site", "same-origin")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Login route → provider (auto-approve) → the callback URL the provider sent back.
    async fn to_provider(&self, login: &str, jar: &mut Jar) -> (Response<Body>, String) {
        let res = self.get(login, jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        let authorize = location(&res);
        let at = self.browser.get(&authorize).send().await.unwrap();
        assert!(at.status().is_redirection(), "{}", at.status());
        let back = at.headers()["location"].to_str().unwrap().to_owned();
        let url = url::Url::parse(&back).unwrap();
        (
            res,
            format!("{}?{}", url.path(), url.query().unwrap_or_default()),
        )
    }

    async fn sign_in(&self, return_to: &str) -> Jar {
        let mut jar = Jar::default();
        let (_, callback) = self
            .to_provider(
                &format!("/auth/doximity/login?return_to={}", enc(return_to)),
                &mut jar,
            )
            .await;
        let res = self.get(&callback, &jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", body(res).await);
        jar.update(&res);
        jar
    }

    /// The session check's silent re-check (`prompt=none`) started with `Sec-Fetch-Site:
    /// {site}`, to the callback URL the provider sent back (`login_required` expected).
    async fn silent_recheck(&self, jar: &mut Jar, site: &str) -> String {
        let res = self
            .send(
                Request::get("/auth/doximity/login?prompt=none&return_to=%2Fme")
                    .header("cookie", jar.header())
                    .header("sec-fetch-site", site)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        let at = self.browser.get(location(&res)).send().await.unwrap();
        let back = at.headers()["location"].to_str().unwrap().to_owned();
        let url = url::Url::parse(&back).unwrap();
        let callback = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        assert!(callback.contains("error=login_required"), "{callback}");
        callback
    }

    /// Moves time forward for the app and the provider alike.
    fn advance(&self, secs: i64) {
        let now = self.offset.fetch_add(secs, Ordering::SeqCst) + secs;
        self.mock.set_clock_offset(now);
    }
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn location(res: &Response<Body>) -> String {
    res.headers()["location"].to_str().unwrap().to_owned()
}

fn counts(mock: &MockProvider) -> [u64; 4] {
    [
        mock.requests(Endpoint::Token),
        mock.requests(Endpoint::Userinfo),
        mock.requests(Endpoint::Jwks),
        mock.requests(Endpoint::Revoke),
    ]
}

#[tokio::test]
async fn login_sets_a_transaction_cookie_and_redirects_with_state_nonce_and_pkce() {
    let h = harness(Options::default()).await;
    let res = h
        .get("/auth/doximity/login?return_to=%2Fme", &Jar::default())
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cookies = set_cookies(&res);
    assert_eq!(cookies.len(), 1);
    let c = &cookies[0];
    assert!(c.starts_with("__Host-doximity-login="), "{c}");
    for attr in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/",
        "Secure",
        "Max-Age=600",
    ] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    let url = url::Url::parse(&location(&res)).unwrap();
    assert!(url.as_str().starts_with(&h.mock.issuer()));
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["redirect_uri"], REDIRECT);
    for k in ["state", "nonce", "code_challenge"] {
        assert!(q[k].len() >= 43, "{k}");
        assert!(!c.contains(&q[k]), "{k} visible in the cookie");
    }
}

#[tokio::test]
async fn full_login_then_authenticated_requests_make_no_provider_call() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h
        .to_provider("/auth/doximity/login?return_to=%2Fme%3Fx%3D1", &mut jar)
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&res), "/me?x=1");
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["referrer-policy"], "no-referrer");
    let cookies = set_cookies(&res);
    for c in &cookies {
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.contains("Secure"));
        assert!(c.len() < 4096, "cookie too large: {}", c.len());
    }
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-session="))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-tokens="))
    );
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("__Host-doximity-login=;")
                || c.starts_with("__Host-doximity-login=") && c.contains("Max-Age=0"))
    );
    jar.update(&res);
    assert!(!jar.0.contains_key("__Host-doximity-login"));

    let before = counts(&h.mock);
    for _ in 0..5 {
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(set_cookies(&res).is_empty());
        let sub = body(res).await;
        assert!(h.mock.clinicians().iter().any(|c| c.sub == sub), "{sub}");
    }
    // Decrypting the access token is local too.
    let res = h.get("/token", &jar).await;
    assert_ne!(body(res).await, "0");
    assert_eq!(
        counts(&h.mock),
        before,
        "an authenticated request called the provider"
    );
}

#[tokio::test]
async fn forged_state_is_a_clear_400() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let url = url::Url::parse(&format!("https://x{callback}")).unwrap();
    let code: String = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let before = h.mock.requests(Endpoint::Token);
    let res = h
        .get(
            &format!("/auth/doximity/callback?code={code}&state=forged"),
            &jar,
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::Login(_))
    ));
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.contains("doximity-login=") && c.contains("Max-Age=0"))
    );
    let text = body(res).await;
    assert!(text.contains("state"), "{text}");
    assert!(!text.contains(&code), "the code leaked into the page");
    assert_eq!(h.mock.requests(Endpoint::Token), before);
}

#[tokio::test]
async fn a_replayed_transaction_cookie_is_refused_without_calling_the_provider() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let saved = jar.clone();
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let before = h.mock.requests(Endpoint::Token);
    let res = h.get(&callback, &saved).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::ReplayedTransaction)
    ));
    assert_eq!(h.mock.requests(Endpoint::Token), before);
}

#[tokio::test]
async fn a_missing_or_tampered_transaction_cookie_is_a_400_not_a_500() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    // A browser (it accepts HTML) gets a page; a client that asks for no HTML, JSON.
    let res = h
        .send(
            Request::get(&callback)
                .header("accept", "text/html,*/*;q=0.8")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(matches!(
        res.extensions().get::<AuthError>(),
        Some(AuthError::MissingTransaction)
    ));
    assert!(body(res).await.contains("<html>"));
    let res = h.get(&callback, &Jar::default()).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("login_transaction_missing"));
    let mut tampered = jar.clone();
    for v in tampered.0.values_mut() {
        v.replace_range(5..9, "AAAA");
    }
    let res = h
        .send(
            Request::get(&callback)
                .header("cookie", tampered.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
    assert_eq!(json["error"], "login_transaction_missing");
}

#[tokio::test]
async fn access_denied_is_a_403_page_for_browsers_and_json_for_apis() {
    let h = harness(Options::default()).await;
    for accept in ["text/html", "application/json"] {
        let mut jar = Jar::default();
        let res = h.get("/auth/doximity/login", &jar).await;
        jar.update(&res);
        let authorize = url::Url::parse(&location(&res)).unwrap();
        let state: String = authorize
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        let res = h
            .send(
                Request::get(format!(
                    "/auth/doximity/callback?error=access_denied&error_description=The+user+denied+your+request.&state={}",
                    enc(&state)
                ))
                .header("cookie", jar.header())
                .header("accept", accept)
                .body(Body::empty())
                .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let text = body(res).await;
        assert!(text.contains("denied"), "{text}");
        assert!(!text.contains(&state));
        if accept == "application/json" {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(json["error"], "access_denied");
        } else {
            assert!(text.contains("<html>"));
        }
    }
}

#[tokio::test]
async fn tampered_truncated_or_foreign_session_cookies_are_simply_unauthenticated() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let other = harness(Options::default()).await;
    let foreign = other.sign_in("/me").await;
    let mut variants = Vec::new();
    let mut t = jar.clone();
    for v in t.0.values_mut() {
        v.replace_range(10..14, "BBBB");
    }
    variants.push(t);
    let mut t = jar.clone();
    for v in t.0.values_mut() {
        v.truncate(v.len() / 2);
    }
    variants.push(t);
    variants.push(foreign);
    let mut t = Jar::default();
    t.0.insert("__Host-doximity-session".into(), "%%%not base64".into());
    variants.push(t);
    for bad in variants {
        let res = h
            .send(
                Request::get("/me")
                    .header("cookie", bad.header())
                    .header("accept", "application/json")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    }
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tokens_cookie_serves_only_the_session_it_was_sealed_for() {
    let h = harness(Options::default()).await;
    let a = h.sign_in("/me").await;
    let b = h.sign_in("/me").await;
    // Each session reads its own tokens: the access token and the ID-token claims.
    for jar in [&a, &b] {
        assert_ne!(body(h.get("/token", jar).await).await, "0");
        assert_eq!(body(h.get("/iss", jar).await).await, h.mock.issuer());
    }
    // A's identity with B's tokens cookie (both sealed with the same key): no token, no
    // claims of B.
    let mut mixed = a.clone();
    let tokens = "__Host-doximity-tokens";
    mixed.0.insert(tokens.into(), b.0[tokens].clone());
    assert_eq!(h.get("/me", &mixed).await.status(), StatusCode::OK);
    assert_eq!(body(h.get("/token", &mixed).await).await, "0");
    assert_eq!(body(h.get("/iss", &mixed).await).await, "");
}

#[tokio::test]
async fn the_three_answers_for_unauthenticated_requests() {
    let h = harness(Options::default()).await;
    let anon = Jar::default();
    // Browser navigation.
    let res = h.get("/me?tab=2", &anon).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&res),
        "/auth/doximity/login?return_to=%2Fme%3Ftab%3D2"
    );
    // API.
    for (name, value) in [
        ("accept", "application/json"),
        ("authorization", "Bearer nope"),
        ("sec-fetch-mode", "cors"),
    ] {
        let res = h
            .send(
                Request::get("/me")
                    .header(name, value)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert!(matches!(
            res.extensions().get::<AuthError>(),
            Some(AuthError::Unauthenticated)
        ));
        let json: serde_json::Value = serde_json::from_str(&body(res).await).unwrap();
        assert_eq!(json["error"], "unauthenticated");
    }
    // gRPC.
    let res = h
        .send(
            Request::post("/svc.Greeter/Hello")
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["grpc-status"], "16");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    // A browser's POST is not redirected.
    let res = h
        .send(Request::post("/submit").body(Body::empty()).unwrap())
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn optional_mode_passes_through_and_attaches_the_identity_when_present() {
    let h = harness(Options {
        configure: |a| a.with_mode(Mode::Optional),
        ..Options::default()
    })
    .await;
    let res = h.get("/maybe", &Jar::default()).await;
    assert_eq!(body(res).await, "anonymous");
    let jar = h.sign_in("/maybe").await;
    let res = h.get("/maybe", &jar).await;
    assert_ne!(body(res).await, "anonymous");
}

#[tokio::test]
async fn idle_timeout_ends_the_session_and_activity_extends_it() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let mut jar2 = jar.clone();
    // Activity every 20 minutes keeps the session alive (last_seen is written back).
    for _ in 0..3 {
        h.advance(20 * 60);
        let res = h.get("/me", &jar2).await;
        assert_eq!(res.status(), StatusCode::OK);
        jar2.update(&res);
    }
    // The original cookie was idle for an hour.
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
    h.advance(31 * 60);
    assert_eq!(h.get("/me", &jar2).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn absolute_timeout_ends_the_session() {
    let h = harness(Options {
        configure: |a| {
            a.with_idle_timeout(Duration::from_secs(24 * 3600))
                .with_absolute_timeout(Duration::from_secs(3600))
        },
        ttl: Some(Duration::from_secs(7200)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    h.advance(3599);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    h.advance(1);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn refresh_near_expiry_rotates_tokens_once() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let before = h.mock.requests(Endpoint::Token);
    // 29 s into a 40 s token: skew is 10 s, no refresh yet.
    h.advance(29);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before);
    h.advance(2);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
    let mut fresh = jar.clone();
    fresh.update(&res);
    assert_ne!(fresh.0, jar.0, "the refreshed session was not sent back");
    // A late request with the old cookie is upgraded from memory, not refreshed again.
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!set_cookies(&res).is_empty());
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
    // The new session works without a provider call.
    let res = h.get("/token", &fresh).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_make_exactly_one_refresh() {
    let h = Arc::new(
        harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..Options::default()
        })
        .await,
    );
    let jar = h.sign_in("/me").await;
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (h, jar) = (h.clone(), jar.clone());
        tasks.push(tokio::spawn(async move {
            let res = h.get("/me", &jar).await;
            (res.status(), set_cookies(&res))
        }));
    }
    for t in tasks {
        let (status, cookies) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("__Host-doximity-tokens=")),
            "a racing request left without the new cookie"
        );
    }
    assert_eq!(h.mock.requests(Endpoint::Token) - before, 1);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let sub = body(h.get("/me", &jar).await).await;
    h.mock.revoke_all_for(&sub);
    h.advance(35);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(set_cookies(&res).iter().any(|c| c.contains("Max-Age=0")));
}

/// Contract v2, point 7: a 5xx, a timeout, or an answer that is not JSON from the token
/// endpoint while refreshing never signs the user out, even once the access token has
/// expired; once the provider answers again, the next request refreshes once and succeeds with
/// the same cookies.
#[tokio::test]
async fn a_transient_refresh_failure_keeps_the_session() {
    for fault in [
        doximity_mock::Fault::TokenStatus(503),
        doximity_mock::Fault::TokenStatus(500),
        doximity_mock::Fault::TokenStatus(403),
        doximity_mock::Fault::TokenGarbage,
    ] {
        let name = format!("{fault:?}");
        let h = harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..Options::default()
        })
        .await;
        let jar = h.sign_in("/me").await;
        h.mock.inject(fault);
        h.advance(35);
        let res = h.get("/me", &jar).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{name}: signed out while refresh due"
        );
        assert!(
            set_cookies(&res).is_empty(),
            "{name}: {:?}",
            set_cookies(&res)
        );
        // The access token has expired: still signed in, never sent to sign in.
        h.advance(10);
        let before = h.mock.requests(Endpoint::Token);
        let res = h.get("/me", &jar).await;
        assert_eq!(
            res.status(),
            StatusCode::OK,
            "{name}: signed out after expiry"
        );
        assert!(set_cookies(&res).is_empty(), "{name}");
        assert_eq!(
            h.mock.requests(Endpoint::Token),
            before + 1,
            "{name}: not retried"
        );
        // The provider is back: the next request refreshes once, with the same cookies.
        h.mock.clear_faults();
        let before = h.mock.requests(Endpoint::Token);
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert!(
            set_cookies(&res)
                .iter()
                .any(|c| c.contains("doximity-tokens=")),
            "{name}: no new session cookies"
        );
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(h.mock.requests(Endpoint::Token), before + 1, "{name}");
    }
}

#[tokio::test]
async fn logout_destroys_the_session_revokes_and_redirects_to_the_provider() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let revokes = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Only the layer's own cookies are deleted: no `Clear-Site-Data` by default.
    assert!(res.headers().get("clear-site-data").is_none());
    assert_eq!(res.headers()["cache-control"], "no-store");
    let cleared = set_cookies(&res);
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-doximity-session=") && c.contains("Max-Age=0"))
    );
    assert!(
        cleared
            .iter()
            .any(|c| c.starts_with("__Host-doximity-tokens=") && c.contains("Max-Age=0"))
    );
    let url = url::Url::parse(&location(&res)).unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/oauth/logout", h.mock.issuer()))
    );
    let q: BTreeMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(q.contains_key("id_token_hint"));
    assert_eq!(q["post_logout_redirect_uri"], AFTER_LOGOUT);
    assert!(q["state"].len() >= 22);
    // The provider accepts it.
    let at = h.browser.get(url.as_str()).send().await.unwrap();
    assert!(at.status().is_redirection());
    h.auth.drain().await;
    assert_eq!(h.mock.requests(Endpoint::Revoke), revokes + 1);
    // Without a session: home, no provider call.
    let res = h.logout(&Jar::default()).await;
    assert_eq!(location(&res), "/");
}

#[tokio::test]
async fn a_failing_revocation_never_blocks_logout() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    h.mock.inject(doximity_mock::Fault::RevokeStatus(400));
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

#[tokio::test]
async fn step_up_and_profile_once_per_session() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/profile").await;
    // Only `openid`: the profile is refused, the session stays.
    let res = h.get("/profile", &jar).await;
    assert!(body(res).await.contains("profile:read:basic"));
    // Step-up: a handler that needs the scope sends the browser to the login route with the
    // extra scope and the layer's tag.
    let res = h
        .send(
            Request::get("/scoped")
                .header("cookie", jar.header())
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let step_up = location(&res);
    assert!(step_up.contains("step_up="), "{step_up}");
    let mut jar = Jar::default();
    let (res, callback) = h.to_provider(&step_up, &mut jar).await;
    let url = url::Url::parse(&location(&res)).unwrap();
    let scope = url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(scope, "openid profile:read:basic");
    let userinfo = h.mock.requests(Endpoint::Userinfo);
    let res = h.get(&callback, &jar).await;
    jar.update(&res);
    assert_eq!(location(&res), "/scoped");
    // Fetched once at sign-in, then served from the session.
    assert_eq!(h.mock.requests(Endpoint::Userinfo), userinfo + 1);
    for _ in 0..3 {
        let res = h.get("/profile", &jar).await;
        let name = body(res).await;
        assert!(!name.is_empty() && !name.starts_with("error"), "{name}");
    }
    assert_eq!(h.mock.requests(Endpoint::Userinfo), userinfo + 1);
    // An invalid scope parameter is refused.
    let res = h
        .get(
            "/auth/doximity/login?scope=%22bad%5Cscope%22",
            &Jar::default(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_rate_limited_profile_fetch_does_not_fail_the_login() {
    let h = harness(Options {
        configure: |a| a.with_step_up_scopes(&"profile:read:basic".parse().unwrap()),
        ..Options::default()
    })
    .await;
    h.mock.inject(doximity_mock::Fault::UserinfoStatus(429));
    let mut jar = Jar::default();
    let (_, callback) = h
        .to_provider(
            "/auth/doximity/login?scope=profile%3Aread%3Abasic",
            &mut jar,
        )
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // On demand later, once the provider is back; then kept in the session.
    h.mock.clear_faults();
    let res = h.get("/profile", &jar).await;
    jar.update(&res);
    assert!(!body(res).await.starts_with("error"));
    let n = h.mock.requests(Endpoint::Userinfo);
    let res = h.get("/profile", &jar).await;
    assert!(!body(res).await.starts_with("error"));
    assert_eq!(h.mock.requests(Endpoint::Userinfo), n);
}

#[tokio::test]
async fn memory_store_keeps_only_an_id_in_the_cookie() {
    let h = harness(Options {
        configure: |a| a.with_store(MemoryStore::new()),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    assert!(jar.0.contains_key("__Host-doximity-session"));
    assert!(!jar.0.contains_key("__Host-doximity-tokens"));
    assert!(jar.0["__Host-doximity-session"].len() < 200);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    assert_ne!(body(h.get("/token", &jar).await).await, "0");
    // Logout deletes it server-side: the old cookie no longer works.
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

#[tokio::test]
async fn plain_http_redirect_uri_drops_the_host_prefix() {
    let h = harness(Options {
        redirect: "http://127.0.0.1:3000/auth/doximity/callback",
        ..Options::default()
    })
    .await;
    let res = h.get("/auth/doximity/login", &Jar::default()).await;
    let c = &set_cookies(&res)[0];
    assert!(c.starts_with("doximity-login="), "{c}");
    assert!(!c.contains("Secure"));
    let jar = h.sign_in("/me").await;
    assert!(jar.0.contains_key("doximity-session"));
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn debug_output_holds_no_secret() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let debug = format!("{:?} {:?}", h.auth, h.auth.layer());
    for v in jar.0.values() {
        assert!(!debug.contains(v.as_str()));
    }
    assert!(debug.contains("[redacted]"));
    // The identity's Debug: no token, no session id.
    let app = Router::new()
        .route(
            "/dbg",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                let token = user.access_token().unwrap();
                let d = format!("{user:?}");
                assert!(!d.contains(token.secret().as_str()));
                d
            }),
        )
        .layer(h.auth.layer());
    let res = app
        .oneshot(
            Request::get("/dbg")
                .header("cookie", jar.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let d = body(res).await;
    assert!(d.contains("DoximityIdentity"), "{d}");
}

/// One behaviour suite, run against every backend: sign-in, a signed-in request without a
/// provider call, tampering, refresh once, idle timeout, logout.
#[tokio::test]
async fn store_behaviour_suite_runs_against_cookie_memory_and_redis_stores() {
    let redis = redis_server::RedisServer::shared().await;
    let backends = store_backends(redis.as_ref(), "suite").await;
    for (name, options) in backends {
        let h = harness(Options {
            ttl: Some(Duration::from_secs(40)),
            ..options
        })
        .await;
        let jar = h.sign_in("/me").await;
        let before = counts(&h.mock);
        assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK, "{name}");
        assert_eq!(counts(&h.mock), before, "{name}");
        let mut bad = jar.clone();
        for v in bad.0.values_mut() {
            v.replace_range(6..10, "CCCC");
        }
        assert_eq!(
            h.get("/me", &bad).await.status(),
            StatusCode::SEE_OTHER,
            "{name}"
        );
        h.advance(35);
        let res = h.get("/me", &jar).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        assert_eq!(h.mock.requests(Endpoint::Token), before[0] + 1, "{name}");
        let mut fresh = jar.clone();
        fresh.update(&res);
        assert_eq!(
            h.get("/token", &fresh).await.status(),
            StatusCode::OK,
            "{name}"
        );
        h.advance(31 * 60);
        assert_eq!(
            h.get("/me", &fresh).await.status(),
            StatusCode::SEE_OTHER,
            "{name}"
        );
        // Server-side stores end the session at logout, even for a copy of the cookie.
        if name != "cookie" {
            let jar = h.sign_in("/me").await;
            let res = h.logout(&jar).await;
            assert_eq!(res.status(), StatusCode::SEE_OTHER, "{name}");
            assert_eq!(
                h.get("/me", &jar).await.status(),
                StatusCode::SEE_OTHER,
                "{name}"
            );
            h.auth.drain().await;
        }
    }
}

/// No session fixation: signing in always mints a new session id, even when the browser
/// already carries one (planted or its own), and the old id stops working.
#[tokio::test]
async fn signing_in_mints_a_new_session_id_and_retires_the_old_one() {
    let h = harness(Options {
        configure: |a| a.with_store(MemoryStore::new()),
        ..Options::default()
    })
    .await;
    let first = h.sign_in("/me").await;
    // The same browser signs in again, carrying the old session cookie into the callback.
    let mut jar = first.clone();
    let (_, callback) = h
        .to_provider("/auth/doximity/login?return_to=%2Fme", &mut jar)
        .await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // The session the browser carried before is gone server-side: had the sign-in kept its
    // id, the old cookie would still open a live session.
    assert_eq!(h.get("/me", &first).await.status(), StatusCode::SEE_OTHER);
}

/// The login route forwards Doximity's `prompt` and the older `type` (the sign-in buttons'
/// Create and Verify variants); anything else is not passed on.
#[tokio::test]
async fn login_forwards_prompt_and_type() {
    let h = harness(Options::default()).await;
    let param = |url: &str, name: &str| {
        url::Url::parse(url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let res = h
        .get(
            "/auth/doximity/login?prompt=create&type=verify",
            &Jar::default(),
        )
        .await;
    let to = location(&res);
    assert_eq!(param(&to, "prompt").as_deref(), Some("create"));
    assert_eq!(param(&to, "type").as_deref(), Some("verify"));
    let res = h
        .get(
            "/auth/doximity/login?prompt=select_account&type=x",
            &Jar::default(),
        )
        .await;
    let to = location(&res);
    assert_eq!(param(&to, "prompt"), None);
    assert_eq!(param(&to, "type"), None);
}

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

/// Contract v2, point 3: sign-out is a same-origin POST; anything else leaves the session.
#[tokio::test]
async fn logout_signs_out_only_on_a_same_origin_post() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let post = |jar: &Jar, headers: &[(&str, &str)]| {
        let mut r = Request::post("/auth/doximity/logout").header("cookie", jar.header());
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(Body::empty()).unwrap()
    };
    let app = "https://app.example";
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("sec-fetch-site", "cross-site")],
        &[("sec-fetch-site", "same-site")],
        &[("sec-fetch-site", "none")],
        // The browser's own word wins over a matching Origin.
        &[("sec-fetch-site", "cross-site"), ("origin", app)],
        &[("origin", "https://evil.example")],
        &[("origin", "null")],
        &[("origin", "https://app.example.evil.example")],
        &[("origin", "http://app.example")],
        &[("referer", "https://evil.example/page")],
        &[("referer", "not a url")],
    ];
    for headers in refused {
        let res = h.send(post(&jar, headers)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{headers:?}");
        assert!(set_cookies(&res).is_empty(), "{headers:?}");
        assert_eq!(
            h.get("/me", &jar).await.status(),
            StatusCode::OK,
            "{headers:?}"
        );
    }
    // GET answers a page whose button POSTs; HEAD its headers. Neither signs out.
    let res = h.get("/auth/doximity/logout", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    let page = body(res).await;
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(page.contains("action=\"/auth/doximity/logout\""), "{page}");
    let res = h
        .send(
            Request::head("/auth/doximity/logout")
                .header("cookie", jar.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(set_cookies(&res).is_empty());
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    // Signed out: the browser's word, or (without it) the app's own Origin or Referer.
    let accepted: &[&[(&str, &str)]] = &[
        &[("sec-fetch-site", "same-origin")],
        &[("origin", app)],
        &[("referer", "https://app.example/account?x=1")],
    ];
    for headers in accepted {
        let jar = h.sign_in("/me").await;
        let res = h.send(post(&jar, headers)).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{headers:?}");
        assert_eq!(
            h.get("/me", &jar).await.status(),
            StatusCode::SEE_OTHER,
            "{headers:?}"
        );
    }
    h.auth.drain().await;
}

/// Contract v2, point 4: after a sign-out, a copy of the cookies made before it is refused,
/// in the default cookie-store mode too, including one that was about to be refreshed.
#[tokio::test]
async fn a_copy_of_the_cookies_is_refused_after_logout() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(40)),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    let copy = jar.clone();
    assert_eq!(h.logout(&jar).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &copy).await.status(), StatusCode::SEE_OTHER);
    // Refresh due: still refused, and no refresh at the provider.
    h.advance(35);
    let before = h.mock.requests(Endpoint::Token);
    assert_eq!(h.get("/me", &copy).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.mock.requests(Endpoint::Token), before);
    // Another layer made from the same `DoximityAuth` (another router) refuses it too.
    let other = app_with(&h.auth);
    let res = other
        .oneshot(
            Request::get("/me")
                .header("cookie", copy.header())
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// Contract v2, point 5: every response that carries a session `Set-Cookie` is `no-store`.
#[tokio::test]
async fn responses_that_set_session_cookies_are_never_cached() {
    let h = harness(Options {
        ttl: Some(Duration::from_secs(400)),
        ..Options::default()
    })
    .await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.headers()["cache-control"], "no-store", "callback");
    jar.update(&res);
    // A touch (last_seen written back) on the fast path.
    h.advance(61);
    let res = h.get("/me", &jar).await;
    assert!(!set_cookies(&res).is_empty(), "no touch");
    assert_eq!(res.headers()["cache-control"], "no-store", "touch");
    jar.update(&res);
    // A refresh.
    h.advance(320);
    let res = h.get("/me", &jar).await;
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.contains("doximity-tokens=")),
        "no refresh"
    );
    assert_eq!(res.headers()["cache-control"], "no-store", "refresh");
    jar.update(&res);
    // A request that sets no cookie is left alone.
    let res = h.get("/me", &jar).await;
    assert!(set_cookies(&res).is_empty());
    assert!(res.headers().get("cache-control").is_none());
    // Logout.
    let res = h.logout(&jar).await;
    assert_eq!(res.headers()["cache-control"], "no-store", "logout");
    h.auth.drain().await;
}

/// Contract v2, points 1 and 2: a ring of cookie keys, newest first; a cookie opens only for
/// the issuer and client it was sealed for.
#[tokio::test]
async fn cookie_keys_rotate_and_bind_to_issuer_and_client() {
    let (old, new) = (
        tower_doximity::Key::generate(),
        tower_doximity::Key::generate(),
    );
    let h = harness(Options::default()).await;
    let app = |auth: DoximityAuth| app_with(&auth);
    let sealed_by_old = app(h.auth.clone().with_cookie_keys([old.clone()]));
    let jar = {
        let mut jar = Jar::default();
        let res = sealed_by_old
            .clone()
            .oneshot(
                Request::get("/auth/doximity/login")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        jar.update(&res);
        let at = h.browser.get(location(&res)).send().await.unwrap();
        let back = url::Url::parse(at.headers()["location"].to_str().unwrap()).unwrap();
        let res = sealed_by_old
            .clone()
            .oneshot(
                Request::get(format!("{}?{}", back.path(), back.query().unwrap()))
                    .header("cookie", jar.header())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        jar
    };
    let status = |app: Router, jar: Jar| async move {
        app.oneshot(
            Request::get("/token")
                .header("cookie", jar.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
    };
    assert_eq!(
        status(sealed_by_old.clone(), jar.clone()).await,
        StatusCode::OK
    );
    // Rotated: the new key first, the old one still listed: both open (the tokens too).
    let rotated = app(h.auth.clone().with_cookie_keys([new.clone(), old.clone()]));
    assert_eq!(status(rotated, jar.clone()).await, StatusCode::OK);
    // The old key dropped: not signed in, never a 500.
    let dropped = app(h.auth.clone().with_cookie_keys([new.clone()]));
    assert_eq!(status(dropped, jar.clone()).await, StatusCode::UNAUTHORIZED);
    // The same key, another client id or another issuer: not signed in.
    let demo = h.mock.client();
    let discover = |client_id: &str, issuer: Option<String>| {
        let mut config = Config::new(
            client_id.to_owned(),
            ClientSecret::new(demo.client_secret.clone()),
            REDIRECT.parse().unwrap(),
        )
        .with_ca_cert_pem(h.mock.ca_pem().to_vec());
        if let Some(issuer) = issuer {
            config = config.with_issuer(&issuer).unwrap();
        }
        Client::discover(config)
    };
    let other_client = discover("another-client", Some(h.mock.issuer()))
        .await
        .unwrap();
    let other_app = app(DoximityAuth::new(other_client).with_cookie_keys([old.clone()]));
    assert_eq!(
        status(other_app, jar.clone()).await,
        StatusCode::UNAUTHORIZED
    );
    let other_mock = MockProvider::builder().start().await.unwrap();
    let other_issuer = Client::discover(
        Config::new(
            demo.client_id.clone(),
            ClientSecret::new(demo.client_secret.clone()),
            REDIRECT.parse().unwrap(),
        )
        .with_issuer(&other_mock.issuer())
        .unwrap()
        .with_ca_cert_pem(other_mock.ca_pem().to_vec()),
    )
    .await
    .unwrap();
    let other_app = app(DoximityAuth::new(other_issuer).with_cookie_keys([old]));
    assert_eq!(status(other_app, jar).await, StatusCode::UNAUTHORIZED);
}

/// Contract v2, point 8: the login route requests the configured scopes, those the app lists
/// for step-up, and those of the layer's own (tagged) step-up link; nothing someone else added.
#[tokio::test]
async fn the_login_route_asks_only_for_allowed_scopes() {
    let scope_of = |res: &Response<Body>| {
        let url = url::Url::parse(&location(res)).unwrap();
        url.query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let h = harness(Options {
        configure: |a| a.with_step_up_scopes(&"profile:read:basic".parse().unwrap()),
        ..Options::default()
    })
    .await;
    let jar = Jar::default();
    for (query, want) in [
        ("scope=profile%3Aread%3Aemail", "openid"),
        ("scope=colleagues%3Awrite+openid", "openid"),
        ("scope=profile%3Aread%3Abasic", "openid profile:read:basic"),
        (
            "scope=profile%3Aread%3Abasic+hipaa%3Aidentified",
            "openid profile:read:basic",
        ),
        // A made-up tag is no tag.
        ("scope=profile%3Aread%3Aemail&step_up=AAAA", "openid"),
        ("", "openid"),
    ] {
        let res = h.get(&format!("/auth/doximity/login?{query}"), &jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER, "{query}");
        assert_eq!(scope_of(&res), want, "{query}");
    }
    // The layer's own step-up link carries a tag for exactly its scopes.
    let plain = harness(Options::default()).await;
    let jar = plain.sign_in("/me").await;
    let res = plain
        .send(
            Request::get("/scoped")
                .header("cookie", jar.header())
                .header("accept", "text/html")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let link = location(&res);
    let res = plain.get(&link, &Jar::default()).await;
    assert_eq!(scope_of(&res), "openid profile:read:basic");
    // The same tag on other scopes is dropped.
    let tag = url::Url::parse(&format!("https://x{link}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "step_up")
        .unwrap()
        .1
        .into_owned();
    let forged = format!(
        "/auth/doximity/login?scope=openid+profile%3Aread%3Aemail&step_up={}",
        enc(&tag)
    );
    let res = plain.get(&forged, &Jar::default()).await;
    assert_eq!(scope_of(&res), "openid");
}

/// A callback with a forged `state` does not burn the real sign-in attempt.
#[tokio::test]
async fn a_forged_callback_does_not_burn_the_victims_login() {
    let h = harness(Options::default()).await;
    let mut jar = Jar::default();
    let (_, callback) = h.to_provider("/auth/doximity/login", &mut jar).await;
    let url = url::Url::parse(&format!("https://x{callback}")).unwrap();
    let code: String = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    for forged in [
        format!("/auth/doximity/callback?code={}&state=forged", enc(&code)),
        format!("/auth/doximity/callback?code={}", enc(&code)),
    ] {
        let res = h.get(&forged, &jar).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{forged}");
    }
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{:?}", body(res).await);
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

/// `with_public` opens the paths its predicate accepts, and only those.
#[tokio::test]
async fn a_public_predicate_opens_only_the_paths_it_accepts() {
    let h = harness(Options {
        configure: |a| a.with_public(|path: &str| path.starts_with("/may")),
        ..Options::default()
    })
    .await;
    let res = h.get("/maybe", &Jar::default()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body(res).await, "anonymous");
    assert_eq!(
        h.get("/me", &Jar::default()).await.status(),
        StatusCode::SEE_OTHER
    );
    // The identity is still attached on a public path.
    let jar = h.sign_in("/me").await;
    assert_ne!(body(h.get("/maybe", &jar).await).await, "anonymous");
}

/// The bearer-only layer serves no auth routes and reads no cookies.
#[tokio::test]
async fn the_bearer_layer_ignores_cookies_and_serves_no_auth_routes() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    let app = Router::new()
        .route(
            "/me",
            get(
                |Extension(user): Extension<DoximityIdentity>| async move { user.sub().to_owned() },
            ),
        )
        .layer(h.auth.bearer_layer());
    let res = app
        .clone()
        .oneshot(
            Request::get("/me")
                .header("cookie", jar.header())
                .header("accept", "application/json")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookies(&res).is_empty());
    let res = app
        .oneshot(
            Request::get("/auth/doximity/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    // Not a login route here: no transaction, no redirect to the provider; a browser without
    // a token is refused like any other caller.
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get("location").is_none());
    assert!(set_cookies(&res).is_empty());
}

/// A lazily built layer does no I/O at start; while the provider cannot be reached, sign-in
/// answers 503 with `Retry-After`; once it can, sign-in works.
#[tokio::test]
async fn a_lazy_layer_answers_503_while_the_provider_is_unreachable() {
    let mock = MockProvider::builder()
        .auto_approve(true)
        .redirect_uri(REDIRECT)
        .start()
        .await
        .unwrap();
    let demo = mock.client();
    let vars = |issuer: String| {
        let map = std::collections::HashMap::from([
            ("DOXIMITY_CLIENT_ID", demo.client_id.clone()),
            ("DOXIMITY_CLIENT_SECRET", demo.client_secret.clone()),
            ("DOXIMITY_ISSUER", issuer),
            ("DOXIMITY_REDIRECT_URI", REDIRECT.to_owned()),
            ("DOXIMITY_CA_CERT", mock.ca_path().display().to_string()),
        ]);
        move |k: &str| map.get(k).cloned()
    };
    // Nothing listens on this port: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let down = DoximityAuth::lazy_from_lookup(vars(format!("https://{closed}"))).unwrap();
    let res = app_with(&down)
        .oneshot(
            Request::get("/auth/doximity/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let up = DoximityAuth::lazy_from_lookup(vars(mock.issuer())).unwrap();
    assert!(!up.client().is_ready(), "a lazy layer did I/O at start");
    let res = app_with(&up)
        .oneshot(
            Request::get("/auth/doximity/login")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with(&mock.issuer()));
}

/// `sign_out_user` ends every session of one user in each store: deleted in the memory and
/// Redis stores, refused in process for the cookie store; the user can sign in again.
#[tokio::test]
async fn an_operator_signs_out_every_session_of_a_user_in_every_store() {
    let redis = redis_server::RedisServer::shared().await;
    let backends = store_backends(redis.as_ref(), "operator").await;
    for (name, options) in backends {
        let h = harness(options).await;
        let first = h.sign_in("/me").await;
        let second = h.sign_in("/me").await;
        let sub = body(h.get("/me", &first).await).await;
        assert_eq!(body(h.get("/me", &second).await).await, sub, "{name}");
        let deleted = h.auth.sign_out_user(&sub).await.unwrap();
        assert_eq!(deleted, if name == "cookie" { 0 } else { 2 }, "{name}");
        for jar in [&first, &second] {
            assert_eq!(
                h.get("/me", jar).await.status(),
                StatusCode::SEE_OTHER,
                "{name}"
            );
        }
        // A later sign-in is a new session, not refused.
        h.advance(1);
        let again = h.sign_in("/me").await;
        assert_eq!(
            h.get("/me", &again).await.status(),
            StatusCode::OK,
            "{name}"
        );
    }
}

/// A store whose deletes fail while `failing` is set.
#[derive(Clone, Default)]
struct FlakyDeletes {
    inner: MemoryStore,
    failing: Arc<std::sync::atomic::AtomicBool>,
}

impl tower_doximity::SessionStore for FlakyDeletes {
    fn load<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
    ) -> tower_doximity::StoreFuture<'a, Option<tower_doximity::StoredSession>> {
        self.inner.load(id)
    }
    fn store<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
        session: &'a tower_doximity::StoredSession,
    ) -> tower_doximity::StoreFuture<'a, ()> {
        self.inner.store(id, session)
    }
    fn delete<'a>(
        &'a self,
        id: &'a tower_doximity::SessionId,
    ) -> tower_doximity::StoreFuture<'a, ()> {
        if self.failing.load(Ordering::SeqCst) {
            return Box::pin(async { Err(tower_doximity::StoreError::new("the store is down")) });
        }
        self.inner.delete(id)
    }
}

/// Logout fails closed: when the store cannot delete the session, the answer is 503, no
/// cookie is cleared, nothing is revoked, and the session is still whole; once the store is
/// back, signing out works.
#[tokio::test]
async fn logout_fails_closed_when_the_store_fails() {
    let store = FlakyDeletes::default();
    let failing = store.failing.clone();
    let h = harness(Options {
        extra: Some(Box::new(move |a| a.with_store(store))),
        ..Options::default()
    })
    .await;
    let jar = h.sign_in("/me").await;
    failing.store(true, Ordering::SeqCst);
    let revokes = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert!(set_cookies(&res).is_empty(), "{:?}", set_cookies(&res));
    h.auth.drain().await;
    assert_eq!(
        h.mock.requests(Endpoint::Revoke),
        revokes,
        "revoked while the session lives"
    );
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::OK);
    failing.store(false, Ordering::SeqCst);
    assert_eq!(h.logout(&jar).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(h.get("/me", &jar).await.status(), StatusCode::SEE_OTHER);
    h.auth.drain().await;
}

/// A revocation that fails while the provider is unavailable is tried again in the background,
/// a bounded number of times (three), and never holds up the sign-out.
#[tokio::test]
async fn a_failed_revocation_is_retried_in_the_background_a_bounded_number_of_times() {
    let h = harness(Options::default()).await;
    let jar = h.sign_in("/me").await;
    h.mock.inject(doximity_mock::Fault::RevokeStatus(503));
    let before = h.mock.requests(Endpoint::Revoke);
    let res = h.logout(&jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // `drain` waits for the background task to give up (no sleep here).
    h.auth.drain().await;
    assert_eq!(h.mock.requests(Endpoint::Revoke), before + 3);
}
