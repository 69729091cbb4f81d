//! Issuer keys over time: a rotated-in key is picked up by an unknown-kid
//! refetch (at most one per 30 s), and cached keys keep working while the
//! issuer is down.

use crate::support;

use connect_monitor_gateway::test_util::jwks_of;
use support::{Harness, Options, BODY};

#[tokio::test]
async fn unpublished_key_is_refused_after_at_most_one_early_refetch_per_30_s() {
    let h = Harness::start().await;
    let fetches_at_start = h.issuer.fetches();
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let rotated_token = h.keys.rotated.mint(&claims);
    // Not yet published: refused, after one early refetch.
    let a = h.monitor(Some(&rotated_token), BODY).await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"));
    assert_eq!(h.issuer.fetches(), fetches_at_start + 1);

    // A second unknown-kid token within 30 s makes no new fetch.
    let a = h.monitor(Some(&rotated_token), BODY).await;
    assert_eq!(a.status, 401);
    assert_eq!(
        h.issuer.fetches(),
        fetches_at_start + 1,
        "at most one early refetch per 30 s"
    );
}

#[tokio::test]
async fn rotation_is_picked_up_by_unknown_kid_refetch() {
    let h = Harness::start().await;
    let fetches_at_start = h.issuer.fetches();
    // The issuer publishes the new key; the gateway has not refreshed yet.
    h.issuer.publish(jwks_of(&[&h.keys.ed, &h.keys.rotated]));
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let a = h.monitor(Some(&h.keys.rotated.mint(&claims)), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.issuer.fetches(), fetches_at_start + 1);
    // The old key is still published and still works.
    assert_eq!(h.monitor(Some(&h.keys.ed.mint(&claims)), BODY).await.status, 200);
    // Keys dropped from the JWKS stop working after the refresh: RS256 was removed.
    assert_eq!(h.monitor(Some(&h.keys.rsa.mint(&claims)), BODY).await.status, 401);
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_issuer_is_down() {
    let h = Harness::with(Options {
        config: support::ISSUER_REFRESHED_EVERY_SECOND,
        ..Default::default()
    })
    .await;
    support::issuer_outage_keeps_the_cached_keys(&h).await;
    let (_, metrics) = h.admin("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cmg_jwks_refresh_total{") && l.contains("result=\"error\"")),
        "{metrics}"
    );
}
