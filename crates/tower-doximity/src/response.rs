//! Refusals: which kind of client asked ([`ClientKind`], a pure decision), and the replaceable
//! strategy ([`Refuse`]) that turns an [`AuthError`] into the answer that client understands.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::Full;

use crate::error::AuthError;

/// What kind of client sent a request, which decides the shape of a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientKind {
    /// `content-type: application/grpc*`: HTTP 200 with `grpc-status`.
    Grpc,
    /// An API client: an `Authorization` header, an `Accept` that prefers JSON over HTML, or a
    /// `Sec-Fetch-Mode` other than `navigate`. Gets 401/403 with `WWW-Authenticate` and JSON.
    Api,
    /// A browser navigation: redirected to sign in (GET and HEAD), or a small HTML page.
    Browser,
}

impl ClientKind {
    /// The kind's name in audit events and metrics: `grpc`, `api` or `browser`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Api => "api",
            Self::Browser => "browser",
        }
    }

    /// Classifies a request from its headers (pure).
    ///
    /// ```
    /// use http::HeaderMap;
    /// use tower_doximity::ClientKind;
    /// let mut h = HeaderMap::new();
    /// assert_eq!(ClientKind::of(&h), ClientKind::Browser);
    /// h.insert("accept", "application/json".parse().unwrap());
    /// assert_eq!(ClientKind::of(&h), ClientKind::Api);
    /// h.insert("content-type", "application/grpc+proto".parse().unwrap());
    /// assert_eq!(ClientKind::of(&h), ClientKind::Grpc);
    /// ```
    pub fn of(headers: &HeaderMap) -> Self {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
        };
        if get(header::CONTENT_TYPE).is_some_and(|ct| {
            ct.trim()
                .to_ascii_lowercase()
                .starts_with("application/grpc")
        }) {
            return Self::Grpc;
        }
        if headers.contains_key(header::AUTHORIZATION) {
            return Self::Api;
        }
        if get(header::HeaderName::from_static("sec-fetch-mode"))
            .is_some_and(|m| !m.trim().eq_ignore_ascii_case("navigate"))
        {
            return Self::Api;
        }
        if headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(prefers_json)
        {
            return Self::Api;
        }
        Self::Browser
    }
}

/// Whether an `Accept` value ranks JSON above HTML (q-values honoured, `*/*` counts for both).
fn prefers_json(accept: &str) -> bool {
    let (mut json, mut html) = (0.0_f32, 0.0_f32);
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let (is_json, is_html) = match media.as_str() {
            "application/json" | "application/problem+json" => (true, false),
            m if m.ends_with("+json") => (true, false),
            "text/html" | "application/xhtml+xml" => (false, true),
            "*/*" => (true, true),
            "application/*" => (true, false),
            "text/*" => (false, true),
            _ => (false, false),
        };
        if is_json {
            json = json.max(q);
        }
        if is_html {
            html = html.max(q);
        }
    }
    json > html
}

/// One refusal, as the [`Refuse`] strategy sees it.
#[derive(Debug)]
pub struct Refusal<'a> {
    pub(crate) error: &'a AuthError,
    pub(crate) kind: ClientKind,
    pub(crate) method: &'a Method,
    pub(crate) login_location: Option<String>,
    pub(crate) accepts_html: bool,
}

impl<'a> Refusal<'a> {
    /// Builds a refusal (for custom strategies' tests, and for extractors).
    pub fn new(
        error: &'a AuthError,
        kind: ClientKind,
        method: &'a Method,
        login_location: Option<String>,
    ) -> Self {
        Self {
            error,
            kind,
            method,
            login_location,
            accepts_html: false,
        }
    }

    /// Whether the request's `Accept` names `text/html` (a page a person is looking at, as
    /// opposed to a script or a client that sends no `Accept`).
    #[must_use]
    pub fn with_accepts_html(mut self, accepts_html: bool) -> Self {
        self.accepts_html = accepts_html;
        self
    }

    /// Whether the request's `Accept` names `text/html`.
    pub fn accepts_html(&self) -> bool {
        self.accepts_html
    }

    /// Why.
    pub fn error(&self) -> &AuthError {
        self.error
    }

    /// Who asked.
    pub fn kind(&self) -> ClientKind {
        self.kind
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        self.method
    }

    /// Where a browser would be sent to sign in (with `return_to`, and `scope` for a step-up),
    /// when redirecting makes sense for this request (a browser's GET or HEAD).
    pub fn login_location(&self) -> Option<&str> {
        self.login_location.as_deref()
    }
}

/// The refusal strategy: turns a [`Refusal`] into a response. Any
/// `Fn(&Refusal<'_>) -> Response<Full<Bytes>>` is one; [`DefaultRefuse`] is the default.
/// The layer adds the [`AuthError`] to the response extensions afterwards, and
/// `Cache-Control: no-store`.
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::Full;
/// use tower_doximity::{Refusal, Refuse, default_response};
///
/// // Plain text for everyone except gRPC clients.
/// let refuse = |r: &Refusal<'_>| {
///     if r.kind() == tower_doximity::ClientKind::Grpc {
///         return default_response(r);
///     }
///     http::Response::builder()
///         .status(r.error().status())
///         .body(Full::new(Bytes::from("no")))
///         .unwrap()
/// };
/// # fn takes(_: impl Refuse) {}
/// takes(refuse);
/// ```
pub trait Refuse: Send + Sync + 'static {
    /// The response for this refusal.
    fn refuse(&self, refusal: &Refusal<'_>) -> Response<Full<Bytes>>;
}

impl<F> Refuse for F
where
    F: Fn(&Refusal<'_>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    fn refuse(&self, refusal: &Refusal<'_>) -> Response<Full<Bytes>> {
        self(refusal)
    }
}

/// The default strategy: [`default_response`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRefuse;

impl Refuse for DefaultRefuse {
    fn refuse(&self, refusal: &Refusal<'_>) -> Response<Full<Bytes>> {
        default_response(refusal)
    }
}

/// The default answers:
///
/// - gRPC: HTTP 200, `content-type: application/grpc`, `grpc-status` 16 (unauthenticated), 7
///   (missing scope) or 14 (provider or store unavailable), and `grpc-message`;
/// - a browser's GET or HEAD that can sign in: 303 to the login route (a step-up for a
///   missing scope, or for a sign-in that is not strong or recent enough);
/// - an API client, or a browser's other methods: the error's status, for 401 and 403
///   `WWW-Authenticate: Bearer` (with `error="insufficient_scope", scope="…"` for a missing
///   scope; `error="insufficient_user_authentication"` with `acr_values="…"` and/or
///   `max_age="…"` for RFC 9470's step-up), and a JSON body
///   `{"error": …, "error_description": …}`;
/// - a browser on a failed sign-in, when it accepts `text/html`: a small HTML page with the
///   status and a link to sign in again (a client that asks for no HTML gets the JSON).
pub fn default_response(refusal: &Refusal<'_>) -> Response<Full<Bytes>> {
    let error = refusal.error;
    let message = error.to_string();
    let mut builder = Response::builder();
    match refusal.kind {
        ClientKind::Grpc => {
            if let Some(secs) = error.retry_after() {
                builder = builder.header(header::RETRY_AFTER, secs);
            }
            return builder
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "application/grpc")
                .header("grpc-status", error.grpc_status().to_string())
                .header("grpc-message", percent_grpc(&message))
                .body(Full::default())
                .unwrap_or_default();
        }
        ClientKind::Browser => {
            if let Some(location) = &refusal.login_location
                && let Ok(value) = HeaderValue::from_str(location)
            {
                return builder
                    .status(StatusCode::SEE_OTHER)
                    .header(header::LOCATION, value)
                    .body(Full::default())
                    .unwrap_or_default();
            }
            if refusal.accepts_html
                && !matches!(
                    error,
                    AuthError::Unauthenticated
                        | AuthError::InsufficientScope { .. }
                        | AuthError::InsufficientAuthentication { .. }
                )
            {
                let link = refusal.login_location.as_deref().unwrap_or("/");
                let html = format!(
                    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in problem</title></head>\
                     <body><h1>{status}</h1><p>{msg}</p><p><a href=\"{link}\">Back</a></p></body></html>",
                    status = error.status(),
                    msg = escape_html(&message),
                    link = escape_html(link),
                );
                return builder
                    .status(error.status())
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
                    .body(Full::new(Bytes::from(html)))
                    .unwrap_or_default();
            }
        }
        ClientKind::Api => {}
    }
    match error {
        AuthError::Unauthenticated => {
            builder = builder.header(header::WWW_AUTHENTICATE, "Bearer");
        }
        AuthError::InsufficientScope { required, .. } => {
            let value = format!(
                "Bearer error=\"insufficient_scope\", scope=\"{}\"",
                required.to_string().replace(['"', '\\'], "")
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                builder = builder.header(header::WWW_AUTHENTICATE, v);
            }
        }
        AuthError::InsufficientAuthentication {
            acr_values,
            max_age,
        } => {
            if let Ok(v) = HeaderValue::from_str(&insufficient_user_authentication(
                acr_values.as_deref(),
                *max_age,
            )) {
                builder = builder.header(header::WWW_AUTHENTICATE, v);
            }
        }
        AuthError::Bearer(e) if e.status() == StatusCode::BAD_REQUEST => {
            builder = builder.header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_request\"");
        }
        AuthError::Bearer(e) if e.status() == StatusCode::UNAUTHORIZED => {
            builder = builder.header(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"");
        }
        _ => {}
    }
    if let Some(secs) = error.retry_after() {
        builder = builder.header(header::RETRY_AFTER, secs);
    }
    let mut body = serde_json::json!({ "error": error.code(), "error_description": message });
    if let (Some(obj), Some(login)) = (body.as_object_mut(), &refusal.login_location) {
        obj.insert("login_url".into(), login.clone().into());
    }
    builder
        .status(error.status())
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

/// RFC 9470's challenge: `Bearer error="insufficient_user_authentication",
/// error_description="…"`, then `acr_values="…"` and/or `max_age="…"` (quoted, as in the
/// RFC's examples).
fn insufficient_user_authentication(acr_values: Option<&str>, max_age: Option<u64>) -> String {
    let mut value =
        String::from("Bearer error=\"insufficient_user_authentication\", error_description=\"");
    value.push_str(match (acr_values, max_age) {
        (Some(_), None) => "A different authentication level is required",
        (None, Some(_)) => "More recent authentication is required",
        _ => "A different or more recent authentication is required",
    });
    value.push('"');
    if let Some(acr) = acr_values {
        value.push_str(", acr_values=\"");
        value.push_str(&acr.replace(['"', '\\'], ""));
        value.push('"');
    }
    if let Some(age) = max_age {
        value.push_str(&format!(", max_age=\"{age}\""));
    }
    value
}

/// gRPC's `grpc-message` is percent-encoded (gRPC over HTTP/2 spec).
fn percent_grpc(message: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');
    percent_encoding::utf8_percent_encode(message, SET).to_string()
}

/// Escapes text for HTML content and attribute values.
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pairs: &[(&'static str, &'static str)]) -> ClientKind {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        ClientKind::of(&h)
    }

    #[test]
    fn classification_table() {
        use ClientKind::{Api, Browser, Grpc};
        let table: &[(&[(&str, &str)], ClientKind)] = &[
            (&[], Browser),
            (&[("content-type", "application/grpc")], Grpc),
            (&[("content-type", "application/grpc+proto")], Grpc),
            (&[("content-type", "Application/GRPC-web")], Grpc),
            (
                &[
                    ("content-type", "application/grpc"),
                    ("accept", "text/html"),
                ],
                Grpc,
            ),
            (&[("authorization", "Bearer x")], Api),
            (&[("accept", "application/json")], Api),
            (&[("accept", "application/vnd.api+json")], Api),
            (
                &[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
                Browser,
            ),
            (&[("accept", "application/json;q=0.9, text/html")], Browser),
            (&[("accept", "text/html;q=0.5, application/json")], Api),
            (&[("accept", "*/*")], Browser),
            (&[("sec-fetch-mode", "navigate")], Browser),
            (&[("sec-fetch-mode", "cors")], Api),
            (&[("sec-fetch-mode", "no-cors")], Api),
            (
                &[("sec-fetch-mode", "navigate"), ("accept", "text/html")],
                Browser,
            ),
        ];
        for (headers, expected) in table {
            assert_eq!(kind(headers), *expected, "{headers:?}");
        }
    }

    #[test]
    fn default_answers() {
        let get = Method::GET;
        let e = AuthError::Unauthenticated;
        let r = default_response(&Refusal::new(&e, ClientKind::Grpc, &get, None));
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["grpc-status"], "16");
        assert_eq!(r.headers()["content-type"], "application/grpc");

        let r = default_response(&Refusal::new(
            &e,
            ClientKind::Browser,
            &get,
            Some("/auth/doximity/login?return_to=%2Fme".into()),
        ));
        assert_eq!(r.status(), 303);
        assert_eq!(
            r.headers()["location"],
            "/auth/doximity/login?return_to=%2Fme"
        );

        let post = Method::POST;
        let r = default_response(&Refusal::new(&e, ClientKind::Browser, &post, None));
        assert_eq!(r.status(), 401);
        assert_eq!(r.headers()["www-authenticate"], "Bearer");

        let e = AuthError::InsufficientScope {
            missing: "profile:read:basic".into(),
            required: "openid profile:read:basic".parse().unwrap(),
        };
        let r = default_response(&Refusal::new(&e, ClientKind::Api, &get, None));
        assert_eq!(r.status(), 403);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Bearer error=\"insufficient_scope\", scope=\"openid profile:read:basic\""
        );

        // RFC 9470: 401 with what to ask for, for each combination.
        for (acr, age, want) in [
            (
                Some("2"),
                None,
                "Bearer error=\"insufficient_user_authentication\", error_description=\"A different authentication level is required\", acr_values=\"2\"",
            ),
            (
                None,
                Some(300),
                "Bearer error=\"insufficient_user_authentication\", error_description=\"More recent authentication is required\", max_age=\"300\"",
            ),
            (
                Some("3"),
                Some(60),
                "Bearer error=\"insufficient_user_authentication\", error_description=\"A different or more recent authentication is required\", acr_values=\"3\", max_age=\"60\"",
            ),
        ] {
            let e = AuthError::InsufficientAuthentication {
                acr_values: acr.map(str::to_owned),
                max_age: age,
            };
            let r = default_response(&Refusal::new(&e, ClientKind::Api, &get, None));
            assert_eq!(r.status(), 401);
            assert_eq!(r.headers()["www-authenticate"], want);
            let r = default_response(&Refusal::new(&e, ClientKind::Grpc, &get, None));
            assert_eq!(r.headers()["grpc-status"], "16");
            let message = r.headers()["grpc-message"].to_str().unwrap().to_owned();
            if let Some(acr) = acr {
                assert!(
                    message.contains(&format!("acr_values=\"{acr}\"")),
                    "{message}"
                );
            }
            if let Some(age) = age {
                assert!(message.contains(&format!("max_age={age}")), "{message}");
            }
        }
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>\"'&"),
            "&lt;script&gt;&quot;&#39;&amp;"
        );
    }
}
