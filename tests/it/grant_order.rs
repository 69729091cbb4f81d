//! The order grants are tried in: those that need nothing from Connect first,
//! whatever their place in the file, so a claims-only grant that allows costs
//! no lookup; then those that need Connect's facts, in file order. A deny
//! still names the reason of the grant that got furthest.

use crate::support;

use support::connect_records::{self as records, SUPERVISOR};
use support::{Harness, Options};

/// A Connect-aware grant listed before a claims-only one for the same group.
const FACTS_FIRST_IN_THE_FILE: &str = r#"
[[grant]]
name = "team leads with Connect's facts"
claims = { groups = "supervisors" }
instances = ["*"]
capabilities = ["SILENT_MONITOR", "BARGE"]
as_user = "self"
connect_permissions = true
agents = "my_hierarchy"

[[grant]]
name = "claims only"
claims = { groups = "supervisors" }
instances = ["*"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"
"#;

async fn harness() -> Harness {
    let h = Harness::with(Options {
        policy: FACTS_FIRST_IN_THE_FILE.to_string(),
        ..Options::default()
    })
    .await;
    h.connect
        .add_contact(records::contact(Some("agent-1"), &["g-site", "g-team"]));
    h.connect.add_user(records::supervisor(Some("g-team"), &["sp-lead"]));
    h.connect
        .add_security_profile("sp-lead", &["ManagerListenIn", "ManagerBargeIn"]);
    h
}

fn lookups(h: &Harness) -> usize {
    [
        "DescribeContact",
        "DescribeUser",
        "ListSecurityProfilePermissions",
        "SearchUsers",
    ]
    .iter()
    .map(|op| h.connect.calls(op))
    .sum()
}

#[tokio::test]
async fn a_claims_only_grant_that_allows_is_tried_first_and_makes_no_lookup() {
    let h = harness().await;
    let answer = records::monitor(&h, &["SILENT_MONITOR"]).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(lookups(&h), 0, "no DescribeContact, no DescribeUser, no permissions");
    let line = h.audit_lines().pop().unwrap();
    assert_eq!(line["reason"], "claims only");
    assert_eq!((line["lookups"].as_u64(), line["agent_id"].is_null()), (Some(0), true));
    assert_eq!(h.connect.calls("MonitorContact"), 1);
}

#[tokio::test]
async fn grants_that_need_facts_are_tried_when_no_claims_only_grant_allows() {
    let h = harness().await;
    // BARGE is beyond the claims-only grant: the Connect-aware grant decides.
    let answer = records::monitor(&h, &["SILENT_MONITOR", "BARGE"]).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let line = h.audit_lines().pop().unwrap();
    assert_eq!(line["reason"], "team leads with Connect's facts");
    assert_eq!(line["agent_id"], "agent-1");
    assert!(
        lookups(&h) >= 3,
        "the contact, the supervisor and its profile were looked up"
    );
}

#[tokio::test]
async fn a_deny_names_the_reason_of_the_grant_that_got_furthest_whatever_the_order() {
    let h = harness().await;
    // Out of the supervisor's subtree: the claims-only grant stops at the
    // capability check, the Connect-aware one at the agent.
    h.connect
        .add_contact(records::contact(Some("agent-9"), &["g-elsewhere"]));
    let answer = records::monitor(&h, &["SILENT_MONITOR", "BARGE"]).await;
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert_eq!(answer.message(), "Denied by policy: agent_out_of_scope");
    // Asking for another user's panel: every grant stops at as_user.
    let body = format!(r#"{{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"not-{SUPERVISOR}"}}"#);
    let answer = h.monitor(Some(&h.supervisor_token()), &body).await;
    assert_eq!(answer.message(), "Denied by policy: user_not_allowed");
}
