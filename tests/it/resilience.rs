//! Faults and load, through the real stack: retries and their quota, the
//! local rate limit, load shedding, failing dependencies, policy reloads.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use connect_monitor_gateway::test_util::Reply;
use connect_monitor_gateway::test_util::RetrySettings;
use support::{wait_until, Handout, Harness, Options, TestCredentials, BODY};

/// The harness's quick retries (small backoff bases, the SDK's rules).
fn fast_retries() -> RetrySettings {
    Options::default().retry.expect("the harness retries")
}

#[tokio::test]
async fn retry_quota_exhausted_fails_at_once_without_a_new_attempt() {
    // Room for one transient retry (cost 14) and no more.
    let h = Harness::with(Options {
        retry: Some(RetrySettings {
            quota_capacity: 20,
            ..fast_retries()
        }),
        ..Default::default()
    })
    .await;
    h.connect.set_default(Reply::error(503, "ServiceUnavailableException"));
    let token = h.supervisor_token();
    let a = h.monitor(Some(&token), BODY).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"));
    assert_eq!(
        h.connect.received().len(),
        2,
        "one retry, then the quota (6 left) is too low"
    );
    let a = h.monitor(Some(&token), BODY).await;
    assert_eq!(a.status, 502);
    assert_eq!(
        h.connect.received().len(),
        3,
        "no retry at all once the quota is exhausted"
    );
    assert_eq!(h.gateway().retry_quota_available(), 6);
    // A success refunds: one token when it needed no retry.
    h.connect.set_default(Reply::Success);
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    assert_eq!(h.gateway().retry_quota_available(), 7);
}

#[tokio::test]
async fn retry_after_from_connect_is_honoured() {
    let h = Harness::start().await;
    h.connect.script([Reply::Raw {
        status: 429,
        headers: vec![
            ("x-amzn-errortype".into(), "ThrottlingException".into()),
            ("retry-after".into(), "1".into()),
        ],
        body: "{}".into(),
    }]);
    let started = Instant::now();
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200);
    // The test backoff base is 20 ms: only the hint explains a 1 s wait.
    assert!(started.elapsed() >= Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(h.connect.received().len(), 2);
}

#[tokio::test]
async fn upstream_that_hangs_is_answered_504_at_the_request_timeout() {
    let h = Harness::with(Options {
        config: r#"
            [server]
            request_timeout = "2s"
        "#,
        retry: Some(RetrySettings {
            attempt_timeout: Duration::from_secs(10),
            ..fast_retries()
        }),
        ..Default::default()
    })
    .await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(60), Box::new(Reply::Success)));
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (504, "UPSTREAM_TIMEOUT"));
    // At the request's deadline, long before the attempt's own 10 s.
    h.assert_answered_at_deadline(0, Duration::from_secs(2));
}

#[tokio::test]
async fn local_rate_limit_queues_within_the_deadline_then_answers_429_with_retry_after() {
    let h = Arc::new(
        Harness::with(Options {
            config: r#"
                [server]
                request_timeout = "5s"
                [connect]
                max_rate = 0.5
                burst = 1
            "#,
            ..Default::default()
        })
        .await,
    );
    let answers = h.monitor_many(5, &h.supervisor_token(), BODY).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort_unstable();
    // Slots at 0, 2 s and 4 s fit the 5 s deadline; 6 s and 8 s do not (1 s
    // to spare either way, for the calls and for the requests' arrival).
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    for limited in answers.iter().filter(|a| a.status == 429) {
        assert_eq!(limited.code(), "RATE_LIMITED");
        assert!(limited.headers.contains_key("retry-after"));
    }
    assert_eq!(h.connect.received().len(), 3);
}

#[tokio::test]
async fn load_beyond_max_in_flight_is_shed_fast_with_503() {
    let h = Arc::new(
        Harness::with(Options {
            config: r#"
                [server]
                max_in_flight = 2
            "#,
            ..Default::default()
        })
        .await,
    );
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(1), Box::new(Reply::Success)));
    let token = h.supervisor_token();
    let slow = h.monitor_many(2, &token, BODY);
    // Once the first two are in flight (both at Connect), the third is shed.
    wait_until(Duration::from_secs(5), "two requests in flight", || {
        h.connect.received().len() == 2
    })
    .await;
    let c = h.monitor(Some(&token), BODY).await;
    // Shed at once, not queued: the other two were still unanswered (each is
    // audited just before its answer leaves).
    assert_eq!(h.audit_lines().len(), 1, "{:?}", h.audit_lines());
    assert_eq!((c.status, c.code()), (503, "UNAVAILABLE"));
    let statuses: Vec<u16> = slow.await.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200]);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.contains("cmg_load_shed_total 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_requests_are_all_answered_and_audited() {
    // Deadlines far beyond what 500 calls take even on a loaded machine:
    // this is about every request being answered, not how fast.
    let h = Arc::new(
        Harness::with(Options {
            config: r#"
                [server]
                max_in_flight = 1000
                request_timeout = "60s"
            "#,
            retry: Some(RetrySettings {
                attempt_timeout: Duration::from_secs(30),
                ..fast_retries()
            }),
            ..Default::default()
        })
        .await,
    );
    h.connect
        .set_default(Reply::Delayed(Duration::from_millis(50), Box::new(Reply::Success)));
    let answers = h.monitor_many(500, &h.supervisor_token(), BODY).await;
    let refused: Vec<_> = answers.iter().filter(|a| a.status != 200).collect();
    assert!(
        refused.is_empty(),
        "{} of 500 refused, e.g. {:?}",
        refused.len(),
        refused.first()
    );
    assert_eq!(h.audit_lines().len(), 500);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
    assert!(metrics.contains("cmg_requests_total{code=\"OK\"} 500"), "{metrics}");
    h.assert_signatures_verified();
}

#[tokio::test]
async fn identity_provider_returning_garbage_keeps_the_cached_keys() {
    let h = Harness::with(Options {
        config: support::ISSUER_REFRESHED_EVERY_SECOND,
        ..Default::default()
    })
    .await;
    h.issuer.publish(serde_json::json!("this is not a JWKS"));
    let before = h.issuer.fetches();
    wait_until(Duration::from_secs(5), "a refresh", || h.issuer.fetches() > before).await;
    assert_eq!(h.monitor(Some(&h.supervisor_token()), BODY).await.status, 200);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.contains("result=\"error\""), "{metrics}");
}

/// A harness whose credentials provider hands out `first` until told otherwise.
async fn with_credentials(first: Handout) -> (Harness, TestCredentials) {
    let credentials = TestCredentials::new([first]);
    let h = Harness::with(Options {
        credentials: credentials.clone(),
        ..Default::default()
    })
    .await;
    (h, credentials)
}

const HEALTHY: Handout = Handout::Lasting(Some(Duration::from_secs(3600)));

#[tokio::test]
async fn failing_credentials_answer_503_and_recover_without_restart() {
    let (h, credentials) = with_credentials(Handout::Unreachable).await;
    let token = h.supervisor_token();
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 503);
    credentials.set([HEALTHY]);
    assert_eq!(
        h.monitor(Some(&token), BODY).await.status,
        200,
        "the next request asks the provider again"
    );
}

#[tokio::test]
async fn expired_credentials_from_the_provider_are_refused_with_503() {
    let (h, credentials) = with_credentials(Handout::Expired).await;
    let token = h.supervisor_token();
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 503);
    assert!(h.connect.received().is_empty(), "never signed with expired credentials");
    credentials.set([HEALTHY]);
    assert_eq!(
        h.monitor(Some(&token), BODY).await.status,
        200,
        "recovers once valid credentials come"
    );
}

#[tokio::test]
async fn policy_file_change_takes_effect_without_restart() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    // Revoke the supervisors' grant by editing the file.
    let revoked = support::POLICY.replace(
        "claims = { groups = \"supervisors\" }",
        "claims = { groups = \"nobody\" }",
    );
    std::fs::write(h.dir.path().join("policy.toml"), revoked).unwrap();
    let changed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            if h.monitor(Some(&token), BODY).await.status == 403 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(changed.is_ok(), "the new policy took effect within 8 s");
}

#[tokio::test]
async fn invalid_policy_reload_keeps_the_last_good_policy() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    std::fs::write(
        h.dir.path().join("policy.toml"),
        "[[grant]]\nname = \"broken\"\nclaims = 7\n",
    )
    .unwrap();
    assert!(!h.gateway().reload_policy(), "the broken policy is refused");
    assert_eq!(
        h.monitor(Some(&token), BODY).await.status,
        200,
        "the last good policy stays in force"
    );
    let other_user = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"someone-else"}"#;
    assert_eq!(
        h.monitor(Some(&token), other_user).await.status,
        403,
        "and it never falls open"
    );
    let (_, metrics) = h.admin("/metrics").await;
    assert!(
        metrics.contains("cmg_policy_reloads_total{result=\"error\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn caller_hanging_up_mid_call_still_gets_the_call_completed_and_audited() {
    let h = Harness::start().await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_millis(500), Box::new(Reply::Success)));
    let request = format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{BODY}",
        h.supervisor_token(),
        BODY.len()
    );
    // The caller gives up after 100 ms, while Connect is still answering.
    let a = support::raw_exchange(
        h.gateway().api_addr,
        &[(request.as_bytes(), Duration::ZERO)],
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(a.status, None, "no answer yet when the caller hung up");
    wait_until(Duration::from_secs(5), "the call was audited", || {
        !h.audit_lines().is_empty()
    })
    .await;
    let line = &h.audit_lines()[0];
    assert_eq!(line["status"], 200, "the call to Connect completed: {line}");
    assert_eq!(h.connect.received().len(), 1);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
}
