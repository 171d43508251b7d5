//! ID-token and userinfo claims, and the rules they must keep (Step 6, Requesting User Info).
//!
//! The rules are pure functions of the claims, the expectations and the clock, so each one is
//! tested on its own, table-driven, without a socket.

use openidconnect::AccessTokenHash;
use openidconnect::core::{CoreJsonWebKey, CoreJwsSigningAlgorithm};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::JwtError;
use crate::secret::{AccessToken, Nonce, ct_eq};
use crate::text::escape;

/// The claims an ID token's own fields hold; every other claim stays in `additional`.
pub(crate) const REGISTERED: [&str; 9] = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
];

/// The `acr` claim: Doximity's own gem shows it as a number (`"acr" => 2`), the OpenID spec as
/// a string. Both are accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Acr {
    /// A numeric level, as Doximity sends it.
    Number(serde_json::Number),
    /// A string, as the OpenID spec has it.
    String(String),
}

impl Acr {
    /// The value as text: `2` for the number 2, the string as sent.
    pub fn as_text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Self::Number(n) => std::borrow::Cow::Owned(n.to_string()),
            Self::String(s) => std::borrow::Cow::Borrowed(s),
        }
    }

    /// Whether this authentication context satisfies a requested `acr` value: the same value
    /// (the number 2 and the string `"2"` are the same), or, when both are whole numbers,
    /// a level at least as high. Doximity advertises the levels `"1"`, `"2"` and `"3"`, so
    /// an ID token with `acr: 3` satisfies a request for `"2"`, and `acr: 1` does not.
    ///
    /// ```
    /// use doximity::claims::Acr;
    /// let two = Acr::Number(2.into());
    /// assert!(two.satisfies("2") && two.satisfies("1"));
    /// assert!(!two.satisfies("3"));
    /// assert!(Acr::String("2".into()).satisfies("2"));
    /// assert!(!Acr::String("urn:x:mfa".into()).satisfies("2"));
    /// assert!(Acr::String("urn:x:mfa".into()).satisfies("urn:x:mfa"));
    /// ```
    pub fn satisfies(&self, wanted: &str) -> bool {
        let actual = self.as_text();
        if actual == wanted {
            return true;
        }
        match (actual.parse::<u64>(), wanted.parse::<u64>()) {
            (Ok(a), Ok(w)) => a >= w,
            _ => false,
        }
    }
}

impl std::fmt::Display for Acr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_text())
    }
}

/// Whether an ID token meets the authentication a login asked for (OpenID Connect Core
/// 3.1.2.1, RFC 9470): with `acr_values`, its `acr` must be present and
/// [satisfy](Acr::satisfies) one of them; with `max_age`, its `auth_time` must be present,
/// not in the future, and at most `max_age` seconds (plus the clock leeway) before `now`.
///
/// ```
/// use doximity::claims::{IdTokenClaims, check_authentication};
/// # let token = serde_json::json!({"iss": "https://auth.doximity.com", "sub": "u",
/// #   "aud": ["cid"], "exp": 2000, "iat": 1000, "auth_time": 1000, "acr": 2});
/// let claims: IdTokenClaims = serde_json::from_value(token).unwrap();
/// assert!(check_authentication(&claims, &["2".to_owned()], Some(300), 1200, 60).is_ok());
/// assert!(check_authentication(&claims, &["3".to_owned()], None, 1200, 60).is_err());
/// assert!(check_authentication(&claims, &[], Some(300), 1400, 60).is_err());
/// ```
///
/// # Errors
///
/// [`JwtError::AcrNotSatisfied`], [`JwtError::AuthenticationTooOld`], or
/// [`JwtError::MissingClaim`] for a missing `acr` or `auth_time`.
pub fn check_authentication(
    claims: &IdTokenClaims,
    acr_values: &[String],
    max_age: Option<u64>,
    now: i64,
    leeway: i64,
) -> Result<(), JwtError> {
    if !acr_values.is_empty() {
        let acr = claims.acr.as_ref().ok_or(JwtError::MissingClaim("acr"))?;
        if !acr_values.iter().any(|wanted| acr.satisfies(wanted)) {
            return Err(JwtError::AcrNotSatisfied {
                requested: acr_values.join(" "),
                actual: escape(&acr.as_text()),
            });
        }
    }
    if let Some(max_age) = max_age {
        let auth_time = claims
            .auth_time
            .ok_or(JwtError::MissingClaim("auth_time"))?;
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        if auth_time > now.saturating_add(leeway)
            || now.saturating_sub(auth_time) > max_age.saturating_add(leeway)
        {
            return Err(JwtError::AuthenticationTooOld {
                auth_time,
                max_age,
                now,
            });
        }
    }
    Ok(())
}

/// The verified claims of an ID token. Its `Debug` hides the nonce.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdTokenClaims {
    /// Issuer.
    pub iss: String,
    /// The user's Doximity id (a `UUIDv4`).
    pub sub: String,
    /// Audiences: the issuer and our client id.
    pub aud: Vec<String>,
    /// Authorized party: our client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// Expiry, epoch seconds.
    pub exp: i64,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// When the user authenticated, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The nonce of the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// Authentication context class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<Acr>,
    /// Every other claim, kept as sent.
    #[serde(flatten)]
    pub additional: Map<String, Value>,
}

impl std::fmt::Debug for IdTokenClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("azp", &self.azp)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("auth_time", &self.auth_time)
            .field("nonce", &self.nonce.as_ref().map(|_| "[redacted]"))
            .field("acr", &self.acr)
            .field("additional", &self.additional)
            .finish()
    }
}

/// The verified claims of the signed userinfo response. Which claims are present depends on
/// the granted scopes: the profile claims need `profile:read:basic`, the email claims
/// `profile:read:email`, `permissions` `profile:read:permissions`. Doximity does not document
/// the shape of `profile_uuid`, `primary_email`, `emails` and `permissions`: each is read as a
/// string (a list of strings for the lists) and is `None` when sent in another shape, so an
/// unexpected shape never fails the userinfo call.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UserInfo {
    /// The user's Doximity id.
    pub sub: String,
    /// Full name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    /// Middle name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    /// Medical credentials, e.g. `MD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<String>,
    /// Profile picture URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_photo_url: Option<String>,
    /// Medical specialty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    /// The public profile's id (`profile_uuid`), distinct from `sub`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub profile_uuid: Option<String>,
    /// The primary email address (`primary_email`); needs `profile:read:email`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub primary_email: Option<String>,
    /// Every email address on the account (`emails`); needs `profile:read:email`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub emails: Option<Vec<String>>,
    /// What the account may do (`permissions`); needs `profile:read:permissions`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient"
    )]
    pub permissions: Option<Vec<String>>,
    /// Every other claim (including `iss` and `aud`), kept as sent.
    #[serde(flatten)]
    pub additional: Map<String, Value>,
}

/// An undocumented claim: `Some` when it has the expected shape, `None` otherwise.
fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// What a verified token must match.
pub(crate) struct Expect<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) now: i64,
    pub(crate) leeway: i64,
}

fn str_claim<'m>(m: &'m Map<String, Value>, name: &'static str) -> Result<&'m str, JwtError> {
    match m.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        _ => Err(JwtError::MissingClaim(name)),
    }
}

fn opt_str_claim(m: &Map<String, Value>, name: &'static str) -> Result<Option<String>, JwtError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(JwtError::MissingClaim(name)),
    }
}

fn time_claim(m: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    match m.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(JwtError::MissingClaim(name)),
        Some(_) => Err(JwtError::MissingClaim(name)),
    }
}

fn audiences(m: &Map<String, Value>) -> Result<Vec<String>, JwtError> {
    match m.get("aud") {
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or(JwtError::MissingClaim("aud"))
            })
            .collect(),
        _ => Err(JwtError::MissingClaim("aud")),
    }
}

/// `iss` exact; `aud` holds our client id and nothing else but the issuer.
fn check_issuer_and_audience(
    m: &Map<String, Value>,
    e: &Expect<'_>,
) -> Result<Vec<String>, JwtError> {
    let iss = str_claim(m, "iss")?;
    if iss != e.issuer {
        return Err(JwtError::IssuerMismatch {
            expected: e.issuer.to_owned(),
            actual: escape(iss),
        });
    }
    let aud = audiences(m)?;
    if !aud.iter().any(|a| a == e.client_id) {
        return Err(JwtError::AudienceMissingClient {
            actual: aud.iter().take(8).map(|a| escape(a)).collect(),
        });
    }
    if let Some(other) = aud.iter().find(|a| *a != e.client_id && *a != e.issuer) {
        return Err(JwtError::UntrustedAudience(escape(other)));
    }
    Ok(aud)
}

/// Checks an ID token's claims (signature already verified with `key`).
///
/// `nonce`: the login's nonce, required and compared (code exchange); `None` for a refresh.
/// `access_token`: checked against `at_hash` when the token carries one.
pub(crate) fn check_id_token(
    m: Map<String, Value>,
    e: &Expect<'_>,
    key: &CoreJsonWebKey,
    nonce: Option<&Nonce>,
    access_token: Option<&AccessToken>,
) -> Result<IdTokenClaims, JwtError> {
    let aud = check_issuer_and_audience(&m, e)?;
    let azp = opt_str_claim(&m, "azp")?;
    match &azp {
        Some(azp) if azp != e.client_id => {
            return Err(JwtError::AuthorizedPartyMismatch {
                expected: e.client_id.to_owned(),
                actual: escape(azp),
            });
        }
        None if aud.len() > 1 => return Err(JwtError::MissingAuthorizedParty),
        _ => {}
    }
    let exp = time_claim(&m, "exp")?.ok_or(JwtError::MissingClaim("exp"))?;
    if e.now > exp.saturating_add(e.leeway) {
        return Err(JwtError::Expired { exp, now: e.now });
    }
    let iat = time_claim(&m, "iat")?.ok_or(JwtError::MissingClaim("iat"))?;
    if iat > e.now.saturating_add(e.leeway) {
        return Err(JwtError::IssuedInFuture { iat, now: e.now });
    }
    let sub = str_claim(&m, "sub")?.to_owned();
    let token_nonce = opt_str_claim(&m, "nonce")?;
    if let Some(expected) = nonce {
        let got = token_nonce.as_deref().ok_or(JwtError::MissingNonce)?;
        if !ct_eq(got, expected.secret()) {
            return Err(JwtError::NonceMismatch);
        }
    }
    if let (Some(at_hash), Some(token)) = (opt_str_claim(&m, "at_hash")?, access_token) {
        let expected =
            AccessTokenHash::from_token(token, &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, key)
                .map_err(|_| JwtError::AccessTokenHashMismatch)?;
        if !ct_eq(&at_hash, expected.as_str()) {
            return Err(JwtError::AccessTokenHashMismatch);
        }
    }
    let auth_time = time_claim(&m, "auth_time")?;
    let acr = match m.get("acr") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(Acr::Number(n.clone())),
        Some(Value::String(s)) => Some(Acr::String(s.clone())),
        Some(_) => return Err(JwtError::MissingClaim("acr")),
    };
    let mut additional = m;
    for k in REGISTERED {
        additional.remove(k);
    }
    Ok(IdTokenClaims {
        iss: e.issuer.to_owned(),
        sub,
        aud,
        azp,
        exp,
        iat,
        auth_time,
        nonce: token_nonce,
        acr,
        additional,
    })
}

/// The extra rules of a refreshed ID token: same `iss`, `sub` and `aud` as before, and no
/// different nonce (OpenID Connect Core §12.2).
pub(crate) fn check_refreshed(
    new: &IdTokenClaims,
    previous: &IdTokenClaims,
) -> Result<(), JwtError> {
    if new.iss != previous.iss {
        return Err(JwtError::RefreshChangedClaim("iss"));
    }
    if new.sub != previous.sub {
        return Err(JwtError::RefreshChangedClaim("sub"));
    }
    let mut a = new.aud.clone();
    let mut b = previous.aud.clone();
    a.sort();
    b.sort();
    if a != b {
        return Err(JwtError::RefreshChangedClaim("aud"));
    }
    if let Some(nonce) = &new.nonce
        && previous.nonce.as_deref().is_none_or(|p| !ct_eq(p, nonce))
    {
        return Err(JwtError::RefreshChangedClaim("nonce"));
    }
    Ok(())
}

/// Checks the signed userinfo claims: `iss`, `aud` as for the ID token, and `sub` equal to
/// the session's.
pub(crate) fn check_userinfo(
    m: Map<String, Value>,
    e: &Expect<'_>,
    expected_sub: &str,
) -> Result<UserInfo, JwtError> {
    check_issuer_and_audience(&m, e)?;
    let sub = str_claim(&m, "sub")?;
    if sub != expected_sub {
        return Err(JwtError::SubjectMismatch {
            expected: expected_sub.to_owned(),
            actual: escape(sub),
        });
    }
    if let Some(exp) = time_claim(&m, "exp")?
        && e.now > exp.saturating_add(e.leeway)
    {
        return Err(JwtError::Expired { exp, now: e.now });
    }
    serde_json::from_value(Value::Object(m)).map_err(|_| JwtError::MissingClaim("profile claims"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ISS: &str = "https://auth.doximity.com";
    const CID: &str = "client-1";

    fn expect() -> Expect<'static> {
        Expect {
            issuer: ISS,
            client_id: CID,
            now: 1_600_000_000,
            leeway: 30,
        }
    }

    fn key() -> CoreJsonWebKey {
        serde_json::from_value(json!({"kty": "RSA", "kid": "k", "n": "AQAB", "e": "AQAB"})).unwrap()
    }

    fn good() -> Map<String, Value> {
        json!({
            "iss": ISS, "sub": "00000000-0000-4000-8000-000000000000", "aud": [ISS, CID],
            "azp": CID, "exp": 1_600_001_800, "iat": 1_600_000_000, "auth_time": 1_599_999_990,
            "nonce": "n-1", "acr": 2, "extra": "kept",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn check(m: Map<String, Value>) -> Result<IdTokenClaims, JwtError> {
        check_id_token(m, &expect(), &key(), Some(&Nonce::new("n-1".into())), None)
    }

    fn with(k: &str, v: Value) -> Map<String, Value> {
        let mut m = good();
        m.insert(k.into(), v);
        m
    }

    fn without(k: &str) -> Map<String, Value> {
        let mut m = good();
        m.remove(k);
        m
    }

    /// Each row: claims, `acr_values`, `max_age`, and whether the token meets the request.
    /// `now` is `1_600_000_000`, `auth_time` 10 s before, leeway 30 s.
    #[test]
    fn authentication_must_meet_what_the_login_asked_for() {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        type Row = (
            Map<String, Value>,
            Vec<String>,
            Option<u64>,
            Result<(), &'static str>,
        );
        let rows: Vec<Row> = vec![
            (good(), v(&[]), None, Ok(())),
            (good(), v(&["2"]), None, Ok(())),
            (good(), v(&["1"]), None, Ok(())),
            (good(), v(&["3"]), None, Err("acr")),
            (good(), v(&["3", "2"]), None, Ok(())),
            (with("acr", json!(3)), v(&["3"]), None, Ok(())),
            (with("acr", json!("3")), v(&["2"]), None, Ok(())),
            (with("acr", json!(1)), v(&["2"]), None, Err("acr")),
            (with("acr", json!("urn:x")), v(&["2"]), None, Err("acr")),
            (without("acr"), v(&["1"]), None, Err("missing acr")),
            (without("acr"), v(&[]), Some(60), Ok(())),
            (good(), v(&[]), Some(10), Ok(())),
            (good(), v(&[]), Some(0), Ok(())), // 10 s old, within the 30 s leeway
            (
                with("auth_time", json!(1_599_999_000)),
                v(&[]),
                Some(300),
                Err("old"),
            ),
            (
                with("auth_time", json!(1_599_999_000)),
                v(&[]),
                Some(1000),
                Ok(()),
            ),
            (
                with("auth_time", json!(1_600_000_100)),
                v(&[]),
                Some(300),
                Err("old"),
            ),
            (
                without("auth_time"),
                v(&[]),
                Some(300),
                Err("missing auth_time"),
            ),
            (without("auth_time"), v(&["2"]), None, Ok(())),
        ];
        for (i, (m, acr_values, max_age, want)) in rows.into_iter().enumerate() {
            let claims = check(m).unwrap();
            let got = check_authentication(&claims, &acr_values, max_age, 1_600_000_000, 30);
            match (want, got) {
                (Ok(()), Ok(())) => {}
                (Err("acr"), Err(JwtError::AcrNotSatisfied { requested, .. })) => {
                    assert_eq!(requested, acr_values.join(" "), "row {i}");
                }
                (Err("old"), Err(JwtError::AuthenticationTooOld { max_age: m, .. })) => {
                    assert_eq!(Some(m.unsigned_abs()), max_age, "row {i}");
                }
                (Err("missing acr"), Err(JwtError::MissingClaim("acr")))
                | (Err("missing auth_time"), Err(JwtError::MissingClaim("auth_time"))) => {}
                (want, got) => panic!("row {i}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn acr_text_from_the_network_is_escaped_in_the_error() {
        let claims = check(with("acr", json!("x\n2026 INFO forged"))).unwrap();
        let e = check_authentication(&claims, &["2".into()], None, 1_600_000_000, 30)
            .unwrap_err()
            .to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn accepts_doximity_shaped_token_with_numeric_acr() {
        let c = check(good()).unwrap();
        assert_eq!(c.acr, Some(Acr::Number(2.into())));
        assert_eq!(c.additional["extra"], "kept");
        assert!(check(with("acr", json!("2"))).is_ok());
        assert!(check(with("aud", json!(CID))).is_ok_and(|c| c.aud == [CID]));
    }

    #[test]
    #[allow(clippy::type_complexity)]
    fn each_rule_rejects_its_violation() {
        use JwtError as E;
        let cases: Vec<(&str, Map<String, Value>, fn(&JwtError) -> bool)> = vec![
            (
                "wrong iss",
                with("iss", json!("https://evil.example")),
                |e| matches!(e, E::IssuerMismatch { .. }),
            ),
            (
                "iss trailing slash",
                with("iss", json!(format!("{ISS}/"))),
                |e| matches!(e, E::IssuerMismatch { .. }),
            ),
            ("no iss", without("iss"), |e| {
                matches!(e, E::MissingClaim("iss"))
            }),
            ("aud lacks us", with("aud", json!([ISS, "other"])), |e| {
                matches!(e, E::AudienceMissingClient { .. })
            }),
            (
                "extra aud",
                with("aud", json!([ISS, CID, "https://evil.example"])),
                |e| matches!(e, E::UntrustedAudience(_)),
            ),
            ("no aud", without("aud"), |e| {
                matches!(e, E::MissingClaim("aud"))
            }),
            ("empty aud", with("aud", json!([])), |e| {
                matches!(e, E::MissingClaim("aud"))
            }),
            ("azp other", with("azp", json!("other")), |e| {
                matches!(e, E::AuthorizedPartyMismatch { .. })
            }),
            ("azp missing", without("azp"), |e| {
                matches!(e, E::MissingAuthorizedParty)
            }),
            ("expired", with("exp", json!(1_600_000_000 - 31)), |e| {
                matches!(e, E::Expired { .. })
            }),
            ("no exp", without("exp"), |e| {
                matches!(e, E::MissingClaim("exp"))
            }),
            ("exp string", with("exp", json!("1600001800")), |e| {
                matches!(e, E::MissingClaim("exp"))
            }),
            ("iat future", with("iat", json!(1_600_000_000 + 31)), |e| {
                matches!(e, E::IssuedInFuture { .. })
            }),
            ("no iat", without("iat"), |e| {
                matches!(e, E::MissingClaim("iat"))
            }),
            ("no sub", without("sub"), |e| {
                matches!(e, E::MissingClaim("sub"))
            }),
            ("empty sub", with("sub", json!("")), |e| {
                matches!(e, E::MissingClaim("sub"))
            }),
            ("no nonce", without("nonce"), |e| {
                matches!(e, E::MissingNonce)
            }),
            ("wrong nonce", with("nonce", json!("n-2")), |e| {
                matches!(e, E::NonceMismatch)
            }),
            ("acr object", with("acr", json!({"x": 1})), |e| {
                matches!(e, E::MissingClaim("acr"))
            }),
        ];
        for (name, claims, is_expected) in cases {
            match check(claims) {
                Err(e) => assert!(is_expected(&e), "{name}: wrong error {e:?}"),
                Ok(_) => panic!("{name}: accepted"),
            }
        }
    }

    #[test]
    fn leeway_is_small_and_applied() {
        assert!(check(with("exp", json!(1_600_000_000 - 29))).is_ok());
        assert!(check(with("iat", json!(1_600_000_000 + 29))).is_ok());
    }

    #[test]
    fn at_hash_is_checked_when_present() {
        let token = AccessToken::new("access-token-1".into());
        let good_hash = AccessTokenHash::from_token(
            &token,
            &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            &key(),
        )
        .unwrap();
        let nonce = Nonce::new("n-1".into());
        let ok = with("at_hash", json!(good_hash.as_str()));
        assert!(check_id_token(ok, &expect(), &key(), Some(&nonce), Some(&token)).is_ok());
        let bad = with("at_hash", json!("AAAAAAAAAAAAAAAAAAAAAA"));
        assert!(matches!(
            check_id_token(bad, &expect(), &key(), Some(&nonce), Some(&token)),
            Err(JwtError::AccessTokenHashMismatch)
        ));
    }

    #[test]
    fn refresh_must_keep_identity() {
        let prev = check(good()).unwrap();
        let refreshed = |k: &str, v: Value| {
            let mut m = with(k, v);
            m.remove("nonce");
            check_id_token(m, &expect(), &key(), None, None).unwrap()
        };
        assert!(check_refreshed(&refreshed("extra", json!(1)), &prev).is_ok());
        assert!(matches!(
            check_refreshed(&refreshed("sub", json!("someone-else")), &prev),
            Err(JwtError::RefreshChangedClaim("sub"))
        ));
        let mut other_aud = refreshed("extra", json!(1));
        other_aud.aud = vec![CID.into()];
        assert!(matches!(
            check_refreshed(&other_aud, &prev),
            Err(JwtError::RefreshChangedClaim("aud"))
        ));
        let mut other_iss = refreshed("extra", json!(1));
        other_iss.iss = "https://other.example".into();
        assert!(matches!(
            check_refreshed(&other_iss, &prev),
            Err(JwtError::RefreshChangedClaim("iss"))
        ));
        let same_nonce = check(good()).unwrap();
        assert!(check_refreshed(&same_nonce, &prev).is_ok());
        let mut new_nonce = refreshed("extra", json!(1));
        new_nonce.nonce = Some("n-9".into());
        assert!(matches!(
            check_refreshed(&new_nonce, &prev),
            Err(JwtError::RefreshChangedClaim("nonce"))
        ));
    }

    #[test]
    fn userinfo_rules() {
        let m = json!({"iss": ISS, "aud": [ISS, CID], "sub": "u-1", "name": "John Doe",
                       "specialty": "Anesthesiology", "npi": "123"})
        .as_object()
        .unwrap()
        .clone();
        let u = check_userinfo(m.clone(), &expect(), "u-1").unwrap();
        assert_eq!(u.name.as_deref(), Some("John Doe"));
        assert_eq!(u.additional["npi"], "123");
        assert!(matches!(
            check_userinfo(m.clone(), &expect(), "u-2"),
            Err(JwtError::SubjectMismatch { .. })
        ));
        assert_eq!(u.primary_email, None);
        assert_eq!(u.emails, None);
        assert_eq!(u.permissions, None);
        assert_eq!(u.profile_uuid, None);
        let mut bad = m;
        bad.insert("iss".into(), json!("https://evil.example"));
        assert!(matches!(
            check_userinfo(bad, &expect(), "u-1"),
            Err(JwtError::IssuerMismatch { .. })
        ));
    }

    #[test]
    fn userinfo_types_the_email_permission_and_profile_id_claims_and_keeps_the_rest() {
        let mut m = json!({"iss": ISS, "aud": [ISS, CID], "sub": "u-1",
            "profile_uuid": "p-1", "primary_email": "a@example.org",
            "emails": ["a@example.org", "b@example.org"], "permissions": ["messaging"],
            "office_phone": "555"})
        .as_object()
        .unwrap()
        .clone();
        let u = check_userinfo(m.clone(), &expect(), "u-1").unwrap();
        assert_eq!(u.profile_uuid.as_deref(), Some("p-1"));
        assert_eq!(u.primary_email.as_deref(), Some("a@example.org"));
        assert_eq!(
            u.emails.as_deref(),
            Some(&["a@example.org".to_owned(), "b@example.org".to_owned()][..])
        );
        assert_eq!(
            u.permissions.as_deref(),
            Some(&["messaging".to_owned()][..])
        );
        assert_eq!(u.additional["office_phone"], "555");
        for typed in ["profile_uuid", "primary_email", "emails", "permissions"] {
            assert!(
                !u.additional.contains_key(typed),
                "{typed} also in additional"
            );
        }
        // Serialised back, the typed claims keep their names (the session stores this form).
        let back = serde_json::to_value(&u).unwrap();
        assert_eq!(back["emails"][1], "b@example.org");
        assert_eq!(back["primary_email"], "a@example.org");
        // An undocumented shape is not an error: the typed field is just empty.
        m.insert("emails".into(), json!([{"address": "a@example.org"}]));
        m.insert("permissions".into(), json!("messaging"));
        let odd = check_userinfo(m, &expect(), "u-1").unwrap();
        assert_eq!((odd.emails, odd.permissions), (None, None));
        assert_eq!(odd.primary_email.as_deref(), Some("a@example.org"));
    }
}
