//! Test support: the real gateway stack against an in-process identity
//! provider (JWKS over HTTP) and a SigV4-checking Connect stand-in, all on
//! ephemeral loopback ports. Tests read "stand-ins → gateway → client".
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::check::Environment;
use connect_monitor_gateway::config::Settings;
use connect_monitor_gateway::connect::retry::RetrySettings;
use connect_monitor_gateway::demo::connect_standin::ConnectStandIn;
use connect_monitor_gateway::demo::issuer_standin::{jwks_of, IssuerStandIn, SigningKey};
use connect_monitor_gateway::gateway::build::{self as server, Dependencies, RunningGateway};
use connect_monitor_gateway::http::client::{self as http_client, HttpClient};
use connect_monitor_gateway::telemetry::audit::AuditSink;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

pub const AUDIENCE: &str = "connect-monitor-gateway";
pub const ACCESS_KEY: &str = "AKIATESTGATEWAY00001";
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdefghijklmnop";
pub const SESSION_TOKEN: &str = "test-session-token-zyxwvutsrqponm";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).expect("fixture")
}

/// The test keys: three published algorithms, one to publish later, one never.
pub struct Keys {
    pub rsa: SigningKey,
    pub ec: SigningKey,
    pub ed: SigningKey,
    pub rotated: SigningKey,
    pub foreign: SigningKey,
}

impl Keys {
    pub fn load() -> Keys {
        Keys {
            rsa: SigningKey::from_pem(&fixture("rsa.pem"), Algorithm::RS256, "rsa-1").unwrap(),
            ec: SigningKey::from_pem(&fixture("ec.pem"), Algorithm::ES256, "ec-1").unwrap(),
            ed: SigningKey::from_pem(&fixture("ed25519.pem"), Algorithm::EdDSA, "ed-1").unwrap(),
            rotated: SigningKey::from_pem(&fixture("ed25519_rotated.pem"), Algorithm::EdDSA, "ed-2").unwrap(),
            foreign: SigningKey::from_pem(&fixture("ec_foreign.pem"), Algorithm::ES256, "ec-1").unwrap(),
        }
    }

    pub fn published(&self) -> Value {
        jwks_of(&[&self.rsa, &self.ec, &self.ed])
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Credentials that count how often they are asked for.
#[derive(Debug, Clone)]
pub struct CountingCredentials {
    pub calls: Arc<AtomicUsize>,
    /// Lifetime of each credential handed out; `None` = no expiry.
    pub lifetimes: Arc<Mutex<Vec<Option<Duration>>>>,
}

impl CountingCredentials {
    pub fn new(lifetimes: Vec<Option<Duration>>) -> Self {
        CountingCredentials {
            calls: Arc::new(AtomicUsize::new(0)),
            lifetimes: Arc::new(Mutex::new(lifetimes)),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

pub fn test_credentials(expiry: Option<SystemTime>) -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN.into()), expiry, "test")
}

impl ProvideCredentials for CountingCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut lifetimes = self.lifetimes.lock().unwrap();
        // The last lifetime repeats once the list runs out.
        let lifetime = if lifetimes.len() > 1 {
            lifetimes.remove(0)
        } else {
            lifetimes.first().copied().flatten()
        };
        future::ProvideCredentials::ready(Ok(test_credentials(lifetime.map(|l| SystemTime::now() + l))))
    }
}

pub const POLICY: &str = r#"
[[grant]]
name = "supervisors"
claims = { groups = "supervisors" }
instances = ["inst-1", "inst-2"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"

[[grant]]
name = "leads"
claims = { groups = "leads" }
instances = ["*"]
capabilities = ["SILENT_MONITOR", "BARGE"]
as_user = ["lead-user-1"]
"#;

/// How to build a harness.
pub struct Options {
    pub server_extra: String,
    pub connect_extra: String,
    pub issuer_extra: String,
    pub policy: String,
    pub credentials: CountingCredentials,
    pub credentials_margin: Duration,
    pub retry: Option<RetrySettings>,
    pub jwks_refresh: &'static str,
    /// The identity provider answers 503 from the start.
    pub issuer_down_at_start: bool,
    /// Serve the Connect stand-in over TLS (tests/fixtures/tls/server.pem).
    pub connect_tls: bool,
    /// Outbound proxy and extra CAs; none by default.
    pub egress: Option<connect_monitor_gateway::http::client::Egress>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            server_extra: String::new(),
            connect_extra: String::new(),
            issuer_extra: String::new(),
            policy: POLICY.to_string(),
            credentials: CountingCredentials::new(vec![Some(Duration::from_secs(3600))]),
            credentials_margin: Duration::from_secs(300),
            // Small backoff bases keep retry tests quick; the rules are the SDK's.
            retry: Some(RetrySettings {
                throttle_base: Duration::from_millis(20),
                transient_base: Duration::from_millis(5),
                ..RetrySettings::new(3, Duration::from_secs(2))
            }),
            jwks_refresh: "10m",
            issuer_down_at_start: false,
            connect_tls: false,
            egress: None,
        }
    }
}

/// A gateway with its stand-ins.
pub struct Harness {
    pub keys: Keys,
    pub issuer: IssuerStandIn,
    pub connect: ConnectStandIn,
    pub gateway: Option<RunningGateway>,
    pub audit: Arc<AuditSink>,
    pub credentials: CountingCredentials,
    pub client: HttpClient,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        if self.body["success"] == true {
            "OK"
        } else {
            self.body["error"]["code"].as_str().unwrap_or("<none>")
        }
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub fn config_text(issuer: &IssuerStandIn, connect: &ConnectStandIn, o: &Options) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
{server_extra}

[auth]
leeway = "60s"

[[auth.issuers]]
issuer = "{issuer}"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256", "ES256", "EdDSA"]
jwks_url = "{jwks}"
jwks_refresh = "{refresh}"
{issuer_extra}

[connect]
region = "eu-west-2"
endpoint = "{connect}"
{connect_extra}

[policy]
file = "policy.toml"
user_id_claim = "connect_user_id"
"#,
        server_extra = o.server_extra,
        issuer = issuer.issuer(),
        jwks = issuer.jwks_url(),
        refresh = o.jwks_refresh,
        issuer_extra = o.issuer_extra,
        connect = connect.url(),
        connect_extra = o.connect_extra,
    )
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(o: Options) -> Harness {
        let keys = Keys::load();
        let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
        issuer.set_up(!o.issuer_down_at_start);
        let connect = if o.connect_tls {
            ConnectStandIn::start_tls(test_credentials(None), tls_files(None))
                .await
                .unwrap()
        } else {
            ConnectStandIn::start(test_credentials(None)).await.unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("policy.toml"), &o.policy).unwrap();
        let config = dir.path().join("gateway.toml");
        std::fs::write(&config, config_text(&issuer, &connect, &o)).unwrap();
        // No environment: the machine's AWS_* and proxy variables never reach a test.
        let settings =
            Settings::load_with(&config, Environment::default()).unwrap_or_else(|e| panic!("test config: {e}"));
        let audit = Arc::new(AuditSink::Memory(Default::default()));
        let deps = Dependencies {
            credentials: Some(SharedCredentialsProvider::new(o.credentials.clone())),
            credentials_margin: o.credentials_margin,
            retry: o.retry.clone(),
            audit: Some(audit.clone()),
            egress: Some(o.egress.clone().unwrap_or_default()),
        };
        let gateway = server::start(&settings, deps).await.unwrap();
        Harness {
            keys,
            issuer,
            connect,
            gateway: Some(gateway),
            audit,
            credentials: o.credentials,
            client: http_client::build(),
            dir,
            settings,
        }
    }

    pub fn gateway(&self) -> &RunningGateway {
        self.gateway.as_ref().expect("gateway running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway().api_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway().admin_addr.expect("admin listener"))
    }

    /// Standard claims for a caller, signed with the EdDSA key.
    pub fn claims(&self, sub: &str, groups: &str, user: &str) -> Value {
        json!({
            "iss": self.issuer.issuer(), "aud": AUDIENCE, "sub": sub,
            "iat": now(), "nbf": now(), "exp": now() + 600,
            "groups": [groups], "connect_user_id": user,
        })
    }

    /// The supervisor's claims with some members replaced (`null` removes one).
    pub fn claims_with(&self, changes: Value) -> Value {
        let mut claims = self.claims("sup-1", "supervisors", "user-1");
        for (k, v) in changes.as_object().expect("changes are an object") {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    /// A second gateway on this harness's config and stand-ins, with its own
    /// credentials provider (for credentials-failure tests).
    pub async fn gateway_with_credentials(&self, provider: SharedCredentialsProvider) -> RunningGateway {
        let deps = Dependencies {
            credentials: Some(provider),
            audit: Some(Arc::new(AuditSink::Memory(Default::default()))),
            egress: Some(Default::default()),
            ..Default::default()
        };
        server::start(&self.settings, deps).await.unwrap()
    }

    /// POSTs the standard body with the supervisor's token to another gateway.
    pub async fn monitor_at(&self, gateway: &RunningGateway) -> u16 {
        let req = Request::post(format!("http://{}/contact/monitor", gateway.api_addr))
            .header("authorization", format!("Bearer {}", self.supervisor_token()))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(BODY.as_bytes())))
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(20), self.client.request(req)).await;
        answer
            .expect("answer within 20 s")
            .expect("gateway answered")
            .status()
            .as_u16()
    }

    /// A valid token of a supervisor whose Connect user id is `user-1`.
    pub fn supervisor_token(&self) -> String {
        self.keys.ed.mint(&self.claims("sup-1", "supervisors", "user-1"))
    }

    pub fn lead_token(&self) -> String {
        self.keys.ed.mint(&self.claims("lead-1", "leads", "lead-user-1"))
    }

    /// Sends any request to the API listener and reads the answer (bounded).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        let response = tokio::time::timeout(Duration::from_secs(20), self.client.request(request))
            .await
            .expect("answer within 20 s")
            .expect("gateway answered");
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// POSTs a JSON body to /contact/monitor with an optional bearer token.
    pub async fn monitor(&self, token: Option<&str>, body: &str) -> Answer {
        let mut req = Request::post(self.url("/contact/monitor")).header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        self.send(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap())
            .await
    }

    /// GETs an admin path.
    pub async fn admin(&self, path: &str) -> (u16, String) {
        let req = Request::get(self.admin_url(path))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(10), self.client.request(req))
            .await
            .unwrap()
            .unwrap();
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        self.audit
            .memory_lines()
            .iter()
            .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
            .collect()
    }

    /// Asserts every request Connect got carried a valid signature.
    pub fn assert_signatures_verified(&self) {
        assert_eq!(
            self.connect.bad_signatures(),
            Vec::<String>::new(),
            "the stand-in saw bad signatures"
        );
    }
}

/// A valid body for the supervisor token (`user-1` on `inst-1`).
pub const BODY: &str = r#"{"InstanceId":"inst-1","ContactId":"contact-1","UserId":"user-1"}"#;

/// What a raw exchange on one TCP connection produced.
#[derive(Debug)]
pub struct RawAnswer {
    /// The status of the first response, `None` when the connection closed without one.
    pub status: Option<u16>,
    pub text: String,
    /// How long until the gateway closed the connection (or the read deadline).
    pub elapsed: Duration,
}

impl RawAnswer {
    /// The envelope code of the first response's JSON body, if any.
    pub fn code(&self) -> Option<String> {
        let body = self.text.split("\r\n\r\n").nth(1)?;
        let v: Value = serde_json::from_str(body.trim()).ok()?;
        v["error"]["code"].as_str().map(str::to_owned)
    }
}

/// Sends raw bytes, in pieces with pauses between them if asked, then reads
/// until the gateway closes the connection or `within` runs out.
pub async fn raw_exchange(addr: std::net::SocketAddr, pieces: &[(&[u8], Duration)], within: Duration) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.split();
    let mut received = Vec::new();
    let exchange = async {
        let send = async {
            for (bytes, pause) in pieces {
                if writer.write_all(bytes).await.is_err() {
                    break;
                }
                tokio::time::sleep(*pause).await;
            }
            std::future::pending::<()>().await
        };
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
                if response_complete(&received) {
                    break;
                }
            }
        };
        tokio::select! {
            _ = send => {}
            _ = read => {}
        }
    };
    let _ = tokio::time::timeout(within, exchange).await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse().ok());
    RawAnswer {
        status,
        text,
        elapsed: started.elapsed(),
    }
}

/// Whether `bytes` hold one whole response (head and `Content-Length` body).
fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if head.starts_with("HTTP/1.1 1") {
        return false; // an interim 1xx response: the real one follows
    }
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

/// A test TLS file's path.
pub fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR")))
}

/// The test server certificate (localhost, 127.0.0.1), optionally requiring
/// client certificates signed by `client_ca`.
pub fn tls_server_config(client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    connect_monitor_gateway::http::tls::server_config(&tls_files(client_ca)).unwrap()
}

/// The test certificate files (localhost, 127.0.0.1), optionally with a client CA.
pub fn tls_files(client_ca: Option<&str>) -> connect_monitor_gateway::http::tls::TlsFiles {
    connect_monitor_gateway::http::tls::TlsFiles {
        cert_file: tls_fixture("server.pem"),
        key_file: tls_fixture("server.key"),
        client_ca_file: client_ca.map(tls_fixture),
    }
}

/// The test CA, for clients that must trust the test server certificate.
pub fn test_ca() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    connect_monitor_gateway::http::tls::read_certs(&tls_fixture("ca.pem")).unwrap()
}
