//! Random identifiers: request ids and MonitorContact client tokens.
//!
//! Version 4 UUIDs from the `uuid` crate with its `fast-rng` feature: a
//! per-thread ChaCha generator seeded (and reseeded) from the operating
//! system, so a request costs no `getrandom` system call (plain `new_v4`
//! makes one per id, two per request: about 2% of the gateway's CPU under
//! load). Not aws-lc's generator: its first call gathers CPU-jitter entropy
//! for about 30 ms, which would delay the first `/readyz` answer that much.
//! Client tokens must be unique across every gateway calling one Connect
//! instance, so the bytes come from a cryptographic generator, not a fast
//! statistical one.

/// A fresh random UUID (version 4) in its hyphenated form.
pub(crate) fn random_uuid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_uuids_are_version_4_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| random_uuid()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a hyphenated UUID");
            assert_eq!(parsed.get_version_num(), 4, "{id}");
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(id.len(), 36);
        }
    }

    #[test]
    fn random_uuids_differ_across_threads() {
        let a = std::thread::spawn(random_uuid).join().unwrap();
        let b = std::thread::spawn(random_uuid).join().unwrap();
        assert_ne!(a, b);
    }
}
