//! `explain --facts FILE` (docs/policy.md) agrees with the gateway on every
//! Connect-aware case of tests/connect_aware.rs: the real gateway asks the
//! SigV4-checking stand-in, the real binary reads the same records from a
//! facts file, and both tell the same decision, grant or reason, and agent.
//! The same holds with each record as the AWS CLI prints it, and the
//! example facts file decides with the example configuration. Without the
//! facts a grant needs, explain exits 2 naming them; a facts file that is
//! not one exits 2 naming the member (and where a misplaced CLI output goes).
//! `explain --list`, from a facts file's get-current-user-data output or
//! with `--live`, lists what the gateway's `GET /contacts/monitorable` lists
//! for the same directory.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{json, Map, Value};
use support::connect_records::{self as records, grant, harness as with_policy, SUPERVISOR};
use support::{Harness, Options, BODY};

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

const ALLOW: (&str, &str) = ("allow", "connect-aware");
const OUT_OF_SCOPE: (&str, &str) = ("deny", "agent_out_of_scope");
const NO_PERMISSION: (&str, &str) = ("deny", "connect_permission_missing");

/// What Connect knows in one case (connect_aware.rs's records): primed into
/// the stand-in for the gateway, written as a facts file for explain.
#[derive(Default)]
struct World {
    contact: Option<Value>,
    users: Vec<Value>,
    profiles: Vec<(&'static str, &'static [&'static str])>,
    /// ListSecurityProfilePermissions' page size in the stand-in (a file has no pages).
    page_size: Option<usize>,
}

impl World {
    /// `contact-1` on queue `q-1`, with this agent in these groups (Level1 first).
    fn contact(self, agent: Option<&str>, groups: &[&str]) -> Self {
        World {
            contact: Some(records::contact(agent, groups)),
            ..self
        }
    }

    /// The supervisor, in `group` if any, with these security profiles.
    fn supervisor(mut self, group: Option<&str>, profiles: &[&str]) -> Self {
        self.users.push(records::supervisor(group, profiles));
        self
    }

    /// The supervisor with these profiles, each with its permissions.
    fn permissions(self, profiles: &'static [(&'static str, &'static [&'static str])]) -> Self {
        let ids: Vec<&str> = profiles.iter().map(|(id, _)| *id).collect();
        World {
            profiles: profiles.to_vec(),
            ..self.supervisor(None, &ids)
        }
    }

    fn prime(&self, h: &Harness) {
        if let Some(contact) = &self.contact {
            h.connect.add_contact(contact.clone());
        }
        for user in &self.users {
            h.connect.add_user(user.clone());
        }
        for (id, permissions) in &self.profiles {
            h.connect.add_security_profile(id, permissions);
        }
        if let Some(size) = self.page_size {
            h.connect.set_permissions_page_size(size);
        }
    }

    /// The same records as a facts file: SearchUsers finds a user by its
    /// `Username`, so the usernames are the users'.
    fn facts(&self) -> Value {
        let by = |key: &str| -> Map<String, Value> {
            self.users
                .iter()
                .map(|u| (u[key].as_str().unwrap().to_owned(), u.clone()))
                .collect()
        };
        let mut facts = json!({
            "users": by("Id"),
            "security_profiles": self.profiles.iter().map(|(id, p)| (id.to_string(), json!(p))).collect::<Map<_, _>>(),
            "usernames": by("Username").into_iter().map(|(name, u)| (name, u["Id"].clone())).collect::<Map<_, _>>(),
        });
        if let Some(contact) = &self.contact {
            facts["contact"] = contact.clone();
        }
        facts
    }
}

/// The supervisor monitoring `contact-1` with these capabilities.
fn asking(capabilities: &[&str]) -> Value {
    json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": SUPERVISOR,
           "AllowedMonitorCapabilities": capabilities})
}

fn supervisor_claims(h: &Harness) -> Value {
    h.claims("sup-1", "supervisors", "user-1")
}

/// A verdict as told: the decision, the grant or the reason, and the
/// contact's agent (`null` for none) when a contact was looked at.
#[derive(Debug, PartialEq)]
struct Told {
    decision: String,
    detail: String,
    agent_id: Option<Value>,
}

impl Told {
    fn outcome(&self) -> (&str, &str) {
        (&self.decision, &self.detail)
    }
}

/// What the gateway told: its answer, its audit line, and whether it looked
/// the contact up.
async fn gateway_told(h: &Harness, world: &World, claims: &Value, body: &Value) -> Told {
    let a = h.monitor(Some(&h.keys.ed.mint(claims)), &body.to_string()).await;
    let line = h.audit_lines().pop().expect("the request is audited");
    let told = Told {
        decision: line["decision"].as_str().unwrap().to_owned(),
        detail: line["reason"].as_str().unwrap_or_default().to_owned(),
        agent_id: (h.connect.calls("DescribeContact") > 0).then(|| {
            let contact = world.contact.as_ref().expect("a contact was primed");
            contact["AgentInfo"]["Id"].clone()
        }),
    };
    match told.outcome() {
        ("allow", _) => assert_eq!(a.status, 200, "{:?}", a.body),
        (_, reason) => {
            assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{:?}", a.body);
            assert!(a.message().ends_with(reason), "{reason}: {}", a.message());
        }
    }
    h.assert_signatures_verified();
    told
}

/// Runs `explain` on the harness's configuration: exit code, stdout, stderr.
fn explain(h: &Harness, claims: &Value, body: &Value, facts: Option<&PathBuf>) -> (i32, String, String) {
    explain_on(&h.settings.config_file, claims, body, facts.map(PathBuf::as_path))
}

/// Runs `explain` on a configuration file: exit code, stdout, stderr.
fn explain_on(config: &Path, claims: &Value, body: &Value, facts: Option<&Path>) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .arg("explain")
        .arg("--config")
        .arg(config)
        .args(["--claims", &claims.to_string(), "--request", &body.to_string()])
        .env_remove("CMG_CONFIG");
    if let Some(file) = facts {
        command.arg("--facts").arg(file);
    }
    let out = command.output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a facts file into the harness's directory.
fn facts_file(h: &Harness, facts: &Value) -> PathBuf {
    let file = h.dir.path().join("facts.json");
    std::fs::write(&file, facts.to_string()).unwrap();
    file
}

/// What explain told, given `facts` (or none), with its exit code checked.
fn explain_told(h: &Harness, claims: &Value, body: &Value, facts: Option<&Value>) -> Told {
    let file = facts.map(|f| facts_file(h, f));
    let (code, stdout, stderr) = explain(h, claims, body, file.as_ref());
    let verdict: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{code}: {stdout}{stderr}"));
    let told = Told {
        decision: verdict["decision"].as_str().unwrap().to_owned(),
        detail: verdict["grant"]
            .as_str()
            .or(verdict["reason"].as_str())
            .unwrap()
            .to_owned(),
        agent_id: verdict.get("agent_id").cloned(),
    };
    let expected_code = if told.decision == "allow" { 0 } else { 1 };
    assert_eq!(code, expected_code, "{stdout}{stderr}");
    told
}

/// The gateway and `explain --facts` on the same records tell the same
/// verdict, and it is the one connect_aware.rs expects.
async fn agree(case: &str, h: &Harness, world: World, claims: Value, body: Value, expected: (&str, &str)) {
    let facts = world.facts();
    agree_given(case, h, world, facts, claims, body, expected).await;
}

/// As `agree`, with the records written into the facts file as `facts`.
async fn agree_given(
    case: &str,
    h: &Harness,
    world: World,
    facts: Value,
    claims: Value,
    body: Value,
    expected: (&str, &str),
) {
    world.prime(h);
    let gateway = gateway_told(h, &world, &claims, &body).await;
    let explained = explain_told(h, &claims, &body, Some(&facts));
    assert_eq!(explained, gateway, "{case}");
    assert_eq!(gateway.outcome(), expected, "{case}");
}

/// The world's facts file with `member` as the AWS CLI prints it: the whole
/// output of describe-contact, of describe-user for each user, of
/// list-security-profile-permissions for each profile, of search-users.
fn printed_by_the_cli(world: &World, member: &str) -> Value {
    let mut facts = world.facts();
    let given = facts[member].take();
    facts[member] = match member {
        "contact" => json!({"Contact": given}),
        "users" => Value::Object(
            given
                .as_object()
                .unwrap()
                .iter()
                .map(|(id, user)| (id.clone(), json!({"User": user})))
                .collect(),
        ),
        "security_profiles" => Value::Object(
            given
                .as_object()
                .unwrap()
                .iter()
                .map(|(id, permissions)| {
                    let output = json!({"Permissions": permissions,
                                        "LastModifiedTime": "2024-03-02T11:02:10.433000+00:00",
                                        "LastModifiedRegion": "eu-west-2"});
                    (id.clone(), output)
                })
                .collect(),
        ),
        "usernames" => {
            let arn = |id: &Value| format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/agent/{id}");
            let users: Vec<Value> = world
                .users
                .iter()
                .map(|u| json!({"Id": u["Id"], "Username": u["Username"], "Arn": arn(&u["Id"])}))
                .collect();
            json!({"ApproximateTotalCount": users.len(), "Users": users})
        }
        _ => unreachable!("{member} is no member of a facts file"),
    };
    facts
}

#[tokio::test]
async fn my_hierarchy_explain_agrees_with_the_gateway() {
    let cases = [
        (
            "agent in the supervisor's group",
            World::default()
                .supervisor(Some("g-team"), &["sp-1"])
                .contact(Some("agent-1"), &["g-site", "g-team"]),
            ALLOW,
        ),
        (
            "agent in a sub-group",
            World::default()
                .supervisor(Some("g-team"), &["sp-1"])
                .contact(Some("agent-1"), &["g-site", "g-team", "g-sub"]),
            ALLOW,
        ),
        (
            "agent in a sibling group",
            World::default()
                .supervisor(Some("g-team"), &["sp-1"])
                .contact(Some("agent-1"), &["g-site", "g-other"]),
            OUT_OF_SCOPE,
        ),
        (
            "supervisor without a group",
            World::default()
                .supervisor(None, &["sp-1"])
                .contact(Some("agent-1"), &["g-site", "g-team"]),
            OUT_OF_SCOPE,
        ),
        (
            "contact without an agent (agent_id null)",
            World::default()
                .supervisor(Some("g-team"), &["sp-1"])
                .contact(None, &[]),
            OUT_OF_SCOPE,
        ),
    ];
    for (case, world, expected) in cases {
        let h = with_policy(grant("agents = \"my_hierarchy\"")).await;
        let claims = supervisor_claims(&h);
        agree(case, &h, world, claims, asking(&["SILENT_MONITOR"]), expected).await;
    }
}

#[tokio::test]
async fn listed_groups_users_and_queues_explain_agrees_with_the_gateway() {
    for (rule, expected) in [
        ("agents = { hierarchy_groups = [\"g-team\"] }", ALLOW),
        ("agents = { hierarchy_groups = [\"g-other\"] }", OUT_OF_SCOPE),
        ("agents = { users = [\"agent-1\"] }", ALLOW),
        ("agents = { users = [\"agent-2\"] }", OUT_OF_SCOPE),
        ("agents = { queues = [\"q-1\"] }", ALLOW),
        ("agents = { queues = [\"q-2\"] }", OUT_OF_SCOPE),
    ] {
        let h = with_policy(grant(rule)).await;
        let claims = supervisor_claims(&h);
        // No user is known: the supervisor is not needed, by either.
        let world = World::default().contact(Some("agent-1"), &["g-site", "g-team"]);
        agree(rule, &h, world, claims, asking(&["SILENT_MONITOR"]), expected).await;
    }
}

#[tokio::test]
async fn connect_permissions_explain_agrees_with_the_gateway() {
    let cases = [
        (
            "silent monitor with ManagerListenIn",
            &["SILENT_MONITOR"][..],
            World::default().permissions(&[("sp-1", &["ManagerListenIn"])]),
            ALLOW,
        ),
        (
            "barge with ManagerListenIn alone",
            &["SILENT_MONITOR", "BARGE"],
            World::default().permissions(&[("sp-1", &["ManagerListenIn"])]),
            NO_PERMISSION,
        ),
        (
            "barge with both, spread over two profiles",
            &["SILENT_MONITOR", "BARGE"],
            World::default().permissions(&[
                ("sp-1", &["ManagerListenIn"]),
                ("sp-2", &["BasicAgentAccess", "ManagerBargeIn"]),
            ]),
            ALLOW,
        ),
        (
            "barge with both, the second on the stand-in's second page",
            &["BARGE"],
            World {
                page_size: Some(2),
                ..World::default().permissions(&[("sp-1", &["BasicAgentAccess", "ManagerListenIn", "ManagerBargeIn"])])
            },
            ALLOW,
        ),
        (
            "silent monitor without ManagerListenIn",
            &["SILENT_MONITOR"],
            World::default().permissions(&[("sp-1", &["ManagerBargeIn"])]),
            NO_PERMISSION,
        ),
    ];
    for (case, capabilities, world, expected) in cases {
        let h = with_policy(grant("connect_permissions = true")).await;
        let claims = supervisor_claims(&h);
        // No contact is known: it is not needed, by either (no agent_id).
        agree(case, &h, world, claims, asking(capabilities), expected).await;
    }
}

#[tokio::test]
async fn the_furthest_grants_reason_explain_agrees_with_the_gateway() {
    // The first grant stops at as_user; the second reaches the agent check.
    let others = "[[grant]]\nname = \"others\"\nclaims = { groups = \"supervisors\" }\ninstances = [\"*\"]\n\
                  capabilities = [\"SILENT_MONITOR\"]\nas_user = [\"someone-else\"]\n";
    let h = with_policy(format!("{others}{}", grant("agents = { users = [\"agent-2\"] }"))).await;
    let claims = supervisor_claims(&h);
    let world = World::default().contact(Some("agent-1"), &["g-team"]);
    agree("ranking", &h, world, claims, asking(&["SILENT_MONITOR"]), OUT_OF_SCOPE).await;
}

#[tokio::test]
async fn a_grant_without_facts_allows_in_both_with_no_facts_at_all() {
    let claims_only = "[[grant]]\nname = \"claims only\"\nclaims = { groups = \"supervisors\" }\n\
                       instances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\"]\nas_user = \"self\"\n";
    let h = with_policy(format!(
        "{claims_only}{}",
        grant("agents = \"my_hierarchy\"\nconnect_permissions = true")
    ))
    .await;
    let claims = supervisor_claims(&h);
    let body: Value = serde_json::from_str(BODY).unwrap();
    agree(
        "claims only",
        &h,
        World::default(),
        claims.clone(),
        body.clone(),
        ("allow", "claims only"),
    )
    .await;
    assert_eq!(h.connect.received().len(), 1, "MonitorContact alone");
    // Nor does explain need a facts file for it: no agent_id, nothing missing.
    let told = explain_told(&h, &claims, &body, None);
    assert_eq!(
        told,
        Told {
            decision: "allow".into(),
            detail: "claims only".into(),
            agent_id: None,
        }
    );
}

#[tokio::test]
async fn user_name_claim_explain_agrees_with_the_gateway() {
    let cases = [
        (
            "a username Connect knows",
            Some("sup@example.com"),
            ("allow", "supervisors"),
        ),
        (
            "a username Connect does not know",
            Some("nobody@example.com"),
            ("deny", "user_not_allowed"),
        ),
        ("no username claim", None, ("deny", "user_not_allowed")),
    ];
    for (case, username, expected) in cases {
        let h = Harness::with(Options {
            config: r#"
                [policy]
                user_name_claim = "email"
            "#,
            ..Options::default()
        })
        .await;
        let claims = h.claims_with(json!({"connect_user_id": null, "email": username}));
        let body: Value = serde_json::from_str(BODY).unwrap();
        agree(case, &h, World::default().supervisor(None, &[]), claims, body, expected).await;
    }
}

#[tokio::test]
async fn explain_exits_2_naming_the_facts_a_grant_needs_and_was_not_given() {
    let h = with_policy(format!(
        "{}{}",
        grant("agents = \"my_hierarchy\""),
        grant("connect_permissions = true").replace("connect-aware", "by permission")
    ))
    .await;
    let claims = supervisor_claims(&h);
    let body = asking(&["SILENT_MONITOR"]);
    let world = World::default()
        .supervisor(Some("g-team"), &["sp-1"])
        .contact(Some("agent-1"), &["g-team"]);
    let given = |f: Value| Some(facts_file(&h, &f));
    let cases = [
        (
            None,
            "explain: the grant needs contact \"contact-1\" and user \"user-1\"; give them in --facts",
        ),
        (
            given(json!({"users": world.facts()["users"]})),
            "explain: the grant needs contact \"contact-1\"; give it in --facts",
        ),
        (
            // A contact, but not the one asked about.
            given(json!({"contact": {"Id": "contact-2"}, "users": world.facts()["users"]})),
            "explain: the grant needs contact \"contact-1\"; give it in --facts",
        ),
    ];
    for (file, message) in cases {
        let (code, stdout, stderr) = explain(&h, &claims, &body, file.as_ref());
        assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
        assert_eq!(stderr.trim(), message);
    }
    // The first grant refuses (agent out of scope); the second needs the
    // supervisor's profile, which is not given.
    let world = World::default()
        .supervisor(Some("g-team"), &["sp-1"])
        .contact(Some("agent-1"), &["g-other"]);
    let file = facts_file(
        &h,
        &json!({"contact": world.facts()["contact"], "users": world.facts()["users"]}),
    );
    let (code, _, stderr) = explain(&h, &claims, &body, Some(&file));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.trim(),
        "explain: the grant needs security profile \"sp-1\"; give it in --facts"
    );
}

#[tokio::test]
async fn a_facts_file_that_is_not_one_exits_2_naming_the_file_and_the_member() {
    let h = with_policy(grant("agents = \"my_hierarchy\"")).await;
    let claims = supervisor_claims(&h);
    let body = asking(&["SILENT_MONITOR"]);
    let cases = [
        (
            Some(r#"{"contacts": {"Id": "contact-1"}}"#),
            "\"contacts\": unknown member; expected one of contact, users, security_profiles, usernames, live",
        ),
        (Some(r#"{"users": ["user-1"]}"#), "users: must be an object"),
        (
            Some(r#"{"contact": {"Id": 1}}"#),
            "contact.Id: must be the contact's id",
        ),
        (
            Some(r#"{"security_profiles": {"sp-1": "ManagerListenIn"}}"#),
            "security_profiles.\"sp-1\": must be a list of permission names",
        ),
        (Some("{"), "not JSON"),
        (None, "cannot read"),
    ];
    for (text, problem) in cases {
        let file = h.dir.path().join("bad-facts.json");
        let _ = std::fs::remove_file(&file);
        if let Some(text) = text {
            std::fs::write(&file, text).unwrap();
        }
        let (code, stdout, stderr) = explain(&h, &claims, &body, Some(&file));
        assert_eq!((code, stdout.as_str()), (2, ""), "{text:?}: {stderr}");
        let expected = format!("--facts {}: {problem}", file.display());
        assert!(
            stderr.trim().starts_with(&expected),
            "{text:?}:\n{stderr}\nnot:\n{expected}"
        );
    }
}

#[tokio::test]
async fn describe_contact_output_is_accepted_as_it_comes() {
    for (case, groups, expected) in [
        ("agent in the supervisor's group", &["g-site", "g-team"][..], ALLOW),
        ("agent in a sibling group", &["g-site", "g-other"], OUT_OF_SCOPE),
    ] {
        let h = with_policy(grant("agents = \"my_hierarchy\"")).await;
        let claims = supervisor_claims(&h);
        let world = World::default()
            .supervisor(Some("g-team"), &["sp-1"])
            .contact(Some("agent-1"), groups);
        let facts = printed_by_the_cli(&world, "contact");
        agree_given(case, &h, world, facts, claims, asking(&["SILENT_MONITOR"]), expected).await;
    }
}

#[tokio::test]
async fn a_file_that_is_one_describe_contact_output_is_read_as_its_contact() {
    let h = with_policy(grant("agents = { hierarchy_groups = [\"g-team\"] }")).await;
    let claims = supervisor_claims(&h);
    let world = World::default().contact(Some("agent-1"), &["g-site", "g-team"]);
    // The file as `aws connect describe-contact > facts.json` writes it.
    let facts = json!({"Contact": world.facts()["contact"]});
    agree_given("bare", &h, world, facts, claims, asking(&["SILENT_MONITOR"]), ALLOW).await;
}

#[tokio::test]
async fn describe_user_output_is_accepted_as_it_comes() {
    for (case, group, expected) in [
        ("supervisor over the agent's group", Some("g-team"), ALLOW),
        ("supervisor without a group", None, OUT_OF_SCOPE),
    ] {
        let h = with_policy(grant("agents = \"my_hierarchy\"")).await;
        let claims = supervisor_claims(&h);
        let world = World::default()
            .supervisor(group, &["sp-1"])
            .contact(Some("agent-1"), &["g-site", "g-team"]);
        let facts = printed_by_the_cli(&world, "users");
        agree_given(case, &h, world, facts, claims, asking(&["SILENT_MONITOR"]), expected).await;
    }
}

#[tokio::test]
async fn list_security_profile_permissions_output_is_accepted_as_it_comes() {
    for (case, world, expected) in [
        (
            "barge with both, spread over two profiles",
            World::default().permissions(&[
                ("sp-1", &["ManagerListenIn"]),
                ("sp-2", &["BasicAgentAccess", "ManagerBargeIn"]),
            ]),
            ALLOW,
        ),
        (
            "barge with ManagerListenIn alone",
            World::default().permissions(&[("sp-1", &["ManagerListenIn"])]),
            NO_PERMISSION,
        ),
    ] {
        let h = with_policy(grant("connect_permissions = true")).await;
        let claims = supervisor_claims(&h);
        let mut facts = printed_by_the_cli(&world, "users");
        facts["security_profiles"] = printed_by_the_cli(&world, "security_profiles")["security_profiles"].take();
        if let Some(sp2) = world.profiles.get(1) {
            // A plain list sits beside an output in one file.
            facts["security_profiles"]["sp-2"] = json!(sp2.1);
        }
        let body = asking(&["SILENT_MONITOR", "BARGE"]);
        agree_given(case, &h, world, facts, claims, body, expected).await;
    }
}

#[tokio::test]
async fn search_users_output_is_accepted_as_it_comes() {
    for (case, username, expected) in [
        ("a username Connect knows", "sup@example.com", ("allow", "supervisors")),
        (
            "a username Connect does not know",
            "nobody@example.com",
            ("deny", "user_not_allowed"),
        ),
    ] {
        let h = Harness::with(Options {
            config: r#"
                [policy]
                user_name_claim = "email"
            "#,
            ..Options::default()
        })
        .await;
        let claims = h.claims_with(json!({"connect_user_id": null, "email": username}));
        let body: Value = serde_json::from_str(BODY).unwrap();
        let world = World::default().supervisor(None, &[]);
        let facts = printed_by_the_cli(&world, "usernames");
        agree_given(case, &h, world, facts, claims, body, expected).await;
    }
}

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The example facts file's contact, its agent, and the team lead (the
/// supervisor given as describe-user output), in the example's instance.
const EXAMPLE_CONTACT: &str = "8f1c2d3e-4b5a-4c6d-9e8f-0a1b2c3d4e5f";
const EXAMPLE_AGENT: &str = "7e3a1b2c-1111-4a2b-8c3d-4e5f6a7b8c9d";
const EXAMPLE_LEAD: &str = "2b6c8d1e-2222-4f3a-9b4c-5d6e7f8a9b0c";
const EXAMPLE_INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

/// Runs `explain` on a configuration with the example facts file: exit
/// code and verdict.
fn explain_example(config: &Path, claims: &Value, body: &Value) -> (i32, Value) {
    let (code, stdout, stderr) = explain_on(config, claims, body, Some(&repo("config/facts.example.json")));
    let verdict = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{code}: {stdout}{stderr}"));
    (code, verdict)
}

/// The example policy with the Connect-aware grant it ships commented out
/// (the block from `# [[grant]]` to the next bare `#`) in force.
fn with_its_connect_aware_grant(policy: &str) -> String {
    let mut in_grant = false;
    let lines: Vec<&str> = policy
        .lines()
        .map(|line| {
            in_grant = line == "# [[grant]]" || (in_grant && line.starts_with("# "));
            match line.strip_prefix("# ") {
                Some(uncommented) if in_grant => uncommented,
                _ => line,
            }
        })
        .collect();
    lines.join("\n") + "\n"
}

#[test]
fn the_example_facts_file_gives_the_example_configs_decisions() {
    let lead_monitoring = json!({"InstanceId": EXAMPLE_INSTANCE, "ContactId": EXAMPLE_CONTACT,
                                 "UserId": EXAMPLE_LEAD, "AllowedMonitorCapabilities": ["SILENT_MONITOR", "BARGE"]});
    let config = repo("config/gateway.example.toml");
    // As shipped, the policy's grants are on claims alone: the file is read
    // (and must be a facts file) but no grant asks it anything.
    let cc_lead = json!({"realm_access": {"roles": ["cc-lead"]}, "connect_user_id": EXAMPLE_LEAD});
    assert_eq!(
        explain_example(&config, &cc_lead, &lead_monitoring),
        (0, json!({"decision": "allow", "grant": "contact-centre leads"}))
    );

    // With its Connect-aware grant in force, the file's contact, supervisor
    // and both security profiles (one a plain list, one the CLI's output)
    // are what allows a team lead to barge in on their agent's call.
    let dir = tempfile::tempdir().unwrap();
    for file in ["gateway.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{file}")), dir.path().join(file)).unwrap();
    }
    let policy = with_its_connect_aware_grant(&std::fs::read_to_string(repo("config/policy.example.toml")).unwrap());
    assert!(
        policy.contains("\nname = \"team leads: their own agents' calls\"\n"),
        "{policy}"
    );
    std::fs::write(dir.path().join("policy.example.toml"), policy).unwrap();
    let config = dir.path().join("gateway.example.toml");
    let team_lead = json!({"groups": "team-leads", "connect_user_id": EXAMPLE_LEAD});
    assert_eq!(
        explain_example(&config, &team_lead, &lead_monitoring),
        (
            0,
            json!({"decision": "allow", "grant": "team leads: their own agents' calls", "agent_id": EXAMPLE_AGENT})
        )
    );
    // Another lead (no such user in the file) is told what to give.
    let other = json!({"groups": "team-leads", "connect_user_id": "someone-else"});
    let mut body = lead_monitoring.clone();
    body["UserId"] = json!("someone-else");
    let (code, stdout, stderr) = explain_on(&config, &other, &body, Some(&repo("config/facts.example.json")));
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert_eq!(
        stderr.trim(),
        "explain: the grant needs user \"someone-else\"; give it in --facts"
    );
}

#[test]
fn the_example_policys_connect_aware_grant_is_found_in_its_comments() {
    let policy =
        "[[grant]]\nname = \"a\"\n\n# A comment.\n#\n# [[grant]]\n# name = \"b\"\n# agents = \"my_hierarchy\"\n\
                  #\n# Or instead:\n# agents = { queues = [\"<queue id>\"] }\n";
    assert_eq!(
        with_its_connect_aware_grant(policy),
        "[[grant]]\nname = \"a\"\n\n# A comment.\n#\n[[grant]]\nname = \"b\"\nagents = \"my_hierarchy\"\n\
         #\n# Or instead:\n# agents = { queues = [\"<queue id>\"] }\n"
    );
}

#[test]
fn the_example_policy_listens_without_connect_and_barges_only_with_its_permission() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["gateway.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{file}")), dir.path().join(file)).unwrap();
    }
    let policy = with_its_connect_aware_grant(&std::fs::read_to_string(repo("config/policy.example.toml")).unwrap());
    assert!(policy.contains("\nname = \"floor managers: listen\"\n"), "{policy}");
    std::fs::write(dir.path().join("policy.example.toml"), policy).unwrap();
    let config = dir.path().join("gateway.example.toml");
    let manager = json!({"groups": "floor-managers", "connect_user_id": EXAMPLE_LEAD});
    let asking = |capabilities: &[&str]| {
        json!({"InstanceId": EXAMPLE_INSTANCE, "ContactId": EXAMPLE_CONTACT, "UserId": EXAMPLE_LEAD,
               "AllowedMonitorCapabilities": capabilities})
    };
    // Listening needs no fact: no facts file at all.
    let (code, stdout, stderr) = explain_on(&config, &manager, &asking(&["SILENT_MONITOR"]), None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap(),
        json!({"decision": "allow", "grant": "floor managers: listen"})
    );
    // Barging needs the supervisor's permissions: without them, explain says so.
    let (code, _, stderr) = explain_on(&config, &manager, &asking(&["SILENT_MONITOR", "BARGE"]), None);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("user \"{EXAMPLE_LEAD}\"")), "{stderr}");
    // The example file's lead holds ManagerListenIn and ManagerBargeIn.
    assert_eq!(
        explain_example(&config, &manager, &asking(&["SILENT_MONITOR", "BARGE"])),
        (
            0,
            json!({"decision": "allow", "grant": "floor managers: barge when Connect allows it"})
        )
    );
    // Without ManagerBargeIn, the barge is refused and listening still allowed.
    let mut facts: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("config/facts.example.json")).unwrap()).unwrap();
    facts["security_profiles"]["7ab13c6d-7777-4e8f-8a9b-0c1d2e3f4a5b"] = json!(["AccessMetrics"]);
    let file = dir.path().join("facts.json");
    std::fs::write(&file, facts.to_string()).unwrap();
    let (code, stdout, stderr) = explain_on(&config, &manager, &asking(&["SILENT_MONITOR", "BARGE"]), Some(&file));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap(),
        json!({"decision": "deny", "reason": "connect_permission_missing"})
    );
}

/// explain's stderr for a facts file of `text` with the example configuration.
fn refused_file(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("facts.json");
    std::fs::write(&file, text).unwrap();
    let claims = json!({"groups": "supervisors-team-a", "connect_user_id": "u1"});
    let body = json!({"InstanceId": EXAMPLE_INSTANCE, "ContactId": "c", "UserId": "u1"});
    let (code, stdout, stderr) = explain_on(&repo("config/gateway.example.toml"), &claims, &body, Some(&file));
    assert_eq!((code, stdout.as_str()), (2, ""), "{text}: {stderr}");
    stderr
        .trim()
        .strip_prefix(&format!("--facts {}: ", file.display()))
        .unwrap_or_else(|| panic!("{stderr}"))
        .to_owned()
}

#[test]
fn a_misplaced_cli_output_exits_2_saying_where_it_goes() {
    let to_users = "this looks like aws connect describe-user output: put it under users.\"<UserId>\"";
    let to_profiles = "this looks like aws connect list-security-profile-permissions output: \
                       put it under security_profiles.\"<SecurityProfileId>\"";
    let to_usernames = "this looks like aws connect search-users output: put it under usernames";
    let to_contact = "this looks like aws connect describe-contact output: put it under contact";
    for (text, problem) in [
        (
            r#"{"User": {"Id": "u1"}}"#,
            format!("\"User\": unknown member; {to_users}"),
        ),
        (
            r#"{"Permissions": ["ManagerListenIn"], "LastModifiedRegion": "us-east-1"}"#,
            format!("\"Permissions\": unknown member; {to_profiles}"),
        ),
        (
            r#"{"Users": [], "ApproximateTotalCount": 0}"#,
            format!("\"Users\": unknown member; {to_usernames}"),
        ),
        (
            r#"{"Contact": {"Id": "c"}, "users": {}}"#,
            format!("\"Contact\": unknown member; {to_contact}"),
        ),
        (
            r#"{"users": {"User": {"Id": "u1"}}}"#,
            format!("users.\"User\": {to_users}"),
        ),
        (
            r#"{"security_profiles": {"Permissions": ["ManagerListenIn"]}}"#,
            format!("security_profiles.\"Permissions\": {to_profiles}"),
        ),
        (r#"{"contact": {"User": {"Id": "u1"}}}"#, format!("contact: {to_users}")),
        (
            r#"{"users": {"u1": {"Contact": {"Id": "c"}}}}"#,
            format!("users.\"u1\": {to_contact}"),
        ),
        (
            r#"{"usernames": {"sup": {"User": {"Id": "u1"}}}}"#,
            format!("usernames.\"sup\": {to_users}"),
        ),
        (
            r#"{"UserDataList": [], "ApproximateTotalCount": 0}"#,
            "\"UserDataList\": unknown member; this looks like aws connect get-current-user-data output: \
             put it under live"
                .to_string(),
        ),
    ] {
        assert_eq!(refused_file(text), problem, "{text}");
    }
}

#[test]
fn one_page_of_a_paginated_cli_output_exits_2_asking_for_the_whole() {
    let whole =
        "(it has a NextToken); give the whole output, as the CLI prints it without --no-paginate or --max-items";
    assert_eq!(
        refused_file(r#"{"security_profiles": {"sp-1": {"Permissions": ["ManagerListenIn"], "NextToken": "AAE"}}}"#),
        format!(
            "security_profiles.\"sp-1\": is one page of aws connect list-security-profile-permissions output {whole}"
        )
    );
    assert_eq!(
        refused_file(r#"{"usernames": {"Users": [{"Id": "u1", "Username": "sup"}], "NextToken": "AAE"}}"#),
        format!("usernames: is one page of aws connect search-users output {whole}")
    );
    // The CLI does not page through get-current-user-data itself.
    assert_eq!(
        refused_file(r#"{"live": {"UserDataList": [], "NextToken": "AAE"}}"#),
        "live: is one page of aws connect get-current-user-data output (it has a NextToken), and the CLI prints \
         one page at a time: run it again with --next-token until a page has none, and give every page, in \
         order, as a list"
    );
}

#[test]
fn a_cli_output_with_members_it_never_has_exits_2_naming_them() {
    for (text, problem) in [
        (
            r#"{"contact": {"Contact": {"Id": "c"}, "ResponseMetadata": {}}}"#,
            "contact.\"ResponseMetadata\": unknown member of aws connect describe-contact output",
        ),
        (
            r#"{"users": {"u1": {"User": {"Id": "u1"}, "Tags": {}}}}"#,
            "users.\"u1\".\"Tags\": unknown member of aws connect describe-user output",
        ),
        (
            r#"{"users": {"u1": {"User": {"Id": "u2"}}}}"#,
            "users.\"u1\".User.Id: is not \"u1\", the user id it is given under",
        ),
        (
            r#"{"security_profiles": {"sp-1": {"Permissions": "ManagerListenIn"}}}"#,
            "security_profiles.\"sp-1\".Permissions: must be a list of permission names (strings)",
        ),
        (
            r#"{"usernames": {"Users": [{"Id": "u1"}]}}"#,
            "usernames.Users[0].Username: must be a username (a non-empty string)",
        ),
        (
            r#"{"Contact": {}}"#,
            "Contact.Id: must be the contact's id (a non-empty string)",
        ),
    ] {
        assert_eq!(refused_file(text), problem, "{text}");
    }
}

#[tokio::test]
async fn explain_live_looks_the_facts_up_with_the_gateways_credentials() {
    let h = with_policy(grant("agents = \"my_hierarchy\"\nconnect_permissions = true")).await;
    h.connect.add_user(records::supervisor(Some("g-team"), &["sp-1"]));
    h.connect.add_security_profile("sp-1", &["ManagerListenIn"]);
    h.connect
        .add_contact(records::contact(Some("agent-1"), &["g-site", "g-team"]));
    let mut command = Command::new(BIN);
    command
        .args(["explain", "--live", "--config"])
        .arg(&h.settings.config_file)
        .args(["--claims", &supervisor_claims(&h).to_string()])
        .args(["--request", &asking(&["SILENT_MONITOR"]).to_string()])
        .env_remove("CMG_CONFIG")
        .env_remove("AWS_PROFILE")
        // The standard chain finds the gateway's credentials in the environment.
        .env("AWS_ACCESS_KEY_ID", support::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", support::SECRET_KEY)
        .env("AWS_SESSION_TOKEN", support::SESSION_TOKEN);
    // Off this task: the Connect stand-in answers on this runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap(),
        json!({"decision": "allow", "grant": "connect-aware", "agent_id": "agent-1"})
    );
    assert_eq!(h.connect.calls("DescribeContact"), 1);
    assert_eq!(h.connect.calls("ListSecurityProfilePermissions"), 1);
    assert_eq!(h.connect.calls("MonitorContact"), 0, "explain never monitors");
    h.assert_signatures_verified();
}

// The listing: `explain --list INSTANCE_ID`.

const INSTANCE: &str = "inst-1";

/// Runs the binary with these arguments (and the gateway's credentials in
/// the environment, for `--live`), off the async runtime: exit code,
/// stdout, stderr.
async fn run(args: Vec<String>) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env_remove("CMG_CONFIG")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", support::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", support::SECRET_KEY)
        .env("AWS_SESSION_TOKEN", support::SESSION_TOKEN);
    // Off this task: the Connect stand-in answers on this runtime meanwhile.
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `explain --list` on a configuration, with `facts` (`--facts FILE` or `--live`) if any.
fn list_args(config: &Path, claims: &Value, instance_id: &str, facts: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = vec!["explain".into(), "--config".into(), config.display().to_string()];
    args.extend([
        "--claims".into(),
        claims.to_string(),
        "--list".into(),
        instance_id.into(),
    ]);
    args.extend(facts.iter().map(|f| f.to_string()));
    args
}

/// What `explain --list` printed, with exit 0.
async fn explain_listed(args: Vec<String>) -> Value {
    let (code, stdout, stderr) = run(args).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}{stderr}"))
}

/// The gateway's `GET /contacts/monitorable` for `token`: its `data`.
async fn gateway_listed(h: &Harness, token: &str) -> Value {
    let request = Request::get(h.url(&format!("/contacts/monitorable?instance_id={INSTANCE}")))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(request).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"].clone()
}

/// Two listings are the same but for when they were made.
fn assert_same_listing(explained: &Value, gateway: &Value, case: &str) {
    let without_as_of = |listing: &Value| {
        let mut listing = listing.clone();
        let as_of = listing.as_object_mut().unwrap().remove("as_of").unwrap();
        assert!(as_of.as_str().is_some_and(|t| t.ends_with('Z')), "{case}: {as_of}");
        listing
    };
    assert_eq!(without_as_of(explained), without_as_of(gateway), "{case}");
}

/// The listed contact ids, in order.
fn listed_ids(listing: &Value) -> Vec<&str> {
    listing["contacts"]
        .as_array()
        .unwrap_or_else(|| panic!("{listing}"))
        .iter()
        .map(|c| c["contact_id"].as_str().unwrap())
        .collect()
}

/// Whole seconds `ago` before now, in epoch seconds.
fn seconds_ago(ago: u64) -> f64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    (now - ago) as f64
}

/// Epoch seconds as CLI version 2 prints a time (ISO 8601 in UTC's offset).
fn printed_time(epoch_seconds: f64) -> String {
    let at = UNIX_EPOCH + Duration::from_secs_f64(epoch_seconds);
    humantime::format_rfc3339_micros(at).to_string().replace('Z', "+00:00")
}

/// A directory of agents on contacts, primed into the stand-in for the
/// gateway and written as a facts file for explain (listing.rs's team):
/// a site with a team (and its sub-team) the supervisor `user-1` leads, and
/// an unrelated sibling team; every agent on routing profile `rp-all`.
struct Directory {
    /// Each group with its parent, parents first.
    groups: Vec<(&'static str, Option<&'static str>)>,
    /// Each agent with its group.
    agents: Vec<(&'static str, &'static str)>,
    /// Each agent's contacts as GetCurrentUserData gives them (epoch seconds).
    contacts: Vec<(&'static str, Value)>,
    permissions: &'static [&'static str],
}

impl Directory {
    fn team(permissions: &'static [&'static str]) -> Self {
        let contact = |id: &str, channel: &str, state: &str, ago: u64, queue: &str| {
            let at = seconds_ago(ago);
            json!({"ContactId": id, "Channel": channel, "InitiationMethod": "INBOUND", "AgentContactState": state,
                   "StateStartTimestamp": at, "ConnectedToAgentTimestamp": at,
                   "Queue": {"Id": queue, "Arn": format!("arn:aws:connect:eu-west-2:123456789012:instance/{INSTANCE}/queue/{queue}")}})
        };
        Directory {
            groups: vec![
                ("g-site", None),
                ("g-team", Some("g-site")),
                ("g-sub", Some("g-team")),
                ("g-other", Some("g-site")),
            ],
            agents: vec![
                ("agent-other", "g-other"),
                ("agent-sub", "g-sub"),
                ("agent-team", "g-team"),
            ],
            contacts: vec![
                ("agent-team", contact("c-team-voice", "VOICE", "CONNECTED", 300, "q-1")),
                ("agent-team", contact("c-team-chat", "CHAT", "CONNECTED", 200, "q-1")),
                ("agent-team", contact("c-team-ended", "VOICE", "ENDED", 400, "q-1")),
                (
                    "agent-sub",
                    contact("c-sub-hold", "VOICE", "CONNECTED_ONHOLD", 100, "q-2"),
                ),
                ("agent-sub", contact("c-sub-incoming", "VOICE", "INCOMING", 10, "q-2")),
                ("agent-other", contact("c-other", "VOICE", "CONNECTED", 250, "q-1")),
            ],
            permissions,
        }
    }

    fn supervisor() -> Value {
        json!({"Id": SUPERVISOR, "Username": "sup@example.com", "HierarchyGroupId": "g-team",
               "SecurityProfileIds": ["sp-1"]})
    }

    fn prime(&self, h: &Harness) {
        for (group, parent) in &self.groups {
            h.connect.add_hierarchy_group(group, *parent);
        }
        h.connect.add_user(Self::supervisor());
        h.connect.add_security_profile("sp-1", self.permissions);
        h.connect.add_routing_profile("rp-all", &["q-1", "q-2"]);
        for (agent, group) in &self.agents {
            h.connect
                .add_user(json!({"Id": agent, "Username": format!("{agent}@example.com"),
                                      "HierarchyGroupId": group, "RoutingProfileId": "rp-all",
                                      "SecurityProfileIds": ["sp-agent"]}));
        }
        for (agent, contact) in &self.contacts {
            h.connect.add_agent_contact(agent, contact.clone());
        }
    }

    /// A group's path, top first.
    fn path(&self, group: &str) -> Vec<&'static str> {
        let (id, parent) = self.groups.iter().find(|(g, _)| *g == group).unwrap();
        let mut path = parent.map(|p| self.path(p)).unwrap_or_default();
        path.push(id);
        path
    }

    /// `aws connect get-current-user-data` output for every agent, with
    /// every contact (no contact filter), as CLI version 2 prints it.
    fn get_current_user_data_output(&self) -> Value {
        let arn =
            |kind: &str, id: &str| format!("arn:aws:connect:eu-west-2:123456789012:instance/{INSTANCE}/{kind}/{id}");
        let levels = ["LevelOne", "LevelTwo", "LevelThree", "LevelFour", "LevelFive"];
        let list: Vec<Value> = self
            .agents
            .iter()
            .map(|(agent, group)| {
                let path: Map<String, Value> = self
                    .path(group)
                    .into_iter()
                    .zip(levels)
                    .map(|(g, level)| (level.to_owned(), json!({"Id": g, "Arn": arn("agent-group", g)})))
                    .collect();
                let contacts: Vec<Value> = self
                    .contacts
                    .iter()
                    .filter(|(a, _)| a == agent)
                    .map(|(_, contact)| {
                        let mut printed = contact.clone();
                        for name in ["StateStartTimestamp", "ConnectedToAgentTimestamp"] {
                            printed[name] = json!(printed_time(contact[name].as_f64().unwrap()));
                        }
                        printed
                    })
                    .collect();
                json!({"User": {"Id": agent, "Arn": arn("agent", agent)},
                       "RoutingProfile": {"Id": "rp-all", "Arn": arn("routing-profile", "rp-all")},
                       "HierarchyPath": path,
                       "Status": {"StatusStartTimestamp": printed_time(seconds_ago(900)), "StatusName": "Available"},
                       "Contacts": contacts})
            })
            .collect();
        json!({"UserDataList": list, "ApproximateTotalCount": self.agents.len()})
    }

    /// The directory as a facts file: the supervisor, their profile, and
    /// the agents on contacts under `live`.
    fn facts(&self) -> Value {
        json!({
            "users": {SUPERVISOR: Self::supervisor()},
            "security_profiles": {"sp-1": self.permissions},
            "live": self.get_current_user_data_output(),
        })
    }
}

#[tokio::test]
async fn a_listing_from_given_facts_lists_what_the_gateway_lists_for_the_same_directory() {
    let leads = "connect_permissions = true\nagents = \"my_hierarchy\"";
    let cases: [(&str, String, &'static [&'static str], &[&str]); 7] = [
        (
            "their subtree, listening",
            grant(leads),
            &["ManagerListenIn"],
            &["c-team-voice", "c-team-chat", "c-sub-hold"],
        ),
        (
            "their subtree, listening and barging",
            grant(leads),
            &["ManagerListenIn", "ManagerBargeIn"],
            &["c-team-voice", "c-team-chat", "c-sub-hold"],
        ),
        ("no permission to listen", grant(leads), &["BasicAgentAccess"], &[]),
        (
            "named agents",
            grant("agents = { users = [\"agent-team\"] }"),
            &[],
            &["c-team-voice", "c-team-chat"],
        ),
        (
            "named queues",
            grant("agents = { queues = [\"q-2\"] }"),
            &[],
            &["c-sub-hold"],
        ),
        (
            "named groups",
            grant("agents = { hierarchy_groups = [\"g-sub\", \"g-other\"] }"),
            &[],
            &["c-other", "c-sub-hold"],
        ),
        (
            "claims alone: the whole instance",
            grant(""),
            &[],
            &["c-team-voice", "c-other", "c-team-chat", "c-sub-hold"],
        ),
    ];
    for (case, policy, permissions, expected) in cases {
        let h = with_policy(policy).await;
        let directory = Directory::team(permissions);
        directory.prime(&h);
        let gateway = gateway_listed(&h, &h.supervisor_token()).await;
        assert_eq!(listed_ids(&gateway), expected, "{case}: {gateway}");

        let file = facts_file(&h, &directory.facts());
        let config = &h.settings.config_file;
        let claims = supervisor_claims(&h);
        let file_arg = file.display().to_string();
        let given = explain_listed(list_args(config, &claims, INSTANCE, &["--facts", &file_arg])).await;
        assert_same_listing(&given, &gateway, case);
        let live = explain_listed(list_args(config, &claims, INSTANCE, &["--live"])).await;
        assert_same_listing(&live, &gateway, case);
        assert_eq!(h.connect.calls("MonitorContact"), 0, "explain never monitors");
        h.assert_signatures_verified();
    }
}

#[tokio::test]
async fn a_caller_no_grant_matches_lists_nothing_and_exits_0() {
    let h = with_policy(grant("")).await;
    let directory = Directory::team(&[]);
    directory.prime(&h);
    let stranger = h.claims("x-1", "agents", SUPERVISOR);
    let gateway = gateway_listed(&h, &h.keys.ed.mint(&stranger)).await;
    let file = facts_file(&h, &directory.facts()).display().to_string();
    let given = explain_listed(list_args(
        &h.settings.config_file,
        &stranger,
        INSTANCE,
        &["--facts", &file],
    ))
    .await;
    assert_eq!(listed_ids(&given), Vec::<&str>::new());
    assert_same_listing(&given, &gateway, "no grant");
    // Nothing was needed: not even a facts file.
    let none = explain_listed(list_args(&h.settings.config_file, &stranger, INSTANCE, &[])).await;
    assert_eq!(listed_ids(&none), Vec::<&str>::new());
}

#[tokio::test]
async fn a_listing_without_live_in_the_facts_names_what_is_missing_and_exits_2() {
    let live = "; give it in --facts (a listing's agents and their contacts as aws connect get-current-user-data \
                output, under live)";
    let directory = Directory::team(&["ManagerListenIn"]);
    let mut without_live = directory.facts();
    without_live.as_object_mut().unwrap().remove("live");
    let cases = [
        (
            grant("connect_permissions = true\nagents = \"my_hierarchy\""),
            Some(without_live.clone()),
            format!("explain: the listing needs the users of hierarchy group \"g-team\" and below{live}"),
        ),
        (
            grant("agents = { users = [\"agent-team\"] }"),
            Some(without_live),
            format!("explain: the listing needs the current contacts of agents [\"agent-team\"]{live}"),
        ),
        (
            grant("agents = { queues = [\"q-2\"] }"),
            None,
            format!("explain: the listing needs the current contacts of the agents of queues [\"q-2\"]{live}"),
        ),
        (
            grant(""),
            Some(json!({})),
            format!("explain: the listing needs every user of the instance{live}"),
        ),
        // The supervisor first: what their grants cover depends on them.
        (
            grant("connect_permissions = true\nagents = \"my_hierarchy\""),
            None,
            "explain: the listing needs user \"user-1\"; give it in --facts".to_string(),
        ),
    ];
    for (policy, facts, message) in cases {
        let h = with_policy(policy).await;
        let file = facts.map(|f| facts_file(&h, &f).display().to_string());
        let facts: Vec<&str> = file.iter().flat_map(|f| ["--facts", f.as_str()]).collect();
        let args = list_args(&h.settings.config_file, &supervisor_claims(&h), INSTANCE, &facts);
        let (code, stdout, stderr) = run(args).await;
        assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
        assert_eq!(stderr.trim(), message);
    }
}

#[tokio::test]
async fn list_with_request_is_a_usage_error_and_one_of_them_is_required() {
    let h = with_policy(grant("")).await;
    let config = h.settings.config_file.display().to_string();
    let claims = supervisor_claims(&h).to_string();
    let body = asking(&["SILENT_MONITOR"]).to_string();
    let explain = |more: &[&str]| {
        let mut args: Vec<String> = ["explain", "--config", &config, "--claims", &claims]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend(more.iter().map(|a| a.to_string()));
        args
    };
    let (code, stdout, stderr) = run(explain(&["--request", &body, "--list", INSTANCE])).await;
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.contains("the argument '--request <REQUEST>' cannot be used with '--list <INSTANCE_ID>'"),
        "{stderr}"
    );
    let (code, stdout, stderr) = run(explain(&[])).await;
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.contains("the following required arguments were not provided") && stderr.contains("--list"),
        "{stderr}"
    );
    // The listing's rules for its instance id.
    let long = "i".repeat(101);
    for (instance_id, problem) in [
        ("", "--list: the instance id must not be empty"),
        (long.as_str(), "--list: the instance id must be at most 100 characters"),
        ("inst\n1", "--list: the instance id must not contain control characters"),
    ] {
        let (code, stdout, stderr) = run(explain(&["--list", instance_id])).await;
        assert_eq!((code, stdout.as_str(), stderr.trim()), (2, "", problem));
    }
}

/// The example listing facts file's agents' contacts: the team lead's own
/// agent on a call and a chat, and another team's agent on a call.
const EXAMPLE_CALL: &str = "8f1c2d3e-4b5a-4c6d-9e8f-0a1b2c3d4e5f";
const EXAMPLE_CHAT: &str = "a2b3c4d5-6e7f-4a8b-9c0d-1e2f3a4b5c6d";
const EXAMPLE_OTHER_TEAMS_CALL: &str = "b3c4d5e6-7f8a-4b9c-8d1e-2f3a4b5c6d7e";

#[tokio::test]
async fn the_example_listing_facts_file_lists_what_the_example_configs_callers_may_monitor() {
    let facts = repo("config/facts-listing.example.json").display().to_string();
    let facts = ["--facts", facts.as_str()];
    // As shipped, contact-centre leads may monitor every contact, both ways.
    let config = repo("config/gateway.example.toml");
    let cc_lead = json!({"realm_access": {"roles": ["cc-lead"]}, "connect_user_id": EXAMPLE_LEAD});
    let listed = explain_listed(list_args(&config, &cc_lead, EXAMPLE_INSTANCE, &facts)).await;
    assert_eq!(
        listed_ids(&listed),
        [EXAMPLE_OTHER_TEAMS_CALL, EXAMPLE_CALL, EXAMPLE_CHAT],
        "oldest first"
    );
    assert_eq!(
        (&listed["instance_id"], &listed["complete"]),
        (&json!(EXAMPLE_INSTANCE), &json!(true))
    );
    assert_eq!(
        listed["contacts"][2],
        json!({"contact_id": EXAMPLE_CHAT, "agent_id": EXAMPLE_AGENT, "queue_id": "5e9f1a4b-5555-4c6d-8e7f-8a9b0c1d2e3f",
               "channel": "CHAT", "state": "CONNECTED_ONHOLD", "since": "2024-05-14T09:31:40Z",
               "capabilities": ["SILENT_MONITOR", "BARGE"], "grant": "contact-centre leads"})
    );
    // An instance the configuration does not allow is refused, as a decision is.
    let (code, stdout, stderr) = run(list_args(
        &config,
        &cc_lead,
        "99999999-0000-0000-0000-000000000000",
        &facts,
    ))
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        serde_json::from_str::<Value>(stdout.trim()).unwrap(),
        json!({"decision": "deny", "reason": "instance_not_allowed"})
    );

    // With its Connect-aware grant in force, a team lead lists only their
    // own agent's contacts: the file's lead is in that agent's team.
    let dir = tempfile::tempdir().unwrap();
    for file in ["gateway.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{file}")), dir.path().join(file)).unwrap();
    }
    let policy = with_its_connect_aware_grant(&std::fs::read_to_string(repo("config/policy.example.toml")).unwrap());
    std::fs::write(dir.path().join("policy.example.toml"), policy).unwrap();
    let config = dir.path().join("gateway.example.toml");
    let team_lead = json!({"groups": "team-leads", "connect_user_id": EXAMPLE_LEAD});
    let listed = explain_listed(list_args(&config, &team_lead, EXAMPLE_INSTANCE, &facts)).await;
    assert_eq!(listed_ids(&listed), [EXAMPLE_CALL, EXAMPLE_CHAT]);
    for contact in listed["contacts"].as_array().unwrap() {
        assert_eq!(contact["grant"], "team leads: their own agents' calls");
        assert_eq!(contact["capabilities"], json!(["SILENT_MONITOR", "BARGE"]));
    }
    // A floor manager listens to every call without Connect, and may barge
    // as their profiles allow.
    let manager = json!({"groups": "floor-managers", "connect_user_id": EXAMPLE_LEAD});
    let listed = explain_listed(list_args(&config, &manager, EXAMPLE_INSTANCE, &facts)).await;
    assert_eq!(listed_ids(&listed).len(), 3);
    for contact in listed["contacts"].as_array().unwrap() {
        assert_eq!(contact["grant"], "floor managers: barge when Connect allows it");
    }
}
