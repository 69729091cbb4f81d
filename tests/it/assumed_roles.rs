//! Several AWS accounts: an instance with `role_arn` has its calls signed with
//! that role's credentials, assumed through STS (the SDK's AssumeRole
//! provider) with the gateway's own, once for many requests and renewed
//! before they expire; the stand-in STS verifies every AssumeRole signature.

use crate::support;

use std::time::Duration;

use support::sts_standin::StsStandIn;
use support::{test_credentials, Harness, Options, ACCESS_KEY, BODY};

const ROLE: &str = "arn:aws:iam::222233334444:role/connect-monitor";
const EXTERNAL_ID: &str = "contact-center-7";
/// inst-2 is in the gateway's own account; inst-1 in the role's.
const OWN_ACCOUNT_BODY: &str = r#"{"InstanceId":"inst-2","ContactId":"contact-1","UserId":"user-1"}"#;

async fn with_role(sts: &StsStandIn, margin: Duration) -> Harness {
    let h = Harness::with(Options {
        config: &format!(
            r#"
            [[connect.instances]]
            id = "inst-1"
            region = "eu-central-1"
            role_arn = "{ROLE}"
            external_id = "{EXTERNAL_ID}"
            [[connect.instances]]
            id = "inst-2"
            "#
        ),
        sts_endpoint: Some(sts.url()),
        credentials_margin: margin,
        ..Default::default()
    })
    .await;
    // Connect accepts what STS hands out (as the role's account would).
    for n in 1..=5 {
        h.connect.accept(StsStandIn::issued(n));
    }
    h
}

#[tokio::test]
async fn an_instances_calls_are_signed_with_its_role_assumed_once_for_many_requests() {
    let sts = StsStandIn::start(test_credentials(None), Duration::from_secs(3600)).await;
    let h = with_role(&sts, Duration::from_secs(300)).await;
    for _ in 0..5 {
        let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let a = h.monitor(Some(&h.supervisor_token()), OWN_ACCOUNT_BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    // Assumed once, at start, with the gateway's own credentials, verified by STS.
    let calls = sts.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.signature_problem, None, "STS verified the AssumeRole signature");
    assert_eq!(call.param("Action"), Some("AssumeRole"));
    assert_eq!(call.param("RoleArn"), Some(ROLE));
    assert_eq!(call.param("ExternalId"), Some(EXTERNAL_ID));
    assert_eq!(call.param("RoleSessionName"), Some("connect-monitor-gateway"));
    assert_eq!(
        call.signed_region.as_deref(),
        Some("eu-central-1"),
        "STS in the instance's region"
    );

    // Each call signed as its instance's account, and every signature verified.
    h.assert_signatures_verified();
    let signers: Vec<(String, String)> = h
        .connect
        .received()
        .iter()
        .map(|r| {
            (
                r.json()["InstanceId"].as_str().unwrap().to_owned(),
                r.access_key.clone().unwrap(),
            )
        })
        .collect();
    let role_key = StsStandIn::issued(1).access_key_id().to_owned();
    assert_eq!(signers.len(), 6);
    for (instance, key) in &signers {
        let expected = if instance == "inst-1" { &role_key } else { ACCESS_KEY };
        assert_eq!(key, expected, "{instance} signed as the wrong account");
    }

    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&format!("\"role:{ROLE}\":\"ok\"")), "{body}");
}

#[tokio::test]
async fn a_roles_credentials_are_renewed_before_they_expire() {
    // Credentials that live 3 s, renewed 2 s before expiry: the background
    // refresh asks STS again about 1 s after start.
    let sts = StsStandIn::start(test_credentials(None), Duration::from_secs(3)).await;
    let h = with_role(&sts, Duration::from_secs(2)).await;
    support::wait_until(Duration::from_secs(15), "the role was assumed again", || {
        sts.calls().len() >= 2
    })
    .await;
    let calls = sts.calls();
    let expiries = sts.expiries();
    assert!(
        calls[1].at < expiries[0],
        "renewed before the first credentials expired"
    );
    assert!(calls.iter().all(|c| c.signature_problem.is_none()), "{calls:?}");
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    h.assert_signatures_verified();
    let last = h.connect.received().last().unwrap().access_key.clone().unwrap();
    assert_ne!(
        last,
        StsStandIn::issued(1).access_key_id(),
        "signed with renewed credentials"
    );
    assert!(last.starts_with("ASIASTANDINROLE"), "{last}");
}

#[tokio::test]
async fn a_role_sts_refuses_is_not_ready_and_is_never_signed_as_the_gateway_itself() {
    let sts = StsStandIn::start(test_credentials(None), Duration::from_secs(3600)).await;
    sts.set_refusing(true);
    let h = with_role(&sts, Duration::from_secs(300)).await;
    let (status, body) = h.admin("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&format!("\"role:{ROLE}\":\"not assumed\"")), "{body}");
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert!(a.status >= 500, "{:?}", a.body);
    assert!(
        h.connect.received().is_empty(),
        "nothing reached Connect signed with the gateway's own credentials"
    );
    // The gateway's own instance is unaffected.
    let a = h.monitor(Some(&h.supervisor_token()), OWN_ACCOUNT_BODY).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}
