//! An identity provider the gateway trusts, as configuration resolves it.

use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(String),
    File(PathBuf),
}

/// An issuer, checked and ready to use.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub keys: KeySource,
    pub jwks_refresh: Duration,
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
