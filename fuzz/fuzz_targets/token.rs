//! Fuzzes the bearer-token path: `CompactJws::parse`, `parse_strict_object`
//! and `verify_jws` against a fixed key set (RSA, P-256, P-384, Ed25519) with
//! every algorithm the gateway can be configured for.
//!
//! Each input is used twice: as the token text itself (when UTF-8), and, when
//! it holds two NUL bytes, as `header JSON \0 payload \0 raw signature` that
//! the harness base64url-encodes into a token, so that mutations reach the
//! header's JSON (alg, kid, crit, b64, duplicates) instead of dying in base64.
//!
//! Invariants checked on every input:
//! - nothing panics;
//! - `verify_jws` accepts only a token whose signed part (`header.payload`) a
//!   seed token really signed; any other accepted input is a forgery;
//! - a parsed `CompactJws` agrees with the token it came from (allowed alg,
//!   kid and payload as in the segments);
//! - `parse_strict_object` never accepts what serde_json rejects, and when it
//!   accepts both read the same value.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use connect_monitor_gateway::test_util::{
    parse_algorithm, parse_jwks, parse_strict_object, verify_jws, CompactJws, KeySet,
};
use jsonwebtoken::Algorithm;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Public halves of tests/fixtures/{rsa,ec,ed25519}.pem plus a P-384 key,
/// written by fuzz/gen_seeds.py.
const JWKS: &[u8] = include_bytes!("../keys.jwks.json");

/// Tokens really signed with those keys (they are in the seed corpus too).
const SIGNED: &[&str] = &[
    include_str!("../seeds/token/valid_rs256.jwt"),
    include_str!("../seeds/token/valid_rs384.jwt"),
    include_str!("../seeds/token/valid_rs512.jwt"),
    include_str!("../seeds/token/valid_ps256.jwt"),
    include_str!("../seeds/token/valid_ps384.jwt"),
    include_str!("../seeds/token/valid_ps512.jwt"),
    include_str!("../seeds/token/valid_es256.jwt"),
    include_str!("../seeds/token/valid_es384.jwt"),
    include_str!("../seeds/token/valid_eddsa.jwt"),
];

const ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

struct Fixture {
    keys: KeySet,
    algorithms: Vec<Algorithm>,
    /// `header.payload` of each really signed token.
    signed_inputs: Vec<&'static str>,
}

fn signing_input(token: &str) -> &str {
    token.rsplit_once('.').map_or(token, |(input, _)| input)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = parse_jwks(JWKS).expect("fuzz/keys.jwks.json loads");
        assert_eq!(keys.keys.len(), 6, "every fixture key is usable");
        let algorithms: Vec<Algorithm> = ALGORITHMS
            .iter()
            .map(|a| parse_algorithm(a).expect("a configurable algorithm"))
            .collect();
        // The fixture is only meaningful if the genuine tokens verify.
        for token in SIGNED {
            assert!(
                verify_jws(token.trim(), &keys, &algorithms).is_ok(),
                "seed token does not verify: {token}"
            );
        }
        Fixture {
            keys,
            algorithms,
            signed_inputs: SIGNED.iter().map(|t| signing_input(t.trim())).collect(),
        }
    })
}

fn check_token(token: &str) {
    let f = fixture();

    if let Ok(jws) = CompactJws::parse(token) {
        assert!(
            f.algorithms.contains(&jws.alg),
            "parse returned an algorithm no config can allow"
        );
        let segments: Vec<&str> = token.split('.').collect();
        assert_eq!(
            segments.len(),
            3,
            "parse accepted a token without exactly three segments"
        );
        let header = URL_SAFE_NO_PAD
            .decode(segments[0])
            .expect("parse accepted a non-base64url header");
        let header = parse_strict_object(&header).expect("parse accepted a header that is not a strict object");
        assert_eq!(
            jws.kid.as_deref(),
            header.get("kid").and_then(Value::as_str),
            "kid differs from the header's"
        );
        assert!(!header.contains_key("crit"), "parse accepted a crit header");
        let payload = if segments[1].is_empty() {
            Vec::new()
        } else {
            URL_SAFE_NO_PAD
                .decode(segments[1])
                .expect("parse accepted a non-base64url payload")
        };
        assert_eq!(jws.payload, payload, "payload differs from its segment");
        assert!(!segments[2].is_empty(), "parse accepted an empty signature");
    }

    if let Ok(payload) = verify_jws(token, &f.keys, &f.algorithms) {
        assert!(
            f.signed_inputs.contains(&signing_input(token)),
            "FORGERY: verify_jws accepted a token whose header.payload no key holder signed: {token:?}"
        );
        let jws = CompactJws::parse(token).expect("verified but does not parse");
        assert_eq!(payload, jws.payload);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = fixture();

    // The strict JSON reader the header goes through, on raw bytes.
    if let Some(strict) = parse_strict_object(data) {
        let loose: Value = serde_json::from_slice(data).expect("strict parser accepted what serde_json rejects");
        assert_eq!(
            Value::Object(strict),
            loose,
            "strict and serde_json read different values"
        );
    }

    if let Ok(token) = std::str::from_utf8(data) {
        check_token(token);
        // What bearer_token hands over has no surrounding spaces; a seed file
        // may end with a newline.
        let trimmed = token.trim();
        if trimmed.len() != token.len() {
            check_token(trimmed);
        }
    }

    let mut parts = data.splitn(3, |b| *b == 0);
    if let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next()) {
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(signature)
        );
        check_token(&token);
    }
});
