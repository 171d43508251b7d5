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

use crate::audit::{Event, Origin, Record};
use crate::decide::Route;
use crate::engine::{Shared, append_cookies, no_store};
use crate::error::AuthError;
use crate::return_to::sanitize_return_to;
use crate::session::{SessionRecord, new_session_id};

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
    /// A silent re-check (`prompt=none`) started from the app's own page: only then may a
    /// "no session at the provider" answer end the session here.
    #[serde(rename = "s", default)]
    may_end_session: bool,
}

pub(crate) async fn handle(
    shared: &Arc<Shared>,
    route: Route,
    parts: &Parts,
) -> Response<Full<Bytes>> {
    let mut response = match route {
        Route::Login => login(shared, parts).await,
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

/// `GET {login}?return_to=/path&scope=…&prompt=…&type=…&acr_values=…&max_age=…`: a fresh
/// transaction, then 303 to the provider.
///
/// `scope` (optional, for step-up) is a space-separated list of scope tokens; anything that is
/// not a scope token is refused with 400. Only allowed scopes are requested (contract v2,
/// point 8): the configured ones, those listed with
/// [`DoximityAuth::with_step_up_scopes`](crate::DoximityAuth::with_step_up_scopes), and those
/// of the layer's own step-up link (tagged with `step_up`, an HMAC made with the cookie key);
/// a scope someone else added to the URL is dropped. `prompt` (`none`, `login`, `consent`,
/// `create`) and the older API's `type` (`login`, `verify`) are forwarded to the provider (the
/// sign-in buttons' Create and Verify variants, and the session check's silent re-check);
/// other values are ignored. `acr_values` and `max_age` (RFC 9470's step-up) are forwarded,
/// and the ID token must then meet them; malformed ones are refused with 400. They need no
/// tag: a stronger or more recent sign-in widens nothing.
async fn login(shared: &Shared, parts: &Parts) -> Response<Full<Bytes>> {
    let mut return_to = "/".to_owned();
    let mut scope = None;
    let mut tag = None;
    let mut stepped_up = false;
    let mut silent = false;
    let mut request = AuthorizeRequest::new();
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes()) {
        match &*k {
            "return_to" => sanitize_return_to(&v).clone_into(&mut return_to),
            "scope" => scope = Some(v.into_owned()),
            "step_up" => tag = Some(v.into_owned()),
            // Forwarded as Doximity documents them; any other value is ignored.
            "prompt" => {
                if let Some(prompt) = parse_prompt(&v) {
                    silent = prompt == Prompt::None;
                    request = request.with_prompt(prompt);
                }
            }
            "type" => {
                if let Some(page) = parse_landing_page(&v) {
                    request = request.with_landing_page(page);
                }
            }
            "acr_values" => match parse_acr_values(&v) {
                Some(values) => {
                    stepped_up |= !values.is_empty();
                    request = request.with_acr_values(values);
                }
                None => {
                    return shared.refusal(parts, AuthError::InvalidStepUpParameter("acr_values"));
                }
            },
            "max_age" => match parse_max_age(&v) {
                Some(age) => {
                    stepped_up = true;
                    request = request.with_max_age(Duration::from_secs(age));
                }
                None => return shared.refusal(parts, AuthError::InvalidStepUpParameter("max_age")),
            },
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
            return shared.refusal(parts, AuthError::InvalidScopeParameter);
        };
        let configured = shared.client().config().scopes();
        let allowed = if tag.is_some_and(|t| shared.links.verify_step_up(&scope, &t)) {
            parsed
        } else {
            allowed_scopes(&parsed, &shared.step_up_scopes)
        };
        stepped_up |= allowed.iter().any(|s| !configured.contains(s));
        request = request.with_scopes(&configured.union(&allowed));
    }
    let (url, pending) = match shared.client().authorize_url(&request).await {
        Ok(found) => found,
        // An `acr` value the provider does not advertise: 400, nothing is sent.
        Err(e @ Error::AcrNotSupported(_)) => {
            tracing::info!(error = %e, "a login asked for an unsupported acr value");
            return shared.refusal(parts, AuthError::Login(Arc::new(e)));
        }
        // The provider cannot be discovered (down, or its metadata breaks a rule): 503 with
        // the reason and `Retry-After`.
        Err(e) => {
            tracing::warn!(error = %e, "sign-in is unavailable: the provider cannot be reached");
            return shared.refusal(parts, AuthError::Login(Arc::new(e)));
        }
    };
    let transaction = Transaction {
        pending,
        return_to,
        may_end_session: silent && same_origin(&parts.headers, &shared.origin),
    };
    let json = serde_json::to_string(&transaction).unwrap_or_default();
    let codec = &shared.sessions.env.codec;
    let cookie = codec.seal(codec.names.login(), &json, Some(TRANSACTION_TTL));
    let origin = Origin::of(parts);
    crate::audit::emit(Event::SignInStarted, &origin, &Record::default());
    if stepped_up {
        crate::audit::emit(Event::StepUp, &origin, &Record::default());
    }
    let mut r = see_other(url.as_str());
    r.headers_mut().append(header::SET_COOKIE, cookie);
    r
}

/// The scopes of `requested` that `allowed` lists.
fn allowed_scopes(requested: &Scopes, allowed: &Scopes) -> Scopes {
    let mut out = Scopes::default();
    for s in requested.iter() {
        if allowed.contains(s) {
            // Already a valid scope token: it came from a parsed `Scopes`.
            let _ = out.insert(s);
        } else {
            tracing::debug!(
                scope = %s.escape_debug(),
                "a scope not allowed for this app was dropped from a login request"
            );
        }
    }
    out
}

/// Whether a request comes from the app's own pages: the browser says so
/// (`Sec-Fetch-Site: same-origin`), or, for a client that sends no `Sec-Fetch-Site`, its
/// `Origin` (or, lacking it, its `Referer`) is `origin`. With none of the three, no: the
/// request must show where it comes from.
pub(crate) fn same_origin(headers: &http::HeaderMap, origin: &str) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.as_bytes() == origin.as_bytes();
    }
    if let Some(r) = headers.get(header::REFERER) {
        return r
            .to_str()
            .ok()
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|u| u.origin().ascii_serialization() == origin);
    }
    false
}

/// The login route's `acr_values`: at most 8 space-separated values, each a plain token
/// ([`doximity::authorize::is_acr_token`]: what can travel in a URL and a `WWW-Authenticate`
/// parameter). Whether the provider supports them is the core's check, against its metadata.
fn parse_acr_values(v: &str) -> Option<Vec<String>> {
    const MAX_VALUES: usize = 8;
    let mut values = Vec::new();
    for value in v.split(' ').filter(|s| !s.is_empty()) {
        if values.len() == MAX_VALUES || !doximity::authorize::is_acr_token(value) {
            return None;
        }
        values.push(value.to_owned());
    }
    Some(values)
}

/// The login route's `max_age`: whole seconds, at most ten digits.
fn parse_max_age(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
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
            let record = Record {
                reason: Some(error.code()),
                ..Record::default()
            };
            crate::audit::emit(Event::SignInFailed, &Origin::of(parts), &record);
            shared.refusal(parts, error)
        }
    };
    let headers = response.headers_mut();
    // The transaction is used once, success or not.
    headers.append(
        header::SET_COOKIE,
        shared
            .sessions
            .env
            .codec
            .removal(shared.sessions.env.codec.names.login()),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn complete(shared: &Shared, parts: &Parts) -> Result<(String, Vec<HeaderValue>), AuthError> {
    let transaction = shared
        .sessions
        .env
        .codec
        .open(&parts.headers, shared.sessions.env.codec.names.login())
        .and_then(|json| serde_json::from_str::<Transaction>(&json).ok())
        .ok_or(AuthError::MissingTransaction)?;
    let now = shared.now();
    let query = parts.uri.query().unwrap_or_default();
    // `state` is compared before the transaction is marked used, so a forged callback (a
    // wrong or missing `state`) cannot burn the victim's sign-in.
    if !state_matches(query, transaction.pending.state().secret()) {
        return Err(AuthError::Login(Arc::new(Error::Callback(
            CallbackError::StateMismatch,
        ))));
    }
    if !shared
        .ledger
        .mark_state_used(
            &shared.sessions.backend,
            transaction.pending.state().secret(),
            now,
        )
        .await?
    {
        return Err(AuthError::ReplayedTransaction);
    }
    let completed = crate::metrics::timed(
        "token",
        shared.client().complete_login(&transaction.pending, query),
    )
    .await;
    let origin = Origin::of(parts);
    crate::audit::rate_limit(shared.client(), &origin);
    let tokens = match completed {
        Ok(tokens) => tokens,
        // A silent re-check (`prompt=none`, sent by the session check from the app's own
        // page) found no session at the provider: the user signed out there, so the session
        // here ends too. This comes only after the state check, and only for a re-check that
        // started same-origin, so a cross-site link to `login?prompt=none` ends nothing.
        Err(Error::Callback(CallbackError::InteractionRequired { .. }))
            if transaction.may_end_session =>
        {
            if let Ok(Some((old, _))) = shared.sessions.read(&parts.headers).await {
                shared
                    .ledger
                    .mark_signed_out(&old, shared.sessions.timeouts, now);
                shared.sessions.delete(&old).await;
                shared.audit_session(Event::SessionEnded, &origin, &old, Some("revoked"));
            }
            return Ok((
                sanitize_return_to(&transaction.return_to).to_owned(),
                shared.sessions.clear_cookies(),
            ));
        }
        Err(Error::Callback(CallbackError::InteractionRequired { .. })) => {
            return Ok((
                sanitize_return_to(&transaction.return_to).to_owned(),
                Vec::new(),
            ));
        }
        Err(e) => return Err(AuthError::Login(Arc::new(e))),
    };
    // A brand-new session id: nothing from the request survives (no fixation).
    let mut record = SessionRecord::new(new_session_id(), &tokens, now);
    if shared.profile_at_login && tokens.scopes.contains(ProfileReadBasic::NAME) {
        let profile = shared.client().userinfo(&tokens, &tokens.claims.sub);
        match crate::metrics::timed("userinfo", profile).await {
            Ok(profile) => record.profile = Some(crate::session::Lazy::new(profile)),
            Err(e) => {
                tracing::warn!(error = %e, "profile not fetched at sign-in; it will be fetched on demand");
            }
        }
    }
    // Drop a previous server-side session of this browser.
    if let Ok(Some((old, _))) = shared.sessions.read(&parts.headers).await {
        shared.sessions.delete(&old).await;
    }
    let cookies = shared
        .sessions
        .persist(&record, Some(&tokens), None, now)
        .await?;
    shared.audit_session(Event::SignInCompleted, &origin, &record, None);
    Ok((
        sanitize_return_to(&transaction.return_to).to_owned(),
        cookies,
    ))
}

/// Whether the callback's `state` parameter equals `expected` (constant time). A repeated
/// `state` never matches.
fn state_matches(query: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    let mut found = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k == "state" {
            if found.is_some() {
                return false;
            }
            found = Some(v);
        }
    }
    found.is_some_and(|v| bool::from(v.as_bytes().ct_eq(expected.as_bytes())))
}

/// How often a failed revocation is tried again in the background, and the first pause.
const REVOKE_ATTEMPTS: u32 = 3;
const REVOKE_FIRST_PAUSE: Duration = Duration::from_secs(1);

/// `{logout}`: `GET` answers a page whose button POSTs here, `HEAD` its headers; neither
/// signs out. `POST` signs out when it comes from the app's own page (contract v2, point 3),
/// else 403 and the session stays: the local session is destroyed (or, if the store fails,
/// 503 and nothing is changed), remembered as signed out so copies of its cookies are refused,
/// the refresh token is revoked in the background, and the browser goes to the provider's
/// logout (or `/`).
async fn logout(shared: &Shared, parts: &Parts) -> Response<Full<Bytes>> {
    if parts.method != http::Method::POST {
        return confirm_page(shared, parts.method == http::Method::HEAD);
    }
    if !same_origin(&parts.headers, &shared.origin) {
        tracing::info!("a sign-out that did not come from the app's own page was refused");
        return shared.refusal(parts, AuthError::CrossOriginLogout);
    }
    let session = match shared.sessions.read(&parts.headers).await {
        Ok(session) => session,
        Err(e) => return shared.refusal(parts, e),
    };
    let mut location = "/".to_owned();
    if let Some((record, source)) = session {
        // Fail closed: the user is told they are signed out only once the session is gone.
        if let Err(e) = shared.sessions.try_delete(&record).await {
            tracing::warn!(error = %e, "sign-out failed: the session store is unavailable");
            return shared.refusal(parts, e);
        }
        shared
            .ledger
            .mark_signed_out(&record, shared.sessions.timeouts, shared.now());
        crate::audit::emit(
            Event::SignOut,
            &Origin::of(parts),
            &Record {
                sub: Some(&record.sub),
                session: Some(shared.audit.hash(&record.id)),
                by: Some("user"),
                ..Record::default()
            },
        );
        let tokens = shared.sessions.env.open_tokens(&source, &record.id);
        if let Some(tokens) = tokens {
            let state = new_session_id();
            match shared
                .client()
                .logout_url(&tokens.id_token, Some(&state))
                .await
            {
                Ok(url) => location = url.to_string(),
                Err(e) => tracing::info!(error = %e, "no provider logout; redirecting home"),
            }
            let client = shared.client().clone();
            shared.background.spawn(revoke(client, tokens));
        }
    }
    let mut r = see_other(&location);
    let headers = r.headers_mut();
    append_cookies(headers, &shared.sessions.clear_cookies());
    if shared.clear_site_data {
        headers.insert("clear-site-data", HeaderValue::from_static("\"cookies\""));
    }
    r
}

/// Revokes the refresh token (or, without one, the access token), trying again a few times
/// with a growing pause while the provider is unavailable.
async fn revoke(client: doximity::Client, tokens: doximity::TokenSet) {
    let mut pause = REVOKE_FIRST_PAUSE;
    for attempt in 1..=REVOKE_ATTEMPTS {
        let token = match &tokens.refresh_token {
            Some(rt) => RevocableToken::Refresh(rt),
            None => RevocableToken::Access(&tokens.access_token),
        };
        let result = crate::metrics::timed("revocation", client.revoke(token)).await;
        match result {
            Ok(()) => return,
            Err(e) if e.is_retryable() && attempt < REVOKE_ATTEMPTS => {
                tracing::info!(error = %e, attempt, "token revocation failed; trying again");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke the tokens at logout");
                return;
            }
        }
    }
}

/// The logout route's page for `GET` (and its headers for `HEAD`): a button that POSTs.
fn confirm_page(shared: &Shared, head: bool) -> Response<Full<Bytes>> {
    let action = crate::response::escape_html(&shared.routes.logout);
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Sign out</title></head><body>\
         <main><h1>Sign out?</h1><p>You will be signed out of this app and of Doximity.</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">Sign out</button>\
         </form><p><a href=\"/\">Stay signed in</a></p></main></body></html>"
    );
    let mut r = Response::new(if head {
        Full::default()
    } else {
        Full::from(html)
    });
    let headers = r.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    r
}
