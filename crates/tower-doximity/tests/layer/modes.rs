//! What the layer answers a request without a session, by mode: required, optional, public paths, bearer, lazy.

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity_test::oneshot::{self, Jar, body, location, set_cookies};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_doximity::{AuthError, DoximityAuth, DoximityIdentity, Mode};

use crate::harness::*;

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
    let res = oneshot::fetch(&app, "/auth/doximity/login").await;
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
    let mock = doximity_test::start_auto_approving(REDIRECT).await;
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
    let res = oneshot::fetch(&app_with(&down), "/auth/doximity/login").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.headers().contains_key("retry-after"));
    let up = DoximityAuth::lazy_from_lookup(vars(mock.issuer())).unwrap();
    assert!(!up.client().is_ready(), "a lazy layer did I/O at start");
    let res = oneshot::fetch(&app_with(&up), "/auth/doximity/login").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(location(&res).starts_with(&mock.issuer()));
}
