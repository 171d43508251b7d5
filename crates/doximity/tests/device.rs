//! The device authorization grant (RFC 8628) against the mock provider, over real HTTPS. The
//! person's part is driven over HTTP through the mock's verification page; the client's
//! sleeping is injected, so no test waits in real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use doximity::{
    Client, Clock, DeviceAuthorization, DeviceError, DevicePoll, Error, JwtError, RevocableToken,
    TokenSet,
};
use doximity_mock::{Endpoint, Fault, MockProvider};
use support::*;

/// One clock for the client and the provider: a test "sleeps" by moving both forward.
#[derive(Clone)]
struct SharedTime {
    clock: TestClock,
    slept: Arc<Mutex<Vec<Duration>>>,
}

impl SharedTime {
    fn new() -> Self {
        Self {
            clock: TestClock::default(),
            slept: Arc::default(),
        }
    }

    fn clock(&self) -> Clock {
        self.clock.clock()
    }

    /// Moves both clocks forward by `d` and records it.
    fn sleep(&self, mock: &MockProvider, d: Duration) {
        let secs = i64::try_from(d.as_secs()).unwrap();
        mock.set_clock_offset(self.clock.advance(secs));
        self.slept.lock().unwrap().push(d);
    }

    /// Waits for the device's tokens, each pause a move of both clocks.
    async fn wait(
        &self,
        mock: &MockProvider,
        client: &Client,
        device: &mut DeviceAuthorization,
    ) -> Result<TokenSet, Error> {
        client
            .wait_for_device_token_with(device, |d| {
                self.sleep(mock, d);
                async {}
            })
            .await
    }

    fn slept(&self) -> Vec<u64> {
        self.slept
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect()
    }
}

async fn setup() -> (MockProvider, Client, SharedTime) {
    let mock = MockProvider::builder().start().await.unwrap();
    let time = SharedTime::new();
    let client = Client::discover_with_clock(config(&mock), time.clock())
        .await
        .unwrap();
    (mock, client, time)
}

/// What a person does in a browser: open the verification page, keep its cookie, submit the
/// form with a clinician and Approve or Deny.
async fn person(
    mock: &MockProvider,
    device: &DeviceAuthorization,
    sub: &str,
    action: &str,
) -> reqwest::Response {
    let browser = browser(mock);
    let page = browser
        .get(device.url_to_show().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let cookie = doximity_test::cookie_pair(page.headers());
    let html = page.text().await.unwrap();
    let csrf = field_value(&html, "csrf_token");
    // The complete URI pre-fills the code.
    assert_eq!(
        field_value(&html, "user_code"),
        device.user_code.secret().as_str()
    );
    browser
        .post(device.verification_uri.clone())
        .header("cookie", cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("user_code", device.user_code.secret()),
            ("sub", sub),
            ("action", action),
        ])
        .send()
        .await
        .unwrap()
}

/// One poll that the provider answers without an error.
async fn poll(client: &Client, device: &mut DeviceAuthorization) -> DevicePoll {
    client.poll_device_token(device).await.unwrap()
}

fn field_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn full_device_flow_through_the_verification_page() {
    let (mock, client, time) = setup().await;
    let scopes = "openid profile:read:basic".parse().unwrap();
    let mut device = client
        .start_device_authorization(Some(&scopes))
        .await
        .unwrap();
    assert_eq!(device.interval, Duration::from_secs(5));
    assert_eq!(device.verification_uri.path(), "/device");
    assert_eq!(mock.requests(Endpoint::DeviceAuthorization), 1);

    // Before the person acts: pending.
    time.sleep(&mock, device.interval);
    assert!(matches!(
        poll(&client, &mut device).await,
        DevicePoll::Pending
    ));

    let chosen = mock.clinicians()[1].clone();
    let done = person(&mock, &device, &chosen.sub, "approve").await;
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Device approved"));

    let tokens = time.wait(&mock, &client, &mut device).await.unwrap();
    assert_eq!(time.slept(), [5, 5]);
    assert_eq!(tokens.claims.sub, chosen.sub);
    assert_eq!(
        tokens.claims.aud,
        vec![mock.issuer(), mock.client().client_id]
    );
    assert!(tokens.claims.nonce.is_none());
    assert!(tokens.scopes.contains("profile:read:basic"));
    assert!(tokens.session_state.is_none());

    // The device code is spent.
    let err = client.poll_device_token(&mut device).await.unwrap_err();
    assert!(
        matches!(err, Error::OAuth { ref error, .. } if error == "invalid_grant"),
        "{err:?}"
    );

    // The tokens work like the code flow's: userinfo, refresh (rotation), revocation.
    let me = client
        .userinfo(&tokens.access_token, &tokens.claims.sub)
        .await
        .unwrap();
    assert_eq!(me.name.as_deref(), Some(chosen.name.as_str()));
    let refreshed = client.refresh(&tokens, None).await.unwrap();
    assert_eq!(refreshed.claims.sub, chosen.sub);
    assert!(matches!(
        client.userinfo(&tokens.access_token, &chosen.sub).await,
        Err(Error::TokenRejected { .. })
    ));
    client
        .revoke(RevocableToken::Refresh(
            refreshed.refresh_token.as_ref().unwrap(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        client.userinfo(&refreshed.access_token, &chosen.sub).await,
        Err(Error::TokenRejected { .. })
    ));
}

#[tokio::test]
async fn a_person_who_denies_ends_the_wait_with_access_denied() {
    let (mock, client, time) = setup().await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    let sub = mock.clinicians()[0].sub.clone();
    let done = person(&mock, &device, &sub, "deny").await;
    assert_eq!(done.status(), 200);
    let err = time.wait(&mock, &client, &mut device).await.unwrap_err();
    assert_access_denied(&err);
    assert_eq!(time.slept(), [5]);
}

#[tokio::test]
async fn polling_too_fast_gets_slow_down_and_five_more_seconds_each_time() {
    let (mock, client, time) = setup().await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    time.sleep(&mock, device.interval);
    assert!(matches!(
        poll(&client, &mut device).await,
        DevicePoll::Pending
    ));
    // Again at once: too fast.
    assert!(matches!(
        poll(&client, &mut device).await,
        DevicePoll::SlowDown
    ));
    assert_eq!(device.interval, Duration::from_secs(10));
    assert!(matches!(
        poll(&client, &mut device).await,
        DevicePoll::SlowDown
    ));
    assert_eq!(device.interval, Duration::from_secs(15));

    // Keeping the grown interval satisfies the provider.
    assert!(mock.approve_device(device.user_code.secret(), &mock.clinicians()[0].sub));
    let tokens = time.wait(&mock, &client, &mut device).await.unwrap();
    assert_eq!(time.slept(), [5, 15]);
    assert_eq!(tokens.claims.sub, mock.clinicians()[0].sub);
}

#[tokio::test]
async fn the_wait_loop_honours_every_slow_down() {
    let (mock, client, time) = setup().await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    assert!(mock.approve_device(device.user_code.secret(), &mock.clinicians()[2].sub));
    mock.inject(Fault::DeviceSlowDown);
    let tokens = client
        .wait_for_device_token_with(&mut device, |d| {
            time.sleep(&mock, d);
            if time.slept().len() == 3 {
                mock.clear_faults();
            }
            async {}
        })
        .await
        .unwrap();
    assert_eq!(time.slept(), [5, 10, 15]);
    assert_eq!(tokens.claims.sub, mock.clinicians()[2].sub);
}

fn assert_access_denied(err: &Error) {
    assert!(
        matches!(err, Error::Device(DeviceError::AccessDenied { .. })),
        "{err:?}"
    );
}

fn assert_expired(err: &Error) {
    assert!(
        matches!(err, Error::Device(DeviceError::Expired)),
        "{err:?}"
    );
}

#[tokio::test]
async fn expiry_is_typed_whether_the_provider_or_the_clock_says_so() {
    let (mock, client, time) = setup().await;

    // The provider says so.
    let mut device = client.start_device_authorization(None).await.unwrap();
    mock.inject(Fault::DeviceExpired);
    let err = client.poll_device_token(&mut device).await.unwrap_err();
    assert_expired(&err);
    mock.clear_faults();

    // The provider's clock passed the codes' lifetime (the client's has not).
    let mut device = client.start_device_authorization(None).await.unwrap();
    mock.set_clock_offset(601);
    let err = client.poll_device_token(&mut device).await.unwrap_err();
    assert_expired(&err);
    mock.set_clock_offset(0);

    // The client's own clock passed `expires_in`: no request is sent at all.
    let mut device = client.start_device_authorization(None).await.unwrap();
    let polls = mock.requests(Endpoint::Token);
    let err = client
        .wait_for_device_token_with(&mut device, |_| {
            time.sleep(&mock, Duration::from_secs(600));
            async {}
        })
        .await
        .unwrap_err();
    assert_expired(&err);
    assert_eq!(mock.requests(Endpoint::Token), polls);
}

#[tokio::test]
async fn a_forced_denial_is_access_denied() {
    let (mock, client, _time) = setup().await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    mock.inject(Fault::DeviceDenied);
    let err = client.poll_device_token(&mut device).await.unwrap_err();
    assert_access_denied(&err);
}

#[tokio::test]
async fn a_provider_without_the_endpoint_is_a_typed_error_and_no_request() {
    let mock = MockProvider::builder().start().await.unwrap();
    mock.inject(Fault::DiscoveryNoDeviceEndpoint);
    let client = client(&mock).await;
    assert!(
        client
            .metadata()
            .unwrap()
            .device_authorization_endpoint
            .is_none()
    );
    let err = client.start_device_authorization(None).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::EndpointNotAdvertised("device_authorization_endpoint")
        ),
        "{err:?}"
    );
    assert_eq!(mock.requests(Endpoint::DeviceAuthorization), 0);
}

#[tokio::test]
async fn device_tokens_get_the_same_id_token_checks_as_the_code_flow() {
    let (mock, client, _time) = setup().await;
    type Rule = fn(&JwtError) -> bool;
    let cases: Vec<(Fault, Rule)> = vec![
        (Fault::IdTokenWrongAudience, |e| {
            matches!(e, JwtError::AudienceMissingClient { .. })
        }),
        (Fault::IdTokenBadSignature, |e| {
            matches!(e, JwtError::BadSignature)
        }),
        (Fault::IdTokenBadAtHash, |e| {
            matches!(e, JwtError::AccessTokenHashMismatch)
        }),
        (Fault::IdTokenWrongAzp, |e| {
            matches!(e, JwtError::AuthorizedPartyMismatch { .. })
        }),
    ];
    for (fault, rule) in cases {
        let mut device = client.start_device_authorization(None).await.unwrap();
        assert!(mock.approve_device(device.user_code.secret(), &mock.clinicians()[0].sub));
        mock.inject(fault);
        let err = client.poll_device_token(&mut device).await.unwrap_err();
        mock.clear_faults();
        assert!(
            matches!(err, Error::IdToken(ref e) if rule(e)),
            "{fault:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn the_device_request_authenticates_like_the_token_endpoint() {
    let mock = MockProvider::builder().start().await.unwrap();
    // The mock takes only client_secret_basic, as Doximity does.
    let client = Client::discover(config(&mock).with_client_secret_post())
        .await
        .unwrap();
    let err = client.start_device_authorization(None).await.unwrap_err();
    assert!(
        matches!(err, Error::OAuth { endpoint: doximity::Endpoint::DeviceAuthorization, ref error, .. } if error == "invalid_client"),
        "{err:?}"
    );
}

#[tokio::test]
async fn errors_and_debug_never_show_the_codes() {
    let (mock, client, _time) = setup().await;
    let mut device = client.start_device_authorization(None).await.unwrap();
    let debug = format!("{device:?}");
    assert!(
        !debug.contains(device.device_code.secret().as_str()),
        "{debug}"
    );
    assert!(
        !debug.contains(device.user_code.secret().as_str()),
        "{debug}"
    );
    mock.inject(Fault::DeviceDenied);
    let err = client.poll_device_token(&mut device).await.unwrap_err();
    for text in [format!("{err}"), format!("{err:?}")] {
        assert!(!text.contains(device.device_code.secret().as_str()));
        assert!(!text.contains(device.user_code.secret().as_str()));
    }
}
