//! The dry run, `POST /contact/monitor/check` (docs/api.md): every phase of
//! the real call — authentication, validation, authorization and its lookups
//! in Connect — but MonitorContact; audited with `dry_run: true`; CORS as for
//! the real call.

use crate::support;

use bytes::Bytes;
use connect_monitor_gateway::test_util::Reply;
use http::Request;
use http_body_util::Full;
use serde_json::json;
use support::connect_records::{contact, grant, supervisor, SUPERVISOR};
use support::{Answer, Harness, Options};

const ORIGIN: &str = "https://dashboard.example";

/// A gateway whose one grant needs the contact and the supervisor's profiles.
async fn connect_aware() -> Harness {
    let h = Harness::with(Options {
        policy: grant("agents = \"my_hierarchy\"\nconnect_permissions = true"),
        config: &format!("[cors]\nallowed_origins = [\"{ORIGIN}\"]"),
        ..Options::default()
    })
    .await;
    h.connect.add_user(supervisor(Some("g-team"), &["sp-1"]));
    h.connect.add_security_profile("sp-1", &["ManagerListenIn"]);
    h.connect.add_contact(contact(Some("agent-1"), &["g-site", "g-team"]));
    h
}

/// Asks the dry run whether the supervisor may use `capabilities` on `contact-1`.
async fn check(h: &Harness, capabilities: &[&str]) -> Answer {
    let body = json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": SUPERVISOR,
                      "AllowedMonitorCapabilities": capabilities});
    let request = Request::post(h.url("/contact/monitor/check"))
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "application/json")
        .header("origin", ORIGIN)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    h.send(request).await
}

#[tokio::test]
async fn an_allowed_dry_run_names_the_grant_and_never_calls_monitor_contact() {
    let h = connect_aware().await;
    let a = check(&h, &["SILENT_MONITOR"]).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body,
        json!({"success": true, "data": {"decision": "allow", "grant": "connect-aware", "capabilities": ["SILENT_MONITOR"],
                                         "reason_required": false}})
    );
    assert_eq!(h.connect.calls("MonitorContact"), 0);
    assert_eq!(h.connect.calls("DescribeContact"), 1, "the lookups did run");
    h.assert_signatures_verified();
    let audit = h.audit_lines().pop().unwrap();
    assert_eq!(
        (
            &audit["dry_run"],
            &audit["decision"],
            &audit["reason"],
            &audit["agent_id"],
            &audit["status"]
        ),
        (
            &json!(true),
            &json!("allow"),
            &json!("connect-aware"),
            &json!("agent-1"),
            &json!(200)
        )
    );
    assert_eq!(
        audit["client_token"],
        json!(null),
        "no ClientToken is made for a dry run"
    );
    assert_eq!(
        a.headers["access-control-allow-origin"], ORIGIN,
        "CORS as for the real call"
    );
}

#[tokio::test]
async fn a_denied_dry_run_answers_what_the_real_call_would() {
    let h = connect_aware().await;
    let a = check(&h, &["SILENT_MONITOR", "BARGE"]).await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{:?}", a.body);
    assert!(a.message().ends_with("connect_permission_missing"), "{}", a.message());
    let audit = h.audit_lines().pop().unwrap();
    assert_eq!((&audit["dry_run"], &audit["decision"]), (&json!(true), &json!("deny")));
    assert_eq!(h.connect.calls("MonitorContact"), 0);
}

#[tokio::test]
async fn a_failed_lookup_fails_the_dry_run_closed() {
    let h = connect_aware().await;
    h.connect
        .script_for("DescribeUser", [Reply::error(403, "AccessDeniedException")]);
    let a = check(&h, &["SILENT_MONITOR"]).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"), "{:?}", a.body);
    assert!(a.message().contains("connect:DescribeUser"), "{}", a.message());
    assert_eq!(h.connect.calls("MonitorContact"), 0);
}

#[tokio::test]
async fn a_dry_run_without_a_token_is_refused_like_the_real_call() {
    let h = connect_aware().await;
    let request = Request::post(h.url("/contact/monitor/check"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let a = h.send(request).await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"));
    assert!(h.connect.received().is_empty());
}
