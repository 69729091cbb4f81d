//! Tokens already verified, by their exact bytes: a dashboard sends the same
//! token for its whole life, and checking its signature again each time is
//! the largest cost of a request. Only successes are kept, each until its
//! `exp` (plus leeway) and only while its issuer's key set is the one that
//! verified it; the number kept is bounded (moka's cache: bounded, expiring
//! per entry). A token is kept the second time it verifies, not the first:
//! one sent once (a fresh token per request, a flood of distinct ones) never
//! takes room in the cache.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

/// foldhash, seeded at random per process: the std SipHash over a kilobyte of
/// token showed in the reused-token profile. Only tokens that verified are ever
/// stored, so a caller cannot choose the keys that fill the table.
type TokenHasher = foldhash::fast::RandomState;

/// How many verified tokens are kept (about 2 KB each).
pub(crate) const VERIFIED_TOKENS_KEPT: u64 = 1024;

/// Slots remembering tokens verified once (a 64-bit hash each, 32 KiB): a
/// token whose slot holds its hash is seeing its second verification. Two
/// tokens sharing a slot only cost one of them a further verification.
const SEEN_ONCE_SLOTS: usize = 4096;

struct Verified<T> {
    identity: Arc<T>,
    /// The token's `exp` plus the leeway: not used at or after this second.
    usable_until: i64,
    /// How long from its insertion the cache may keep it.
    lifetime: Duration,
    /// Which issuer, and which generation of its key set, verified it.
    issuer: usize,
    key_generation: u64,
}

/// Each entry lives until its own token's `exp`.
struct UntilExp;

impl<T> Expiry<Box<str>, Arc<Verified<T>>> for UntilExp {
    fn expire_after_create(&self, _: &Box<str>, value: &Arc<Verified<T>>, _: Instant) -> Option<Duration> {
        Some(value.lifetime)
    }
}

/// The bounded map of verified tokens to what they proved (`T`: the identity).
pub(crate) struct VerifiedTokens<T> {
    kept: Cache<Box<str>, Arc<Verified<T>>, TokenHasher>,
    /// Hashes of tokens verified once and not (yet) kept.
    seen_once: Box<[AtomicU64]>,
    hasher: TokenHasher,
}

impl<T: Send + Sync + 'static> VerifiedTokens<T> {
    pub(crate) fn new(capacity: u64) -> VerifiedTokens<T> {
        let hasher = TokenHasher::default();
        VerifiedTokens {
            kept: Cache::builder()
                .max_capacity(capacity)
                .expire_after(UntilExp)
                .build_with_hasher(hasher.clone()),
            seen_once: (0..SEEN_ONCE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            hasher,
        }
    }

    /// The identity of `token` if it was verified before, is still within its
    /// `exp`, and `current_generation(issuer)` is the key set that verified it.
    pub(crate) fn get(&self, token: &str, now: i64, current_generation: impl Fn(usize) -> u64) -> Option<Arc<T>> {
        let entry = self.kept.get(token)?;
        if now < entry.usable_until && current_generation(entry.issuer) == entry.key_generation {
            return Some(entry.identity.clone());
        }
        // Expired, or its issuer's keys changed: verify again from scratch.
        self.kept.invalidate(token);
        None
    }

    /// Keeps a token that verified, until `usable_until` — if this is its
    /// second verification; the first is only remembered.
    pub(crate) fn insert(
        &self,
        token: &str,
        identity: Arc<T>,
        usable_until: i64,
        issuer: usize,
        key_generation: u64,
        now: i64,
    ) {
        let hash = self.hasher.hash_one(token);
        let slot = &self.seen_once[hash as usize % SEEN_ONCE_SLOTS];
        if slot.swap(hash, Ordering::Relaxed) != hash {
            return;
        }
        let Ok(seconds) = u64::try_from(usable_until - now) else {
            return;
        };
        self.kept.insert(
            token.into(),
            Arc::new(Verified {
                identity,
                usable_until,
                lifetime: Duration::from_secs(seconds),
                issuer,
                key_generation,
            }),
        );
    }

    /// How many tokens are kept now.
    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn len(&self) -> usize {
        self.kept.run_pending_tasks();
        self.kept.entry_count() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Arc<String> {
        Arc::new("sup-1".to_string())
    }

    /// A token verified twice, as a reused token is before it is kept.
    fn verified_twice(kept: &VerifiedTokens<String>, token: &str, usable_until: i64, now: i64) {
        for _ in 0..2 {
            kept.insert(token, identity(), usable_until, 0, 1, now);
        }
    }

    #[test]
    fn a_token_is_kept_on_its_second_verification_only() {
        let kept = VerifiedTokens::new(4);
        kept.insert("t", identity(), 100, 0, 1, 10);
        assert_eq!(kept.len(), 0, "verified once: remembered, not kept");
        assert!(kept.get("t", 50, |_| 1).is_none());
        kept.insert("t", identity(), 100, 0, 1, 10);
        assert!(kept.get("t", 50, |_| 1).is_some(), "verified twice: kept");
        // A thousand tokens each sent once take no room at all.
        for i in 0..1000 {
            kept.insert(&format!("once-{i}"), identity(), 100, 0, 1, 10);
        }
        assert_eq!(kept.len(), 1);
    }

    #[test]
    fn a_verified_token_is_kept_until_its_exp_only() {
        let kept = VerifiedTokens::new(4);
        verified_twice(&kept, "t", 100, 10);
        assert!(kept.get("t", 99, |_| 1).is_some());
        assert!(kept.get("t", 100, |_| 1).is_none(), "not at exp + leeway");
        assert_eq!(kept.len(), 0, "an expired token is dropped");
    }

    #[test]
    fn a_token_is_verified_again_once_its_issuers_keys_change() {
        let kept = VerifiedTokens::new(4);
        verified_twice(&kept, "t", 100, 10);
        assert!(kept.get("t", 50, |_| 2).is_none());
        assert_eq!(kept.len(), 0);
    }

    #[test]
    fn the_number_kept_is_bounded() {
        let kept = VerifiedTokens::new(3);
        for i in 0..10 {
            verified_twice(&kept, &format!("t{i}"), 100, 10);
        }
        assert!(kept.len() <= 3, "{} kept", kept.len());
    }
}
