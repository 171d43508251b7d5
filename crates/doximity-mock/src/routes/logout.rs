//! `GET|POST /oauth/logout`: OpenID Connect RP-Initiated Logout.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use http::header::SET_COOKIE;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use serde_json::Value;

use crate::pages;
use crate::routes::authorize::{BROWSER_STATE_COOKIE, SESSION_COOKIE, redirect_with};
use crate::routes::{CookieKind, Listener, Params, cookie};
use crate::state::Shared;

/// The client an ID token was issued to: `azp`, else the audience that is not the issuer.
fn client_of(claims: &Value, issuer: &str) -> Option<String> {
    if let Some(azp) = claims.get("azp").and_then(Value::as_str) {
        return Some(azp.to_owned());
    }
    match claims.get("aud")? {
        Value::String(aud) => Some(aud.clone()),
        Value::Array(auds) => auds
            .iter()
            .filter_map(Value::as_str)
            .find(|a| *a != issuer)
            .map(str::to_owned),
        _ => None,
    }
}

/// `GET|POST /oauth/logout`: needs a valid `id_token_hint` and a registered
/// `post_logout_redirect_uri`; ends the provider session and redirects with `state`.
pub(crate) async fn logout(
    State(shared): State<Arc<Shared>>,
    Extension(listener): Extension<Listener>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    let bad = |message: &str| {
        pages::error_page(
            StatusCode::BAD_REQUEST,
            "Sign-out request is invalid",
            message,
        )
    };
    let input = if method == Method::POST {
        body.to_vec()
    } else {
        uri.query().unwrap_or_default().as_bytes().to_vec()
    };
    let Ok(params) = Params::parse(&input) else {
        return bad("A parameter was sent more than once.");
    };
    let Some(hint) = params.get("id_token_hint") else {
        return bad("id_token_hint is required.");
    };
    let Some(post_logout_redirect_uri) = params.get("post_logout_redirect_uri") else {
        return bad("post_logout_redirect_uri is required.");
    };
    let mut state = shared.lock();
    let Some(claims) = state
        .keys
        .verify(hint)
        .filter(|c| c.get("iss").and_then(Value::as_str) == Some(shared.issuer.as_str()))
    else {
        return bad("id_token_hint is not an ID token this provider issued.");
    };
    let Some(client) = client_of(&claims, &shared.issuer).and_then(|id| state.clients.get(&id))
    else {
        return bad("id_token_hint was issued to an unknown application.");
    };
    if !client
        .post_logout_redirect_uris
        .iter()
        .any(|u| u == post_logout_redirect_uri)
    {
        return bad(
            "post_logout_redirect_uri does not exactly match one registered for this application.",
        );
    }
    if let Some(session_id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.remove(&session_id);
    }
    if let Some(sub) = claims.get("sub").and_then(Value::as_str) {
        state.sessions.retain(|_, s| s.sub != sub);
    }
    drop(state);

    let mut params_out = Vec::new();
    if let Some(value) = params.get("state") {
        params_out.push(("state", value));
    }
    let mut response = redirect_with(post_logout_redirect_uri, false, &params_out);
    for (name, kind) in [
        (SESSION_COOKIE, CookieKind::Private),
        (BROWSER_STATE_COOKIE, CookieKind::FramedScript),
    ] {
        if let Ok(value) = HeaderValue::from_str(&listener.cookie(name, None, "/", kind)) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}
