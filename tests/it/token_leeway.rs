//! Tokens at the edges of validity that must still be accepted (refusals
//! are all in tests/security.rs).

use crate::support;

use serde_json::json;
use support::{now, Harness, BODY};

#[tokio::test]
async fn claims_within_leeway_are_accepted() {
    let h = Harness::start().await;
    let token = h
        .keys
        .ed
        .mint(&h.claims_with(json!({"exp": now() - 30, "nbf": now() + 30, "iat": now() + 30})));
    let a = h.monitor(Some(&token), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let token = h
        .keys
        .ed
        .mint(&h.claims_with(json!({"aud": ["other", support::AUDIENCE]})));
    assert_eq!(
        h.monitor(Some(&token), BODY).await.status,
        200,
        "aud array holding ours"
    );
}
