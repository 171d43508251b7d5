//! The session-mode harness: the layer in process (`oneshot` through an axum router) in front
//! of the mock provider over HTTPS, time moved through an injected clock.

use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity::Client;
use doximity_mock::{Endpoint, MockProvider};
use doximity_test::oneshot::{self, Jar};
use doximity_test::{TestClock, at_provider, demo_config, enc, https_client};
use http::{Request, Response, StatusCode};
use tower_doximity::{DoximityAuth, DoximityIdentity, MemoryStore, RedisStore};

use crate::redis_server;

pub(crate) const REDIRECT: &str = "https://app.example/auth/doximity/callback";
pub(crate) const AFTER_LOGOUT: &str = "https://app.example/";

pub(crate) struct Harness {
    pub(crate) mock: MockProvider,
    pub(crate) auth: DoximityAuth,
    pub(crate) app: Router,
    pub(crate) clock: TestClock,
    pub(crate) browser: reqwest::Client,
}

pub(crate) struct Options {
    pub(crate) redirect: &'static str,
    pub(crate) ttl: Option<Duration>,
    pub(crate) configure: fn(DoximityAuth) -> DoximityAuth,
    /// Applied after `configure`, for what a plain function cannot carry (a connected store).
    pub(crate) extra: Option<Box<dyn FnOnce(DoximityAuth) -> DoximityAuth>>,
    /// The client signs DPoP proofs (the mock advertises DPoP): tokens are bound to its key.
    pub(crate) dpop: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            redirect: REDIRECT,
            ttl: None,
            configure: |a| a,
            extra: None,
            dpop: false,
        }
    }
}

pub(crate) async fn harness(options: Options) -> Harness {
    let mut builder =
        doximity_test::auto_approving(options.redirect).post_logout_redirect_uri(AFTER_LOGOUT);
    if let Some(ttl) = options.ttl {
        builder = builder.access_token_ttl(ttl);
    }
    let mock = builder.start().await.unwrap();
    let mut config = demo_config(&mock, options.redirect)
        .with_post_logout_redirect_uri(AFTER_LOGOUT.parse().unwrap());
    if options.dpop {
        config = config.with_dpop_key(doximity::dpop::DpopKey::generate().unwrap());
    }
    let clock = TestClock::default();
    let client = Client::discover_with_clock(config, clock.clock())
        .await
        .unwrap();
    let mut auth = (options.configure)(
        DoximityAuth::new(client).with_cookie_key(tower_doximity::Key::generate()),
    );
    if let Some(extra) = options.extra {
        auth = extra(auth);
    }
    let app = app_with(&auth);
    let browser = https_client(&mock);
    Harness {
        mock,
        auth,
        app,
        clock,
        browser,
    }
}

/// The three session stores, as harness options: the cookie store, `MemoryStore`, and (when a
/// `redis-server` runs) `RedisStore` under a key prefix of its own.
pub(crate) async fn store_backends(
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
pub(crate) fn app_with(auth: &DoximityAuth) -> Router {
    Router::new()
        .route(
            "/me",
            get(
                |Extension(user): Extension<DoximityIdentity>| async move { user.sub().to_owned() },
            ),
        )
        .route("/profile", get(profile_name))
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
        .route(
            "/acr3",
            get(|u: axum_doximity::RequireAcr<3>| async move { auth_summary(&u) }),
        )
        .route(
            "/recent",
            get(|u: axum_doximity::AuthenticatedWithin<300>| async move { auth_summary(&u) }),
        )
        .layer(auth.layer())
}

/// `acr` and `auth_time` of the sign-in, as `acr|auth_time`.
fn auth_summary(user: &DoximityIdentity) -> String {
    format!(
        "{}|{}",
        user.acr().map(ToString::to_string).unwrap_or_default(),
        user.auth_time().unwrap_or_default()
    )
}

/// `GET /profile`: the signed-in user's name from the profile, or the error.
pub(crate) async fn profile_name(Extension(user): Extension<DoximityIdentity>) -> String {
    match user.profile().await {
        Ok(p) => p.name.unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

/// A request for `path` with the cookies of `jar`, headers `extra` added.
pub(crate) fn request(
    method: http::Method,
    path: &str,
    jar: &Jar,
    extra: &[(&str, &str)],
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", jar.header());
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    req.body(Body::empty()).unwrap()
}

impl Harness {
    pub(crate) async fn send(&self, req: Request<Body>) -> Response<Body> {
        oneshot::send(&self.app, req).await
    }

    pub(crate) async fn get(&self, path: &str, jar: &Jar) -> Response<Body> {
        self.send(request(http::Method::GET, path, jar, &[])).await
    }

    /// A browser's page request: `GET path` asking for HTML.
    pub(crate) async fn get_html(&self, path: &str, jar: &Jar) -> Response<Body> {
        self.send(request(
            http::Method::GET,
            path,
            jar,
            &[("accept", "text/html")],
        ))
        .await
    }

    /// Signs out as the app's own sign-out button does: a same-origin POST.
    pub(crate) async fn logout(&self, jar: &Jar) -> Response<Body> {
        self.send(request(
            http::Method::POST,
            "/auth/doximity/logout",
            jar,
            &[("sec-fetch-site", "same-origin")],
        ))
        .await
    }

    /// Login route → provider (auto-approve) → the callback URL the provider sent back.
    pub(crate) async fn to_provider(&self, login: &str, jar: &mut Jar) -> (Response<Body>, String) {
        self.to_provider_with(&self.browser, login, jar).await
    }

    /// [`to_provider`](Self::to_provider) with another browser at the provider (one that
    /// keeps the provider's session cookie, say).
    pub(crate) async fn to_provider_with(
        &self,
        browser: &reqwest::Client,
        login: &str,
        jar: &mut Jar,
    ) -> (Response<Body>, String) {
        let res = self.get(login, jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        let callback = at_provider(browser, &res).await;
        (res, callback)
    }

    /// [`to_provider`](Self::to_provider) from the plain login route: the jar, the callback
    /// and the code in it.
    pub(crate) async fn to_provider_for_code(&self) -> (Jar, String, String) {
        let mut jar = Jar::default();
        let (_, callback) = self.to_provider("/auth/doximity/login", &mut jar).await;
        let url = url::Url::parse(&format!("https://x{callback}")).unwrap();
        let code: String = url
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        (jar, callback, code)
    }

    pub(crate) async fn sign_in(&self, return_to: &str) -> Jar {
        let mut jar = Jar::default();
        let login = format!("/auth/doximity/login?return_to={}", enc(return_to));
        oneshot::sign_in(&self.app, &self.browser, &login, &mut jar).await;
        jar
    }

    /// The session check's silent re-check (`prompt=none`) started with `Sec-Fetch-Site:
    /// {site}`, to the callback URL the provider sent back (`login_required` expected).
    pub(crate) async fn silent_recheck(&self, jar: &mut Jar, site: &str) -> String {
        let res = self
            .send(request(
                http::Method::GET,
                "/auth/doximity/login?prompt=none&return_to=%2Fme",
                jar,
                &[("sec-fetch-site", site)],
            ))
            .await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        let callback = at_provider(&self.browser, &res).await;
        assert!(callback.contains("error=login_required"), "{callback}");
        callback
    }

    /// Moves time forward for the app and the provider alike.
    pub(crate) fn advance(&self, secs: i64) {
        self.mock.set_clock_offset(self.clock.advance(secs));
    }
}

pub(crate) fn counts(mock: &MockProvider) -> [u64; 4] {
    [
        mock.requests(Endpoint::Token),
        mock.requests(Endpoint::Userinfo),
        mock.requests(Endpoint::Jwks),
        mock.requests(Endpoint::Revoke),
    ]
}
