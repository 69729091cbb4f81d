//! The one Connect client serves any operation: the lookups' signed GETs (no
//! body, no content type, path labels and a paging token that need
//! percent-encoding) and SearchUsers' POST go through the same signing and
//! retry loop as MonitorContact, and the SigV4-checking stand-in verifies
//! every one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;

use super::{ConnectClient, FailureKind, Lookup, Spent};
use crate::connect::budget::Budgets;
use crate::connect::credentials::{CredentialsCache, Signers};
use crate::connect::describe_contact::{describe_contact, ContactFacts};
use crate::connect::describe_user::{describe_user, ConnectUser};
use crate::connect::endpoint::{parse_endpoint, Route, Router};
use crate::connect::error::ConnectErrorKind;
use crate::connect::list_security_profile_permissions::list_security_profile_permissions;
use crate::connect::operation::{Operation, Quota};
use crate::connect::retry::RetrySettings;
use crate::connect::search_users::user_id_by_username;
use crate::connect::settings::QuotaSettings;
use crate::demo::connect_standin::{ConnectStandIn, Reply};
use crate::http::client;
use crate::telemetry::metrics::Metrics;
use serde_json::json;

/// The keys the stand-in checks signatures with.
fn test_credentials() -> Credentials {
    Credentials::new(
        "AKIATESTGATEWAY00001",
        "test-secret-key",
        Some("test-session".into()),
        None,
        "test",
    )
}

/// A user id with a space and a slash: both must travel percent-encoded.
const AWKWARD_USER: &str = "a b/c";

struct Setup {
    connect: ConnectStandIn,
    client: ConnectClient,
    route: Route,
    metrics: Arc<Metrics>,
    /// What the lookups spent.
    spent: Spent,
}

impl Setup {
    /// Lookups in `inst-1`, with time to spare.
    fn at(&self) -> Lookup<'_> {
        Lookup {
            client: &self.client,
            route: &self.route,
            instance_id: "inst-1",
            deadline: deadline(),
            spent: &self.spent,
        }
    }
}

async fn setup() -> Setup {
    let connect = ConnectStandIn::start(test_credentials()).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let credentials = Arc::new(CredentialsCache::new(
        SharedCredentialsProvider::new(test_credentials()),
        Duration::from_secs(300),
    ));
    let retry = RetrySettings {
        throttle_base: Duration::from_millis(10),
        ..RetrySettings::new(3, Duration::from_secs(5))
    };
    let client = ConnectClient::new(
        client::build(),
        Signers::own(credentials),
        retry,
        Budgets::new(unlimited(), None, metrics.clone()),
        metrics.clone(),
    );
    let endpoint = parse_endpoint(&connect.url()).unwrap();
    let route = Router::new(
        Some(endpoint),
        false,
        Some("eu-west-2".into()),
        HashMap::new(),
        HashMap::new(),
    )
    .route("inst-1")
    .unwrap();
    Setup {
        connect,
        client,
        route,
        metrics,
        spent: Spent::default(),
    }
}

/// Budgets no test here reaches.
fn unlimited() -> QuotaSettings {
    use Operation::*;
    let ops = [
        MonitorContact,
        DescribeContact,
        DescribeUser,
        ListSecurityProfilePermissions,
        SearchUsers,
    ];
    QuotaSettings {
        share: 1.0,
        quotas: ops
            .into_iter()
            .map(|op| {
                (
                    op,
                    Quota {
                        rate: 10_000.0,
                        burst: 10_000,
                    },
                )
            })
            .collect(),
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
    let user = describe_user(s.at(), AWKWARD_USER).await.unwrap();
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
    let user = describe_user(s.at(), "u1").await.unwrap();
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
    let failure = describe_user(s.at(), "nobody").await.unwrap_err();
    match failure.kind {
        FailureKind::Connect(e) => assert_eq!(e.kind, ConnectErrorKind::NotFound),
        other => panic!("expected Connect's 404, got {other:?}"),
    }
    assert_eq!((failure.operation, failure.attempts), (Operation::DescribeUser, 1));
}

/// A contact id with a space, a slash and a colon: all travel percent-encoded.
const AWKWARD_CONTACT: &str = "c 1/2:x";

fn group_arn(id: &str) -> String {
    format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/agent-group/{id}")
}

#[tokio::test]
async fn describe_contact_reads_the_agent_its_groups_and_the_queue() {
    let s = setup().await;
    s.connect.add_contact(json!({
        "Id": AWKWARD_CONTACT, "Channel": "VOICE", "InitiationMethod": "INBOUND",
        "AgentInfo": {"Id": "agent-1", "HierarchyGroups": {
            "Level1": {"Arn": group_arn("g-top")},
            "Level2": {"Arn": group_arn("g-mid")},
            "Level3": {"Arn": group_arn("g-team")},
        }},
        "QueueInfo": {"Id": "queue-1", "EnqueueTimestamp": 1764000000.5},
    }));
    let facts = describe_contact(s.at(), AWKWARD_CONTACT).await.unwrap();
    assert_eq!(
        facts,
        ContactFacts {
            agent_id: Some("agent-1".into()),
            agent_groups: vec!["g-top".into(), "g-mid".into(), "g-team".into()],
            queue_id: Some("queue-1".into()),
        }
    );
    assert!(s.connect.bad_signatures().is_empty());
    let received = s.connect.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!((got.method.as_str(), got.operation), ("GET", "DescribeContact"));
    assert_eq!(got.path, "/contacts/inst-1/c%201%2F2%3Ax");
    assert_eq!(got.labels, vec!["inst-1".to_string(), AWKWARD_CONTACT.to_string()]);
    assert!(got.body.is_empty() && got.headers.get("content-type").is_none());
}

#[tokio::test]
async fn a_contact_without_an_agent_has_no_agent_facts() {
    let s = setup().await;
    s.connect
        .add_contact(json!({"Id": "queued-1", "Channel": "CHAT", "QueueInfo": {"Id": "queue-1"}}));
    let facts = describe_contact(s.at(), "queued-1").await.unwrap();
    assert_eq!(
        facts,
        ContactFacts {
            agent_id: None,
            agent_groups: Vec::new(),
            queue_id: Some("queue-1".into()),
        }
    );
    assert!(s.connect.bad_signatures().is_empty());
}

#[tokio::test]
async fn an_unknown_contact_is_connects_not_found_and_an_answer_without_a_contact_is_bad() {
    let s = setup().await;
    let failure = describe_contact(s.at(), "nobody").await.unwrap_err();
    match failure.kind {
        FailureKind::Connect(e) => assert_eq!(e.kind, ConnectErrorKind::NotFound),
        other => panic!("expected Connect's 404, got {other:?}"),
    }
    s.connect.script_for(
        "DescribeContact",
        [Reply::Raw {
            status: 200,
            headers: Vec::new(),
            body: r#"{"Contact": null}"#.into(),
        }],
    );
    let failure = describe_contact(s.at(), "any").await.unwrap_err();
    assert!(
        matches!(failure.kind, FailureKind::BadResponse(Operation::DescribeContact)),
        "{failure}"
    );
    assert!(s.connect.bad_signatures().is_empty());
}

#[tokio::test]
async fn security_profile_permissions_are_read_across_every_page() {
    let s = setup().await;
    let all = [
        "BasicAgentAccess",
        "ManagerListenIn",
        "ManagerBargeIn",
        "AccessMetrics.RealTimeMetrics.Access",
        "Users.View",
    ];
    s.connect.add_security_profile("sp 1/a", &all);
    s.connect.set_permissions_page_size(2);
    let permissions = list_security_profile_permissions(s.at(), "sp 1/a").await.unwrap();
    assert_eq!(permissions, all.map(String::from).to_vec());
    assert_eq!(s.connect.calls("ListSecurityProfilePermissions"), 3);
    assert!(s.connect.bad_signatures().is_empty());
    let paths: Vec<String> = s.connect.received().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/security-profiles-permissions/inst-1/sp%201%2Fa?maxResults=1000",
            // The stand-in's tokens are `page/{offset}+x=`: `/`, `+` and `=`
            // each travel encoded, and the signature over them verified.
            "/security-profiles-permissions/inst-1/sp%201%2Fa?maxResults=1000&nextToken=page%2F2%2Bx%3D",
            "/security-profiles-permissions/inst-1/sp%201%2Fa?maxResults=1000&nextToken=page%2F4%2Bx%3D",
        ]
    );
}

#[tokio::test]
async fn a_connect_that_gives_the_same_next_token_again_is_a_bad_response() {
    let s = setup().await;
    let looping = || Reply::Raw {
        status: 200,
        headers: Vec::new(),
        body: json!({"Permissions": ["ManagerListenIn"], "NextToken": "again"}).to_string(),
    };
    s.connect
        .script_for("ListSecurityProfilePermissions", [looping(), looping(), looping()]);
    assert_paging_cut_off(&s, 2).await;
}

#[tokio::test]
async fn a_connect_that_pages_on_and_on_is_cut_off() {
    let s = setup().await;
    let pages = (0..60).map(|n| Reply::Raw {
        status: 200,
        headers: Vec::new(),
        body: json!({"Permissions": [], "NextToken": format!("token-{n}")}).to_string(),
    });
    s.connect.script_for("ListSecurityProfilePermissions", pages);
    assert_paging_cut_off(&s, 50).await;
}

/// Paging through a Connect that never stops is a bad response after `calls` calls.
async fn assert_paging_cut_off(s: &Setup, calls: usize) {
    let failure = list_security_profile_permissions(s.at(), "sp-1").await.unwrap_err();
    assert!(
        matches!(
            failure.kind,
            FailureKind::BadResponse(Operation::ListSecurityProfilePermissions)
        ),
        "{failure}"
    );
    assert_eq!(s.connect.calls("ListSecurityProfilePermissions"), calls);
    assert!(s.connect.bad_signatures().is_empty());
}

#[tokio::test]
async fn search_users_finds_the_one_user_by_exact_username() {
    let s = setup().await;
    s.connect
        .add_user(json!({"Id": "u-sup", "Username": "sup@example.com", "SecurityProfileIds": ["sp-1"]}));
    s.connect
        .add_user(json!({"Id": "u-other", "Username": "other@example.com", "SecurityProfileIds": ["sp-1"]}));
    let id = user_id_by_username(s.at(), "sup@example.com").await.unwrap();
    assert_eq!(id.as_deref(), Some("u-sup"));
    assert!(s.connect.bad_signatures().is_empty());
    let received = s.connect.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(
        (got.method.as_str(), got.path.as_str(), got.operation),
        ("POST", "/search-users", "SearchUsers")
    );
    assert_eq!(
        got.json(),
        json!({
            "InstanceId": "inst-1",
            "SearchCriteria": {"StringCondition": {
                "FieldName": "Username", "Value": "sup@example.com", "ComparisonType": "EXACT",
            }},
            "MaxResults": 2,
        })
    );
    let auth = got.headers["authorization"].to_str().unwrap();
    assert!(
        auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"),
        "{auth}"
    );
}

#[tokio::test]
async fn search_users_finds_nobody_for_an_unknown_username() {
    let s = setup().await;
    s.connect
        .add_user(json!({"Id": "u-sup", "Username": "sup@example.com", "SecurityProfileIds": ["sp-1"]}));
    let id = user_id_by_username(s.at(), "nobody@example.com").await.unwrap();
    assert_eq!(id, None);
    assert_eq!(s.connect.calls("SearchUsers"), 1);
    assert!(s.connect.bad_signatures().is_empty());
}

#[tokio::test]
async fn search_users_finds_nobody_when_two_users_share_the_username() {
    let s = setup().await;
    for id in ["u-1", "u-2", "u-3"] {
        s.connect.add_user(json!({"Id": id, "Username": "shared"}));
    }
    let id = user_id_by_username(s.at(), "shared").await.unwrap();
    assert_eq!(id, None, "an ambiguous username identifies nobody");
    assert!(s.connect.bad_signatures().is_empty());
}
