//! The audit trail and the metrics, end to end: a full sign-in, bearer calls, step-up,
//! refresh, sign-out and a refused copy of the cookies against the mock provider over HTTPS.
//! Every audit event is captured from `tracing` and checked against the schema of
//! `docs/audit.md`; every line logged during the run, at every level and target, is searched
//! for the session's secrets; the metrics of `docs/metrics.md` are read from a Prometheus
//! recorder.
//!
//! One test per binary: the subscriber and the recorder that capture the run are process-wide.

#![allow(clippy::unwrap_used)] // Test helpers: a failure should panic.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::{Extension, Router};
use doximity::Client;
use doximity_mock::MockProvider;
use doximity_test::TestClock;
use doximity_test::oneshot::{Jar, body, location};
use http::{Request, Response, StatusCode};
use tower::ServiceExt;
use tower_doximity::{AuthContext, AuthError, DoximityAuth, DoximityIdentity};

const REDIRECT: &str = "https://app.example/auth/doximity/callback";
const ORIGIN: &str = "https://app.example";

/// Every line the run logs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// The fields every audit event carries (`docs/audit.md`); the last two only when known.
const SCHEMA: [&str; 10] = [
    "event",
    "sub",
    "session",
    "client",
    "reason",
    "by",
    "remaining",
    "request_id",
    "traceparent",
    "peer",
];

/// One audit event as logged: its fields (JSON).
fn audit_events(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "doximity::audit")
        .map(|v| v["fields"].clone())
        .collect()
}

struct App {
    mock: MockProvider,
    app: Router,
    browser: reqwest::Client,
    clock: TestClock,
}

impl App {
    async fn send(&self, req: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(req).await.unwrap()
    }

    async fn get(&self, path: &str, jar: &Jar) -> Response<Body> {
        self.send(
            Request::get(path)
                .header("cookie", jar.header())
                .header("accept", "text/html")
                .header("x-request-id", "req\t7\\n")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Follows a login link through the provider (auto-approving) back to the callback;
    /// returns the callback's path and query (they hold the code and the state).
    async fn through_provider(&self, login: &str, jar: &mut Jar) -> String {
        let res = self.get(login, jar).await;
        assert_eq!(res.status(), StatusCode::SEE_OTHER);
        jar.update(&res);
        doximity_test::at_provider(&self.browser, &res).await
    }
}

#[tokio::test]
async fn a_whole_session_is_audited_by_the_schema_counted_in_metrics_and_logs_no_secret() {
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .init();

    let mock = doximity_test::auto_approving(REDIRECT)
        .access_token_ttl(Duration::from_secs(600))
        .start()
        .await
        .unwrap();
    let clock = TestClock::default();
    let client =
        Client::discover_with_clock(doximity_test::demo_config(&mock, REDIRECT), clock.clock())
            .await
            .unwrap();
    let auth = DoximityAuth::new(client)
        .with_step_up_scopes(&"profile:read:basic".parse().unwrap())
        .with_bearer(tower_doximity::BearerConfig::default());
    let app = Router::new()
        .route(
            "/me",
            get(
                |Extension(user): Extension<DoximityIdentity>| async move { user.sub().to_owned() },
            ),
        )
        .route(
            "/token",
            get(|Extension(user): Extension<DoximityIdentity>| async move {
                user.access_token().unwrap().secret().to_owned()
            }),
        )
        .route(
            "/profile",
            get(
                |Extension(user): Extension<DoximityIdentity>,
                 Extension(ctx): Extension<AuthContext>,
                 req: Request<Body>| async move {
                    match user.profile().await {
                        Ok(p) => Response::new(Body::from(p.sub)),
                        Err(e @ AuthError::InsufficientScope { .. }) => {
                            let (parts, _) = req.into_parts();
                            ctx.refusal(&parts, e).map(Body::new)
                        }
                        Err(e) => panic!("{e}"),
                    }
                },
            ),
        )
        .layer(auth.layer());
    let browser = doximity_test::https_client(&mock);
    let h = App {
        mock,
        app,
        browser,
        clock,
    };
    let mut secrets: Vec<String> = Vec::new();

    // Not signed in: refused (a redirect to sign in).
    let mut jar = Jar::default();
    let res: Response<Body> = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Sign in.
    let callback = h.through_provider(&location(&res), &mut jar).await;
    // The login transaction's cookie.
    secrets.extend(jar.0.values().cloned());
    let query = url::Url::parse(&format!("{ORIGIN}{callback}")).unwrap();
    for (k, v) in query.query_pairs() {
        if k == "code" || k == "state" {
            secrets.push(v.into_owned());
        }
    }
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    let sub = body(h.get("/me", &jar).await).await;
    let token = body(h.get("/token", &jar).await).await;
    secrets.push(token.clone());

    // The same access token twice as an API's bearer credential: checked once, then cached.
    for _ in 0..2 {
        let res = h
            .send(
                Request::get("/me")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(body(res).await, sub);
    }

    // Step up to the profile.
    let res = h.get("/profile", &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let callback = h.through_provider(&location(&res), &mut jar).await;
    let res = h.get(&callback, &jar).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    jar.update(&res);
    assert_eq!(h.get("/profile", &jar).await.status(), StatusCode::OK);

    // Refresh: the access token is near its end.
    h.mock.set_clock_offset(h.clock.advance(590));
    let res = h.get("/me", &jar).await;
    assert_eq!(res.status(), StatusCode::OK);
    jar.update(&res);
    secrets.push(body(h.get("/token", &jar).await).await);
    let before_logout = jar.clone();
    secrets.extend(jar.0.values().cloned());

    // Sign out, then a copy of the cookies from before is refused.
    let res = h
        .send(
            Request::post("/auth/doximity/logout")
                .header("cookie", jar.header())
                .header("origin", ORIGIN)
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        h.get("/me", &before_logout).await.status(),
        StatusCode::SEE_OTHER
    );

    let lines = captured.lines();
    let events = audit_events(&lines);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "refused",
            "sign_in.started",
            "sign_in.completed",
            "bearer.accepted",
            "bearer.accepted",
            "refused",
            "sign_in.started",
            "step_up",
            "sign_in.completed",
            "refresh.succeeded",
            "sign_out",
            "session.ended",
            "refused",
        ],
        "{events:#?}"
    );
    for e in &events {
        let mut fields: Vec<&str> = e
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "message")
            .collect();
        fields.sort_unstable();
        let mut schema: Vec<&str> = SCHEMA.to_vec();
        // Optional fields are left out when unset.
        schema.retain(|f| e.get(*f).is_some());
        schema.sort_unstable();
        assert_eq!(fields, schema, "{e}");
        let optional = ["remaining", "peer"];
        for required in SCHEMA.iter().filter(|f| !optional.contains(f)) {
            assert!(e.get(*required).is_some(), "{required} missing in {e}");
        }
    }
    let of = |name: &str| {
        events
            .iter()
            .filter(|e| e["event"] == name)
            .collect::<Vec<_>>()
    };
    // Who, and which session (a keyed hash, the same for the whole session).
    let completed = of("sign_in.completed");
    let session = completed[1]["session"].as_str().unwrap();
    assert_eq!(session.len(), 32);
    assert!(session.bytes().all(|b| b.is_ascii_hexdigit()));
    for e in [
        completed[1],
        of("refresh.succeeded")[0],
        of("sign_out")[0],
        of("session.ended")[0],
    ] {
        assert_eq!(e["sub"], sub.as_str(), "{e}");
        assert_eq!(e["session"], session, "{e}");
    }
    assert_ne!(
        completed[0]["session"], session,
        "a new sign-in is a new session"
    );
    assert_eq!(of("sign_out")[0]["by"], "user");
    assert_eq!(of("session.ended")[0]["reason"], "revoked");
    assert_eq!(of("refused")[0]["reason"], "unauthenticated");
    assert_eq!(of("refused")[0]["client"], "browser");
    assert_eq!(of("refused")[1]["reason"], "insufficient_scope");
    assert_eq!(of("refused")[1]["sub"], sub.as_str());
    // The request id is escaped: a tab is written as `\t`, a backslash doubled, so a
    // request id can never make a log line that reads like another.
    assert_eq!(of("refused")[0]["request_id"], "req\\t7\\\\n");
    assert_eq!(
        of("sign_out")[0]["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );

    // A span around each provider call, named by its endpoint (and nothing else: the
    // secret search below covers its fields too).
    let spans: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["span"]["name"] == "doximity.provider" && v["fields"]["message"] == "close")
        .map(|v| v["span"]["endpoint"].clone())
        .collect();
    for endpoint in ["discovery", "token", "userinfo"] {
        assert!(spans.iter().any(|e| e == endpoint), "{endpoint}: {spans:?}");
    }

    // No secret in any line of the run, whatever its target or level.
    assert!(secrets.len() >= 7, "{}", secrets.len());
    for secret in &secrets {
        assert!(secret.len() >= 16, "a secret too short to search for");
        for line in &lines {
            for piece in secret.as_bytes().chunks(16).filter(|c| c.len() == 16) {
                let piece = std::str::from_utf8(piece).unwrap();
                assert!(!line.contains(piece), "a secret is in the log: {line}");
            }
        }
    }

    // The metrics of the same run.
    let text = metrics.render();
    for expected in [
        "doximity_sign_ins_total{outcome=\"started\"} 2",
        "doximity_sign_ins_total{outcome=\"completed\"} 2",
        "doximity_step_ups_total 1",
        "doximity_refreshes_total{outcome=\"succeeded\"} 1",
        "doximity_refusals_total{reason=\"unauthenticated\"} 2",
        "doximity_refusals_total{reason=\"insufficient_scope\"} 1",
        "doximity_sign_outs_total{by=\"user\"} 1",
        "doximity_sessions_ended_total{reason=\"revoked\"} 1",
        "doximity_bearer_checks_total{result=\"accepted\"} 2",
        "doximity_bearer_cache_total{result=\"miss\"} 1",
        "doximity_bearer_cache_total{result=\"hit\"} 1",
        "doximity_provider_latency_seconds_count{endpoint=\"token\"} 3",
        "doximity_provider_latency_seconds_count{endpoint=\"userinfo\"} 2",
        "doximity_provider_rate_limit_remaining ",
    ] {
        assert!(text.contains(expected), "{expected} not in\n{text}");
    }
}
