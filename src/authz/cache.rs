//! The caches of Connect's facts (docs/policy.md, "The cache"): one per kind
//! of fact, bounded and expiring (`[connect.lookups]`), with concurrent misses
//! for one key sharing one call to Connect. Only answers are kept: failures,
//! not-found and a contact no agent has accepted yet are asked again next
//! time. moka's future cache does the bounding, expiry and coalescing.

use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use moka::future::Cache;

use super::facts::FactError;
use crate::connect::client::FailureKind;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::error::ConnectErrorKind;
use crate::connect::operation::Operation;
use crate::connect::settings::LookupSettings;
use crate::telemetry::metrics::Metrics;

/// Facts are kept per instance: the same id in two instances is two facts.
type Key = (String, String);

/// What a fetched answer is worth keeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Worth {
    /// A fact: kept for the TTL.
    Keeping,
    /// An answer that will change soon (a contact without its agent yet):
    /// given to this caller, asked again next time.
    ThisTimeOnly,
    /// Connect knows no such thing (a username no user has): answered,
    /// never kept, counted as `not_found`.
    NotFound,
}

/// Every cache of looked-up facts.
pub(crate) struct FactCaches {
    pub(crate) contacts: Cache<Key, ContactFacts>,
    pub(crate) users: Cache<Key, ConnectUser>,
    pub(crate) permissions: Cache<Key, Arc<Vec<String>>>,
    pub(crate) usernames: Cache<Key, Option<String>>,
    metrics: Arc<Metrics>,
}

impl FactCaches {
    pub(crate) fn new(settings: LookupSettings, metrics: Arc<Metrics>) -> Self {
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
    pub(crate) fn clear(&self) {
        self.contacts.invalidate_all();
        self.users.invalidate_all();
        self.permissions.invalidate_all();
        self.usernames.invalidate_all();
    }

    /// The fact for `key`: from the cache, or from `fetch`, shared with every
    /// concurrent caller for the same key. `worth` says whether a fetched
    /// answer is kept (one that is not is answered, then forgotten at once).
    pub(crate) async fn get<K, V, F>(
        &self,
        cache: &Cache<K, V>,
        key: K,
        operation: Operation,
        worth: impl Fn(&V) -> Worth,
        fetch: F,
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
        let outcome = match &result {
            Ok(_) if !fetched => "cache_hit",
            Ok(value) => match worth(value) {
                Worth::Keeping => "ok",
                Worth::ThisTimeOnly => {
                    cache.invalidate(&key).await;
                    "ok"
                }
                Worth::NotFound => {
                    cache.invalidate(&key).await;
                    "not_found"
                }
            },
            Err(error) => outcome_of(error),
        };
        self.metrics.connect_lookup(operation.name(), outcome);
        result.map_err(|error| (*error).clone())
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
