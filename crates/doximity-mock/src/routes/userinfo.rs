//! `GET /oauth/userinfo`: a signed JWT about the token's user.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

use crate::dpop::{self, Scheme};
use crate::faults::Fault;
use crate::keys::{Signer, corrupt_signature, encode_jwt};
use crate::model::{
    Clinician, SCOPE_PROFILE_BASIC, SCOPE_PROFILE_EMAIL, SCOPE_PROFILE_PERMISSIONS,
};
use crate::routes::token::OTHER_SUB;
use crate::routes::{
    add_rate_headers, fault_status_response, invalid_token, no_store, oauth_error, spend,
};
use crate::state::{Shared, State as ProviderState};

/// Adds the profile claims a token's scope allows. Doximity documents the
/// `profile:read:basic` claims; the rest is inferred from the scope names (see the crate
/// docs' claim table): `profile_uuid` with the basic profile, `email`, `primary_email` and
/// `emails` with `profile:read:email`, `permissions` with `profile:read:permissions`.
pub(crate) fn profile_claims(
    claims: &mut Map<String, Value>,
    clinician: &Clinician,
    scope: &[String],
) {
    if scope.iter().any(|s| s == SCOPE_PROFILE_BASIC) {
        claims.insert("name".into(), json!(clinician.name));
        claims.insert("given_name".into(), json!(clinician.given_name));
        claims.insert("family_name".into(), json!(clinician.family_name));
        claims.insert("middle_name".into(), json!(clinician.middle_name));
        claims.insert("credentials".into(), json!(clinician.credentials));
        claims.insert(
            "profile_photo_url".into(),
            json!(clinician.profile_photo_url),
        );
        claims.insert("specialty".into(), json!(clinician.specialty));
        claims.insert("profile_uuid".into(), json!(clinician.profile_uuid));
    }
    if scope.iter().any(|s| s == SCOPE_PROFILE_EMAIL) {
        claims.insert("email".into(), json!(clinician.email));
        claims.insert("primary_email".into(), json!(clinician.email));
        claims.insert("emails".into(), json!(clinician.emails));
    }
    if scope.iter().any(|s| s == SCOPE_PROFILE_PERMISSIONS) {
        claims.insert("permissions".into(), json!(clinician.permissions));
    }
}

/// `GET /oauth/userinfo` (also `POST`): `Authorization: Bearer`, or `Authorization: DPoP`
/// with a proof for a DPoP-bound token.
pub(crate) async fn userinfo(
    State(shared): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let mut state = shared.lock();
    let presented = dpop::authorization(&headers);
    let bucket = presented
        .and_then(|(_, t)| state.token_client(t))
        .unwrap_or_default();
    let rate = match spend(&mut state, &bucket) {
        Ok(rate) => rate,
        Err(response) => return response,
    };
    let url = format!("{}/oauth/userinfo", shared.issuer);
    let mut response = userinfo_inner(
        &mut state,
        &shared.issuer,
        presented,
        &headers,
        (method.as_str(), &url),
    );
    add_rate_headers(&mut response, &rate);
    response
}

fn userinfo_inner(
    state: &mut ProviderState,
    issuer: &str,
    presented: Option<(Scheme, &str)>,
    headers: &HeaderMap,
    (method, url): (&str, &str),
) -> Response {
    if let Some(status) = state.fault_status(|f| match f {
        Fault::UserinfoStatus(s) => Some(s),
        _ => None,
    }) {
        return fault_status_response(status);
    }
    let Some((scheme, token)) = presented else {
        return invalid_token("A Bearer access token is required.");
    };
    let Some(bound) = state.live_access(token).map(|(pair, _)| pair.jkt.clone()) else {
        return invalid_token("The access token is invalid, expired or revoked.");
    };
    if let Err(response) =
        dpop::check_resource(state, headers, method, url, scheme, token, bound.as_deref())
    {
        return response;
    }
    let Some((pair, grant)) = state.live_access(token) else {
        return invalid_token("The access token is invalid, expired or revoked.");
    };
    let Some(clinician) = state.clinician(&grant.sub) else {
        return invalid_token("The access token's user no longer exists.");
    };
    let sub = if state.has_fault(Fault::UserinfoOtherSub) {
        OTHER_SUB
    } else {
        grant.sub.as_str()
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("aud".into(), json!([issuer, grant.client_id]));
    claims.insert("sub".into(), json!(sub));
    profile_claims(&mut claims, clinician, &pair.scope);
    let claims = Value::Object(claims);

    let (body, content_type) = if state.has_fault(Fault::UserinfoPlainJson) {
        (claims.to_string(), "application/json")
    } else {
        let Ok(jwt) = encode_jwt(&claims, &Signer::Rs256(&state.keys.current)) else {
            return oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "Could not sign the userinfo response.",
            );
        };
        let jwt = if state.has_fault(Fault::UserinfoBadSignature) {
            corrupt_signature(&jwt)
        } else {
            jwt
        };
        (jwt, "application/jwt")
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    no_store(&mut response);
    response
}
