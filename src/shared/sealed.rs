//! Facts as stored on the shared server: JSON, sealed with an HMAC-SHA256
//! over the key and the value when `CMG_SHARED_KEY` is set, so that a value
//! written by anyone but the fleet, or copied onto another key, is no fact.
//! What does not parse, has the wrong shape or does not verify is a miss.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Stands where the seal goes when the fleet has no integrity key.
const UNSEALED: &str = "-";

/// `value` as stored at `stored_at`: `<seal>.<json>`.
pub(crate) fn seal<T: Serialize>(integrity: Option<&hmac::Key>, stored_at: &str, value: &T) -> Option<String> {
    let json = serde_json::to_string(value).ok()?;
    let seal = match integrity {
        Some(key) => URL_SAFE_NO_PAD.encode(hmac::sign(key, &signed_bytes(stored_at, &json)).as_ref()),
        None => UNSEALED.to_owned(),
    };
    Some(format!("{seal}.{json}"))
}

/// The value stored at `stored_at`, if it is one this fleet sealed (or any
/// well-formed one, without an integrity key).
pub(crate) fn unseal<T: DeserializeOwned>(integrity: Option<&hmac::Key>, stored_at: &str, stored: &str) -> Option<T> {
    let (seal, json) = stored.split_once('.')?;
    if let Some(key) = integrity {
        let expected = URL_SAFE_NO_PAD.decode(seal).ok()?;
        // verify compares in constant time.
        hmac::verify(key, &signed_bytes(stored_at, json), &expected).ok()?;
    }
    serde_json::from_str(json).ok()
}

/// What the seal covers: the key, a line break (so key and value cannot be
/// shifted into each other: a key holds no line break), and the JSON.
fn signed_bytes(stored_at: &str, json: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(stored_at.len() + 1 + json.len());
    bytes.extend_from_slice(stored_at.as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_sealed_value_reads_back_at_its_own_key() {
        let stored = seal(Some(&key()), "cmg:fact:user:i:u", &vec!["a".to_owned()]).unwrap();
        let read: Option<Vec<String>> = unseal(Some(&key()), "cmg:fact:user:i:u", &stored);
        assert_eq!(read, Some(vec!["a".to_owned()]));
    }

    #[test]
    fn a_sealed_value_copied_onto_another_key_is_no_value() {
        let stored = seal(Some(&key()), "cmg:fact:user:i:u1", &"x").unwrap();
        assert_eq!(unseal::<String>(Some(&key()), "cmg:fact:user:i:u2", &stored), None);
    }

    #[test]
    fn with_a_key_an_unsealed_or_altered_value_is_no_value() {
        let unsealed = seal(None, "k", &"x").unwrap();
        assert_eq!(unseal::<String>(Some(&key()), "k", &unsealed), None);
        let sealed = seal(Some(&key()), "k", &"x").unwrap();
        let altered = sealed.replace("\"x\"", "\"y\"");
        assert_eq!(unseal::<String>(Some(&key()), "k", &altered), None);
    }

    #[test]
    fn garbage_is_no_value() {
        for stored in ["", ".", "-.", "-.{", "no-dot", "-.[1,2]"] {
            assert_eq!(unseal::<String>(None, "k", stored), None, "{stored:?}");
        }
    }
}
