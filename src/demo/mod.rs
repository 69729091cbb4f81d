//! Demo mode (README.md, "The demo"): the gateway on an embedded config, with an
//! in-process issuer and a SigV4-checking Connect stand-in, no AWS needed.
//! Everything here, the stand-ins and the demo's published keys included,
//! exists only with the default-on `demo` feature; the test suite uses the
//! stand-ins too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::config::Settings;
use crate::gateway::build::{self, Dependencies};
use crate::http::server::shutdown_signal;
use crate::telemetry::audit::AuditSink;
use connect_standin::ConnectStandIn;
use issuer_standin::{jwks_of, IssuerStandIn, SigningKey};

pub(crate) mod connect_standin;
pub(crate) mod issuer_standin;

const DEMO_CONFIG: &str = include_str!("../../config/demo/gateway.toml");
const DEMO_POLICY: &str = include_str!("../../config/demo/policy.toml");
/// A key made for the demo and published here; it guards nothing real.
const DEMO_ISSUER_KEY: &[u8] = include_bytes!("demo_ed25519.pem");
const DEMO_INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

/// The Connect records behind the demo's Connect-aware grant:
/// Carol leads `team-north`; her security profile lets her listen in but not
/// barge. Dave's call is in her group, Erin's (in `team-south`) is not.
const LEAD_USER: &str = "carol-connect-user";
const LEAD_GROUP: &str = "team-north";
const LEAD_PROFILE: &str = "sp-team-lead";
const CALL_IN_TEAM: &str = "demo-contact-0002";
const CALL_OUT_OF_TEAM: &str = "demo-contact-0003";

/// Demo AWS credentials: only the in-process stand-in accepts them.
fn demo_credentials() -> Credentials {
    Credentials::new(
        "AKIADEMOGATEWAY00000",
        "demo-secret-known-to-the-stand-in-only",
        Some("demo-session-token".into()),
        None,
        "demo",
    )
}

/// One sample request and the answer it must get.
struct Sample {
    what: &'static str,
    token: Option<String>,
    body: Value,
    status: u16,
    code: &'static str,
    /// For a deny, the reason its message must end with.
    reason: Option<&'static str>,
}

fn group_arn(group: &str) -> String {
    format!("arn:aws:connect:us-east-1:123456789012:instance/{DEMO_INSTANCE}/agent-group/{group}")
}

/// A contact with its agent sitting in `groups` (Level1, Level2, …).
fn demo_contact(id: &str, agent: &str, groups: &[&str]) -> Value {
    let levels: serde_json::Map<String, Value> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("Level{}", i + 1), json!({"Arn": group_arn(g)})))
        .collect();
    json!({"Id": id, "Channel": "VOICE", "QueueInfo": {"Id": "demo-queue-support"},
           "AgentInfo": {"Id": agent, "HierarchyGroups": levels}})
}

/// Gives the stand-in what the Connect-aware grant reads: the lead, her
/// security profile, and two calls, one in her team and one outside it.
fn prime(connect: &ConnectStandIn) {
    connect.add_user(json!({"Id": LEAD_USER, "Username": "carol@demo.example",
                            "HierarchyGroupId": LEAD_GROUP, "SecurityProfileIds": [LEAD_PROFILE]}));
    connect.add_security_profile(LEAD_PROFILE, &["BasicAgentAccess", "ManagerListenIn"]);
    connect.add_contact(demo_contact(
        CALL_IN_TEAM,
        "dave-connect-agent",
        &["site-london", LEAD_GROUP],
    ));
    connect.add_contact(demo_contact(
        CALL_OUT_OF_TEAM,
        "erin-connect-agent",
        &["site-london", "team-south"],
    ));
}

fn samples(key: &SigningKey, issuer: &str) -> Vec<Sample> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let token = |sub: &str, groups: &str, user: &str| {
        key.mint(&json!({
            "iss": issuer, "aud": "connect-monitor-gateway", "sub": sub,
            "iat": now, "exp": now + 3600,
            "groups": [groups], "connect_user_id": user,
        }))
    };
    let alice = token("alice", "supervisors", "alice-connect-user");
    let bob = token("bob", "supervisors", "bob-connect-user");
    let carol = token("carol", "team-leads", LEAD_USER);
    let on_call = |contact: &str, user: &str, caps: &[&str]| {
        json!({"InstanceId": DEMO_INSTANCE, "ContactId": contact, "UserId": user,
               "AllowedMonitorCapabilities": caps})
    };
    let body = |user: &str, caps: &[&str]| on_call("demo-contact-0001", user, caps);
    let mut forged = alice.clone();
    forged.pop();
    forged.push(if alice.ends_with('A') { 'B' } else { 'A' });
    vec![
        Sample {
            what: "alice silently monitors as herself (allowed)",
            token: Some(alice.clone()),
            body: body("alice-connect-user", &["SILENT_MONITOR"]),
            status: 200,
            code: "OK",
            reason: None,
        },
        Sample {
            what: "bob tries to put alice's panel on the call (denied: user_not_allowed)",
            token: Some(bob),
            body: body("alice-connect-user", &["SILENT_MONITOR"]),
            status: 403,
            code: "FORBIDDEN",
            reason: Some("user_not_allowed"),
        },
        Sample {
            what: "alice asks to barge, which supervisors may not (denied: capability_not_allowed)",
            token: Some(alice),
            body: body("alice-connect-user", &["SILENT_MONITOR", "BARGE"]),
            status: 403,
            code: "FORBIDDEN",
            reason: Some("capability_not_allowed"),
        },
        Sample {
            what: "a forged signature (refused: 401)",
            token: Some(forged),
            body: body("alice-connect-user", &["SILENT_MONITOR"]),
            status: 401,
            code: "UNAUTHENTICATED",
            reason: None,
        },
        Sample {
            what: "carol, a team lead, listens in on a call of an agent in her group (allowed by Connect's facts)",
            token: Some(carol.clone()),
            body: on_call(CALL_IN_TEAM, LEAD_USER, &["SILENT_MONITOR"]),
            status: 200,
            code: "OK",
            reason: None,
        },
        Sample {
            what: "carol on a call of an agent outside her group (denied: agent_out_of_scope)",
            token: Some(carol.clone()),
            body: on_call(CALL_OUT_OF_TEAM, LEAD_USER, &["SILENT_MONITOR"]),
            status: 403,
            code: "FORBIDDEN",
            reason: Some("agent_out_of_scope"),
        },
        Sample {
            what: "carol asks to barge; her security profile lacks ManagerBargeIn (denied: connect_permission_missing)",
            token: Some(carol),
            body: on_call(CALL_IN_TEAM, LEAD_USER, &["SILENT_MONITOR", "BARGE"]),
            status: 403,
            code: "FORBIDDEN",
            reason: Some("connect_permission_missing"),
        },
    ]
}

fn curl(addr: SocketAddr, sample: &Sample) -> String {
    let auth = sample
        .token
        .as_ref()
        .map(|t| format!(" \\\n  -H 'Authorization: Bearer {t}'"))
        .unwrap_or_default();
    // -w: the status on a line of its own after the body, since a refusal's
    // envelope alone does not show it.
    format!(
        "curl -sS -w '\\nHTTP %{{http_code}}\\n' -X POST http://{addr}/contact/monitor{auth} \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
        sample.body
    )
}

/// Binds the preferred address, or any free loopback port when it is taken.
async fn listener(preferred: &str) -> std::io::Result<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(preferred).await {
        Ok(l) => Ok(l),
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await,
    }
}

/// Runs the demo. With `once`, sends the samples, prints each outcome and
/// returns whether every one got its expected answer.
pub(crate) async fn run(once: bool) -> Result<bool, String> {
    let key = SigningKey::from_pem(DEMO_ISSUER_KEY, Algorithm::EdDSA, "demo-2026").map_err(|e| e.to_string())?;
    let issuer = IssuerStandIn::start(jwks_of(&[&key]))
        .await
        .map_err(|e| e.to_string())?;
    let connect = ConnectStandIn::start(demo_credentials())
        .await
        .map_err(|e| e.to_string())?;
    prime(&connect);
    let (api, admin) = if once {
        (listener("127.0.0.1:0").await, listener("127.0.0.1:0").await)
    } else {
        (listener("127.0.0.1:8080").await, listener("127.0.0.1:9901").await)
    };
    let (api, admin) = (api.map_err(|e| e.to_string())?, admin.map_err(|e| e.to_string())?);
    let api_addr = api.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;

    // The embedded config, written to a private folder so `check` and `explain` can be tried on it.
    let dir = std::env::temp_dir().join(format!("connect-monitor-gateway-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let config_text = DEMO_CONFIG
        .replace("{ISSUER}", &issuer.issuer())
        .replace("{JWKS_URL}", &issuer.jwks_url())
        .replace("{CONNECT_URL}", &connect.url())
        .replace("{LISTEN}", &api_addr.to_string())
        .replace("{ADMIN}", &admin_addr.to_string());
    let config_path: PathBuf = dir.join("gateway.toml");
    std::fs::write(&config_path, &config_text).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("policy.toml"), DEMO_POLICY).map_err(|e| e.to_string())?;
    let settings = Settings::load(&config_path).await.map_err(|e| e.to_string())?;

    // The self-check counts the audit lines it caused, in a file of its own.
    let audit_file = dir.join("audit.log");
    let audit = Arc::new(if once {
        AuditSink::open(&audit_file.display().to_string()).map_err(|e| e.to_string())?
    } else {
        AuditSink::open("-").map_err(|e| e.to_string())?
    });
    let deps = Dependencies {
        credentials: Some(SharedCredentialsProvider::new(demo_credentials())),
        audit: Some(audit.clone()),
        ..Dependencies::default()
    };
    let running = build::start_on(&settings, deps, api, Some(admin))
        .await
        .map_err(|e| e.to_string())?;
    let samples = samples(&key, &issuer.issuer());

    let outcome = if once {
        let ok = send_samples(api_addr, &samples).await;
        let signatures_ok = connect.bad_signatures().is_empty();
        let monitored = connect.calls("MonitorContact");
        let allowed = samples.iter().filter(|s| s.status == 200).count();
        let lookups: Vec<String> = ["DescribeContact", "DescribeUser", "ListSecurityProfilePermissions"]
            .iter()
            .map(|op| format!("{op} {}", connect.calls(op)))
            .collect();
        let audited = std::fs::read_to_string(&audit_file)
            .map(|text| text.lines().count())
            .unwrap_or(0);
        println!(
            "Connect stand-in: {monitored} MonitorContact call(s) for {allowed} allowed request(s); \
             lookups: {} (later ones from the cache); every SigV4 signature {}",
            lookups.join(", "),
            if signatures_ok { "verified" } else { "NOT verified" }
        );
        println!("audit: {audited} record(s) for {} request(s)", samples.len());
        Ok(ok && signatures_ok && monitored == allowed && audited == samples.len())
    } else {
        println!("connect-monitor-gateway demo");
        println!("  API     http://{api_addr}/contact/monitor");
        println!("  admin   http://{admin_addr}/healthz  /readyz  /metrics");
        println!("  config  {}", config_path.display());
        println!("  issuer  {} (in-process, EdDSA)", issuer.issuer());
        println!(
            "  Connect {} (in-process stand-in; checks every SigV4 signature)",
            connect.url()
        );
        println!(
            "  Connect records: {LEAD_USER} (carol, team-leads) leads {LEAD_GROUP}, profile {LEAD_PROFILE} \
             (ManagerListenIn, no ManagerBargeIn); {CALL_IN_TEAM} is a call in {LEAD_GROUP}, \
             {CALL_OUT_OF_TEAM} one in team-south"
        );
        println!();
        for sample in &samples {
            println!("# {} -> expect {}", sample.what, sample.status);
            println!("{}\n", curl(api_addr, sample));
        }
        println!("Audit records follow as JSON lines. Ctrl-C to stop.");
        shutdown_signal().await;
        Ok(true)
    };
    running.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

async fn send_samples(addr: SocketAddr, samples: &[Sample]) -> bool {
    let client = crate::http::client::build();
    let mut all_ok = true;
    for sample in samples {
        let mut request = http::Request::post(format!("http://{addr}/contact/monitor"))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(t) = &sample.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let request = request
            .body(Full::new(Bytes::from(sample.body.to_string())))
            .expect("a well-formed request");
        let (status, body) = match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
            Ok(Ok(response)) => {
                let status = response.status().as_u16();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|c| c.to_bytes())
                    .unwrap_or_default();
                (status, serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null))
            }
            _ => (0, Value::Null),
        };
        let code = if body["success"] == true {
            "OK"
        } else {
            body["error"]["code"].as_str().unwrap_or("?")
        };
        let message = body["error"]["message"].as_str().unwrap_or("");
        let ok = status == sample.status
            && code == sample.code
            && sample.reason.is_none_or(|reason| message.ends_with(reason));
        all_ok &= ok;
        let detail = if status == 200 {
            format!("contact_arn={}", body["data"]["contact_arn"].as_str().unwrap_or("?"))
        } else {
            message.to_string()
        };
        println!(
            "[{}] {}: {status} {code} {detail}",
            if ok { "ok" } else { "UNEXPECTED" },
            sample.what
        );
    }
    all_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_curl_commands_show_the_http_status() {
        let key = SigningKey::from_pem(DEMO_ISSUER_KEY, Algorithm::EdDSA, "demo-2026").unwrap();
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for sample in samples(&key, "http://127.0.0.1:1") {
            let command = curl(addr, &sample);
            assert!(
                command.starts_with("curl -sS -w '\\nHTTP %{http_code}\\n' -X POST"),
                "{command}"
            );
            assert!(command.contains("http://127.0.0.1:8080/contact/monitor"), "{command}");
        }
    }
}
