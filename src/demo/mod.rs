//! Demo mode (CONTRACT §8): the gateway on an embedded config, with an
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

pub mod connect_standin;
pub mod issuer_standin;

const DEMO_CONFIG: &str = include_str!("../../config/demo/gateway.toml");
const DEMO_POLICY: &str = include_str!("../../config/demo/policy.toml");
/// A key made for the demo and published here; it guards nothing real.
const DEMO_ISSUER_KEY: &[u8] = include_bytes!("demo_ed25519.pem");
const DEMO_INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

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
    let body = |user: &str, caps: &[&str]| {
        json!({"InstanceId": DEMO_INSTANCE, "ContactId": "demo-contact-0001", "UserId": user,
               "AllowedMonitorCapabilities": caps})
    };
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
        },
        Sample {
            what: "bob tries to put alice's panel on the call (denied: user_not_allowed)",
            token: Some(bob),
            body: body("alice-connect-user", &["SILENT_MONITOR"]),
            status: 403,
            code: "FORBIDDEN",
        },
        Sample {
            what: "alice asks to barge, which supervisors may not (denied: capability_not_allowed)",
            token: Some(alice),
            body: body("alice-connect-user", &["SILENT_MONITOR", "BARGE"]),
            status: 403,
            code: "FORBIDDEN",
        },
        Sample {
            what: "a forged signature (refused: 401)",
            token: Some(forged),
            body: body("alice-connect-user", &["SILENT_MONITOR"]),
            status: 401,
            code: "UNAUTHENTICATED",
        },
    ]
}

fn curl(addr: SocketAddr, sample: &Sample) -> String {
    let auth = sample
        .token
        .as_ref()
        .map(|t| format!(" \\\n  -H 'Authorization: Bearer {t}'"))
        .unwrap_or_default();
    format!(
        "curl -sS -X POST http://{addr}/contact/monitor{auth} \\\n  -H 'Content-Type: application/json' \\\n  -d '{}'",
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
pub async fn run(once: bool) -> Result<bool, String> {
    let key = SigningKey::from_pem(DEMO_ISSUER_KEY, Algorithm::EdDSA, "demo-2026").map_err(|e| e.to_string())?;
    let issuer = IssuerStandIn::start(jwks_of(&[&key]))
        .await
        .map_err(|e| e.to_string())?;
    let connect = ConnectStandIn::start(demo_credentials())
        .await
        .map_err(|e| e.to_string())?;
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
    let settings = Settings::load(&config_path).map_err(|e| e.to_string())?;

    let audit = Arc::new(if once {
        AuditSink::Memory(Default::default())
    } else {
        AuditSink::Stdout
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
        let reached = connect.received().len();
        let audited = audit.memory_lines().len();
        println!(
            "Connect stand-in: {reached} call(s) received, every SigV4 signature {}",
            if signatures_ok { "verified" } else { "NOT verified" }
        );
        println!("audit: {audited} record(s) for {} request(s)", samples.len());
        Ok(ok && signatures_ok && reached == 1 && audited == samples.len())
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
        let ok = status == sample.status && code == sample.code;
        all_ok &= ok;
        let detail = if status == 200 {
            format!("contact_arn={}", body["data"]["contact_arn"].as_str().unwrap_or("?"))
        } else {
            body["error"]["message"].as_str().unwrap_or("").to_string()
        };
        println!(
            "[{}] {}: {status} {code} {detail}",
            if ok { "ok" } else { "UNEXPECTED" },
            sample.what
        );
    }
    all_ok
}
