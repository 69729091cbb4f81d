//! The one Connect client serves any operation: a DescribeUser-style signed
//! GET (no body, no content type, a path label that needs percent-encoding)
//! goes through the same signing and retry loop as MonitorContact, and the
//! SigV4-checking stand-in verifies it. No policy uses a lookup yet.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::provider::SharedCredentialsProvider;
use connect_monitor_gateway::connect::client::{ConnectClient, FailureKind};
use connect_monitor_gateway::connect::credentials::CredentialsCache;
use connect_monitor_gateway::connect::describe_user::{describe_user, ConnectUser};
use connect_monitor_gateway::connect::endpoint::{parse_endpoint, Route, Router};
use connect_monitor_gateway::connect::error::ConnectErrorKind;
use connect_monitor_gateway::connect::retry::RetrySettings;
use connect_monitor_gateway::demo::connect_standin::{ConnectStandIn, Reply};
use connect_monitor_gateway::http::client;
use connect_monitor_gateway::telemetry::metrics::Metrics;
use serde_json::json;

/// A user id with a space and a slash: both must travel percent-encoded.
const AWKWARD_USER: &str = "a b/c";

struct Setup {
    connect: ConnectStandIn,
    client: ConnectClient,
    route: Route,
    metrics: Arc<Metrics>,
}

async fn setup() -> Setup {
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let credentials = Arc::new(CredentialsCache::new(
        SharedCredentialsProvider::new(support::test_credentials(None)),
        Duration::from_secs(300),
    ));
    let retry = RetrySettings {
        throttle_base: Duration::from_millis(10),
        ..RetrySettings::new(3, Duration::from_secs(5))
    };
    let client = ConnectClient::new(client::build(), credentials, retry, None, metrics.clone());
    let endpoint = parse_endpoint(&connect.url()).unwrap();
    let route = Router::new(Some(endpoint), false, Some("eu-west-2".into()), HashMap::new())
        .route("inst-1")
        .unwrap();
    Setup {
        connect,
        client,
        route,
        metrics,
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn describe_user_is_a_signed_get_with_its_labels_percent_encoded() {
    let s = setup().await;
    s.connect.add_user(json!({
        "Id": AWKWARD_USER, "Username": "sup@example.com",
        "HierarchyGroupId": "group-7", "SecurityProfileIds": ["sp-1", "sp-2"],
    }));
    let user = describe_user(&s.client, &s.route, "inst-1", AWKWARD_USER, deadline())
        .await
        .unwrap();
    assert_eq!(
        user,
        ConnectUser {
            id: AWKWARD_USER.into(),
            hierarchy_group_id: Some("group-7".into()),
            security_profile_ids: vec!["sp-1".into(), "sp-2".into()],
        }
    );
    let received = s.connect.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.signature_problem, None, "the stand-in verified the signature");
    assert_eq!((got.method.as_str(), got.operation), ("GET", "DescribeUser"));
    assert_eq!(
        got.path, "/users/inst-1/a%20b%2Fc",
        "labels are encoded once on the wire"
    );
    assert_eq!(got.labels, vec!["inst-1".to_string(), AWKWARD_USER.to_string()]);
    assert!(got.body.is_empty());
    assert!(
        got.headers.get("content-type").is_none(),
        "a GET carries no content type"
    );
    let auth = got.headers["authorization"].to_str().unwrap();
    assert!(
        auth.contains("SignedHeaders=host;x-amz-date;x-amz-security-token,"),
        "{auth}"
    );
}

#[tokio::test]
async fn a_throttled_lookup_is_retried_by_the_same_loop_as_monitor_contact() {
    let s = setup().await;
    s.connect.add_user(json!({"Id": "u1", "SecurityProfileIds": ["sp-1"]}));
    s.connect
        .script_for("DescribeUser", [Reply::error(429, "ThrottlingException")]);
    let user = describe_user(&s.client, &s.route, "inst-1", "u1", deadline())
        .await
        .unwrap();
    assert_eq!(user.hierarchy_group_id, None, "absent when the user has no group");
    assert_eq!(s.connect.received().len(), 2);
    assert!(s.connect.bad_signatures().is_empty());
    let text = s.metrics.render();
    for series in [
        "cmg_upstream_attempts_total{operation=\"DescribeUser\",outcome=\"throttled\"} 1",
        "cmg_upstream_attempts_total{operation=\"DescribeUser\",outcome=\"success\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
async fn an_unknown_user_is_connects_not_found_not_retried() {
    let s = setup().await;
    let failure = describe_user(&s.client, &s.route, "inst-1", "nobody", deadline())
        .await
        .unwrap_err();
    match failure.kind {
        FailureKind::Connect(e) => assert_eq!(e.kind, ConnectErrorKind::NotFound),
        other => panic!("expected Connect's 404, got {other:?}"),
    }
    assert_eq!((failure.operation, failure.attempts), ("DescribeUser", 1));
}
