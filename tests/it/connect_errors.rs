//! Connect's answers and failures, through the real stack: each error of
//! docs/connect.md mapped per docs/api.md with its type given each of the three
//! ways, retries that keep the ClientToken, and the request deadline.

use crate::support;

use std::time::Duration;

use connect_monitor_gateway::test_util::Reply;
use serde_json::json;
use support::{Harness, Options, BODY};

/// The three ways Connect names an error.
fn replies(status: u16, name: &str) -> [(&'static str, Reply); 3] {
    [
        (
            "X-Amzn-ErrorType header",
            Reply::Raw {
                status,
                headers: vec![(
                    "x-amzn-errortype".into(),
                    format!("{name}:http://internal.amazon.com/coral/com.amazonaws.connect/"),
                )],
                body: json!({"Message": "m"}).to_string(),
            },
        ),
        (
            "__type in the body",
            Reply::Raw {
                status,
                headers: vec![],
                body: json!({"__type": format!("com.amazonaws.connect#{name}"), "Message": "m"}).to_string(),
            },
        ),
        (
            "code in the body",
            Reply::Raw {
                status,
                headers: vec![],
                body: json!({"code": name, "Message": "m"}).to_string(),
            },
        ),
    ]
}

async fn maps(status: u16, name: &str, want_status: u16, want_code: &str, want_attempts: usize) {
    for (how, reply) in replies(status, name) {
        let h = Harness::start().await;
        h.connect.set_default(reply);
        let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
        assert_eq!(
            (a.status, a.code()),
            (want_status, want_code),
            "{name} via {how}: {:?}",
            a.body
        );
        assert_eq!(h.connect.received().len(), want_attempts, "{name} via {how}: attempts");
        let audit = &h.audit_lines()[0];
        assert_eq!(audit["upstream_status"], status, "{name} via {how}");
        assert_eq!(audit["attempts"], want_attempts, "{name} via {how}");
        assert_eq!(audit["decision"], "allow");
        assert!(
            a.headers.contains_key("x-amzn-requestid"),
            "Connect's request id is passed back"
        );
        h.assert_signatures_verified();
    }
}

#[tokio::test]
async fn invalid_request_exception_is_400_validation_error() {
    maps(400, "InvalidRequestException", 400, "VALIDATION_ERROR", 1).await;
}

#[tokio::test]
async fn invalid_parameter_exception_is_400_validation_error() {
    maps(400, "InvalidParameterException", 400, "VALIDATION_ERROR", 1).await;
}

#[tokio::test]
async fn access_denied_exception_is_502_naming_the_gateway_identity() {
    maps(403, "AccessDeniedException", 502, "UPSTREAM_ERROR", 1).await;
    let h = Harness::start().await;
    h.connect.set_default(Reply::error(403, "AccessDeniedException"));
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert!(a.message().contains("gateway's own AWS identity"), "{}", a.message());
}

#[tokio::test]
async fn resource_not_found_exception_is_404_not_found() {
    maps(404, "ResourceNotFoundException", 404, "NOT_FOUND", 1).await;
}

#[tokio::test]
async fn idempotency_exception_is_409_conflict() {
    maps(409, "IdempotencyException", 409, "CONFLICT", 1).await;
}

#[tokio::test]
async fn service_quota_exceeded_exception_is_429_rate_limited() {
    maps(402, "ServiceQuotaExceededException", 429, "RATE_LIMITED", 1).await;
}

#[tokio::test]
async fn throttling_exception_after_retries_is_429_rate_limited() {
    maps(429, "ThrottlingException", 429, "RATE_LIMITED", 3).await;
}

#[tokio::test]
async fn internal_service_exception_after_retries_is_502_upstream_error() {
    maps(500, "InternalServiceException", 502, "UPSTREAM_ERROR", 3).await;
}

#[tokio::test]
async fn throttled_then_successful_call_is_retried_with_the_same_client_token() {
    let h = Harness::start().await;
    h.connect.script([
        Reply::error(429, "ThrottlingException"),
        Reply::error(429, "ThrottlingException"),
    ]);
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let got = h.connect.received();
    assert_eq!(got.len(), 3);
    let tokens: Vec<_> = got.iter().map(|r| r.json()["ClientToken"].clone()).collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    assert!(got.iter().all(|r| r.body == got[0].body), "the same body every attempt");
    assert_eq!(a.body["data"]["client_token"], tokens[0]);
    assert_eq!(h.audit_lines()[0]["attempts"], 3);
    h.assert_signatures_verified();
}

#[tokio::test]
async fn retry_after_is_passed_back_on_429() {
    let h = Harness::start().await;
    h.connect.set_default(Reply::Raw {
        status: 429,
        headers: vec![
            ("x-amzn-errortype".into(), "ThrottlingException".into()),
            ("retry-after".into(), "1".into()),
        ],
        body: "{}".into(),
    });
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.headers["retry-after"], "1");
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let h = Harness::start().await;
    h.connect.script([Reply::error(503, "ServiceUnavailable")]);
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200);
    assert_eq!(h.connect.received().len(), 2);
}

#[tokio::test]
async fn dropped_connection_then_success_is_retried() {
    let h = Harness::start().await;
    h.connect.script([Reply::Drop]);
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.connect.received().len(), 2);
}

#[tokio::test]
async fn non_retryable_error_is_tried_once() {
    let h = Harness::start().await;
    h.connect.set_default(Reply::error(404, "ResourceNotFoundException"));
    h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(h.connect.received().len(), 1);
}

#[tokio::test]
async fn server_errors_until_max_attempts_is_502_after_exactly_that_many() {
    let h = Harness::with(Options {
        config: r#"
            [connect]
            max_attempts = 2
        "#,
        retry: None,
        ..Default::default()
    })
    .await;
    h.connect.set_default(Reply::error(500, "InternalServiceException"));
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"));
    assert_eq!(h.connect.received().len(), 2);
}

#[tokio::test]
async fn non_json_success_body_is_502() {
    let h = Harness::start().await;
    h.connect.set_default(Reply::Raw {
        status: 200,
        headers: vec![],
        body: "<html>ok</html>".into(),
    });
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"));
}

#[tokio::test]
async fn unreachable_connect_is_502() {
    let h = Harness::start().await;
    h.connect.set_default(Reply::Drop);
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"));
    assert_eq!(h.connect.received().len(), 3);
}

#[tokio::test]
async fn call_outliving_request_timeout_is_504() {
    let h = Harness::with(Options {
        config: r#"
            [server]
            request_timeout = "1s"
        "#,
        ..Default::default()
    })
    .await;
    h.connect
        .set_default(Reply::Delayed(Duration::from_secs(30), Box::new(Reply::Success)));
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (504, "UPSTREAM_TIMEOUT"), "{:?}", a.body);
    assert_eq!(h.audit_lines()[0]["status"], 504);
    h.assert_answered_at_deadline(0, Duration::from_secs(1));
}
