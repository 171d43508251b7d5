//! The public data types: client registrations, demo clinicians and scopes.

use std::fmt;

use serde::Serialize;

/// `openid`: OpenID Connect; the token response carries an ID token and the
/// authorization response a `session_state`.
pub const SCOPE_OPENID: &str = "openid";
/// `profile:read:basic`: userinfo carries the clinician's name, credentials,
/// photo and specialty.
pub const SCOPE_PROFILE_BASIC: &str = "profile:read:basic";
/// `profile:read:email`: userinfo carries the clinician's email address.
pub const SCOPE_PROFILE_EMAIL: &str = "profile:read:email";
/// `profile:read:permissions`: userinfo carries the clinician's `permissions`.
pub const SCOPE_PROFILE_PERMISSIONS: &str = "profile:read:permissions";
/// `search`: Doximity's directory search (accepted, no endpoint in the mock).
pub const SCOPE_SEARCH: &str = "search";
/// `colleagues`: the older API's colleagues list (accepted, no endpoint in the mock).
pub const SCOPE_COLLEAGUES: &str = "colleagues";

/// Every scope the mock supports, as listed in `scopes_supported`: the 21 scopes of Doximity's
/// published metadata, then the older API's `colleagues`. Scopes other than `openid` and the
/// `profile:read:*` ones above are accepted and granted but add no claim (see the crate docs'
/// claim table).
pub const SUPPORTED_SCOPES: [&str; 22] = [
    "activities:read:cards",
    "activities:read:comments",
    "activities:read:likes",
    "activities:write:likes",
    "colleagues:read",
    "colleagues:write",
    "dialer",
    "docsgpt:access",
    "hipaa:identified",
    "jobs:read",
    "login_context:inferred",
    SCOPE_OPENID,
    SCOPE_PROFILE_BASIC,
    "profile:read:dialer_phone",
    SCOPE_PROFILE_EMAIL,
    "profile:read:experience",
    "profile:read:office",
    SCOPE_PROFILE_PERMISSIONS,
    "profile:read:private_contact",
    SCOPE_SEARCH,
    "sessions:linked",
    SCOPE_COLLEAGUES,
];

/// The authentication levels the provider offers (`acr_values_supported`), weakest first.
pub(crate) const ACR_VALUES_SUPPORTED: [&str; 3] = ["1", "2", "3"];
/// The level of a sign-in nobody asked a level for, as Doximity's ID tokens show (`acr: 2`).
pub(crate) const DEFAULT_ACR: u8 = 2;

/// The client id of the demo client every provider starts with.
pub const DEMO_CLIENT_ID: &str = "doximity-demo-client";
/// The demo client's default redirect URI.
pub const DEMO_REDIRECT_URI: &str = "http://127.0.0.1:3000/auth/doximity/callback";
/// The demo client's default post-logout redirect URI.
pub const DEMO_POST_LOGOUT_REDIRECT_URI: &str = "http://127.0.0.1:3000/";

/// A client (an "application" in Doximity's words) registered with the provider.
///
/// Its `Debug` output never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The public client identifier.
    pub client_id: String,
    /// The client secret, used with `client_secret_basic`.
    pub client_secret: String,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Post-logout redirect URIs, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// Scopes this client may request (a subset of [`SUPPORTED_SCOPES`]).
    pub scopes: Vec<String>,
}

impl ClientRegistration {
    /// A client with the given id and secret, no URIs, allowed every supported scope.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            redirect_uris: Vec::new(),
            post_logout_redirect_uris: Vec::new(),
            scopes: SUPPORTED_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Adds a redirect URI.
    #[must_use]
    pub fn with_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.redirect_uris.push(uri.into());
        self
    }

    /// Adds a post-logout redirect URI.
    #[must_use]
    pub fn with_post_logout_redirect_uri(mut self, uri: impl Into<String>) -> Self {
        self.post_logout_redirect_uris.push(uri.into());
        self
    }
}

impl fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .field("post_logout_redirect_uris", &self.post_logout_redirect_uris)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// A demo clinician the mock can sign in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Clinician {
    /// Doximity's identifier: an RFC 4122 version 4 UUID string.
    pub sub: String,
    /// Full name.
    pub name: String,
    /// First name.
    pub given_name: String,
    /// Last name.
    pub family_name: String,
    /// Middle name (may be empty, as Doximity sends it).
    pub middle_name: String,
    /// Medical credentials, e.g. `MD`.
    pub credentials: String,
    /// URL of the profile picture.
    pub profile_photo_url: String,
    /// Medical specialty.
    pub specialty: String,
    /// Registered email address: the `email` and `primary_email` claims.
    pub email: String,
    /// The public profile's id (`profile_uuid`), distinct from `sub`.
    pub profile_uuid: String,
    /// Every email address on the account, the primary one first (`emails`).
    pub emails: Vec<String>,
    /// What the account may do on Doximity (`permissions`).
    pub permissions: Vec<String>,
}

const DEFAULT_PHOTO: &str = "https://doximity.com/assets/phone_lists/default-image-907954f09786b801ee41da03c2992ae1c2d75b50190b4460fde6d042025ca4e0.png";

/// The fixed demo set, the same on every start.
pub(crate) fn demo_clinicians() -> Vec<Clinician> {
    let make = |sub: &str,
                profile_uuid: &str,
                given: &str,
                middle: &str,
                family: &str,
                credentials: &str,
                specialty: &str,
                email: &str| {
        let name = if middle.is_empty() {
            format!("{given} {family}")
        } else {
            format!("{given} {middle} {family}")
        };
        Clinician {
            sub: sub.to_owned(),
            name,
            given_name: given.to_owned(),
            family_name: family.to_owned(),
            middle_name: middle.to_owned(),
            credentials: credentials.to_owned(),
            profile_photo_url: DEFAULT_PHOTO.to_owned(),
            specialty: specialty.to_owned(),
            email: email.to_owned(),
            profile_uuid: profile_uuid.to_owned(),
            emails: vec![
                email.to_owned(),
                email.replace("@example.org", "@hospital.example"),
            ],
            permissions: vec!["messaging".to_owned(), "dialer".to_owned()],
        }
    };
    vec![
        make(
            "5b0d9c1e-8f3a-4e52-9c7d-2a61f0b4e813",
            "1f6c2b8e-3d4a-4c9f-8e27-5a0b9d3c7e41",
            "Maria",
            "",
            "Garcia",
            "MD",
            "Cardiology",
            "maria.garcia@example.org",
        ),
        make(
            "c2e4a7f9-1b6d-4d83-a5e0-7f9c3b2d1a64",
            "7d2e9a40-6b1c-4f85-a3d9-0c4e8b7f2a16",
            "James",
            "Adebayo",
            "Okafor",
            "DO",
            "Family Medicine",
            "james.okafor@example.org",
        ),
        make(
            "9a7f3e21-4c5b-4b9e-8d16-e0c2f5a8b397",
            "3b8f1d6a-9e2c-4a70-b5f4-d61a0c9e8b23",
            "Priya",
            "",
            "Raman",
            "NP",
            "Pediatrics",
            "priya.raman@example.org",
        ),
        make(
            "e81b5d4c-2a9f-4f07-b3c8-61d7e9a0f2c5",
            "a4c07e9b-5d3f-4e18-9b2a-8f6d1c3e0a57",
            "Thomas",
            "Lee",
            "Whitfield",
            "MD",
            "Anesthesiology",
            "thomas.whitfield@example.org",
        ),
    ]
}
