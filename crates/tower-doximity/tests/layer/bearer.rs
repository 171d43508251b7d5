//! Bearer mode over a real socket: an axum app behind the layer on `127.0.0.1:0`, called by
//! an HTTP client with `Authorization: Bearer`, the mock provider over HTTPS behind it. Tokens
//! come from real sign-ins at the mock. Time moves through an injected clock: no sleeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Extension, Router};
use doximity::scope::Scopes;
use doximity::{AuthorizeRequest, Client, Config, TokenSet};
use doximity_mock::{ClientRegistration, Endpoint, Fault, MockProvider};
use doximity_test::{REDIRECT, TestClock, https_client};
use http::StatusCode;
use tokio::sync::oneshot;
use tower::ServiceExt;
use tower_doximity::{BearerConfig, BearerCredential, DoximityAuth, DoximityIdentity, Mode};

struct Harness {
    mock: MockProvider,
    client: Client,
    clock: TestClock,
    app: Router,
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn new(bearer: BearerConfig) -> Self {
        Self::with(bearer, |a| a).await
    }

    async fn with(bearer: BearerConfig, configure: fn(DoximityAuth) -> DoximityAuth) -> Self {
        let mock = doximity_test::start_auto_approving(REDIRECT).await;
        let clock = TestClock::default();
        let client =
            Client::discover_with_clock(doximity_test::demo_config(&mock, REDIRECT), clock.clock())
                .await
                .unwrap();
        let auth = configure(DoximityAuth::new(client.clone()).with_bearer(bearer));
        let app = Router::new()
            .route(
                "/me",
                get(|Extension(user): Extension<DoximityIdentity>| async move {
                    format!("{} {}", user.sub(), user.scopes())
                }),
            )
            .route(
                "/how",
                get(
                    |Extension(c): Extension<BearerCredential>,
                     Extension(user): Extension<DoximityIdentity>| async move {
                        let token = user.access_token().map(|t| t.secret().len()).unwrap_or(0);
                        format!(
                            "{:?} {} {}",
                            c.kind(),
                            c.valid_until() - c.validated_at(),
                            token
                        )
                    },
                ),
            )
            .route("/profile", get(crate::harness::profile_name))
            .route(
                "/public",
                get(|user: Option<Extension<DoximityIdentity>>| async move {
                    user.map_or_else(|| "anonymous".to_owned(), |u| u.sub().to_owned())
                }),
            )
            .layer(auth.layer());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let served = app.clone();
        let server = tokio::spawn(async move {
            axum::serve(listener, served)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let http = https_client(&mock);
        Self {
            mock,
            client,
            clock,
            app,
            base,
            http,
            stop: Some(stop),
            server: Some(server),
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(secs);
    }

    fn userinfo_calls(&self) -> u64 {
        self.mock.requests(Endpoint::Userinfo)
    }

    /// Signs in at the mock (auto-approved) and returns the tokens.
    async fn sign_in(&self, scopes: &str) -> TokenSet {
        sign_in(&self.client, &self.http, scopes).await
    }

    async fn get(&self, path: &str, authorization: Option<&str>) -> reqwest::Response {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(a) = authorization {
            req = req.header("authorization", a);
        }
        req.send().await.unwrap()
    }

    async fn bearer(&self, path: &str, token: &str) -> reqwest::Response {
        self.get(path, Some(&format!("Bearer {token}"))).await
    }

    /// The status of `GET /me` with `token` as the bearer.
    async fn me_status(&self, token: &str) -> StatusCode {
        self.bearer("/me", token).await.status()
    }

    /// A second client of the same provider (`other-app`), registered for [`REDIRECT`].
    async fn other_client(&self) -> Client {
        self.mock.register_client(ClientRegistration {
            redirect_uris: vec![REDIRECT.to_owned()],
            ..ClientRegistration::new("other-app", "other-secret")
        });
        Client::discover(config(&self.mock, "other-app", "other-secret"))
            .await
            .unwrap()
    }

    /// `GET /me` with a bearer token, from the caller that a trusted proxy would name in
    /// `X-Forwarded-For` (the harness's apps key callers with [`forwarded_for`]).
    async fn call_as(&self, caller: &str, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/me", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("x-forwarded-for", format!("10.0.0.1, {caller}"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap()
    }

    /// `GET /me` with a bearer token through the layer in process, from the peer `addr` (as
    /// a server puts it in the request extensions).
    async fn call_from_peer(&self, addr: &str, token: &str) -> http::Response<axum::body::Body> {
        let mut req = http::Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .header("accept", "application/json")
            .body(axum::body::Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(addr.parse::<SocketAddr>().unwrap());
        self.app.clone().oneshot(req).await.unwrap()
    }

    /// `n` requests `GET /me` with `token` through the layer in process, spawned and let go
    /// at once (a barrier); JSON asked for when `json`.
    fn burst(
        &self,
        n: usize,
        token: &str,
        json: bool,
    ) -> Vec<tokio::task::JoinHandle<http::Response<axum::body::Body>>> {
        let barrier = Arc::new(tokio::sync::Barrier::new(n));
        (0..n)
            .map(|_| {
                let app = self.app.clone();
                let barrier = barrier.clone();
                let mut req =
                    http::Request::get("/me").header("authorization", format!("Bearer {token}"));
                if json {
                    req = req.header("accept", "application/json");
                }
                let req = req.body(axum::body::Body::empty()).unwrap();
                tokio::spawn(async move {
                    barrier.wait().await;
                    app.oneshot(req).await.unwrap()
                })
            })
            .collect()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

/// The caller key of an app behind a trusted proxy: the last `X-Forwarded-For` entry.
fn forwarded_for(parts: &http::request::Parts) -> Option<String> {
    let value = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?;
    let last = value.to_str().ok()?.rsplit(',').next()?.trim();
    Some(BearerConfig::ip_caller_key(last.parse().ok()?))
}

fn config(mock: &MockProvider, client_id: &str, secret: &str) -> Config {
    doximity_test::config(mock, client_id, secret, REDIRECT)
}

async fn sign_in(client: &Client, browser: &reqwest::Client, scopes: &str) -> TokenSet {
    let scopes: Scopes = scopes.parse().unwrap();
    doximity_test::sign_in(
        client,
        browser,
        &AuthorizeRequest::new().with_scopes(&scopes),
    )
    .await
}

/// `GET /me` from an API client with the unknown bearer token `junk-{i}`.
fn junk_me_request(i: usize) -> http::Request<axum::body::Body> {
    http::Request::get("/me")
        .header("authorization", format!("Bearer junk-{i}"))
        .header("accept", "application/json")
        .body(axum::body::Body::empty())
        .unwrap()
}

async fn json(res: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&res.text().await.unwrap()).unwrap()
}

#[tokio::test]
async fn valid_token_is_checked_once_then_served_from_the_cache() {
    let h = Harness::new(BearerConfig::new()).await;
    let tokens = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    let res = h.bearer("/me", tokens.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers().get("set-cookie").is_none(),
        "bearer mode sets no cookie"
    );
    assert_eq!(
        res.text().await.unwrap(),
        format!("{} openid", tokens.claims.sub)
    );
    for _ in 0..5 {
        let res = h.bearer("/me", tokens.access_token.secret()).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(
        h.userinfo_calls() - before,
        1,
        "one userinfo call for six requests"
    );
    // How it was authenticated, and the token handed back for API calls.
    let res = h.bearer("/how", tokens.access_token.secret()).await;
    let len = tokens.access_token.secret().len();
    assert_eq!(res.text().await.unwrap(), format!("AccessToken 300 {len}"));
    h.stop().await;
}

#[tokio::test]
async fn no_token_and_malformed_headers_are_refused_without_a_provider_call() {
    let h = Harness::new(BearerConfig::new()).await;
    let before = h.userinfo_calls();
    let res = h.get("/me", None).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "a browser is sent to sign in"
    );
    let res = h
        .http
        .get(format!("{}/me", h.base))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    for bad in [
        "Bearer",
        "Bearer a b",
        "Bearer <script>",
        "bearer \"quoted\"",
    ] {
        let res = h.get("/me", Some(bad)).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_request\""
        );
        assert_eq!(json(res).await["error"], "invalid_request");
    }
    // Another scheme is not bearer mode's: the session way answers (no session: 401).
    let res = h.get("/me", Some("Basic dXNlcjpwYXNz")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.userinfo_calls(), before);
    h.stop().await;
}

#[tokio::test]
async fn unknown_token_is_refused_and_remembered_briefly() {
    let h = Harness::new(BearerConfig::new().with_negative_ttl(Duration::from_secs(10))).await;
    let before = h.userinfo_calls();
    let secret = "made-up-token-0123456789";
    let res = h.bearer("/me", secret).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body = res.text().await.unwrap();
    assert!(
        body.contains("invalid_token") && !body.contains(secret),
        "{body}"
    );
    assert_eq!(h.me_status(secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(h.userinfo_calls() - before, 1, "the refusal is cached");
    h.advance(11);
    assert_eq!(h.me_status(secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.userinfo_calls() - before,
        2,
        "asked again after the negative TTL"
    );
    h.stop().await;
}

#[tokio::test]
async fn revoked_token_is_refused_once_its_cache_entry_expires() {
    let h = Harness::new(BearerConfig::new().with_ttl(Duration::from_secs(30))).await;
    let tokens = h.sign_in("openid").await;
    let token = tokens.access_token.secret();
    let before = h.userinfo_calls();
    assert_eq!(h.me_status(token).await, StatusCode::OK);
    h.mock.revoke_all_for(&tokens.claims.sub);
    // Within the TTL the cache answers (the documented trade-off)...
    h.advance(29);
    assert_eq!(h.me_status(token).await, StatusCode::OK);
    assert_eq!(h.userinfo_calls() - before, 1);
    // ...and once the entry expires the provider is asked again and says no.
    h.advance(1);
    let res = h.bearer("/me", token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(res).await["error"], "invalid_token");
    assert_eq!(h.userinfo_calls() - before, 2);
    h.stop().await;
}

#[tokio::test]
async fn one_thousand_concurrent_requests_with_one_new_token_make_one_userinfo_call() {
    one_thousand_requests_with_one_new_token().await;
}

/// 1,000 requests at once with one new token: all served, after exactly one userinfo call.
async fn one_thousand_requests_with_one_new_token() {
    let h = Harness::new(BearerConfig::new()).await;
    let tokens = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    let tasks = h.burst(1000, tokens.access_token.secret(), false);
    for t in tasks {
        assert_eq!(t.await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(h.userinfo_calls() - before, 1, "exactly one userinfo call");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_thousand_concurrent_requests_on_two_threads_make_one_userinfo_call() {
    one_thousand_requests_with_one_new_token().await;
}

#[tokio::test]
async fn scopes_come_from_the_userinfo_answer_and_the_profile_costs_no_extra_call() {
    let h = Harness::new(BearerConfig::new()).await;
    let basic = h.sign_in("openid profile:read:basic").await;
    let before = h.userinfo_calls();
    let res = h.bearer("/me", basic.access_token.secret()).await;
    assert_eq!(
        res.text().await.unwrap(),
        format!("{} openid profile:read:basic", basic.claims.sub)
    );
    let res = h.bearer("/profile", basic.access_token.secret()).await;
    let name = res.text().await.unwrap();
    assert!(!name.is_empty() && !name.starts_with("error"), "{name}");
    assert_eq!(
        h.userinfo_calls() - before,
        1,
        "the profile came with the check"
    );
    // An openid-only token: no profile scope, so no profile.
    let bare = h.sign_in("openid").await;
    let res = h.bearer("/profile", bare.access_token.secret()).await;
    let body = res.text().await.unwrap();
    assert!(body.contains("profile:read:basic"), "{body}");
    h.stop().await;
}

#[tokio::test]
async fn provider_rate_limit_answers_503_with_retry_after_and_closes_the_gate() {
    let h = Harness::new(BearerConfig::new()).await;
    let cached = h.sign_in("openid").await;
    let fresh = h.sign_in("openid").await;
    let other = h.sign_in("openid").await;
    assert_eq!(
        h.me_status(cached.access_token.secret()).await,
        StatusCode::OK
    );
    h.mock.inject(Fault::RateLimitExhausted);
    let before = h.userinfo_calls();
    // 200 concurrent requests with a new token: one provider call, every one answered 503.
    let tasks = h.burst(200, fresh.access_token.secret(), true);
    for t in tasks {
        let res = t.await.unwrap();
        let (status, retry_after) = (res.status(), res.headers().get("retry-after").cloned());
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let secs: u64 = retry_after.unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&secs), "{secs}");
    }
    assert_eq!(h.userinfo_calls() - before, 1, "no stampede");
    // Another new token: refused at once, without asking (the window has not reset).
    let res = h.bearer("/me", other.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(json(res).await["error"], "provider_rate_limited");
    assert_eq!(h.userinfo_calls() - before, 1);
    // A token already vouched for keeps working.
    assert_eq!(
        h.me_status(cached.access_token.secret()).await,
        StatusCode::OK
    );
    h.stop().await;
}

#[tokio::test]
async fn provider_down_answers_503_and_is_not_cached() {
    let h = Harness::new(BearerConfig::new()).await;
    let tokens = h.sign_in("openid").await;
    h.mock.inject(Fault::UserinfoStatus(503));
    let res = h.bearer("/me", tokens.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().get("retry-after").is_none());
    assert_eq!(json(res).await["error"], "provider_unavailable");
    h.mock.clear_faults();
    let res = h.bearer("/me", tokens.access_token.secret()).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the outage was not remembered"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_bad_signature_on_the_userinfo_answer_is_a_502_and_not_trusted() {
    let h = Harness::new(BearerConfig::new()).await;
    let tokens = h.sign_in("openid").await;
    h.mock.inject(Fault::UserinfoBadSignature);
    let res = h.bearer("/me", tokens.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    h.mock.clear_faults();
    assert_eq!(
        h.me_status(tokens.access_token.secret()).await,
        StatusCode::OK
    );
    h.stop().await;
}

#[tokio::test]
async fn id_tokens_are_accepted_offline_only_when_enabled_and_only_for_our_audience() {
    let h = Harness::new(BearerConfig::new().with_id_tokens(true)).await;
    let tokens = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    let res = h.bearer("/how", tokens.id_token.secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.text().await.unwrap();
    assert!(
        body.starts_with("IdToken ") && body.ends_with(" 0"),
        "no access token: {body}"
    );
    assert_eq!(h.userinfo_calls(), before, "verified offline");
    // An ID token minted for another client of the same provider: wrong audience.
    let other = h.other_client().await;
    let foreign = sign_in(&other, &h.http, "openid").await;
    let res = h.bearer("/me", foreign.id_token.secret()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(res).await["error"], "invalid_token");
    // An expired ID token (the clock moves past `exp`).
    h.advance(3600);
    let res = h.bearer("/me", tokens.id_token.secret()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    h.stop().await;

    // Not enabled: an ID token is just an unknown access token to userinfo.
    let h = Harness::new(BearerConfig::new()).await;
    let tokens = h.sign_in("openid").await;
    let res = h.bearer("/me", tokens.id_token.secret()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    h.stop().await;
}

#[tokio::test]
async fn a_public_path_lets_a_bad_token_through_without_an_identity() {
    let h = Harness::with(BearerConfig::new(), |a| a.add_public_path("/public")).await;
    let res = h.bearer("/public", "not-a-known-token").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "anonymous");
    let tokens = h.sign_in("openid").await;
    let res = h.bearer("/public", tokens.access_token.secret()).await;
    assert_eq!(res.text().await.unwrap(), tokens.claims.sub);
    h.stop().await;
}

#[tokio::test]
async fn optional_mode_still_refuses_a_bad_token() {
    let h = Harness::with(BearerConfig::new(), |a| a.with_mode(Mode::Optional)).await;
    let res = h.bearer("/public", "not-a-known-token").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = h.get("/public", None).await;
    assert_eq!(res.text().await.unwrap(), "anonymous");
    h.stop().await;
}

#[tokio::test]
async fn without_bearer_mode_a_bearer_token_does_not_sign_anyone_in() {
    let mock = doximity_test::start_auto_approving(REDIRECT).await;
    let demo = mock.client();
    let client = Client::discover(config(&mock, &demo.client_id, &demo.client_secret))
        .await
        .unwrap();
    let http = https_client(&mock);
    let tokens = sign_in(&client, &http, "openid").await;
    let app = Router::new()
        .route("/me", get(|| async { "in" }))
        .layer(DoximityAuth::new(client).layer());
    let req = http::Request::get("/me")
        .header(
            "authorization",
            format!("Bearer {}", tokens.access_token.secret()),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(mock.requests(Endpoint::Userinfo), 0);
}

#[tokio::test]
async fn axum_extractors_work_for_bearer_callers() {
    use axum_doximity::{DoximityUser, Profile, Scoped};
    use doximity::scope::ProfileReadBasic;

    let h = Harness::new(BearerConfig::new()).await;
    let app = Router::new()
        .route(
            "/me",
            get(|u: DoximityUser| async move { u.sub().to_owned() }),
        )
        .route(
            "/profile",
            get(
                |_: Scoped<ProfileReadBasic>, Profile(p): Profile| async move {
                    p.name.unwrap_or_default()
                },
            ),
        )
        .layer(
            DoximityAuth::new(h.client.clone())
                .with_bearer(BearerConfig::new())
                .layer(),
        );
    let call = |path: &'static str, token: String| {
        let app = app.clone();
        async move {
            let req = http::Request::get(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            app.oneshot(req).await.unwrap()
        }
    };
    let bare = h.sign_in("openid").await;
    let res = call("/me", bare.access_token.secret().clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = call("/profile", bare.access_token.secret().clone()).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"openid profile:read:basic\""
    );
    let basic = h.sign_in("openid profile:read:basic").await;
    let before = h.userinfo_calls();
    let res = call("/profile", basic.access_token.secret().clone()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        h.userinfo_calls() - before,
        1,
        "the check's answer is the profile"
    );
    h.stop().await;
}

/// Statuses of a burst of made-up tokens `junk-{prefix}-0..n` from one caller, in order.
async fn junk_burst(h: &Harness, caller: &str, prefix: &str, n: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let res = h.call_as(caller, &format!("junk-{prefix}-{i}")).await;
        statuses.push(res.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn junk_burst_from_one_caller_does_not_stop_a_real_token_from_another_caller() {
    let h = Harness::new(BearerConfig::new().with_caller_key(forwarded_for)).await;
    h.mock.set_rate_limit(3);
    let attacker = "203.0.113.7";
    // The app's budget at the provider: one call for the sign-in, one for the check below.
    let real = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    // The provider's budget for unknown tokens is 3 calls too: the fourth junk token draws
    // its 429, and from then on this caller's new tokens are stopped without a call.
    let statuses = junk_burst(&h, attacker, "a", 10).await;
    assert_eq!(statuses, [401, 401, 401, 503, 503, 503, 503, 503, 503, 503]);
    assert_eq!(h.userinfo_calls() - before, 4);
    let res = h.call_as(attacker, "junk-a-next").await;
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(json(res).await["error"], "provider_rate_limited");
    assert_eq!(h.userinfo_calls() - before, 4);
    // Its refused tokens are still answered from the cache: 401, not 503.
    assert_eq!(
        h.call_as(attacker, "junk-a-0").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // A real token the layer has never seen, from another caller: checked and let in.
    let res = h.call_as("198.51.100.9", real.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.userinfo_calls() - before, 5);
    h.stop().await;
}

#[tokio::test]
async fn a_caller_over_its_budget_gets_429_without_a_provider_call() {
    let bearer = BearerConfig::new()
        .with_caller_key(forwarded_for)
        .with_caller_budget(3, Duration::from_secs(60));
    let h = Harness::new(bearer).await;
    let before = h.userinfo_calls();
    let statuses = junk_burst(&h, "203.0.113.7", "a", 6).await;
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    assert_eq!(h.userinfo_calls() - before, 3, "no call beyond the budget");
    let res = h.call_as("203.0.113.7", "junk-a-next").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    // One check comes back every 60 / 3 = 20 seconds.
    assert_eq!(res.headers()["retry-after"], "20");
    assert_eq!(json(res).await["error"], "too_many_new_tokens");
    // A token cached as refused costs nothing, so it is still answered 401.
    assert_eq!(
        h.call_as("203.0.113.7", "junk-a-0").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // Another caller has its own budget.
    assert_eq!(
        junk_burst(&h, "198.51.100.9", "b", 1).await,
        [401],
        "another caller's budget is untouched"
    );
    assert_eq!(h.userinfo_calls() - before, 4);
    // The bucket refills: one more check after 20 seconds.
    h.advance(20);
    assert_eq!(junk_burst(&h, "203.0.113.7", "c", 2).await, [401, 429]);
    assert_eq!(h.userinfo_calls() - before, 5);
    h.stop().await;
}

#[tokio::test]
async fn the_default_caller_key_is_the_peer_address() {
    let bearer = BearerConfig::new().with_caller_budget(1, Duration::from_secs(60));
    let h = Harness::new(bearer).await;
    let before = h.userinfo_calls();
    let calls = [
        ("192.0.2.1:4000", "junk-1", 401),
        // Another connection (port) of the same address: the same caller.
        ("192.0.2.1:4001", "junk-2", 429),
        ("192.0.2.2:4000", "junk-3", 401),
        // IPv6: one /64 is one caller.
        ("[2001:db8:0:1::1]:443", "junk-4", 401),
        ("[2001:db8:0:1::2]:443", "junk-5", 429),
        ("[2001:db8:0:2::1]:443", "junk-6", 401),
    ];
    for (peer, token, expected) in calls {
        let status = h.call_from_peer(peer, token).await.status().as_u16();
        assert_eq!(status, expected, "{peer}");
    }
    assert_eq!(h.userinfo_calls() - before, 4);
    h.stop().await;
}

#[tokio::test]
async fn checks_beyond_the_concurrency_bound_are_503_without_a_provider_call() {
    let bearer = BearerConfig::new()
        .with_max_concurrent_checks(2)
        .with_check_wait(Duration::ZERO)
        .with_caller_budget(1_000, Duration::from_secs(60));
    let h = Harness::new(bearer).await;
    let before = h.userinfo_calls();
    // Ten distinct new tokens at once, on one thread: the two checks that got a slot cannot
    // finish before the others have asked for one.
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let app = h.app.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let req = junk_me_request(i);
                barrier.wait().await;
                let res = app.oneshot(req).await.unwrap();
                let retry_after = res.headers().get("retry-after").cloned();
                (res.status(), retry_after)
            })
        })
        .collect();
    let mut checked = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            (StatusCode::UNAUTHORIZED, _) => checked += 1,
            (StatusCode::SERVICE_UNAVAILABLE, Some(retry_after)) => {
                assert_eq!(retry_after, "1");
                busy += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((checked, busy), (2, 8));
    assert_eq!(
        h.userinfo_calls() - before,
        2,
        "never more than two at once"
    );
    // Once the slots are free again, a new token is checked.
    let res = h.bearer("/me", "junk-later").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.userinfo_calls() - before, 3);
    h.stop().await;
}

#[tokio::test]
async fn a_check_waits_briefly_for_a_slot() {
    let bearer = BearerConfig::new()
        .with_max_concurrent_checks(1)
        .with_check_wait(Duration::from_secs(10))
        .with_caller_budget(1_000, Duration::from_secs(60));
    let h = Harness::new(bearer).await;
    let before = h.userinfo_calls();
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let app = h.app.clone();
            tokio::spawn(async move {
                let req = junk_me_request(i);
                app.oneshot(req).await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.userinfo_calls() - before, 5, "one after the other");
    h.stop().await;
}

#[tokio::test]
async fn a_token_of_another_client_is_refused_and_remembered() {
    let h = Harness::new(BearerConfig::new()).await;
    let other = h.other_client().await;
    let foreign = sign_in(&other, &h.http, "openid profile:read:basic").await;
    // The provider vouches for it, for its own client only.
    assert!(
        other
            .identify_access_token(&foreign.access_token)
            .await
            .is_ok()
    );
    let before = h.userinfo_calls();
    for _ in 0..3 {
        let res = h.bearer("/me", foreign.access_token.secret()).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\""
        );
        let body = json(res).await;
        assert_eq!(body["error"], "invalid_token");
        assert!(
            !body.to_string().contains(foreign.access_token.secret()),
            "{body}"
        );
    }
    assert_eq!(h.userinfo_calls() - before, 1, "the refusal is cached");
    // Remembered for the negative TTL only.
    h.advance(11);
    let res = h.bearer("/me", foreign.access_token.secret()).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.userinfo_calls() - before, 2);
    h.stop().await;
}
