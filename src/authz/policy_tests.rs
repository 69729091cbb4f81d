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
        vec![
            "line 3, column 13: grant[0].instances",
            "line 4, column 17: grant[0].capabilities",
            "line 5, column 11: grant[0].as_user"
        ]
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

/// A policy's problems, each as `key: why` (the file left out).
fn problems_of(text: &str) -> Vec<String> {
    Policy::from_toml(text, "p.toml")
        .unwrap_err()
        .0
        .iter()
        .map(|p| format!("{}: {}", p.key, p.why))
        .collect()
}

/// A grant that passes every check, to put the bad one after.
const GOOD_GRANT: &str = r#"[[grant]]
name = "good"
claims = { groups = "sup" }
instances = ["inst-1"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"
"#;

#[test]
fn every_policy_problem_names_its_line_and_column() {
    // Each case: the second grant (its header on line 8), and the one problem it has.
    for (grant, problem) in [
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\", \"WHISPER\"]\nas_user = \"any\"",
            "line 11, column 35: grant[1].capabilities: \"WHISPER\" is not SILENT_MONITOR or BARGE",
        ),
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = []\nas_user = \"any\"",
            "line 11, column 16: grant[1].capabilities: list SILENT_MONITOR and/or BARGE",
        ),
        (
            "name = \"bad\"\ninstances = []\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 10, column 13: grant[1].instances: list instance ids, or [\"*\"] for every instance",
        ),
        (
            "name = \"bad\"\ninstances = [\"inst-1\", \"\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 10, column 24: grant[1].instances: list instance ids, or [\"*\"] for every instance",
        ),
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"me\"",
            "line 12, column 11: grant[1].as_user: \"me\" is not \"self\", \"any\" or a list of user ids",
        ),
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = []",
            "line 12, column 11: grant[1].as_user: a list of user ids must hold at least one non-empty id",
        ),
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"\nagents = { queues = [] }",
            "line 13, column 10: grant[1].agents: queues must list at least one non-empty id",
        ),
        (
            "name = \"bad\"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"\n\n[grant.agents]\nteams = [\"t\"]",
            "line 14, column 1: grant[1].agents: \"teams\" is not hierarchy_groups, users or queues",
        ),
        (
            "name = \"good\"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 9, column 8: grant[1].name: \"good\" is used by an earlier grant",
        ),
        (
            "name = \" \"\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 9, column 8: grant[1].name: must not be empty",
        ),
        (
            "name = \"bad\"\nclaims = { groups = [], level = 3 }\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 10, column 21: grant[1].claims: \"groups\" lists no value, so it could never hold",
        ),
        (
            "name = \"bad\"\nclaims = { level = 3, \"realm..roles\" = \"sup\" }\ninstances = [\"*\"]\ncapabilities = [\"BARGE\"]\nas_user = \"any\"",
            "line 10, column 23: grant[1].claims: \"realm..roles\" is not a claim name or dotted path",
        ),
    ] {
        let text = format!("{GOOD_GRANT}\n[[grant]]\n{grant}\n");
        assert_eq!(problems_of(&text), [problem], "{text}");
    }
}

#[test]
fn a_policy_problem_after_a_line_set_aside_names_the_line_as_written() {
    // The unknown key on line 3 is set aside to read on; the problem on
    // line 6 must still be counted in the file as written, CRLF and all.
    let text = "[[grant]]\r\nname = \"x\"\r\nbogus = \"a long value that is set aside\"\r\ninstances = [\"*\"]\r\ncapabilities = [\"BARGE\"]\r\nas_user = \"me\"\r\n";
    assert_eq!(
        problems_of(text),
        [
            "line 3, column 1: grant.bogus: unknown field `bogus`, expected one of `name`, `claims`, `instances`, `capabilities`, `as_user`, `connect_permissions`, `agents`, `require_reason`",
            "line 6, column 11: grant[0].as_user: \"me\" is not \"self\", \"any\" or a list of user ids",
        ]
    );
}

#[test]
fn a_policy_problem_counts_columns_in_characters() {
    // "ÉCOUTE" is 8 characters and 9 bytes: WHISPER is at column 27, as an
    // editor counts, not 28.
    let text =
        "[[grant]]\nname = \"x\"\ninstances = [\"*\"]\ncapabilities = [\"ÉCOUTE\", \"WHISPER\"]\nas_user = \"any\"\n";
    assert_eq!(
        problems_of(text),
        [
            "line 4, column 17: grant[0].capabilities: \"ÉCOUTE\" is not SILENT_MONITOR or BARGE",
            "line 4, column 27: grant[0].capabilities: \"WHISPER\" is not SILENT_MONITOR or BARGE",
        ]
    );
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
        D::ReasonRequired,
        D::ConnectPermissionMissing,
        D::AgentOutOfScope,
    ];
    assert!(order.windows(2).all(|w| w[0].rank() < w[1].rank()));
}
