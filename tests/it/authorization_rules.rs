//! Every denial reason of the policy (docs/policy.md), through the real stack:
//! 403 FORBIDDEN naming the reason, and Connect never called.

use crate::support;

use support::{Harness, Options};

async fn denied(h: &Harness, token: &str, body: &str, reason: &str) {
    let a = h.monitor(Some(token), body).await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{body}: {:?}", a.body);
    assert!(
        a.message().contains(reason),
        "message {:?} should name {reason}",
        a.message()
    );
    assert!(h.connect.received().is_empty());
    assert_eq!(h.audit_lines().last().unwrap()["reason"], reason);
}

#[tokio::test]
async fn no_grant_when_claims_match_no_grant() {
    let h = Harness::start().await;
    let token = h.keys.ed.mint(&h.claims("someone", "agents", "user-1"));
    denied(&h, &token, support::BODY, "no_grant").await;
}

#[tokio::test]
async fn instance_not_allowed_by_the_grant() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-3","ContactId":"c","UserId":"user-1"}"#;
    denied(&h, &h.supervisor_token(), body, "instance_not_allowed").await;
}

#[tokio::test]
async fn instance_not_in_connect_instances_allow_list() {
    let h = Harness::with(Options {
        config: r#"
            [[connect.instances]]
            id = "inst-1"
            region = "eu-central-1"
        "#,
        ..Default::default()
    })
    .await;
    // The leads grant allows every instance; the allow-list still refuses inst-2.
    let body = r#"{"InstanceId":"inst-2","ContactId":"c","UserId":"lead-user-1"}"#;
    denied(&h, &h.lead_token(), body, "instance_not_allowed").await;
    // And inst-1 is routed to its own region.
    let body = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"lead-user-1"}"#;
    assert_eq!(h.monitor(Some(&h.lead_token()), body).await.status, 200);
    let auth = h.connect.received()[0].headers["authorization"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(auth.contains("/eu-central-1/connect/aws4_request"), "{auth}");
    h.assert_signatures_verified();
}

#[tokio::test]
async fn capability_not_allowed_barge_without_grant() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1","AllowedMonitorCapabilities":["BARGE"]}"#;
    denied(&h, &h.supervisor_token(), body, "capability_not_allowed").await;
}

#[tokio::test]
async fn user_not_allowed_self_grant_other_user() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"someone-else"}"#;
    denied(&h, &h.supervisor_token(), body, "user_not_allowed").await;
}

#[tokio::test]
async fn user_not_allowed_listed_users_only() {
    let h = Harness::start().await;
    let body = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"user-1"}"#;
    denied(&h, &h.lead_token(), body, "user_not_allowed").await;
}

#[tokio::test]
async fn empty_policy_denies_by_default() {
    let h = Harness::with(Options {
        policy: String::new(),
        ..Default::default()
    })
    .await;
    denied(&h, &h.supervisor_token(), support::BODY, "no_grant").await;
}

#[tokio::test]
async fn nested_claim_paths_and_any_user() {
    let h = Harness::with(Options {
        policy: r#"
[[grant]]
name = "realm admins"
claims = { "realm_access.roles" = ["gateway-admin", "ops"] }
instances = ["*"]
capabilities = ["SILENT_MONITOR", "BARGE"]
as_user = "any"
"#
        .into(),
        ..Default::default()
    })
    .await;
    let mut claims = h.claims("ops-1", "x", "ops-user");
    claims["realm_access"] = serde_json::json!({"roles": ["viewer", "ops"]});
    let body = r#"{"InstanceId":"any","ContactId":"c","UserId":"anyone","AllowedMonitorCapabilities":["BARGE"]}"#;
    let a = h.monitor(Some(&h.keys.ed.mint(&claims)), body).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.audit_lines()[0]["reason"], "realm admins");
}
