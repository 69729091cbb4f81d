//! docs/security.md, the claims of a well-signed token: expiry, not-before and
//! issued-at beyond the leeway, the wrong issuer or audience, no subject.
//! Each is refused with 401 and Connect sees nothing (tokens inside the
//! leeway are accepted: tests/token_leeway.rs).

use crate::support;

use serde_json::{json, Value};
use support::security_cases::{run_all, token};
use support::{now, Harness};

#[tokio::test]
async fn bad_claims_are_refused_with_401() {
    let h = Harness::start().await;
    // The supervisor's claims with these members changed (`null` removes one).
    let changed = |changes: Value| h.keys.ed.mint(&h.claims_with(changes));
    let cases = vec![
        token("exp missing", changed(json!({"exp": null}))),
        token("exp past beyond leeway", changed(json!({"exp": now() - 61}))),
        token("exp a string", changed(json!({"exp": (now() + 600).to_string()}))),
        token("exp a float too large", changed(json!({"exp": 1e300}))),
        token("nbf in the future beyond leeway", changed(json!({"nbf": now() + 120}))),
        token("iat in the future beyond leeway", changed(json!({"iat": now() + 120}))),
        token("iss mismatch", changed(json!({"iss": "https://evil.example"}))),
        token(
            "iss with a trailing slash",
            changed(json!({"iss": format!("{}/", h.issuer.issuer())})),
        ),
        token("aud missing", changed(json!({"aud": null}))),
        token("aud empty", changed(json!({"aud": []}))),
        token("aud without ours", changed(json!({"aud": ["other-service"]}))),
        token("sub missing", changed(json!({"sub": null}))),
    ];
    run_all(&h, cases).await;
}
