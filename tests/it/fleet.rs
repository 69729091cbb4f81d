//! Fleets (docs/operations.md, "Fleets"): replicas of the gateway against one
//! real `redis-server` and one Connect stand-in that throttles as Connect
//! does, per account (docs/configuration.md, `[shared]` and
//! `[connect.quotas]`). One budget per quota for the whole fleet, one call
//! per fleet for a missing fact, facts that cannot be forged or garbled into
//! a decision, and a server that dies without a request failing.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use support::connect_records::{contact, grant, supervisor, SUPERVISOR};
use support::redis::RedisServer;
use support::{Answer, Harness, Options, Replica};

/// Connect's own quotas for every budget (the harness's base sets them far
/// above any test's pace), four replicas' worth of fallback, a short deadline.
fn fleet_config(redis: Option<&RedisServer>) -> String {
    let mut config = r#"
[server]
request_timeout = "4s"

[connect]
max_rate = 2.0
burst = 5

[connect.quotas]
DescribeContact = { rate = 10.0, burst = 15 }
DescribeUser = { rate = 2.0, burst = 5 }
ListSecurityProfilePermissions = { rate = 2.0, burst = 5 }
SearchUsers = { rate = 2.0, burst = 5 }
"#
    .to_string();
    if let Some(redis) = redis {
        config.push_str(&format!(
            "\n[shared]\nurl = \"{}\"\nfallback_replicas = 4\n",
            redis.url()
        ));
    }
    config
}

/// The supervisors' grant: contacts of agents in the caller's hierarchy.
fn hierarchy_policy() -> String {
    grant("agents = \"my_hierarchy\"")
}

/// A contact with its own id, its agent in `groups`.
fn contact_with(id: &str, agent: &str, groups: &[&str]) -> Value {
    let mut record = contact(Some(agent), groups);
    record["Id"] = json!(id);
    record
}

fn body(contact_id: &str) -> String {
    json!({"InstanceId": "inst-1", "ContactId": contact_id, "UserId": SUPERVISOR}).to_string()
}

async fn fleet(h: &Harness, n: usize) -> Vec<Arc<Replica>> {
    let mut replicas = Vec::new();
    for _ in 0..n {
        replicas.push(Arc::new(h.replica().await));
    }
    replicas
}

/// A Connect-aware fleet: the supervisor in `g-team`, `contact-in` handled
/// by an agent of that team, `contact-out` by an agent elsewhere.
async fn hierarchy_harness(config: &str, env: &'static [(&'static str, &'static str)]) -> Harness {
    let h = Harness::with(Options {
        config,
        policy: hierarchy_policy(),
        env,
        ..Options::default()
    })
    .await;
    h.connect.add_user(supervisor(Some("g-team"), &[]));
    h.connect
        .add_contact(contact_with("contact-in", "agent-1", &["g-site", "g-team"]));
    h.connect
        .add_contact(contact_with("contact-out", "agent-2", &["g-site", "g-other"]));
    h
}

async fn get_text(h: &Harness, url: String) -> String {
    let request = Request::get(url).body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), h.client.request(request))
        .await
        .expect("answer within 20 s")
        .expect("answered");
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The `/readyz` check `shared` of a replica.
async fn shared_check(h: &Harness, r: &Replica) -> String {
    let text = get_text(h, r.admin_url("/readyz")).await;
    let ready: Value = serde_json::from_str(&text).expect("readyz is JSON");
    ready["checks"]["shared"].as_str().unwrap_or("<absent>").to_string()
}

/// A counter's value in a replica's `/metrics`, by its labels as rendered.
async fn metric(h: &Harness, r: &Replica, series: &str) -> f64 {
    let text = get_text(h, r.admin_url("/metrics")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Every answer is a success or a budget refusal with `Retry-After`, and
/// every refusal is audited as `budget_exhausted`; returns (200s, 429s).
fn assert_allowed_or_out_of_budget(answers: &[Answer], audits: &[Value]) -> (usize, usize) {
    let mut counts = (0, 0);
    for a in answers {
        match a.status {
            200 => counts.0 += 1,
            429 => {
                counts.1 += 1;
                assert_eq!(a.code(), "RATE_LIMITED", "{:?}", a.body);
                let after: u64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(after >= 1, "Retry-After is at least 1 second");
            }
            other => panic!("answered {other}: {:?}", a.body),
        }
    }
    let refused: Vec<&Value> = audits.iter().filter(|l| l["status"] == 429).collect();
    assert_eq!(refused.len(), counts.1, "one audit line per refusal");
    for line in refused {
        assert_eq!(line["reason"], "budget_exhausted", "{line}");
    }
    counts
}

/// Thirty MonitorContact calls at once, spread over the replicas.
async fn burst_of_monitors(h: &Harness, replicas: &[Arc<Replica>], contact: fn(usize) -> String) -> Vec<Answer> {
    let token = h.supervisor_token();
    let calls = (0..30).map(|i| {
        let r = replicas[i % replicas.len()].clone();
        let (client, token) = (h.client.clone(), token.clone());
        async move { r.monitor(&client, Some(&token), &body(&contact(i))).await }
    });
    futures_util::future::join_all(calls).await
}

/// `n` replicas, with or without a shared server, against a stand-in that
/// throttles at Connect's default quotas.
async fn fleet_at_connects_quotas(redis: Option<&RedisServer>, n: usize) -> (Harness, Vec<Arc<Replica>>) {
    let config = fleet_config(redis);
    let h = Harness::with(Options {
        config: &config,
        ..Options::default()
    })
    .await;
    h.connect.connect_default_quotas();
    let replicas = fleet(&h, n).await;
    (h, replicas)
}

fn all_audits(replicas: &[Arc<Replica>]) -> Vec<Value> {
    replicas.iter().flat_map(|r| r.audit_lines()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_sharing_one_server_stay_within_connects_quota_under_a_burst() {
    let redis = RedisServer::start();
    let (h, replicas) = fleet_at_connects_quotas(Some(&redis), 4).await;

    let answers = burst_of_monitors(&h, &replicas, |i| format!("contact-{i}")).await;

    let (allowed, refused) = assert_allowed_or_out_of_budget(&answers, &all_audits(&replicas));
    assert_eq!(h.connect.throttled_total(), 0, "Connect throttled no call");
    assert_eq!(h.connect.calls("MonitorContact"), allowed);
    // Burst 5, then 2/s, within a 4 s deadline: the rest is refused at once.
    assert!(
        refused > 0 && allowed <= 5 + 2 * 5,
        "{allowed} allowed, {refused} refused"
    );
    let keys = redis.keys("cmg:budget:*");
    assert_eq!(keys, vec!["cmg:budget:-:eu-west-2:MonitorContact".to_string()]);
    h.assert_signatures_verified();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_without_a_shared_server_stays_within_connects_quota_under_a_burst() {
    let (h, replicas) = fleet_at_connects_quotas(None, 1).await;

    let answers = burst_of_monitors(&h, &replicas, |i| format!("contact-{i}")).await;

    let (allowed, refused) = assert_allowed_or_out_of_budget(&answers, &all_audits(&replicas));
    assert_eq!(h.connect.throttled_total(), 0, "Connect throttled no call");
    assert!(refused > 0, "{allowed} allowed, {refused} refused");
    // Waiting for a token is recorded; a refusal waits for none.
    let audits = all_audits(&replicas);
    assert!(audits.iter().all(|l| l["budget_wait_ms"].is_number()));
    assert!(audits.iter().any(|l| l["budget_wait_ms"].as_f64().unwrap() > 100.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_asked_about_one_new_contact_at_once_make_one_describe_contact() {
    let redis = RedisServer::start();
    let config = format!("[shared]\nurl = \"{}\"\n", redis.url());
    let h = hierarchy_harness(&config, &[]).await;
    let replicas = fleet(&h, 4).await;
    let token = h.supervisor_token();

    let checks = (0..20).map(|i| {
        let r = replicas[i % 4].clone();
        let (client, token) = (h.client.clone(), token.clone());
        async move { r.check(&client, Some(&token), &body("contact-in")).await }
    });
    let answers = futures_util::future::join_all(checks).await;

    for a in &answers {
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(h.connect.calls("DescribeContact"), 1);
    assert_eq!(h.connect.calls("DescribeUser"), 1);
    let mut shared_hits = 0.0;
    for r in &replicas {
        shared_hits += metric(
            &h,
            r,
            r#"cmg_connect_lookups_total{operation="DescribeContact",outcome="shared_hit"}"#,
        )
        .await;
    }
    assert_eq!(shared_hits, 3.0, "the other three replicas found it on the server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_fetched_by_one_replica_is_a_shared_hit_on_another() {
    let redis = RedisServer::start();
    let config = format!("[shared]\nurl = \"{}\"\n", redis.url());
    let h = hierarchy_harness(&config, &[]).await;
    let replicas = fleet(&h, 2).await;
    let token = h.supervisor_token();

    let first = replicas[0].check(&h.client, Some(&token), &body("contact-in")).await;
    let second = replicas[1].check(&h.client, Some(&token), &body("contact-in")).await;

    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(h.connect.calls("DescribeContact"), 1);
    let series = r#"cmg_connect_lookups_total{operation="DescribeContact",outcome="shared_hit"}"#;
    assert_eq!(metric(&h, &replicas[1], series).await, 1.0);
    let audits = replicas[1].audit_lines();
    assert_eq!(audits[0]["lookups"], 0, "no HTTP call to Connect");
    assert!(redis.get("cmg:fact:contact:inst-1:contact-in").is_some());
}

/// The decisions the hierarchy grant must make, asked of a fresh replica.
async fn assert_the_right_decisions(h: &Harness, r: &Replica) {
    let token = h.supervisor_token();
    let inside = r.check(&h.client, Some(&token), &body("contact-in")).await;
    assert_eq!(inside.status, 200, "{:?}", inside.body);
    let outside = r.check(&h.client, Some(&token), &body("contact-out")).await;
    assert_eq!(outside.status, 403, "{:?}", outside.body);
    assert!(
        outside.message().ends_with("agent_out_of_scope"),
        "{}",
        outside.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_every_key_of_the_server_is_a_miss_never_a_fact_nor_a_failure() {
    let redis = RedisServer::start();
    let config = format!("{}\n", fleet_config(Some(&redis)));
    let h = hierarchy_harness(&config, &[]).await;
    let first = h.replica().await;
    assert_the_right_decisions(&h, &first).await;
    let keys = redis.keys("cmg:*");
    assert!(keys.len() >= 4, "facts and budgets are on the server: {keys:?}");

    // Every key garbled: strings that are not facts, and keys of other types.
    for (i, key) in keys.iter().enumerate() {
        match i % 4 {
            0 => redis.set(key, "garbage"),
            1 => redis.set(key, "-.{\"Id\":42}"),
            2 => {
                redis.command(&["DEL", key]);
                redis.command(&["RPUSH", key, "a", "b"]);
            }
            _ => {
                redis.command(&["DEL", key]);
                redis.command(&["HSET", key, "field", "value"]);
            }
        }
    }
    // A lock nobody will give back, with no expiry.
    redis.set("cmg:lock:fact:contact:inst-1:contact-out", "someone");

    let fresh = h.replica().await;
    assert_the_right_decisions(&h, &fresh).await;
    let again = h.replica().await;
    assert_the_right_decisions(&h, &again).await;
    // The garbage was overwritten with facts the next replica found.
    let series = r#"cmg_connect_lookups_total{operation="DescribeContact",outcome="shared_hit"}"#;
    assert_eq!(metric(&h, &again, series).await, 2.0);
    for r in [&first, &fresh, &again] {
        assert!(r.audit_lines().iter().all(|l| l["status"].as_u64().unwrap() < 500));
    }
}

const SHARED_KEY: &[(&str, &str)] = &[("CMG_SHARED_KEY", "an-integrity-key-of-at-least-32-characters")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_integrity_key_a_fact_copied_onto_another_contacts_key_is_no_fact() {
    let redis = RedisServer::start();
    let config = format!("[shared]\nurl = \"{}\"\n", redis.url());
    let h = hierarchy_harness(&config, SHARED_KEY).await;
    let first = h.replica().await;
    let token = h.supervisor_token();
    let inside = first.check(&h.client, Some(&token), &body("contact-in")).await;
    assert_eq!(inside.status, 200);

    // The in-scope contact's sealed fact, copied onto the out-of-scope one's key.
    let sealed = redis.get("cmg:fact:contact:inst-1:contact-in").expect("stored");
    assert!(!sealed.starts_with("-."), "sealed, not bare: {sealed}");
    redis.set("cmg:fact:contact:inst-1:contact-out", &sealed);

    let fresh = h.replica().await;
    let outside = fresh.check(&h.client, Some(&token), &body("contact-out")).await;
    assert_eq!(outside.status, 403, "{:?}", outside.body);
    assert!(outside.message().ends_with("agent_out_of_scope"));
    assert_eq!(h.connect.calls("DescribeContact"), 2, "the copy was a miss");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_integrity_key_whoever_writes_to_the_server_decides_the_facts() {
    let redis = RedisServer::start();
    let config = format!("[shared]\nurl = \"{}\"\n", redis.url());
    let h = hierarchy_harness(&config, &[]).await;
    let first = h.replica().await;
    let token = h.supervisor_token();
    assert_eq!(
        first.check(&h.client, Some(&token), &body("contact-in")).await.status,
        200
    );

    let bare = redis.get("cmg:fact:contact:inst-1:contact-in").expect("stored");
    redis.set("cmg:fact:contact:inst-1:contact-out", &bare);

    // What docs/security.md warns of: the forged fact is believed.
    let fresh = h.replica().await;
    let outside = fresh.check(&h.client, Some(&token), &body("contact-out")).await;
    assert_eq!(outside.status, 200, "{:?}", outside.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_killed_during_traffic_fails_no_request_and_is_used_again_when_back() {
    let mut redis = RedisServer::start();
    let config = fleet_config(Some(&redis));
    let h = hierarchy_harness(&config, &[]).await;
    h.connect.connect_default_quotas();
    let replicas = fleet(&h, 4).await;
    let token = h.supervisor_token();
    for r in &replicas {
        assert_the_right_decisions(&h, r).await;
        assert_eq!(shared_check(&h, r).await, "ok");
    }

    // Traffic on every replica while the server dies.
    let traffic = {
        let replicas = replicas.clone();
        let (client, token) = (h.client.clone(), token.clone());
        tokio::spawn(async move {
            let mut answers = BTreeMap::new();
            for round in 0..20 {
                for (i, r) in replicas.iter().enumerate() {
                    let contact = if (round + i) % 2 == 0 {
                        "contact-in"
                    } else {
                        "contact-out"
                    };
                    let a = r.check(&client, Some(&token), &body(contact)).await;
                    answers.insert((round, i), (contact, a.status, a.message().to_string()));
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            answers
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis.kill();
    let answers = traffic.await.unwrap();
    for ((round, i), (contact, status, message)) in answers {
        let want = if contact == "contact-in" { 200 } else { 403 };
        assert_eq!(status, want, "round {round} replica {i}: {contact}: {message}");
    }

    // Degraded, still serving: Connect sees no more than its quota.
    for r in &replicas {
        let mut state = String::new();
        for _ in 0..100 {
            state = shared_check(&h, r).await;
            if state == "degraded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(state, "degraded");
        assert!(metric(&h, r, "cmg_shared_errors_total").await >= 1.0);
    }
    let answers = burst_of_monitors(&h, &replicas, |_| "contact-in".to_string()).await;
    assert_allowed_or_out_of_budget(&answers, &all_audits(&replicas));
    assert_eq!(
        h.connect.throttled_total(),
        0,
        "Connect throttled no call during the outage"
    );

    // Back within 10 s of the server's return, without a restart.
    redis.restart();
    for r in &replicas {
        let mut state = String::new();
        for _ in 0..100 {
            state = shared_check(&h, r).await;
            if state == "ok" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, "ok", "back in use within 10 s");
    }
    // In use: a new fact fetched by one replica is found by another.
    h.connect
        .add_contact(contact_with("contact-new", "agent-1", &["g-site", "g-team"]));
    let before = h.connect.calls("DescribeContact");
    for r in &replicas[..2] {
        let a = r.check(&h.client, Some(&token), &body("contact-new")).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(h.connect.calls("DescribeContact"), before + 1);
}

/// One check each of an in-scope and an out-of-scope contact, then a fact
/// another replica must find on the server.
async fn assert_the_server_is_used(h: &Harness, redis: &RedisServer) {
    let replicas = fleet(h, 2).await;
    for r in &replicas {
        assert_eq!(shared_check(h, r).await, "ok");
        assert_the_right_decisions(h, r).await;
    }
    assert_eq!(h.connect.calls("DescribeContact"), 2, "the second replica found both");
    assert!(redis.get("cmg:fact:contact:inst-1:contact-in").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rediss_url_speaks_tls_to_a_server_signed_by_the_ca_file() {
    let redis = RedisServer::start_with_tls();
    let config = format!(
        "[shared]\nurl = \"{}\"\nca_file = \"{{FIXTURES}}/tls/ca.pem\"\n",
        redis.tls_url()
    );
    let h = hierarchy_harness(&config, &[]).await;
    assert_the_server_is_used(&h, &redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_comes_from_cmg_shared_password_when_the_url_has_none() {
    let redis = RedisServer::start_with_password("a-password-for-the-fleet");
    let config = format!("[shared]\nurl = \"redis://127.0.0.1:{}/0\"\n", redis.port());
    let h = hierarchy_harness(&config, &[("CMG_SHARED_PASSWORD", "a-password-for-the-fleet")]).await;
    assert_the_server_is_used(&h, &redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_costs_a_request_at_most_the_command_timeout() {
    let redis = RedisServer::start();
    let config = format!(
        "[server]\nrequest_timeout = \"2s\"\n[shared]\nurl = \"{}\"\ncommand_timeout = \"100ms\"\n",
        redis.url()
    );
    let h = hierarchy_harness(&config, &[]).await;
    let r = h.replica().await;
    redis.pause();

    let token = h.supervisor_token();
    let answer = r.check(&h.client, Some(&token), &body("contact-in")).await;
    let state = shared_check(&h, &r).await;
    let errors = metric(&h, &r, "cmg_shared_errors_total").await;
    redis.resume();

    // A command waiting on the server for the request's 2 s would leave its
    // lookups no time (504): one timed out, and the replica went on without it.
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(state, "degraded");
    assert!(errors >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_found_on_the_server_expires_in_process_when_it_expires_there() {
    let redis = RedisServer::start();
    let config = format!(
        "[connect.lookups]\nttl = \"10m\"\n[shared]\nurl = \"{}\"\n",
        redis.url()
    );
    let h = hierarchy_harness(&config, &[]).await;
    let replicas = fleet(&h, 2).await;
    let token = h.supervisor_token();
    let key = "cmg:fact:contact:inst-1:contact-in";
    assert_eq!(
        replicas[0]
            .check(&h.client, Some(&token), &body("contact-in"))
            .await
            .status,
        200
    );
    // Its life on the server, cut short (as if fetched 10 minutes ago).
    redis.command(&["PEXPIRE", key, "300"]);
    assert_eq!(
        replicas[1]
            .check(&h.client, Some(&token), &body("contact-in"))
            .await
            .status,
        200
    );
    assert_eq!(h.connect.calls("DescribeContact"), 1, "a shared hit");

    // Gone there: the replica that found it there asks Connect again soon,
    // not after its own ttl of 10 minutes.
    let mut calls = 1;
    for _ in 0..250 {
        let a = replicas[1].check(&h.client, Some(&token), &body("contact-in")).await;
        assert_eq!(a.status, 200);
        calls = h.connect.calls("DescribeContact");
        if calls == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls, 2, "the fact expired in process with the server's copy");
}

/// GETs a replica's listing of `inst-1`.
async fn list_on(h: &Harness, r: &Replica, token: &str) -> Answer {
    let request = Request::get(r.url("/contacts/monitorable?instance_id=inst-1"))
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    support::send(&h.client, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_replicas_listing_at_once_make_one_listings_calls_and_share_its_contacts() {
    let redis = RedisServer::start();
    let h = Harness::with(Options {
        config: &fleet_config(Some(&redis)),
        policy: grant("connect_permissions = true\nagents = \"my_hierarchy\""),
        ..Options::default()
    })
    .await;
    h.connect.connect_default_quotas();
    h.connect.add_hierarchy_group("g-site", None);
    h.connect.add_hierarchy_group("g-team", Some("g-site"));
    h.connect.add_user(supervisor(Some("g-team"), &["sp-1"]));
    h.connect.add_security_profile("sp-1", &["ManagerListenIn"]);
    h.connect
        .add_user(json!({"Id": "agent-1", "HierarchyGroupId": "g-team", "SecurityProfileIds": []}));
    h.connect.add_agent_contact(
        "agent-1",
        json!({"ContactId": "c-live", "Channel": "VOICE", "AgentContactState": "CONNECTED",
               "StateStartTimestamp": 1.7e9, "Queue": {"Id": "q-1"}}),
    );
    let replicas = fleet(&h, 4).await;
    let token = h.supervisor_token();

    let listings = support::join_all(replicas.iter().map(|r| {
        let request = Request::get(r.url("/contacts/monitorable?instance_id=inst-1"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let client = h.client.clone();
        async move { support::send(&client, request).await }
    }))
    .await;
    for a in &listings {
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(a.body["data"]["contacts"][0]["contact_id"], "c-live");
    }
    assert_eq!(h.connect.calls("GetCurrentUserData"), 1, "one call for the fleet");
    assert_eq!(h.connect.calls("SearchUsers"), 1);
    assert_eq!(h.connect.throttled_total(), 0);
    assert!(
        redis.get("cmg:fact:contact:inst-1:c-live").is_some(),
        "the listing filled the fleet's contact facts"
    );

    // A fresh replica, which never listed: the click needs no DescribeContact.
    let fresh = h.replica().await;
    let checked = fresh.check(&h.client, Some(&token), &body("c-live")).await;
    assert_eq!(checked.status, 200, "{:?}", checked.body);
    assert_eq!(h.connect.calls("DescribeContact"), 0);
    let again = list_on(&h, &fresh, &token).await;
    assert_eq!(again.status, 200);
    assert!(
        h.connect.calls("GetCurrentUserData") <= 2,
        "reused within live_ttl, or asked once more after it"
    );
}
