//! `source_identity_claim`: an instance's MonitorContact is signed in the
//! supervisor's own session of the instance's role (STS AssumeRole with
//! `SourceIdentity` = their token's claim), so CloudTrail names them; lookups
//! stay the role's own session; a claim that cannot name them is refused
//! before STS or Connect is asked. The stand-in STS records every AssumeRole
//! and the Connect stand-in accepts what it hands out.

use crate::support;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::connect_records::{contact, grant, supervisor};
use support::sts_standin::StsStandIn;
use support::{test_credentials, Answer, Harness, Options, BODY};

const ROLE: &str = "arn:aws:iam::222233334444:role/connect-monitor";
const EXTERNAL_ID: &str = "contact-center-7";
const ALICE: &str = "alice@example.com";
/// inst-2 has no `source_identity_claim`: signed as the gateway itself.
const PLAIN_BODY: &str = r#"{"InstanceId":"inst-2","ContactId":"contact-1","UserId":"user-1"}"#;

/// inst-1 signs MonitorContact in its supervisors' sessions of `ROLE`,
/// named by their `email` claim; Connect accepts whatever STS hands out.
async fn harness(sts: &StsStandIn, policy: Option<String>) -> Harness {
    let h = Harness::with(Options {
        config: &format!(
            r#"
            [[connect.instances]]
            id = "inst-1"
            role_arn = "{ROLE}"
            external_id = "{EXTERNAL_ID}"
            source_identity_claim = "email"
            [[connect.instances]]
            id = "inst-2"
            "#
        ),
        policy: policy.unwrap_or_else(|| support::POLICY.to_owned()),
        sts_endpoint: Some(sts.url()),
        ..Default::default()
    })
    .await;
    for n in 1..=10 {
        h.connect.accept(StsStandIn::issued(n));
    }
    h
}

async fn sts() -> StsStandIn {
    StsStandIn::start(test_credentials(None), Duration::from_secs(3600)).await
}

/// The supervisor's token with `email` set to `value` (`null`: no such claim).
fn token(h: &Harness, sub: &str, value: Value) -> String {
    h.keys.ed.mint(&h.claims_with(json!({"sub": sub, "email": value})))
}

/// The access key each MonitorContact call Connect got was signed with.
fn monitor_contact_keys(h: &Harness) -> Vec<String> {
    h.connect
        .received()
        .iter()
        .filter(|r| r.operation == "MonitorContact")
        .map(|r| r.access_key.clone().unwrap_or_default())
        .collect()
}

fn issued_key(n: usize) -> String {
    StsStandIn::issued(n).access_key_id().to_owned()
}

#[tokio::test]
async fn monitor_contact_is_signed_in_a_session_with_the_supervisors_source_identity() {
    let sts = sts().await;
    let h = harness(&sts, None).await;
    let a = h.monitor(Some(&token(&h, "sup-1", json!(ALICE))), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    // At start, the instance's own session; then the supervisor's.
    let calls = sts.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].source_identity(), None, "{calls:?}");
    let call = &calls[1];
    assert_eq!(
        call.signature_problem, None,
        "signed with the gateway's own credentials"
    );
    assert_eq!(call.param("Action"), Some("AssumeRole"));
    assert_eq!(call.param("RoleArn"), Some(ROLE));
    assert_eq!(call.param("ExternalId"), Some(EXTERNAL_ID));
    assert_eq!(call.source_identity(), Some(ALICE));
    assert_eq!(call.param("RoleSessionName"), Some("cmg-alice@example.com"));
    assert_eq!(
        call.signed_region.as_deref(),
        Some("eu-west-2"),
        "STS in the instance's region"
    );

    h.assert_signatures_verified();
    assert_eq!(
        monitor_contact_keys(&h),
        [issued_key(2)],
        "signed in the supervisor's session"
    );
    assert_eq!(h.audit_lines()[0]["source_identity"], ALICE);
}

#[tokio::test]
async fn a_second_request_by_the_same_supervisor_makes_no_new_assume_role() {
    let sts = sts().await;
    let h = harness(&sts, None).await;
    let alice = token(&h, "sup-1", json!(ALICE));
    for _ in 0..3 {
        let a = h.monitor(Some(&alice), BODY).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    assert_eq!(sts.source_identity_calls().len(), 1, "{:?}", sts.calls());
    assert_eq!(monitor_contact_keys(&h), [issued_key(2), issued_key(2), issued_key(2)]);
}

#[tokio::test]
async fn a_second_supervisor_gets_a_session_of_their_own() {
    let sts = sts().await;
    let h = harness(&sts, None).await;
    for (sub, value) in [("sup-1", ALICE), ("sup-2", "bob@example.com"), ("sup-1", ALICE)] {
        let a = h.monitor(Some(&token(&h, sub, json!(value))), BODY).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let sessions: Vec<_> = sts
        .source_identity_calls()
        .iter()
        .map(|c| {
            (
                c.source_identity().unwrap().to_owned(),
                c.param("RoleSessionName").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sessions,
        [
            (ALICE.to_owned(), "cmg-alice@example.com".to_owned()),
            ("bob@example.com".to_owned(), "cmg-bob@example.com".to_owned()),
        ]
    );
    assert_eq!(monitor_contact_keys(&h), [issued_key(2), issued_key(3), issued_key(2)]);
    let audited: Vec<Value> = h.audit_lines().iter().map(|l| l["source_identity"].clone()).collect();
    assert_eq!(audited, [json!(ALICE), json!("bob@example.com"), json!(ALICE)]);
}

#[tokio::test]
async fn the_session_name_is_cmg_and_the_value_cut_to_64_characters() {
    let sts = sts().await;
    let h = harness(&sts, None).await;
    let value = format!("{}@example.com", "a".repeat(52));
    assert_eq!(value.len(), 64, "the longest SourceIdentity");
    let a = h.monitor(Some(&token(&h, "sup-1", json!(value))), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let calls = sts.source_identity_calls();
    assert_eq!(calls[0].source_identity(), Some(value.as_str()), "sent whole");
    let name = format!("cmg-{}", &value[..60]);
    assert_eq!(calls[0].param("RoleSessionName"), Some(name.as_str()));
}

#[tokio::test]
async fn lookups_are_signed_in_the_instances_own_session_without_source_identity() {
    let sts = sts().await;
    let h = harness(&sts, Some(grant("agents = \"my_hierarchy\""))).await;
    h.connect.add_user(supervisor(Some("g-team"), &["sp-1"]));
    h.connect.add_contact(contact(Some("agent-1"), &["g-site", "g-team"]));
    let a = h.monitor(Some(&token(&h, "sup-1", json!(ALICE))), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    let calls = sts.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0].source_identity(), None);
    assert_eq!(calls[0].param("RoleSessionName"), Some("connect-monitor-gateway"));
    assert_eq!(calls[1].source_identity(), Some(ALICE));

    h.assert_signatures_verified();
    let signed: Vec<(&str, String)> = h
        .connect
        .received()
        .iter()
        .map(|r| (r.operation, r.access_key.clone().unwrap_or_default()))
        .collect();
    assert!(signed.iter().any(|(op, _)| *op == "DescribeContact"), "{signed:?}");
    assert!(signed.iter().any(|(op, _)| *op == "DescribeUser"), "{signed:?}");
    for (operation, key) in &signed {
        let expected = if *operation == "MonitorContact" {
            issued_key(2)
        } else {
            issued_key(1)
        };
        assert_eq!(*key, expected, "{operation} signed in the wrong session");
    }
}

#[tokio::test]
async fn a_claim_that_cannot_be_a_source_identity_is_refused_before_sts_or_connect() {
    let sts = sts().await;
    // A grant that would look the contact up: a refusal must come first.
    let h = harness(&sts, Some(grant("agents = \"my_hierarchy\""))).await;
    let cases: [(&str, Value, &str); 6] = [
        ("too short", json!("Q"), "source_identity_invalid"),
        ("too long", json!("Q".repeat(65)), "source_identity_invalid"),
        ("a space", json!("alice smith"), "source_identity_invalid"),
        (
            "a non-ASCII character",
            json!("alicé@example.com"),
            "source_identity_invalid",
        ),
        // Not a string: no value to name anyone by, as for the policy's claims.
        ("a number", json!(12345), "source_identity_missing"),
        ("missing", Value::Null, "source_identity_missing"),
    ];
    for (case, value, reason) in &cases {
        let token = token(&h, "sup-1", value.clone());
        for path in ["/contact/monitor", "/contact/monitor/check"] {
            let a: Answer = h
                .send(
                    http::Request::post(h.url(path))
                        .header("content-type", "application/json")
                        .header("authorization", format!("Bearer {token}"))
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY.as_bytes())))
                        .unwrap(),
                )
                .await;
            assert_eq!((a.status, a.code()), (403, "FORBIDDEN"), "{case} {path}: {:?}", a.body);
            assert!(
                a.message().contains("email"),
                "{case}: names the claim: {}",
                a.message()
            );
            assert!(
                a.message().contains("SourceIdentity"),
                "{case}: says the rule: {}",
                a.message()
            );
            if let Some(text) = value.as_str() {
                assert!(!a.message().contains(text), "{case}: never the value: {}", a.message());
            }
            let line = h.audit_lines().pop().unwrap();
            assert_eq!(line["reason"], *reason, "{case} {path}: {line}");
            assert_eq!(line["source_identity"], Value::Null, "{case}: {line}");
            assert_eq!(line["dry_run"], path.ends_with("/check"), "{case}: {line}");
        }
    }
    assert_eq!(sts.source_identity_calls().len(), 0, "{:?}", sts.calls());
    assert_eq!(h.connect.received().len(), 0, "no lookup, no MonitorContact");
}

#[tokio::test]
async fn five_concurrent_first_requests_by_one_supervisor_make_one_assume_role() {
    let sts = sts().await;
    let h = Arc::new(harness(&sts, None).await);
    // STS holds its answer until all five requests are in the gateway.
    sts.set_holding(true);
    let answers = h.monitor_many(5, &token(&h, "sup-1", json!(ALICE)), BODY);
    let started = std::time::Instant::now();
    loop {
        let (_, metrics) = h.admin("/metrics").await;
        let in_flight = metrics
            .lines()
            .find_map(|l| l.strip_prefix("cmg_in_flight "))
            .and_then(|v| v.trim().parse::<f64>().ok());
        if in_flight == Some(5.0) && !sts.source_identity_calls().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "five requests in flight and a session asked for"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sts.set_holding(false);
    let answers = answers.await;
    assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    assert_eq!(sts.source_identity_calls().len(), 1, "{:?}", sts.calls());
    assert_eq!(monitor_contact_keys(&h), vec![issued_key(2); 5]);
}

#[tokio::test]
async fn sts_refusing_a_supervisors_session_is_502_naming_sts_assume_role() {
    let sts = sts().await;
    let h = harness(&sts, None).await;
    sts.set_refusing(true);
    let a = h.monitor(Some(&token(&h, "sup-1", json!(ALICE))), BODY).await;
    assert_eq!((a.status, a.code()), (502, "UPSTREAM_ERROR"), "{:?}", a.body);
    assert!(a.message().contains("sts:AssumeRole"), "{}", a.message());
    assert!(a.message().contains("AccessDenied"), "STS's code: {}", a.message());
    assert_eq!(sts.source_identity_calls().len(), 1);
    assert!(
        monitor_contact_keys(&h).is_empty(),
        "never signed in another session instead"
    );
    let line = h.audit_lines().pop().unwrap();
    assert_eq!(line["code"], "UPSTREAM_ERROR", "{line}");
    assert_eq!(line["source_identity"], ALICE, "{line}");

    // An instance without source_identity_claim is unaffected.
    let a = h.monitor(Some(&token(&h, "sup-1", json!(ALICE))), PLAIN_BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(h.audit_lines().pop().unwrap()["source_identity"], Value::Null);
}

#[test]
fn check_refuses_source_identity_claim_without_role_arn() {
    let repo = |path: &str| format!("{}/{path}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["policy.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{f}")), dir.path().join(f)).unwrap();
    }
    let example = std::fs::read_to_string(repo("config/gateway.example.toml")).unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!("{example}\n[[connect.instances]]\nid = \"inst-si\"\nsource_identity_claim = \"email\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_connect-monitor-gateway"))
        .args(["check", "--config", config.to_str().unwrap()])
        .env_remove("CMG_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(".source_identity_claim: only applies with role_arn"),
        "{stderr}"
    );
}
