//! `GET|POST /oauth/authorize`: request validation, the sign-in page, and the
//! redirect back to the application.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use http::header::{CACHE_CONTROL, LOCATION, SET_COOKIE};
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use subtle::ConstantTimeEq as _;
use url::Url;

use crate::faults::Fault;
use crate::keys::{random_token, sha256_hex};
use crate::model::{ACR_VALUES_SUPPORTED, DEFAULT_ACR, SCOPE_OPENID, SUPPORTED_SCOPES};
use crate::pages::{self, AuthorizePage, Confirm, PageVariant};
use crate::routes::token::{IdTokenInput, build_id_token};
use crate::routes::{CookieKind, Listener, Params, cookie};
use crate::state::{
    AuthCode, CODE_TTL, PENDING_TTL, PendingAuthorization, Session, Shared, State as ProviderState,
};

/// The provider's session cookie (`HttpOnly`).
pub(crate) const SESSION_COOKIE: &str = "mock_op_session";
/// The Session Management browser state, readable by the `check_session_iframe`'s script.
pub(crate) const BROWSER_STATE_COOKIE: &str = "mock_op_browser_state";
/// Binds a rendered sign-in page to the browser that loaded it.
pub(crate) const CSRF_COOKIE: &str = "mock_op_csrf";

/// The `prompt` values of a request.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Prompt {
    pub(crate) none: bool,
    pub(crate) login: bool,
    pub(crate) consent: bool,
    pub(crate) create: bool,
}

impl Prompt {
    fn forces_page(self) -> bool {
        self.login || self.consent || self.create
    }
}

/// A validated authorization request.
#[derive(Clone, Debug)]
pub(crate) struct AuthorizeRequest {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// `response_type=code id_token` (hybrid) rather than `code`.
    pub(crate) hybrid: bool,
    /// `response_mode=fragment`.
    pub(crate) fragment: bool,
    pub(crate) scope: Vec<String>,
    pub(crate) state: Option<String>,
    pub(crate) nonce: Option<String>,
    pub(crate) prompt: Prompt,
    pub(crate) popup: bool,
    pub(crate) code_challenge: String,
    /// The `sub` of a valid `id_token_hint`.
    pub(crate) hint_sub: Option<String>,
    pub(crate) login_hint: Option<String>,
    /// The older API's `type=verify`.
    pub(crate) verify: bool,
    /// The requested authentication level: the first supported value of `acr_values`.
    pub(crate) acr: Option<u8>,
    /// `max_age`: the oldest sign-in, in seconds, the application accepts.
    pub(crate) max_age: Option<u64>,
}

impl AuthorizeRequest {
    /// The level a person who authenticates for this request reaches: the one asked
    /// for, else the default.
    fn level(&self) -> u8 {
        self.acr.unwrap_or(DEFAULT_ACR)
    }
}

/// Why a provider session cannot answer a request silently: the person must
/// authenticate again (OpenID Connect Core 3.1.2.1, RFC 9470).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reauthentication {
    /// `prompt=login`.
    Prompt,
    /// The request asks for a higher level than the session's.
    Level(u8),
    /// The session's sign-in is older than `max_age`.
    MaxAge,
}

impl Reauthentication {
    /// What the sign-in page tells the person.
    fn confirm(self) -> Confirm {
        match self {
            Self::Level(level) => Confirm::Level(level),
            Self::Prompt | Self::MaxAge => Confirm::Identity,
        }
    }

    /// The `error_description` of a `prompt=none` request refused for this reason.
    fn description(self) -> &'static str {
        match self {
            Self::Prompt => "The user must sign in again.",
            Self::Level(_) => {
                "The application asks for a higher authentication level (acr_values) than the \
                 user signed in at."
            }
            Self::MaxAge => "The user's last sign-in is older than max_age.",
        }
    }
}

/// Whether `session` may answer `request` now (the provider's clock) without the person
/// authenticating again, and if not, why. [`Fault::StaleAuthTime`] ignores `max_age`.
fn reauthentication(
    state: &ProviderState,
    request: &AuthorizeRequest,
    session: &Session,
) -> Option<Reauthentication> {
    if request.prompt.login {
        return Some(Reauthentication::Prompt);
    }
    if let Some(level) = request.acr
        && level > session.acr
    {
        return Some(Reauthentication::Level(level));
    }
    if let Some(max_age) = request.max_age
        && !state.has_fault(Fault::StaleAuthTime)
    {
        let age = state.now().saturating_sub(session.auth_time);
        if u64::try_from(age).is_ok_and(|age| age > max_age) {
            return Some(Reauthentication::MaxAge);
        }
    }
    None
}

/// Where and how error or success parameters go back to the application.
struct Target {
    redirect_uri: String,
    fragment: bool,
    state: Option<String>,
}

/// Why a request is refused.
enum Rejection {
    /// The redirect URI cannot be trusted: show a page, never redirect.
    Page(String),
    /// Redirect the error to the (validated) redirect URI.
    Redirect(Target, &'static str, String),
}

impl Rejection {
    fn into_response(self) -> Response {
        match self {
            Self::Page(message) => pages::error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in request is invalid",
                &message,
            ),
            Self::Redirect(target, error, description) => {
                error_redirect(&target, error, &description)
            }
        }
    }
}

/// A 302 to `uri` with `params` added to its query or put in its fragment.
pub(crate) fn redirect_with(uri: &str, fragment: bool, params: &[(&str, &str)]) -> Response {
    let Ok(mut url) = Url::parse(uri) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The registered redirect URI is not a valid URL.",
        );
    };
    if fragment {
        let encoded = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        url.set_fragment(Some(&encoded));
    } else if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let Ok(location) = HeaderValue::from_str(url.as_str()) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The redirect URI cannot be used in a Location header.",
        );
    };
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(LOCATION, location);
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn error_redirect(target: &Target, error: &str, description: &str) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(state) = &target.state {
        params.push(("state", state));
    }
    redirect_with(&target.redirect_uri, target.fragment, &params)
}

fn is_pkce_value(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether a `code_verifier` is well formed (RFC 7636 §4.1).
pub(crate) fn is_code_verifier(value: &str) -> bool {
    is_pkce_value(value, 43, 128)
}

/// Checks every parameter. Errors about `client_id` or `redirect_uri` become a
/// page; the rest are redirected to the validated redirect URI.
fn validate(
    state: &ProviderState,
    issuer: &str,
    params: &Params,
) -> Result<AuthorizeRequest, Rejection> {
    let Some(client_id) = params.get("client_id") else {
        return Err(Rejection::Page(
            "The client_id parameter is missing.".into(),
        ));
    };
    let Some(client) = state.clients.get(client_id) else {
        return Err(Rejection::Page(format!(
            "No application is registered with client_id \u{201c}{client_id}\u{201d}."
        )));
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return Err(Rejection::Page(
            "The redirect_uri parameter is missing.".into(),
        ));
    };
    if !client.redirect_uris.iter().any(|u| u == redirect_uri) {
        return Err(Rejection::Page(
            "The redirect_uri does not exactly match one registered for this application.".into(),
        ));
    }

    let response_type = params.get("response_type");
    let hybrid = matches!(response_type, Some("code id_token" | "id_token code"));
    let mode = params.get("response_mode");
    let mut target = Target {
        redirect_uri: redirect_uri.to_owned(),
        fragment: hybrid,
        state: params.get("state").map(str::to_owned),
    };
    let fail = |target: Target, error: &'static str, description: &str| {
        Err(Rejection::Redirect(target, error, description.to_owned()))
    };
    match mode {
        None => {}
        Some("query") if !hybrid => target.fragment = false,
        Some("query") => {
            return fail(
                target,
                "invalid_request",
                "response_mode=query cannot carry an ID token; use fragment.",
            );
        }
        Some("fragment") => target.fragment = true,
        Some(_) => {
            return fail(
                target,
                "invalid_request",
                "response_mode must be query or fragment.",
            );
        }
    }
    match response_type {
        None => return fail(target, "invalid_request", "response_type is required."),
        Some("code") => {}
        Some(_) if hybrid => {}
        Some(_) => {
            return fail(
                target,
                "unsupported_response_type",
                "response_type must be code (or code id_token).",
            );
        }
    }
    let Some(code_challenge) = params.get("code_challenge") else {
        return fail(
            target,
            "invalid_request",
            "code_challenge is required (PKCE).",
        );
    };
    if params.get("code_challenge_method") != Some("S256") {
        return fail(
            target,
            "invalid_request",
            "code_challenge_method must be S256.",
        );
    }
    if !is_pkce_value(code_challenge, 43, 43) {
        return fail(
            target,
            "invalid_request",
            "code_challenge must be a base64url SHA-256 (43 characters).",
        );
    }

    let mut scope: Vec<String> = Vec::new();
    for item in params
        .get("scope")
        .unwrap_or(SCOPE_OPENID)
        .split_whitespace()
    {
        if !SUPPORTED_SCOPES.contains(&item) {
            return fail(
                target,
                "invalid_scope",
                &format!("The scope {item} is not supported."),
            );
        }
        if !client.scopes.iter().any(|s| s == item) {
            return fail(
                target,
                "invalid_scope",
                &format!("The scope {item} is not allowed for this application."),
            );
        }
        if !scope.iter().any(|s| s == item) {
            scope.push(item.to_owned());
        }
    }
    if scope.is_empty() {
        scope.push(SCOPE_OPENID.to_owned());
    }
    let nonce = params.get("nonce").map(str::to_owned);
    if hybrid && (nonce.is_none() || !scope.iter().any(|s| s == SCOPE_OPENID)) {
        return fail(
            target,
            "invalid_request",
            "response_type=code id_token needs the openid scope and a nonce.",
        );
    }

    let mut prompt = Prompt::default();
    for value in params.get("prompt").unwrap_or_default().split_whitespace() {
        match value {
            "none" => prompt.none = true,
            "login" => prompt.login = true,
            "consent" => prompt.consent = true,
            "create" => prompt.create = true,
            _ => {
                return fail(
                    target,
                    "invalid_request",
                    "prompt must be none, login, consent or create.",
                );
            }
        }
    }
    if prompt.none && prompt.forces_page() {
        return fail(
            target,
            "invalid_request",
            "prompt=none cannot be combined with other values.",
        );
    }
    let popup = match params.get("display") {
        None | Some("page") => false,
        Some("popup") => true,
        Some(_) => {
            return fail(target, "invalid_request", "display must be page or popup.");
        }
    };
    let verify = match params.get("type") {
        None | Some("login") => false,
        Some("verify") => true,
        Some(_) => return fail(target, "invalid_request", "type must be login or verify."),
    };
    // Unsupported levels are ignored: acr_values is a voluntary claim request.
    let acr = params.get("acr_values").and_then(|values| {
        values
            .split_whitespace()
            .find(|value| ACR_VALUES_SUPPORTED.contains(value))
            .and_then(|value| value.parse::<u8>().ok())
    });
    let max_age = match params.get("max_age") {
        None => None,
        // Every digit: a non-negative integer; one too large for u64 is as good as unlimited.
        Some(value) if value.bytes().all(|b| b.is_ascii_digit()) => {
            Some(value.parse::<u64>().unwrap_or(u64::MAX))
        }
        Some(_) => {
            return fail(
                target,
                "invalid_request",
                "max_age must be a non-negative whole number of seconds.",
            );
        }
    };
    let hint_sub = match params.get("id_token_hint") {
        None => None,
        Some(hint) => {
            let claims = state
                .keys
                .verify(hint)
                .filter(|c| c.get("iss").and_then(|v| v.as_str()) == Some(issuer));
            let Some(sub) = claims
                .as_ref()
                .and_then(|c| c.get("sub"))
                .and_then(|v| v.as_str())
            else {
                return fail(
                    target,
                    "invalid_request",
                    "id_token_hint is not an ID token this provider issued.",
                );
            };
            Some(sub.to_owned())
        }
    };

    Ok(AuthorizeRequest {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.to_owned(),
        hybrid,
        fragment: target.fragment,
        scope,
        state: target.state,
        nonce,
        prompt,
        popup,
        code_challenge: code_challenge.to_owned(),
        hint_sub,
        login_hint: params.get("login_hint").map(str::to_owned),
        verify,
        acr,
        max_age,
    })
}

fn target_of(request: &AuthorizeRequest) -> Target {
    Target {
        redirect_uri: request.redirect_uri.clone(),
        fragment: request.fragment,
        state: request.state.clone(),
    }
}

fn set_cookie(response: &mut Response, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
}

/// The Session Management `session_state` for a client at an origin.
pub(crate) fn session_state(
    client_id: &str,
    origin: &str,
    browser_state: &str,
    salt: &str,
) -> String {
    let hash = sha256_hex(&format!("{client_id} {origin} {browser_state} {salt}"));
    format!("{hash}.{salt}")
}

/// Issues a code for the session's user and redirects back to the application,
/// (re)setting the provider's session cookies.
fn complete(
    state: &mut ProviderState,
    issuer: &str,
    listener: Listener,
    request: &AuthorizeRequest,
    session_id: &str,
) -> Response {
    let target = target_of(request);
    let Some(session) = state.sessions.get_mut(session_id) else {
        return error_redirect(&target, "server_error", "The session vanished.");
    };
    session.approved_clients.insert(request.client_id.clone());
    let (sub, auth_time, acr, browser_state) = (
        session.sub.clone(),
        session.auth_time,
        session.acr,
        session.browser_state.clone(),
    );
    let code = random_token();
    let now = state.now();
    state.codes.insert(
        code.clone(),
        AuthCode {
            client_id: request.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            sub: sub.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            code_challenge: request.code_challenge.clone(),
            auth_time,
            acr,
            expires_at: now + CODE_TTL,
            used: false,
            grant: None,
        },
    );
    let mut params: Vec<(&str, String)> = vec![("code", code.clone())];
    if request.hybrid {
        let input = IdTokenInput {
            client_id: &request.client_id,
            sub: &sub,
            nonce: request.nonce.as_deref(),
            auth_time,
            acr,
            access_token: None,
            code: Some(&code),
            refresh: false,
        };
        match build_id_token(state, issuer, &input) {
            Ok(id_token) => params.push(("id_token", id_token)),
            Err(_) => {
                return error_redirect(&target, "server_error", "Could not sign the ID token.");
            }
        }
    }
    if let Some(value) = &request.state {
        params.push(("state", value.clone()));
    }
    if request.scope.iter().any(|s| s == SCOPE_OPENID) {
        let origin = Url::parse(&request.redirect_uri)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| "null".to_owned());
        let salt = &random_token()[..16];
        params.push((
            "session_state",
            session_state(&request.client_id, &origin, &browser_state, salt),
        ));
    }
    let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut response = redirect_with(&request.redirect_uri, request.fragment, &borrowed);
    set_cookie(
        &mut response,
        &listener.cookie(SESSION_COOKIE, Some(session_id), "/", CookieKind::Private),
    );
    set_cookie(
        &mut response,
        &listener.cookie(
            BROWSER_STATE_COOKIE,
            Some(&browser_state),
            "/",
            CookieKind::FramedScript,
        ),
    );
    tracing::debug!(client_id = %request.client_id, %sub, "authorization code issued");
    response
}

/// The live session named by the request's cookie, if any.
fn session_of(state: &ProviderState, headers: &HeaderMap) -> Option<String> {
    cookie(headers, SESSION_COOKIE).filter(|id| state.sessions.contains_key(id))
}

/// The session of a person who has just signed in as `sub` for `request`: the request's own
/// if it is that person's (re-authenticated, dated now at the request's level, when the
/// request needs it), else a new one.
fn session_for(
    state: &mut ProviderState,
    current: Option<String>,
    sub: &str,
    request: &AuthorizeRequest,
) -> String {
    let level = request.level();
    let Some(id) = current else {
        return state.new_session(sub, level);
    };
    match state.sessions.get(&id) {
        Some(session) if session.sub == sub => {
            if reauthentication(state, request, session).is_some() {
                state.reauthenticate(&id, level);
            }
            id
        }
        _ => state.new_session(sub, level),
    }
}

/// `GET /oauth/authorize`
pub(crate) async fn get_authorize(
    State(shared): State<Arc<Shared>>,
    Extension(listener): Extension<Listener>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let params = match Params::parse(uri.query().unwrap_or_default().as_bytes()) {
        Ok(params) => params,
        Err(name) => {
            return Rejection::Page(format!("The parameter {name} was sent more than once."))
                .into_response();
        }
    };
    let mut state = shared.lock();
    state.prune();
    let request = match validate(&state, &shared.issuer, &params) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let target = target_of(&request);
    let current = session_of(&state, &headers);

    if request.prompt.none {
        let Some(session_id) = current else {
            return error_redirect(&target, "login_required", "The user is not signed in.");
        };
        let Some(session) = state.sessions.get(&session_id) else {
            return error_redirect(&target, "login_required", "The user is not signed in.");
        };
        if request.hint_sub.as_ref().is_some_and(|s| *s != session.sub) {
            return error_redirect(
                &target,
                "login_required",
                "The signed-in user is not the one id_token_hint names.",
            );
        }
        if let Some(reason) = reauthentication(&state, &request, session) {
            return error_redirect(&target, "login_required", reason.description());
        }
        if !session.approved_clients.contains(&request.client_id) {
            return error_redirect(
                &target,
                "consent_required",
                "The user has not approved this application yet.",
            );
        }
        return complete(&mut state, &shared.issuer, listener, &request, &session_id);
    }

    if let Some(sub) = state.auto_approve.clone() {
        if state.clinician(&sub).is_none() {
            return error_redirect(
                &target,
                "server_error",
                "The auto-approve subject is not a demo clinician.",
            );
        }
        let session_id = session_for(&mut state, current, &sub, &request);
        return complete(&mut state, &shared.issuer, listener, &request, &session_id);
    }

    let session = current.as_ref().and_then(|id| state.sessions.get(id));
    let reauth = session.and_then(|s| reauthentication(&state, &request, s));
    let approved = session.is_some_and(|s| s.approved_clients.contains(&request.client_id));
    if let Some(session_id) = &current
        && approved
        && reauth.is_none()
        && !request.prompt.forces_page()
    {
        return complete(&mut state, &shared.issuer, listener, &request, session_id);
    }

    let selected = request
        .hint_sub
        .clone()
        .or_else(|| {
            let hint = request.login_hint.as_deref()?;
            state
                .clinicians
                .iter()
                .find(|c| c.email.eq_ignore_ascii_case(hint) || c.sub == hint)
                .map(|c| c.sub.clone())
        })
        .or_else(|| {
            current
                .as_ref()
                .and_then(|id| state.sessions.get(id))
                .map(|s| s.sub.clone())
        });
    let csrf_token = random_token();
    let binding = random_token();
    let variant = if request.prompt.create {
        PageVariant::Create
    } else if request.verify {
        PageVariant::Verify
    } else {
        PageVariant::Login
    };
    let mut response = pages::authorize_page(&AuthorizePage {
        client_id: &request.client_id,
        scopes: &request.scope,
        clinicians: &state.clinicians,
        selected: selected.as_deref(),
        csrf_token: &csrf_token,
        variant,
        popup: request.popup,
        confirm: reauth.map(Reauthentication::confirm),
    });
    set_cookie(
        &mut response,
        &listener.cookie(
            CSRF_COOKIE,
            Some(&binding),
            "/oauth/authorize",
            CookieKind::Private,
        ),
    );
    let expires_at = state.now() + PENDING_TTL;
    state.pending.insert(
        csrf_token,
        PendingAuthorization {
            request,
            browser_binding: binding,
            expires_at,
        },
    );
    response
}

/// `POST /oauth/authorize`: the sign-in page's Approve or Deny.
pub(crate) async fn post_authorize(
    State(shared): State<Arc<Shared>>,
    Extension(listener): Extension<Listener>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bad = |message: &str| {
        pages::error_page(
            StatusCode::BAD_REQUEST,
            "This sign-in request is invalid",
            message,
        )
    };
    let Ok(params) = Params::parse(&body) else {
        return bad("A form field was sent more than once.");
    };
    let Some(csrf_token) = params.get("csrf_token") else {
        return bad("The form's CSRF token is missing.");
    };
    let mut state = shared.lock();
    state.prune();
    let Some(pending) = state.pending.remove(csrf_token) else {
        return bad(
            "This sign-in page has expired or was already used. Start again from the application.",
        );
    };
    let bound = cookie(&headers, CSRF_COOKIE).is_some_and(|value| {
        bool::from(value.as_bytes().ct_eq(pending.browser_binding.as_bytes()))
    });
    if !bound {
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "This sign-in request is invalid",
            "The form was not submitted by the browser that loaded it (CSRF check failed).",
        );
    }
    let request = pending.request;
    let target = target_of(&request);
    match params.get("action") {
        Some("deny") => error_redirect(&target, "access_denied", "The user denied your request."),
        Some("approve") => {
            let Some(sub) = params
                .get("sub")
                .filter(|sub| state.clinician(sub).is_some())
                .map(str::to_owned)
            else {
                return bad("Pick one of the demo clinicians.");
            };
            let current = session_of(&state, &headers);
            let session_id = session_for(&mut state, current, &sub, &request);
            complete(&mut state, &shared.issuer, listener, &request, &session_id)
        }
        _ => bad("The form must be submitted with Approve or Deny."),
    }
}
