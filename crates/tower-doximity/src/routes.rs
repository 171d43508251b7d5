//! The auth routes: login, callback, logout.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use doximity::authorize::{LandingPage, Prompt};
use doximity::scope::{ProfileReadBasic, Scope, Scopes};
use doximity::{AuthorizeRequest, CallbackError, Error, PendingLogin, RevocableToken};
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;
use crate::return_to::sanitize_return_to;
use crate::service::{Route, Shared, append_cookies, no_store};
use crate::session::{SessionRecord, TokenSource, new_session_id};

/// How long a login may take: the transaction cookie's `Max-Age`.
pub(crate) const TRANSACTION_TTL: Duration = Duration::from_secs(600);
/// The longest `scope` parameter the login route accepts.
const MAX_SCOPE_PARAM: usize = 512;

/// The login transaction kept in the encrypted transaction cookie.
#[derive(Serialize, Deserialize)]
struct Transaction {
    #[serde(rename = "p")]
    pending: PendingLogin,
    #[serde(rename = "r")]
    return_to: String,
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    route: Route,
    parts: &Parts,
) -> Response<Full<Bytes>> {
    let mut response = match route {
        Route::Login => login(shared, parts),
        Route::Callback => callback(shared, parts).await,
        Route::Logout => logout(shared, parts).await,
    };
    no_store(response.headers_mut());
    response
}

fn see_other(location: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::default());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    } else {
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
    }
    r
}

/// `GET {login}?return_to=/path&scope=…&prompt=…&type=…`: a fresh transaction, then 303 to the
/// provider.
///
/// `scope` (optional, for step-up) is a space-separated list of scope tokens added to the
/// configured scopes; anything that is not a scope token is refused with 400. `prompt`
/// (`none`, `login`, `consent`, `create`) and the older API's `type` (`login`, `verify`) are
/// forwarded to the provider (the sign-in buttons' Create and Verify variants, and the
/// session check's silent re-check); other values are ignored.
fn login(shared: &Shared, parts: &Parts) -> Response<Full<Bytes>> {
    let mut return_to = "/".to_owned();
    let mut scope = None;
    let mut request = AuthorizeRequest::new();
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        match &*k {
            "return_to" => sanitize_return_to(&v).clone_into(&mut return_to),
            "scope" => scope = Some(v.into_owned()),
            // Forwarded as Doximity documents them; any other value is ignored.
            "prompt" => {
                if let Some(prompt) = parse_prompt(&v) {
                    request = request.with_prompt(prompt);
                }
            }
            "type" => {
                if let Some(page) = parse_landing_page(&v) {
                    request = request.with_landing_page(page);
                }
            }
            _ => {}
        }
    }
    if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
        let parsed = if scope.len() > MAX_SCOPE_PARAM {
            None
        } else {
            scope.parse::<Scopes>().ok()
        };
        let Some(parsed) = parsed else {
            return shared.refusal(
                &parts.method,
                &parts.headers,
                &parts.uri,
                AuthError::InvalidScopeParameter,
            );
        };
        request = request.with_scopes(&shared.client.config().scopes().union(&parsed));
    }
    let (url, pending) = shared.client.authorize_url(&request);
    let transaction = Transaction { pending, return_to };
    let json = serde_json::to_string(&transaction).unwrap_or_default();
    let cookie = shared
        .codec
        .seal(shared.codec.names.login, &json, Some(TRANSACTION_TTL));
    let mut r = see_other(url.as_str());
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

fn parse_prompt(v: &str) -> Option<Prompt> {
    Some(match v {
        "none" => Prompt::None,
        "login" => Prompt::Login,
        "consent" => Prompt::Consent,
        "create" => Prompt::Create,
        _ => return None,
    })
}

fn parse_landing_page(v: &str) -> Option<LandingPage> {
    Some(match v {
        "login" => LandingPage::Login,
        "verify" => LandingPage::Verify,
        _ => return None,
    })
}

/// `GET {callback}`: the transaction (once), the core's checks, a new session, 303 to
/// `return_to`.
async fn callback(shared: &Shared, parts: &Parts) -> Response<Full<Bytes>> {
    let mut response = match complete(shared, parts).await {
        Ok((location, cookies)) => {
            let mut r = see_other(&location);
            append_cookies(r.headers_mut(), &cookies);
            r
        }
        Err(error) => {
            if let AuthError::Login(e) = &error {
                tracing::info!(error = %e, "sign-in failed at the callback");
            } else {
                tracing::info!(error = %error, "sign-in failed at the callback");
            }
            shared.refusal(&parts.method, &parts.headers, &parts.uri, error)
        }
    };
    let headers = response.headers_mut();
    // The transaction is used once, success or not.
    headers.append(
        header::SET_COOKIE,
        shared.codec.removal(shared.codec.names.login),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn complete(shared: &Shared, parts: &Parts) -> Result<(String, Vec<HeaderValue>), AuthError> {
    let transaction = shared
        .codec
        .open(&parts.headers, shared.codec.names.login)
        .and_then(|json| serde_json::from_str::<Transaction>(&json).ok())
        .ok_or(AuthError::MissingTransaction)?;
    let now = shared.now();
    if !shared.mark_state_used(transaction.pending.state().secret(), now) {
        return Err(AuthError::ReplayedTransaction);
    }
    let query = parts.uri.query().unwrap_or_default();
    let tokens = match shared
        .client
        .complete_login(&transaction.pending, query)
        .await
    {
        Ok(tokens) => tokens,
        // A silent re-check (`prompt=none`, sent by the session check) found no session at
        // the provider: the user signed out there, so the session here ends too. This comes
        // only after the state check, so nobody else can end a session this way.
        Err(Error::Callback(CallbackError::InteractionRequired { .. })) => {
            if let Ok(Some((old, _))) = shared.read_session(&parts.headers).await {
                shared.delete_session(&old).await;
            }
            return Ok((
                sanitize_return_to(&transaction.return_to).to_owned(),
                shared.clear_session_cookies(),
            ));
        }
        Err(e) => return Err(AuthError::Login(Arc::new(e))),
    };
    // A brand-new session id: nothing from the request survives (no fixation).
    let mut record = SessionRecord::new(new_session_id(), &tokens, now);
    if shared.profile_at_login && tokens.scopes.contains(ProfileReadBasic::NAME) {
        match shared
            .client
            .userinfo(&tokens.access_token, &tokens.claims.sub)
            .await
        {
            Ok(profile) => record.profile = Some(crate::session::Lazy::new(profile)),
            Err(e) => {
                tracing::warn!(error = %e, "profile not fetched at sign-in; it will be fetched on demand");
            }
        }
    }
    // Drop a previous server-side session of this browser.
    if let Ok(Some((old, _))) = shared.read_session(&parts.headers).await {
        shared.delete_session(&old).await;
    }
    let cookies = shared.persist(&record, Some(&tokens), now).await?;
    Ok((
        sanitize_return_to(&transaction.return_to).to_owned(),
        cookies,
    ))
}

/// `GET|POST {logout}`: destroy the local session, revoke in the background, 303 to the
/// provider's logout (or `/`).
async fn logout(shared: &Shared, parts: &Parts) -> Response<Full<Bytes>> {
    let session = shared.read_session(&parts.headers).await.ok().flatten();
    let mut location = "/".to_owned();
    if let Some((record, source)) = session {
        shared.delete_session(&record).await;
        let tokens = match source {
            TokenSource::Open(t) => Some((*t).clone()),
            TokenSource::Sealed(raw) => shared.open_tokens(raw.as_bytes(), &record.id),
            TokenSource::Claims(_) => None,
        };
        if let Some(tokens) = tokens {
            let state = new_session_id();
            match shared.client.logout_url(&tokens.id_token, Some(&state)) {
                Ok(url) => location = url.to_string(),
                Err(e) => tracing::info!(error = %e, "no provider logout; redirecting home"),
            }
            let client = shared.client.clone();
            shared.background.spawn(async move {
                let result = match &tokens.refresh_token {
                    Some(rt) => client.revoke(RevocableToken::Refresh(rt)).await,
                    None => {
                        client
                            .revoke(RevocableToken::Access(&tokens.access_token))
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not revoke the tokens at logout");
                }
            });
        }
    }
    let mut r = see_other(&location);
    let headers = r.headers_mut();
    append_cookies(headers, &shared.clear_session_cookies());
    headers.insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    r
}
