//! The older REST API (`/api/v1/*`) and the `/share` page.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderMap, StatusCode, Uri};
use serde_json::json;

use crate::dpop::{self, Scheme};
use crate::model::{SCOPE_PROFILE_BASIC, SCOPE_PROFILE_EMAIL};
use crate::pages;
use crate::routes::{
    Params, add_rate_headers, claimed_client, invalid_token, json_response, spend,
};
use crate::state::Shared;

/// What a call to the older API presents: the provider, the headers, the query parameters.
pub(crate) struct ApiCall {
    shared: Arc<Shared>,
    headers: HeaderMap,
    params: Option<Params>,
}

impl FromRequestParts<Arc<Shared>> for ApiCall {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        shared: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self {
            shared: shared.clone(),
            headers: parts.headers.clone(),
            params: Params::parse(parts.uri.query().unwrap_or_default().as_bytes()).ok(),
        })
    }
}

impl ApiCall {
    fn into_parts(self) -> (Arc<Shared>, HeaderMap, Option<Params>) {
        (self.shared, self.headers, self.params)
    }
}

/// `GET /api/v1/rate_limit`: the caller's budget, without spending any of it.
///
/// The caller is the client of a Bearer token, or of HTTP Basic credentials.
pub(crate) async fn rate_limit(call: ApiCall) -> Response {
    let (shared, headers, params) = call.into_parts();
    let mut state = shared.lock();
    let bucket = dpop::authorization(&headers)
        .map(|(_, token)| token)
        .or_else(|| params.as_ref().and_then(|p| p.get("access_token")))
        .and_then(|t| state.token_client(t))
        .or_else(|| {
            params
                .as_ref()
                .map(|p| claimed_client(&state, &headers, p))
                .filter(|c| !c.is_empty())
        })
        .unwrap_or_default();
    let rate = state.rate(&bucket, false);
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "limit": rate.limit, "remaining": rate.remaining, "reset": rate.reset }),
    );
    add_rate_headers(&mut response, &rate);
    response
}

/// `GET /api/v1/users/current`: the older API's profile, for a Bearer token or
/// an `access_token` query parameter, or a DPoP-bound token with its proof.
///
/// Fields follow the older API: `id` (the OpenID `sub`), `firstname`,
/// `middlename`, `lastname`, `full_name`, `credentials`, `specialty`,
/// `profile_photo`; `email` only with `profile:read:email`.
pub(crate) async fn users_current(call: ApiCall) -> Response {
    let (shared, headers, params) = call.into_parts();
    let mut state = shared.lock();
    let (scheme, token) = match dpop::authorization(&headers) {
        Some((scheme, token)) => (scheme, Some(token.to_owned())),
        None => (
            Scheme::Bearer,
            params
                .as_ref()
                .and_then(|p| p.get("access_token"))
                .map(str::to_owned),
        ),
    };
    let bucket = token
        .as_deref()
        .and_then(|t| state.token_client(t))
        .unwrap_or_default();
    let rate = match spend(&mut state, &bucket) {
        Ok(rate) => rate,
        Err(response) => return response,
    };
    let bound = token
        .as_deref()
        .and_then(|t| state.live_access(t))
        .map(|(pair, _)| pair.jkt.clone());
    let url = format!("{}/api/v1/users/current", shared.issuer);
    if let (Some(token), Some(bound)) = (token.as_deref(), bound)
        && let Err(mut response) = dpop::check_resource(
            &mut state,
            &headers,
            "GET",
            &url,
            scheme,
            token,
            bound.as_deref(),
        )
    {
        add_rate_headers(&mut response, &rate);
        return response;
    }
    let mut response = match token.as_deref().and_then(|t| state.live_access(t)) {
        None => invalid_token("The access token is missing, invalid, expired or revoked."),
        Some((pair, grant)) => match state.clinician(&grant.sub) {
            None => invalid_token("The access token's user no longer exists."),
            Some(clinician) => {
                let mut body = json!({ "id": clinician.sub });
                if pair.scope.iter().any(|s| s == SCOPE_PROFILE_BASIC) {
                    body["firstname"] = json!(clinician.given_name);
                    body["middlename"] = json!(clinician.middle_name);
                    body["lastname"] = json!(clinician.family_name);
                    body["full_name"] = json!(clinician.name);
                    body["credentials"] = json!(clinician.credentials);
                    body["specialty"] = json!(clinician.specialty);
                    body["profile_photo"] = json!(clinician.profile_photo_url);
                }
                if pair.scope.iter().any(|s| s == SCOPE_PROFILE_EMAIL) {
                    body["email"] = json!(clinician.email);
                }
                json_response(StatusCode::OK, &body)
            }
        },
    };
    add_rate_headers(&mut response, &rate);
    response
}

/// `GET /share`: shows the `url`, `subject` and `message` a Share button sent.
pub(crate) async fn share(uri: Uri) -> Response {
    let Ok(params) = Params::parse(uri.query().unwrap_or_default().as_bytes()) else {
        return pages::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid share request",
            "A parameter was sent more than once.",
        );
    };
    pages::share_page(
        params.get("url"),
        params.get("message"),
        params.get("subject"),
    )
}
