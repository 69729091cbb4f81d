//! Tokens already verified, by their exact bytes: a dashboard sends the same
//! token for its whole life, and checking its signature again each time is
//! the largest cost of a request. Only successes are kept, each until its
//! `exp` (plus leeway) and only while its issuer's key set is the one that
//! verified it; the number kept is bounded. A token is kept the second time
//! it verifies, not the first: one sent once (a fresh token per request, a
//! flood of distinct ones) never takes room, memory or an entry's upkeep.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

/// foldhash, seeded at random per process: the std SipHash over a kilobyte of
/// token showed in the reused-token profile. Only tokens that verified are ever
/// stored, so a caller cannot choose the keys that fill the table.
type TokenHasher = foldhash::fast::RandomState;

/// How many verified tokens are kept (about 2 KB each).
pub(crate) const VERIFIED_TOKENS_KEPT: usize = 1024;

/// Slots remembering tokens verified once (a 64-bit hash each, 32 KiB): a
/// token whose slot holds its hash is seeing its second verification. Two
/// tokens sharing a slot only cost one of them a further verification.
const SEEN_ONCE_SLOTS: usize = 4096;

struct Verified<T> {
    identity: Arc<T>,
    /// The token's `exp` plus the leeway: not used at or after this second.
    usable_until: i64,
    /// Which issuer, and which generation of its key set, verified it.
    issuer: usize,
    key_generation: u64,
}

struct Entries<T> {
    map: HashMap<Box<str>, Verified<T>, TokenHasher>,
    /// When full, expired entries are swept at most once a second (a sweep
    /// reads every entry); otherwise one entry makes room.
    next_sweep: i64,
    /// Hashes of tokens verified once and not (yet) kept.
    seen_once: Box<[u64]>,
}

/// The bounded map of verified tokens to what they proved (`T`: the identity).
pub(crate) struct VerifiedTokens<T> {
    entries: Mutex<Entries<T>>,
    capacity: usize,
}

impl<T> VerifiedTokens<T> {
    pub(crate) fn new(capacity: usize) -> VerifiedTokens<T> {
        VerifiedTokens {
            entries: Mutex::new(Entries {
                map: HashMap::with_capacity_and_hasher(capacity.min(64), TokenHasher::default()),
                next_sweep: 0,
                seen_once: vec![0; SEEN_ONCE_SLOTS].into_boxed_slice(),
            }),
            capacity,
        }
    }

    /// The identity of `token` if it was verified before, is still within its
    /// `exp`, and `current_generation(issuer)` is the key set that verified it.
    pub(crate) fn get(&self, token: &str, now: i64, current_generation: impl Fn(usize) -> u64) -> Option<Arc<T>> {
        let mut entries = self.entries.lock().expect("verified tokens lock");
        let entry = entries.map.get(token)?;
        if now < entry.usable_until && current_generation(entry.issuer) == entry.key_generation {
            return Some(entry.identity.clone());
        }
        // Expired, or its issuer's keys changed: verify again from scratch.
        entries.map.remove(token);
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
        let mut entries = self.entries.lock().expect("verified tokens lock");
        // The map's own hasher: one random seed for the table and the slots.
        let hash = entries.map.hasher().hash_one(token);
        let slot = &mut entries.seen_once[hash as usize % SEEN_ONCE_SLOTS];
        if *slot != hash {
            *slot = hash;
            return;
        }
        if entries.map.len() >= self.capacity && now >= entries.next_sweep {
            entries.map.retain(|_, e| now < e.usable_until);
            entries.next_sweep = now + 1;
        }
        if entries.map.len() >= self.capacity {
            // Full of live tokens: make room by dropping one (any one; a
            // dropped token is only verified again).
            if let Some(victim) = entries.map.keys().next().cloned() {
                entries.map.remove(&victim);
            }
        }
        entries.map.insert(
            token.into(),
            Verified {
                identity,
                usable_until,
                issuer,
                key_generation,
            },
        );
    }

    #[cfg(any(test, feature = "test-util"))]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().expect("verified tokens lock").map.len()
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
        assert!(kept.len() == 0, "verified once: remembered, not kept");
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
        assert!(kept.len() == 0, "an expired token is dropped");
    }

    #[test]
    fn a_token_is_verified_again_once_its_issuers_keys_change() {
        let kept = VerifiedTokens::new(4);
        verified_twice(&kept, "t", 100, 10);
        assert!(kept.get("t", 50, |_| 2).is_none());
        assert!(kept.len() == 0);
    }

    #[test]
    fn the_number_kept_is_bounded() {
        let kept = VerifiedTokens::new(3);
        for i in 0..10 {
            verified_twice(&kept, &format!("t{i}"), 100, 10);
        }
        assert_eq!(kept.len(), 3);
        assert!(kept.get("t9", 50, |_| 1).is_some(), "the newest is kept");
        // Expired entries make room first.
        let kept = VerifiedTokens::new(2);
        verified_twice(&kept, "old", 20, 10);
        verified_twice(&kept, "live", 100, 10);
        verified_twice(&kept, "new", 100, 30);
        assert!(kept.get("live", 40, |_| 1).is_some());
        assert!(kept.get("new", 40, |_| 1).is_some());
    }
}
