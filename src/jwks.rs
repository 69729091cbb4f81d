//! Issuers' signing keys: JWKS parsing, fetching at start, background refresh,
//! and one early refetch per 30 s when a token names a key we do not hold.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::DecodingKey;
use serde_json::Value;

use crate::config::{Issuer, KeySource};
use crate::http_client::{self, HttpClient};
use crate::metrics::Metrics;

/// How often an unknown `kid` may trigger a fetch ahead of schedule.
pub const EARLY_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// How soon to retry while an issuer has never answered.
const EMPTY_RETRY: Duration = Duration::from_secs(5);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_JWKS_BYTES: usize = 512 * 1024;

/// A public key from a JWKS, ready to verify with.
pub struct VerificationKey {
    pub kid: Option<String>,
    pub jwk: Jwk,
    pub key: DecodingKey,
}

impl VerificationKey {
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
}

/// The keys of one issuer at one moment.
#[derive(Default)]
pub struct KeySet {
    pub keys: Vec<VerificationKey>,
}

impl KeySet {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
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
    #[error("fetch failed: {0}")]
    Fetch(#[from] http_client::FetchError),
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
        if matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        ) {
            // Symmetric keys cannot be public; never verify with one.
            continue;
        }
        set.keys.push(VerificationKey {
            kid: jwk.common.key_id.clone(),
            jwk,
            key,
        });
    }
    if set.is_empty() {
        return Err(JwksError::NoKeys);
    }
    Ok(set)
}

/// Reads a JWKS from a file.
pub fn load_file(path: &Path) -> Result<KeySet, JwksError> {
    let bytes = std::fs::read(path).map_err(|e| JwksError::Io(e.to_string()))?;
    parse(&bytes)
}

/// One issuer's current keys and the means to renew them.
pub struct IssuerKeys {
    pub issuer: Issuer,
    current: RwLock<Arc<KeySet>>,
    client: HttpClient,
    metrics: Arc<Metrics>,
    /// Held while fetching, so concurrent unknown-kid misses make one fetch;
    /// holds the time of the last early refetch.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl IssuerKeys {
    pub fn new(issuer: Issuer, client: HttpClient, metrics: Arc<Metrics>) -> Self {
        IssuerKeys {
            issuer,
            current: RwLock::new(Arc::new(KeySet::default())),
            client,
            metrics,
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    pub fn keys(&self) -> Arc<KeySet> {
        self.current.read().expect("key set lock").clone()
    }

    pub fn has_keys(&self) -> bool {
        !self.keys().is_empty()
    }

    async fn load(&self) -> Result<KeySet, JwksError> {
        match &self.issuer.keys {
            KeySource::File(path) => load_file(path),
            KeySource::Url(url) => {
                let bytes =
                    http_client::get_bytes(&self.client, url, FETCH_TIMEOUT, MAX_JWKS_BYTES)
                        .await?;
                parse(&bytes)
            }
        }
    }

    /// Fetches the keys now. On failure the keys we had stay in force.
    async fn refresh_locked(&self) -> Result<(), JwksError> {
        let result = self.load().await;
        let label = if result.is_ok() { "success" } else { "error" };
        self.metrics.jwks_refresh(&self.issuer.issuer, label);
        match result {
            Ok(set) => {
                tracing::debug!(issuer = %self.issuer.issuer, keys = set.keys.len(), "issuer keys refreshed");
                *self.current.write().expect("key set lock") = Arc::new(set);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer.issuer, error = %e, "issuer keys not refreshed; keeping the keys we have");
                Err(e)
            }
        }
    }

    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _guard = self.fetch.lock().await;
        self.refresh_locked().await
    }

    /// Called when a token names a key we do not hold (or we hold none):
    /// refetch at most once per [`EARLY_REFETCH_INTERVAL`]. Returns whether the
    /// key set may have changed, so the caller knows to look again.
    pub async fn refetch_for_unknown_key(&self) -> bool {
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
    pub async fn refresh_loop(self: Arc<Self>) {
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
    fn not_a_jwks_is_an_error() {
        assert!(matches!(parse(b"[]"), Err(JwksError::Format(_))));
        assert!(matches!(parse(b"nope"), Err(JwksError::Format(_))));
    }
}
