//! Unit tests of the grant engine, one per rule.

use super::*;
use serde_json::json;

/// A claims-only decision, as `Authorizer::decide` makes it for grants that
/// need no facts from Connect (those are covered in tests/connect_aware.rs).
#[derive(Debug, PartialEq)]
enum Decision {
    Allow { grant: String },
    Deny(DenyReason),
}

trait Evaluate {
    fn evaluate(&self, claims: &Value, request: &MonitorRequest, user_id_claim: &str) -> Decision;
}

impl Evaluate for Policy {
    fn evaluate(&self, claims: &Value, request: &MonitorRequest, user_id_claim: &str) -> Decision {
        let caller = find_claim(claims, user_id_claim).and_then(Value::as_str);
        let mut best = DenyReason::NoGrant;
        for grant in &self.grants {
            let verdict = grant
                .admits(claims, request)
                .and_then(|()| grant.user_allowed(request, caller))
                .and_then(|()| grant.facts_allow(request, None, None));
            match verdict {
                Ok(()) => {
                    return Decision::Allow {
                        grant: grant.name.clone(),
                    }
                }
                Err(reason) if reason.rank() > best.rank() => best = reason,
                Err(_) => {}
            }
        }
        Decision::Deny(best)
    }
}

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

fn grant_with(extra: &str) -> Result<Policy, Problems> {
    Policy::from_toml(
        &format!(
            "[[grant]]\nname = \"g\"\ninstances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\", \"BARGE\"]\nas_user = \"any\"\n{extra}\n"
        ),
        "p.toml",
    )
}

#[test]
fn malformed_agents_are_named_by_key() {
    for (extra, why) in [
        ("agents = \"my_team\"", "is \"my_hierarchy\" or a table"),
        ("agents = {}", "lists nothing"),
        (
            "agents = { teams = [\"t\"] }",
            "\"teams\" is not hierarchy_groups, users or queues",
        ),
        ("agents = { users = \"u\" }", "users is a list of ids"),
        ("agents = { queues = [] }", "queues must list at least one non-empty id"),
    ] {
        let err = grant_with(extra).unwrap_err().to_string();
        assert!(err.contains("grant[0].agents") && err.contains(why), "{extra}: {err}");
    }
    assert!(grant_with("agents = \"my_hierarchy\"\nconnect_permissions = true").is_ok());
}

fn contact(agent: Option<&str>, groups: &[&str], queue: Option<&str>) -> ContactFacts {
    ContactFacts {
        agent_id: agent.map(str::to_owned),
        agent_groups: groups.iter().map(|g| g.to_string()).collect(),
        queue_id: queue.map(str::to_owned),
    }
}

fn supervisor(group: Option<&str>, permissions: &[&str]) -> SupervisorFacts {
    SupervisorFacts {
        hierarchy_group_id: group.map(str::to_owned),
        permissions: permissions.iter().map(|p| p.to_string()).collect(),
    }
}

fn needs(contact: bool, supervisor: bool, permissions: bool) -> Needs {
    Needs {
        contact,
        supervisor,
        permissions,
    }
}

#[test]
fn connect_permissions_barge_needs_listen_in_and_barge_in() {
    let policy = grant_with("connect_permissions = true").unwrap();
    let grant = &policy.grants[0];
    assert_eq!(grant.needs(), needs(false, true, true));
    let silent = req("i", "u", &[Capability::SilentMonitor]);
    let barge = req("i", "u", &[Capability::SilentMonitor, Capability::Barge]);
    let listen = supervisor(None, &["ManagerListenIn"]);
    let both = supervisor(None, &["ManagerListenIn", "ManagerBargeIn"]);
    assert_eq!(grant.facts_allow(&silent, None, Some(&listen)), Ok(()));
    assert_eq!(
        grant.facts_allow(&barge, None, Some(&listen)),
        Err(DenyReason::ConnectPermissionMissing)
    );
    assert_eq!(grant.facts_allow(&barge, None, Some(&both)), Ok(()));
    assert_eq!(
        grant.facts_allow(&silent, None, Some(&supervisor(None, &["ManagerBargeIn"]))),
        Err(DenyReason::ConnectPermissionMissing)
    );
}

#[test]
fn my_hierarchy_covers_the_supervisors_subtree_only() {
    let policy = grant_with("agents = \"my_hierarchy\"").unwrap();
    let grant = &policy.grants[0];
    assert_eq!(grant.needs(), needs(true, true, false));
    let r = req("i", "u", &[Capability::SilentMonitor]);
    let lead = supervisor(Some("g-team"), &[]);
    let in_group = contact(Some("agent"), &["g-site", "g-team"], None);
    let in_sub_group = contact(Some("agent"), &["g-site", "g-team", "g-sub"], None);
    let in_sibling = contact(Some("agent"), &["g-site", "g-other"], None);
    let no_agent = contact(None, &[], None);
    assert_eq!(grant.facts_allow(&r, Some(&in_group), Some(&lead)), Ok(()));
    assert_eq!(grant.facts_allow(&r, Some(&in_sub_group), Some(&lead)), Ok(()));
    let out = Err(DenyReason::AgentOutOfScope);
    assert_eq!(grant.facts_allow(&r, Some(&in_sibling), Some(&lead)), out);
    assert_eq!(grant.facts_allow(&r, Some(&no_agent), Some(&lead)), out);
    assert_eq!(
        grant.facts_allow(&r, Some(&in_group), Some(&supervisor(None, &[]))),
        out,
        "a supervisor without a group has no subtree"
    );
}

#[test]
fn listed_agents_need_every_given_list_to_hold() {
    let policy =
        grant_with("agents = { hierarchy_groups = [\"g-a\", \"g-b\"], users = [\"agent-1\"], queues = [\"q-1\"] }")
            .unwrap();
    let grant = &policy.grants[0];
    assert_eq!(grant.needs(), needs(true, false, false));
    let r = req("i", "u", &[Capability::SilentMonitor]);
    let ok = contact(Some("agent-1"), &["g-x", "g-b"], Some("q-1"));
    assert_eq!(grant.facts_allow(&r, Some(&ok), None), Ok(()));
    for wrong in [
        contact(Some("agent-2"), &["g-b"], Some("q-1")),
        contact(Some("agent-1"), &["g-c"], Some("q-1")),
        contact(Some("agent-1"), &["g-b"], Some("q-2")),
        contact(Some("agent-1"), &["g-b"], None),
        contact(None, &["g-b"], Some("q-1")),
    ] {
        assert_eq!(
            grant.facts_allow(&r, Some(&wrong), None),
            Err(DenyReason::AgentOutOfScope),
            "{wrong:?}"
        );
    }
}

#[test]
fn deny_reasons_rank_lookups_after_the_static_checks() {
    use DenyReason as D;
    let order = [
        D::NoGrant,
        D::InstanceNotAllowed,
        D::CapabilityNotAllowed,
        D::UserNotAllowed,
        D::ConnectPermissionMissing,
        D::AgentOutOfScope,
    ];
    assert!(order.windows(2).all(|w| w[0].rank() < w[1].rank()));
}
