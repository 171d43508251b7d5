//! `POST /oauth/token` (code exchange and refresh), `POST /oauth/revoke`, and
//! the ID tokens both grants return.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse as _, Response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value, json};

use crate::dpop;
use crate::faults::{DpopCheck, Fault};
use crate::keys::{
    SignError, Signer, SigningKeyEntry, corrupt_signature, encode_jwt, half_hash, random_token,
    s256,
};
use crate::model::SCOPE_OPENID;
use crate::routes::authorize::is_code_verifier;
use crate::routes::{
    Params, add_rate_headers, authenticate_client, claimed_client, fault_status_response,
    json_response, no_store, oauth_error, spend,
};
use crate::state::{Grant, Shared, State as ProviderState, TokenKind};

/// The `sub` that "changes subject" faults put in tokens.
pub(crate) const OTHER_SUB: &str = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0";
/// The client id that "wrong audience" faults put in tokens.
pub(crate) const OTHER_CLIENT: &str = "some-other-client";
/// The issuer that "wrong issuer" faults put in tokens and discovery.
pub(crate) const OTHER_ISSUER: &str = "https://wrong-issuer.example";

/// What an ID token is about.
pub(crate) struct IdTokenInput<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) sub: &'a str,
    /// The authorization request's nonce (ignored on refresh).
    pub(crate) nonce: Option<&'a str>,
    pub(crate) auth_time: i64,
    /// The level the person authenticated at (`acr`).
    pub(crate) acr: u8,
    /// Adds `at_hash`.
    pub(crate) access_token: Option<&'a str>,
    /// Adds `c_hash` (hybrid authorization responses).
    pub(crate) code: Option<&'a str>,
    /// Issued by a refresh: no nonce, and the `Refresh*` faults apply.
    pub(crate) refresh: bool,
}

/// Builds and signs an ID token, applying every active `IdToken*`/`Refresh*` fault.
pub(crate) fn build_id_token(
    state: &ProviderState,
    issuer: &str,
    input: &IdTokenInput<'_>,
) -> Result<String, SignError> {
    let has = |f| state.has_fault(f);
    let now = state.now();
    let ttl = state.access_token_ttl;
    let (mut iat, mut exp) = (now, now + ttl);
    if has(Fault::IdTokenExpired) {
        iat = now - 3600;
        exp = now - 600;
    }
    if has(Fault::IdTokenIatInFuture) {
        iat = now + 600;
        exp = iat + ttl;
    }
    let iss =
        if has(Fault::IdTokenWrongIssuer) || (input.refresh && has(Fault::RefreshChangesIssuer)) {
            OTHER_ISSUER
        } else {
            issuer
        };
    let aud_client = if has(Fault::IdTokenWrongAudience)
        || (input.refresh && has(Fault::RefreshChangesAudience))
    {
        OTHER_CLIENT
    } else {
        input.client_id
    };
    let mut aud = vec![issuer, aud_client];
    if has(Fault::IdTokenExtraAudience) {
        aud.push("https://evil.example");
    }

    let mut claims = Map::new();
    claims.insert("iss".into(), json!(iss));
    if !has(Fault::IdTokenMissingSub) {
        let sub = if input.refresh && has(Fault::RefreshChangesSub) {
            OTHER_SUB
        } else {
            input.sub
        };
        claims.insert("sub".into(), json!(sub));
    }
    claims.insert("aud".into(), json!(aud));
    if !has(Fault::IdTokenMissingAzp) {
        let azp = if has(Fault::IdTokenWrongAzp) {
            OTHER_CLIENT
        } else {
            input.client_id
        };
        claims.insert("azp".into(), json!(azp));
    }
    claims.insert("exp".into(), json!(exp));
    claims.insert("iat".into(), json!(iat));
    claims.insert("auth_time".into(), json!(input.auth_time));
    let nonce = if input.refresh {
        // A refreshed ID token carries no nonce; the fault adds a fresh one,
        // which can never equal the original (OpenID Connect Core §12.2).
        has(Fault::RefreshAddsNonce).then(|| format!("refresh-{}", random_token()))
    } else if has(Fault::IdTokenMissingNonce) {
        None
    } else if has(Fault::IdTokenWrongNonce) {
        Some(format!("wrong-{}", random_token()))
    } else {
        input.nonce.map(str::to_owned)
    };
    if let Some(nonce) = nonce {
        claims.insert("nonce".into(), json!(nonce));
    }
    if let Some(access_token) = input.access_token {
        let at_hash = if has(Fault::IdTokenBadAtHash) {
            half_hash(&format!("not-{access_token}"))
        } else {
            half_hash(access_token)
        };
        claims.insert("at_hash".into(), json!(at_hash));
    }
    if let Some(code) = input.code {
        claims.insert("c_hash".into(), json!(half_hash(code)));
    }
    let acr = if has(Fault::IdTokenLowAcr) {
        1
    } else {
        input.acr
    };
    claims.insert(
        "acr".into(),
        if has(Fault::IdTokenStringAcr) {
            json!(acr.to_string())
        } else {
            json!(acr)
        },
    );
    let claims = Value::Object(claims);

    let current: &SigningKeyEntry = &state.keys.current;
    let secret = state
        .clients
        .get(input.client_id)
        .map(|c| c.client_secret.as_bytes())
        .unwrap_or_default();
    let signer = if has(Fault::IdTokenAlgNone) {
        Signer::None
    } else if has(Fault::IdTokenHs256WithClientSecret) {
        Signer::Hs256 {
            kid: &current.kid,
            secret,
        }
    } else if has(Fault::IdTokenUnknownKid) {
        Signer::Rs256(state.keys.rogue.as_deref().ok_or(SignError)?)
    } else {
        Signer::Rs256(current)
    };
    let token = encode_jwt(&claims, &signer)?;
    Ok(if has(Fault::IdTokenBadSignature) {
        corrupt_signature(&token)
    } else {
        token
    })
}

/// Makes sure the never-published key exists while `IdTokenUnknownKid` is active.
/// Generated on a blocking thread, outside the state lock.
pub(crate) async fn ensure_rogue_key(shared: &Shared) {
    let needed = {
        let state = shared.lock();
        state.has_fault(Fault::IdTokenUnknownKid) && state.keys.rogue.is_none()
    };
    if !needed {
        return;
    }
    match tokio::task::spawn_blocking(SigningKeyEntry::generate).await {
        Ok(Ok(key)) => {
            let mut state = shared.lock();
            if state.keys.rogue.is_none() {
                state.keys.rogue = Some(Arc::new(key));
            }
        }
        _ => tracing::warn!("could not generate the unpublished key"),
    }
}

fn server_error(description: &str) -> Response {
    oauth_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "server_error",
        description,
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// `POST /oauth/token`
pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    ensure_rogue_key(&shared).await;
    rate_limited_form(&shared, &headers, &body, token_inner)
}

/// A client-authenticated form endpoint (token, device authorization): the body parsed, the
/// claimed client's rate budget spent (a 429 when it is exhausted), then `inner`, with the
/// rate-limit headers on its answer.
pub(crate) fn rate_limited_form(
    shared: &Shared,
    headers: &HeaderMap,
    body: &[u8],
    inner: fn(&mut ProviderState, &str, &HeaderMap, Result<Params, String>) -> Response,
) -> Response {
    let mut state = shared.lock();
    let params = Params::parse(body);
    let bucket = match &params {
        Ok(params) => claimed_client(&state, headers, params),
        Err(_) => String::new(),
    };
    let rate = match spend(&mut state, &bucket) {
        Ok(rate) => rate,
        Err(response) => return response,
    };
    let mut response = inner(&mut state, &shared.issuer, headers, params);
    add_rate_headers(&mut response, &rate);
    response
}

fn token_inner(
    state: &mut ProviderState,
    issuer: &str,
    headers: &HeaderMap,
    params: Result<Params, String>,
) -> Response {
    if let Some(status) = state.fault_status(|f| match f {
        Fault::TokenStatus(s) => Some(s),
        _ => None,
    }) {
        return fault_status_response(status);
    }
    if state.has_fault(Fault::TokenGarbage) {
        let mut response =
            (StatusCode::OK, "<html><body>upstream hiccup</body></html>").into_response();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
        return response;
    }
    let params = match params {
        Ok(params) => params,
        Err(name) => {
            return invalid_request(&format!("The parameter {name} was sent more than once."));
        }
    };
    let client_id = match authenticate_client(state, headers, &params) {
        Ok(client_id) => client_id,
        Err(response) => return response,
    };
    // The proof is checked before any grant is looked at: a refused proof (or a nonce
    // demand) spends no authorization code, and the client may retry with the same one.
    let token_url = format!("{issuer}/oauth/token");
    let proof_jkt = match dpop::check(state, headers, "POST", &token_url, None) {
        Ok(proof) => proof.map(|p| p.jkt),
        Err(error) => return dpop::token_error(error),
    };
    let dpop = Dpop {
        bind: proof_jkt
            .clone()
            .filter(|_| !state.has_fault(Fault::DpopTokenTypeBearer)),
        proof: proof_jkt,
    };
    match params.get("grant_type") {
        None => invalid_request("grant_type is required."),
        Some("authorization_code") => exchange_code(state, issuer, &client_id, &params, dpop),
        Some("refresh_token") => refresh(state, issuer, &client_id, &params, dpop),
        Some(crate::routes::device::DEVICE_GRANT_TYPE) => {
            crate::routes::device::token(state, issuer, &client_id, &params, dpop.bind)
        }
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token or the device_code grant.",
        ),
    }
}

/// What a token request's DPoP proof means for the tokens.
struct Dpop {
    /// The thumbprint of the proof's key, when a valid proof came.
    proof: Option<String>,
    /// The thumbprint to bind the new tokens to: the proof's, unless
    /// [`Fault::DpopTokenTypeBearer`] has the provider decline to bind.
    bind: Option<String>,
}

/// The JSON token response for a freshly issued pair.
pub(crate) fn token_response(
    state: &ProviderState,
    issuer: &str,
    pair_id: u64,
    nonce: Option<&str>,
    refresh: bool,
) -> Response {
    let Some(pair) = state.pairs.get(&pair_id) else {
        return server_error("The tokens vanished.");
    };
    let Some(grant) = state.grants.get(&pair.grant) else {
        return server_error("The grant vanished.");
    };
    let mut body = json!({
        "access_token": pair.access_token,
        "token_type": if pair.jkt.is_some() { "DPoP" } else { "bearer" },
        "expires_in": state.access_token_ttl,
        "refresh_token": pair.refresh_token,
        "scope": pair.scope.join(" "),
    });
    if pair.scope.iter().any(|s| s == SCOPE_OPENID) {
        let input = IdTokenInput {
            client_id: &grant.client_id,
            sub: &grant.sub,
            nonce,
            auth_time: grant.auth_time,
            acr: grant.acr,
            access_token: Some(&pair.access_token),
            code: None,
            refresh,
        };
        match build_id_token(state, issuer, &input) {
            Ok(id_token) => body["id_token"] = json!(id_token),
            Err(_) => return server_error("Could not sign the ID token."),
        }
    }
    let mut response = json_response(StatusCode::OK, &body);
    no_store(&mut response);
    response
}

fn exchange_code(
    state: &mut ProviderState,
    issuer: &str,
    client_id: &str,
    params: &Params,
    dpop: Dpop,
) -> Response {
    let Some(code) = params.get("code") else {
        return invalid_request("code is required.");
    };
    let Some(redirect_uri) = params.get("redirect_uri") else {
        return invalid_request("redirect_uri is required.");
    };
    let Some(verifier) = params.get("code_verifier") else {
        return invalid_request("code_verifier is required (PKCE).");
    };
    let now = state.now();
    let Some(record) = state.codes.get_mut(code) else {
        return invalid_grant("The authorization code is invalid.");
    };
    if record.client_id != client_id {
        return invalid_grant("The authorization code was issued to another client.");
    }
    if record.used {
        let grant = record.grant;
        if let Some(grant) = grant {
            state.revoke_grant(grant);
        }
        tracing::debug!(%client_id, "authorization code replayed; its tokens are revoked");
        return invalid_grant(
            "The authorization code was already used; the tokens it issued are revoked.",
        );
    }
    // Any presentation by its client spends the code, successful or not.
    record.used = true;
    if now >= record.expires_at {
        return invalid_grant("The authorization code has expired.");
    }
    if record.redirect_uri != redirect_uri {
        return invalid_grant("redirect_uri does not match the authorization request.");
    }
    if !is_code_verifier(verifier) || s256(verifier) != record.code_challenge {
        return invalid_grant("The code_verifier does not match the code_challenge.");
    }
    let nonce = record.nonce.clone();
    let grant = Grant {
        client_id: record.client_id.clone(),
        sub: record.sub.clone(),
        scope: record.scope.clone(),
        auth_time: record.auth_time,
        acr: record.acr,
    };
    let scope = grant.scope.clone();
    let grant_id = state.new_grant(grant);
    if let Some(record) = state.codes.get_mut(code) {
        record.grant = Some(grant_id);
    }
    let pair_id = state.issue_pair(grant_id, scope, dpop.bind);
    tracing::debug!(%client_id, "authorization code exchanged");
    token_response(state, issuer, pair_id, nonce.as_deref(), false)
}

fn refresh(
    state: &mut ProviderState,
    issuer: &str,
    client_id: &str,
    params: &Params,
    dpop: Dpop,
) -> Response {
    let Some(refresh_token) = params.get("refresh_token") else {
        return invalid_request("refresh_token is required.");
    };
    let Some((TokenKind::Refresh, old_pair)) = state.token(refresh_token) else {
        return invalid_grant("The refresh token is invalid.");
    };
    let Some(pair) = state.pairs.get(&old_pair) else {
        return invalid_grant("The refresh token is invalid.");
    };
    let grant_id = pair.grant;
    if pair.revoked {
        return invalid_grant("The refresh token has been revoked.");
    }
    let Some(grant) = state.grants.get(&grant_id) else {
        return invalid_grant("The refresh token is invalid.");
    };
    if grant.client_id != client_id {
        return invalid_grant("The refresh token was issued to another client.");
    }
    if let Some(bound) = &pair.jkt
        && !state.has_fault(Fault::DpopCheckOff(DpopCheck::Binding))
    {
        match &dpop.proof {
            None => {
                return invalid_grant(
                    "The refresh token is DPoP-bound: a DPoP proof by its key is required.",
                );
            }
            Some(jkt) if jkt != bound => {
                return invalid_grant("The refresh token is bound to another DPoP key.");
            }
            Some(_) => {}
        }
    }
    let scope: Vec<String> = match params.get("scope") {
        None => grant.scope.clone(),
        Some(requested) => {
            let mut scope: Vec<String> = Vec::new();
            for item in requested.split_whitespace() {
                if !grant.scope.iter().any(|s| s == item) {
                    return oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        &format!("The scope {item} was not originally granted."),
                    );
                }
                if !scope.iter().any(|s| s == item) {
                    scope.push(item.to_owned());
                }
            }
            if scope.is_empty() {
                grant.scope.clone()
            } else {
                scope
            }
        }
    };
    state.revoke_pair(old_pair);
    let pair_id = state.issue_pair(grant_id, scope, dpop.bind);
    tracing::debug!(%client_id, "refresh token rotated");
    token_response(state, issuer, pair_id, None, true)
}

/// `POST /oauth/revoke` (RFC 7009): revoking either token of a pair revokes both.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut state = shared.lock();
    let params = Params::parse(&body);
    let bucket = match &params {
        Ok(params) => claimed_client(&state, &headers, params),
        Err(_) => String::new(),
    };
    let rate = match spend(&mut state, &bucket) {
        Ok(rate) => rate,
        Err(response) => return response,
    };
    let mut response = revoke_inner(&mut state, &headers, params);
    add_rate_headers(&mut response, &rate);
    response
}

fn revoke_inner(
    state: &mut ProviderState,
    headers: &HeaderMap,
    params: Result<Params, String>,
) -> Response {
    if let Some(status) = state.fault_status(|f| match f {
        Fault::RevokeStatus(s) => Some(s),
        _ => None,
    }) {
        return fault_status_response(status);
    }
    let params = match params {
        Ok(params) => params,
        Err(name) => {
            return invalid_request(&format!("The parameter {name} was sent more than once."));
        }
    };
    let client_id = match authenticate_client(state, headers, &params) {
        Ok(client_id) => client_id,
        Err(response) => return response,
    };
    let Some(token) = params.get("token") else {
        return invalid_request("token is required.");
    };
    if let Some((_, pair_id)) = state.token(token) {
        let owned = state
            .pairs
            .get(&pair_id)
            .and_then(|p| state.grants.get(&p.grant))
            .is_some_and(|g| g.client_id == client_id);
        if owned {
            state.revoke_pair(pair_id);
            tracing::debug!(%client_id, "token pair revoked");
        }
    }
    StatusCode::OK.into_response()
}
