//! Every class of hostile input in docs/security.md as a named case: the hostile input, the exact
//! answer (status and envelope code), and proof that Connect saw nothing.
//! By family: tests/security_token_format.rs, security_token_signatures.rs
//! and security_token_claims.rs (401s), security_http_edge.rs (the HTTP
//! edge and slow clients); here, authorization (403s) and an invalid policy.
//! The case runner is tests/support/security_cases.rs.

use crate::support;

use connect_monitor_gateway::test_util::ConnectStandIn;
use connect_monitor_gateway::test_util::IssuerStandIn;
use support::security_cases::{case, run_all, Case, Send};
use support::{Harness, Options};

/// A request the supervisor may not make: 403 FORBIDDEN.
fn forbidden(name: &'static str, body: String) -> Case {
    let send = Send::Request { headers: vec![], body };
    case(name, send, 403, Some("FORBIDDEN"))
}

#[tokio::test]
async fn authorization_is_refused_with_403() {
    let h = Harness::start().await;
    let body = |user: &str, instance: &str, caps: &str| {
        format!(r#"{{"InstanceId":"{instance}","ContactId":"c","UserId":"{user}"{caps}}}"#)
    };
    let barge = r#","AllowedMonitorCapabilities":["BARGE"]"#;
    let cases = [
        forbidden(
            "UserId other than the caller's own where the grant says self",
            body("someone-else", "inst-1", ""),
        ),
        forbidden("BARGE not granted", body("user-1", "inst-1", barge)),
        forbidden("instance not allowed", body("user-1", "inst-9", "")),
    ];
    run_all(&h, cases).await;
}

#[tokio::test]
async fn invalid_policy_refuses_to_start() {
    let keys = support::Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        policy: "[[grant]]\nname = \"x\"\ninstances = \"*\"\n".into(),
        ..Default::default()
    };
    let cfg = support::write_config(dir.path(), &issuer, &connect, &options);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_connect-monitor-gateway"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("policy.toml"));
}
