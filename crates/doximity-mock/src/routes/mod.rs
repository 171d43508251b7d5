//! The HTTP surface: the router and the helpers every endpoint shares.

pub(crate) mod api;
pub(crate) mod authorize;
pub(crate) mod device;
pub(crate) mod discovery;
pub(crate) mod logout;
pub(crate) mod photo;
pub(crate) mod session;
pub(crate) mod token;
pub(crate) mod userinfo;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, COOKIE, PRAGMA, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;

use crate::faults::Endpoint;
use crate::state::{RateStatus, Shared, State as ProviderState};

/// Which of the provider's listeners a request came in on: it decides the attributes of the
/// cookies the provider sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    /// The HTTPS listener (the issuer): every endpoint, cookies `Secure`.
    Https,
    /// The plain-HTTP loopback listener of
    /// [`browser_over_http`](crate::MockProviderBuilder::browser_over_http): only the pages a
    /// browser opens. A cookie set over plain HTTP cannot be `Secure`, and `SameSite=None`
    /// needs `Secure`, so cookies here are `SameSite=Lax` without `Secure`.
    PlainHttp,
}

/// How a provider cookie may travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CookieKind {
    /// Sent only by the browser to the provider and never read by scripts (`HttpOnly`,
    /// `SameSite=Lax`).
    Private,
    /// Read by the `check_session_iframe`'s script inside a relying party's page: not
    /// `HttpOnly`, and `SameSite=None` where it can be (`Secure`).
    FramedScript,
}

impl Listener {
    /// A `Set-Cookie` value for this listener. `value` `None` deletes the cookie.
    pub(crate) fn cookie(
        self,
        name: &str,
        value: Option<&str>,
        path: &str,
        kind: CookieKind,
    ) -> String {
        let mut out = match value {
            Some(value) => format!("{name}={value}; Path={path}"),
            None => format!("{name}=; Path={path}; Max-Age=0"),
        };
        if self == Self::Https {
            out.push_str("; Secure");
        }
        match (kind, self) {
            (CookieKind::Private, _) => out.push_str("; HttpOnly; SameSite=Lax"),
            (CookieKind::FramedScript, Self::Https) => out.push_str("; SameSite=None"),
            (CookieKind::FramedScript, Self::PlainHttp) => out.push_str("; SameSite=Lax"),
        }
        out
    }
}

/// Builds the provider's router: every endpoint, for the HTTPS listener.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(discovery::openid_configuration),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::authorization_server),
        )
        .route("/.well-known/jwks.json", get(discovery::jwks))
        .route(
            "/oauth/authorize",
            get(authorize::get_authorize).post(authorize::post_authorize),
        )
        .route("/oauth/token", axum::routing::post(token::token))
        .route("/oauth/revoke", axum::routing::post(token::revoke))
        .route(
            "/oauth/device_authorization",
            axum::routing::post(device::device_authorization),
        )
        .route(
            device::VERIFICATION_PATH,
            get(device::get_verification).post(device::post_verification),
        )
        .route(
            "/oauth/userinfo",
            get(userinfo::userinfo).post(userinfo::userinfo),
        )
        .route("/oauth/logout", get(logout::logout).post(logout::logout))
        .route("/oauth/session_state", get(session::check_session_iframe))
        .route("/oauth/session_state/alive", get(session::alive))
        .route("/api/v1/rate_limit", get(api::rate_limit))
        .route("/api/v1/users/current", get(api::users_current))
        .route("/share", get(api::share))
        .route("/photos/{file}", get(photo::photo))
        .layer(Extension(Listener::Https))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            count_and_harden,
        ))
        .with_state(shared)
}

/// The router of the plain-HTTP loopback listener: only what a browser opens (the
/// authorization and sign-out pages, the `check_session_iframe`, the share page and the
/// clinicians' photos). The back channel (discovery, JWKS, token, userinfo, revocation, the
/// `/api/v1` calls) is not served here: it stays on HTTPS.
pub(crate) fn browser_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/oauth/authorize",
            get(authorize::get_authorize).post(authorize::post_authorize),
        )
        .route("/oauth/logout", get(logout::logout).post(logout::logout))
        .route("/oauth/session_state", get(session::check_session_iframe))
        .route("/oauth/session_state/alive", get(session::alive))
        .route("/share", get(api::share))
        .route("/photos/{file}", get(photo::photo))
        .layer(Extension(Listener::PlainHttp))
        .layer(middleware::from_fn_with_state(
            shared.clone(),
            count_and_harden,
        ))
        .with_state(shared)
}

/// Counts every request per endpoint (whatever its result) and adds `nosniff`.
async fn count_and_harden(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    if let Some(endpoint) = Endpoint::from_path(&path) {
        *shared.lock().counters.entry(endpoint).or_default() += 1;
    }
    tracing::debug!(method = %request.method(), %path, "request");
    let mut response = next.run(request).await;
    response.headers_mut().insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    let skew = shared.lock().faults.iter().find_map(|f| match f {
        crate::faults::Fault::SkewedDate(seconds) => Some(*seconds),
        _ => None,
    });
    if let Some(seconds) = skew {
        let now = std::time::SystemTime::now();
        let offset = std::time::Duration::from_secs(seconds.unsigned_abs());
        let skewed = if seconds >= 0 {
            now.checked_add(offset)
        } else {
            now.checked_sub(offset)
        };
        if let Some(value) = skewed
            .map(httpdate::fmt_http_date)
            .and_then(|d| HeaderValue::from_str(&d).ok())
        {
            response.headers_mut().insert(http::header::DATE, value);
        }
    }
    response
}

/// Request parameters from a query string or a form body.
///
/// A parameter sent twice is an error (RFC 6749 §3.1); one sent empty counts as absent.
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text; `Err` names a repeated parameter.
    pub(crate) fn parse(input: &[u8]) -> Result<Self, String> {
        let mut map = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(input) {
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(name.into_owned());
            }
        }
        Ok(Self(map))
    }

    /// The parameter's value, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// An OAuth error: `{"error":..., "error_description":...}`, never cached.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    );
    no_store(&mut response);
    if status == StatusCode::UNAUTHORIZED && error == "invalid_client" {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"doximity-mock\""),
        );
    }
    response
}

/// The response an injected `*Status(code)` fault produces.
pub(crate) fn fault_status_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &json!({ "error": "server_error" }))
}

/// Marks a response `Cache-Control: no-store` and `Pragma: no-cache`.
pub(crate) fn no_store(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// Adds the `X-Rate-Limit-*` headers.
pub(crate) fn add_rate_headers(response: &mut Response, rate: &RateStatus) {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("x-rate-limit-limit"),
        HeaderValue::from(rate.limit),
    );
    headers.insert(
        HeaderName::from_static("x-rate-limit-remaining"),
        HeaderValue::from(rate.remaining),
    );
    headers.insert(
        HeaderName::from_static("x-rate-limit-reset"),
        HeaderValue::from(rate.reset),
    );
}

/// The 429 answer Doximity documents, with its rate-limit headers.
pub(crate) fn rate_limited(rate: &RateStatus) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &json!({
            "message": "API rate limit exceeded. Please check the documentation for details.",
            "documentation_url": "https://www.doximity.com/developers/documentation#rate_limiting",
        }),
    );
    add_rate_headers(&mut response, rate);
    response
}

/// Spends one request of `bucket`'s budget; `Err` is the ready 429 answer.
#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP answer, built once per request"
)]
pub(crate) fn spend(state: &mut ProviderState, bucket: &str) -> Result<RateStatus, Response> {
    let rate = state.rate(bucket, true);
    if rate.exceeded {
        Err(rate_limited(&rate))
    } else {
        Ok(rate)
    }
}

/// A 401 for a missing or bad bearer token.
pub(crate) fn invalid_token(description: &str) -> Response {
    let mut response = oauth_error(StatusCode::UNAUTHORIZED, "invalid_token", description);
    let challenge = format!(
        "Bearer realm=\"doximity-mock\", error=\"invalid_token\", error_description=\"{description}\""
    );
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// The value of a cookie sent with the request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// Credentials from an HTTP Basic header: (client id, secret), each URL-decoded
/// as Doximity's documentation (and RFC 6749 §2.3.1) requires. `Err` when malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(AUTHORIZATION)?;
    let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Some(Err(()));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let encoded = encoded.trim();
    let decoded = STANDARD
        .decode(encoded)
        .or_else(|_| STANDARD_NO_PAD.decode(encoded))
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let Some((id, secret)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Some(Err(()));
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(std::borrow::Cow::into_owned)
    };
    match (decode(id), decode(secret)) {
        (Ok(id), Ok(secret)) => Some(Ok((id, secret))),
        _ => Some(Err(())),
    }
}

/// The client a token-endpoint request claims to be (for its rate-limit bucket):
/// a registered client id, or `""` for everything else.
pub(crate) fn claimed_client(
    state: &ProviderState,
    headers: &HeaderMap,
    params: &Params,
) -> String {
    let claimed = match basic_credentials(headers) {
        Some(Ok((id, _))) => Some(id),
        _ => params.get("client_id").map(str::to_owned),
    };
    claimed
        .filter(|id| state.clients.contains_key(id))
        .unwrap_or_default()
}

/// Authenticates the client of a token or revocation request; returns its id.
///
/// Only `client_secret_basic` is accepted, unless the builder enabled
/// `legacy_client_secret_post`.
#[allow(
    clippy::result_large_err,
    reason = "the error is the ready HTTP answer, built once per request"
)]
pub(crate) fn authenticate_client(
    state: &ProviderState,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, Response> {
    let unauthorized = |d: &str| oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", d);
    let (id, secret) = match (basic_credentials(headers), params.get("client_secret")) {
        (Some(_), Some(_)) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Use exactly one client authentication method.",
            ));
        }
        (Some(Err(())), None) => {
            return Err(unauthorized("The Basic authorization header is malformed."));
        }
        (Some(Ok((id, secret))), None) => {
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(unauthorized(
                    "The client_id parameter does not match the authenticated client.",
                ));
            }
            (id, secret)
        }
        (None, Some(secret)) => {
            if !state.legacy_client_secret_post {
                return Err(unauthorized(
                    "Client authentication must use HTTP Basic (client_secret_basic).",
                ));
            }
            let Some(id) = params.get("client_id") else {
                return Err(unauthorized("client_id is required."));
            };
            (id.to_owned(), secret.to_owned())
        }
        (None, None) => {
            return Err(unauthorized(
                "Client authentication is required (HTTP Basic).",
            ));
        }
    };
    let authenticated = state
        .clients
        .get(&id)
        .is_some_and(|client| bool::from(client.client_secret.as_bytes().ct_eq(secret.as_bytes())));
    if authenticated {
        Ok(id)
    } else {
        Err(unauthorized("Client authentication failed."))
    }
}
