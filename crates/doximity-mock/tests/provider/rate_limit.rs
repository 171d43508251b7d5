use doximity_mock::{Fault, MockProvider};
use serde_json::{Value, json};

use crate::support::Harness;

fn rate_headers(response: &reqwest::Response) -> (u64, u64, u64) {
    let get = |name: &str| -> u64 {
        response.headers()[name]
            .to_str()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("{name} is a number"))
    };
    (
        get("x-rate-limit-limit"),
        get("x-rate-limit-remaining"),
        get("x-rate-limit-reset"),
    )
}

async fn rate_limit(h: &Harness, access_token: &str) -> reqwest::Response {
    h.http
        .get(h.url("/api/v1/rate_limit"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn counted_endpoints_carry_rate_limit_headers() {
    let h = Harness::auto().await;
    let login = h.login().await;
    let exchange = h.exchange(&login).await;
    let (limit, remaining, reset) = rate_headers(&exchange);
    assert_eq!((limit, remaining), (5000, 4999));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(reset > now && reset <= now + 3600);
    let tokens = crate::support::Tokens::from(exchange.json::<Value>().await.unwrap());

    assert_eq!(rate_headers(&h.userinfo(&tokens.access).await).1, 4998);
    let current = h.users_current(&tokens.access).await;
    assert_eq!(rate_headers(&current).1, 4997);
    assert_eq!(
        rate_headers(&h.refresh(&tokens.refresh, None).await).1,
        4996
    );
    assert_eq!(rate_headers(&h.revoke("x").await).1, 4995);
    // Errors count and carry the headers too (the refresh killed this token).
    let dead = h.userinfo(&tokens.access).await;
    assert_eq!(dead.status(), 401);
    assert_eq!(rate_headers(&dead).1, 4994);
}

#[tokio::test]
async fn over_budget_is_429_with_doximitys_body() {
    let h = Harness::start(MockProvider::builder().auto_approve(true).rate_limit(3)).await;
    let tokens = h.tokens().await; // 1
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200); // 2
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200); // 3
    let response = h.userinfo(&tokens.access).await;
    assert_eq!(response.status(), 429);
    let (limit, remaining, _) = rate_headers(&response);
    assert_eq!((limit, remaining), (3, 0));
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "message": "API rate limit exceeded. Please check the documentation for details.",
            "documentation_url": "https://www.doximity.com/developers/documentation#rate_limiting"
        })
    );
    assert_eq!(h.revoke(&tokens.access).await.status(), 429);
    // The access token was not revoked: the 429 did nothing.
    h.mock.set_rate_limit(10);
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200);

    // A new window starts an hour after the first use.
    h.mock.set_rate_limit(3);
    assert_eq!(h.userinfo(&tokens.access).await.status(), 429);
    // (The access token has expired by then: a 401, but counted in the new window.)
    h.mock.set_clock_offset(3600);
    let fresh = h.userinfo(&tokens.access).await;
    assert_eq!(fresh.status(), 401);
    assert_eq!(rate_headers(&fresh).1, 2);
}

#[tokio::test]
async fn the_rate_limit_endpoint_does_not_spend_the_budget() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    for _ in 0..3 {
        let response = rate_limit(&h, &tokens.access).await;
        assert_eq!(response.status(), 200);
        assert_eq!(rate_headers(&response).1, 4999);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["limit"], 5000);
        assert_eq!(body["remaining"], 4999);
        assert!(body["reset"].as_u64().unwrap() > 0);
    }
    assert_eq!(rate_headers(&h.userinfo(&tokens.access).await).1, 4998);
}

#[tokio::test]
async fn rate_limit_exhausted_fault_makes_every_counted_endpoint_429() {
    let h = Harness::auto().await;
    let tokens = h.tokens().await;
    h.mock.inject(Fault::RateLimitExhausted);
    assert_eq!(h.userinfo(&tokens.access).await.status(), 429);
    assert_eq!(h.refresh(&tokens.refresh, None).await.status(), 429);
    assert_eq!(h.revoke(&tokens.access).await.status(), 429);
    let current = h.users_current(&tokens.access).await;
    assert_eq!(current.status(), 429);
    let status: Value = rate_limit(&h, &tokens.access).await.json().await.unwrap();
    assert_eq!(status["remaining"], 0);
    h.mock.clear_faults();
    assert_eq!(h.userinfo(&tokens.access).await.status(), 200);
}
