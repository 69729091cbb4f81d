//! Connect's quotas are per AWS account and Region, shared by every caller:
//! the stand-in enforces them once for every gateway pointed at it, so
//! replicas of a fleet draw on one budget, as they would in production.

use std::sync::Arc;
use std::time::Duration;

use connect_monitor_gateway::test_util::RetrySettings;

use crate::support::{join_all, Answer, Harness, Options, BODY};

/// A gateway that tries Connect once: each throttle the stand-in answers
/// reaches the caller, so its count is exact.
async fn single_attempt_harness() -> Harness {
    Harness::with(Options {
        retry: Some(RetrySettings::new(1, Duration::from_secs(5))),
        ..Options::default()
    })
    .await
}

// A rate this low refills nothing while 20 requests are made, however
// loaded the machine: exactly the burst passes, whichever replica asks.
#[tokio::test]
async fn two_replicas_share_one_accounts_monitor_contact_quota() {
    let h = Arc::new(single_attempt_harness().await);
    h.connect.enforce_quotas(&[("MonitorContact", 0.05, 5)]);
    let replica = Arc::new(h.replica().await);
    let token = h.supervisor_token();
    let answers: Vec<Answer> = join_all((0..20).map(|i| {
        let (h, replica, token) = (h.clone(), replica.clone(), token.clone());
        async move {
            if i % 2 == 0 {
                h.monitor(Some(&token), BODY).await
            } else {
                replica.monitor(&h.client, Some(&token), BODY).await
            }
        }
    }))
    .await;
    let codes: Vec<&str> = answers.iter().map(Answer::code).collect();
    assert_eq!(codes.iter().filter(|c| **c == "OK").count(), 5, "{codes:?}");
    for refused in answers.iter().filter(|a| a.code() != "OK") {
        assert_eq!(
            (refused.status, refused.code()),
            (429, "RATE_LIMITED"),
            "{:?}",
            refused.body
        );
    }
    assert_eq!(h.connect.calls("MonitorContact"), 20);
    assert_eq!(h.connect.throttled("MonitorContact"), 15);
    assert_eq!(h.connect.throttled_total(), 15);
    // Each replica audited its own half.
    assert_eq!((h.audit_lines().len(), replica.audit_lines().len()), (10, 10));
    h.assert_signatures_verified();
}

#[tokio::test]
async fn a_replica_answers_the_dry_run_and_monitor_like_the_first_gateway() {
    let h = single_attempt_harness().await;
    let replica = h.replica().await;
    assert_ne!(replica.url("/"), h.url("/"), "a replica listens on its own port");
    let token = h.supervisor_token();
    let check = replica.check(&h.client, Some(&token), BODY).await;
    assert_eq!(check.status, 200, "{:?}", check.body);
    assert_eq!(
        h.connect.calls("MonitorContact"),
        0,
        "a dry run never calls MonitorContact"
    );
    let monitor = replica.monitor(&h.client, Some(&token), BODY).await;
    assert_eq!(monitor.code(), "OK", "{:?}", monitor.body);
    assert_eq!(h.connect.calls("MonitorContact"), 1);
    assert_eq!(replica.audit_lines().len(), 2);
    assert!(h.audit_lines().is_empty(), "the first gateway saw none of it");
}
