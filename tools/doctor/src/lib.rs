//! `doximity-doctor`: checks a Sign in with Doximity deployment against the provider's live
//! metadata, one line per check, and says whether anything is wrong.
//!
//! It reads the deployment's environment (the configuration contract: `DOXIMITY_ISSUER`,
//! `DOXIMITY_CA_CERT`, `DOXIMITY_CLIENT_ID`, `DOXIMITY_CLIENT_SECRET`,
//! `DOXIMITY_REDIRECT_URI`, `DOXIMITY_COOKIE_KEY`, `DOXIMITY_DPOP_KEY`) through a lookup
//! function, reads both discovery documents and the rate-limit budget over HTTPS with
//! certificates verified (the extra root of `DOXIMITY_CA_CERT`, never verification turned
//! off), and returns a [`Report`]. No secret is ever written into a report: the client
//! secret, the cookie keys and the `DPoP` key are only ever described ("set", "2 keys of 64
//! bytes"). Text that came from the provider is escaped and bounded with
//! [`doximity::text::escape`].
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let report = doximity_doctor::run(|name| std::env::var(name).ok()).await;
//! print!("{report}");
//! std::process::exit(report.exit_code().into());
//! # }
//! ```
//!
//! `docs/doctor.md` in the repository lists every check and what it asks of the provider.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use doximity::RateLimitStatus;
use doximity::text::escape;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use serde_json::{Map, Value};
use url::{Host, Url};

/// The check names, as printed at the start of each line's reason.
pub mod names {
    /// `DOXIMITY_CLIENT_ID` and `DOXIMITY_CLIENT_SECRET` are set.
    pub const CREDENTIALS: &str = "credentials";
    /// `DOXIMITY_CA_CERT`, when set, is a readable PEM file of certificates.
    pub const CA_CERT: &str = "ca-cert";
    /// `DOXIMITY_REDIRECT_URI` is well-formed, https unless on loopback.
    pub const REDIRECT_URI: &str = "redirect-uri";
    /// `DOXIMITY_COOKIE_KEY`: present, base64 keys of 64 bytes.
    pub const COOKIE_KEY: &str = "cookie-key";
    /// `DOXIMITY_DPOP_KEY`: present, an RSA private key in PEM.
    pub const DPOP_KEY: &str = "dpop-key";
    /// The OpenID configuration's `issuer` is the configured issuer.
    pub const ISSUER: &str = "issuer";
    /// The two discovery documents agree on the issuer and the endpoints they share.
    pub const METADATA_AGREE: &str = "metadata-agree";
    /// RS256 is among the ID-token signing algorithms.
    pub const ID_TOKEN_ALG: &str = "id-token-alg";
    /// `client_secret_basic` is accepted at the token (and revocation) endpoint.
    pub const CLIENT_AUTH: &str = "client-auth";
    /// Every endpoint of both documents is https.
    pub const HTTPS: &str = "https";
    /// A revocation endpoint is advertised.
    pub const REVOCATION: &str = "revocation";
    /// `DPoP` signing algorithms: RS256 advertised.
    pub const DPOP: &str = "dpop";
    /// The provider's `Date` against this machine's clock.
    pub const CLOCK: &str = "clock";
    /// The rate-limit headers and the budget left.
    pub const RATE_LIMIT: &str = "rate-limit";
}

/// The largest provider answer read, as in the core client: 1 MiB.
const MAX_BODY: usize = 1024 * 1024;
/// The timeout of each call to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A clock skew up to this is fine; above it a warning, above the ID-token leeway a failure.
pub const SKEW_WARN: Duration = Duration::from_secs(5);
/// Below this share of the hourly budget left (one tenth), the rate-limit line warns.
const LOW_BUDGET_DIVISOR: u64 = 10;
/// The smallest RSA key accepted for `DPoP` proofs.
const MIN_RSA_BITS: usize = 2048;

/// The endpoint fields both documents may carry, which must then be equal.
const SHARED_FIELDS: [&str; 9] = [
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "userinfo_endpoint",
    "end_session_endpoint",
    "check_session_iframe",
    "revocation_endpoint",
    "device_authorization_endpoint",
];

/// How one check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but something should be looked at.
    Warn,
    /// Broken: sign-in (or part of it) will not work, or is unsafe.
    Fail,
}

impl Status {
    /// The label printed at the start of the line: `ok`, `warn` or `FAIL`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Which check (one of [`names`]).
    pub name: &'static str,
    /// Its outcome.
    pub status: Status,
    /// Why, in words; provider text in it is escaped.
    pub reason: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4} {}: {}",
            self.status.label(),
            self.name,
            self.reason
        )
    }
}

/// Every check, in the order run. Its `Display` is one line per check.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The checks, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst outcome (`Ok` for an empty report).
    pub fn worst(&self) -> Status {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    /// The process exit code: 0 when every check is ok, 1 when one failed, 2 when the worst
    /// is a warning.
    pub fn exit_code(&self) -> u8 {
        match self.worst() {
            Status::Ok => 0,
            Status::Fail => 1,
            Status::Warn => 2,
        }
    }

    /// The check called `name`, when it ran.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    fn push(&mut self, name: &'static str, status: Status, reason: impl Into<String>) {
        self.checks.push(Check {
            name,
            status,
            reason: reason.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            writeln!(f, "{check}")?;
        }
        Ok(())
    }
}

/// Runs every check for the deployment the variables of `lookup` describe. An empty
/// variable counts as unset, as in the core's `Config::from_lookup`.
pub async fn run(lookup: impl Fn(&str) -> Option<String>) -> Report {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut report = Report::default();
    check_credentials(
        &mut report,
        get("DOXIMITY_CLIENT_ID").as_deref(),
        get("DOXIMITY_CLIENT_SECRET").is_some(),
    );
    let ca_pem = check_ca_cert(&mut report, get("DOXIMITY_CA_CERT").as_deref());
    check_redirect_uri(&mut report, get("DOXIMITY_REDIRECT_URI").as_deref());
    check_cookie_key(&mut report, get("DOXIMITY_COOKIE_KEY").as_deref());
    check_dpop_key(&mut report, get("DOXIMITY_DPOP_KEY").as_deref());

    let issuer = get("DOXIMITY_ISSUER").unwrap_or_else(|| doximity::config::DEFAULT_ISSUER.into());
    let http = match http_client(ca_pem.as_deref()) {
        Ok(http) => http,
        Err(reason) => {
            report.push(names::ISSUER, Status::Fail, reason);
            return report;
        }
    };
    let credentials = get("DOXIMITY_CLIENT_ID").zip(get("DOXIMITY_CLIENT_SECRET"));
    check_provider(&mut report, &http, &issuer, credentials).await;
    report
}

/// The variables of the embedded mock provider (issuer, CA file, the demo client's
/// credentials) over those of `base`: what `--mock` runs against.
pub fn mock_lookup(
    mock: &doximity_mock::MockProvider,
    base: impl Fn(&str) -> Option<String>,
) -> impl Fn(&str) -> Option<String> {
    let client = mock.client();
    let issuer = mock.issuer();
    let ca_path = mock.ca_path().display().to_string();
    move |name: &str| match name {
        "DOXIMITY_ISSUER" => Some(issuer.clone()),
        "DOXIMITY_CA_CERT" => Some(ca_path.clone()),
        "DOXIMITY_CLIENT_ID" => Some(client.client_id.clone()),
        "DOXIMITY_CLIENT_SECRET" => Some(client.client_secret.clone()),
        other => base(other),
    }
}

fn check_credentials(report: &mut Report, client_id: Option<&str>, secret_set: bool) {
    match (client_id, secret_set) {
        (Some(id), true) => report.push(
            names::CREDENTIALS,
            Status::Ok,
            format!("client id {}, client secret set", escape(id)),
        ),
        (None, _) => report.push(
            names::CREDENTIALS,
            Status::Fail,
            "DOXIMITY_CLIENT_ID is unset (run with --mock for the embedded mock provider)",
        ),
        (Some(_), false) => report.push(
            names::CREDENTIALS,
            Status::Fail,
            "DOXIMITY_CLIENT_SECRET is unset",
        ),
    }
}

/// Reads the CA file; `None` when unset or unusable (then the line says why).
fn check_ca_cert(report: &mut Report, path: Option<&str>) -> Option<Vec<u8>> {
    let Some(path) = path else {
        report.push(
            names::CA_CERT,
            Status::Ok,
            "unset: only the public web roots are trusted",
        );
        return None;
    };
    let shown = escape(path);
    let pem = match std::fs::read(path) {
        Ok(pem) => pem,
        Err(e) => {
            report.push(
                names::CA_CERT,
                Status::Fail,
                format!("cannot read {shown}: {}", escape(&e.to_string())),
            );
            return None;
        }
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&pem).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => {
            report.push(
                names::CA_CERT,
                Status::Ok,
                format!(
                    "{shown}: {} certificate(s), trusted besides the web roots",
                    certs.len()
                ),
            );
            Some(pem)
        }
        _ => {
            report.push(
                names::CA_CERT,
                Status::Fail,
                format!("{shown} holds no PEM certificate"),
            );
            None
        }
    }
}

fn check_redirect_uri(report: &mut Report, value: Option<&str>) {
    let (value, default) = match value {
        Some(v) => (v, ""),
        None => (doximity::config::DEFAULT_REDIRECT_URI, " (the default)"),
    };
    let shown = escape(value);
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(e) => {
            report.push(
                names::REDIRECT_URI,
                Status::Fail,
                format!("{shown}{default} is not a URL: {e}"),
            );
            return;
        }
    };
    let (status, why) = if url.fragment().is_some() {
        (Status::Fail, "has a fragment, which OAuth forbids")
    } else if url.host().is_none() {
        (Status::Fail, "has no host")
    } else if !url.username().is_empty() || url.password().is_some() {
        (Status::Fail, "carries credentials")
    } else if url.scheme() == "https" {
        (Status::Ok, "https")
    } else if url.scheme() == "http" && is_loopback(&url) {
        (Status::Ok, "http on loopback, for one machine only")
    } else if url.scheme() == "http" {
        (
            Status::Fail,
            "is http on a host that is not loopback: the code and the session cookie would travel in clear",
        )
    } else {
        (Status::Fail, "is neither https nor http")
    };
    report.push(
        names::REDIRECT_URI,
        status,
        format!("{shown}{default} {why}"),
    );
}

/// A loopback IP literal, or `localhost`.
fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Decodes one cookie key as the layer does: standard base64, or URL-safe without padding.
fn decode_key(encoded: &str) -> Option<Vec<u8>> {
    let encoded = encoded.trim();
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('='))
        })
        .ok()
}

fn check_cookie_key(report: &mut Report, value: Option<&str>) {
    let Some(value) = value else {
        report.push(
            names::COOKIE_KEY,
            Status::Warn,
            "DOXIMITY_COOKIE_KEY is unset: the app makes a random key per process, so sessions \
             end at each restart and do not span instances",
        );
        return;
    };
    let keys: Vec<&str> = value.split(',').collect();
    let count = keys.len();
    for (i, key) in keys.iter().enumerate() {
        let n = i + 1;
        let problem = match decode_key(key) {
            _ if key.trim().is_empty() => Some("empty".to_owned()),
            None => Some("not base64".to_owned()),
            Some(bytes) if bytes.len() != 64 => Some(format!("{} bytes, want 64", bytes.len())),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            report.push(
                names::COOKIE_KEY,
                Status::Fail,
                format!("key {n} of {count} in DOXIMITY_COOKIE_KEY: {problem}"),
            );
            return;
        }
    }
    report.push(
        names::COOKIE_KEY,
        Status::Ok,
        format!("{count} key(s) of 64 bytes, the first seals"),
    );
}

fn check_dpop_key(report: &mut Report, value: Option<&str>) {
    let Some(value) = value else {
        report.push(
            names::DPOP_KEY,
            Status::Warn,
            "DOXIMITY_DPOP_KEY is unset: the app makes a random key per process, so DPoP-bound \
             tokens do not survive a restart nor span instances",
        );
        return;
    };
    let (pem, from) = if value.starts_with("-----BEGIN") {
        (value.to_owned(), "DOXIMITY_DPOP_KEY".to_owned())
    } else {
        match std::fs::read_to_string(value) {
            Ok(pem) => (pem, escape(value)),
            Err(e) => {
                report.push(
                    names::DPOP_KEY,
                    Status::Fail,
                    format!(
                        "DOXIMITY_DPOP_KEY is neither PEM text nor a readable file: {}",
                        escape(&e.to_string())
                    ),
                );
                return;
            }
        }
    };
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .ok()
        .or_else(|| rsa::RsaPrivateKey::from_pkcs1_pem(&pem).ok());
    match key {
        None => report.push(
            names::DPOP_KEY,
            Status::Fail,
            format!("{from} is not an RSA private key in PEM (PKCS#8 or PKCS#1), which RS256 proofs need"),
        ),
        Some(key) if key.size() * 8 < MIN_RSA_BITS => report.push(
            names::DPOP_KEY,
            Status::Fail,
            format!("{from}: an RSA key of {} bits, want at least {MIN_RSA_BITS}", key.size() * 8),
        ),
        Some(key) => report.push(
            names::DPOP_KEY,
            Status::Ok,
            format!("{from}: an RSA key of {} bits", key.size() * 8),
        ),
    }
}

/// The HTTPS client: rustls with the web roots plus the configured CA, no redirects,
/// timeouts, https only.
fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_pem {
        for cert in CertificateDer::pem_slice_iter(pem).flatten() {
            roots
                .add(cert)
                .map_err(|e| format!("the CA certificate is unusable: {e}"))?;
        }
    }
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| std::sync::Arc::new(rustls::crypto::ring::default_provider()));
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .user_agent(concat!("doximity-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTPS client: {e}"))
}

/// A provider answer, bounded.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
    received: SystemTime,
}

/// An error and its causes on one line, escaped (reqwest's own text omits the cause, which
/// is where "invalid peer certificate" is).
fn describe(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    escape(&out)
}

async fn fetch(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let received = SystemTime::now();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err("the answer is larger than 1 MiB".into());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body,
        received,
    })
}

/// A discovery document: `Ok(None)` when the provider answers 404.
async fn document(
    http: &reqwest::Client,
    url: &str,
) -> Result<Option<(Map<String, Value>, Answer)>, String> {
    let answer = fetch(http.get(url)).await?;
    if answer.status == 404 {
        return Ok(None);
    }
    if answer.status != 200 {
        return Err(format!("{} answered HTTP {}", escape(url), answer.status));
    }
    match serde_json::from_slice::<Value>(&answer.body) {
        Ok(Value::Object(map)) => Ok(Some((map, answer))),
        _ => Err(format!("{} is not a JSON object", escape(url))),
    }
}

fn str_field<'a>(doc: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    doc.get(name).and_then(Value::as_str)
}

fn list_field<'a>(doc: &'a Map<String, Value>, name: &str) -> Option<Vec<&'a str>> {
    doc.get(name)
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
}

fn shown_list(items: &[&str]) -> String {
    escape(&format!("{items:?}"))
}

async fn check_provider(
    report: &mut Report,
    http: &reqwest::Client,
    issuer: &str,
    credentials: Option<(String, String)>,
) {
    let base = issuer.trim_end_matches('/');
    let oidc_url = format!("{base}/.well-known/openid-configuration");
    let oauth_url = format!("{base}/.well-known/oauth-authorization-server");
    let (oidc, oidc_answer) = match document(http, &oidc_url).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            report.push(
                names::ISSUER,
                Status::Fail,
                format!("{} answered 404", escape(&oidc_url)),
            );
            return;
        }
        Err(reason) => {
            report.push(
                names::ISSUER,
                Status::Fail,
                format!("cannot read the OpenID configuration: {reason}"),
            );
            return;
        }
    };
    let oauth = match document(http, &oauth_url).await {
        Ok(Some((doc, _))) => Ok(doc),
        Ok(None) => Err(
            "the authorization-server document is not served (404); Doximity lists the \
             revocation endpoint only there"
                .to_owned(),
        ),
        Err(reason) => Err(format!(
            "cannot read the authorization-server document: {reason}"
        )),
    };
    check_issuer(report, issuer, &oidc, oauth.as_ref().ok());
    let oauth = match oauth {
        Ok(doc) => {
            check_agreement(report, &oidc, &doc);
            Some(doc)
        }
        Err(reason) => {
            report.push(names::METADATA_AGREE, Status::Fail, reason);
            None
        }
    };
    let empty = Map::new();
    let oauth = oauth.as_ref().unwrap_or(&empty);
    // A field from the OpenID configuration, else from the authorization-server document.
    let either = |name: &str| oidc.get(name).or_else(|| oauth.get(name));

    check_algorithms(report, &oidc, oauth);
    check_client_auth(report, &oidc, oauth);
    check_https(
        report,
        &[
            ("openid-configuration", &oidc),
            ("oauth-authorization-server", oauth),
        ],
    );
    match oauth
        .get("revocation_endpoint")
        .or_else(|| oidc.get("revocation_endpoint"))
        .and_then(Value::as_str)
    {
        Some(url) => report.push(names::REVOCATION, Status::Ok, escape(url)),
        None => report.push(
            names::REVOCATION,
            Status::Fail,
            "no revocation_endpoint: tokens cannot be revoked at sign-out",
        ),
    }
    match either("dpop_signing_alg_values_supported").and_then(Value::as_array) {
        None => report.push(
            names::DPOP,
            Status::Warn,
            "dpop_signing_alg_values_supported is not advertised: tokens cannot be bound to a key",
        ),
        Some(items) => {
            let algs: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
            if algs.contains(&"RS256") {
                report.push(
                    names::DPOP,
                    Status::Ok,
                    format!("RS256 among {}", shown_list(&algs)),
                );
            } else {
                report.push(
                    names::DPOP,
                    Status::Warn,
                    format!(
                        "RS256 is not among {}: DPoP proofs are signed RS256",
                        shown_list(&algs)
                    ),
                );
            }
        }
    }
    check_clock(report, &oidc_answer);

    let leftover = RateLimitStatus::from_headers(&oidc_answer.headers);
    let api = if issuer == doximity::config::DEFAULT_ISSUER {
        doximity::config::DEFAULT_API_BASE
    } else {
        base
    };
    check_rate_limit(report, http, api, credentials, leftover).await;
}

/// Each document's `issuer` is exactly the configured one.
fn check_issuer(
    report: &mut Report,
    issuer: &str,
    oidc: &Map<String, Value>,
    oauth: Option<&Map<String, Value>>,
) {
    let documents = [
        ("OpenID configuration", Some(oidc)),
        ("authorization-server document", oauth),
    ];
    for (doc_name, doc) in documents {
        let Some(doc) = doc else { continue };
        match str_field(doc, "issuer") {
            Some(found) if found == issuer => {}
            Some(found) => {
                report.push(
                    names::ISSUER,
                    Status::Fail,
                    format!(
                        "the {doc_name} names {}, the configuration {}",
                        escape(found),
                        escape(issuer)
                    ),
                );
                return;
            }
            None => {
                report.push(
                    names::ISSUER,
                    Status::Fail,
                    format!("the {doc_name} has no issuer"),
                );
                return;
            }
        }
    }
    report.push(
        names::ISSUER,
        Status::Ok,
        format!("{} (exactly as configured)", escape(issuer)),
    );
}

/// The two documents carry the same value for every field both have.
fn check_agreement(report: &mut Report, oidc: &Map<String, Value>, oauth: &Map<String, Value>) {
    let differ: Vec<String> = SHARED_FIELDS
        .iter()
        .filter_map(|field| match (oidc.get(*field), oauth.get(*field)) {
            (Some(a), Some(b)) if a != b => Some(format!(
                "{field}: {} vs {}",
                escape(&a.to_string()),
                escape(&b.to_string())
            )),
            _ => None,
        })
        .collect();
    if differ.is_empty() {
        let shared = SHARED_FIELDS
            .iter()
            .filter(|f| oidc.contains_key(**f) && oauth.contains_key(**f))
            .count();
        report.push(
            names::METADATA_AGREE,
            Status::Ok,
            format!("both documents agree on the {shared} fields they share"),
        );
    } else {
        report.push(
            names::METADATA_AGREE,
            Status::Fail,
            format!(
                "the documents disagree (openid-configuration vs oauth-authorization-server): {}",
                differ.join("; ")
            ),
        );
    }
}

fn check_algorithms(report: &mut Report, oidc: &Map<String, Value>, oauth: &Map<String, Value>) {
    let field = "id_token_signing_alg_values_supported";
    match list_field(oidc, field).or_else(|| list_field(oauth, field)) {
        Some(algs) if algs.contains(&"RS256") => report.push(
            names::ID_TOKEN_ALG,
            Status::Ok,
            format!("RS256 among {}", shown_list(&algs)),
        ),
        Some(algs) => report.push(
            names::ID_TOKEN_ALG,
            Status::Fail,
            format!(
                "RS256 is not among {}: the client accepts RS256 ID tokens only",
                shown_list(&algs)
            ),
        ),
        None => report.push(
            names::ID_TOKEN_ALG,
            Status::Fail,
            format!("{field} is not advertised"),
        ),
    }
}

fn check_client_auth(report: &mut Report, oidc: &Map<String, Value>, oauth: &Map<String, Value>) {
    let token = "token_endpoint_auth_methods_supported";
    let revocation = "revocation_endpoint_auth_methods_supported";
    let basic = "client_secret_basic";
    let token_methods = list_field(oidc, token).or_else(|| list_field(oauth, token));
    if let Some(methods) = &token_methods
        && !methods.contains(&basic)
    {
        report.push(
            names::CLIENT_AUTH,
            Status::Fail,
            format!(
                "{basic} is not among the token endpoint's methods {}",
                shown_list(methods)
            ),
        );
        return;
    }
    if let Some(methods) = list_field(oauth, revocation).or_else(|| list_field(oidc, revocation))
        && !methods.contains(&basic)
    {
        report.push(
            names::CLIENT_AUTH,
            Status::Fail,
            format!(
                "{basic} is not among the revocation endpoint's methods {}",
                shown_list(&methods)
            ),
        );
        return;
    }
    let how = if token_methods.is_some() {
        "advertised"
    } else {
        "not listed, the default of RFC 8414"
    };
    report.push(names::CLIENT_AUTH, Status::Ok, format!("{basic} {how}"));
}

/// Whether a metadata field names an endpoint (a URL the client or the browser calls).
fn is_endpoint_field(name: &str) -> bool {
    name.ends_with("_endpoint") || name == "jwks_uri" || name == "check_session_iframe"
}

fn check_https(report: &mut Report, documents: &[(&str, &Map<String, Value>)]) {
    let mut bad = Vec::new();
    let mut count = 0;
    for (doc_name, doc) in documents {
        for (field, value) in doc.iter() {
            if !is_endpoint_field(field) {
                continue;
            }
            count += 1;
            let ok = value
                .as_str()
                .and_then(|v| Url::parse(v).ok())
                .is_some_and(|u| u.scheme() == "https" && u.host().is_some());
            if !ok {
                bad.push(format!(
                    "{doc_name} {field} = {}",
                    escape(&value.to_string())
                ));
            }
        }
    }
    if bad.is_empty() {
        report.push(
            names::HTTPS,
            Status::Ok,
            format!("all {count} endpoints are https"),
        );
    } else {
        report.push(
            names::HTTPS,
            Status::Fail,
            format!(
                "not https (the client refuses such metadata): {}",
                bad.join("; ")
            ),
        );
    }
}

fn check_clock(report: &mut Report, answer: &Answer) {
    let Some(date) = answer
        .headers
        .get(http::header::DATE)
        .and_then(|d| d.to_str().ok())
    else {
        report.push(
            names::CLOCK,
            Status::Warn,
            "the provider sent no Date header: clock skew not checked",
        );
        return;
    };
    let Ok(theirs) = httpdate::parse_http_date(date) else {
        report.push(
            names::CLOCK,
            Status::Warn,
            format!(
                "the provider's Date header {} is not an HTTP date",
                escape(date)
            ),
        );
        return;
    };
    let secs = |t: SystemTime| -> i64 {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    };
    // `Date` has a resolution of one second: compare whole seconds.
    let skew = secs(theirs).saturating_sub(secs(answer.received));
    let leeway = doximity::Config::new(
        "doctor",
        doximity::secret::ClientSecret::new(String::new()),
        // Only the default leeway is read from this configuration.
        Url::parse(doximity::config::DEFAULT_REDIRECT_URI).expect("a constant, valid URL"),
    )
    .leeway();
    let leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
    let warn = i64::try_from(SKEW_WARN.as_secs()).unwrap_or(i64::MAX);
    let said = match skew {
        0 => "the provider's clock agrees with this machine's to the second".to_owned(),
        s if s > 0 => format!("the provider's clock is {s}s ahead of this machine's"),
        s => format!(
            "the provider's clock is {}s behind this machine's",
            s.unsigned_abs()
        ),
    };
    let abs = i64::try_from(skew.unsigned_abs()).unwrap_or(i64::MAX);
    if abs > leeway {
        report.push(
            names::CLOCK,
            Status::Fail,
            format!("{said}, beyond the ID-token leeway of {leeway}s: ID tokens will be refused"),
        );
    } else if abs > warn {
        report.push(
            names::CLOCK,
            Status::Warn,
            format!("{said} (within the ID-token leeway of {leeway}s; fix NTP)"),
        );
    } else {
        report.push(names::CLOCK, Status::Ok, said);
    }
}

async fn check_rate_limit(
    report: &mut Report,
    http: &reqwest::Client,
    api_base: &str,
    credentials: Option<(String, String)>,
    leftover: Option<RateLimitStatus>,
) {
    let url = format!("{}/api/v1/rate_limit", api_base.trim_end_matches('/'));
    let mut request = http.get(&url);
    if let Some((id, secret)) = &credentials {
        // Doximity (RFC 6749 §2.3.1): the id and the secret are form-encoded inside Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        request = request.basic_auth(enc(id), Some(enc(secret)));
    }
    let (status, source) = match fetch(request).await {
        Ok(answer) if answer.status == 429 => {
            let reset = RateLimitStatus::from_headers(&answer.headers)
                .map(|s| format!(", resets at {}", s.reset))
                .unwrap_or_default();
            report.push(
                names::RATE_LIMIT,
                Status::Fail,
                format!("the provider answers 429: the budget is spent{reset}"),
            );
            return;
        }
        Ok(answer) => match RateLimitStatus::from_headers(&answer.headers) {
            Some(s) => (Some(s), "X-Rate-Limit-* of /api/v1/rate_limit"),
            None => (leftover, "X-Rate-Limit-* of the discovery answer"),
        },
        Err(_) => (leftover, "X-Rate-Limit-* of the discovery answer"),
    };
    let Some(s) = status else {
        report.push(
            names::RATE_LIMIT,
            Status::Warn,
            format!(
                "no X-Rate-Limit-Limit/-Remaining/-Reset headers seen (asked {})",
                escape(&url)
            ),
        );
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let said = format!(
        "{} of {} requests left this hour, resets in {}s ({source})",
        s.remaining,
        s.limit,
        s.reset.saturating_sub(now)
    );
    if s.remaining == 0 {
        report.push(
            names::RATE_LIMIT,
            Status::Fail,
            format!("{said}: exhausted"),
        );
    } else if s.remaining.saturating_mul(LOW_BUDGET_DIVISOR) < s.limit {
        report.push(
            names::RATE_LIMIT,
            Status::Warn,
            format!("{said}: nearly exhausted"),
        );
    } else {
        report.push(names::RATE_LIMIT, Status::Ok, said);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(f: impl FnOnce(&mut Report)) -> Check {
        let mut report = Report::default();
        f(&mut report);
        assert_eq!(report.checks.len(), 1, "{report}");
        report.checks.remove(0)
    }

    fn key(bytes: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; bytes])
    }

    #[test]
    fn cookie_keys_are_base64_of_64_bytes_comma_separated_and_never_shown() {
        let ok = format!("{}, {}", key(64), key(64));
        let c = line(|r| check_cookie_key(r, Some(&ok)));
        assert_eq!(c.status, Status::Ok, "{c}");
        assert!(c.reason.contains("2 key(s)"), "{c}");
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([9u8; 64]);
        assert_eq!(
            line(|r| check_cookie_key(r, Some(&url_safe))).status,
            Status::Ok
        );

        for (value, why) in [
            (key(32), "32 bytes"),
            (
                format!("{},", key(64)),
                "key 2 of 2 in DOXIMITY_COOKIE_KEY: empty",
            ),
            ("not base64!".to_owned(), "not base64"),
            (
                format!("{},{}", key(64), key(65)),
                "key 2 of 2 in DOXIMITY_COOKIE_KEY: 65 bytes",
            ),
        ] {
            let c = line(|r| check_cookie_key(r, Some(&value)));
            assert_eq!(c.status, Status::Fail, "{value}: {c}");
            assert!(c.reason.contains(why), "{c}");
            assert!(!c.to_string().contains(&key(64)), "a key was printed: {c}");
        }
        assert_eq!(line(|r| check_cookie_key(r, None)).status, Status::Warn);
    }

    #[test]
    fn redirect_uris_must_be_https_off_loopback() {
        for (uri, status) in [
            ("https://app.example/auth/doximity/callback", Status::Ok),
            ("http://127.0.0.1:3000/auth/doximity/callback", Status::Ok),
            ("http://[::1]:3000/cb", Status::Ok),
            ("http://localhost:3000/cb", Status::Ok),
            ("http://app.example/auth/doximity/callback", Status::Fail),
            ("http://10.0.0.1/cb", Status::Fail),
            ("https://app.example/cb#frag", Status::Fail),
            ("https://user:pw@app.example/cb", Status::Fail),
            ("ftp://app.example/cb", Status::Fail),
            ("not a url", Status::Fail),
            ("/auth/doximity/callback", Status::Fail),
        ] {
            let c = line(|r| check_redirect_uri(r, Some(uri)));
            assert_eq!(c.status, status, "{uri}: {c}");
        }
        let default = line(|r| check_redirect_uri(r, None));
        assert_eq!(default.status, Status::Ok);
        assert!(default.reason.contains("(the default)"), "{default}");
    }

    #[test]
    fn a_missing_client_id_or_secret_fails_and_the_secret_is_never_shown() {
        let c = line(|r| check_credentials(r, Some("id-1"), true));
        assert_eq!(c.status, Status::Ok);
        assert_eq!(c.reason, "client id id-1, client secret set");
        assert_eq!(
            line(|r| check_credentials(r, None, true)).status,
            Status::Fail
        );
        assert_eq!(
            line(|r| check_credentials(r, Some("id-1"), false)).status,
            Status::Fail
        );
    }

    #[test]
    fn dpop_keys_must_be_rsa_pem_and_are_never_shown() {
        let c = line(|r| {
            check_dpop_key(
                r,
                Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            );
        });
        assert_eq!(c.status, Status::Fail, "{c}");
        assert!(!c.reason.contains("AAAA"), "{c}");
        let c = line(|r| check_dpop_key(r, Some("/nonexistent/dpop.pem")));
        assert_eq!(c.status, Status::Fail, "{c}");
        assert_eq!(line(|r| check_dpop_key(r, None)).status, Status::Warn);
    }

    #[test]
    fn provider_text_is_escaped_and_bounded_on_its_line() {
        let mut oidc = Map::new();
        oidc.insert(
            "issuer".into(),
            serde_json::json!("https://evil.example\nok   issuer: forged\u{2028}"),
        );
        let c = line(|r| check_issuer(r, "https://auth.doximity.com", &oidc, None));
        assert_eq!(c.status, Status::Fail);
        let text = c.to_string();
        assert!(!text.contains('\n') && !text.contains('\u{2028}'), "{text}");
        assert!(text.contains("evil.example\\nok"), "{text}");

        let long = "A".repeat(10_000);
        oidc.insert(
            "id_token_signing_alg_values_supported".into(),
            serde_json::json!([long]),
        );
        let c = line(|r| check_algorithms(r, &oidc, &Map::new()));
        assert_eq!(c.status, Status::Fail);
        assert!(c.to_string().chars().count() < 400, "unbounded: {c}");
    }

    #[test]
    fn exit_codes_follow_the_worst_line() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.push("a", Status::Ok, "");
        assert_eq!(r.exit_code(), 0);
        r.push("b", Status::Warn, "");
        assert_eq!(r.exit_code(), 2);
        r.push("c", Status::Fail, "");
        r.push("d", Status::Warn, "");
        assert_eq!(r.exit_code(), 1);
        assert_eq!(r.to_string().lines().count(), 4);
        assert!(r.to_string().starts_with("ok   a: \n"));
    }
}
