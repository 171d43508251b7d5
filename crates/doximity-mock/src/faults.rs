//! Injectable faults and the endpoint names used by the request counters.

/// A defect the provider can be told to produce, for testing how a client copes.
///
/// A fault applies to every matching response while it is active; several can be
/// active at once. Inject one with [`MockProvider::inject`](crate::MockProvider::inject)
/// and remove them all with [`MockProvider::clear_faults`](crate::MockProvider::clear_faults).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// ID tokens carry a corrupted RS256 signature.
    IdTokenBadSignature,
    /// ID tokens name another issuer in `iss`.
    IdTokenWrongIssuer,
    /// The client id in the ID token's `aud` is replaced by another client id.
    IdTokenWrongAudience,
    /// ID tokens carry a third, untrusted audience `https://evil.example`.
    IdTokenExtraAudience,
    /// ID tokens name another client in `azp`.
    IdTokenWrongAzp,
    /// ID tokens have no `azp` claim.
    IdTokenMissingAzp,
    /// ID tokens expired ten minutes ago (`iat` one hour ago).
    IdTokenExpired,
    /// ID tokens are issued ten minutes in the future (`iat = now + 600`).
    IdTokenIatInFuture,
    /// ID tokens omit the `nonce` the authorization request carried.
    IdTokenMissingNonce,
    /// ID tokens carry a `nonce` other than the one requested.
    IdTokenWrongNonce,
    /// ID tokens carry an `at_hash` that does not match the access token.
    IdTokenBadAtHash,
    /// ID tokens are unsigned: header `{"alg":"none"}` and an empty signature.
    IdTokenAlgNone,
    /// ID tokens are signed with HS256, keyed with the client secret.
    IdTokenHs256WithClientSecret,
    /// ID tokens are signed by a key that is not in the JWKS, under an unknown `kid`.
    IdTokenUnknownKid,
    /// ID tokens have no `sub` claim.
    IdTokenMissingSub,
    /// ID tokens carry `acr` as a string (`"2"`) instead of a number (`2`).
    IdTokenStringAcr,
    /// ID tokens carry `acr: 1` whatever level the authorization request asked for and the
    /// person authenticated at: a provider that does not meet the request.
    IdTokenLowAcr,
    /// The provider ignores `max_age` and `prompt=login` when dating a sign-in: a provider
    /// session is never re-authenticated because of `max_age`, and a re-authentication (for
    /// `prompt=login` or a higher `acr_values` level) keeps the old `auth_time`.
    StaleAuthTime,
    /// ID tokens from a refresh name another subject.
    RefreshChangesSub,
    /// ID tokens from a refresh name another issuer.
    RefreshChangesIssuer,
    /// ID tokens from a refresh are addressed to another client.
    RefreshChangesAudience,
    /// ID tokens from a refresh carry a fresh `nonce`, unlike the original one.
    RefreshAddsNonce,
    /// Userinfo answers name another subject than the access token's.
    UserinfoOtherSub,
    /// Userinfo JWTs carry a corrupted signature.
    UserinfoBadSignature,
    /// Userinfo answers are plain `application/json` instead of a signed JWT.
    UserinfoPlainJson,
    /// The token endpoint answers with this status and `{"error":"server_error"}`.
    TokenStatus(u16),
    /// The token endpoint answers 200 with a body that is not JSON.
    TokenGarbage,
    /// The revocation endpoint answers with this status and `{"error":"server_error"}`.
    RevokeStatus(u16),
    /// The userinfo endpoint answers with this status and `{"error":"server_error"}`.
    UserinfoStatus(u16),
    /// Both discovery documents name another issuer.
    DiscoveryWrongIssuer,
    /// The JWKS endpoint answers with this status.
    JwksStatus(u16),
    /// Every rate-limited endpoint (token, revoke, userinfo, `/api/v1/*`) answers 429.
    RateLimitExhausted,
    /// Every device-code poll answers `slow_down` (and the expected interval grows by 5 s).
    DeviceSlowDown,
    /// Every device-code poll answers `expired_token`.
    DeviceExpired,
    /// Every device-code poll answers `access_denied`, as if the person had denied.
    DeviceDenied,
    /// Neither discovery document advertises `device_authorization_endpoint` (nor the
    /// device grant), as Doximity's published metadata does not.
    DiscoveryNoDeviceEndpoint,
    /// The two discovery documents disagree: the authorization-server document names another
    /// `token_endpoint` (`/oauth/token-other`) than the OpenID configuration.
    DiscoveryDocumentsDisagree,
    /// Both discovery documents name a plain `http://` token endpoint.
    DiscoveryHttpEndpoint,
    /// The authorization-server document has no `revocation_endpoint`.
    DiscoveryNoRevocationEndpoint,
    /// Both discovery documents list only `HS256` in `id_token_signing_alg_values_supported`.
    DiscoveryNoRs256,
    /// Every response carries a `Date` header this many seconds off the real time (the
    /// provider's own clock, [`MockProvider::set_clock_offset`](crate::MockProvider::set_clock_offset),
    /// is unchanged).
    SkewedDate(i64),
    /// Every client's budget shows one request left (`X-Rate-Limit-Remaining: 1` at most);
    /// requests still succeed.
    RateLimitNearlyExhausted,
    /// Neither discovery document advertises `dpop_signing_alg_values_supported`: a client
    /// must fall back to plain `Bearer`. Proofs that arrive anyway are still checked.
    DiscoveryNoDpop,
    /// Every DPoP proof (token endpoint and resources) is answered `use_dpop_nonce` with a
    /// fresh `DPoP-Nonce`, however good it is: the server that never accepts a nonce.
    DpopNonceEveryRequest,
    /// The token endpoint checks DPoP proofs but issues unbound tokens with
    /// `token_type: Bearer`, as RFC 9449 §5 allows a server to.
    DpopTokenTypeBearer,
    /// Turns one DPoP check off, to show that a test's refusal comes from that check (and
    /// that a client does not depend on the provider being lax).
    DpopCheckOff(DpopCheck),
}

/// One of the checks the provider makes on DPoP proofs and bound tokens (RFC 9449), for
/// [`Fault::DpopCheckOff`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DpopCheck {
    /// The proof's RS256 signature by the JWK in its header.
    Signature,
    /// `typ` is `dpop+jwt`.
    Typ,
    /// `alg` is `RS256`.
    Alg,
    /// `htm` is the request's method.
    Htm,
    /// `htu` is the endpoint's URL (without query and fragment).
    Htu,
    /// `iat` is within 60 seconds of the provider's clock.
    Iat,
    /// `jti` was not seen in the freshness window.
    Replay,
    /// `nonce` is the provider's current nonce (when nonces are demanded).
    Nonce,
    /// `ath` is the hash of the presented access token (resources).
    Ath,
    /// Bound tokens need a proof by their key (`cnf.jkt`), at the resources and on refresh;
    /// a bound access token is refused as `Bearer`.
    Binding,
}

/// The provider's endpoints, as counted by [`MockProvider::requests`](crate::MockProvider::requests).
///
/// Every request to an endpoint's path counts, whatever its method or result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /.well-known/openid-configuration`
    OpenIdConfiguration,
    /// `GET /.well-known/oauth-authorization-server`
    AuthorizationServerMetadata,
    /// `GET /.well-known/jwks.json`
    Jwks,
    /// `GET|POST /oauth/authorize`
    Authorize,
    /// `POST /oauth/token`
    Token,
    /// `POST /oauth/revoke`
    Revoke,
    /// `GET /oauth/userinfo`
    Userinfo,
    /// `GET|POST /oauth/logout`
    Logout,
    /// `GET /oauth/session_state` (the `check_session_iframe`) and its helper
    /// `GET /oauth/session_state/alive`
    CheckSession,
    /// `GET /api/v1/rate_limit`
    RateLimit,
    /// `GET /api/v1/users/current`
    UsersCurrent,
    /// `GET /share`
    Share,
    /// `POST /oauth/device_authorization` (RFC 8628)
    DeviceAuthorization,
    /// `GET|POST /device`, the device verification page
    DeviceVerification,
}

impl Endpoint {
    /// The endpoint a request path belongs to, if any.
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/.well-known/openid-configuration" => Self::OpenIdConfiguration,
            "/.well-known/oauth-authorization-server" => Self::AuthorizationServerMetadata,
            "/.well-known/jwks.json" => Self::Jwks,
            "/oauth/authorize" => Self::Authorize,
            "/oauth/token" => Self::Token,
            "/oauth/revoke" => Self::Revoke,
            "/oauth/userinfo" => Self::Userinfo,
            "/oauth/logout" => Self::Logout,
            "/oauth/session_state" | "/oauth/session_state/alive" => Self::CheckSession,
            "/api/v1/rate_limit" => Self::RateLimit,
            "/api/v1/users/current" => Self::UsersCurrent,
            "/share" => Self::Share,
            "/oauth/device_authorization" => Self::DeviceAuthorization,
            "/device" => Self::DeviceVerification,
            _ => return None,
        })
    }
}
