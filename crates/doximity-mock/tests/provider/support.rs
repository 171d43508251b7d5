//! Helpers shared by the tests.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use doximity_mock::{ClientRegistration, MockProvider, MockProviderBuilder};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::signature::Verifier as _;
use rsa::{BigUint, RsaPublicKey};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use url::Url;

pub(crate) const SCOPE_ALL: &str = "openid profile:read:basic profile:read:email";

/// A running mock, an HTTP client that trusts only its CA, and its demo client.
pub(crate) struct Harness {
    pub(crate) mock: MockProvider,
    pub(crate) http: reqwest::Client,
    pub(crate) client: ClientRegistration,
}

impl Harness {
    pub(crate) async fn start(builder: MockProviderBuilder) -> Self {
        let mock = builder.start().await.expect("mock starts");
        let http = http_client(mock.ca_pem());
        let client = mock.client();
        Self { mock, http, client }
    }

    /// Auto-approving, the most common set-up.
    pub(crate) async fn auto() -> Self {
        Self::start(MockProvider::builder().auto_approve(true)).await
    }

    /// `GET path` at the provider: a 200 with a JSON body, that body.
    pub(crate) async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        response.json().await.unwrap()
    }

    /// `GET /api/v1/users/current` with `access_token` as the bearer.
    pub(crate) async fn users_current(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/api/v1/users/current"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.mock.issuer())
    }

    pub(crate) fn redirect_uri(&self) -> &str {
        &self.client.redirect_uris[0]
    }

    /// Default authorization parameters for the demo client.
    pub(crate) fn auth_params(&self, challenge: &str) -> Vec<(String, String)> {
        [
            ("client_id", self.client.client_id.as_str()),
            ("redirect_uri", self.redirect_uri()),
            ("response_type", "code"),
            ("scope", SCOPE_ALL),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    pub(crate) fn authorize_url(&self, params: &[(String, String)]) -> String {
        let mut url = Url::parse(&self.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// GET /oauth/authorize with these parameters and optional cookies.
    pub(crate) async fn authorize(
        &self,
        params: &[(String, String)],
        cookies: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self.http.get(self.authorize_url(params));
        if let Some(cookies) = cookies {
            request = request.header("cookie", cookies);
        }
        request.send().await.unwrap()
    }

    /// An auto-approved login: the redirect's parameters, the verifier, and the cookies set.
    pub(crate) async fn login_with(
        &self,
        params_edit: impl FnOnce(&mut Vec<(String, String)>),
    ) -> Login {
        let (verifier, challenge) = pkce();
        let mut params = self.auth_params(&challenge);
        params_edit(&mut params);
        let response = self.authorize(&params, None).await;
        assert_eq!(response.status(), 302, "authorize should redirect");
        let cookies = cookie_header(&response);
        let location = location(&response);
        let query = query_map(&location);
        Login {
            code: query.get("code").cloned().expect("a code"),
            query,
            verifier,
            cookies,
        }
    }

    pub(crate) async fn login(&self) -> Login {
        self.login_with(|_| {}).await
    }

    /// POST /oauth/token with the demo client's Basic credentials.
    pub(crate) async fn token_request(&self, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/token"))
            .basic_auth(&self.client.client_id, Some(&self.client.client_secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The authorization-code grant's form for `login`, at the demo client's redirect URI.
    pub(crate) fn code_form<'a>(&'a self, login: &'a Login) -> [(&'a str, &'a str); 4] {
        code_grant(&login.code, self.redirect_uri(), &login.verifier)
    }

    pub(crate) async fn exchange(&self, login: &Login) -> reqwest::Response {
        self.token_request(&self.code_form(login)).await
    }

    /// Login plus code exchange: the token response's JSON.
    pub(crate) async fn tokens(&self) -> Tokens {
        let login = self.login().await;
        let response = self.exchange(&login).await;
        assert_eq!(response.status(), 200);
        Tokens::from(response.json::<Value>().await.unwrap())
    }

    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        scope: Option<&str>,
    ) -> reqwest::Response {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        self.token_request(&form).await
    }

    pub(crate) async fn revoke(&self, token: &str) -> reqwest::Response {
        self.http
            .post(self.url("/oauth/revoke"))
            .basic_auth(&self.client.client_id, Some(&self.client.client_secret))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn userinfo(&self, access_token: &str) -> reqwest::Response {
        self.http
            .get(self.url("/oauth/userinfo"))
            .bearer_auth(access_token)
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn jwks(&self) -> Value {
        self.http
            .get(self.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Verifies an RS256 JWT against the served JWKS and returns its claims.
    pub(crate) async fn verified_claims(&self, token: &str) -> Value {
        let jwks = self.jwks().await;
        assert!(verifies(&jwks, token), "the JWT must verify with the JWKS");
        decode(token).1
    }
}

pub(crate) struct Login {
    pub(crate) code: String,
    pub(crate) query: HashMap<String, String>,
    pub(crate) verifier: String,
    pub(crate) cookies: String,
}

pub(crate) struct Tokens {
    pub(crate) access: String,
    pub(crate) refresh: String,
    pub(crate) id_token: String,
    pub(crate) json: Value,
}

impl From<Value> for Tokens {
    fn from(json: Value) -> Self {
        Self {
            access: json["access_token"].as_str().unwrap().to_owned(),
            refresh: json["refresh_token"].as_str().unwrap().to_owned(),
            id_token: json["id_token"].as_str().unwrap_or_default().to_owned(),
            json,
        }
    }
}

/// The form of an authorization-code grant: `code`, `redirect_uri` and the PKCE `verifier`.
pub(crate) fn code_grant<'a>(
    code: &'a str,
    redirect_uri: &'a str,
    verifier: &'a str,
) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ]
}

/// The current Unix time in seconds.
pub(crate) fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A reqwest client whose only trusted root is `ca_pem`, with redirects off.
pub(crate) fn http_client(ca_pem: &[u8]) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A page a person sees: a 200 that no other site may frame.
pub(crate) fn assert_unframeable_page(response: &reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(
        response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

/// The value of the hidden `csrf_token` field of a page's form.
pub(crate) fn csrf_field(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// A PKCE pair: (verifier, S256 challenge).
pub(crate) fn pkce() -> (String, String) {
    let verifier = format!(
        "verifier-{}-padding-to-be-long-enough",
        uuid::Uuid::new_v4()
    );
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub(crate) fn set(params: &mut Vec<(String, String)>, name: &str, value: &str) {
    params.retain(|(k, _)| k != name);
    params.push((name.to_owned(), value.to_owned()));
}

pub(crate) fn remove(params: &mut Vec<(String, String)>, name: &str) {
    params.retain(|(k, _)| k != name);
}

pub(crate) fn location(response: &reqwest::Response) -> Url {
    let value = response
        .headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap();
    Url::parse(value).unwrap()
}

pub(crate) fn query_map(url: &Url) -> HashMap<String, String> {
    url.query_pairs().into_owned().collect()
}

pub(crate) fn fragment_map(url: &Url) -> HashMap<String, String> {
    url::form_urlencoded::parse(url.fragment().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// The `name=value` pairs of every Set-Cookie, joined as a Cookie header.
pub(crate) fn cookie_header(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// One cookie's value from a Cookie header string.
pub(crate) fn cookie_value(cookies: &str, name: &str) -> Option<String> {
    cookies
        .split("; ")
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// A JWT's header and claims, unverified.
pub(crate) fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let header = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    let claims = URL_SAFE_NO_PAD.decode(parts.next().unwrap()).unwrap();
    (
        serde_json::from_slice(&header).unwrap(),
        serde_json::from_slice(&claims).unwrap(),
    )
}

/// Whether an RS256 JWT verifies with the JWKS key its `kid` names.
pub(crate) fn verifies(jwks: &Value, token: &str) -> bool {
    let (header, _) = decode(token);
    if header["alg"] != "RS256" {
        return false;
    }
    let Some(key) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    let public = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e)).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let Ok(signature) = URL_SAFE_NO_PAD.decode(signature) else {
        return false;
    };
    let Ok(signature) = Signature::try_from(signature.as_slice()) else {
        return false;
    };
    VerifyingKey::<Sha256>::new(public)
        .verify(signing_input.as_bytes(), &signature)
        .is_ok()
}

/// `at_hash` as the spec computes it.
pub(crate) fn at_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(access_token.as_bytes())[..16])
}

/// The error JSON of an OAuth error response.
pub(crate) async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].is_string() || body["error"] == "server_error");
    (status, body["error"].as_str().unwrap().to_owned())
}
