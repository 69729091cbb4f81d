//! The caches of Connect's facts (docs/policy.md, "The cache"): one per kind
//! of fact, bounded and expiring (`[connect.lookups]`), with concurrent misses
//! for one key sharing one call to Connect. Only answers are kept: failures,
//! not-found and a contact no agent has accepted yet are asked again next
//! time. moka's future cache does the bounding, expiry and coalescing in
//! process; with `[shared]` the fleet's server stands behind it, and a miss
//! there is fetched by one replica while the others wait for its answer.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::facts::{FactError, Paged};
use crate::connect::client::FailureKind;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::error::ConnectErrorKind;
use crate::connect::get_current_user_data::LiveAgent;
use crate::connect::operation::Operation;
use crate::connect::settings::LookupSettings;
use crate::shared::{sealed, Claim, SharedStore};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::traces::{InSpan as _, Span};

/// While another replica fetches a fact, how often the server is asked for
/// it: from the first interval, doubling up to the last.
const WAIT_POLL: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(50));

/// Where a fact came from, for `cmg_connect_lookups_total`.
const FROM_CACHE: u8 = 0;
const FROM_CONNECT: u8 = 1;
const FROM_SHARED: u8 = 2;

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
    pub(crate) contacts: Cache<Key, Kept<ContactFacts>>,
    pub(crate) users: Cache<Key, Kept<ConnectUser>>,
    pub(crate) permissions: Cache<Key, Kept<Arc<Vec<String>>>>,
    pub(crate) usernames: Cache<Key, Kept<Option<String>>>,
    /// The users of a hierarchy subtree, or of the whole instance.
    pub(crate) members: Cache<Key, Kept<Paged<Vec<String>>>>,
    /// Agents' live contacts, kept only `live_ttl`.
    pub(crate) live: Cache<Key, Kept<Paged<Vec<LiveAgent>>>>,
    /// How long a fact is trusted (also on the shared server).
    ttl: Duration,
    /// How long an answer about live contacts is reused.
    live_ttl: Duration,
    shared: Option<Arc<SharedStore>>,
    metrics: Arc<Metrics>,
}

/// A kind of fact: which operation fetches it, and its part of the shared
/// server's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Contact,
    User,
    Permissions,
    Username,
    Members,
    Live,
}

impl Kind {
    fn operation(self) -> Operation {
        match self {
            Kind::Contact => Operation::DescribeContact,
            Kind::User => Operation::DescribeUser,
            Kind::Permissions => Operation::ListSecurityProfilePermissions,
            Kind::Username | Kind::Members => Operation::SearchUsers,
            Kind::Live => Operation::GetCurrentUserData,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Contact => "contact",
            Kind::User => "user",
            Kind::Permissions => "permissions",
            Kind::Username => "username",
            Kind::Members => "members",
            Kind::Live => "live",
        }
    }
}

/// A fact as the in-process cache keeps it: with what is left of its life
/// when it came from the shared server (it expires there and here at the
/// same time); one fetched from Connect lives the whole `ttl`.
#[derive(Clone)]
pub(crate) struct Kept<V> {
    value: V,
    life: Option<Duration>,
}

/// Expires each entry at the end of its life, within `ttl` at most.
struct RemainingLife;

impl<V> Expiry<Key, Kept<V>> for RemainingLife {
    fn expire_after_create(&self, _: &Key, kept: &Kept<V>, _: std::time::Instant) -> Option<Duration> {
        kept.life
    }
}

/// What the shared server gave for a missing fact.
enum FromShared<V> {
    /// The fact, and what is left of its life there (`None`: no expiry).
    Found(V, Option<Duration>),
    /// Fetch it from Connect; `Some(lock)` when this replica holds the lock.
    Fetch(Option<String>),
}

impl FactCaches {
    pub(crate) fn new(settings: LookupSettings, shared: Option<Arc<SharedStore>>, metrics: Arc<Metrics>) -> Self {
        // Only facts from a shared server have lives of their own: without
        // one, the per-entry expiry (bookkeeping on every read) is left out.
        fn cache<V: Clone + Send + Sync + 'static>(s: LookupSettings, per_entry: bool) -> Cache<Key, Kept<V>> {
            let builder = Cache::builder().max_capacity(s.max_entries).time_to_live(s.ttl);
            if per_entry {
                builder.expire_after(RemainingLife).build()
            } else {
                builder.build()
            }
        }
        let per_entry = shared.is_some();
        FactCaches {
            contacts: cache(settings, per_entry),
            users: cache(settings, per_entry),
            permissions: cache(settings, per_entry),
            usernames: cache(settings, per_entry),
            members: cache(settings, per_entry),
            live: cache(
                LookupSettings {
                    ttl: settings.live_ttl,
                    ..settings
                },
                per_entry,
            ),
            ttl: settings.ttl,
            live_ttl: settings.live_ttl,
            shared,
            metrics,
        }
    }

    /// Forgets every fact kept in process (SIGHUP): the next request asks
    /// the shared server, or Connect, again.
    pub(crate) fn clear(&self) {
        self.contacts.invalidate_all();
        self.users.invalidate_all();
        self.permissions.invalidate_all();
        self.usernames.invalidate_all();
        self.members.invalidate_all();
        self.live.invalidate_all();
    }

    /// How long a kind of fact is trusted.
    fn ttl_of(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Live => self.live_ttl,
            _ => self.ttl,
        }
    }

    /// Keeps a contact learned from another answer (a listing's) in
    /// process, as if DescribeContact had given it.
    pub(crate) async fn keep_contact(&self, key: Key, contact: ContactFacts) {
        self.contacts
            .insert(
                key,
                Kept {
                    value: contact,
                    life: None,
                },
            )
            .await;
    }

    /// Puts a contact learned from another answer on the shared server (when
    /// in use), for the fleet's other replicas.
    pub(crate) async fn share_contact(&self, key: &Key, contact: &ContactFacts) {
        let Some(shared) = self.shared.as_ref().filter(|s| s.in_use()) else {
            return;
        };
        let fact_key = shared.key(&["fact", Kind::Contact.name(), &key.0, &key.1]);
        if let Some(stored) = sealed::seal(shared.integrity_key(), &fact_key, contact) {
            let _ = shared.put(&fact_key, &stored, self.ttl).await;
        }
    }

    /// The fact for `key`: from the cache, or from `fetch`, shared with every
    /// concurrent caller for the same key (and, with `[shared]`, with the
    /// fleet). `worth` says whether a fetched answer is kept (one that is not
    /// is answered, then forgotten at once).
    pub(crate) async fn get<V, F>(
        &self,
        cache: &Cache<Key, Kept<V>>,
        key: Key,
        kind: Kind,
        deadline: Instant,
        worth: impl Fn(&V) -> Worth,
        fetch: F,
    ) -> Result<V, FactError>
    where
        V: Clone + Send + Sync + Serialize + DeserializeOwned + 'static,
        F: Future<Output = Result<V, FactError>>,
    {
        let source = AtomicU8::new(FROM_CACHE);
        let traced = Span::connect(kind.operation().name());
        let result = cache
            .try_get_with(key.clone(), async {
                match &self.shared {
                    Some(shared) if shared.in_use() => {
                        self.through_shared(shared, &key, kind, deadline, &worth, fetch, &source)
                            .await
                    }
                    _ => {
                        source.store(FROM_CONNECT, Ordering::Relaxed);
                        fetch.await.map(|value| Kept { value, life: None })
                    }
                }
            })
            .in_span(traced.as_ref())
            .await
            .map(|kept| kept.value);
        let outcome = match (&result, source.load(Ordering::Relaxed)) {
            (Ok(_), FROM_CACHE) => "cache_hit",
            (Ok(_), FROM_SHARED) => "shared_hit",
            (Ok(value), _) => match worth(value) {
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
            (Err(error), _) => outcome_of(error),
        };
        self.metrics.connect_lookup(kind.operation().name(), outcome);
        if let Some(span) = traced {
            let cache = match source.load(Ordering::Relaxed) {
                FROM_CACHE => "hit",
                FROM_SHARED => "shared_hit",
                _ => "miss",
            };
            span.set("cmg.cache", cache);
            if result.is_err() {
                span.fail(outcome);
            }
        }
        result.map_err(|error| (*error).clone())
    }

    /// A fact missing in process: from the shared server, else fetched from
    /// Connect by one replica of the fleet (the one holding the fact's lock)
    /// and stored for the others, who wait for it within their deadline.
    /// Whenever the server fails, the fact is fetched here and not stored.
    #[allow(clippy::too_many_arguments)]
    async fn through_shared<V, F>(
        &self,
        shared: &SharedStore,
        key: &Key,
        kind: Kind,
        deadline: Instant,
        worth: &impl Fn(&V) -> Worth,
        fetch: F,
        source: &AtomicU8,
    ) -> Result<Kept<V>, FactError>
    where
        V: Serialize + DeserializeOwned,
        F: Future<Output = Result<V, FactError>>,
    {
        let fact_key = shared.key(&["fact", kind.name(), &key.0, &key.1]);
        match self
            .read_or_lock(shared, &fact_key, kind.name(), key, deadline, worth)
            .await
        {
            FromShared::Found(value, life) => {
                source.store(FROM_SHARED, Ordering::Relaxed);
                Ok(Kept { value, life })
            }
            FromShared::Fetch(lock) => {
                source.store(FROM_CONNECT, Ordering::Relaxed);
                let result = fetch.await;
                if let Ok(value) = &result {
                    let stored = sealed::seal(shared.integrity_key(), &fact_key, value);
                    if let (Worth::Keeping, Some(stored)) = (worth(value), stored) {
                        let _ = shared.put(&fact_key, &stored, self.ttl_of(kind)).await;
                    }
                }
                if let Some(lock) = lock {
                    let _ = shared.unlock(&lock).await;
                }
                result.map(|value| Kept { value, life: None })
            }
        }
    }

    /// Reads the fact from the server, or takes its lock, or waits for the
    /// replica that holds it.
    async fn read_or_lock<V: DeserializeOwned>(
        &self,
        shared: &SharedStore,
        fact_key: &str,
        kind: &str,
        key: &Key,
        deadline: Instant,
        worth: &impl Fn(&V) -> Worth,
    ) -> FromShared<V> {
        // A value that does not verify, parse or fit is a miss (and is
        // overwritten by the next fetch); so is one not worth keeping.
        let read = |stored: &str| {
            sealed::unseal::<V>(shared.integrity_key(), fact_key, stored).filter(|v| worth(v) == Worth::Keeping)
        };
        let lock_key = shared.key(&["lock", "fact", kind, &key.0, &key.1]);
        let mut poll = WAIT_POLL.0;
        let mut read_first = true;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match shared.read_or_lock(fact_key, &lock_key, remaining, read_first).await {
                Err(_) => return FromShared::Fetch(None),
                Ok(Claim::Stored(stored, life)) => match read(&stored) {
                    Some(value) => return FromShared::Found(value, life),
                    // Garbage where the fact goes: take the lock and fetch it.
                    None => {
                        read_first = false;
                        continue;
                    }
                },
                Ok(Claim::Locked) => return FromShared::Fetch(Some(lock_key)),
                Ok(Claim::Held) => read_first = true,
            }
            // Another replica is fetching it: wait, within this request's time.
            if Instant::now() + poll >= deadline {
                return FromShared::Fetch(None);
            }
            tokio::time::sleep(poll).await;
            poll = (poll * 2).min(WAIT_POLL.1);
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
            FailureKind::BudgetExhausted(_) => "budget_exhausted",
            _ => "error",
        },
        FactError::Missing(_) => "error",
    }
}
