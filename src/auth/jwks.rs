//! Issuers' signing keys: JWKS parsing, fetching at start, background refresh,
//! and one early refetch per 30 s when a token names a key we do not hold.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaPublicKeyComponents};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::Value;

use super::issuer::{discovery_url, is_safe_key_url, Issuer, KeySource};
use crate::http::client::{self as http_client, HttpClient};
use crate::telemetry::metrics::Metrics;

/// How often an unknown `kid` may trigger a fetch ahead of schedule.
pub(crate) const EARLY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How soon to retry while an issuer has never answered.
const EMPTY_RETRY: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 512 * 1024;
const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Every algorithm a JWKS key may be used with.
const VERIFYING_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A public key from a JWKS, ready to verify with: parsed into aws-lc's
/// verifying form once, when the key set is loaded, for each algorithm the
/// key may verify — never rebuilt per token.
pub struct VerificationKey {
    pub kid: Option<String>,
    pub jwk: Jwk,
    verifiers: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerificationKey {
    fn new(jwk: Jwk, key: &DecodingKey) -> VerificationKey {
        let mut verifying = VerificationKey {
            kid: jwk.common.key_id.clone(),
            jwk,
            verifiers: Vec::new(),
        };
        verifying.verifiers = VERIFYING_ALGORITHMS
            .into_iter()
            .filter(|alg| verifying.fits(*alg))
            .filter_map(|alg| Some((alg, parsed_key(key, alg)?)))
            .collect();
        verifying
    }

    /// Whether the JWK itself allows verifying signatures (`use`, `key_ops`).
    pub fn may_verify(&self) -> bool {
        let common = &self.jwk.common;
        let use_ok = match &common.public_key_use {
            None | Some(PublicKeyUse::Signature) => true,
            Some(_) => false,
        };
        let ops_ok = match &common.key_operations {
            None => true,
            Some(ops) => ops.iter().any(|o| matches!(o, KeyOperations::Verify)),
        };
        use_ok && ops_ok
    }

    /// Whether this key may verify `alg`: the key type fits, and the JWK's
    /// own `alg`, `use` and `key_ops` (when given) agree.
    pub fn fits(&self, alg: Algorithm) -> bool {
        let type_fits = match (&self.jwk.algorithm, alg) {
            (
                AlgorithmParameters::RSA(_),
                Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
            ) => true,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
            (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
            (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
            _ => false,
        };
        let alg_fits = match self.jwk.common.key_algorithm {
            None => true,
            Some(k) => key_algorithm_name(k) == Some(alg),
        };
        type_fits && alg_fits && self.may_verify()
    }

    /// The parsed key for `alg`, when this key may verify it.
    pub fn verifier(&self, alg: Algorithm) -> Option<&ParsedPublicKey> {
        self.verifiers.iter().find(|(a, _)| *a == alg).map(|(_, k)| k)
    }
}

fn key_algorithm_name(k: KeyAlgorithm) -> Option<Algorithm> {
    Some(match k {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The key in aws-lc's parsed form for one algorithm, with the same
/// verification algorithms jsonwebtoken's aws-lc backend uses (RSA from 2048
/// bits, fixed-size `r||s` ECDSA). `None` when aws-lc refuses the key for it.
fn parsed_key(key: &DecodingKey, alg: Algorithm) -> Option<ParsedPublicKey> {
    let rsa = |params: &'static lc::RsaParameters| match key.kind() {
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            RsaPublicKeyComponents { n, e }.to_parsed_public_key(params).ok()
        }
        DecodingKeyKind::SecretOrDer(_) => None,
    };
    let raw = |algorithm: &'static dyn lc::VerificationAlgorithm| match key.kind() {
        DecodingKeyKind::SecretOrDer(bytes) => ParsedPublicKey::new(algorithm, bytes).ok(),
        DecodingKeyKind::RsaModulusExponent { .. } => None,
    };
    match alg {
        Algorithm::RS256 => rsa(&lc::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&lc::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&lc::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&lc::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&lc::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&lc::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => raw(&lc::ECDSA_P256_SHA256_FIXED),
        Algorithm::ES384 => raw(&lc::ECDSA_P384_SHA384_FIXED),
        Algorithm::EdDSA => raw(&lc::ED25519),
        _ => None,
    }
}

/// The keys of one issuer at one moment.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<VerificationKey>,
    /// Which of the issuer's key sets this is (0: none fetched yet); a token
    /// verified with one generation is verified again under the next.
    pub generation: u64,
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether both sets hold the same keys, in any order.
    fn same_keys(&self, other: &KeySet) -> bool {
        fn jwks(set: &KeySet) -> std::collections::HashSet<&Jwk> {
            set.keys.iter().map(|k| &k.jwk).collect()
        }
        self.keys.len() == other.keys.len() && jwks(self) == jwks(other)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS: {0}")]
    Format(String),
    #[error("holds no usable signing key")]
    NoKeys,
    #[error("cannot read: {0}")]
    Io(String),
    #[error("fetch failed")]
    Fetch(#[from] http_client::FetchError),
    #[error("OIDC discovery refused: {0}")]
    Discovery(&'static str),
}

/// Parses a JWKS document. Keys of types the gateway cannot verify with are
/// skipped (a JWKS may hold encryption keys too); no usable key is an error.
pub fn parse(bytes: &[u8]) -> Result<KeySet, JwksError> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| JwksError::Format(e.to_string()))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JwksError::Format("no \"keys\" array".into()))?;
    let mut set = KeySet::default();
    for entry in keys {
        // Private members never belong in a published key set; refusing the
        // key avoids treating a leaked private JWK as trustworthy.
        if entry.get("d").is_some() {
            tracing::warn!("skipping a JWKS entry that carries private key material");
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<Jwk>(entry.clone()) else {
            tracing::debug!("skipping a JWKS entry of an unsupported kind");
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            tracing::debug!("skipping a JWKS entry whose key material is invalid");
            continue;
        };
        match &jwk.algorithm {
            // Symmetric keys cannot be public; never verify with one.
            AlgorithmParameters::OctetKey(_) => continue,
            AlgorithmParameters::RSA(rsa) if has_roca_fingerprint(&rsa.n) => {
                tracing::warn!(kid = ?jwk.common.key_id, "skipping an RSA key with the ROCA weakness (CVE-2017-15361)");
                continue;
            }
            _ => {}
        }
        set.keys.push(VerificationKey::new(jwk, &key));
    }
    // Two keys under one `kid` make "which key signed this" ambiguous: use neither.
    let kids: Vec<Option<String>> = set.keys.iter().map(|k| k.kid.clone()).collect();
    set.keys.retain(|k| {
        let unique = k.kid.is_none() || kids.iter().filter(|other| **other == k.kid).count() == 1;
        if !unique {
            tracing::warn!(kid = ?k.kid, "skipping JWKS entries that share a kid");
        }
        unique
    });
    if set.is_empty() {
        return Err(JwksError::NoKeys);
    }
    Ok(set)
}

/// The small primes of the ROCA fingerprint (Nemec et al., CCS 2017).
const ROCA_PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103, 107, 109,
    113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// Whether an RSA modulus (base64url) has the structure of keys made by the
/// Infineon library weakness (ROCA): for every small prime p, n mod p lies in
/// the subgroup generated by 65537. A fingerprint check on public data only.
fn has_roca_fingerprint(n_b64: &str) -> bool {
    use base64::Engine;
    let Ok(n) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(n_b64) else {
        return false;
    };
    ROCA_PRIMES.iter().all(|&p| {
        let residue = n.iter().fold(0u32, |acc, &byte| (acc * 256 + u32::from(byte)) % p);
        let generator = 65537 % p;
        let mut power = 1;
        loop {
            if power == residue {
                return true;
            }
            power = power * generator % p;
            if power == 1 {
                return false;
            }
        }
    })
}

/// The `jwks_uri` of an OIDC discovery document, once the document proves to
/// be this issuer's: its `issuer` equal to ours byte for byte (OpenID Connect
/// Discovery 1.0 §4.3, so a document for another issuer cannot hand us its
/// keys), and the URI https (http only on loopback).
pub(crate) fn jwks_uri_of(document: &[u8], issuer: &str) -> Result<String, JwksError> {
    let doc: Value = serde_json::from_slice(document).map_err(|_| JwksError::Discovery("the document is not JSON"))?;
    match doc.get("issuer").and_then(Value::as_str) {
        None => return Err(JwksError::Discovery("the document names no issuer")),
        Some(named) if named != issuer => {
            return Err(JwksError::Discovery(
                "the document's issuer differs from the configured issuer",
            ))
        }
        Some(_) => {}
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(JwksError::Discovery("the document has no jwks_uri"))?;
    if !is_safe_key_url(uri) {
        return Err(JwksError::Discovery(
            "jwks_uri is not https (http is allowed on loopback only)",
        ));
    }
    Ok(uri.to_owned())
}

/// Reads a JWKS from a file.
pub(crate) fn load_file(path: &Path) -> Result<KeySet, JwksError> {
    let bytes = std::fs::read(path).map_err(|e| JwksError::Io(e.to_string()))?;
    parse(&bytes)
}

/// What a failed refresh means, said truthfully: with keys held they stay in
/// force; with none, the issuer's tokens cannot be checked yet.
fn refresh_failed(has_keys: bool) -> &'static str {
    if has_keys {
        "issuer keys not refreshed; keeping the keys we have"
    } else {
        "issuer keys not fetched; this issuer's tokens are answered 503 until they are"
    }
}

/// One issuer's current keys and the means to renew them.
pub(crate) struct IssuerKeys {
    pub(crate) issuer: Issuer,
    current: RwLock<Arc<KeySet>>,
    client: HttpClient,
    metrics: Arc<Metrics>,
    /// Held while fetching, so concurrent unknown-kid misses make one fetch;
    /// holds the time of the last early refetch.
    fetch: tokio::sync::Mutex<Option<Instant>>,
    /// The generation of the last key set stored.
    generations: std::sync::atomic::AtomicU64,
}

impl IssuerKeys {
    pub(crate) fn new(issuer: Issuer, client: HttpClient, metrics: Arc<Metrics>) -> Self {
        IssuerKeys {
            issuer,
            current: RwLock::new(Arc::new(KeySet::default())),
            client,
            metrics,
            fetch: tokio::sync::Mutex::new(None),
            generations: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn keys(&self) -> Arc<KeySet> {
        self.current.read().expect("key set lock").clone()
    }

    /// The generation of the key set in force.
    pub(crate) fn key_generation(&self) -> u64 {
        self.current.read().expect("key set lock").generation
    }

    pub(crate) fn has_keys(&self) -> bool {
        !self.keys().is_empty()
    }

    async fn load(&self) -> Result<KeySet, JwksError> {
        match &self.issuer.keys {
            KeySource::File(path) => load_file(path),
            KeySource::Url(url) => self.fetch_keys(url).await,
            KeySource::Discovery => {
                let url = discovery_url(&self.issuer.issuer);
                let document = http_client::get_bytes(&self.client, &url, FETCH_TIMEOUT, MAX_DISCOVERY_BYTES).await?;
                let jwks_uri = jwks_uri_of(&document, &self.issuer.issuer)?;
                self.fetch_keys(&jwks_uri).await
            }
        }
    }

    async fn fetch_keys(&self, url: &str) -> Result<KeySet, JwksError> {
        let bytes = http_client::get_bytes(&self.client, url, FETCH_TIMEOUT, MAX_JWKS_BYTES).await?;
        parse(&bytes)
    }

    /// Fetches the keys now. On failure the keys we had stay in force.
    async fn refresh_locked(&self) -> Result<(), JwksError> {
        let result = self.load().await;
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics.jwks_refresh(&self.issuer.issuer, label);
        match result {
            Ok(set) if set.same_keys(&self.keys()) => {
                // The keys in force stay, with their generation: the tokens
                // they verified stay verified.
                tracing::debug!(issuer = %self.issuer.issuer, keys = set.keys.len(), "issuer keys unchanged");
                Ok(())
            }
            Ok(mut set) => {
                set.generation = self.generations.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                tracing::debug!(issuer = %self.issuer.issuer, keys = set.keys.len(), "issuer keys refreshed");
                self.metrics.jwks_keys(&self.issuer.issuer, set.keys.len());
                *self.current.write().expect("key set lock") = Arc::new(set);
                Ok(())
            }
            Err(e) => {
                let what = refresh_failed(self.has_keys());
                tracing::warn!(issuer = %self.issuer.issuer, error = %crate::telemetry::error_chain(&e), "{what}");
                Err(e)
            }
        }
    }

    pub(crate) async fn refresh(&self) -> Result<(), JwksError> {
        let _guard = self.fetch.lock().await;
        self.refresh_locked().await
    }

    /// Called when a token names a key we do not hold (or we hold none):
    /// refetch at most once per [`EARLY_REFETCH_INTERVAL`]. Returns whether the
    /// key set may have changed, so the caller knows to look again.
    pub(crate) async fn refetch_for_unknown_key(&self) -> bool {
        // Compared by address only: has the set been replaced since we looked?
        let before = Arc::as_ptr(&self.keys()) as usize;
        let mut last = self.fetch.lock().await;
        if Arc::as_ptr(&self.keys()) as usize != before {
            // Another request refetched while we waited for the lock.
            return true;
        }
        if last.is_some_and(|t| t.elapsed() < EARLY_REFETCH_INTERVAL) {
            return false;
        }
        *last = Some(Instant::now());
        self.refresh_locked().await.is_ok()
    }

    /// Refreshes forever on the issuer's schedule; sooner while it has no keys.
    pub(crate) async fn refresh_loop(self: Arc<Self>) {
        loop {
            let wait = if self.has_keys() {
                self.issuer.jwks_refresh
            } else {
                EMPTY_RETRY.min(self.issuer.jwks_refresh)
            };
            tokio::time::sleep(wait).await;
            let _ = self.refresh().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_and_private_keys_are_never_used() {
        let doc = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"h"},
            {"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","kid":"p"}]}"#;
        assert!(matches!(parse(doc), Err(JwksError::NoKeys)));
    }

    #[test]
    fn unsupported_entries_are_skipped() {
        let doc = br#"{"keys":[{"kty":"weird"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;
        let set = parse(doc).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("k1"));
    }

    #[test]
    fn keys_sharing_a_kid_are_not_used() {
        let key = r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"same"}"#;
        let doc = format!(r#"{{"keys":[{key},{key}]}}"#);
        assert!(matches!(parse(doc.as_bytes()), Err(JwksError::NoKeys)));
    }

    #[test]
    fn ordinary_rsa_modulus_has_no_roca_fingerprint() {
        // The RSA test key of tests/fixtures (generated by OpenSSL).
        let set = parse(include_bytes!("../../tests/fixtures/rsa.jwks.json")).unwrap();
        assert_eq!(set.keys.len(), 1);
    }

    #[test]
    fn a_failed_first_fetch_does_not_claim_to_keep_keys() {
        assert!(!refresh_failed(false).contains("keeping"));
        assert!(refresh_failed(false).contains("503"));
        assert!(refresh_failed(true).contains("keeping the keys we have"));
    }

    #[test]
    fn discovery_documents_must_name_this_issuer_exactly_and_an_https_jwks_uri() {
        let doc = |iss: &str, uri: &str| format!(r#"{{"issuer":"{iss}","jwks_uri":"{uri}"}}"#).into_bytes();
        let issuer = "https://idp.example.com/";
        assert_eq!(
            jwks_uri_of(&doc(issuer, "https://idp.example.com/keys"), issuer).unwrap(),
            "https://idp.example.com/keys"
        );
        for other in [
            "https://idp.example.com",
            "https://IDP.example.com/",
            "https://evil.example/",
        ] {
            assert!(matches!(
                jwks_uri_of(&doc(other, "https://idp.example.com/keys"), issuer),
                Err(JwksError::Discovery(_))
            ));
        }
        assert!(matches!(
            jwks_uri_of(&doc(issuer, "http://idp.example.com/keys"), issuer),
            Err(JwksError::Discovery(_))
        ));
        assert!(jwks_uri_of(&doc(issuer, "http://127.0.0.1:9/keys"), issuer).is_ok());
        assert!(matches!(
            jwks_uri_of(br#"{"issuer":"https://idp.example.com/"}"#, issuer),
            Err(JwksError::Discovery(_))
        ));
        assert!(matches!(jwks_uri_of(b"<html>", issuer), Err(JwksError::Discovery(_))));
    }

    #[test]
    fn not_a_jwks_is_an_error() {
        assert!(matches!(parse(b"[]"), Err(JwksError::Format(_))));
        assert!(matches!(parse(b"nope"), Err(JwksError::Format(_))));
    }
}
