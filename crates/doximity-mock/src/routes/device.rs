//! The device authorization grant (RFC 8628): `POST /oauth/device_authorization`, the
//! `device_code` grant at the token endpoint, and the verification page at `/device` where a
//! person types the user code, picks a demo clinician and approves or denies.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, StatusCode, Uri};
use rand::Rng as _;
use serde_json::json;
use subtle::ConstantTimeEq as _;

use crate::MockProvider;
use crate::faults::Fault;
use crate::keys::random_token;
use crate::model::{Clinician, DEFAULT_ACR, SCOPE_OPENID, SUPPORTED_SCOPES};
use crate::pages;
use crate::routes::token::{rate_limited_form, token_response};
use crate::routes::{Params, authenticate_client, cookie, json_response, no_store, oauth_error};
use crate::state::{Grant, Shared, State as ProviderState};

/// The `grant_type` of a device access token request.
pub(crate) const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The path of the verification page (`verification_uri`).
pub(crate) const VERIFICATION_PATH: &str = "/device";
/// How long device and user codes live, in seconds.
pub(crate) const DEVICE_CODE_TTL: i64 = 600;
/// The polling interval the provider asks for by default, in seconds.
const DEFAULT_INTERVAL: i64 = 5;
/// Binds a rendered verification form to the browser that loaded it (double submit).
const CSRF_COOKIE: &str = "mock_op_device_csrf";
/// The verification page's lead when no user code is known yet.
const ASK_FOR_CODE: &str = "<p>Type the code your device shows, then choose who you are.</p>";
/// The user-code alphabet RFC 8628 §6.1 suggests: no vowels, no look-alikes.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

/// Where a device authorization stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    Pending,
    Approved {
        sub: String,
        auth_time: i64,
    },
    Denied,
    /// Approved, and the tokens were issued: the device code is spent.
    Redeemed,
}

/// One device authorization.
struct DeviceGrant {
    client_id: String,
    scope: Vec<String>,
    /// Normalised: upper case, letters only.
    user_code: String,
    created_at: i64,
    expires_at: i64,
    /// The interval the client must keep; grows by 5 s at each `slow_down`.
    interval: i64,
    last_poll: Option<i64>,
    status: Status,
}

/// The device authorizations and their settings, part of the provider's state.
pub(crate) struct Devices {
    /// Keyed by device code.
    grants: HashMap<String, DeviceGrant>,
    interval: i64,
    /// Approve every pending authorization as this clinician once it is this many seconds old.
    auto_approve: Option<(String, i64)>,
}

impl Default for Devices {
    fn default() -> Self {
        Self {
            grants: HashMap::new(),
            interval: DEFAULT_INTERVAL,
            auto_approve: None,
        }
    }
}

impl Devices {
    fn prune(&mut self, now: i64) {
        self.grants
            .retain(|_, g| now < g.expires_at + DEVICE_CODE_TTL);
    }

    /// The live, pending authorization with this user code.
    fn pending_by_user_code(&mut self, user_code: &str, now: i64) -> Option<&mut DeviceGrant> {
        let wanted = normalise(user_code);
        if wanted.is_empty() {
            return None;
        }
        self.grants.values_mut().find(|g| {
            g.status == Status::Pending
                && now < g.expires_at
                && bool::from(g.user_code.as_bytes().ct_eq(wanted.as_bytes()))
        })
    }
}

/// Upper case, letters and digits only: `wdjb-mjht` and `WDJB MJHT` are `WDJBMJHT`.
fn normalise(user_code: &str) -> String {
    user_code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `XXXX-XXXX`, as shown to a person.
fn display(user_code: &str) -> String {
    let (a, b) = user_code.split_at(user_code.len() / 2);
    format!("{a}-{b}")
}

fn new_user_code() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..8)
        .map(|_| char::from(USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())]))
        .collect()
}

/// `POST /oauth/device_authorization` (RFC 8628 §3.1–3.2).
pub(crate) async fn device_authorization(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    rate_limited_form(&shared, &headers, &body, authorize_device)
}

fn authorize_device(
    state: &mut ProviderState,
    issuer: &str,
    headers: &HeaderMap,
    params: Result<Params, String>,
) -> Response {
    let params = match params {
        Ok(params) => params,
        Err(name) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("The parameter {name} was sent more than once."),
            );
        }
    };
    let client_id = match authenticate_client(state, headers, &params) {
        Ok(client_id) => client_id,
        Err(response) => return response,
    };
    let Some(client) = state.clients.get(&client_id) else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Unknown client.",
        );
    };
    let mut scope: Vec<String> = Vec::new();
    for item in params
        .get("scope")
        .unwrap_or(SCOPE_OPENID)
        .split_whitespace()
    {
        if !SUPPORTED_SCOPES.contains(&item) || !client.scopes.iter().any(|s| s == item) {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                &format!("The scope {item} is not allowed for this application."),
            );
        }
        if !scope.iter().any(|s| s == item) {
            scope.push(item.to_owned());
        }
    }
    let now = state.now();
    state.devices.prune(now);
    let device_code = random_token();
    let user_code = new_user_code();
    let interval = state.devices.interval;
    state.devices.grants.insert(
        device_code.clone(),
        DeviceGrant {
            client_id: client_id.clone(),
            scope,
            user_code: user_code.clone(),
            created_at: now,
            expires_at: now + DEVICE_CODE_TTL,
            interval,
            last_poll: None,
            status: Status::Pending,
        },
    );
    let shown = display(&user_code);
    let verification_uri = format!("{issuer}{VERIFICATION_PATH}");
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "device_code": device_code,
            "user_code": shown,
            "verification_uri": verification_uri,
            "verification_uri_complete": format!("{verification_uri}?user_code={shown}"),
            "expires_in": DEVICE_CODE_TTL,
            "interval": interval,
        }),
    );
    no_store(&mut response);
    tracing::debug!(%client_id, "device authorization started");
    response
}

/// Adds the device endpoint and grant to a discovery document.
pub(crate) fn advertise(document: &mut serde_json::Value, issuer: &str) {
    let Some(map) = document.as_object_mut() else {
        return;
    };
    map.insert(
        "device_authorization_endpoint".to_owned(),
        json!(format!("{issuer}/oauth/device_authorization")),
    );
    if let Some(grants) = map
        .get_mut("grant_types_supported")
        .and_then(serde_json::Value::as_array_mut)
    {
        grants.push(json!(DEVICE_GRANT_TYPE));
    }
}

fn device_error(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

/// The `device_code` grant at `POST /oauth/token` (RFC 8628 §3.4–3.5), for an authenticated
/// client.
pub(crate) fn token(
    state: &mut ProviderState,
    issuer: &str,
    client_id: &str,
    params: &Params,
    jkt: Option<String>,
) -> Response {
    let Some(device_code) = params.get("device_code") else {
        return device_error("invalid_request", "device_code is required.");
    };
    let now = state.now();
    let forced_expiry = state.has_fault(Fault::DeviceExpired);
    let forced_denial = state.has_fault(Fault::DeviceDenied);
    let forced_slow_down = state.has_fault(Fault::DeviceSlowDown);
    let auto_approve = state
        .devices
        .auto_approve
        .clone()
        .filter(|(sub, _)| state.clinician(sub).is_some());
    let Some(grant) = state.devices.grants.get_mut(device_code) else {
        return device_error("invalid_grant", "The device code is invalid.");
    };
    if grant.client_id != client_id {
        return device_error(
            "invalid_grant",
            "The device code was issued to another client.",
        );
    }
    if grant.status == Status::Redeemed {
        return device_error("invalid_grant", "The device code was already used.");
    }
    if forced_expiry || now >= grant.expires_at {
        return device_error("expired_token", "The device code has expired.");
    }
    let too_fast = grant
        .last_poll
        .is_some_and(|last| now - last < grant.interval);
    grant.last_poll = Some(now);
    if forced_slow_down || too_fast {
        grant.interval += 5;
        return device_error(
            "slow_down",
            &format!("Polling too fast; wait {} seconds.", grant.interval),
        );
    }
    if forced_denial {
        grant.status = Status::Denied;
    }
    if grant.status == Status::Pending
        && let Some((sub, after)) = auto_approve
        && now >= grant.created_at + after
    {
        grant.status = Status::Approved {
            sub,
            auth_time: now,
        };
    }
    match grant.status.clone() {
        Status::Pending => device_error(
            "authorization_pending",
            "The user has not yet approved the request.",
        ),
        Status::Denied => device_error("access_denied", "The user denied your request."),
        Status::Redeemed => device_error("invalid_grant", "The device code was already used."),
        Status::Approved { sub, auth_time } => {
            grant.status = Status::Redeemed;
            let scope = grant.scope.clone();
            let grant_id = state.new_grant(Grant {
                client_id: client_id.to_owned(),
                sub,
                scope: scope.clone(),
                auth_time,
                acr: DEFAULT_ACR,
            });
            let pair_id = state.issue_pair(grant_id, scope, jkt);
            tracing::debug!(%client_id, "device code exchanged");
            token_response(state, issuer, pair_id, None, false)
        }
    }
}

/// What the verification page shows.
struct Page<'a> {
    user_code: &'a str,
    /// The application and scopes, once the user code is known.
    request: Option<(&'a str, &'a [String])>,
    clinicians: &'a [Clinician],
    csrf_token: &'a str,
    message: Option<&'a str>,
}

fn verification_page(status: StatusCode, page: &Page<'_>) -> Response {
    let title = "Sign in on your device (Doximity mock)";
    let mut content = format!("<h1>{}</h1>", pages::escape(title));
    if let Some(message) = page.message {
        let _ = write!(
            content,
            "<p class=\"banner\" role=\"alert\">{}</p>",
            pages::escape(message)
        );
    }
    match page.request {
        Some((client_id, scopes)) => {
            let _ = write!(
                content,
                "<p>The application <code>{}</code> on your device would like to:</p>\
                 <ul class=\"scopes\">",
                pages::escape(client_id)
            );
            for scope in scopes {
                let _ = write!(
                    content,
                    "<li>{} <span class=\"muted\">(<code>{}</code>)</span></li>",
                    pages::escape(pages::scope_text(scope)),
                    pages::escape(scope)
                );
            }
            content.push_str("</ul>");
        }
        None => content.push_str(ASK_FOR_CODE),
    }
    let _ = write!(
        content,
        "<form method=\"post\" action=\"{VERIFICATION_PATH}\">\
         <input type=\"hidden\" name=\"csrf_token\" value=\"{}\">\
         <p><label>Code shown on your device<br>\
         <input name=\"user_code\" value=\"{}\" autocomplete=\"off\" autocapitalize=\"characters\" \
         spellcheck=\"false\" required style=\"font-size:1.3rem;letter-spacing:.15em;\
         padding:.4rem;width:12rem;text-transform:uppercase\"></label></p>",
        pages::escape(page.csrf_token),
        pages::escape(page.user_code),
    );
    content.push_str("<fieldset><legend>Continue as a demo clinician:</legend>");
    for (index, clinician) in page.clinicians.iter().enumerate() {
        let _ = write!(
            content,
            "<label class=\"who\"><input type=\"radio\" name=\"sub\" value=\"{sub}\"{checked}>\
             <span><strong>{name}, {credentials}</strong><br>\
             <span class=\"muted\">{specialty} · {email}</span></span></label>",
            sub = pages::escape(&clinician.sub),
            checked = if index == 0 { " checked" } else { "" },
            name = pages::escape(&clinician.name),
            credentials = pages::escape(&clinician.credentials),
            specialty = pages::escape(&clinician.specialty),
            email = pages::escape(&clinician.email),
        );
    }
    content.push_str(
        "</fieldset><div class=\"buttons\">\
         <button class=\"approve\" type=\"submit\" name=\"action\" value=\"approve\">Approve</button>\
         <button class=\"deny\" type=\"submit\" name=\"action\" value=\"deny\">Deny</button>\
         </div></form><p class=\"muted\">This is a mock of Doximity's device sign-in for \
         development and tests. No real account is used.</p>",
    );
    pages::html(status, pages::document(title, "", &content))
}

fn done_page(approved: bool) -> Response {
    let (title, message) = if approved {
        (
            "Device approved (Doximity mock)",
            "You are signed in on your device. You can close this page and return to it.",
        )
    } else {
        (
            "Device sign-in denied (Doximity mock)",
            "The device was not signed in. You can close this page.",
        )
    };
    let content = format!(
        "<h1>{}</h1><p>{}</p><p class=\"muted\">Doximity mock provider</p>",
        pages::escape(title),
        pages::escape(message)
    );
    pages::html(StatusCode::OK, pages::document(title, "", &content))
}

fn with_csrf_cookie(mut response: Response, token: &str) -> Response {
    let cookie = format!(
        "{CSRF_COOKIE}={token}; Path={VERIFICATION_PATH}; Secure; HttpOnly; SameSite=Strict"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
}

/// Renders the form, with a fresh CSRF token bound to the browser by a cookie.
fn form(
    state: &mut ProviderState,
    status: StatusCode,
    user_code: &str,
    message: Option<&str>,
) -> Response {
    let now = state.now();
    let csrf_token = random_token();
    let request = state
        .devices
        .pending_by_user_code(user_code, now)
        .map(|g| (g.client_id.clone(), g.scope.clone()));
    let response = verification_page(
        status,
        &Page {
            user_code,
            request: request.as_ref().map(|(c, s)| (c.as_str(), s.as_slice())),
            clinicians: &state.clinicians,
            csrf_token: &csrf_token,
            message,
        },
    );
    with_csrf_cookie(response, &csrf_token)
}

/// `GET /device[?user_code=...]`: the verification page.
pub(crate) async fn get_verification(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let params = Params::parse(uri.query().unwrap_or_default().as_bytes()).ok();
    let user_code = params
        .as_ref()
        .and_then(|p| p.get("user_code"))
        .unwrap_or_default()
        .chars()
        .take(32)
        .collect::<String>();
    let mut state = shared.lock();
    let now = state.now();
    state.devices.prune(now);
    let known = user_code.is_empty()
        || state
            .devices
            .pending_by_user_code(&user_code, now)
            .is_some();
    let message = (!known).then_some("That code is unknown or has expired. Check your device.");
    form(&mut state, StatusCode::OK, &user_code, message)
}

/// `POST /device`: the verification page's Approve or Deny.
pub(crate) async fn post_verification(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let Ok(params) = Params::parse(&body) else {
        return form(
            &mut state,
            StatusCode::BAD_REQUEST,
            "",
            Some("A form field was sent more than once."),
        );
    };
    let bound = match (params.get("csrf_token"), cookie(&headers, CSRF_COOKIE)) {
        (Some(field), Some(cookie)) => bool::from(field.as_bytes().ct_eq(cookie.as_bytes())),
        _ => false,
    };
    let user_code = params
        .get("user_code")
        .unwrap_or_default()
        .chars()
        .take(32)
        .collect::<String>();
    if !bound {
        return form(
            &mut state,
            StatusCode::FORBIDDEN,
            &user_code,
            Some("The form was not submitted by the browser that loaded it. Try again."),
        );
    }
    let action = params.get("action").map(str::to_owned);
    let sub = params
        .get("sub")
        .filter(|sub| state.clinician(sub).is_some())
        .map(str::to_owned);
    let now = state.now();
    let Some(grant) = state.devices.pending_by_user_code(&user_code, now) else {
        return form(
            &mut state,
            StatusCode::BAD_REQUEST,
            &user_code,
            Some("That code is unknown or has expired. Check your device."),
        );
    };
    match (action.as_deref(), sub) {
        (Some("deny"), _) => {
            grant.status = Status::Denied;
            tracing::debug!("device authorization denied");
            done_page(false)
        }
        (Some("approve"), Some(sub)) => {
            grant.status = Status::Approved {
                sub,
                auth_time: now,
            };
            tracing::debug!("device authorization approved");
            done_page(true)
        }
        (Some("approve"), None) => form(
            &mut state,
            StatusCode::BAD_REQUEST,
            &user_code,
            Some("Pick one of the demo clinicians."),
        ),
        _ => form(
            &mut state,
            StatusCode::BAD_REQUEST,
            &user_code,
            Some("Submit the form with Approve or Deny."),
        ),
    }
}

/// Steering the device flow from tests and demos.
impl MockProvider {
    /// Approves the pending device authorization whose user code is `user_code` (dashes,
    /// spaces and case do not matter) as the demo clinician `sub`, as a person on the
    /// verification page would. `false` when there is no such pending authorization or no such
    /// clinician.
    pub fn approve_device(&self, user_code: &str, sub: &str) -> bool {
        let mut state = self.shared.lock();
        if state.clinician(sub).is_none() {
            return false;
        }
        let now = state.now();
        match state.devices.pending_by_user_code(user_code, now) {
            Some(grant) => {
                grant.status = Status::Approved {
                    sub: sub.to_owned(),
                    auth_time: now,
                };
                true
            }
            None => false,
        }
    }

    /// Denies the pending device authorization whose user code is `user_code`. `false` when
    /// there is none.
    pub fn deny_device(&self, user_code: &str) -> bool {
        let mut state = self.shared.lock();
        let now = state.now();
        match state.devices.pending_by_user_code(user_code, now) {
            Some(grant) => {
                grant.status = Status::Denied;
                true
            }
            None => false,
        }
    }

    /// The polling interval new device authorizations ask for (whole seconds, at least one).
    /// Default five seconds.
    pub fn set_device_interval(&self, interval: Duration) {
        let secs = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX).max(1);
        self.shared.lock().devices.interval = secs;
    }

    /// `Some(sub)`: every pending device authorization is approved as that demo clinician at
    /// the first poll once it is `after` old (by the provider's clock), so a device sign-in can
    /// be shown without a person. `None` (the default): only the verification page, or
    /// [`approve_device`](Self::approve_device), approves.
    pub fn set_device_auto_approve(&self, sub: Option<String>, after: Duration) {
        let after = i64::try_from(after.as_secs()).unwrap_or(i64::MAX);
        self.shared.lock().devices.auto_approve = sub.map(|sub| (sub, after));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_use_the_unambiguous_alphabet_and_normalise() {
        let code = new_user_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        assert_eq!(normalise(&display(&code).to_ascii_lowercase()), code);
        assert_eq!(normalise(" wdjb mjht "), "WDJBMJHT");
        assert_eq!(display("WDJBMJHT"), "WDJB-MJHT");
    }
}
