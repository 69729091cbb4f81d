//! An identity provider the gateway trusts, as configuration resolves it.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(String),
    File(PathBuf),
    /// OIDC discovery: `jwks_uri` from `{issuer}/.well-known/openid-configuration`,
    /// asked again on every refresh.
    Discovery,
}

/// An issuer, checked and ready to use.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// The claim checked against `audiences`: `aud`, or e.g. `client_id` for
    /// Cognito access tokens, which carry no `aud`.
    pub audience_claim: String,
    pub algorithms: Vec<Algorithm>,
    pub keys: KeySource,
    pub jwks_refresh: Duration,
}

/// The URL of an issuer's OIDC discovery document (OpenID Connect Discovery
/// 1.0 §4: the issuer, without a trailing slash, then the well-known path).
pub(crate) fn discovery_url(issuer: &str) -> String {
    format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'))
}

/// Whether a URL may be fetched for keys: https, or http to a loopback host
/// only (a stand-in in tests, a local agent); never plain http across a network.
pub(crate) fn is_safe_key_url(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            host.eq_ignore_ascii_case("localhost") || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        _ => false,
    }
}

/// The algorithms an issuer may list. Only asymmetric ones: a JWKS is public, so
/// an HMAC "key" from it would let anyone forge tokens.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_url_drops_the_issuers_trailing_slash() {
        assert_eq!(
            discovery_url("https://tenant.us.auth0.com/"),
            "https://tenant.us.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://example.okta.com/oauth2/default"),
            "https://example.okta.com/oauth2/default/.well-known/openid-configuration"
        );
    }

    #[test]
    fn key_urls_are_https_or_loopback_http() {
        assert!(is_safe_key_url("https://idp.example.com/keys"));
        assert!(is_safe_key_url("http://127.0.0.1:8080/keys"));
        assert!(is_safe_key_url("http://[::1]:8080/keys"));
        assert!(is_safe_key_url("http://localhost/keys"));
        assert!(!is_safe_key_url("http://idp.example.com/keys"));
        assert!(!is_safe_key_url("http://10.0.0.1/keys"));
        assert!(!is_safe_key_url("ftp://idp.example.com/keys"));
        assert!(!is_safe_key_url("not a url"));
    }
}
