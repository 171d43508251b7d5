//! The extractors behind the layer, against the mock provider over HTTPS.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

use axum::body::Body;
use axum::routing::get;
use axum::{Json, Router};
use axum_doximity::{
    DoximityAccessToken, DoximityRejection, DoximityUser, MissingDoximityLayer, Profile, Scoped,
};
use doximity::Client;
use doximity::scope::ProfileReadBasic;
use doximity_mock::{Endpoint, MockProvider};
use doximity_test::oneshot::{self, Jar, body as text};
use doximity_test::{demo_config, https_client};
use http::{Request, Response, StatusCode};
use tower_doximity::{DoximityAuth, Mode};

const REDIRECT: &str = "https://app.example/auth/doximity/callback";

fn routes() -> Router {
    Router::new()
        .route(
            "/",
            get(|u: Option<DoximityUser>| async move {
                u.map_or("guest".to_owned(), |u| u.sub().to_owned())
            }),
        )
        .route(
            "/me",
            get(|u: DoximityUser| async move { Json(serde_json::json!({ "sub": u.sub(), "scopes": u.scopes().to_string() })) }),
        )
        .route(
            "/scoped",
            get(|u: Scoped<doximity::scope!("profile:read:basic")>| async move { u.sub().to_owned() }),
        )
        .route(
            "/profile",
            get(|_: Scoped<ProfileReadBasic>, Profile(p): Profile| async move { Json(p) }),
        )
        .route(
            "/token",
            get(|t: DoximityAccessToken| async move { format!("{t:?}") }),
        )
}

struct H {
    mock: MockProvider,
    app: Router,
    browser: reqwest::Client,
}

async fn harness() -> H {
    let mock = doximity_test::start_auto_approving(REDIRECT).await;
    let config = demo_config(&mock, REDIRECT);
    let auth = DoximityAuth::new(Client::discover(config).await.unwrap()).with_mode(Mode::Optional);
    let app = routes().layer(auth.layer());
    let browser = https_client(&mock);
    H { mock, app, browser }
}

fn req(path: &str, cookie: &str, accept: &str) -> Request<Body> {
    Request::get(path)
        .header("cookie", cookie)
        .header("accept", accept)
        .body(Body::empty())
        .unwrap()
}

impl H {
    async fn send(&self, r: Request<Body>) -> Response<Body> {
        oneshot::send(&self.app, r).await
    }

    /// Signs in through the layer's routes; returns the `Cookie` header value.
    async fn sign_in(&self, login: &str) -> String {
        let mut jar = Jar::default();
        oneshot::sign_in(&self.app, &self.browser, login, &mut jar).await;
        jar.header()
    }
}

#[tokio::test]
async fn without_the_layer_every_extractor_names_the_missing_layer() {
    for path in ["/", "/me", "/scoped", "/profile", "/token"] {
        let res = oneshot::fetch(&routes(), path).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        assert!(
            text(res).await.contains("DoximityLayer is not installed"),
            "{path}"
        );
    }
    let r = DoximityRejection::from(MissingDoximityLayer::default());
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body_text().contains("DoximityLayer is not installed"));
}

#[tokio::test]
async fn optional_user_and_negotiated_not_signed_in() {
    let h = harness().await;
    assert_eq!(text(h.send(req("/", "", "text/html")).await).await, "guest");
    let res = h.send(req("/me", "", "text/html")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()["location"],
        "/auth/doximity/login?return_to=%2Fme"
    );
    let res = h.send(req("/me", "", "application/json")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let res = h
        .send(
            Request::get("/me")
                .header("content-type", "application/grpc")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.headers()["grpc-status"], "16");
}

#[tokio::test]
async fn scoped_steps_up_browsers_and_refuses_apis_with_insufficient_scope() {
    let h = harness().await;
    let cookie = h.sign_in("/auth/doximity/login").await;
    let res = h.send(req("/me", &cookie, "application/json")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let me: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(me["scopes"], "openid");
    // Browser: step-up to the login route with the union of scopes, back to the same page.
    let res = h.send(req("/scoped?x=1", &cookie, "text/html")).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let loc = res.headers()["location"].to_str().unwrap();
    // The scope list carries the layer's tag, so the login route requests exactly it.
    assert!(
        loc.starts_with(
            "/auth/doximity/login?return_to=%2Fscoped%3Fx%3D1&scope=openid+profile%3Aread%3Abasic&step_up="
        ),
        "{loc}"
    );
    // API: 403 insufficient_scope.
    let res = h.send(req("/scoped", &cookie, "application/json")).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer error=\"insufficient_scope\", scope=\"openid profile:read:basic\""
    );
    // Following the step-up grants the scope; the profile then comes once.
    let cookie = h.sign_in(loc).await;
    let res = h.send(req("/scoped", &cookie, "text/html")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let n = h.mock.requests(Endpoint::Userinfo);
    let res = h.send(req("/profile", &cookie, "application/json")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let p: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert!(p["sub"].is_string());
    assert_eq!(
        h.mock.requests(Endpoint::Userinfo),
        n,
        "fetched again although kept in the session"
    );
    // The access token extractor: decrypted, redacted in Debug.
    let res = h.send(req("/token", &cookie, "application/json")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = text(res).await;
    assert!(!d.is_empty() && !d.contains('.'), "{d}");
}

mod step_up {
    //! `RequireAcr` and `AuthenticatedWithin` (RFC 9470): their three answers, for a session
    //! sealed by the test kit and opened by the unchanged layer.

    use super::*;
    use axum_doximity::{AuthenticatedWithin, RequireAcr};
    use doximity::Acr;
    use doximity::secret::ClientSecret;
    use std::time::Duration;
    use tower_doximity::test_util::SignedIn;

    fn app(auth: &DoximityAuth) -> Router {
        Router::new()
            .route(
                "/acr2",
                get(|u: RequireAcr<2>| async move { u.sub().to_owned() }),
            )
            .route(
                "/acr3",
                get(|u: RequireAcr<3>| async move { u.sub().to_owned() }),
            )
            .route(
                "/recent",
                get(|u: AuthenticatedWithin<300>| async move { u.sub().to_owned() }),
            )
            .layer(auth.layer())
    }

    fn auth() -> DoximityAuth {
        let config = doximity::Config::new(
            "app".to_owned(),
            ClientSecret::new("secret".into()),
            REDIRECT.parse().unwrap(),
        )
        .with_issuer("https://auth.example.test")
        .unwrap();
        DoximityAuth::new(Client::lazy(config).unwrap())
    }

    async fn get_as(
        app: &Router,
        path: &str,
        cookie: &http::HeaderValue,
        accept: &str,
    ) -> Response<Body> {
        let mut r = Request::get(path).header("cookie", cookie);
        r = if accept == "grpc" {
            r.header("content-type", "application/grpc")
        } else {
            r.header("accept", accept)
        };
        oneshot::send(app, r.body(Body::empty()).unwrap()).await
    }

    #[tokio::test]
    async fn require_acr_passes_a_level_at_least_as_high_and_steps_up_a_lower_one() {
        let auth = auth();
        let app = app(&auth);
        let level2 = SignedIn::new("clinician-1")
            .acr(Acr::Number(2.into()))
            .cookie_header(&auth)
            .unwrap();
        let res = get_as(&app, "/acr2", &level2, "application/json").await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(text(res).await, "clinician-1");

        // A browser: to sign in again asking for the level, back to the same page.
        let res = get_as(&app, "/acr3?x=1", &level2, "text/html").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers()["location"],
            "/auth/doximity/login?return_to=%2Facr3%3Fx%3D1&acr_values=3"
        );
        // An API: 401 naming the level (RFC 9470).
        let res = get_as(&app, "/acr3", &level2, "application/json").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"3\""
        );
        let body: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
        assert_eq!(body["error"], "insufficient_user_authentication");
        // gRPC: 16 with the same detail.
        let res = get_as(&app, "/acr3", &level2, "grpc").await;
        assert_eq!(res.headers()["grpc-status"], "16");
        let message = res.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("acr_values=\"3\""), "{message}");

        // A string `acr` and a higher level pass; no `acr` at all does not.
        for (acr, pass) in [
            (Some(Acr::String("2".into())), true),
            (Some(Acr::Number(3.into())), true),
            (Some(Acr::Number(1.into())), false),
            (None, false),
        ] {
            let mut user = SignedIn::new("clinician-1");
            if let Some(acr) = acr.clone() {
                user = user.acr(acr);
            }
            let cookie = user.cookie_header(&auth).unwrap();
            let res = get_as(&app, "/acr2", &cookie, "application/json").await;
            let want = if pass {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(res.status(), want, "{acr:?}");
        }
    }

    #[tokio::test]
    async fn authenticated_within_passes_a_recent_sign_in_and_steps_up_an_old_one() {
        let auth = auth();
        let app = app(&auth);
        let recent = SignedIn::new("clinician-1")
            .authenticated_ago(Duration::from_secs(200))
            .cookie_header(&auth)
            .unwrap();
        let res = get_as(&app, "/recent", &recent, "application/json").await;
        assert_eq!(res.status(), StatusCode::OK);

        // 400 s ago is beyond 300 s and the 30 s leeway.
        let old = SignedIn::new("clinician-1")
            .authenticated_ago(Duration::from_secs(400))
            .cookie_header(&auth)
            .unwrap();
        let res = get_as(&app, "/recent", &old, "text/html").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            res.headers()["location"],
            "/auth/doximity/login?return_to=%2Frecent&max_age=300"
        );
        let res = get_as(&app, "/recent", &old, "application/json").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"insufficient_user_authentication\", error_description=\"More recent authentication is required\", max_age=\"300\""
        );
        let res = get_as(&app, "/recent", &old, "grpc").await;
        assert_eq!(res.headers()["grpc-status"], "16");
        let message = res.headers()["grpc-message"].to_str().unwrap();
        assert!(message.contains("max_age=300"), "{message}");
    }

    #[tokio::test]
    async fn a_step_up_keeps_the_scopes_the_session_was_stepped_up_to() {
        let auth = auth();
        let app = app(&auth);
        let cookie = SignedIn::new("clinician-1")
            .scope::<ProfileReadBasic>()
            .acr(Acr::Number(2.into()))
            .cookie_header(&auth)
            .unwrap();
        let res = get_as(&app, "/acr3", &cookie, "text/html").await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        let location = res.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with(
                "/auth/doximity/login?return_to=%2Facr3&scope=openid+profile%3Aread%3Abasic&step_up="
            ) && location.ends_with("&acr_values=3"),
            "{location}"
        );
    }
}
