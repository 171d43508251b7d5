//! DPoP through the layer: a session's tokens bound to the deployment's key, refreshed and used
//! at userinfo with proofs, and handed to handlers as `Authorization` + `DPoP` headers.

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity_mock::Endpoint;
use doximity_test::oneshot::{self, body};
use http::{Method, Request, StatusCode};
use std::time::Duration;
use tower_doximity::DoximityIdentity;

use crate::harness::{Options, harness};

/// `GET /headers`: the headers the handler would send to the provider's userinfo endpoint.
fn headers_app(auth: &tower_doximity::DoximityAuth, userinfo: url::Url) -> Router {
    Router::new()
        .route(
            "/headers",
            get(move |Extension(user): Extension<DoximityIdentity>| {
                let userinfo = userinfo.clone();
                async move {
                    let h = user
                        .resource_headers(&Method::GET, &userinfo)
                        .await
                        .unwrap();
                    let dpop = h.dpop().map(|v| v.to_str().unwrap().to_owned());
                    serde_json::json!({
                        "authorization": h.authorization().to_str().unwrap(),
                        "dpop": dpop,
                    })
                    .to_string()
                }
            }),
        )
        .route("/profile", get(crate::harness::profile_name))
        .layer(auth.layer())
}

#[tokio::test]
async fn a_dpop_session_is_bound_refreshed_and_used_with_proofs_only() {
    let h = harness(Options {
        dpop: true,
        ttl: Some(Duration::from_secs(600)),
        configure: |a| a.with_step_up_scopes(&"profile:read:basic".parse().unwrap()),
        ..Options::default()
    })
    .await;
    let userinfo = h
        .auth
        .client()
        .metadata()
        .unwrap()
        .userinfo_endpoint
        .clone()
        .unwrap();
    let app = headers_app(&h.auth, userinfo.clone());
    // Signed in with the profile: the layer fetches it at the callback, from userinfo, with a
    // proof (a bound token presented as Bearer would be refused, and no profile kept).
    let mut jar = oneshot::Jar::default();
    let (_, callback) = h
        .to_provider(
            "/auth/doximity/login?scope=openid%20profile%3Aread%3Abasic&return_to=%2Fme",
            &mut jar,
        )
        .await;
    let userinfo_calls = h.mock.requests(Endpoint::Userinfo);
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.mock.requests(Endpoint::Userinfo), userinfo_calls + 1);
    let name = body(oneshot::send(&app, oneshot::get("/profile", &jar)).await).await;
    assert!(!name.is_empty() && !name.starts_with("error"), "{name}");
    assert_eq!(
        h.mock.requests(Endpoint::Userinfo),
        userinfo_calls + 1,
        "kept"
    );
    let token_calls = h.mock.requests(Endpoint::Token);

    // The handler gets `Authorization: DPoP <token>` and a proof, never the key.
    let headers: serde_json::Value = serde_json::from_str(
        &body(oneshot::send(&app, oneshot::get("/headers", &jar)).await).await,
    )
    .unwrap();
    let authorization = headers["authorization"].as_str().unwrap().to_owned();
    let token = authorization
        .strip_prefix("DPoP ")
        .expect("a DPoP-bound token")
        .to_owned();
    let proof = headers["dpop"].as_str().expect("a proof").to_owned();
    // With its proof the provider serves it; a thief's Bearer copy is refused.
    let ok = h
        .browser
        .get(userinfo.clone())
        .header("authorization", &authorization)
        .header("dpop", &proof)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let stolen = h
        .browser
        .get(userinfo.clone())
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::UNAUTHORIZED);
    // A replayed proof is refused too.
    let replayed = h
        .browser
        .get(userinfo)
        .header("authorization", &authorization)
        .header("dpop", &proof)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);

    // Near the end of the access token the layer refreshes with a proof (the refresh token is
    // bound too: without one the provider would refuse it) and the session goes on.
    h.advance(590);
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(h.mock.requests(Endpoint::Token), token_calls + 1);
    jar.update(&res);
    let headers: serde_json::Value = serde_json::from_str(
        &body(
            oneshot::send(
                &app,
                Request::get("/headers")
                    .header("cookie", jar.header())
                    .body(Body::empty())
                    .unwrap(),
            )
            .await,
        )
        .await,
    )
    .unwrap();
    assert!(
        headers["authorization"]
            .as_str()
            .unwrap()
            .starts_with("DPoP ")
    );
    assert_ne!(
        headers["authorization"],
        authorization.as_str(),
        "the refreshed token"
    );
}
