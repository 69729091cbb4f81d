//! Saying why (docs/api.md, "Saying why"): a grant with `require_reason`
//! allows only a request whose `Monitor-Reason` header is 1 to 200
//! characters of UTF-8 with no control character; the reason is recorded in
//! the audit line as a JSON string and nowhere else. Dry runs and listings
//! decide as if a reason were given and say when one will be needed.

use bytes::Bytes;
use http::header::HeaderValue;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::support::connect_records::SUPERVISOR;
use crate::support::{Answer, Harness, Options};

/// Supervisors may listen in only with a reason; leads may without one.
const POLICY: &str = r#"
[[grant]]
name = "supervisors, with a reason"
claims = { groups = "supervisors" }
instances = ["*"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"
require_reason = true

[[grant]]
name = "leads"
claims = { groups = "leads" }
instances = ["*"]
capabilities = ["SILENT_MONITOR"]
as_user = "any"
"#;

async fn harness() -> Harness {
    Harness::with(Options {
        policy: POLICY.to_string(),
        ..Options::default()
    })
    .await
}

fn body() -> String {
    json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": SUPERVISOR}).to_string()
}

async fn post(h: &Harness, path: &str, token: &str, reason: Option<HeaderValue>) -> Answer {
    let mut request = Request::post(h.url(path))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(reason) = reason {
        request = request.header("monitor-reason", reason);
    }
    h.send(request.body(Full::new(Bytes::from(body()))).unwrap()).await
}

fn last_audit(h: &Harness) -> Value {
    h.audit_lines().pop().expect("an audit line")
}

#[tokio::test]
async fn require_reason_refuses_without_the_header_and_allows_with_it() {
    let h = harness().await;
    let token = h.supervisor_token();
    let a = post(&h, "/contact/monitor", &token, None).await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{:?}", a.body);
    assert!(a.message().ends_with("reason_required"), "{}", a.message());
    assert_eq!(h.connect.calls("MonitorContact"), 0);
    assert_eq!(last_audit(&h)["monitor_reason"], Value::Null);

    let why = HeaderValue::from_static("Customer asked for a supervisor (ticket 4711)");
    let a = post(&h, "/contact/monitor", &token, Some(why)).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.connect.calls("MonitorContact"), 1);
    let line = last_audit(&h);
    assert_eq!(line["monitor_reason"], "Customer asked for a supervisor (ticket 4711)");
    assert_eq!(line["reason"], "supervisors, with a reason");
}

#[tokio::test]
async fn a_grant_without_require_reason_needs_no_header() {
    let h = harness().await;
    let a = post(&h, "/contact/monitor", &h.lead_token(), None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[tokio::test]
async fn a_hostile_reason_is_no_reason_and_the_audit_line_stays_one_json_line() {
    let h = harness().await;
    let token = h.supervisor_token();
    let ten_kb = "x".repeat(10 * 1024);
    let hostile: Vec<(&str, HeaderValue)> = vec![
        ("empty", HeaderValue::from_static("")),
        (
            "over 200 characters",
            HeaderValue::from_bytes("é".repeat(201).as_bytes()).unwrap(),
        ),
        ("10 kB", HeaderValue::from_str(&ten_kb).unwrap()),
        ("a tab", HeaderValue::from_static("why\there")),
        (
            "a C1 control",
            HeaderValue::from_bytes("why\u{85}here".as_bytes()).unwrap(),
        ),
        ("invalid UTF-8", HeaderValue::from_bytes(b"why \xff\xfe here").unwrap()),
    ];
    for (case, value) in hostile {
        let a = post(&h, "/contact/monitor", &token, Some(value)).await;
        assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{case}: {:?}", a.body);
        assert!(a.message().ends_with("reason_required"), "{case}: {}", a.message());
        assert_eq!(last_audit(&h)["monitor_reason"], Value::Null, "{case}");
    }
    // Quotes, backslashes and what looks like a new audit field are text.
    let tricky = r#"he said "stop" \ "}{"decision":"allow"#;
    let a = post(
        &h,
        "/contact/monitor",
        &token,
        Some(HeaderValue::from_str(tricky).unwrap()),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let raw = h.audit.memory_lines().pop().unwrap();
    assert!(!raw.trim_end().contains('\n'), "one line: {raw}");
    let line: Value = serde_json::from_str(&raw).expect("one valid JSON object");
    assert_eq!(line["monitor_reason"], tricky);
    assert_eq!(line["decision"], "allow");
    // Two headers are not one reason.
    let request = Request::post(h.url("/contact/monitor"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("monitor-reason", "one")
        .header("monitor-reason", "two")
        .body(Full::new(Bytes::from(body())))
        .unwrap();
    let a = h.send(request).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    assert_eq!(h.connect.calls("MonitorContact"), 1);
}

#[tokio::test]
async fn a_dry_run_decides_as_if_a_reason_were_given_and_says_one_is_needed() {
    let h = harness().await;
    let a = post(&h, "/contact/monitor/check", &h.supervisor_token(), None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["data"]["reason_required"], true);
    let a = post(&h, "/contact/monitor/check", &h.lead_token(), None).await;
    assert_eq!(a.body["data"]["reason_required"], false);
}

#[tokio::test]
async fn a_listing_says_which_contacts_need_a_reason() {
    let h = harness().await;
    h.connect.add_user(json!({"Id": "agent-1", "SecurityProfileIds": []}));
    h.connect.add_agent_contact(
        "agent-1",
        json!({"ContactId": "c-1", "Channel": "VOICE", "AgentContactState": "CONNECTED",
               "StateStartTimestamp": 1.7e9}),
    );
    let request = Request::get(h.url("/contacts/monitorable?instance_id=inst-1"))
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(request).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let contact = &a.body["data"]["contacts"][0];
    assert_eq!(contact["contact_id"], "c-1");
    assert_eq!(contact["reason_required"], true);
}

#[tokio::test]
async fn the_reason_is_ranked_after_as_user_and_before_connects_facts() {
    // A supervisor monitoring for someone else: user_not_allowed outranks nothing here.
    let h = harness().await;
    let other = json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": "someone-else"}).to_string();
    let a = h.monitor(Some(&h.supervisor_token()), &other).await;
    assert!(a.message().ends_with("user_not_allowed"), "{}", a.message());
}
