//! `/.well-known/*`: OpenID Connect Discovery, RFC 8414 metadata and the JWKS.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde_json::{Value, json};

use crate::faults::Fault;
use crate::model::{ACR_VALUES_SUPPORTED, SUPPORTED_SCOPES};
use crate::routes::{fault_status_response, json_response};
use crate::state::Shared;

/// Claims the provider can send (ID token and userinfo).
const CLAIMS_SUPPORTED: [&str; 22] = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "acr",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "credentials",
    "profile_photo_url",
    "specialty",
    "profile_uuid",
    "email",
    "primary_email",
    "emails",
    "permissions",
];

fn base_document(shared: &Shared) -> Value {
    let state = shared.lock();
    let issuer = &shared.issuer;
    let browser = &shared.browser_base;
    let advertised_issuer = if state.has_fault(Fault::DiscoveryWrongIssuer) {
        "https://wrong-issuer.example".to_owned()
    } else {
        issuer.clone()
    };
    let mut auth_methods = vec!["client_secret_basic"];
    if state.legacy_client_secret_post {
        auth_methods.push("client_secret_post");
    }
    let device = !state.has_fault(Fault::DiscoveryNoDeviceEndpoint);
    let token_endpoint = if state.has_fault(Fault::DiscoveryHttpEndpoint) {
        format!(
            "http://{}/oauth/token",
            issuer.trim_start_matches("https://")
        )
    } else {
        format!("{issuer}/oauth/token")
    };
    let id_token_algs = if state.has_fault(Fault::DiscoveryNoRs256) {
        ["HS256"]
    } else {
        ["RS256"]
    };
    let mut document = json!({
        "issuer": advertised_issuer,
        "authorization_endpoint": format!("{browser}/oauth/authorize"),
        "token_endpoint": token_endpoint,
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "check_session_iframe": format!("{browser}/oauth/session_state"),
        "end_session_endpoint": format!("{browser}/oauth/logout"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "scopes_supported": SUPPORTED_SCOPES,
        "response_types_supported": ["code", "code id_token"],
        "response_modes_supported": ["query", "fragment"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "userinfo_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": auth_methods,
        "claims_supported": CLAIMS_SUPPORTED,
        "acr_values_supported": ACR_VALUES_SUPPORTED,
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "prompt_values_supported": ["none", "login", "consent", "create"],
        "display_values_supported": ["page", "popup"],
    });
    if device {
        crate::routes::device::advertise(&mut document, issuer);
    }
    if !state.has_fault(Fault::DiscoveryNoDpop)
        && let Some(map) = document.as_object_mut()
    {
        map.insert(
            "dpop_signing_alg_values_supported".to_owned(),
            json!(crate::dpop::ALGS),
        );
    }
    document
}

/// `GET /.well-known/openid-configuration`
pub(crate) async fn openid_configuration(State(shared): State<Arc<Shared>>) -> Response {
    json_response(StatusCode::OK, &base_document(&shared))
}

/// `GET /.well-known/oauth-authorization-server`: the same plus revocation, `DPoP` and UI
/// details.
pub(crate) async fn authorization_server(State(shared): State<Arc<Shared>>) -> Response {
    let mut document = base_document(&shared);
    // `dpop_signing_alg_values_supported` is in the base document already.
    let (revocation, disagree) = {
        let state = shared.lock();
        (
            !state.has_fault(Fault::DiscoveryNoRevocationEndpoint),
            state.has_fault(Fault::DiscoveryDocumentsDisagree),
        )
    };
    if let Some(map) = document.as_object_mut() {
        if revocation {
            map.insert(
                "revocation_endpoint".to_owned(),
                json!(format!("{}/oauth/revoke", shared.issuer)),
            );
            map.insert(
                "revocation_endpoint_auth_methods_supported".to_owned(),
                json!(["client_secret_basic"]),
            );
        }
        if disagree {
            map.insert(
                "token_endpoint".to_owned(),
                json!(format!("{}/oauth/token-other", shared.issuer)),
            );
        }
        map.insert(
            "token_endpoint_auth_signing_alg_values_supported".to_owned(),
            json!(["RS256"]),
        );
        map.insert("ui_locales_supported".to_owned(), json!(["en-US"]));
    }
    json_response(StatusCode::OK, &document)
}

/// `GET /.well-known/jwks.json`
pub(crate) async fn jwks(State(shared): State<Arc<Shared>>) -> Response {
    let state = shared.lock();
    if let Some(status) = state.fault_status(|f| match f {
        Fault::JwksStatus(s) => Some(s),
        _ => None,
    }) {
        return fault_status_response(status);
    }
    json_response(StatusCode::OK, &state.keys.jwks())
}
