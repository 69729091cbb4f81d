//! The gateway's AWS credentials: asked once for many requests, again only
//! when they near expiry, and a clear 503 when there are none.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connect_monitor_gateway::test_util::Reply;
use support::{Handout, Harness, Options, TestCredentials, BODY};

#[tokio::test]
async fn credentials_provider_is_asked_once_for_many_requests() {
    let h = Arc::new(Harness::start().await);
    // Connect holds each call a moment, so the requests are there together.
    h.connect
        .set_default(Reply::Delayed(Duration::from_millis(300), Box::new(Reply::Success)));
    let token = h.supervisor_token();
    let answered = Arc::new(AtomicUsize::new(0));
    let requests = (0..30).map(|_| {
        let (h, token, answered) = (h.clone(), token.clone(), answered.clone());
        async move {
            let status = h.monitor(Some(&token), BODY).await.status;
            let answered = answered.fetch_add(1, Ordering::SeqCst) + 1;
            // More calls reached Connect than have been answered: others were in flight.
            (status, h.connect.received().len() > answered)
        }
    });
    let outcomes = support::join_all(requests).await;
    assert!(outcomes.iter().all(|(status, _)| *status == 200), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|(_, overlapped)| *overlapped),
        "the requests overlapped"
    );
    assert_eq!(h.credentials.calls(), 1, "one provider call for 30 requests");
    h.assert_signatures_verified();
}

#[tokio::test]
async fn credentials_are_asked_again_only_when_they_near_expiry() {
    // First credentials live for margin + 1.5 s; the next ones for an hour.
    let margin = Duration::from_secs(2);
    let first_lifetime = margin + Duration::from_millis(1500);
    let creds = TestCredentials::new([
        Handout::Lasting(Some(first_lifetime)),
        Handout::Lasting(Some(Duration::from_secs(3600))),
    ]);
    let h = Harness::with(Options {
        credentials: creds.clone(),
        credentials_margin: margin,
        ..Default::default()
    })
    .await;
    let token = h.supervisor_token();
    for _ in 0..5 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    // The gateway renews the first credentials once they are inside the margin.
    support::wait_until(first_lifetime + Duration::from_secs(5), "credentials renewed", || {
        creds.calls() >= 2
    })
    .await;
    for _ in 0..5 {
        assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    }
    let asked = creds.asked_at();
    assert_eq!(asked.len(), 2, "renewed once when near expiry, then reused");
    let renewed_after = asked[1].duration_since(asked[0]).unwrap();
    assert!(
        renewed_after >= first_lifetime - margin,
        "fresh credentials are reused: renewed {renewed_after:?} after the first, before they neared expiry"
    );
    h.assert_signatures_verified();
}

#[tokio::test]
async fn missing_credentials_answer_503_and_readyz_says_why() {
    let h = Harness::with(Options {
        credentials: TestCredentials::new([Handout::Missing]),
        ..Default::default()
    })
    .await;
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 503);
    assert!(
        body.contains("aws_credentials") && body.contains("not resolved"),
        "{body}"
    );
    assert_eq!(h.monitor(Some(&h.supervisor_token()), BODY).await.status, 503);
    assert!(h.connect.received().is_empty());
}
