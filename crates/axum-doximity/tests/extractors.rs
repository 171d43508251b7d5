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
