//! The gateway's own limit on a bearer token's size: a token longer than
//! 8192 bytes (far beyond any identity provider's access token, within the
//! 32 KiB request head hyper accepts) is refused with 401 saying so, before it
//! is decoded, hashed or verified.

use crate::support;

use serde_json::json;
use support::{Harness, BODY};

#[tokio::test]
async fn a_bearer_token_longer_than_8192_bytes_is_refused_with_401() {
    let h = Harness::start().await;
    // A well-signed token, made long by a claim: refused for its size alone.
    let claims = h.claims_with(json!({"padding": "x".repeat(9000)}));
    let token = h.keys.ed.mint(&claims);
    assert!(token.len() > 8192);
    let answer = h.monitor(Some(&token), BODY).await;
    assert_eq!((answer.status, answer.code()), (401, "UNAUTHENTICATED"));
    assert_eq!(answer.message(), "Bearer token is longer than 8192 bytes");
    assert_eq!(answer.headers["www-authenticate"], "Bearer");
    let line = h.audit_lines().pop().unwrap();
    assert_eq!((line["status"].as_u64(), line["subject"].is_null()), (Some(401), true));
    assert!(h.connect.received().is_empty());

    // Just under the limit, the same kind of token is read and verified.
    let claims = h.claims_with(json!({"padding": "x".repeat(5000)}));
    let token = h.keys.ed.mint(&claims);
    assert!(token.len() <= 8192, "{}", token.len());
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
}
