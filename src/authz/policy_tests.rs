//! Unit tests of the grant engine, one per rule.

use super::*;
use serde_json::json;

const POLICY: &str = r#"
[[grant]]
name = "team-a"
claims = { groups = "supervisors-team-a", "realm_access.roles" = ["sup", "lead"] }
instances = ["inst-1"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"

[[grant]]
name = "leads"
claims = { groups = "leads" }
instances = ["*"]
capabilities = ["SILENT_MONITOR", "BARGE"]
as_user = ["u-lead-1", "u-lead-2"]

[[grant]]
name = "ops"
claims = { email_verified = true, level = 3 }
instances = ["inst-ops"]
capabilities = ["SILENT_MONITOR"]
as_user = "any"
"#;

fn policy() -> Policy {
    Policy::from_toml(POLICY, "policy.toml").unwrap()
}

fn req(instance: &str, user: &str, caps: &[Capability]) -> MonitorRequest {
    MonitorRequest {
        instance_id: instance.into(),
        contact_id: "c".into(),
        user_id: user.into(),
        capabilities: caps.to_vec(),
        client_token: None,
    }
}

fn team_a(user: &str) -> Value {
    json!({"groups": ["x", "supervisors-team-a"], "realm_access": {"roles": ["lead"]}, "connect_user_id": user})
}

#[test]
fn self_grant_allows_own_user() {
    let d = policy().evaluate(
        &team_a("u1"),
        &req("inst-1", "u1", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Allow { grant: "team-a".into() });
}

#[test]
fn self_grant_denies_other_user() {
    let d = policy().evaluate(
        &team_a("u1"),
        &req("inst-1", "u2", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::UserNotAllowed));
}

#[test]
fn self_grant_denies_caller_without_user_claim() {
    let mut claims = team_a("u1");
    claims.as_object_mut().unwrap().remove("connect_user_id");
    let d = policy().evaluate(
        &claims,
        &req("inst-1", "u1", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::UserNotAllowed));
}

#[test]
fn instance_not_in_grant_is_denied() {
    let d = policy().evaluate(
        &team_a("u1"),
        &req("inst-2", "u1", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::InstanceNotAllowed));
}

#[test]
fn capability_not_granted_is_denied() {
    let d = policy().evaluate(
        &team_a("u1"),
        &req("inst-1", "u1", &[Capability::SilentMonitor, Capability::Barge]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::CapabilityNotAllowed));
}

#[test]
fn no_matching_claims_is_no_grant() {
    let d = policy().evaluate(
        &json!({"groups": "nobody"}),
        &req("inst-1", "u1", &[]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::NoGrant));
}

#[test]
fn dotted_claim_path_must_hold() {
    let mut claims = team_a("u1");
    claims["realm_access"]["roles"] = json!(["guest"]);
    let d = policy().evaluate(
        &claims,
        &req("inst-1", "u1", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::NoGrant));
}

#[test]
fn listed_users_and_wildcard_instances() {
    let claims = json!({"groups": "leads"});
    let p = policy();
    let both = [Capability::SilentMonitor, Capability::Barge];
    assert_eq!(
        p.evaluate(&claims, &req("any-inst", "u-lead-2", &both), "connect_user_id"),
        Decision::Allow { grant: "leads".into() }
    );
    assert_eq!(
        p.evaluate(&claims, &req("any-inst", "u-other", &both), "connect_user_id"),
        Decision::Deny(DenyReason::UserNotAllowed)
    );
}

#[test]
fn boolean_and_integer_claims_and_any_user() {
    let claims = json!({"email_verified": true, "level": 3});
    let d = policy().evaluate(
        &claims,
        &req("inst-ops", "whoever", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Allow { grant: "ops".into() });
    let claims = json!({"email_verified": "true", "level": 3});
    let d = policy().evaluate(
        &claims,
        &req("inst-ops", "whoever", &[Capability::SilentMonitor]),
        "connect_user_id",
    );
    assert_eq!(d, Decision::Deny(DenyReason::NoGrant));
}

#[test]
fn empty_policy_denies_everything() {
    let p = Policy::from_toml("", "p.toml").unwrap();
    assert_eq!(
        p.evaluate(&json!({}), &req("i", "u", &[]), "connect_user_id"),
        Decision::Deny(DenyReason::NoGrant)
    );
}

#[test]
fn invalid_policy_names_the_problem() {
    let err = Policy::from_toml(
        "[[grant]]\nname = \"x\"\ninstances = []\ncapabilities = [\"WHISPER\"]\nas_user = \"me\"\n",
        "p.toml",
    )
    .unwrap_err();
    let keys: Vec<_> = err.0.iter().map(|p| p.key.clone()).collect();
    assert_eq!(
        keys,
        vec!["grant[0].instances", "grant[0].capabilities", "grant[0].as_user"]
    );
    let err = Policy::from_toml("[[grant]]\nname = \"x\"\nbogus = 1\n", "p.toml").unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn a_float_claim_value_is_named_in_the_policys_words() {
    let err = Policy::from_toml(
        "[[grant]]\nname = \"x\"\nclaims = { level = 1.5 }\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"\n",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("a string, an integer, a boolean, or a list of them"),
        "{err}"
    );
    assert!(!err.contains("untagged") && !err.contains("ClaimRule"), "{err}");
}
