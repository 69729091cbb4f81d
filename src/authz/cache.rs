//! The caches of Connect's facts (CONTRACT §9): one per kind of fact,
//! bounded and expiring (`[connect.lookups]`), with concurrent misses for one
//! key sharing one call to Connect. Only answers are kept: failures, not-found
//! and a contact no agent has accepted yet are asked again next time. moka's
//! future cache does the bounding, expiry and coalescing.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use moka::future::Cache;

use super::facts::FactError;
use crate::connect::client::FailureKind;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::error::ConnectErrorKind;
use crate::connect::settings::LookupSettings;
use crate::telemetry::metrics::Metrics;

/// Facts are kept per instance: the same id in two instances is two facts.
type Key = (String, String);

/// Every cache of looked-up facts.
pub struct FactCaches {
    pub contacts: Cache<Key, ContactFacts>,
    pub users: Cache<Key, ConnectUser>,
    pub permissions: Cache<Key, Arc<Vec<String>>>,
    pub usernames: Cache<Key, Option<String>>,
    metrics: Arc<Metrics>,
}

impl FactCaches {
    pub fn new(settings: LookupSettings, metrics: Arc<Metrics>) -> Self {
        fn cache<V: Clone + Send + Sync + 'static>(s: LookupSettings) -> Cache<Key, V> {
            Cache::builder().max_capacity(s.max_entries).time_to_live(s.ttl).build()
        }
        FactCaches {
            contacts: cache(settings),
            users: cache(settings),
            permissions: cache(settings),
            usernames: cache(settings),
            metrics,
        }
    }

    /// Forgets every fact (SIGHUP): the next request asks Connect again.
    pub fn clear(&self) {
        self.contacts.invalidate_all();
        self.users.invalidate_all();
        self.permissions.invalidate_all();
        self.usernames.invalidate_all();
    }

    /// The fact for `key`: from the cache, or from `fetch`, shared with every
    /// concurrent caller for the same key. `keep` says whether an answer may
    /// be kept; one that may not is answered but forgotten at once. `lookups`
    /// counts this caller's own fetches (a lookup, not a cache hit).
    pub async fn get<K, V, F>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        operation: &'static str,
        keep: impl Fn(&V) -> bool,
        fetch: F,
        lookups: &AtomicU32,
    ) -> Result<V, FactError>
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        F: Future<Output = Result<V, FactError>>,
    {
        let fetched = AtomicBool::new(false);
        let result = cache
            .try_get_with(key.clone(), async {
                fetched.store(true, Ordering::Relaxed);
                fetch.await
            })
            .await;
        let fetched = fetched.load(Ordering::Relaxed);
        if fetched {
            lookups.fetch_add(1, Ordering::Relaxed);
        }
        match result {
            Ok(value) => {
                if fetched && !keep(&value) {
                    cache.invalidate(&key).await;
                }
                self.metrics
                    .connect_lookup(operation, if fetched { "ok" } else { "cache_hit" });
                Ok(value)
            }
            Err(error) => {
                self.metrics.connect_lookup(operation, outcome_of(&error));
                Err((*error).clone())
            }
        }
    }
}

fn outcome_of(error: &FactError) -> &'static str {
    match error {
        FactError::Lookup(failure) => match &failure.kind {
            FailureKind::Connect(e) if e.kind == ConnectErrorKind::NotFound => "not_found",
            FailureKind::Connect(e)
                if matches!(e.kind, ConnectErrorKind::Throttling | ConnectErrorKind::QuotaExceeded) =>
            {
                "throttled"
            }
            _ => "error",
        },
        FactError::Missing(_) => "error",
    }
}
