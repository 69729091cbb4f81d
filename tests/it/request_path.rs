//! The whole request path, black-box: identity provider and Connect stand-ins
//! → the real gateway stack → an HTTP client.

use crate::support;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::json;
use support::{Harness, BODY, SESSION_TOKEN};

#[tokio::test]
async fn allowed_request_is_signed_forwarded_and_answered() {
    let h = Harness::start().await;
    let answer = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.body["success"], true);
    let data = &answer.body["data"];
    assert_eq!(data["id"], "contact-1");
    assert_eq!(
        data["contact_arn"],
        "arn:aws:connect:eu-west-2:123456789012:instance/inst-1/contact/contact-1"
    );
    assert!(data["created_at"].as_str().unwrap().ends_with('Z'));
    let got = h.connect.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/contact/monitor");
    h.assert_signatures_verified();
    // Connect's request id comes back, and our own is there.
    let aws_id = got_header(&answer.headers, "x-amzn-requestid");
    assert!(!aws_id.is_empty());
    assert!(!got_header(&answer.headers, "x-request-id").is_empty());
}

fn got_header(h: &http::HeaderMap, name: &str) -> String {
    h.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_all_accepted() {
    let h = Harness::start().await;
    let claims = h.claims("sup-1", "supervisors", "user-1");
    for key in [&h.keys.rsa, &h.keys.ec, &h.keys.ed] {
        let answer = h.monitor(Some(&key.mint(&claims)), BODY).await;
        assert_eq!(answer.status, 200, "{:?}: {:?}", key.alg, answer.body);
    }
    assert_eq!(h.connect.received().len(), 3);
    h.assert_signatures_verified();
}

#[tokio::test]
async fn client_token_is_generated_as_uuid_v4_when_absent() {
    let h = Harness::start().await;
    let answer = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(answer.status, 200);
    let sent = h.connect.received()[0].json();
    let token = sent["ClientToken"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(token).expect("a UUID");
    assert_eq!(uuid.get_version_num(), 4);
    assert_eq!(answer.body["data"]["client_token"], token);
    assert_eq!(h.audit_lines()[0]["client_token"], token);
}

#[tokio::test]
async fn client_token_is_passed_through_when_given() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-1","ClientToken":"caller-token-42"}"#;
    let answer = h.monitor(Some(&h.supervisor_token()), body).await;
    assert_eq!(answer.status, 200);
    assert_eq!(h.connect.received()[0].json()["ClientToken"], "caller-token-42");
    assert_eq!(answer.body["data"]["client_token"], "caller-token-42");
}

#[tokio::test]
async fn body_is_reserialized_from_the_validated_request() {
    let h = Harness::start().await;
    // Odd spacing, member order and escapes: Connect gets our canonical form.
    let body = "{ \"UserId\" : \"user-1\",\n \"ContactId\":\"contact-\\u0031\", \"InstanceId\":\"inst-1\" }";
    let answer = h.monitor(Some(&h.supervisor_token()), body).await;
    assert_eq!(answer.status, 200);
    let sent = &h.connect.received()[0];
    let token = sent.json()["ClientToken"].as_str().unwrap().to_owned();
    assert_eq!(
        String::from_utf8(sent.body.to_vec()).unwrap(),
        format!(
            r#"{{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-1","AllowedMonitorCapabilities":["SILENT_MONITOR"],"ClientToken":"{token}"}}"#
        )
    );
}

#[tokio::test]
async fn duplicate_user_id_never_reaches_connect() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-1","UserId":"victim-user"}"#;
    let answer = h.monitor(Some(&h.supervisor_token()), body).await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.code(), "VALIDATION_ERROR");
    assert!(
        answer.message().contains("UserId is given more than once"),
        "{}",
        answer.message()
    );
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn only_contract_headers_cross_to_connect() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    let req = Request::post(h.url("/contact/monitor"))
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .header("cookie", "session=secret-cookie")
        .header("x-forwarded-for", "10.0.0.1")
        .header("x-forwarded-host", "evil.example")
        .header("x-amz-security-token", "caller-supplied-token")
        .header("x-amz-target", "Connect.StopContact")
        .header("x-custom-header", "custom")
        .header("x-request-id", "req-abc-123")
        .header("forwarded", "for=1.2.3.4")
        .header("via", "1.1 proxy")
        .header("x-forwarded-proto", "http")
        .header("x-real-ip", "10.0.0.2")
        .header("connection", "keep-alive, x-custom-header")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-late")
        .header("proxy-authorization", "Basic cHJveHk6c2VjcmV0")
        .header("proxy-connection", "keep-alive")
        .header("x-amz-date", "20000101T000000Z")
        .header("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
        .header("x-amzn-trace-id", "Root=1-abc")
        .header("x-authorization", "Bearer other-token")
        .header("x-api-key", "k")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let answer = h.send(req).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(got_header(&answer.headers, "x-request-id"), "req-abc-123");
    let sent = &h.connect.received()[0];
    let mut names: Vec<&str> = sent.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "authorization",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-amz-date",
            "x-amz-security-token"
        ]
    );
    assert_eq!(sent.headers["x-amz-security-token"], SESSION_TOKEN);
    assert!(sent.headers["authorization"]
        .to_str()
        .unwrap()
        .starts_with("AWS4-HMAC-SHA256 "));
    assert!(!sent.headers["authorization"].to_str().unwrap().contains(&token));
    assert_eq!(
        sent.headers["user-agent"],
        format!("connect-monitor-gateway/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(sent.headers["host"], h.connect.addr.to_string());
    h.assert_signatures_verified();
}

#[tokio::test]
async fn one_audit_line_per_request_whatever_the_outcome() {
    let h = Harness::start().await;
    let token = h.supervisor_token();
    h.monitor(Some(&token), BODY).await; // 200
    h.monitor(None, BODY).await; // 401
    h.monitor(Some(&token), "{").await; // 400
    h.monitor(
        Some(&token),
        r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"other"}"#,
    )
    .await; // 403
    let get = Request::get(h.url("/contact/monitor"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    h.send(get).await; // 405
    let lines = h.audit_lines();
    assert_eq!(lines.len(), 5);
    let statuses: Vec<u64> = lines.iter().map(|l| l["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [200, 401, 400, 403, 405]);
    let allowed = &lines[0];
    for field in [
        "ts",
        "request_id",
        "decision",
        "reason",
        "issuer",
        "subject",
        "instance_id",
        "contact_id",
        "user_id",
        "capabilities",
        "client_token",
        "status",
        "code",
        "upstream_status",
        "aws_request_id",
        "attempts",
        "duration_ms",
    ] {
        assert!(
            allowed.get(field).is_some_and(|v| !v.is_null()),
            "audit field {field} missing: {allowed}"
        );
    }
    assert_eq!(allowed["decision"], "allow");
    assert_eq!(allowed["reason"], "supervisors");
    assert_eq!(allowed["subject"], "sup-1");
    assert_eq!(allowed["capabilities"], json!(["SILENT_MONITOR"]));
    assert_eq!(allowed["attempts"], 1);
    assert_eq!(allowed["upstream_status"], 200);
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["reason"], "unauthenticated");
    assert_eq!(lines[3]["reason"], "user_not_allowed");
    // Nothing secret in the audit: no token, no AWS secrets.
    let all = h.audit.memory_lines().join("\n");
    assert!(!all.contains(&token));
    assert!(!all.contains(support::SECRET_KEY));
    assert!(!all.contains(SESSION_TOKEN));
}

#[tokio::test]
async fn unknown_path_is_404_and_other_methods_405_with_allow() {
    let h = Harness::start().await;
    let answer = h.monitor(Some(&h.supervisor_token()).map(|s| s.as_str()), BODY).await;
    assert_eq!(answer.status, 200);
    let req = Request::post(h.url("/contact/monitorx"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!((a.status, a.code()), (404, "NOT_FOUND"));
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let req = Request::builder()
            .method(method)
            .uri(h.url("/contact/monitor"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let a = h.send(req).await;
        assert_eq!((a.status, a.code()), (405, "METHOD_NOT_ALLOWED"), "{method}");
        assert_eq!(got_header(&a.headers, "allow"), "POST");
    }
}

#[tokio::test]
async fn envelope_request_id_matches_header_and_hostile_ids_are_replaced() {
    let h = Harness::start().await;
    let req = Request::post(h.url("/contact/monitor"))
        .header("x-request-id", "bad id with spaces")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(req).await;
    let header = got_header(&a.headers, "x-request-id");
    assert_ne!(header, "bad id with spaces");
    assert!(uuid::Uuid::parse_str(&header).is_ok());
    assert_eq!(a.body["error"]["request_id"], header);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let h = Harness::start().await;
    let req = Request::post(h.url("/contact/monitor"))
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    let a = h.send(req).await;
    assert_eq!((a.status, a.code()), (415, "UNSUPPORTED_MEDIA_TYPE"));
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn json_content_type_with_charset_is_accepted() {
    let h = Harness::start().await;
    let req = Request::post(h.url("/contact/monitor"))
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "Application/JSON; charset=utf-8")
        .body(Full::new(Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    assert_eq!(h.send(req).await.status, 200);
}

#[tokio::test]
async fn body_over_max_body_bytes_is_413() {
    let h = Harness::start().await;
    let padding = "x".repeat(9000);
    let body = format!(r#"{{"InstanceId":"inst-1","ContactId":"{padding}","UserId":"user-1"}}"#);
    let a = h.monitor(Some(&h.supervisor_token()), &body).await;
    assert_eq!((a.status, a.code()), (413, "PAYLOAD_TOO_LARGE"));
    assert!(h.connect.received().is_empty());
}

#[tokio::test]
async fn healthz_and_readyz_report_state() {
    let h = Harness::start().await;
    let (status, body) = h.admin("/healthz").await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn readyz_is_503_and_requests_503_while_the_issuer_has_no_keys() {
    let h = Harness::with(support::Options {
        issuer_down_at_start: true,
        ..Default::default()
    })
    .await;
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("not_ready") && body.contains("no keys"), "{body}");
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!((a.status, a.code()), (503, "UNAVAILABLE"));
    assert!(h.connect.received().is_empty());
}
