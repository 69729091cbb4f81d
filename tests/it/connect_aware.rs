//! Connect-aware grants (docs/policy.md), against the SigV4-checking
//! Connect stand-in: whose call it is (`agents`), what the supervisor's own
//! security profiles allow (`connect_permissions`), who the caller is by
//! username (`user_name_claim`), and failing closed when Connect cannot say.

use crate::support;

use connect_monitor_gateway::test_util::Reply;
use serde_json::json;
use support::connect_records::{contact, grant, harness, monitor, supervisor};
use support::{Answer, Harness, Options, BODY};

fn assert_denied(a: &Answer, reason: &str) {
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{:?}", a.body);
    assert!(a.message().ends_with(reason), "{reason}: {}", a.message());
}

/// Every lookup and call the stand-in got carried a good signature; and
/// MonitorContact was called exactly `monitored` times.
fn assert_connect_saw(h: &Harness, monitored: usize) {
    h.assert_signatures_verified();
    assert_eq!(h.connect.calls("MonitorContact"), monitored);
}

/// A case, the supervisor's group, the contact's agent and its groups, and
/// the deny reason (`None`: allowed).
type HierarchyCase = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    &'static [&'static str],
    Option<&'static str>,
);

/// A case, the capabilities asked for, the supervisor's profiles with their
/// permissions, the stand-in's page size, and whether it is allowed.
type PermissionCase = (
    &'static str,
    &'static [&'static str],
    &'static [(&'static str, &'static [&'static str])],
    usize,
    bool,
);

#[tokio::test]
async fn my_hierarchy_allows_the_supervisors_group_and_its_sub_groups_only() {
    let cases: [HierarchyCase; 5] = [
        (
            "agent in the supervisor's group",
            Some("g-team"),
            Some("agent-1"),
            &["g-site", "g-team"],
            None,
        ),
        (
            "agent in a sub-group",
            Some("g-team"),
            Some("agent-1"),
            &["g-site", "g-team", "g-sub"],
            None,
        ),
        (
            "agent in a sibling group",
            Some("g-team"),
            Some("agent-1"),
            &["g-site", "g-other"],
            Some("agent_out_of_scope"),
        ),
        (
            "supervisor without a group",
            None,
            Some("agent-1"),
            &["g-site", "g-team"],
            Some("agent_out_of_scope"),
        ),
        (
            "contact without an agent",
            Some("g-team"),
            None,
            &[],
            Some("agent_out_of_scope"),
        ),
    ];
    for (case, group, agent, groups, denied) in cases {
        let h = harness(grant("agents = \"my_hierarchy\"")).await;
        h.connect.add_user(supervisor(group, &["sp-1"]));
        h.connect.add_contact(contact(agent, groups));
        let a = monitor(&h, &["SILENT_MONITOR"]).await;
        match denied {
            None => assert_eq!(a.status, 200, "{case}: {:?}", a.body),
            Some(reason) => assert_denied(&a, reason),
        }
        assert_eq!(h.connect.calls("DescribeContact"), 1, "{case}");
        assert_eq!(h.connect.calls("DescribeUser"), 1, "{case}");
        assert_eq!(
            h.connect.calls("ListSecurityProfilePermissions"),
            0,
            "{case}: not needed"
        );
        assert_connect_saw(&h, usize::from(denied.is_none()));
    }
}

#[tokio::test]
async fn listed_hierarchy_groups_users_and_queues_each_allow_and_deny() {
    let cases = [
        ("agents = { hierarchy_groups = [\"g-team\"] }", true),
        ("agents = { hierarchy_groups = [\"g-other\"] }", false),
        ("agents = { users = [\"agent-1\"] }", true),
        ("agents = { users = [\"agent-2\"] }", false),
        ("agents = { queues = [\"q-1\"] }", true),
        ("agents = { queues = [\"q-2\"] }", false),
    ];
    for (rule, allowed) in cases {
        let h = harness(grant(rule)).await;
        h.connect.add_contact(contact(Some("agent-1"), &["g-site", "g-team"]));
        let a = monitor(&h, &["SILENT_MONITOR"]).await;
        match allowed {
            true => assert_eq!(a.status, 200, "{rule}: {:?}", a.body),
            false => assert_denied(&a, "agent_out_of_scope"),
        }
        assert_eq!(
            h.connect.calls("DescribeUser"),
            0,
            "{rule}: the supervisor is not needed"
        );
        assert_connect_saw(&h, usize::from(allowed));
    }
}

#[tokio::test]
async fn connect_permissions_follow_the_supervisors_security_profiles() {
    let cases: [PermissionCase; 5] = [
        (
            "silent monitor with ManagerListenIn",
            &["SILENT_MONITOR"],
            &[("sp-1", &["ManagerListenIn"])],
            500,
            true,
        ),
        (
            "barge with ManagerListenIn alone",
            &["SILENT_MONITOR", "BARGE"],
            &[("sp-1", &["ManagerListenIn"])],
            500,
            false,
        ),
        (
            "barge with both, spread over two profiles",
            &["SILENT_MONITOR", "BARGE"],
            &[
                ("sp-1", &["ManagerListenIn"]),
                ("sp-2", &["BasicAgentAccess", "ManagerBargeIn"]),
            ],
            500,
            true,
        ),
        (
            "barge with both, the second on the second page",
            &["BARGE"],
            &[("sp-1", &["BasicAgentAccess", "ManagerListenIn", "ManagerBargeIn"])],
            2,
            true,
        ),
        (
            "silent monitor without ManagerListenIn",
            &["SILENT_MONITOR"],
            &[("sp-1", &["ManagerBargeIn"])],
            500,
            false,
        ),
    ];
    for (case, capabilities, profiles, page_size, allowed) in cases {
        let h = harness(grant("connect_permissions = true")).await;
        let ids: Vec<&str> = profiles.iter().map(|(id, _)| *id).collect();
        h.connect.add_user(supervisor(None, &ids));
        for (id, permissions) in profiles {
            h.connect.add_security_profile(id, permissions);
        }
        h.connect.set_permissions_page_size(page_size);
        let a = monitor(&h, capabilities).await;
        match allowed {
            true => assert_eq!(a.status, 200, "{case}: {:?}", a.body),
            false => assert_denied(&a, "connect_permission_missing"),
        }
        assert_eq!(
            h.connect.calls("DescribeContact"),
            0,
            "{case}: the contact is not needed"
        );
        assert_connect_saw(&h, usize::from(allowed));
    }
}

#[tokio::test]
async fn the_deny_reason_is_the_grant_that_got_furthest() {
    // The first grant stops at as_user; the second reaches the agent check.
    let policy = format!(
        "[[grant]]\nname = \"others\"\nclaims = {{ groups = \"supervisors\" }}\ninstances = [\"*\"]\n\
         capabilities = [\"SILENT_MONITOR\"]\nas_user = [\"someone-else\"]\n{}",
        grant("agents = { users = [\"agent-2\"] }")
    );
    let h = harness(policy).await;
    h.connect.add_contact(contact(Some("agent-1"), &["g-team"]));
    assert_denied(&monitor(&h, &["SILENT_MONITOR"]).await, "agent_out_of_scope");
    assert_connect_saw(&h, 0);
}

#[tokio::test]
async fn a_grant_without_facts_allows_with_no_lookup() {
    let policy = format!(
        "[[grant]]\nname = \"claims only\"\nclaims = {{ groups = \"supervisors\" }}\ninstances = [\"*\"]\n\
         capabilities = [\"SILENT_MONITOR\"]\nas_user = \"self\"\n{}",
        grant("agents = \"my_hierarchy\"\nconnect_permissions = true")
    );
    let h = harness(policy).await;
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let received = h.connect.received();
    assert_eq!(received.len(), 1, "MonitorContact alone");
    assert_eq!(received[0].operation, "MonitorContact");
}

#[tokio::test]
async fn user_name_claim_resolves_the_caller_with_search_users() {
    let username_token = |h: &Harness, username: Option<&str>| {
        let mut claims = h.claims_with(json!({"connect_user_id": null}));
        if let Some(u) = username {
            claims["email"] = json!(u);
        }
        h.keys.ed.mint(&claims)
    };
    let cases = [
        ("a username Connect knows", Some("sup@example.com"), 200, 1),
        ("a username Connect does not know", Some("nobody@example.com"), 403, 1),
        ("no username claim", None, 403, 0),
    ];
    for (case, username, status, searches) in cases {
        let h = Harness::with(Options {
            config: r#"
                [policy]
                user_name_claim = "email"
            "#,
            ..Options::default()
        })
        .await;
        h.connect.add_user(supervisor(None, &[]));
        let a = h.monitor(Some(&username_token(&h, username)), BODY).await;
        assert_eq!(a.status, status, "{case}: {:?}", a.body);
        if status == 403 {
            assert_denied(&a, "user_not_allowed");
        }
        assert_eq!(h.connect.calls("SearchUsers"), searches, "{case}");
        assert_connect_saw(&h, usize::from(status == 200));
    }
}

#[tokio::test]
async fn a_failed_lookup_fails_closed_with_the_contracts_answer() {
    let hang = Reply::Delayed(std::time::Duration::from_secs(30), Box::new(Reply::Success));
    let three = |r: Reply| vec![r.clone(), r.clone(), r];
    let cases: [(&str, Vec<Reply>, u16, &str, &str); 6] = [
        (
            "not found",
            vec![Reply::error(404, "ResourceNotFoundException")],
            404,
            "NOT_FOUND",
            "no such contact",
        ),
        (
            "throttled past retries",
            three(Reply::error(429, "ThrottlingException")),
            429,
            "RATE_LIMITED",
            "connect:DescribeContact",
        ),
        (
            "access denied",
            vec![Reply::error(403, "AccessDeniedException")],
            502,
            "UPSTREAM_ERROR",
            "connect:DescribeContact",
        ),
        (
            "5xx past retries",
            three(Reply::error(500, "InternalServiceException")),
            502,
            "UPSTREAM_ERROR",
            "connect:DescribeContact",
        ),
        (
            "unreachable",
            three(Reply::Drop),
            502,
            "UPSTREAM_ERROR",
            "connect:DescribeContact",
        ),
        (
            "hanging",
            vec![hang],
            504,
            "UPSTREAM_TIMEOUT",
            "connect:DescribeContact",
        ),
    ];
    for (case, replies, status, code, names) in cases {
        let h = Harness::with(Options {
            policy: grant("agents = { queues = [\"q-1\"] }"),
            config: r#"
                [server]
                request_timeout = "2s"
            "#,
            ..Options::default()
        })
        .await;
        h.connect.add_contact(contact(Some("agent-1"), &["g-team"]));
        h.connect.script_for("DescribeContact", replies);
        let a = monitor(&h, &["SILENT_MONITOR"]).await;
        assert_eq!((a.status, a.code()), (status, code), "{case}: {:?}", a.body);
        assert!(a.message().contains(names), "{case}: {}", a.message());
        assert_connect_saw(&h, 0);
    }
}
