//! RFC 9470 step-up: `acr_values` and `max_age` through the login route, the provider and the
//! callback, and what the layer does with an ID token that does not meet them.

use doximity_mock::Fault;
use doximity_test::https_browser;
use doximity_test::oneshot::{self, Jar, body, location};
use http::StatusCode;

use crate::harness::{Harness, Options, harness, request};

/// A browser that keeps the provider's session cookie, so a step-up finds the person signed in
/// at the provider, at the level and time of their first sign-in.
struct Browser {
    provider: reqwest::Client,
    jar: Jar,
}

impl Browser {
    /// Signs in through the layer, landing on `return_to`.
    async fn signed_in(h: &Harness, return_to: &str) -> Self {
        let mut b = Self {
            provider: https_browser(&h.mock),
            jar: Jar::default(),
        };
        let login = format!(
            "/auth/doximity/login?return_to={}",
            doximity_test::enc(return_to)
        );
        oneshot::sign_in(&h.app, &b.provider, &login, &mut b.jar).await;
        b
    }

    /// Follows a login link to the provider and back; the callback's answer (the jar takes
    /// its cookies).
    async fn through_provider(
        &mut self,
        h: &Harness,
        login: &str,
    ) -> http::Response<axum::body::Body> {
        let (_, callback) = h
            .to_provider_with(&self.provider, login, &mut self.jar)
            .await;
        let res = h
            .send(request(
                http::Method::GET,
                &callback,
                &self.jar,
                &[("accept", "application/json")],
            ))
            .await;
        self.jar.update(&res);
        res
    }
}

/// A query parameter of a URL (absolute, or a path with a query).
fn param(url: &str, name: &str) -> Option<String> {
    let url = url::Url::parse(url)
        .or_else(|_| url::Url::parse(&format!("https://x{url}")))
        .unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `acr|auth_time` as the test app's step-up routes answer them.
fn acr_and_auth_time(answer: &str) -> (String, i64) {
    let (acr, auth_time) = answer.split_once('|').unwrap();
    (acr.to_owned(), auth_time.parse().unwrap())
}

#[tokio::test]
async fn the_login_route_forwards_acr_values_and_max_age_and_refuses_malformed_ones() {
    let h = harness(Options::default()).await;
    let res = h
        .get(
            "/auth/doximity/login?return_to=%2Fme&acr_values=3+2&max_age=300",
            &Jar::default(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let authorize = location(&res);
    assert_eq!(param(&authorize, "acr_values").as_deref(), Some("3 2"));
    assert_eq!(param(&authorize, "max_age").as_deref(), Some("300"));
    // Without them, the provider is asked for neither.
    let res = h.get("/auth/doximity/login", &Jar::default()).await;
    let authorize = location(&res);
    assert_eq!(param(&authorize, "acr_values"), None);
    assert_eq!(param(&authorize, "max_age"), None);

    let long = "a".repeat(65);
    for bad in [
        "acr_values=%222%22",
        "acr_values=2%0A3",
        &format!("acr_values={long}"),
        "acr_values=1+2+3+4+5+6+7+8+9",
        "max_age=-1",
        "max_age=5m",
        "max_age=",
        "max_age=12345678901",
    ] {
        let res = h
            .send(request(
                http::Method::GET,
                &format!("/auth/doximity/login?{bad}"),
                &Jar::default(),
                &[("accept", "application/json")],
            ))
            .await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{bad}");
        let answer = body(res).await;
        assert!(answer.contains("\"invalid_request\""), "{bad}: {answer}");
    }
}

#[tokio::test]
async fn an_acr_the_provider_does_not_advertise_is_refused_before_the_provider() {
    let h = harness(Options::default()).await;
    let res = h
        .send(request(
            http::Method::GET,
            "/auth/doximity/login?acr_values=urn:example:loa:9",
            &Jar::default(),
            &[("accept", "application/json")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(body(res).await.contains("does not support the acr value"));
}

#[tokio::test]
async fn a_stale_sign_in_steps_up_through_the_provider_and_back() {
    let h = harness(Options::default()).await;
    let mut b = Browser::signed_in(&h, "/recent").await;
    let res = h.get("/recent", &b.jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, first_auth_time) = acr_and_auth_time(&body(res).await);

    // Six minutes later, `AuthenticatedWithin<300>` sends the browser to sign in again.
    h.advance(360);
    let res = h.get_html("/recent", &b.jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let step_up = location(&res);
    assert_eq!(
        step_up,
        "/auth/doximity/login?return_to=%2Frecent&max_age=300"
    );
    // The provider still has the person's session, older than `max_age`: it authenticates
    // them again, and the callback lands on the page that asked.
    let res = b.through_provider(&h, &step_up).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "{}", body(res).await);
    assert_eq!(location(&res), "/recent");
    let res = h.get("/recent", &b.jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    let (_, auth_time) = acr_and_auth_time(&body(res).await);
    assert!(
        auth_time >= first_auth_time + 360,
        "{auth_time} {first_auth_time}"
    );
}

#[tokio::test]
async fn a_provider_that_does_not_authenticate_again_fails_the_step_up_and_keeps_the_session() {
    let h = harness(Options::default()).await;
    let mut b = Browser::signed_in(&h, "/recent").await;
    let before = b.jar.clone();
    h.advance(360);
    h.mock.inject(Fault::StaleAuthTime);
    let res = b
        .through_provider(&h, "/auth/doximity/login?return_to=%2Frecent&max_age=300")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let answer = body(res).await;
    assert!(
        answer.contains("login_failed") && answer.contains("max_age"),
        "{answer}"
    );
    // The session it meant to step up is still there, and still too old for the page.
    assert_eq!(h.get("/me", &before).await.status(), StatusCode::OK);
    let res = h
        .send(request(
            http::Method::GET,
            "/recent",
            &before,
            &[("accept", "application/json")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("max_age=\"300\"")
    );
}

#[tokio::test]
async fn an_acr_step_up_gets_the_level_asked_for() {
    let h = harness(Options::default()).await;
    let mut b = Browser::signed_in(&h, "/me").await;
    // The mock signs in at Doximity's usual level 2: `RequireAcr<3>` steps up.
    let res = h.get_html("/acr3", &b.jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let step_up = location(&res);
    assert_eq!(
        step_up,
        "/auth/doximity/login?return_to=%2Facr3&acr_values=3"
    );
    let res = b.through_provider(&h, &step_up).await;
    assert_eq!(location(&res), "/acr3");
    let res = h.get("/acr3", &b.jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(acr_and_auth_time(&body(res).await).0, "3");
}

#[tokio::test]
async fn an_id_token_with_a_lower_acr_than_asked_is_refused() {
    let h = harness(Options::default()).await;
    let mut b = Browser::signed_in(&h, "/me").await;
    let before = b.jar.clone();
    h.mock.inject(Fault::IdTokenLowAcr);
    let res = b
        .through_provider(&h, "/auth/doximity/login?return_to=%2Facr3&acr_values=3")
        .await;
    assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    let answer = body(res).await;
    assert!(
        answer.contains("login_failed") && answer.contains("acr"),
        "{answer}"
    );
    // No session at level 3 came of it; the level-2 session is as it was.
    let res = h
        .send(request(
            http::Method::GET,
            "/acr3",
            &before,
            &[("accept", "application/json")],
        ))
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.get("/me", &before).await.status(), StatusCode::OK);
}
