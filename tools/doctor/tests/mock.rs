//! The doctor against the mock provider over real HTTPS: a healthy mock passes, and each
//! injected fault turns exactly its own line to warn or FAIL and the exit code non-zero.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use doximity_doctor::{Report, Status, names, run};
use doximity_mock::{Fault, MockProvider};

/// One RSA key in PKCS#8 PEM for every test (generating one takes a while).
fn dpop_pem() -> &'static str {
    static PEM: OnceLock<String> = OnceLock::new();
    PEM.get_or_init(|| {
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    })
}

fn cookie_keys() -> String {
    let a = base64::engine::general_purpose::STANDARD.encode([3u8; 64]);
    let b = base64::engine::general_purpose::STANDARD.encode([4u8; 64]);
    format!("{a},{b}")
}

/// A deployment configured for `mock`, every variable set well.
fn healthy_env(mock: &MockProvider) -> HashMap<&'static str, String> {
    let client = mock.client();
    HashMap::from([
        ("DOXIMITY_ISSUER", mock.issuer()),
        ("DOXIMITY_CA_CERT", mock.ca_path().display().to_string()),
        ("DOXIMITY_CLIENT_ID", client.client_id),
        ("DOXIMITY_CLIENT_SECRET", client.client_secret),
        (
            "DOXIMITY_REDIRECT_URI",
            "https://app.example/auth/doximity/callback".to_owned(),
        ),
        ("DOXIMITY_COOKIE_KEY", cookie_keys()),
        ("DOXIMITY_DPOP_KEY", dpop_pem().to_owned()),
    ])
}

async fn doctor(env: &HashMap<&'static str, String>) -> Report {
    run(|name| env.get(name).cloned()).await
}

/// Every line but `name` is ok; `name` has `status`; the exit code is non-zero.
#[track_caller]
fn only(report: &Report, name: &str, status: Status) {
    let line = report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} line:\n{report}"));
    assert_eq!(line.status, status, "{name}:\n{report}");
    for other in report.checks.iter().filter(|c| c.name != name) {
        assert_eq!(other.status, Status::Ok, "{}:\n{report}", other.name);
    }
    assert_ne!(report.exit_code(), 0, "{report}");
}

#[tokio::test]
async fn a_healthy_mock_passes_every_check() {
    let mock = MockProvider::start().await.unwrap();
    let env = healthy_env(&mock);
    let report = doctor(&env).await;
    assert_eq!(report.exit_code(), 0, "{report}");
    for name in [
        names::CREDENTIALS,
        names::CA_CERT,
        names::REDIRECT_URI,
        names::COOKIE_KEY,
        names::DPOP_KEY,
        names::ISSUER,
        names::METADATA_AGREE,
        names::ID_TOKEN_ALG,
        names::CLIENT_AUTH,
        names::HTTPS,
        names::REVOCATION,
        names::DPOP,
        names::CLOCK,
        names::RATE_LIMIT,
    ] {
        assert_eq!(
            report.get(name).map(|c| c.status),
            Some(Status::Ok),
            "{name}:\n{report}"
        );
    }
    assert_eq!(report.to_string().lines().count(), report.checks.len());
    let rate = report.get(names::RATE_LIMIT).unwrap();
    assert!(rate.reason.starts_with("5000 of 5000"), "{rate}");
}

#[tokio::test]
async fn each_provider_fault_fails_or_warns_on_its_own_line() {
    let mock = MockProvider::start().await.unwrap();
    let env = healthy_env(&mock);
    let cases = [
        (Fault::DiscoveryWrongIssuer, names::ISSUER, Status::Fail),
        (
            Fault::DiscoveryDocumentsDisagree,
            names::METADATA_AGREE,
            Status::Fail,
        ),
        (Fault::DiscoveryHttpEndpoint, names::HTTPS, Status::Fail),
        (
            Fault::DiscoveryNoRevocationEndpoint,
            names::REVOCATION,
            Status::Fail,
        ),
        (Fault::DiscoveryNoRs256, names::ID_TOKEN_ALG, Status::Fail),
        (Fault::DiscoveryNoDpop, names::DPOP, Status::Warn),
        (Fault::SkewedDate(12), names::CLOCK, Status::Warn),
        (Fault::SkewedDate(-12), names::CLOCK, Status::Warn),
        (Fault::SkewedDate(120), names::CLOCK, Status::Fail),
        (Fault::SkewedDate(-120), names::CLOCK, Status::Fail),
        (
            Fault::RateLimitNearlyExhausted,
            names::RATE_LIMIT,
            Status::Warn,
        ),
        (Fault::RateLimitExhausted, names::RATE_LIMIT, Status::Fail),
    ];
    for (fault, name, status) in cases {
        mock.clear_faults();
        mock.inject(fault);
        let report = doctor(&env).await;
        only(&report, name, status);
    }
    // Cleared, the same provider passes again.
    mock.clear_faults();
    assert_eq!(doctor(&env).await.exit_code(), 0);
}

#[tokio::test]
async fn the_failing_lines_say_why() {
    let mock = MockProvider::start().await.unwrap();
    let env = healthy_env(&mock);
    mock.inject(Fault::DiscoveryDocumentsDisagree);
    mock.inject(Fault::DiscoveryHttpEndpoint);
    mock.inject(Fault::SkewedDate(120));
    let report = doctor(&env).await;
    assert_eq!(report.exit_code(), 1);
    let agree = report.get(names::METADATA_AGREE).unwrap();
    assert!(agree.reason.contains("token_endpoint"), "{agree}");
    let https = report.get(names::HTTPS).unwrap();
    assert!(https.reason.contains("token_endpoint"), "{https}");
    assert!(https.reason.contains("http://"), "{https}");
    let clock = report.get(names::CLOCK).unwrap();
    assert!(clock.reason.contains("ahead of"), "{clock}");
    assert!(clock.to_string().starts_with("FAIL clock: "), "{clock}");
}

#[tokio::test]
async fn configuration_faults_fail_or_warn_on_their_own_line() {
    let mock = MockProvider::start().await.unwrap();
    let base = healthy_env(&mock);
    let short_key = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
    let cases: [(&str, Option<&str>, &str, Status); 6] = [
        (
            "DOXIMITY_REDIRECT_URI",
            Some("http://app.example/auth/doximity/callback"),
            names::REDIRECT_URI,
            Status::Fail,
        ),
        (
            "DOXIMITY_COOKIE_KEY",
            Some(&short_key),
            names::COOKIE_KEY,
            Status::Fail,
        ),
        ("DOXIMITY_COOKIE_KEY", None, names::COOKIE_KEY, Status::Warn),
        ("DOXIMITY_DPOP_KEY", None, names::DPOP_KEY, Status::Warn),
        (
            "DOXIMITY_DPOP_KEY",
            Some("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"),
            names::DPOP_KEY,
            Status::Fail,
        ),
        (
            "DOXIMITY_CLIENT_SECRET",
            None,
            names::CREDENTIALS,
            Status::Fail,
        ),
    ];
    for (var, value, name, status) in cases {
        let mut env = base.clone();
        match value {
            Some(v) => env.insert(var, v.to_owned()),
            None => env.remove(var),
        };
        let report = doctor(&env).await;
        only(&report, name, status);
    }
}

#[tokio::test]
async fn another_ca_is_not_trusted() {
    let mock = MockProvider::start().await.unwrap();
    let other = MockProvider::start().await.unwrap();
    let mut env = healthy_env(&mock);
    env.insert("DOXIMITY_CA_CERT", other.ca_path().display().to_string());
    let report = doctor(&env).await;
    let issuer = report.get(names::ISSUER).unwrap();
    assert_eq!(issuer.status, Status::Fail, "{report}");
    assert!(
        issuer.reason.to_lowercase().contains("certificate"),
        "{issuer}"
    );
    assert_eq!(report.exit_code(), 1);
}

#[tokio::test]
async fn no_secret_is_ever_printed() {
    let mock = MockProvider::start().await.unwrap();
    let env = healthy_env(&mock);
    let secret = env["DOXIMITY_CLIENT_SECRET"].clone();
    let pem_body: String = dpop_pem().lines().nth(1).unwrap().to_owned();
    let mut texts = vec![doctor(&env).await.to_string()];
    for fault in [
        Fault::RateLimitExhausted,
        Fault::DiscoveryDocumentsDisagree,
        Fault::SkewedDate(300),
    ] {
        mock.clear_faults();
        mock.inject(fault);
        texts.push(doctor(&env).await.to_string());
    }
    let mut bad_keys = env.clone();
    bad_keys.insert("DOXIMITY_COOKIE_KEY", format!("{},short", cookie_keys()));
    texts.push(doctor(&bad_keys).await.to_string());
    for text in texts {
        assert!(!text.contains(&secret), "client secret printed:\n{text}");
        assert!(!text.contains(&pem_body), "DPoP key printed:\n{text}");
        for key in cookie_keys().split(',') {
            assert!(!text.contains(key), "cookie key printed:\n{text}");
        }
    }
}

#[tokio::test]
async fn mock_mode_points_at_the_embedded_mock() {
    let mock = MockProvider::start().await.unwrap();
    let report = run(doximity_doctor::mock_lookup(&mock, |_| None)).await;
    // Nothing else configured: the provider lines pass, the unset keys warn.
    for c in &report.checks {
        let expected = match c.name {
            n if n == names::COOKIE_KEY || n == names::DPOP_KEY => Status::Warn,
            _ => Status::Ok,
        };
        assert_eq!(c.status, expected, "{c}\n{report}");
    }
    assert_eq!(report.exit_code(), 2);
}
