//! The caches of Connect's facts (`[connect.lookups]`, docs/policy.md):
//! concurrent requests share one lookup per fact, answers are trusted for
//! `ttl`, a contact without an agent is asked again, SIGHUP forgets them all,
//! and the audit counts the lookups each request made.

use crate::support;

use std::time::Duration;

use connect_monitor_gateway::test_util::Reply;
use serde_json::Value;
use support::connect_records::{contact, grant, monitor, supervisor};
use support::{join_all, Harness, Options};

/// A grant needing every fact: the contact, the supervisor, its profiles.
async fn primed(ttl: &'static str, page_size: usize) -> Harness {
    let h = Harness::with(Options {
        policy: grant("agents = \"my_hierarchy\"\nconnect_permissions = true"),
        config: &format!("[connect.lookups]\nttl = \"{ttl}\""),
        ..Options::default()
    })
    .await;
    h.connect.add_user(supervisor(Some("g-team"), &["sp-1"]));
    h.connect
        .add_security_profile("sp-1", &["BasicAgentAccess", "ManagerListenIn", "ManagerBargeIn"]);
    h.connect.set_permissions_page_size(page_size);
    h.connect.add_contact(contact(Some("agent-1"), &["g-site", "g-team"]));
    h
}

fn lookup_calls(h: &Harness) -> [usize; 3] {
    ["DescribeContact", "DescribeUser", "ListSecurityProfilePermissions"].map(|op| h.connect.calls(op))
}

fn last_audit(h: &Harness) -> Value {
    h.audit_lines().pop().expect("an audit line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_share_one_lookup_per_fact() {
    let h = std::sync::Arc::new(primed("5m", 2).await);
    // Connect takes its time, so the 50 misses overlap and must share the calls.
    let slow = || Reply::Delayed(Duration::from_millis(300), Box::new(Reply::Success));
    h.connect.script_for("DescribeContact", [slow()]);
    h.connect.script_for("DescribeUser", [slow()]);
    let answers = join_all((0..50).map(|_| {
        let h = h.clone();
        async move { monitor(&h, &["SILENT_MONITOR"]).await }
    }))
    .await;
    assert!(
        answers.iter().all(|a| a.status == 200),
        "{:?}",
        answers.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(
        lookup_calls(&h),
        [1, 1, 2],
        "one DescribeContact, one DescribeUser, one call per permissions page"
    );
    assert_eq!(h.connect.calls("MonitorContact"), 50);
    let lookups: u64 = h.audit_lines().iter().map(|l| l["lookups"].as_u64().unwrap()).sum();
    assert_eq!(
        lookups, 4,
        "every HTTP call counted once, whoever made it: the contact, the user, two permission pages"
    );
    h.assert_signatures_verified();
}

#[tokio::test]
async fn facts_are_trusted_for_the_ttl_then_asked_again() {
    let h = primed("1s", 500).await;
    assert_eq!(monitor(&h, &["BARGE"]).await.status, 200);
    let first = last_audit(&h);
    assert_eq!(
        (first["lookups"].as_u64(), first["agent_id"].as_str()),
        (Some(3), Some("agent-1"))
    );
    assert_eq!(monitor(&h, &["BARGE"]).await.status, 200);
    assert_eq!(lookup_calls(&h), [1, 1, 1], "within ttl: no lookup");
    assert_eq!(last_audit(&h)["lookups"], 0);
    // The ttl is what is under test: let it pass.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(monitor(&h, &["BARGE"]).await.status, 200);
    assert_eq!(lookup_calls(&h), [2, 2, 2], "after ttl: asked again");
}

#[tokio::test]
async fn a_contact_without_an_agent_is_asked_again_next_time() {
    let h = primed("5m", 500).await;
    h.connect.add_contact(contact(None, &[]));
    let a = monitor(&h, &["SILENT_MONITOR"]).await;
    assert_eq!(a.status, 403, "{:?}", a.body);
    assert_eq!(last_audit(&h)["agent_id"], Value::Null);
    h.connect.add_contact(contact(Some("agent-1"), &["g-site", "g-team"]));
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    assert_eq!(h.connect.calls("DescribeContact"), 2);
    assert_eq!(h.connect.calls("DescribeUser"), 1, "the supervisor was kept");
}

#[tokio::test]
async fn a_failed_lookup_is_not_kept() {
    let h = primed("5m", 500).await;
    h.connect.script_for(
        "DescribeUser",
        [connect_monitor_gateway::test_util::Reply::error(
            404,
            "ResourceNotFoundException",
        )],
    );
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 404);
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    assert_eq!(h.connect.calls("DescribeUser"), 2);
}

#[tokio::test]
async fn sighup_empties_the_caches() {
    let h = primed("5m", 500).await;
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    h.gateway().sighup();
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    assert_eq!(lookup_calls(&h), [2, 2, 2]);
    let (_, metrics) = h.admin("/metrics").await;
    for series in [
        "cmg_connect_lookups_total{operation=\"DescribeContact\",outcome=\"ok\"} 2",
        "cmg_connect_lookups_total{operation=\"DescribeUser\",outcome=\"ok\"} 2",
    ] {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
}

#[tokio::test]
async fn a_resolved_username_is_cached_like_the_other_facts() {
    let h = Harness::with(Options {
        config: r#"
            [policy]
            user_name_claim = "email"
        "#,
        ..Options::default()
    })
    .await;
    h.connect.add_user(supervisor(None, &[]));
    let mut claims = h.claims_with(serde_json::json!({"connect_user_id": null}));
    claims["email"] = serde_json::json!("sup@example.com");
    let token = h.keys.ed.mint(&claims);
    for _ in 0..3 {
        assert_eq!(h.monitor(Some(&token), support::BODY).await.status, 200);
    }
    assert_eq!(h.connect.calls("SearchUsers"), 1, "resolved once, then from the cache");
    let lookups: Vec<u64> = h.audit_lines().iter().map(|l| l["lookups"].as_u64().unwrap()).collect();
    assert_eq!(lookups, [1, 0, 0]);
}

#[tokio::test]
async fn the_audit_counts_every_http_call_a_requests_lookups_made_pages_and_retries_included() {
    // Two permission pages, and DescribeContact throttled once before it answers.
    let h = primed("5m", 2).await;
    h.connect.script_for(
        "DescribeContact",
        [Reply::error(429, "ThrottlingException"), Reply::Success],
    );
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    assert_eq!(lookup_calls(&h), [2, 1, 2]);
    assert_eq!(
        last_audit(&h)["lookups"],
        5,
        "two DescribeContact attempts, one DescribeUser, two permission pages"
    );
    // From the cache: no call, nothing counted.
    assert_eq!(monitor(&h, &["SILENT_MONITOR"]).await.status, 200);
    assert_eq!(last_audit(&h)["lookups"], 0);
}

#[tokio::test]
async fn a_username_connect_does_not_know_is_counted_not_found_and_not_kept() {
    let h = Harness::with(Options {
        config: r#"
            [policy]
            user_name_claim = "email"
        "#,
        ..Options::default()
    })
    .await;
    let mut claims = h.claims_with(serde_json::json!({"connect_user_id": null}));
    claims["email"] = serde_json::json!("nobody@example.com");
    let token = h.keys.ed.mint(&claims);
    for _ in 0..2 {
        let answer = h.monitor(Some(&token), support::BODY).await;
        assert_eq!(answer.status, 403, "{:?}", answer.body);
    }
    assert_eq!(h.connect.calls("SearchUsers"), 2, "an unknown username is asked again");
    let (_, metrics) = h.admin("/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "cmg_connect_lookups_total{operation=\"SearchUsers\",outcome=\"not_found\"} 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("operation=\"SearchUsers\",outcome=\"ok\""),
        "{metrics}"
    );
}
