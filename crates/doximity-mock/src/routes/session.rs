//! `GET /oauth/session_state`: the OpenID Connect Session Management
//! `check_session_iframe`, and the liveness check its script uses.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::{StatusCode, Uri};
use serde_json::json;

use crate::keys::random_token;
use crate::pages;
use crate::routes::{Params, json_response, no_store};
use crate::state::Shared;

/// `GET /oauth/session_state`: the iframe page. Its script answers a
/// `postMessage(client_id + " " + session_state)` with `changed`, `unchanged`
/// or `error`, to the sender's origin.
pub(crate) async fn check_session_iframe() -> Response {
    pages::check_session_page(&random_token())
}

/// `GET /oauth/session_state/alive?browser_state=…`: `{"active": bool}`.
///
/// The browser state cookie outlives sessions the provider ends on its own
/// (for example [`MockProvider::end_provider_sessions`](crate::MockProvider::end_provider_sessions));
/// the iframe's script asks here so that it then answers `changed`.
pub(crate) async fn alive(State(shared): State<Arc<Shared>>, uri: Uri) -> Response {
    let active = Params::parse(uri.query().unwrap_or_default().as_bytes())
        .ok()
        .and_then(|p| p.get("browser_state").map(str::to_owned))
        .is_some_and(|bs| {
            shared
                .lock()
                .sessions
                .values()
                .any(|s| s.browser_state == bs)
        });
    let mut response = json_response(StatusCode::OK, &json!({ "active": active }));
    no_store(&mut response);
    response
}
