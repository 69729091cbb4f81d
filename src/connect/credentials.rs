//! The gateway's own AWS credentials, and those of each role an instance is
//! signed as: asked of the provider once, cached, and renewed ahead of expiry
//! — never fetched per request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;

use super::settings::AssumedRole;

/// Renew this long before the credentials expire.
pub(crate) const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(15);

/// Why no credentials could sign a call; the provider's own error is kept as
/// the cause (its text names the chain link that failed, never a secret).
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CredentialsUnavailable {
    #[error("AWS credentials are not available: the credentials provider timed out")]
    TimedOut,
    #[error("AWS credentials are not available")]
    Provider(#[source] Arc<CredentialsError>),
    #[error("AWS credentials are not available: the provider returned expired credentials")]
    Expired,
    #[error("AWS credentials are not available: none for role {0}")]
    NoRole(String),
}

/// A cache in front of a credentials provider (the default chain in production).
pub(crate) struct CredentialsCache {
    provider: SharedCredentialsProvider,
    current: RwLock<Option<Credentials>>,
    /// One refresh at a time: many requests waiting on expiry make one call.
    refreshing: tokio::sync::Mutex<()>,
    margin: Duration,
}

impl CredentialsCache {
    pub(crate) fn new(provider: SharedCredentialsProvider, margin: Duration) -> Self {
        CredentialsCache {
            provider,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            margin,
        }
    }

    fn fresh(&self) -> Option<Credentials> {
        let current = self.current.read().expect("credentials lock");
        current.as_ref().filter(|c| !self.near_expiry(c)).cloned()
    }

    fn near_expiry(&self, creds: &Credentials) -> bool {
        creds
            .expiry()
            .is_some_and(|expiry| SystemTime::now() + self.margin >= expiry)
    }

    fn unexpired(&self) -> Option<Credentials> {
        let current = self.current.read().expect("credentials lock");
        current
            .as_ref()
            .filter(|c| c.expiry().is_none_or(|e| SystemTime::now() < e))
            .cloned()
    }

    /// Whether usable credentials are held now (for `/readyz`).
    pub(crate) fn is_ready(&self) -> bool {
        self.unexpired().is_some()
    }

    /// Credentials for signing one request.
    pub(crate) async fn get(&self) -> Result<Credentials, CredentialsUnavailable> {
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(c) = self.fresh() {
            return Ok(c);
        }
        match self.refresh_locked().await {
            Ok(c) => Ok(c),
            // A provider hiccup must not fail requests while what we hold is still valid.
            Err(e) => self.unexpired().ok_or(e),
        }
    }

    async fn refresh_locked(&self) -> Result<Credentials, CredentialsUnavailable> {
        let asked = tokio::time::timeout(PROVIDER_TIMEOUT, self.provider.provide_credentials()).await;
        let creds = match asked {
            Err(_) => return Err(CredentialsUnavailable::TimedOut),
            Ok(Err(e)) => return Err(CredentialsUnavailable::Provider(Arc::new(e))),
            Ok(Ok(c)) => c,
        };
        if creds.expiry().is_some_and(|e| e <= SystemTime::now()) {
            return Err(CredentialsUnavailable::Expired);
        }
        *self.current.write().expect("credentials lock") = Some(creds.clone());
        tracing::info!(expires = ?creds.expiry().map(humantime::format_rfc3339_seconds), "AWS credentials resolved");
        Ok(creds)
    }

    /// Refreshes now, unless another caller is already doing so.
    pub(crate) async fn refresh(&self) -> Result<Credentials, CredentialsUnavailable> {
        let _one_at_a_time = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    /// Keeps credentials fresh in the background so no request waits on the
    /// provider: resolve at start, then again `margin` before each expiry.
    pub(crate) async fn refresh_loop(self: std::sync::Arc<Self>) {
        loop {
            let held = match self.fresh() {
                Some(c) => Ok(c),
                None => self.refresh().await,
            };
            let wait = match held {
                Ok(c) => match c.expiry() {
                    // Static credentials never expire: nothing more to do.
                    None => return,
                    Some(expiry) => expiry
                        .duration_since(SystemTime::now() + self.margin)
                        .unwrap_or(Duration::ZERO)
                        .max(Duration::from_secs(1)),
                },
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&e), "AWS credentials not refreshed; will retry");
                    RETRY_AFTER_FAILURE
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// The role-session name CloudTrail shows for the gateway's AssumeRole calls.
pub(crate) const ROLE_SESSION_NAME: &str = "connect-monitor-gateway";

/// A provider of a role's credentials: STS AssumeRole (the SDK's own
/// provider), called with `base` — the gateway's own credentials — in
/// `region`. `sts_endpoint` overrides where STS is (tests; in production the
/// SDK reads `AWS_ENDPOINT_URL_STS` itself).
pub(crate) async fn assume_role_provider(
    role: &AssumedRole,
    region: &str,
    base: SharedCredentialsProvider,
    sts_endpoint: Option<&str>,
) -> SharedCredentialsProvider {
    let mut sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .credentials_provider(base);
    if let Some(url) = sts_endpoint {
        sdk = sdk.endpoint_url(url);
    }
    let sdk = sdk.load().await;
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(role.arn.clone())
        .session_name(ROLE_SESSION_NAME)
        .configure(&sdk);
    if let Some(id) = &role.external_id {
        provider = provider.external_id(id.clone());
    }
    SharedCredentialsProvider::new(provider.build().await)
}

/// Whose credentials sign a call: the gateway's own, or the cache of the role
/// the call's instance is signed as.
pub(crate) struct Signers {
    own: Arc<CredentialsCache>,
    roles: HashMap<Arc<str>, Arc<CredentialsCache>>,
}

impl Signers {
    /// The gateway's own credentials only.
    #[cfg(test)]
    pub(crate) fn own(own: Arc<CredentialsCache>) -> Signers {
        Signers {
            own,
            roles: HashMap::new(),
        }
    }

    pub(crate) fn with_roles(own: Arc<CredentialsCache>, roles: HashMap<Arc<str>, Arc<CredentialsCache>>) -> Signers {
        Signers { own, roles }
    }

    /// The credentials for a call made as `role_arn` (`None`: our own).
    pub(crate) async fn get(&self, role_arn: Option<&str>) -> Result<Credentials, CredentialsUnavailable> {
        match role_arn {
            None => self.own.get().await,
            Some(arn) => match self.roles.get(arn) {
                Some(cache) => cache.get().await,
                // Never sign as ourselves what was meant to be signed as a role.
                None => Err(CredentialsUnavailable::NoRole(arn.to_owned())),
            },
        }
    }

    /// The gateway's own credentials.
    pub(crate) fn own_credentials(&self) -> &Arc<CredentialsCache> {
        &self.own
    }

    /// Each role's ARN and whether its credentials are held now, in ARN order.
    pub(crate) fn roles_ready(&self) -> Vec<(&str, bool)> {
        let mut roles: Vec<(&str, bool)> = self.roles.iter().map(|(arn, c)| (&**arn, c.is_ready())).collect();
        roles.sort_unstable();
        roles
    }

    /// Every cache: ours, then the roles'.
    pub(crate) fn caches(&self) -> impl Iterator<Item = &Arc<CredentialsCache>> {
        std::iter::once(&self.own).chain(self.roles.values())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Debug)]
    struct Counting {
        calls: Arc<AtomicUsize>,
        lifetime: Duration,
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let expiry = SystemTime::now() + self.lifetime;
            aws_credential_types::provider::future::ProvideCredentials::ready(Ok(Credentials::new(
                "AKIDTEST",
                "secret",
                None,
                Some(expiry),
                "test",
            )))
        }
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_provider_call() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = Arc::new(CredentialsCache::new(
            SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(3600),
            }),
            DEFAULT_REFRESH_MARGIN,
        ));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = cache.clone();
                tokio::spawn(async move { c.get().await.unwrap() })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn credentials_inside_the_margin_are_renewed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let cache = CredentialsCache::new(
            SharedCredentialsProvider::new(Counting {
                calls: calls.clone(),
                lifetime: Duration::from_secs(60),
            }),
            DEFAULT_REFRESH_MARGIN,
        );
        cache.get().await.unwrap();
        cache.get().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2, "60 s left is inside the 5 min margin");
    }
}
