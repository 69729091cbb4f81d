//! The listing, `GET /contacts/monitorable` (docs/api.md, "The listing"),
//! against the Connect stand-in, which verifies every signature and, where a
//! test says so, throttles as Connect does. Every case also proves the
//! listing agrees with the dry run: each listed contact is allowed by
//! `/contact/monitor/check` with the listed capabilities and grant (and no
//! wider), and no unlisted live contact of the directory is allowed at all.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use connect_monitor_gateway::test_util::{ConnectStandIn, Reply};
use http::Request;
use http_body_util::Full;
use serde_json::{json, Value};

use crate::support::connect_records::{grant, SUPERVISOR};
use crate::support::{join_all, Answer, Harness, Options};

const INSTANCE: &str = "inst-1";

fn epoch_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// GETs the listing with a raw query string.
async fn list_query(h: &Harness, token: Option<&str>, query: &str) -> Answer {
    let mut request = Request::get(h.url(&format!("/contacts/monitorable{query}")));
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    h.send(request.body(Full::new(Bytes::new())).unwrap()).await
}

async fn list(h: &Harness, token: &str) -> Answer {
    list_query(h, Some(token), &format!("?instance_id={INSTANCE}")).await
}

/// The listed contact ids, in order.
fn ids(a: &Answer) -> Vec<String> {
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["data"]["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .map(|c| c["contact_id"].as_str().unwrap().to_owned())
        .collect()
}

fn entry<'a>(a: &'a Answer, contact: &str) -> &'a Value {
    a.body["data"]["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["contact_id"] == contact)
        .unwrap_or_else(|| panic!("{contact} is not listed: {:?}", a.body))
}

/// A live contact of the stand-in's directory: `since` seconds ago.
fn live(contact: &str, channel: &str, state: &str, ago: f64, queue: &str) -> Value {
    let at = epoch_now() - ago;
    json!({"ContactId": contact, "Channel": channel, "InitiationMethod": "INBOUND",
           "AgentContactState": state, "StateStartTimestamp": at, "ConnectedToAgentTimestamp": at,
           "Queue": {"Id": queue, "Arn": format!("arn:aws:connect:eu-west-2:123456789012:instance/{INSTANCE}/queue/{queue}")}})
}

/// Every contact the directory holds live (CONNECTED or CONNECTED_ONHOLD),
/// as (contact, agent).
type Directory = Vec<(&'static str, &'static str)>;

/// A site with a team (and a sub-team) and an unrelated sibling team: the
/// supervisor `user-1` leads `g-team`, with these permissions.
fn team_directory(connect: &ConnectStandIn, permissions: &[&str]) -> Directory {
    connect.add_hierarchy_group("g-site", None);
    connect.add_hierarchy_group("g-team", Some("g-site"));
    connect.add_hierarchy_group("g-sub", Some("g-team"));
    connect.add_hierarchy_group("g-other", Some("g-site"));
    connect.add_user(json!({"Id": SUPERVISOR, "Username": "sup@example.com",
                            "HierarchyGroupId": "g-team", "SecurityProfileIds": ["sp-1"]}));
    connect.add_security_profile("sp-1", permissions);
    for (agent, group) in [
        ("agent-team", "g-team"),
        ("agent-sub", "g-sub"),
        ("agent-other", "g-other"),
    ] {
        connect.add_user(json!({"Id": agent, "Username": format!("{agent}@example.com"),
                                "HierarchyGroupId": group, "SecurityProfileIds": ["sp-agent"]}));
    }
    connect.add_agent_contact("agent-team", live("c-team-voice", "VOICE", "CONNECTED", 300.0, "q-1"));
    connect.add_agent_contact("agent-team", live("c-team-chat", "CHAT", "CONNECTED", 200.0, "q-1"));
    connect.add_agent_contact("agent-team", live("c-team-ended", "VOICE", "ENDED", 400.0, "q-1"));
    connect.add_agent_contact(
        "agent-sub",
        live("c-sub-hold", "VOICE", "CONNECTED_ONHOLD", 100.0, "q-2"),
    );
    connect.add_agent_contact("agent-sub", live("c-sub-incoming", "VOICE", "INCOMING", 10.0, "q-2"));
    connect.add_agent_contact("agent-other", live("c-other", "VOICE", "CONNECTED", 250.0, "q-1"));
    vec![
        ("c-team-voice", "agent-team"),
        ("c-team-chat", "agent-team"),
        ("c-sub-hold", "agent-sub"),
        ("c-other", "agent-other"),
    ]
}

const LEADS_THEIR_TEAM: &str = "connect_permissions = true\nagents = \"my_hierarchy\"";

async fn harness_with(policy: String, config: &'static str) -> Harness {
    Harness::with(Options {
        policy,
        config,
        ..Options::default()
    })
    .await
}

/// Dry-runs `contact` as the supervisor for themselves.
async fn check(h: &Harness, token: &str, contact: &str, capabilities: &[&str]) -> Answer {
    let body = json!({"InstanceId": INSTANCE, "ContactId": contact, "UserId": SUPERVISOR,
                      "AllowedMonitorCapabilities": capabilities});
    let request = Request::post(h.url("/contact/monitor/check"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    h.send(request).await
}

/// The listing and the dry run agree: every listed contact is allowed with
/// its listed capabilities by its listed grant, and not with more; and, when
/// the list is complete, every unlisted live contact of `directory` is
/// refused whatever is asked.
async fn assert_agrees_with_check(h: &Harness, token: &str, listing: &Answer, directory: &Directory) {
    let listed = ids(listing);
    let complete = listing.body["data"]["complete"] == true;
    for (contact, agent) in directory {
        if listed.iter().any(|l| l == contact) {
            let e = entry(listing, contact);
            assert_eq!(e["agent_id"], *agent, "{contact}");
            let capabilities: Vec<&str> = e["capabilities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let a = check(h, token, contact, &capabilities).await;
            assert_eq!(a.status, 200, "{contact} listed with {capabilities:?}: {:?}", a.body);
            assert_eq!(a.body["data"]["grant"], e["grant"], "{contact}");
            if capabilities != ["SILENT_MONITOR", "BARGE"] {
                let wider = check(h, token, contact, &["SILENT_MONITOR", "BARGE"]).await;
                assert_eq!(
                    wider.status, 403,
                    "{contact} listed without the widest set: {:?}",
                    wider.body
                );
            }
        } else if complete {
            for capabilities in [&["SILENT_MONITOR"][..], &["BARGE"], &["SILENT_MONITOR", "BARGE"]] {
                let a = check(h, token, contact, capabilities).await;
                assert_eq!(a.status, 403, "{contact} unlisted, but {capabilities:?}: {:?}", a.body);
            }
        }
    }
    h.assert_signatures_verified();
}

#[tokio::test]
async fn a_supervisor_lists_exactly_the_live_contacts_of_their_subtree_oldest_first() {
    let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
    let directory = team_directory(&h.connect, &["ManagerListenIn"]);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    assert_eq!(
        ids(&a),
        ["c-team-voice", "c-team-chat", "c-sub-hold"],
        "the subtree's live contacts, oldest first; no INCOMING, ENDED or other team's"
    );
    let data = &a.body["data"];
    assert_eq!(data["instance_id"], INSTANCE);
    assert_eq!(data["complete"], true);
    assert!(data["as_of"].as_str().unwrap().ends_with('Z'), "{data}");
    let hold = entry(&a, "c-sub-hold");
    assert_eq!(hold["agent_id"], "agent-sub");
    assert_eq!(hold["queue_id"], "q-2");
    assert_eq!(hold["state"], "CONNECTED_ONHOLD");
    assert_eq!(hold["grant"], "connect-aware");
    assert!(hold["since"].as_str().unwrap().ends_with('Z'));
    // SearchUsers once for the subtree, then one GetCurrentUserData by agent.
    assert_eq!(h.connect.calls("SearchUsers"), 1);
    assert_eq!(h.connect.calls("GetCurrentUserData"), 1);
    let asked = h
        .connect
        .received()
        .into_iter()
        .find(|r| r.operation == "SearchUsers")
        .unwrap()
        .json();
    assert_eq!(
        asked["SearchCriteria"]["HierarchyGroupCondition"],
        json!({"Value": "g-team", "HierarchyGroupMatchType": "WITH_CHILD_GROUPS"})
    );
    let line = h.audit_lines().pop().unwrap();
    assert_eq!(
        (&line["listing"], &line["dry_run"], &line["contacts"], &line["status"]),
        (&json!(true), &json!(true), &json!(3), &json!(200)),
        "{line}"
    );
    assert_eq!(line["user_id"], SUPERVISOR);
    assert_eq!(line["instance_id"], INSTANCE);
    let (_, metrics) = h.admin("/metrics").await;
    for series in [
        r#"cmg_connect_lookups_total{operation="GetCurrentUserData",outcome="ok"} 1"#,
        r#"cmg_connect_lookups_total{operation="SearchUsers",outcome="ok"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series} in:\n{metrics}");
    }
    assert_agrees_with_check(&h, &token, &a, &directory).await;
}

#[tokio::test]
async fn listen_in_alone_lists_silent_monitor_and_listen_in_with_barge_in_lists_both() {
    for (permissions, capabilities) in [
        (&["ManagerListenIn"][..], json!(["SILENT_MONITOR"])),
        (
            &["ManagerListenIn", "ManagerBargeIn"],
            json!(["SILENT_MONITOR", "BARGE"]),
        ),
    ] {
        let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
        let directory = team_directory(&h.connect, permissions);
        let token = h.supervisor_token();
        let a = list(&h, &token).await;
        assert_eq!(ids(&a).len(), 3, "{permissions:?}");
        for contact in ids(&a) {
            assert_eq!(entry(&a, &contact)["capabilities"], capabilities, "{permissions:?}");
        }
        assert_agrees_with_check(&h, &token, &a, &directory).await;
    }
}

#[tokio::test]
async fn without_listen_in_nothing_is_listed_and_no_contacts_are_asked_for() {
    let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
    let directory = team_directory(&h.connect, &["BasicAgentAccess"]);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    assert_eq!(ids(&a), Vec::<String>::new());
    assert_eq!(h.connect.calls("GetCurrentUserData"), 0);
    assert_eq!(h.connect.calls("SearchUsers"), 0);
    assert_agrees_with_check(&h, &token, &a, &directory).await;
}

#[tokio::test]
async fn an_agent_on_a_voice_and_a_chat_contact_has_both_listed() {
    let h = harness_with(grant("agents = { users = [\"agent-team\"] }"), "").await;
    let directory = team_directory(&h.connect, &[]);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    assert_eq!(ids(&a), ["c-team-voice", "c-team-chat"]);
    assert_eq!(entry(&a, "c-team-voice")["channel"], "VOICE");
    assert_eq!(entry(&a, "c-team-chat")["channel"], "CHAT");
    // Listed agents need no SearchUsers: GetCurrentUserData by agent.
    assert_eq!(h.connect.calls("SearchUsers"), 0);
    let asked = h
        .connect
        .received()
        .into_iter()
        .find(|r| r.operation == "GetCurrentUserData")
        .unwrap()
        .json();
    assert_eq!(asked["Filters"]["Agents"], json!(["agent-team"]));
    assert_agrees_with_check(&h, &token, &a, &directory).await;
}

#[tokio::test]
async fn a_queues_rule_asks_by_queue_and_lists_only_those_queues_contacts() {
    let h = harness_with(grant("agents = { queues = [\"q-2\"] }"), "").await;
    let directory = team_directory(&h.connect, &[]);
    h.connect.add_routing_profile("rp-all", &["q-1", "q-2"]);
    for (agent, group) in [
        ("agent-team", "g-team"),
        ("agent-sub", "g-sub"),
        ("agent-other", "g-other"),
    ] {
        h.connect
            .add_user(json!({"Id": agent, "HierarchyGroupId": group, "RoutingProfileId": "rp-all"}));
    }
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    assert_eq!(ids(&a), ["c-sub-hold"]);
    let asked = h
        .connect
        .received()
        .into_iter()
        .find(|r| r.operation == "GetCurrentUserData")
        .unwrap()
        .json();
    assert_eq!(asked["Filters"]["Queues"], json!(["q-2"]));
    assert_agrees_with_check(&h, &token, &a, &directory).await;
}

/// `n` agents with one live contact each, `agent-000`… on `c-000`…
fn many_agents(connect: &ConnectStandIn, n: usize) -> Directory {
    connect.add_user(json!({"Id": SUPERVISOR, "Username": "sup@example.com", "SecurityProfileIds": ["sp-1"]}));
    (0..n)
        .map(|i| {
            let (agent, contact) = (format!("agent-{i:03}"), format!("c-{i:03}"));
            connect.add_user(json!({"Id": agent, "SecurityProfileIds": ["sp-agent"]}));
            connect.add_agent_contact(&agent, live(&contact, "VOICE", "CONNECTED", 1000.0 - i as f64, "q-1"));
            let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
            (leak(contact), leak(agent))
        })
        .collect()
}

#[tokio::test]
async fn a_claims_only_grant_lists_the_whole_instance_page_by_page() {
    let h = harness_with(grant(""), "").await;
    h.connect.connect_default_quotas();
    let directory = many_agents(&h.connect, 250);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    let listed = ids(&a);
    assert_eq!(listed.len(), 250);
    assert_eq!(listed.first().map(String::as_str), Some("c-000"), "oldest first");
    assert_eq!(a.body["data"]["complete"], true);
    // Every user, 100 a page; their contacts, 100 agents a call.
    assert_eq!(h.connect.calls("SearchUsers"), 3);
    assert_eq!(h.connect.calls("GetCurrentUserData"), 3);
    assert_eq!(h.connect.throttled_total(), 0);
    for e in a.body["data"]["contacts"].as_array().unwrap() {
        assert_eq!(e["capabilities"], json!(["SILENT_MONITOR", "BARGE"]));
    }
    // A sample of the agreement (every contact would be 250 checks alike).
    let sample: Directory = directory.iter().step_by(50).copied().collect();
    assert_agrees_with_check(&h, &token, &a, &sample).await;
}

#[tokio::test]
async fn reaching_max_list_pages_gives_an_incomplete_list() {
    let h = harness_with(grant(""), "[connect.lookups]\nmax_list_pages = 4\n").await;
    let directory = many_agents(&h.connect, 250);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    assert_eq!(a.body["data"]["complete"], false, "{:?}", a.body);
    let listed = ids(&a);
    assert!(!listed.is_empty() && listed.len() <= 100, "{}", listed.len());
    assert_eq!(
        h.connect.calls("SearchUsers") + h.connect.calls("GetCurrentUserData"),
        4,
        "at most max_list_pages calls"
    );
    let sample: Directory = directory.iter().step_by(25).copied().collect();
    assert_agrees_with_check(&h, &token, &a, &sample).await;
    // An incomplete answer is not kept: the next listing asks again.
    list(&h, &token).await;
    assert!(h.connect.calls("GetCurrentUserData") >= 2);
}

#[tokio::test]
async fn a_caller_no_grant_matches_gets_an_empty_list_and_connect_is_not_called() {
    let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
    let directory = team_directory(&h.connect, &["ManagerListenIn"]);
    let stranger = h.keys.ed.mint(&h.claims("x-1", "agents", "user-1"));
    let a = list(&h, &stranger).await;
    assert_eq!(ids(&a), Vec::<String>::new());
    assert_eq!(a.body["data"]["complete"], true);
    assert_eq!(h.connect.received().len(), 0, "no Connect call at all");
    let line = h.audit_lines().pop().unwrap();
    assert_eq!(line["contacts"], 0);
    assert_agrees_with_check(&h, &stranger, &a, &directory).await;
}

#[tokio::test]
async fn a_bad_query_is_400_an_unknown_instance_403_and_no_token_401() {
    let h = harness_with(
        grant(""),
        "[[connect.instances]]\nid = \"inst-1\"\nregion = \"eu-west-2\"\n",
    )
    .await;
    let token = h.supervisor_token();
    let long = format!("?instance_id={}", "i".repeat(101));
    for (query, rule) in [
        ("", "is required"),
        ("?instance_id=", "must not be empty"),
        (long.as_str(), "at most 100 characters"),
        ("?instance_id=inst-1&instance_id=inst-1", "given once"),
        ("?instance_id=inst-1&team=x", "only query parameter"),
        ("?instance_id=inst%0A1", "control characters"),
    ] {
        let a = list_query(&h, Some(&token), query).await;
        assert_eq!((a.status, a.code()), (400, "VALIDATION_ERROR"), "{query}: {:?}", a.body);
        assert!(a.message().contains(rule), "{query}: {}", a.message());
        assert!(
            !a.message().contains("iiii") && !a.message().contains("team"),
            "{}",
            a.message()
        );
    }
    let a = list_query(&h, Some(&token), "?instance_id=inst-2").await;
    assert_eq!((a.status, a.code()), (403, "FORBIDDEN"));
    assert!(a.message().ends_with("instance_not_allowed"), "{}", a.message());
    let a = list_query(&h, None, "?instance_id=inst-1").await;
    assert_eq!((a.status, a.code()), (401, "UNAUTHENTICATED"));
    let post = Request::post(h.url("/contacts/monitorable?instance_id=inst-1"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(post).await;
    assert_eq!((a.status, a.code()), (405, "METHOD_NOT_ALLOWED"));
    assert_eq!(a.headers["allow"], "GET");
    assert_eq!(h.connect.received().len(), 0);
    for line in h.audit_lines() {
        assert_eq!(line["listing"], true, "{line}");
    }
}

#[tokio::test]
async fn get_current_user_data_throttled_past_retries_is_429_and_a_5xx_is_502() {
    for (reply, status, code) in [
        (Reply::throttled(), 429, "RATE_LIMITED"),
        (Reply::error(500, "InternalServiceException"), 502, "UPSTREAM_ERROR"),
    ] {
        let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
        team_directory(&h.connect, &["ManagerListenIn"]);
        h.connect.script_for("GetCurrentUserData", vec![reply; 10]);
        let a = list(&h, &h.supervisor_token()).await;
        assert_eq!((a.status, a.code()), (status, code), "{:?}", a.body);
        assert!(a.message().contains("GetCurrentUserData"), "{}", a.message());
        assert!(h.connect.calls("GetCurrentUserData") > 1, "retried");
        let line = h.audit_lines().pop().unwrap();
        assert_eq!((&line["listing"], &line["status"]), (&json!(true), &json!(status)));
    }
}

#[tokio::test]
async fn twenty_listings_in_one_second_make_one_listings_worth_of_calls() {
    let h = Arc::new(harness_with(grant(LEADS_THEIR_TEAM), "").await);
    h.connect.connect_default_quotas();
    let directory = team_directory(&h.connect, &["ManagerListenIn"]);
    let token = h.supervisor_token();
    let answers = join_all((0..20).map(|_| {
        let (h, token) = (h.clone(), token.clone());
        async move { list(&h, &token).await }
    }))
    .await;
    for a in &answers {
        assert_eq!(ids(a), ["c-team-voice", "c-team-chat", "c-sub-hold"]);
    }
    assert_eq!(h.connect.calls("GetCurrentUserData"), 1);
    assert_eq!(h.connect.calls("SearchUsers"), 1);
    assert_eq!(h.connect.calls("DescribeUser"), 1);
    assert_eq!(h.connect.calls("ListSecurityProfilePermissions"), 1);
    assert_eq!(h.connect.throttled_total(), 0);
    assert_agrees_with_check(&h, &token, &answers[0], &directory).await;
}

#[tokio::test]
async fn after_a_listing_a_check_on_a_listed_contact_needs_no_describe_contact() {
    let h = harness_with(grant(LEADS_THEIR_TEAM), "").await;
    team_directory(&h.connect, &["ManagerListenIn"]);
    let token = h.supervisor_token();
    let a = list(&h, &token).await;
    for contact in ids(&a) {
        let checked = check(&h, &token, &contact, &["SILENT_MONITOR"]).await;
        assert_eq!(checked.status, 200, "{contact}: {:?}", checked.body);
        assert_eq!(checked.body["data"]["grant"], "connect-aware");
    }
    assert_eq!(h.connect.calls("DescribeContact"), 0);
    let lines = h.audit_lines();
    assert!(lines.iter().skip(1).all(|l| l["lookups"] == 0), "{lines:?}");
}

#[tokio::test]
async fn a_preflight_for_the_listing_allows_get() {
    let h = harness_with(grant(""), "[cors]\nallowed_origins = [\"https://dash.example\"]\n").await;
    let preflight = Request::options(h.url("/contacts/monitorable?instance_id=inst-1"))
        .header("origin", "https://dash.example")
        .header("access-control-request-method", "GET")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let a = h.send(preflight).await;
    assert_eq!(a.status, 204);
    let methods = a.headers["access-control-allow-methods"].to_str().unwrap();
    assert!(methods.split(", ").any(|m| m == "GET"), "{methods}");
}
