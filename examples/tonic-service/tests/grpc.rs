//! The tonic server behind the layer in bearer mode, called by a real tonic client over a real
//! socket (`127.0.0.1:0`, shut down through a oneshot), with tokens from real sign-ins at the
//! mock provider (HTTPS). Time moves through an injected clock: no sleeps.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

use std::time::Duration;

use doximity::scope::Scopes;
use doximity::{Client, TokenSet};
use doximity_mock::{Endpoint, Fault, MockProvider};
use doximity_test::{REDIRECT, TestClock, demo_config};
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_service::pb::directory_client::DirectoryClient;
use tonic_service::pb::{MyProfileRequest, WhoAmIRequest, WhoAmIResponse};
use tonic_service::{https_client, sign_in_at_mock, with_bearer};
use tower_doximity::{BearerConfig, DoximityAuth};

const TTL: Duration = Duration::from_secs(60);

struct Harness {
    mock: Option<MockProvider>,
    client: Client,
    clock: TestClock,
    browser: reqwest::Client,
    directory: DirectoryClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    async fn start() -> Self {
        let mock = doximity_test::start_auto_approving(REDIRECT).await;
        let clock = TestClock::default();
        let client = Client::discover_with_clock(demo_config(&mock, REDIRECT), clock.clock())
            .await
            .unwrap();
        let auth = DoximityAuth::new(client.clone())
            .with_cookie_key(tower_doximity::Key::generate())
            .with_bearer(BearerConfig::new().with_ttl(TTL));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            tonic_service::serve(listener, &auth, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let directory = DirectoryClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let browser = https_client(mock.ca_pem()).unwrap();
        Self {
            mock: Some(mock),
            client,
            clock,
            browser,
            directory,
            stop: Some(stop),
            server: Some(server),
        }
    }

    fn mock(&self) -> &MockProvider {
        self.mock.as_ref().unwrap()
    }

    fn userinfo_calls(&self) -> u64 {
        self.mock().requests(Endpoint::Userinfo)
    }

    async fn sign_in(&self, scopes: &str) -> TokenSet {
        let scopes: Scopes = scopes.parse().unwrap();
        sign_in_at_mock(&self.client, &self.browser, &scopes)
            .await
            .unwrap()
    }

    async fn who_am_i(&self, token: &str) -> Result<WhoAmIResponse, Status> {
        let mut directory = self.directory.clone();
        directory
            .who_am_i(with_bearer(WhoAmIRequest {}, token).unwrap())
            .await
            .map(tonic::Response::into_inner)
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

fn request_with_authorization<T>(message: T, value: &'static str) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", value.parse().unwrap());
    request
}

#[tokio::test]
async fn valid_token_is_answered_with_the_callers_identity() {
    let h = Harness::start().await;
    let tokens = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    let me = h.who_am_i(tokens.access_token.secret()).await.unwrap();
    assert_eq!(me.sub, tokens.claims.sub);
    assert_eq!(me.scopes, ["openid"]);
    assert_eq!(me.authenticated_by, "access_token");
    // Cached: a second call costs the provider nothing.
    h.who_am_i(tokens.access_token.secret()).await.unwrap();
    assert_eq!(h.userinfo_calls() - before, 1);
    h.stop().await;
}

#[tokio::test]
async fn no_token_is_unauthenticated() {
    let h = Harness::start().await;
    let status = h
        .directory
        .clone()
        .who_am_i(WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "not signed in");
    h.stop().await;
}

#[tokio::test]
async fn malformed_authorization_is_unauthenticated_without_a_provider_call() {
    let h = Harness::start().await;
    let before = h.userinfo_calls();
    for value in ["Bearer", "Bearer two tokens", "Bearer {json}"] {
        let status = h
            .directory
            .clone()
            .who_am_i(request_with_authorization(WhoAmIRequest {}, value))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{value}");
        assert!(
            status.message().contains("Bearer <token>"),
            "{}",
            status.message()
        );
    }
    assert_eq!(h.userinfo_calls(), before);
    h.stop().await;
}

#[tokio::test]
async fn unknown_token_is_unauthenticated() {
    let h = Harness::start().await;
    let status = h.who_am_i("no-such-token-42").await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(!status.message().contains("no-such-token-42"));
    h.stop().await;
}

#[tokio::test]
async fn revoked_token_is_unauthenticated_once_the_cache_entry_expires() {
    let h = Harness::start().await;
    let tokens = h.sign_in("openid").await;
    let token = tokens.access_token.secret();
    h.who_am_i(token).await.unwrap();
    h.mock().revoke_all_for(&tokens.claims.sub);
    h.clock.advance(59);
    h.who_am_i(token)
        .await
        .expect("still cached: revocation shows after the TTL");
    h.clock.advance(1);
    let status = h.who_am_i(token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    h.stop().await;
}

#[tokio::test]
async fn missing_scope_is_permission_denied_and_granted_scope_is_served() {
    let h = Harness::start().await;
    let bare = h.sign_in("openid").await;
    let status = h
        .directory
        .clone()
        .my_profile(with_bearer(MyProfileRequest {}, bare.access_token.secret()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("profile:read:basic"));

    let basic = h.sign_in("openid profile:read:basic").await;
    let profile = h
        .directory
        .clone()
        .my_profile(with_bearer(MyProfileRequest {}, basic.access_token.secret()).unwrap())
        .await
        .unwrap()
        .into_inner();
    let clinician = h
        .mock()
        .clinicians()
        .into_iter()
        .find(|c| c.sub == basic.claims.sub)
        .unwrap();
    assert_eq!(profile.name, clinician.name);
    assert_eq!(profile.specialty, clinician.specialty);
    h.stop().await;
}

#[tokio::test]
async fn provider_rate_limit_is_unavailable_with_retry_after() {
    let h = Harness::start().await;
    let tokens = h.sign_in("openid").await;
    h.mock().inject(Fault::RateLimitExhausted);
    let mut directory = h.directory.clone();
    let status = directory
        .who_am_i(with_bearer(WhoAmIRequest {}, tokens.access_token.secret()).unwrap())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("rate limit"),
        "{}",
        status.message()
    );
    let retry: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3600).contains(&retry));
    h.stop().await;
}

#[tokio::test]
async fn provider_down_is_unavailable() {
    let mut h = Harness::start().await;
    let tokens = h.sign_in("openid").await;
    h.mock.take().unwrap().shutdown().await;
    let status = h.who_am_i(tokens.access_token.secret()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    h.stop().await;
}

#[tokio::test]
async fn concurrent_calls_with_one_new_token_make_one_userinfo_call() {
    let h = Harness::start().await;
    let tokens = h.sign_in("openid").await;
    let before = h.userinfo_calls();
    let calls = (0..200).map(|_| h.who_am_i(tokens.access_token.secret()));
    for result in futures_util::future::join_all(calls).await {
        assert_eq!(result.unwrap().sub, tokens.claims.sub);
    }
    assert_eq!(h.userinfo_calls() - before, 1);
    h.stop().await;
}
