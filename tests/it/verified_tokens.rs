//! A token that checked out is not verified again while it is reused — but
//! only while its `exp` (plus leeway) and its issuer's keys allow; a token
//! that failed is never kept, and one sent only once takes no room.

use crate::support;

use std::time::Duration;

use connect_monitor_gateway::test_util::jwks_of;
use serde_json::json;
use support::{Harness, Options, BODY};

fn kept(h: &Harness) -> usize {
    h.gateway().verified_tokens_kept()
}

#[tokio::test]
async fn a_token_sent_once_is_not_kept() {
    let h = Harness::start().await;
    for user in ["user-1", "user-2", "user-3"] {
        let token = h.keys.ed.mint(&h.claims("sup-1", "supervisors", user));
        let body = BODY.replace("user-1", user);
        assert_eq!(h.monitor(Some(&token), &body).await.status, 200);
    }
    assert_eq!(kept(&h), 0, "each token verified once: none kept");
}

#[tokio::test]
async fn a_reused_token_is_kept_once_and_answered_alike() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    for _ in 0..3 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(kept(&h), 1);
    // Authorization still runs every time: the same token asking for another panel.
    let other = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"someone-else"}"#;
    assert_eq!(h.monitor(Some(&token), other).await.status, 403);
}

#[tokio::test]
async fn a_token_that_failed_is_never_kept() {
    let h = Harness::start().await;
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let forged = h.keys.foreign.mint(&claims);
    let expired = h.keys.ed.mint(&h.claims_with(json!({"exp": support::now() - 3600})));
    let wrong_audience = h.keys.ed.mint(&h.claims_with(json!({"aud": "another-api"})));
    for token in [&forged, &expired, &wrong_audience] {
        for _ in 0..2 {
            assert_eq!(h.monitor(Some(token), BODY).await.status, 401);
        }
    }
    assert_eq!(kept(&h), 0);
}

#[tokio::test]
async fn a_kept_token_is_refused_once_its_exp_passes() {
    let h = Harness::start().await;
    // Valid (with the harness's 60 s leeway) for two more seconds.
    let exp = support::now() as i64 - 60 + 2;
    let token = h.keys.ed.mint(&h.claims_with(json!({ "exp": exp })));
    for _ in 0..2 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(kept(&h), 1);
    // Waiting for the clock itself, not for the gateway: bounded by the exp.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let a = h.monitor(Some(&token), BODY).await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"), "{:?}", a.body);
}

#[tokio::test]
async fn a_kept_token_is_verified_again_when_its_issuers_keys_change() {
    let h = Harness::with(Options {
        config: support::ISSUER_REFRESHED_EVERY_SECOND,
        ..Default::default()
    })
    .await;
    let token = h.keys.rsa.mint(&h.claims("sup-1", "supervisors", "user-1"));
    for _ in 0..2 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(kept(&h), 1);
    // The issuer drops the RSA key; once the gateway has the new set, the
    // token kept from before must not pass on the strength of the old one.
    let before = h.gateway().issuer_key_generation(0);
    h.issuer.publish(jwks_of(&[&h.keys.ed, &h.keys.ec]));
    support::wait_until(Duration::from_secs(10), "the new key set is in force", || {
        h.gateway().issuer_key_generation(0) > before
    })
    .await;
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 401);
    assert_eq!(kept(&h), 0);
}

#[tokio::test]
async fn a_refresh_that_finds_the_same_keys_keeps_the_tokens_they_verified() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    for _ in 0..2 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    assert_eq!(kept(&h), 1);
    let generation = h.gateway().issuer_key_generation(0);
    // The same keys, published in another order: nothing changed.
    let fetches = h.issuer.fetches();
    h.issuer.publish(jwks_of(&[&h.keys.ed, &h.keys.ec, &h.keys.rsa]));
    assert!(h.gateway().refresh_issuer_keys(0).await);
    assert!(h.issuer.fetches() > fetches, "the keys were fetched again");
    assert_eq!(
        h.gateway().issuer_key_generation(0),
        generation,
        "the key set in force stays"
    );
    assert_eq!(kept(&h), 1, "the token it verified stays verified");
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    // A set that differs is a new generation (the kept token is then verified
    // again under it: a_kept_token_is_verified_again_when_its_issuers_keys_change).
    h.issuer
        .publish(jwks_of(&[&h.keys.ed, &h.keys.ec, &h.keys.rsa, &h.keys.rotated]));
    assert!(h.gateway().refresh_issuer_keys(0).await);
    assert!(h.gateway().issuer_key_generation(0) > generation);
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
}
