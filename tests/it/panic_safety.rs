//! A request whose handling panics is one failed request, not a lost
//! connection or a stuck gauge: it is answered 500 with its own request id,
//! audited once (`reason: internal`), `cmg_in_flight` comes back to 0, and the
//! gateway goes on serving. The panic is made through the test-only hook of
//! the `test-util` feature, never a production flag.

use crate::support;

use std::sync::Arc;

use bytes::Bytes;
use connect_monitor_gateway::test_util::{MonitorRequest, PanicHook};
use http::Request;
use http_body_util::Full;
use support::{Harness, Options, BODY};

/// Panics while handling any request for the contact `panic`.
fn panicking_on_contact_panic() -> PanicHook {
    Arc::new(|request: &MonitorRequest| {
        if request.contact_id == "panic" {
            panic!("a test made the request path panic");
        }
    })
}

#[tokio::test]
async fn a_request_whose_handling_panics_gets_a_500_with_its_id_and_one_audit_line() {
    let h = Harness::with(Options {
        panic_hook: Some(panicking_on_contact_panic()),
        ..Options::default()
    })
    .await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"panic","UserId":"user-1"}"#;
    let request = Request::post(h.url("/contact/monitor"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("x-request-id", "req-panic-1")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let answer = h.send(request).await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert_eq!(answer.code(), "INTERNAL_ERROR");
    assert_eq!(answer.message(), "The gateway failed to answer");
    assert_eq!(answer.body["error"]["request_id"], "req-panic-1");
    assert_eq!(answer.headers["x-request-id"], "req-panic-1");

    let lines = h.audit_lines();
    assert_eq!(lines.len(), 1, "exactly one audit line: {lines:?}");
    let line = &lines[0];
    assert_eq!(line["request_id"], "req-panic-1");
    assert_eq!(
        (line["status"].as_u64(), line["code"].as_str()),
        (Some(500), Some("INTERNAL_ERROR"))
    );
    assert_eq!(
        (line["decision"].as_str(), line["reason"].as_str()),
        (Some("deny"), Some("internal"))
    );
    assert_eq!(line["contact_id"], "panic", "what the request asked is still audited");
    assert!(h.connect.received().is_empty(), "Connect is never called");

    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cmg_requests_total{code=\"INTERNAL_ERROR\"} 1")),
        "{metrics}"
    );

    // The gateway goes on serving, on fresh requests and after many panics.
    for _ in 0..5 {
        let again = h.monitor(Some(&h.supervisor_token()), body).await;
        assert_eq!(again.status, 500);
    }
    let fine = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(fine.status, 200, "{:?}", fine.body);
    assert_eq!(h.audit_lines().len(), 7);
    let (_, metrics) = h.admin("/metrics").await;
    assert!(metrics.lines().any(|l| l == "cmg_in_flight 0"), "{metrics}");
}

#[tokio::test]
async fn a_dry_run_that_panics_is_answered_and_audited_the_same_way() {
    let h = Harness::with(Options {
        panic_hook: Some(panicking_on_contact_panic()),
        ..Options::default()
    })
    .await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"panic","UserId":"user-1"}"#;
    let request = Request::post(h.url("/contact/monitor/check"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap();
    let answer = h.send(request).await;
    assert_eq!((answer.status, answer.code()), (500, "INTERNAL_ERROR"));
    let id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(answer.body["error"]["request_id"], id.as_str());
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["request_id"], id.as_str());
    assert_eq!(lines[0]["dry_run"], true);
    assert_eq!(lines[0]["reason"], "internal");
}
