//! The gateway and `explain` decide through the same function
//! (`Authorizer::decide`), so they agree — on an allow, a deny, and on an
//! instance whose route has no region (503 in the gateway, "unavailable"
//! from explain).

use crate::support;

use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
use connect_monitor_gateway::test_util::AuditSink;
use connect_monitor_gateway::test_util::Instance;
use connect_monitor_gateway::test_util::MonitorRequest;
use connect_monitor_gateway::test_util::Settings;
use connect_monitor_gateway::test_util::{decide, start, Dependencies};
use support::{Harness, BODY};

/// What the gateway answers and what explain says, for the same settings.
async fn both(h: &Harness, settings: &Settings, body: &str) -> (u16, Result<String, String>) {
    let deps = Dependencies {
        credentials: Some(SharedCredentialsProvider::new(support::test_credentials(None))),
        audit: Some(Arc::new(AuditSink::Memory(Default::default()))),
        egress: Some(Default::default()),
        ..Default::default()
    };
    let gateway = start(settings, deps).await.unwrap();
    let req = http::Request::post(format!("http://{}/contact/monitor", gateway.api_addr))
        .header("authorization", format!("Bearer {}", h.supervisor_token()))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
        .unwrap();
    let status = h.send(req).await.status;
    gateway.shutdown(std::time::Duration::from_secs(1)).await;
    let claims = h.claims("sup-1", "supervisors", "user-1");
    let request = MonitorRequest::parse(body.as_bytes()).unwrap();
    let explained = decide(settings, claims, &request).await;
    (status, explained)
}

#[tokio::test]
async fn gateway_and_explain_agree_on_allow_and_deny() {
    let h = Harness::start().await;
    assert_eq!(both(&h, &h.settings, BODY).await, (200, Ok("supervisors".into())));
    let other_user = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-2"}"#;
    assert_eq!(
        both(&h, &h.settings, other_user).await,
        (403, Err("user_not_allowed".into()))
    );
}

#[tokio::test]
async fn gateway_and_explain_agree_on_a_route_without_a_region() {
    let h = Harness::start().await;
    // Only reachable by building settings by hand: `check` refuses such a file.
    let mut settings = h.settings.clone();
    settings.connect.default_region = None;
    settings.connect.instances = vec![Instance {
        id: "inst-1".into(),
        region: None,
        role: None,
    }];
    assert_eq!(
        both(&h, &settings, BODY).await,
        (503, Err("no region is configured for this instance".into()))
    );
    let elsewhere = r#"{"InstanceId":"inst-9","ContactId":"contact-1","UserId":"user-1"}"#;
    assert_eq!(
        both(&h, &settings, elsewhere).await,
        (403, Err("instance_not_allowed".into()))
    );
}
