//! Scopes, as strings and as types.
//!
//! A [`Scope`] is a marker type naming one OAuth scope, so an extractor can say in its type which
//! scope it needs: `Scoped<ProfileReadBasic>`. The [`scope!`](crate::scope!) macro maps
//! Doximity's documented scope strings to their markers, and
//! [`custom_scope!`](crate::custom_scope!) declares a marker for a scope of your own.
//!
//! ```
//! use doximity::scope::{ProfileReadBasic, Scope, Scopes};
//!
//! assert_eq!(ProfileReadBasic::NAME, "profile:read:basic");
//! assert_eq!(<doximity::scope!("profile:read:basic") as Scope>::NAME, "profile:read:basic");
//!
//! doximity::custom_scope!(
//!     /// A scope of a partner's own.
//!     pub PartnerRead = "partner:read"
//! );
//! assert_eq!(PartnerRead::NAME, "partner:read");
//!
//! let granted: Scopes = "openid profile:read:basic".parse().unwrap();
//! assert!(granted.contains(ProfileReadBasic::NAME));
//! ```

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// One OAuth scope as a type.
pub trait Scope: Send + Sync + 'static {
    /// The scope string, e.g. `profile:read:basic`.
    const NAME: &'static str;
}

macro_rules! doc_scope {
    ($(#[$m:meta])* $name:ident = $value:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub struct $name;
        impl Scope for $name {
            const NAME: &'static str = $value;
        }
    };
}

doc_scope!(
    /// `activities:read:cards`: reads the user's activity cards; no userinfo claim
    /// is documented for it.
    ActivitiesReadCards = "activities:read:cards"
);
doc_scope!(
    /// `activities:read:comments`: reads the user's comments; no userinfo claim
    /// is documented for it.
    ActivitiesReadComments = "activities:read:comments"
);
doc_scope!(
    /// `activities:read:likes`: reads the user's likes; no userinfo claim
    /// is documented for it.
    ActivitiesReadLikes = "activities:read:likes"
);
doc_scope!(
    /// `activities:write:likes`: likes on the user's behalf; no userinfo claim
    /// is documented for it.
    ActivitiesWriteLikes = "activities:write:likes"
);
doc_scope!(
    /// `colleagues:read`: reads the user's colleagues; no userinfo claim
    /// is documented for it.
    ColleaguesRead = "colleagues:read"
);
doc_scope!(
    /// `colleagues:write`: changes the user's colleagues; no userinfo claim
    /// is documented for it.
    ColleaguesWrite = "colleagues:write"
);
doc_scope!(
    /// `dialer`: Doximity Dialer; no userinfo claim
    /// is documented for it.
    Dialer = "dialer"
);
doc_scope!(
    /// `docsgpt:access`: Doximity GPT; no userinfo claim
    /// is documented for it.
    DocsgptAccess = "docsgpt:access"
);
doc_scope!(
    /// `hipaa:identified`: HIPAA-identified access; no userinfo claim
    /// is documented for it.
    HipaaIdentified = "hipaa:identified"
);
doc_scope!(
    /// `jobs:read`: reads job listings; no userinfo claim
    /// is documented for it.
    JobsRead = "jobs:read"
);
doc_scope!(
    /// `login_context:inferred`: the inferred sign-in context; no userinfo claim
    /// is documented for it.
    LoginContextInferred = "login_context:inferred"
);
doc_scope!(
    /// `openid`: the ID token (the smallest scope, and Doximity's default).
    OpenId = "openid"
);
doc_scope!(
    /// `profile:read:basic`: name, credentials, specialty and photo in userinfo
    /// (and `profile_uuid`).
    ProfileReadBasic = "profile:read:basic"
);
doc_scope!(
    /// `profile:read:dialer_phone`: reads the user's Dialer phone number; no userinfo claim
    /// is documented for it.
    ProfileReadDialerPhone = "profile:read:dialer_phone"
);
doc_scope!(
    /// `profile:read:email`: `primary_email` and `emails` in userinfo.
    ProfileReadEmail = "profile:read:email"
);
doc_scope!(
    /// `profile:read:experience`: reads the user's experience; no userinfo claim
    /// is documented for it.
    ProfileReadExperience = "profile:read:experience"
);
doc_scope!(
    /// `profile:read:office`: reads the user's office; no userinfo claim
    /// is documented for it.
    ProfileReadOffice = "profile:read:office"
);
doc_scope!(
    /// `profile:read:permissions`: `permissions` in userinfo.
    ProfileReadPermissions = "profile:read:permissions"
);
doc_scope!(
    /// `profile:read:private_contact`: reads the user's private contact details; no userinfo claim
    /// is documented for it.
    ProfileReadPrivateContact = "profile:read:private_contact"
);
doc_scope!(
    /// `search`: Doximity's search; no userinfo claim
    /// is documented for it.
    Search = "search"
);
doc_scope!(
    /// `sessions:linked`: linked sessions; no userinfo claim
    /// is documented for it.
    SessionsLinked = "sessions:linked"
);

/// The names of the 21 scopes of Doximity's published metadata, one per marker above, in
/// alphabetical order.
///
/// ```
/// assert_eq!(doximity::scope::DOCUMENTED.len(), 21);
/// assert!(doximity::scope::DOCUMENTED.contains(&"profile:read:email"));
/// ```
pub const DOCUMENTED: [&str; 21] = [
    ActivitiesReadCards::NAME,
    ActivitiesReadComments::NAME,
    ActivitiesReadLikes::NAME,
    ActivitiesWriteLikes::NAME,
    ColleaguesRead::NAME,
    ColleaguesWrite::NAME,
    Dialer::NAME,
    DocsgptAccess::NAME,
    HipaaIdentified::NAME,
    JobsRead::NAME,
    LoginContextInferred::NAME,
    OpenId::NAME,
    ProfileReadBasic::NAME,
    ProfileReadDialerPhone::NAME,
    ProfileReadEmail::NAME,
    ProfileReadExperience::NAME,
    ProfileReadOffice::NAME,
    ProfileReadPermissions::NAME,
    ProfileReadPrivateContact::NAME,
    Search::NAME,
    SessionsLinked::NAME,
];

/// Scopes of the older API (`002_*.txt`).
pub mod legacy {
    use super::Scope;

    doc_scope!(
        /// `basic`: the profile through `/api/v1/users/current`.
        Basic = "basic"
    );
    doc_scope!(
        /// `colleagues`: the colleague list.
        Colleagues = "colleagues"
    );
    doc_scope!(
        /// `email`: the registered email address.
        Email = "email"
    );
}

/// Names the marker type of a documented Doximity scope, in type position.
///
/// ```
/// use doximity::scope::Scope;
/// type Needed = doximity::scope!("profile:read:basic");
/// assert_eq!(Needed::NAME, "profile:read:basic");
/// ```
///
/// An undocumented scope string does not compile; declare it with
/// [`custom_scope!`](crate::custom_scope!).
///
/// ```compile_fail
/// type Nope = doximity::scope!("admin:everything");
/// ```
#[macro_export]
macro_rules! scope {
    ("activities:read:cards") => {
        $crate::scope::ActivitiesReadCards
    };
    ("activities:read:comments") => {
        $crate::scope::ActivitiesReadComments
    };
    ("activities:read:likes") => {
        $crate::scope::ActivitiesReadLikes
    };
    ("activities:write:likes") => {
        $crate::scope::ActivitiesWriteLikes
    };
    ("colleagues:read") => {
        $crate::scope::ColleaguesRead
    };
    ("colleagues:write") => {
        $crate::scope::ColleaguesWrite
    };
    ("dialer") => {
        $crate::scope::Dialer
    };
    ("docsgpt:access") => {
        $crate::scope::DocsgptAccess
    };
    ("hipaa:identified") => {
        $crate::scope::HipaaIdentified
    };
    ("jobs:read") => {
        $crate::scope::JobsRead
    };
    ("login_context:inferred") => {
        $crate::scope::LoginContextInferred
    };
    ("openid") => {
        $crate::scope::OpenId
    };
    ("profile:read:basic") => {
        $crate::scope::ProfileReadBasic
    };
    ("profile:read:dialer_phone") => {
        $crate::scope::ProfileReadDialerPhone
    };
    ("profile:read:email") => {
        $crate::scope::ProfileReadEmail
    };
    ("profile:read:experience") => {
        $crate::scope::ProfileReadExperience
    };
    ("profile:read:office") => {
        $crate::scope::ProfileReadOffice
    };
    ("profile:read:permissions") => {
        $crate::scope::ProfileReadPermissions
    };
    ("profile:read:private_contact") => {
        $crate::scope::ProfileReadPrivateContact
    };
    ("search") => {
        $crate::scope::Search
    };
    ("sessions:linked") => {
        $crate::scope::SessionsLinked
    };
    ("basic") => {
        $crate::scope::legacy::Basic
    };
    ("colleagues") => {
        $crate::scope::legacy::Colleagues
    };
    ("email") => {
        $crate::scope::legacy::Email
    };
}

/// Declares a marker type for a scope of your own.
///
/// ```
/// doximity::custom_scope!(
///     /// Our partner scope.
///     pub PartnerRead = "partner:read"
/// );
/// use doximity::scope::Scope;
/// assert_eq!(PartnerRead::NAME, "partner:read");
/// ```
#[macro_export]
macro_rules! custom_scope {
    ($(#[$m:meta])* $vis:vis $name:ident = $value:literal) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        $vis struct $name;
        impl $crate::scope::Scope for $name {
            const NAME: &'static str = $value;
        }
    };
}

/// An ordered set of scope strings, written space-separated on the wire. Kept as that one
/// string (valid tokens, no duplicates, single spaces), so reading a set back allocates once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scopes(String);

impl Scopes {
    /// Just `openid`.
    pub fn openid() -> Self {
        Self(OpenId::NAME.to_owned())
    }

    /// Whether `scope` is in the set.
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// Whether every scope of `other` is in this set.
    pub fn is_superset_of(&self, other: &Scopes) -> bool {
        other.iter().all(|s| self.contains(s))
    }

    /// Adds a scope (no-op when present). Fails on a string that is not a scope token.
    pub fn insert(&mut self, scope: &str) -> Result<(), ConfigError> {
        validate_token(scope)?;
        self.push_valid(scope);
        Ok(())
    }

    /// Adds a scope already known to be a valid token.
    fn push_valid(&mut self, scope: &str) {
        if !self.contains(scope) {
            if !self.0.is_empty() {
                self.0.push(' ');
            }
            self.0.push_str(scope);
        }
    }

    /// The union of two sets, in order.
    #[must_use]
    pub fn union(&self, other: &Scopes) -> Scopes {
        let mut out = self.clone();
        for s in other.iter() {
            out.push_valid(s);
        }
        out
    }

    /// The scopes, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.split(' ').filter(|s| !s.is_empty())
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The set as written on the wire: space-separated, in order.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn validate_token(s: &str) -> Result<(), ConfigError> {
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
    let ok = !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidScope(s.to_owned()))
    }
}

impl std::str::FromStr for Scopes {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = Scopes(String::with_capacity(s.len()));
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            out.insert(token)?;
        }
        Ok(out)
    }
}

impl TryFrom<String> for Scopes {
    type Error = ConfigError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Scopes> for String {
    fn from(s: Scopes) -> String {
        s.0
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_space_separated() {
        let s: Scopes = "openid  profile:read:basic openid".parse().unwrap();
        assert_eq!(s.to_string(), "openid profile:read:basic");
        assert!(s.contains("openid"));
        assert!(!s.contains("search"));
    }

    #[test]
    fn the_empty_set_holds_nothing_and_grows_without_stray_spaces() {
        let mut s = Scopes::default();
        assert!(s.is_empty() && s.iter().next().is_none() && !s.contains(""));
        assert_eq!(" ".parse::<Scopes>().unwrap(), s);
        s.insert("openid").unwrap();
        s.insert("openid").unwrap();
        assert_eq!(s.to_string(), "openid");
        assert_eq!(s.union(&"a b".parse().unwrap()).to_string(), "openid a b");
        assert_eq!(s.iter().collect::<Vec<_>>(), ["openid"]);
    }

    #[test]
    fn rejects_non_scope_tokens() {
        for bad in ["a\"b", "a\\b", "caf\u{e9}", "a\tb", "x\u{7f}"] {
            assert!(bad.parse::<Scopes>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn superset_and_union() {
        let a: Scopes = "openid profile:read:basic".parse().unwrap();
        let b = Scopes::openid();
        assert!(a.is_superset_of(&b));
        assert!(!b.is_superset_of(&a));
        assert_eq!(b.union(&a), a);
    }

    /// The 21 scope names of Doximity's published metadata, as listed there.
    const METADATA_SCOPES: &str = "activities:read:cards activities:read:comments \
        activities:read:likes activities:write:likes colleagues:read colleagues:write dialer \
        docsgpt:access hipaa:identified jobs:read login_context:inferred openid \
        profile:read:basic profile:read:dialer_phone profile:read:email \
        profile:read:experience profile:read:office profile:read:permissions \
        profile:read:private_contact search sessions:linked";

    #[test]
    fn the_markers_cover_exactly_the_21_metadata_scopes() {
        let mut expected: Vec<&str> = METADATA_SCOPES.split_whitespace().collect();
        expected.sort_unstable();
        assert_eq!(expected.len(), 21);
        let mut markers = DOCUMENTED.to_vec();
        markers.sort_unstable();
        markers.dedup();
        assert_eq!(markers, expected);
        // Each name maps back to its marker through `scope!`.
        macro_rules! via_macro {
            ($($name:tt),* $(,)?) => { [$(<crate::scope!($name) as Scope>::NAME),*] };
        }
        let mapped = via_macro!(
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
            "openid",
            "profile:read:basic",
            "profile:read:dialer_phone",
            "profile:read:email",
            "profile:read:experience",
            "profile:read:office",
            "profile:read:permissions",
            "profile:read:private_contact",
            "search",
            "sessions:linked",
        );
        let mut mapped = mapped.to_vec();
        mapped.sort_unstable();
        assert_eq!(mapped, expected);
    }

    #[test]
    fn macro_maps_documented_strings() {
        assert_eq!(<crate::scope!("openid") as Scope>::NAME, "openid");
        assert_eq!(<crate::scope!("search") as Scope>::NAME, "search");
        assert_eq!(<crate::scope!("email") as Scope>::NAME, "email");
    }
}
