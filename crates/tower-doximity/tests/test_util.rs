//! `test_util` (feature `test-util`): the sealed session it makes is accepted by the unchanged
//! layer, and only by a layer with the same key, issuer and client id, so the kit is no
//! bypass. The refusing layer talks to the mock provider over HTTPS, so a refusal is the
//! layer's "not signed in" (401), not "provider unavailable".

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity::scope::{ProfileReadBasic, Scopes};
use doximity::secret::ClientSecret;
use doximity::{Acr, Client, Config, UserInfo};
use doximity_mock::MockProvider;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_doximity::test_util::{SignedIn, TestSessionError, auth_context};
use tower_doximity::{AuthError, DoximityAuth, DoximityIdentity, Key, MemoryStore};

const REDIRECT: &str = "https://app.example/auth/doximity/callback";

fn key(byte: u8) -> Key {
    Key::from(&[byte; 64])
}

/// A `DoximityAuth` over a lazy client (nothing fetched) for `issuer` and `client_id`: enough
/// to seal, as an app's tests would without a provider.
fn lazy_auth(issuer: &str, client_id: &str, key: Key) -> DoximityAuth {
    let config = Config::new(
        client_id.to_owned(),
        ClientSecret::new("secret".into()),
        REDIRECT.parse().unwrap(),
    )
    .with_issuer(issuer)
    .unwrap();
    DoximityAuth::new(Client::lazy(config).unwrap()).with_cookie_key(key)
}

struct Mocked {
    mock: MockProvider,
    auth: DoximityAuth,
}

/// The layer under test: discovered against the mock, cookie key `key(1)`.
async fn mocked() -> Mocked {
    let mock = MockProvider::builder()
        .redirect_uri(REDIRECT)
        .start()
        .await
        .unwrap();
    let demo = mock.client();
    let config = Config::new(
        demo.client_id.clone(),
        ClientSecret::new(demo.client_secret.clone()),
        REDIRECT.parse().unwrap(),
    )
    .with_issuer(&mock.issuer())
    .unwrap()
    .with_ca_cert_pem(mock.ca_pem().to_vec());
    let auth = DoximityAuth::new(Client::discover(config).await.unwrap()).with_cookie_key(key(1));
    Mocked { mock, auth }
}

/// A router that answers what the identity says, behind `auth`'s real layer.
fn app(auth: &DoximityAuth) -> Router {
    Router::new()
        .route(
            "/me",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                let acr = user
                    .claims()
                    .and_then(|c| c.acr.clone())
                    .map(|a| match a {
                        Acr::Number(n) => n.to_string(),
                        Acr::String(s) => s,
                    })
                    .unwrap_or_default();
                let token = user
                    .access_token()
                    .map(|t| t.secret().clone())
                    .unwrap_or_else(|_| "no tokens".into());
                let name = user
                    .cached_profile()
                    .and_then(|p| p.name)
                    .unwrap_or_default();
                format!("{}|{}|{acr}|{token}|{name}", user.sub(), user.scopes())
            }),
        )
        .layer(auth.layer())
}

async fn get_me(app: &Router, cookie: Option<&HeaderValue>) -> (StatusCode, String) {
    let mut req = Request::get("/me").header("accept", "application/json");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn clinician() -> SignedIn {
    let mut profile = UserInfo::default();
    profile.name = Some("Dr. Ada Lovelace".into());
    SignedIn::new("clinician-1")
        .scope::<ProfileReadBasic>()
        .profile(profile)
        .acr(Acr::Number(2.into()))
        .access_token("chosen-access-token")
}

#[tokio::test]
async fn the_sealed_header_is_accepted_by_the_unchanged_layer() {
    let m = mocked().await;
    let cookie = clinician().cookie_header(&m.auth).unwrap();
    let (status, body) = get_me(&app(&m.auth), Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        "clinician-1|openid profile:read:basic|2|chosen-access-token|Dr. Ada Lovelace"
    );
    // Both cookies of the cookie store, under the layer's names (https: `__Host-`).
    let header = cookie.to_str().unwrap();
    assert!(header.starts_with("__Host-doximity-session="), "{header}");
    assert!(header.contains("; __Host-doximity-tokens="), "{header}");
    assert!(
        !header.contains("chosen-access-token"),
        "the tokens are sealed"
    );
}

#[tokio::test]
async fn a_lazy_client_serves_the_signed_in_user_without_a_provider() {
    // Nothing listens at this issuer: a signed-in request needs no provider, the layer's own
    // refusal does (it cannot send anyone to sign in), so it says the provider is unavailable.
    let auth = lazy_auth("https://127.0.0.1:1", "app", key(1));
    let app = app(&auth);
    let cookie = clinician().cookie_header(&auth).unwrap();
    let (status, body) = get_me(&app, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.starts_with("clinician-1|"), "{body}");
    let (status, _) = get_me(&app, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_header_sealed_with_another_key_is_refused() {
    let m = mocked().await;
    let app = app(&m.auth);
    let issuer = m.mock.issuer();
    let client_id = m.mock.client().client_id.clone();
    // The control: the same issuer, client id and key opens.
    let same = lazy_auth(&issuer, &client_id, key(1));
    let (status, _) = get_me(&app, Some(&clinician().cookie_header(&same).unwrap())).await;
    assert_eq!(status, StatusCode::OK);
    let other = lazy_auth(&issuer, &client_id, key(2));
    let (status, body) = get_me(&app, Some(&clinician().cookie_header(&other).unwrap())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.contains("clinician-1"), "{body}");
}

#[tokio::test]
async fn a_header_sealed_for_another_client_id_or_issuer_is_refused() {
    let m = mocked().await;
    let app = app(&m.auth);
    let issuer = m.mock.issuer();
    let client_id = m.mock.client().client_id.clone();
    for (iss, id) in [
        (issuer.as_str(), "another-client"),
        ("https://another-issuer.example", client_id.as_str()),
    ] {
        let sealer = lazy_auth(iss, id, key(1));
        let (status, body) = get_me(&app, Some(&clinician().cookie_header(&sealer).unwrap())).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{iss} {id}: {body}");
    }
}

#[tokio::test]
async fn a_tampered_header_is_refused() {
    let m = mocked().await;
    let app = app(&m.auth);
    let cookie = clinician().cookie_header(&m.auth).unwrap();
    let header = cookie.to_str().unwrap();
    let (session, tokens) = header.split_once("; ").unwrap();
    // One character of the identity cookie's ciphertext changed.
    let (name, value) = session.split_once('=').unwrap();
    let mut bytes = value.as_bytes().to_vec();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{name}={}; {tokens}", String::from_utf8(bytes).unwrap());
    let (status, body) = get_me(&app, Some(&HeaderValue::from_str(&tampered).unwrap())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The tokens cookie of another session (sealed by the same key) under a genuine identity
    // cookie: the identity opens, the tokens do not (they are bound to their session's id).
    let other = clinician().cookie_header(&m.auth).unwrap();
    let other_tokens = other.to_str().unwrap().split_once("; ").unwrap().1;
    let swapped = HeaderValue::from_str(&format!("{session}; {other_tokens}")).unwrap();
    let (status, body) = get_me(&app, Some(&swapped)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("|no tokens|"), "{body}");
}

#[tokio::test]
async fn an_expired_session_is_refused_like_any_other() {
    let m = mocked().await;
    let cookie = SignedIn::new("clinician-1")
        .expires_in(std::time::Duration::ZERO)
        .cookie_header(&m.auth)
        .unwrap();
    let (status, body) = get_me(&app(&m.auth), Some(&cookie)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn a_server_store_session_is_written_to_the_store() {
    let m = mocked().await;
    let auth = m.auth.clone().with_store(MemoryStore::new());
    let app = app(&auth);
    assert!(matches!(
        clinician().cookie_header(&auth),
        Err(TestSessionError::ServerStore)
    ));
    let cookie = clinician().store_in(&auth).await.unwrap();
    let header = cookie.to_str().unwrap();
    assert!(header.starts_with("__Host-doximity-session="), "{header}");
    assert!(!header.contains("tokens"), "{header}");
    let (status, body) = get_me(&app, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.ends_with("|chosen-access-token|Dr. Ada Lovelace"),
        "{body}"
    );
    // An id cookie sealed with another key names no session.
    let other = m
        .auth
        .clone()
        .with_cookie_key(key(2))
        .with_store(MemoryStore::new());
    let (status, _) = get_me(&app, Some(&clinician().store_in(&other).await.unwrap())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_identity_for_direct_calls_carries_what_the_test_chose() {
    let auth = lazy_auth("https://127.0.0.1:1", "app", key(1));
    let mut req = Request::get("/").body(()).unwrap();
    clinician().insert_into(&auth, req.extensions_mut());
    let user = req.extensions().get::<DoximityIdentity>().unwrap();
    assert_eq!(user.sub(), "clinician-1");
    assert!(user.has_scope::<ProfileReadBasic>());
    assert!(!user.is_bearer());
    assert_eq!(user.access_token().unwrap().secret(), "chosen-access-token");
    let claims = user.claims().unwrap();
    assert_eq!(claims.aud, ["https://127.0.0.1:1", "app"]);
    assert_eq!(claims.acr, Some(Acr::Number(2.into())));
    assert_eq!(
        user.cached_profile().unwrap().sub,
        "clinician-1",
        "the profile's sub is the session's"
    );
    let now = auth.client().clock().epoch_secs();
    assert!((now + 3590..=now + 3610).contains(&user.expires_at().unwrap()));
    // No debug output carries the token.
    assert!(!format!("{user:?} {:?}", clinician()).contains("chosen-access-token"));
    // The context answers a refusal as the layer would: an API client gets 403 with the scope.
    let scopes: Scopes = "openid profile:read:email".parse().unwrap();
    let (parts, ()) = Request::get("/")
        .header("accept", "application/json")
        .body(())
        .unwrap()
        .into_parts();
    let res = auth_context(&auth).refusal(
        &parts,
        AuthError::InsufficientScope {
            missing: "profile:read:email".into(),
            required: scopes,
        },
    );
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[test]
fn the_feature_is_off_unless_a_crate_asks_for_it() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let default = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("default ="))
        .unwrap();
    assert!(!default.contains("test-util"), "{default}");
    assert!(manifest.contains("\ntest-util = [\"doximity/test-util\"]\n"));
}

/// `grpc::RequireAcr` and `grpc::AuthenticatedWithin` in a tonic handler: the caller passes,
/// or gets `UNAUTHENTICATED` with what to ask for in the message.
#[test]
fn grpc_step_up_checks_answer_unauthenticated_with_what_to_ask_for() {
    use std::time::Duration;
    use tower_doximity::grpc::{AuthenticatedWithin, RequireAcr};

    fn confirm(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
        let user = RequireAcr::<3>::from_request(request)?;
        Ok(user.sub().to_owned())
    }
    fn recent(request: &tonic::Request<()>) -> Result<String, tonic::Status> {
        let user = AuthenticatedWithin::<300>::from_request(request)?;
        Ok(user.sub().to_owned())
    }

    let auth = lazy_auth("https://127.0.0.1:1", "app", key(1));
    let strong = SignedIn::new("clinician-1").acr(Acr::Number(3.into()));
    assert_eq!(
        confirm(&strong.grpc_request(&auth, ())).unwrap(),
        "clinician-1"
    );
    let weak = SignedIn::new("clinician-1").acr(Acr::Number(2.into()));
    let status = confirm(&weak.grpc_request(&auth, ())).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("acr_values=\"3\""), "{status:?}");

    assert_eq!(
        recent(&weak.grpc_request(&auth, ())).unwrap(),
        "clinician-1"
    );
    let old = weak.authenticated_ago(Duration::from_secs(400));
    let status = recent(&old.grpc_request(&auth, ())).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(status.message().contains("max_age=300"), "{status:?}");

    // Without the layer: INTERNAL, as every grpc helper answers.
    let status = confirm(&tonic::Request::new(())).unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
}
