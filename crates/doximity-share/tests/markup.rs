//! Golden tests (the exact markup) and property tests (no value breaks out of its context).
//!
//! Regenerate the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p doximity-share --test markup`, and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use doximity_share::{Mark, OnChanged, SessionCheck, ShareButton, SignInButton, SignInKind, Width};
use percent_encoding::percent_decode_str;
use proptest::prelude::*;

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

// ---------- golden ----------

#[test]
fn golden_share_button_both_forms() {
    let button = ShareButton::new()
        .with_url("https://app.example/a?b=1&c=<2>")
        .with_message("Check out \"this\" article")
        .with_subject("Measles in Ohio")
        .with_nonce("n0nce");
    golden(
        "share_button.html",
        &format!("{button}\n{}\n", button.plain_link()),
    );
}

#[test]
fn golden_share_button_without_parameters_or_script() {
    assert_eq!(
        ShareButton::new().without_script().to_string(),
        "<a class=\"doximity-share-button\" href=\"https://www.doximity.com/share\" \
         aria-label=\"Share via Doximity\">Share via Doximity®</a>"
    );
    assert_eq!(
        ShareButton::new()
            .with_endpoint("https://mock.example/share?v=1")
            .with_url("u")
            .with_mark(Mark::Trademark)
            .plain_link()
            .to_string(),
        "<a href=\"https://mock.example/share?v=1&amp;url=u\" \
         aria-label=\"Share via Doximity\">Share via Doximity™</a>"
    );
}

#[test]
fn golden_sign_in_buttons() {
    let buttons = [
        SignInButton::new(),
        SignInButton::new()
            .kind(SignInKind::Verify)
            .with_return_to("/me"),
        SignInButton::new()
            .kind(SignInKind::Create)
            .forward_kind(true)
            .with_width(Width::Points(200))
            .with_return_to("/x?y=1"),
        SignInButton::new()
            .with_login_path("/login")
            .with_image("/static/doximity-sign-in.png")
            .with_mark(Mark::Trademark),
        SignInButton::new().without_inline_style(),
    ];
    let all: String = buttons.iter().map(|b| format!("{b}\n")).collect();
    golden("sign_in_buttons.html", &all);
}

#[test]
fn sign_in_kinds_link_with_their_parameter_unless_told_not_to() {
    for (kind, param) in [
        (SignInKind::Login, ""),
        (SignInKind::Verify, "&type=verify"),
        (SignInKind::Create, "&prompt=create"),
    ] {
        let button = SignInButton::new().kind(kind).with_return_to("/");
        assert_eq!(
            button.href(),
            format!("/auth/doximity/login?return_to=%2F{param}")
        );
        assert_eq!(
            button.forward_kind(false).href(),
            "/auth/doximity/login?return_to=%2F"
        );
    }
}

#[test]
fn sign_in_button_is_140pt_by_30pt_and_widens_without_stretching() {
    let default = SignInButton::new().to_string();
    assert!(default.contains("height:30pt"));
    assert!(default.contains("min-width:140pt"));
    let wide = SignInButton::new()
        .with_width(Width::Percent(100))
        .to_string();
    assert!(wide.contains(";min-width:0;width:100%\""));
    assert!(wide.contains("justify-content:center") && wide.contains("white-space:nowrap"));
    let image = SignInButton::new().with_image("/b.png").to_string();
    assert!(image.contains("alt=\"Sign in with Doximity®\" style=\"height:30pt;width:auto\""));
}

#[test]
fn golden_session_check() {
    let check = SessionCheck::new(
        "https://auth.doximity.com/oauth/session_state",
        "client-1",
        "abc.salt",
    )
    .unwrap()
    .with_nonce("n0nce");
    let navigate = SessionCheck::new("https://127.0.0.1:8443/oauth/session_state", "c", "s")
        .unwrap()
        .with_interval(Duration::from_secs(2))
        .with_frame_id("op")
        .with_on_changed(OnChanged::Navigate("/auth/doximity/logout".into()));
    let report = SessionCheck::new("https://h/", "c", "s")
        .unwrap()
        .with_on_changed(OnChanged::Report);
    // The golden holds what the configuration writes: the iframe, the script tag and the
    // `cfg` line. The rest is the crate's fixed script, the same for every configuration
    // (checked here); keeping a copy of it in the golden would only repeat `src/session.rs`.
    let mut fixed: Option<String> = None;
    let mut configured = String::new();
    for markup in [check.to_string(), navigate.to_string(), report.to_string()] {
        let (written, script): (Vec<&str>, Vec<&str>) = markup.lines().partition(|line| {
            line.starts_with("<iframe ")
                || line.starts_with("<script")
                || line.trim_start().starts_with("var cfg = ")
        });
        assert_eq!(
            written.len(),
            3,
            "one iframe, one script tag, one cfg: {markup}"
        );
        assert!(markup.ends_with("})();\n</script>"), "{markup}");
        let script = script.join("\n");
        match &fixed {
            None => fixed = Some(script),
            Some(first) => assert_eq!(&script, first, "the fixed script varies: {markup}"),
        }
        configured.extend(written.iter().map(|line| format!("{line}\n")));
    }
    golden("session_check.html", &configured);
}

// ---------- properties ----------

/// The structural characters of markup: escaped values never add any.
fn structure(markup: &str) -> [usize; 4] {
    let count = |c| markup.matches(c).count();
    [count('<'), count('>'), count('"'), count('\'')]
}

fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The raw (still escaped) value of the first `name="…"` attribute.
fn attr<'a>(markup: &'a str, name: &str) -> &'a str {
    let start = markup
        .find(&format!(" {name}=\""))
        .unwrap_or_else(|| panic!("no {name} in {markup}"))
        + name.len()
        + 3;
    let len = markup[start..].find('"').unwrap();
    &markup[start..start + len]
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode_str(v).decode_utf8().unwrap().into_owned())
    })
}

/// Strings with the characters that break out of contexts, plus anything.
fn nasty() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(
            prop_oneof![
                Just("<".to_owned()),
                Just(">".to_owned()),
                Just("\"".to_owned()),
                Just("'".to_owned()),
                Just("&".to_owned()),
                Just("</script>".to_owned()),
                Just("</SCRIPT ".to_owned()),
                Just("<!--".to_owned()),
                Just("\\".to_owned()),
                Just("\u{2028}".to_owned()),
                Just("\u{2029}".to_owned()),
                Just("%".to_owned()),
                Just("#?=+ ".to_owned()),
                Just("&amp;".to_owned()),
                any::<char>().prop_map(String::from),
            ],
            0..12
        )
        .prop_map(|parts| parts.concat()),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn share_values_stay_in_their_attributes_and_round_trip(
        url in nasty(), message in nasty(), subject in nasty()
    ) {
        let button = ShareButton::new()
            .with_url(url.clone())
            .with_message(message.clone())
            .with_subject(subject.clone());
        let markup = button.to_string();
        let skeleton = ShareButton::new().with_url("u").with_message("m").with_subject("s").to_string();
        prop_assert_eq!(structure(&markup), structure(&skeleton));
        prop_assert_eq!(html_unescape(attr(&markup, "data-url")), url.as_str());
        prop_assert_eq!(html_unescape(attr(&markup, "data-message")), message.as_str());
        prop_assert_eq!(html_unescape(attr(&markup, "data-subject")), subject.as_str());
        let href = html_unescape(attr(&markup, "href"));
        prop_assert_eq!(query_param(&href, "url"), Some(url));
        prop_assert_eq!(query_param(&href, "message"), Some(message));
        prop_assert_eq!(query_param(&href, "subject"), Some(subject));
        let link = button.plain_link().to_string();
        prop_assert_eq!(html_unescape(attr(&link, "href")), href);
    }

    #[test]
    fn configuration_values_stay_in_their_attributes(
        endpoint in nasty(), script in nasty(), nonce in nasty()
    ) {
        let markup = ShareButton::new()
            .with_endpoint(endpoint.clone())
            .with_script_src(script.clone())
            .with_nonce(nonce.clone())
            .to_string();
        let skeleton = ShareButton::new().with_endpoint("e").with_script_src("s").with_nonce("n").to_string();
        prop_assert_eq!(structure(&markup), structure(&skeleton));
        prop_assert_eq!(html_unescape(attr(&markup, "href")), endpoint);
        prop_assert_eq!(html_unescape(attr(&markup, "src")), script);
        prop_assert_eq!(html_unescape(attr(&markup, "nonce")), nonce);
    }

    #[test]
    fn sign_in_values_stay_in_their_attributes(
        login in nasty(), return_to in nasty(), image in nasty()
    ) {
        let button = SignInButton::new().with_login_path(login.clone()).with_return_to(return_to.clone());
        let markup = button.to_string();
        let skeleton = SignInButton::new().with_login_path("l").with_return_to("r").to_string();
        prop_assert_eq!(structure(&markup), structure(&skeleton));
        let href = html_unescape(attr(&markup, "href"));
        prop_assert_eq!(&href, &button.href());
        prop_assert!(href.starts_with(&login));
        prop_assert_eq!(percent_decode_str(&href[login.len() + 1 + "return_to=".len()..]).decode_utf8().unwrap(), return_to);
        let with_image = button.with_image(image.clone()).to_string();
        prop_assert_eq!(html_unescape(attr(&with_image, "src")), image);
    }

    #[test]
    fn session_check_values_cannot_leave_the_script(
        client_id in nasty(), session_state in nasty(), login in nasty(), nonce in nasty(), frame_id in nasty()
    ) {
        let check = SessionCheck::new("https://auth.example:8443/oauth/session_state", client_id.clone(), session_state.clone())
            .unwrap()
            .with_nonce(nonce.clone())
            .with_frame_id(frame_id.clone())
            .with_on_changed(OnChanged::Recheck { login_path: login.clone() });
        let markup = check.to_string();
        let skeleton = SessionCheck::new("https://auth.example:8443/oauth/session_state", "c", "s")
            .unwrap()
            .with_nonce("n")
            .with_frame_id("f")
            .to_string();
        prop_assert_eq!(structure(&markup)[..2].to_vec(), structure(&skeleton)[..2].to_vec(), "no < or > added");
        prop_assert_eq!(html_unescape(attr(&markup, "nonce")), nonce);
        prop_assert_eq!(html_unescape(attr(&markup, "id")), frame_id.as_str());
        let open = markup.find("<script").unwrap();
        let body_start = open + markup[open..].find('>').unwrap() + 1;
        let body_end = markup.rfind("</script>").unwrap();
        let body = &markup[body_start..body_end];
        let lower = body.to_ascii_lowercase();
        prop_assert!(!lower.contains("</script"), "script closes early: {}", body);
        prop_assert!(!body.contains("<!--"));
        let separators = ['\u{2028}', '\u{2029}'];
        prop_assert!(!body.contains(separators), "raw line separator in the script");
        let config_line = body.lines().find_map(|l| l.trim().strip_prefix("var cfg = ")).unwrap();
        let config: serde_json::Value = serde_json::from_str(config_line.strip_suffix(';').unwrap()).unwrap();
        prop_assert_eq!(&config["clientId"], &serde_json::Value::String(client_id));
        prop_assert_eq!(&config["sessionState"], &serde_json::Value::String(session_state));
        prop_assert_eq!(&config["frameId"], &serde_json::Value::String(frame_id));
        prop_assert_eq!(&config["onChanged"]["recheck"], &serde_json::Value::String(login));
        prop_assert_eq!(config["origin"].as_str(), Some("https://auth.example:8443"));
    }
}
