//! The layer's one decision, pure: what to do with a request, given the layer's settings, the
//! request's method, path and headers, what its cookies (or the store) gave, and the time.
//!
//! Every path of the service acts on a [`Decision`]: the cookie store's fast path (no `await`),
//! the slow path, server stores, bearer callers. The I/O (opening cookies, reading a store,
//! refreshing at the provider, checking a bearer token) happens around it, never in it, so the
//! whole rule set is table-tested without a socket.

use http::{HeaderMap, Method};

use crate::session::{Liveness, SessionRecord, Timeouts, liveness, needs_refresh};

/// Whether a request without a session is refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Refuse every request without a valid session (except the auth routes and the public
    /// paths). The default.
    #[default]
    Enforce,
    /// Attach the identity when there is one and let every request through; extractors
    /// decide.
    Optional,
}

/// The auth routes.
#[derive(Clone, Debug)]
pub(crate) struct Routes {
    pub(crate) login: String,
    pub(crate) callback: String,
    pub(crate) logout: String,
}

impl Routes {
    pub(crate) fn route(&self, method: &Method, path: &str) -> Option<Route> {
        let read = method == Method::GET || method == Method::HEAD;
        if path == self.login && read {
            Some(Route::Login)
        } else if path == self.callback && read {
            Some(Route::Callback)
        } else if path == self.logout && (read || method == Method::POST) {
            Some(Route::Logout)
        } else {
            None
        }
    }
}

/// Which auth route a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Login,
    Callback,
    Logout,
}

/// The settings the decision reads.
pub(crate) struct Settings<'a> {
    pub(crate) routes: &'a Routes,
    pub(crate) mode: Mode,
    /// Bearer mode is on ([`DoximityAuth::with_bearer`](crate::DoximityAuth::with_bearer)).
    pub(crate) bearer: bool,
    /// [`DoximityAuth::bearer_layer`](crate::DoximityAuth::bearer_layer): no routes, no cookies.
    pub(crate) bearer_only: bool,
    pub(crate) timeouts: Timeouts,
    pub(crate) is_public: &'a dyn Fn(&str) -> bool,
}

/// What the request's cookies, or the store they point to, gave.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Found<'a> {
    /// Not read yet: a server store must be asked (an `await`).
    Unread,
    /// No readable session; `cookies` when the request carried session cookies anyway
    /// (tampered, foreign, expired in the store): they are cleared.
    Nothing { cookies: bool },
    /// A session, and whether it was signed out here.
    Session {
        record: &'a SessionRecord,
        signed_out: bool,
    },
}

/// Why a session the request carried is over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// Past the idle or the absolute timeout.
    TimedOut,
    /// Signed out here (a copy of its cookies).
    SignedOut,
    /// Its access token expired and there is no refresh token.
    TokenExpired,
}

/// What to do with a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// One of the layer's auth routes.
    Route(Route),
    /// An `Authorization: Bearer` token decides (checked through the provider, cached).
    Bearer,
    /// Read the server store, then decide again.
    Load,
    /// A live session with nothing to refresh; `touch` when `last_seen` is written back.
    Pass { touch: bool },
    /// A live session whose access token is due for a refresh (single-flight).
    Refresh { touch: bool },
    /// No identity; the request goes on (optional mode, public path). `clear` the session
    /// cookies; `ended` says why a session the request carried is over.
    Anonymous { clear: bool, ended: Option<Ended> },
    /// No identity, and the layer refuses (401, 303 to sign in, gRPC 16).
    Refuse { clear: bool, ended: Option<Ended> },
}

/// The decision for a request (see the module docs).
pub(crate) fn decide(
    settings: &Settings<'_>,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    found: Found<'_>,
    now: i64,
) -> Decision {
    if !settings.bearer_only
        && let Some(route) = settings.routes.route(method, path)
    {
        return Decision::Route(route);
    }
    if settings.bearer && crate::bearer::presented(headers).is_some() {
        return Decision::Bearer;
    }
    let (clear, ended) = match found {
        _ if settings.bearer_only => (false, None),
        Found::Unread => return Decision::Load,
        Found::Nothing { cookies } => (cookies, None),
        Found::Session {
            signed_out: true, ..
        } => (true, Some(Ended::SignedOut)),
        Found::Session { record, .. } => match liveness(record, now, settings.timeouts) {
            Liveness::Expired => (true, Some(Ended::TimedOut)),
            Liveness::Live { touch } => {
                if !needs_refresh(record.expires_at, record.tokens_at, now) {
                    return Decision::Pass { touch };
                }
                if record.refreshable {
                    return Decision::Refresh { touch };
                }
                if record.expires_at.is_some_and(|e| e <= now) {
                    (true, Some(Ended::TokenExpired))
                } else {
                    return Decision::Pass { touch };
                }
            }
        },
    };
    if settings.mode == Mode::Enforce && !(settings.is_public)(path) {
        Decision::Refuse { clear, ended }
    } else {
        Decision::Anonymous { clear, ended }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;

    use super::*;

    const T: Timeouts = Timeouts {
        idle: Duration::from_secs(1800),
        absolute: Duration::from_secs(12 * 3600),
    };

    fn routes() -> Routes {
        Routes {
            login: "/auth/doximity/login".into(),
            callback: "/auth/doximity/callback".into(),
            logout: "/auth/doximity/logout".into(),
        }
    }

    /// A session signed in at 0, seen at `last_seen`, its token issued at 0 and expiring at
    /// `expires_at`.
    fn record(last_seen: i64, expires_at: Option<i64>, refreshable: bool) -> SessionRecord {
        let mut r: SessionRecord = serde_json::from_value(serde_json::json!({
            "i": "id", "r": 0, "c": 0, "l": last_seen, "t": 0, "e": expires_at,
            "h": refreshable, "s": "openid", "u": "sub"
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        r.last_seen = last_seen;
        r
    }

    #[derive(Clone, Copy, Debug)]
    enum State {
        Unread,
        None,
        Stale,
        Live,
        Touch,
        IdleExpired,
        AbsoluteExpired,
        RefreshDue,
        TokenExpiredNoRefresh,
        SignedOut,
    }

    fn run(state: State, mode: Mode, public: bool, bearer: bool, path: &str) -> Decision {
        let routes = routes();
        let is_public = move |_: &str| public;
        let settings = Settings {
            routes: &routes,
            mode,
            bearer: true,
            bearer_only: false,
            timeouts: T,
            is_public: &is_public,
        };
        let mut headers = HeaderMap::new();
        if bearer {
            headers.insert("authorization", HeaderValue::from_static("Bearer abc"));
        }
        // `now` is 1000 unless the state needs another.
        let (rec, now) = match state {
            State::Live => (record(990, Some(3600), true), 1000),
            State::Touch => (record(900, Some(3600), true), 1000),
            State::IdleExpired => (record(0, Some(99_999), true), 1800),
            State::AbsoluteExpired => (record(43_000, Some(99_999), true), 43_200),
            State::RefreshDue => (record(990, Some(1010), true), 1000),
            State::TokenExpiredNoRefresh => (record(990, Some(999), false), 1000),
            State::SignedOut => (record(990, Some(3600), true), 1000),
            State::Unread | State::None | State::Stale => (record(0, None, true), 1000),
        };
        let found = match state {
            State::Unread => Found::Unread,
            State::None => Found::Nothing { cookies: false },
            State::Stale => Found::Nothing { cookies: true },
            State::SignedOut => Found::Session {
                record: &rec,
                signed_out: true,
            },
            _ => Found::Session {
                record: &rec,
                signed_out: false,
            },
        };
        decide(&settings, &Method::GET, path, &headers, found, now)
    }

    #[test]
    fn decision_table() {
        use Decision::*;
        let no_id = |enforced: bool, clear: bool, ended: Option<Ended>| {
            if enforced {
                Refuse { clear, ended }
            } else {
                Anonymous { clear, ended }
            }
        };
        let states = [
            State::Unread,
            State::None,
            State::Stale,
            State::Live,
            State::Touch,
            State::IdleExpired,
            State::AbsoluteExpired,
            State::RefreshDue,
            State::TokenExpiredNoRefresh,
            State::SignedOut,
        ];
        for mode in [Mode::Enforce, Mode::Optional] {
            for public in [false, true] {
                for bearer in [false, true] {
                    for state in states {
                        let enforced = mode == Mode::Enforce && !public;
                        let want = if bearer {
                            Bearer
                        } else {
                            match state {
                                State::Unread => Load,
                                State::None => no_id(enforced, false, None),
                                State::Stale => no_id(enforced, true, None),
                                State::Live => Pass { touch: false },
                                State::Touch => Pass { touch: true },
                                State::IdleExpired | State::AbsoluteExpired => {
                                    no_id(enforced, true, Some(Ended::TimedOut))
                                }
                                State::RefreshDue => Refresh { touch: false },
                                State::TokenExpiredNoRefresh => {
                                    no_id(enforced, true, Some(Ended::TokenExpired))
                                }
                                State::SignedOut => no_id(enforced, true, Some(Ended::SignedOut)),
                            }
                        };
                        let got = run(state, mode, public, bearer, "/me");
                        assert_eq!(
                            got, want,
                            "{mode:?} public={public} bearer={bearer} {state:?}"
                        );
                        // The auth routes come first, whatever else the request carries.
                        assert_eq!(
                            run(state, mode, public, bearer, "/auth/doximity/login"),
                            Decision::Route(super::Route::Login)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_bearer_only_layer_has_no_routes_and_reads_no_cookies() {
        let routes = routes();
        let is_public = |_: &str| false;
        let settings = Settings {
            routes: &routes,
            mode: Mode::Enforce,
            bearer: true,
            bearer_only: true,
            timeouts: T,
            is_public: &is_public,
        };
        let rec = record(990, Some(3600), true);
        let live = Found::Session {
            record: &rec,
            signed_out: false,
        };
        let h = HeaderMap::new();
        for path in ["/auth/doximity/login", "/me"] {
            assert_eq!(
                decide(&settings, &Method::GET, path, &h, live, 1000),
                Decision::Refuse {
                    clear: false,
                    ended: None
                }
            );
        }
    }
}
