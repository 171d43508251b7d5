//! The device authorization grant (RFC 8628): the endpoint, the `device_code` grant and the
//! verification page.

use std::time::Duration;

use doximity_mock::{ClientRegistration, Fault, MockProvider};
use serde_json::Value;

use crate::support::{Harness, csrf_field, error_of};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

impl Harness {
    async fn start_device(&self, scope: &str) -> Value {
        let response = self
            .http
            .post(self.url("/oauth/device_authorization"))
            .basic_auth(&self.client.client_id, Some(&self.client.client_secret))
            .form(&[("scope", scope)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        response.json().await.unwrap()
    }

    async fn poll(&self, device_code: &str) -> reqwest::Response {
        self.token_request(&[("grant_type", DEVICE_GRANT), ("device_code", device_code)])
            .await
    }

    /// GET the verification page: its cookie and CSRF field.
    async fn verification_form(&self, user_code: &str) -> (String, String, String) {
        let response = self
            .http
            .get(self.url("/device"))
            .query(&[("user_code", user_code)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (cookie, _) = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split_once(';')
            .unwrap();
        let cookie = cookie.to_owned();
        let html = response.text().await.unwrap();
        let csrf = csrf_field(&html);
        (cookie, csrf, html)
    }
}

fn str_of<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap()
}

#[tokio::test]
async fn discovery_advertises_the_endpoint_and_the_grant_unless_told_not_to() {
    let h = Harness::start(MockProvider::builder()).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let d: Value = h.get_json(path).await;
        assert_eq!(
            d["device_authorization_endpoint"],
            h.url("/oauth/device_authorization")
        );
        assert!(
            d["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&DEVICE_GRANT.into())
        );
    }
    h.mock.inject(Fault::DiscoveryNoDeviceEndpoint);
    let d: Value = h.get_json("/.well-known/openid-configuration").await;
    assert!(d.get("device_authorization_endpoint").is_none());
    assert!(
        !d["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&DEVICE_GRANT.into())
    );
}

#[tokio::test]
async fn the_device_endpoint_answers_as_rfc_8628_says() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid profile:read:basic").await;
    let user_code = str_of(&d, "user_code");
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert_eq!(str_of(&d, "verification_uri"), h.url("/device"));
    assert_eq!(
        str_of(&d, "verification_uri_complete"),
        format!("{}?user_code={user_code}", h.url("/device"))
    );
    assert_eq!(d["expires_in"], 600);
    assert_eq!(d["interval"], 5);
    assert!(str_of(&d, "device_code").len() >= 43);

    // Client authentication is required, and only supported scopes are granted.
    let anonymous = h
        .http
        .post(h.url("/oauth/device_authorization"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(anonymous).await, (401, "invalid_client".into()));
    let bad_scope = h
        .http
        .post(h.url("/oauth/device_authorization"))
        .basic_auth(&h.client.client_id, Some(&h.client.client_secret))
        .form(&[("scope", "openid admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(bad_scope).await, (400, "invalid_scope".into()));
}

#[tokio::test]
async fn polling_answers_pending_then_slow_down_when_too_fast() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid").await;
    let code = str_of(&d, "device_code");
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "authorization_pending".into())
    );
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "slow_down".into())
    );
    // Waiting the grown interval (5 + 5 s) is enough.
    h.mock.set_clock_offset(10);
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "authorization_pending".into())
    );
    // Expired by the provider's clock.
    h.mock.set_clock_offset(601);
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "expired_token".into())
    );
}

#[tokio::test]
async fn a_device_code_serves_only_its_client_and_only_once() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid").await;
    let code = str_of(&d, "device_code");
    let sub = h.mock.clinicians()[0].sub.clone();
    assert!(h.mock.approve_device(str_of(&d, "user_code"), &sub));

    h.mock
        .register_client(ClientRegistration::new("other-client", "other-secret"));
    let stolen = h
        .http
        .post(h.url("/oauth/token"))
        .basic_auth("other-client", Some("other-secret"))
        .form(&[("grant_type", DEVICE_GRANT), ("device_code", code)])
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(stolen).await, (400, "invalid_grant".into()));

    h.mock.set_clock_offset(5);
    let ok = h.poll(code).await;
    assert_eq!(ok.status(), 200);
    let tokens: Value = ok.json().await.unwrap();
    let claims = h.verified_claims(str_of(&tokens, "id_token")).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert!(claims.get("nonce").is_none());
    assert!(tokens["refresh_token"].is_string());

    h.mock.set_clock_offset(10);
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "invalid_grant".into())
    );
}

#[tokio::test]
async fn the_verification_page_approves_as_the_chosen_clinician() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid profile:read:basic").await;
    let user_code = str_of(&d, "user_code");
    let (cookie, csrf, html) = h.verification_form(user_code).await;
    assert!(html.contains(&h.client.client_id));
    assert!(html.contains("profile:read:basic"));
    let chosen = h.mock.clinicians()[3].clone();
    // Typed in lower case without the dash: still the same code.
    let typed = user_code.replace('-', "").to_ascii_lowercase();
    let done = h
        .http
        .post(h.url("/device"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("user_code", typed.as_str()),
            ("sub", chosen.sub.as_str()),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(done.headers()["x-frame-options"], "DENY");
    assert!(done.text().await.unwrap().contains("Device approved"));
    let tokens: Value = h
        .poll(str_of(&d, "device_code"))
        .await
        .json()
        .await
        .unwrap();
    let claims = h.verified_claims(str_of(&tokens, "id_token")).await;
    assert_eq!(claims["sub"], chosen.sub.as_str());
}

#[tokio::test]
async fn the_verification_form_needs_the_cookie_of_the_browser_that_loaded_it() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid").await;
    let user_code = str_of(&d, "user_code");
    let (_cookie, csrf, _) = h.verification_form(user_code).await;
    let sub = h.mock.clinicians()[0].sub.clone();
    for cookie in [None, Some("mock_op_device_csrf=forged")] {
        let mut request = h.http.post(h.url("/device")).form(&[
            ("csrf_token", csrf.as_str()),
            ("user_code", user_code),
            ("sub", sub.as_str()),
            ("action", "approve"),
        ]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 403, "{cookie:?}");
    }
    assert_eq!(
        error_of(h.poll(str_of(&d, "device_code")).await).await,
        (400, "authorization_pending".into())
    );
}

#[tokio::test]
async fn the_verification_page_escapes_what_it_echoes_and_refuses_unknown_codes() {
    let h = Harness::start(MockProvider::builder()).await;
    let (cookie, csrf, html) = h.verification_form("\"><script>x</script>").await;
    assert!(!html.contains("<script>"));
    assert!(html.contains("unknown or has expired"));
    let sub = h.mock.clinicians()[0].sub.clone();
    let response = h
        .http
        .post(h.url("/device"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("user_code", "BCDF-GHJK"),
            ("sub", sub.as_str()),
            ("action", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn deny_on_the_page_and_fault_switches() {
    let h = Harness::start(MockProvider::builder()).await;
    let d = h.start_device("openid").await;
    let (cookie, csrf, _) = h.verification_form(str_of(&d, "user_code")).await;
    let denied = h
        .http
        .post(h.url("/device"))
        .header("cookie", &cookie)
        .form(&[
            ("csrf_token", csrf.as_str()),
            ("user_code", str_of(&d, "user_code")),
            ("action", "deny"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 200);
    assert_eq!(
        error_of(h.poll(str_of(&d, "device_code")).await).await,
        (400, "access_denied".into())
    );

    for (fault, error) in [
        (Fault::DeviceSlowDown, "slow_down"),
        (Fault::DeviceExpired, "expired_token"),
        (Fault::DeviceDenied, "access_denied"),
    ] {
        let d = h.start_device("openid").await;
        h.mock.inject(fault);
        assert_eq!(
            error_of(h.poll(str_of(&d, "device_code")).await).await,
            (400, error.into()),
            "{fault:?}"
        );
        h.mock.clear_faults();
    }
}

#[tokio::test]
async fn auto_approval_waits_for_its_moment() {
    let h = Harness::start(MockProvider::builder()).await;
    let sub = h.mock.clinicians()[1].sub.clone();
    h.mock
        .set_device_auto_approve(Some(sub.clone()), Duration::from_secs(3));
    h.mock.set_device_interval(Duration::from_secs(1));
    let d = h.start_device("openid").await;
    assert_eq!(d["interval"], 1);
    let code = str_of(&d, "device_code");
    assert_eq!(
        error_of(h.poll(code).await).await,
        (400, "authorization_pending".into())
    );
    h.mock.set_clock_offset(3);
    let tokens: Value = h.poll(code).await.json().await.unwrap();
    let claims = h.verified_claims(str_of(&tokens, "id_token")).await;
    assert_eq!(claims["sub"], sub.as_str());
}
