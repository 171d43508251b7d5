//! The command's non-interactive mode: the embedded mock approves by itself, and the
//! configured-provider mode against a mock standing in for Doximity.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use device_cli::{Env, Options, run};
use doximity_mock::{Fault, MockProvider};

fn env_of(vars: HashMap<&'static str, String>) -> Env {
    Arc::new(move |name| vars.get(name).cloned())
}

fn quick(options: Options) -> Options {
    Options {
        approve_after: Duration::from_secs(1),
        mock_interval: Some(Duration::from_secs(1)),
        spinner: false,
        ..options
    }
}

#[tokio::test]
async fn with_no_credentials_the_embedded_mock_signs_in_a_named_clinician() {
    let options = quick(Options {
        userinfo: true,
        auto_approve: Some("okafor".into()),
        ..Options::default()
    });
    let mut out = Vec::new();
    let outcome = run(&env_of(HashMap::new()), &options, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();

    let user_code = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("2. Enter the code"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(user_code.len(), 9, "{text}");
    assert!(text.contains("/device"), "{text}");
    assert!(
        text.contains(&format!("/device?user_code={user_code}")),
        "{text}"
    );
    // The QR code is drawn with half blocks.
    assert!(text.contains('█') && text.contains('▀'), "{text}");
    assert!(text.contains("James Adebayo Okafor, DO"), "{text}");
    assert!(text.contains("Userinfo"), "{text}");

    let me = outcome.userinfo.unwrap();
    assert_eq!(me.name.as_deref(), Some("James Adebayo Okafor"));
    assert_eq!(me.sub, outcome.tokens.claims.sub);
    assert!(outcome.tokens.scopes.contains("profile:read:basic"));
}

#[tokio::test]
async fn an_unknown_clinician_name_is_refused_with_the_choices() {
    let options = quick(Options {
        auto_approve: Some("Dr Nobody".into()),
        ..Options::default()
    });
    let err = run(&env_of(HashMap::new()), &options, &mut Vec::new())
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("Maria Garcia"), "{text}");
}

#[tokio::test]
async fn with_credentials_it_uses_the_configured_provider() {
    // A mock standing in for the configured provider; it approves as its third clinician.
    let provider = MockProvider::builder().start().await.unwrap();
    let third = provider.clinicians()[2].clone();
    provider.set_device_interval(Duration::from_secs(1));
    provider.set_device_auto_approve(Some(third.sub.clone()), Duration::from_secs(1));
    let demo = provider.client();
    let vars = HashMap::from([
        ("DOXIMITY_CLIENT_ID", demo.client_id.clone()),
        ("DOXIMITY_CLIENT_SECRET", demo.client_secret.clone()),
        ("DOXIMITY_ISSUER", provider.issuer()),
        ("DOXIMITY_CA_CERT", provider.ca_path().display().to_string()),
    ]);
    let options = quick(Options {
        qr: false,
        ..Options::default()
    });
    let mut out = Vec::new();
    let outcome = run(&env_of(vars.clone()), &options, &mut out)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(outcome.tokens.claims.sub, third.sub);
    assert!(text.contains(&provider.issuer()), "{text}");
    assert!(!text.contains('█'), "--no-qr draws no QR code");

    // A provider that does not advertise device sign-in: a sentence that says so.
    provider.inject(Fault::DiscoveryNoDeviceEndpoint);
    let err = run(&env_of(vars.clone()), &options, &mut Vec::new())
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("does not offer device sign-in"),
        "{err:#}"
    );

    // Auto-approval is for the embedded mock only.
    let auto = Options {
        auto_approve: Some("1".into()),
        ..options
    };
    assert!(run(&env_of(vars), &auto, &mut Vec::new()).await.is_err());
}

#[test]
fn arguments_and_environment() {
    let env = env_of(HashMap::from([
        ("DEVICE_CLI_AUTO_APPROVE", "Raman".to_owned()),
        ("DEVICE_CLI_APPROVE_AFTER", "7".to_owned()),
    ]));
    let o = Options::from_args(Vec::<String>::new(), &env).unwrap();
    assert_eq!(o.auto_approve.as_deref(), Some("Raman"));
    assert_eq!(o.approve_after, Duration::from_secs(7));
    let o = Options::from_args(["--auto-approve".to_owned(), "--no-qr".to_owned()], &env).unwrap();
    assert_eq!(o.auto_approve.as_deref(), Some("1"));
    assert!(!o.qr);
    assert!(Options::from_args(["--frobnicate".to_owned()], &env).is_err());
    assert!(Options::from_args(["--approve-after=soon".to_owned()], &env).is_err());
}
