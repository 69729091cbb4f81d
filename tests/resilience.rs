//! Faults and load, through the real stack: retries and their quota, the
//! local rate limit, load shedding, failing dependencies, policy reloads.

mod support;

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::provider::{error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider};
use connect_monitor_gateway::connect::retry::RetrySettings;
use connect_monitor_gateway::demo::connect_standin::Reply;
use support::{Harness, Options, BODY};

fn fast_retries() -> RetrySettings {
    RetrySettings {
        throttle_base: Duration::from_millis(20),
        transient_base: Duration::from_millis(5),
        ..RetrySettings::new(3, Duration::from_secs(2))
    }
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
    assert_eq!(h.gateway().gateway.connect.quota().available(), 6);
    // A success refunds: one token when it needed no retry.
    h.connect.set_default(Reply::Success);
    assert_eq!(h.monitor(Some(&token), BODY).await.status, 200);
    assert_eq!(h.gateway().gateway.connect.quota().available(), 7);
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
async fn upstream_that_hangs_is_answered_504_within_request_timeout_plus_1s() {
    let h = Harness::with(Options {
        server_extra: "request_timeout = \"2s\"".into(),
        retry: Some(RetrySettings {
            attempt_timeout: Duration::from_secs(10),
            ..fast_retries()
        }),
        ..Default::default()
    })
    .await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(60), Box::new(Reply::Success)));
    let started = Instant::now();
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (504, "UPSTREAM_TIMEOUT"));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn local_rate_limit_queues_within_the_deadline_then_answers_429_with_retry_after() {
    let h = Harness::with(Options {
        server_extra: "request_timeout = \"1250ms\"".into(),
        connect_extra: "max_rate = 2.0\nburst = 1".into(),
        ..Default::default()
    })
    .await;
    let token = h.supervisor_token();
    let answers = futures_join((0..5).map(|_| h.monitor(Some(&token), BODY))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    statuses.sort_unstable();
    // Slots at 0, 0.5 s and 1.0 s fit the 1.25 s deadline; 1.5 s and 2.0 s do not.
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    for limited in answers.iter().filter(|a| a.status == 429) {
        assert_eq!(limited.code(), "RATE_LIMITED");
        assert!(limited.headers.contains_key("retry-after"));
    }
    assert_eq!(h.connect.received().len(), 3);
}

/// Runs futures concurrently on this task and collects their outputs in order.
async fn futures_join<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all_done = true;
        for (i, f) in pending.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn load_beyond_max_in_flight_is_shed_fast_with_503() {
    let h = Harness::with(Options {
        server_extra: "max_in_flight = 2".into(),
        ..Default::default()
    })
    .await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_millis(500), Box::new(Reply::Success)));
    let token = h.supervisor_token();
    let slow = async { tokio::join!(h.monitor(Some(&token), BODY), h.monitor(Some(&token), BODY)) };
    let shed = async {
        // Once the first two are in flight (both at Connect), the third is shed.
        tokio::time::timeout(Duration::from_secs(5), async {
            while h.connect.received().len() < 2 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("two requests in flight");
        let started = Instant::now();
        let a = h.monitor(Some(&token), BODY).await;
        (a, started.elapsed())
    };
    let ((a, b), (c, shed_after)) = tokio::join!(slow, shed);
    assert_eq!((a.status, b.status), (200, 200));
    assert_eq!((c.status, c.code()), (503, "UNAVAILABLE"));
    assert!(
        shed_after < Duration::from_millis(300),
        "shed in {shed_after:?} (the others wait 500 ms)"
    );
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.contains("cmg_load_shed_total 1"), "{metrics}");
}

#[tokio::test]
async fn five_hundred_concurrent_requests_are_all_answered_and_audited() {
    let h = Harness::with(Options {
        server_extra: "max_in_flight = 1000".into(),
        ..Default::default()
    })
    .await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_millis(50), Box::new(Reply::Success)));
    let token = Arc::new(h.supervisor_token());
    let h = Arc::new(h);
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (h, token) = (h.clone(), token.clone());
            tokio::spawn(async move { h.monitor(Some(&token), BODY).await.status })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 500);
    assert_eq!(h.audit_lines().len(), 500);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
    assert!(metrics.contains("cmg_requests_total{code=\"OK\"} 500"), "{metrics}");
    h.assert_signatures_verified();
}

#[tokio::test]
async fn identity_provider_returning_garbage_keeps_the_cached_keys() {
    let h = Harness::with(Options {
        jwks_refresh: "1s",
        ..Default::default()
    })
    .await;
    h.issuer.publish(serde_json::json!("this is not a JWKS"));
    let before = h.issuer.fetches();
    tokio::time::timeout(Duration::from_secs(5), async {
        while h.issuer.fetches() == before {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a refresh within 5 s");
    assert_eq!(h.monitor(Some(&h.supervisor_token()), BODY).await.status, 200);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.contains("result=\"error\""), "{metrics}");
}

/// A provider the test switches between failing, expired and healthy.
#[derive(Debug, Default)]
struct Switchable {
    /// 0 = failing, 1 = expired credentials, 2 = healthy.
    mode: Arc<AtomicUsize>,
}

impl ProvideCredentials for Switchable {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(match self.mode.load(Ordering::SeqCst) {
            0 => Err(CredentialsError::provider_error("IMDS unreachable")),
            1 => Ok(support::test_credentials(Some(
                SystemTime::now() - Duration::from_secs(60),
            ))),
            _ => Ok(support::test_credentials(Some(
                SystemTime::now() + Duration::from_secs(3600),
            ))),
        })
    }
}

#[tokio::test]
async fn failing_credentials_answer_503_and_recover_without_restart() {
    let mode = Arc::new(AtomicUsize::new(0));
    let h = Harness::start().await;
    let g = h
        .gateway_with_credentials(SharedCredentialsProvider::new(Switchable { mode: mode.clone() }))
        .await;
    assert_eq!(h.monitor_at(&g).await, 503);
    mode.store(2, Ordering::SeqCst);
    assert_eq!(h.monitor_at(&g).await, 200, "the next request asks the provider again");
}

#[tokio::test]
async fn expired_credentials_from_the_provider_are_refused_with_503() {
    let mode = Arc::new(AtomicUsize::new(1));
    let h = Harness::start().await;
    let g = h
        .gateway_with_credentials(SharedCredentialsProvider::new(Switchable { mode: mode.clone() }))
        .await;
    assert_eq!(h.monitor_at(&g).await, 503);
    assert!(h.connect.received().is_empty(), "never signed with expired credentials");
    mode.store(2, Ordering::SeqCst);
    assert_eq!(h.monitor_at(&g).await, 200, "recovers once valid credentials come");
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
    assert!(!h.gateway().gateway.reload_policy(), "the broken policy is refused");
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
    tokio::time::timeout(Duration::from_secs(5), async {
        while h.audit_lines().is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the call was audited");
    let line = &h.audit_lines()[0];
    assert_eq!(line["status"], 200, "the call to Connect completed: {line}");
    assert_eq!(h.connect.received().len(), 1);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
}
