//! Authentication: the bearer token, checked against the configured issuers'
//! JWKS with the algorithms the config allows — never what the token asks for.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::issuer::parse_algorithm;
use super::jwks::{IssuerKeys, KeySet};
use super::verified::{VerifiedTokens, VERIFIED_TOKENS_KEPT};

/// Who the caller is, once its token checked out.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) issuer: String,
    pub(crate) subject: String,
    pub(crate) claims: Value,
}

/// Why a token was refused. Messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("bearer token is longer than {MAX_TOKEN_BYTES} bytes")]
    TooLong,
    #[error("more than one Authorization header")]
    Duplicate,
    #[error("Authorization scheme is not Bearer")]
    NotBearer,
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    #[error("token algorithm not allowed")]
    Algorithm,
    #[error("token header uses an unsupported extension")]
    Unsupported,
    #[error("token issuer not accepted")]
    Issuer,
    #[error("no key of the issuer verifies this token")]
    NoKey,
    #[error("token signature invalid")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("token audience not accepted")]
    Audience,
    #[error("token claim {0} missing or invalid")]
    Claim(&'static str),
    /// The issuer's `audience_claim` (named by the config, not the token).
    #[error("token claim {0} missing or invalid")]
    AudienceClaim(String),
}

/// Authentication was not possible at all (no keys yet): answered 503, not 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the keys of issuer {0} are not available yet")]
pub(crate) struct KeysUnavailable(pub String);

#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthFailure {
    #[error(transparent)]
    Rejected(#[from] AuthError),
    #[error(transparent)]
    Unavailable(#[from] KeysUnavailable),
}

/// The longest bearer token read: far beyond any identity provider's access
/// token (1–4 KiB with many groups), far below the 32 KiB request head. A
/// longer one is refused before it is split, decoded or hashed.
pub(crate) const MAX_TOKEN_BYTES: usize = 8192;

/// Takes the token from the one `Authorization: Bearer …` header.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::Missing)?;
    if values.next().is_some() {
        return Err(AuthError::Duplicate);
    }
    let value = value
        .to_str()
        .map_err(|_| AuthError::Malformed("header is not visible ASCII"))?;
    // `Bearer ` with nothing after it arrives trimmed to `Bearer`: a missing token.
    if value.trim().eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::NotBearer);
    }
    let token = token.trim_matches(' ');
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(AuthError::TooLong);
    }
    Ok(token)
}

/// Strict base64url without padding, as JWS requires.
fn decode_segment(segment: &str) -> Result<Vec<u8>, AuthError> {
    if segment.is_empty() {
        return Err(AuthError::Malformed("empty segment"));
    }
    // The engine is strict: only `A-Z a-z 0-9 - _`, no padding, no stray tail bits.
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| AuthError::Malformed("segment is not base64url"))
}

/// Parses a JSON object, refusing duplicate member names at any depth: two
/// parsers that pick different duplicates are how tokens get smuggled.
pub fn parse_strict_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    crate::json::parse_object(bytes).ok()
}

/// The header members the gateway understands; a `crit` naming anything
/// (we implement no critical extension) is refused.
fn check_header(header: &Map<String, Value>) -> Result<Algorithm, AuthError> {
    if header.contains_key("crit") {
        return Err(AuthError::Unsupported);
    }
    if let Some(b64) = header.get("b64") {
        if b64 != &Value::Bool(true) {
            return Err(AuthError::Unsupported);
        }
    }
    if let Some(kid) = header.get("kid") {
        if !kid.is_string() {
            return Err(AuthError::Malformed("kid is not a string"));
        }
    }
    let alg = header.get("alg").and_then(Value::as_str).ok_or(AuthError::Algorithm)?;
    // Exact, case-sensitive names; "none" in any spelling is not among them.
    parse_algorithm(alg).ok_or(AuthError::Algorithm)
}

/// Checks tokens against every configured issuer.
pub(crate) struct Authenticator {
    issuers: Vec<Arc<IssuerKeys>>,
    leeway: Duration,
    /// Tokens that checked out, so a token reused is not verified again.
    verified: VerifiedTokens<Identity>,
}

/// A compact JWS that passed the shape checks, not yet verified.
pub struct CompactJws<'a> {
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    signing_input: &'a str,
    signature: Vec<u8>,
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub payload: Vec<u8>,
}

impl<'a> CompactJws<'a> {
    /// Splits and checks a compact JWS: three strict-base64url segments, a
    /// duplicate-free JSON object header with a supported `alg`, no `crit`.
    pub fn parse(token: &'a str) -> Result<CompactJws<'a>, AuthError> {
        let mut segments = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(AuthError::Malformed("a JWT has three segments"));
        };
        let header_json =
            parse_strict_object(&decode_segment(header)?).ok_or(AuthError::Malformed("header is not a JSON object"))?;
        // An empty payload is a valid JWS (it is no JWT: the claims check refuses it).
        let payload_bytes = if payload.is_empty() {
            Vec::new()
        } else {
            decode_segment(payload)?
        };
        // The signature must be present and canonical base64url too.
        let signature = decode_segment(signature).map_err(|_| AuthError::Signature)?;
        let alg = check_header(&header_json)?;
        let kid = header_json.get("kid").and_then(Value::as_str).map(str::to_owned);
        Ok(CompactJws {
            signing_input: &token[..header.len() + 1 + payload.len()],
            signature,
            alg,
            kid,
            payload: payload_bytes,
        })
    }

    /// Verifies the signature with a key of `keys` that fits the algorithm
    /// (and the `kid`, when the token names one). `allowed` is the issuer's
    /// algorithm list from configuration.
    pub fn verify(&self, keys: &KeySet, allowed: &[Algorithm]) -> Result<(), AuthError> {
        if !allowed.contains(&self.alg) {
            return Err(AuthError::Algorithm);
        }
        let mut candidates = keys
            .keys
            .iter()
            .filter(|k| match &self.kid {
                Some(kid) => k.kid.as_deref() == Some(kid.as_str()),
                None => true,
            })
            .filter(|k| k.fits(self.alg))
            .peekable();
        if candidates.peek().is_none() {
            return Err(AuthError::NoKey);
        }
        for key in candidates {
            // aws-lc-rs with the key parsed at load: fixed-size ECDSA r||s
            // only, so DER or truncated signatures fail, as do r = s = 0; a
            // key aws-lc refused for this algorithm verifies nothing.
            let verified = key
                .verifier(self.alg)
                .is_some_and(|k| k.verify_sig(self.signing_input.as_bytes(), &self.signature).is_ok());
            if verified {
                return Ok(());
            }
        }
        Err(AuthError::Signature)
    }
}

/// Verifies a compact JWS against a key set; the payload on success. The
/// same path the gateway uses for tokens, without the JWT claim rules.
#[cfg(feature = "test-util")]
pub fn verify_jws(token: &str, keys: &KeySet, allowed: &[Algorithm]) -> Result<Vec<u8>, AuthError> {
    let jws = CompactJws::parse(token)?;
    jws.verify(keys, allowed)?;
    Ok(jws.payload)
}

impl Authenticator {
    pub(crate) fn new(issuers: Vec<Arc<IssuerKeys>>, leeway: Duration) -> Self {
        Authenticator {
            issuers,
            leeway,
            verified: VerifiedTokens::new(VERIFIED_TOKENS_KEPT),
        }
    }

    /// Tokens verified and kept.
    #[cfg(feature = "test-util")]
    pub(crate) fn verified_tokens(&self) -> &VerifiedTokens<Identity> {
        &self.verified
    }

    pub(crate) fn issuers(&self) -> &[Arc<IssuerKeys>] {
        &self.issuers
    }

    /// Authenticates a token: shape, issuer, algorithm, key, signature, claims.
    /// A token seen before is answered from [`VerifiedTokens`] while its `exp`
    /// and its issuer's keys allow.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Arc<Identity>, AuthFailure> {
        let now = unix_now();
        if let Some(identity) = self.verified.get(token, now, |i| self.issuers[i].key_generation()) {
            return Ok(identity);
        }
        let jws = CompactJws::parse(token)?;
        let claims = parse_strict_object(&jws.payload).ok_or(AuthError::Malformed("payload is not a JSON object"))?;
        // The issuer chooses which keys to try; it is checked again, exactly,
        // with the other claims once the signature has been verified.
        let iss = claims
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(AuthError::Claim("iss"))?;
        let (index, issuer) = self
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| i.issuer.issuer == iss)
            .ok_or(AuthError::Issuer)?;
        let allowed = &issuer.issuer.algorithms;
        let mut keys = issuer.keys();
        match jws.verify(&keys, allowed) {
            Err(AuthError::NoKey) => {
                // A key we have never seen, or no keys yet: the issuer may have
                // rotated. Ask it again (rate-limited), then look once more.
                // Boxed: a fetch's future is large and this path is rare.
                Box::pin(issuer.refetch_for_unknown_key()).await;
                if !issuer.has_keys() {
                    return Err(KeysUnavailable(issuer.issuer.issuer.clone()).into());
                }
                keys = issuer.keys();
                jws.verify(&keys, allowed)?;
            }
            other => other?,
        }
        let (identity, exp) = self.check_claims(issuer, claims, now)?;
        let identity = Arc::new(identity);
        let usable_until = exp.saturating_add(self.leeway.as_secs() as i64).saturating_add(1);
        self.verified
            .insert(token, identity.clone(), usable_until, index, keys.generation, now);
        Ok(identity)
    }

    /// The claim rules we enforce ourselves, on the claims as we parsed them
    /// (duplicate-free), so nothing depends on another parser's leniency.
    /// The identity and the token's `exp`.
    fn check_claims(
        &self,
        issuer: &IssuerKeys,
        claims: Map<String, Value>,
        now: i64,
    ) -> Result<(Identity, i64), AuthError> {
        let leeway = self.leeway.as_secs() as i64;
        if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.issuer.as_str()) {
            return Err(AuthError::Issuer);
        }
        let exp = numeric_date(claims.get("exp")).ok_or(AuthError::Claim("exp"))?;
        if exp + leeway < now {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = claims.get("nbf") {
            if numeric_date(Some(nbf)).ok_or(AuthError::Claim("nbf"))? > now + leeway {
                return Err(AuthError::NotYetValid);
            }
        }
        if let Some(iat) = claims.get("iat") {
            if numeric_date(Some(iat)).ok_or(AuthError::Claim("iat"))? > now + leeway {
                return Err(AuthError::NotYetValid);
            }
        }
        let audience_claim = issuer.issuer.audience_claim.as_str();
        let audiences: HashSet<&str> = match claims.get(audience_claim) {
            Some(Value::String(a)) => HashSet::from([a.as_str()]),
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
            _ => return Err(AuthError::AudienceClaim(audience_claim.to_owned())),
        };
        if !issuer.issuer.audiences.iter().any(|a| audiences.contains(a.as_str())) {
            return Err(AuthError::Audience);
        }
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Claim("sub"))?
            .to_owned();
        Ok((
            Identity {
                issuer: issuer.issuer.issuer.clone(),
                subject,
                claims: Value::Object(claims),
            },
            exp,
        ))
    }
}

/// A NumericDate: a JSON integer (or a whole float) of seconds, within reason.
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64
}

fn numeric_date(v: Option<&Value>) -> Option<i64> {
    let n = v?.as_number()?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    (f.is_finite() && f.abs() < 1e15).then_some(f.floor() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_bearer_token_longer_than_8_kib_is_refused_before_it_is_read() {
        let at_limit = "a".repeat(MAX_TOKEN_BYTES);
        let header = format!("Bearer {at_limit}");
        assert_eq!(bearer_token(&headers(&[&header])), Ok(at_limit.as_str()));
        let header = format!("Bearer {at_limit}b");
        assert_eq!(bearer_token(&headers(&[&header])), Err(AuthError::TooLong));
        assert_eq!(AuthError::TooLong.to_string(), "bearer token is longer than 8192 bytes");
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token(&headers(&["bEaReR a.b.c"])), Ok("a.b.c"));
    }

    #[test]
    fn missing_duplicate_and_other_schemes_are_refused() {
        assert_eq!(bearer_token(&headers(&[])), Err(AuthError::Missing));
        assert_eq!(
            bearer_token(&headers(&["Bearer a.b.c", "Bearer a.b.c"])),
            Err(AuthError::Duplicate)
        );
        assert_eq!(
            bearer_token(&headers(&["Basic dXNlcjpwYXNz"])),
            Err(AuthError::NotBearer)
        );
        assert_eq!(bearer_token(&headers(&["Bearer"])), Err(AuthError::Missing));
        assert_eq!(bearer_token(&headers(&["Bearerx"])), Err(AuthError::NotBearer));
        assert_eq!(bearer_token(&headers(&["Bearer "])), Err(AuthError::Missing));
    }

    #[test]
    fn segments_must_be_strict_base64url() {
        assert!(decode_segment("eyJhIjoxfQ").is_ok());
        assert!(decode_segment("eyJhIjoxfQ==").is_err());
        assert!(decode_segment("ab+/").is_err());
        assert!(decode_segment("eyJhIjoxfR").is_err(), "non-canonical tail bits");
        assert!(decode_segment("").is_err());
    }

    #[test]
    fn duplicate_json_members_are_refused_at_any_depth() {
        assert!(parse_strict_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_strict_object(br#"{"a":{"b":1,"b":1}}"#).is_none());
        assert!(parse_strict_object(br#"[1]"#).is_none());
        assert!(parse_strict_object(br#"{"a":[{"b":1}]}"#).is_some());
    }

    #[test]
    fn header_checks() {
        let h = |s: &str| parse_strict_object(s.as_bytes()).unwrap();
        assert_eq!(check_header(&h(r#"{"alg":"ES256"}"#)), Ok(Algorithm::ES256));
        assert_eq!(check_header(&h(r#"{"alg":"none"}"#)), Err(AuthError::Algorithm));
        assert_eq!(check_header(&h(r#"{"alg":"es256"}"#)), Err(AuthError::Algorithm));
        assert_eq!(check_header(&h(r#"{"alg":"HS256"}"#)), Err(AuthError::Algorithm));
        assert_eq!(check_header(&h(r#"{}"#)), Err(AuthError::Algorithm));
        assert_eq!(
            check_header(&h(r#"{"alg":"ES256","crit":["exp"]}"#)),
            Err(AuthError::Unsupported)
        );
        assert_eq!(
            check_header(&h(r#"{"alg":"ES256","b64":false}"#)),
            Err(AuthError::Unsupported)
        );
        assert!(check_header(&h(r#"{"alg":"ES256","kid":7}"#)).is_err());
    }

    #[test]
    fn numeric_dates() {
        assert_eq!(numeric_date(Some(&serde_json::json!(5))), Some(5));
        assert_eq!(numeric_date(Some(&serde_json::json!(5.5))), Some(5));
        assert_eq!(numeric_date(Some(&serde_json::json!("5"))), None);
        assert_eq!(numeric_date(Some(&serde_json::json!(1e300))), None);
    }
}
