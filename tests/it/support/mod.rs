//! Test support: the real gateway stack against an in-process identity
//! provider (JWKS over HTTP) and a SigV4-checking Connect stand-in, all on
//! ephemeral loopback ports. Tests read "stand-ins → gateway → client".
#![allow(dead_code)]

pub mod chromium;
pub mod connect_records;
pub mod redis;
pub mod security_cases;
pub mod sts_standin;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{future, ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::test_util::AuditSink;
use connect_monitor_gateway::test_util::ConnectStandIn;
use connect_monitor_gateway::test_util::Environment;
use connect_monitor_gateway::test_util::RetrySettings;
use connect_monitor_gateway::test_util::Settings;
use connect_monitor_gateway::test_util::TlsFiles;
use connect_monitor_gateway::test_util::{self as gateway, Dependencies, PanicHook, RunningGateway};
use connect_monitor_gateway::test_util::{http_client, Egress, HttpClient};
use connect_monitor_gateway::test_util::{jwks_of, IssuerStandIn, SigningKey};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

pub const AUDIENCE: &str = "connect-monitor-gateway";
pub const ACCESS_KEY: &str = "AKIATESTGATEWAY00001";
pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdefghijklmnop";
pub const SESSION_TOKEN: &str = "test-session-token-zyxwvutsrqponm";

/// How late the gateway may act after one of its own deadlines on a loaded
/// 2-core machine: tests check the deadline, not the machine's pace.
pub const DEADLINE_SLACK: Duration = Duration::from_secs(2);

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

/// Standard claims for a caller of `issuer`, valid for ten minutes.
pub fn claims(issuer: &str, sub: &str, groups: &str, user: &str) -> Value {
    json!({
        "iss": issuer, "aud": AUDIENCE, "sub": sub,
        "iat": now(), "nbf": now(), "exp": now() + 600,
        "groups": [groups], "connect_user_id": user,
    })
}

/// What the test credentials provider hands out when it is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handout {
    /// Credentials that expire this long after they are handed out (`None`: never).
    Lasting(Option<Duration>),
    /// Credentials that expired a minute ago.
    Expired,
    /// No credentials in the chain (`CredentialsError::not_loaded`).
    Missing,
    /// The provider fails, like an unreachable IMDS (`CredentialsError::provider_error`).
    Unreachable,
}

/// The one test credentials provider: hands out what it is told, in order
/// (the last handout repeats), and records when it was asked.
#[derive(Debug, Clone)]
pub struct TestCredentials {
    handouts: Arc<Mutex<Vec<Handout>>>,
    asked_at: Arc<Mutex<Vec<SystemTime>>>,
}

impl TestCredentials {
    pub fn new(handouts: impl IntoIterator<Item = Handout>) -> Self {
        let credentials = TestCredentials {
            handouts: Default::default(),
            asked_at: Default::default(),
        };
        credentials.set(handouts);
        credentials
    }

    /// From now on, hand these out instead.
    pub fn set(&self, handouts: impl IntoIterator<Item = Handout>) {
        let handouts: Vec<Handout> = handouts.into_iter().collect();
        assert!(!handouts.is_empty(), "at least one handout");
        *self.handouts.lock().unwrap() = handouts;
    }

    /// How often the provider was asked.
    pub fn calls(&self) -> usize {
        self.asked_at.lock().unwrap().len()
    }

    /// When the provider was asked, by the clock credentials expire by.
    pub fn asked_at(&self) -> Vec<SystemTime> {
        self.asked_at.lock().unwrap().clone()
    }
}

impl Default for TestCredentials {
    /// Credentials good for an hour, every time.
    fn default() -> Self {
        TestCredentials::new([Handout::Lasting(Some(Duration::from_secs(3600)))])
    }
}

pub fn test_credentials(expiry: Option<SystemTime>) -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN.into()), expiry, "test")
}

impl ProvideCredentials for TestCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let now = SystemTime::now();
        self.asked_at.lock().unwrap().push(now);
        let handout = {
            let mut handouts = self.handouts.lock().unwrap();
            if handouts.len() > 1 {
                handouts.remove(0)
            } else {
                handouts[0]
            }
        };
        future::ProvideCredentials::ready(match handout {
            Handout::Lasting(lifetime) => Ok(test_credentials(lifetime.map(|l| now + l))),
            Handout::Expired => Ok(test_credentials(Some(now - Duration::from_secs(60)))),
            Handout::Missing => Err(CredentialsError::not_loaded("no credentials in the test chain")),
            Handout::Unreachable => Err(CredentialsError::provider_error("IMDS unreachable")),
        })
    }
}

/// Starts every future on its own task at once; awaiting the result
/// collects their outputs in order (a panic in one is re-raised there).
pub fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Joined<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    Joined(futures.into_iter().map(tokio::spawn).collect())
}

/// Tasks started together by [`join_all`].
pub struct Joined<T>(Vec<tokio::task::JoinHandle<T>>);

impl<T: Send + 'static> std::future::IntoFuture for Joined<T> {
    type Output = Vec<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Vec<T>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let mut outputs = Vec::with_capacity(self.0.len());
            for task in self.0 {
                match task.await {
                    Ok(output) => outputs.push(output),
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => panic!("a joined task did not finish: {e}"),
                }
            }
            outputs
        })
    }
}

/// Polls `done` every 10 ms until it holds; fails naming `what` once `limit` has passed.
pub async fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(limit, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within {limit:?}");
}

/// The identity provider goes down: once the gateway has asked it again
/// (bounded wait), the keys it already held still verify and it stays ready.
pub async fn issuer_outage_keeps_the_cached_keys(h: &Harness) {
    h.issuer.set_up(false);
    let before = h.issuer.fetches();
    wait_until(
        Duration::from_secs(5),
        "the gateway asked the identity provider again",
        || h.issuer.fetches() > before,
    )
    .await;
    let a = h.monitor(Some(&h.supervisor_token()), BODY).await;
    assert_eq!(a.status, 200, "cached keys still verify: {:?}", a.body);
    assert_eq!(h.admin("/readyz").await.0, 200, "still ready on cached keys");
}

/// The harness's issuer, its keys fetched again every second (a test of
/// rotation or outage must not wait ten minutes).
pub const ISSUER_REFRESHED_EVERY_SECOND: &str = r#"
    [[auth.issuers]]
    issuer = "{ISSUER}"
    audiences = ["connect-monitor-gateway"]
    algorithms = ["RS256", "ES256", "EdDSA"]
    jwks_url = "{JWKS_URL}"
    jwks_refresh = "1s"
"#;

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

/// The harness's gateway configuration, before a test's own is merged over
/// it: the stand-ins, ephemeral ports, the issuer's keys and the policy file.
/// `{…}` placeholders are replaced in every string value (see [`Options::config`]).
const BASE_CONFIG: &str = r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[auth]
leeway = "60s"

[[auth.issuers]]
issuer = "{ISSUER}"
audiences = ["connect-monitor-gateway"]
algorithms = ["RS256", "ES256", "EdDSA"]
jwks_url = "{JWKS_URL}"
jwks_refresh = "10m"

[connect]
region = "eu-west-2"
endpoint = "{CONNECT_URL}"
# Budgets far above any test's pace: tests of the budgets set their own.
max_rate = 10000.0
burst = 10000

[connect.quotas]
DescribeContact = { rate = 10000.0, burst = 10000 }
DescribeUser = { rate = 10000.0, burst = 10000 }
ListSecurityProfilePermissions = { rate = 10000.0, burst = 10000 }
SearchUsers = { rate = 10000.0, burst = 10000 }

[policy]
file = "policy.toml"
user_id_claim = "connect_user_id"
"#;

/// How to build a harness: the configuration a test needs, and what the
/// gateway is built with besides its configuration.
pub struct Options<'a> {
    /// Gateway configuration as a user writes gateway.toml, merged over the
    /// harness's base: tables merge key by key; any other value, an array of
    /// tables (`[[connect.instances]]`) among them, replaces the base's.
    /// In string values, `{ISSUER}`, `{JWKS_URL}` and `{CONNECT_URL}` name the
    /// running stand-ins, `{DIR}` the test's temp folder (where gateway.toml
    /// is written) and `{FIXTURES}` tests/fixtures. The gateway's loader
    /// refuses a key it does not know.
    pub config: &'a str,
    /// The policy file's text.
    pub policy: String,
    /// The identity provider answers 503 from the start.
    pub issuer_down_at_start: bool,
    /// Environment variables the gateway's configuration is loaded with
    /// (none of the machine's ever reach a test).
    pub env: &'a [(&'a str, &'a str)],
    /// The discovery document the issuer serves from the start, made from the
    /// running stand-in; `None` serves the truthful one.
    pub discovery_document: Option<fn(&IssuerStandIn) -> Value>,
    /// Serve the Connect stand-in over TLS (tests/fixtures/tls/server.pem).
    pub connect_tls: bool,
    pub credentials: TestCredentials,
    pub credentials_margin: Duration,
    pub retry: Option<RetrySettings>,
    /// Outbound proxy and extra CAs; none by default.
    pub egress: Option<Egress>,
    /// Where STS is, for instances' `role_arn`.
    pub sts_endpoint: Option<String>,
    /// Called with every validated request before it is decided.
    pub panic_hook: Option<PanicHook>,
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            config: "",
            policy: POLICY.to_string(),
            issuer_down_at_start: false,
            env: &[],
            discovery_document: None,
            connect_tls: false,
            credentials: TestCredentials::default(),
            credentials_margin: Duration::from_secs(300),
            // Small backoff bases keep retry tests quick; the rules are the SDK's.
            retry: Some(RetrySettings {
                throttle_base: Duration::from_millis(20),
                transient_base: Duration::from_millis(5),
                ..RetrySettings::new(3, Duration::from_secs(2))
            }),
            egress: None,
            sts_endpoint: None,
            panic_hook: None,
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
    pub credentials: TestCredentials,
    pub client: HttpClient,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
    /// What the gateway was built with, for [`Harness::replica`].
    built: Built,
}

/// What a harness's gateways are built with besides their settings and
/// audit sink: every replica the same as the first.
#[derive(Clone)]
struct Built {
    credentials: TestCredentials,
    credentials_margin: Duration,
    retry: Option<RetrySettings>,
    egress: Egress,
    sts_endpoint: Option<String>,
    panic_hook: Option<PanicHook>,
}

impl Built {
    fn dependencies(&self, audit: Arc<AuditSink>) -> Dependencies {
        Dependencies {
            credentials: Some(SharedCredentialsProvider::new(self.credentials.clone())),
            credentials_margin: self.credentials_margin,
            retry: self.retry.clone(),
            audit: Some(audit),
            egress: Some(self.egress.clone()),
            sts_endpoint: self.sts_endpoint.clone(),
            panic_hook: self.panic_hook.clone(),
        }
    }
}

/// Another gateway on the harness's settings and stand-ins (one fleet, one
/// Connect account): its own listeners and audit sink.
pub struct Replica {
    pub gateway: RunningGateway,
    pub audit: Arc<AuditSink>,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.api_addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.admin_addr.expect("admin listener"))
    }

    /// POSTs a JSON body to this replica's /contact/monitor, as [`Harness::monitor`].
    pub async fn monitor(&self, client: &HttpClient, token: Option<&str>, body: &str) -> Answer {
        send(client, json_post(&self.url("/contact/monitor"), token, body)).await
    }

    /// POSTs a JSON body to this replica's dry run, /contact/monitor/check.
    pub async fn check(&self, client: &HttpClient, token: Option<&str>, body: &str) -> Answer {
        send(client, json_post(&self.url("/contact/monitor/check"), token, body)).await
    }

    pub fn audit_lines(&self) -> Vec<Value> {
        audit_lines(&self.audit)
    }
}

/// A JSON POST with an optional bearer token.
fn json_post(url: &str, token: Option<&str>, body: &str) -> Request<Full<Bytes>> {
    let mut req = Request::post(url).header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
}

/// Sends any request and reads the answer (bounded).
pub async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
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

fn audit_lines(audit: &AuditSink) -> Vec<Value> {
    audit
        .memory_lines()
        .iter()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
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

/// `over` merged into `base`: tables key by key, anything else replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Replaces the placeholders in every string inside `value`.
fn substitute(value: &mut toml::Value, placeholders: &[(&str, String)]) {
    match value {
        toml::Value::String(s) => {
            for (name, replacement) in placeholders {
                *s = s.replace(name, replacement);
            }
        }
        toml::Value::Array(items) => items.iter_mut().for_each(|v| substitute(v, placeholders)),
        toml::Value::Table(table) => table.iter_mut().for_each(|(_, v)| substitute(v, placeholders)),
        _ => {}
    }
}

/// The gateway configuration for these stand-ins: `config` (TOML, see
/// [`Options::config`]) merged over the harness's base, for a gateway.toml in `dir`.
pub fn config_text(issuer: &IssuerStandIn, connect: &ConnectStandIn, dir: &Path, config: &str) -> String {
    let mut merged: toml::Table = toml::from_str(BASE_CONFIG).expect("base config is TOML");
    let over: toml::Table = toml::from_str(config).unwrap_or_else(|e| panic!("test config is not TOML: {e}"));
    merge(&mut merged, over);
    let placeholders = [
        ("{ISSUER}", issuer.issuer()),
        ("{JWKS_URL}", issuer.jwks_url()),
        ("{CONNECT_URL}", connect.url()),
        ("{DIR}", dir.display().to_string()),
        ("{FIXTURES}", format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"))),
    ];
    let mut merged = toml::Value::Table(merged);
    substitute(&mut merged, &placeholders);
    toml::to_string(&merged).expect("config serializes")
}

/// Writes the policy and the gateway configuration for these stand-ins into
/// `dir`; returns the configuration file's path.
pub fn write_config(dir: &Path, issuer: &IssuerStandIn, connect: &ConnectStandIn, o: &Options) -> PathBuf {
    std::fs::write(dir.join("policy.toml"), &o.policy).unwrap();
    let config = dir.join("gateway.toml");
    std::fs::write(&config, config_text(issuer, connect, dir, o.config)).unwrap();
    config
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with(Options::default()).await
    }

    pub async fn with(o: Options<'_>) -> Harness {
        let keys = Keys::load();
        let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
        issuer.set_up(!o.issuer_down_at_start);
        if let Some(document) = o.discovery_document {
            issuer.set_discovery(Some(document(&issuer)));
        }
        let connect = if o.connect_tls {
            ConnectStandIn::start_tls(test_credentials(None), tls_files(None))
                .await
                .unwrap()
        } else {
            ConnectStandIn::start(test_credentials(None)).await.unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &issuer, &connect, &o);
        Self::on_config(keys, issuer, connect, dir, &config, o).await
    }

    /// The gateway on a configuration already written (into `dir`) for these
    /// stand-ins; `o` gives what is built besides the configuration.
    pub async fn on_config(
        keys: Keys,
        issuer: IssuerStandIn,
        connect: ConnectStandIn,
        dir: tempfile::TempDir,
        config: &Path,
        o: Options<'_>,
    ) -> Harness {
        // No environment: the machine's AWS_* and proxy variables never reach a test.
        let env = o.env;
        let environment = Environment::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
        let settings = Settings::load_with(config, environment)
            .await
            .unwrap_or_else(|e| panic!("test config: {e}"));
        let audit = Arc::new(AuditSink::Memory(Default::default()));
        let built = Built {
            credentials: o.credentials.clone(),
            credentials_margin: o.credentials_margin,
            retry: o.retry.clone(),
            egress: o.egress.clone().unwrap_or_default(),
            sts_endpoint: o.sts_endpoint.clone(),
            panic_hook: o.panic_hook.clone(),
        };
        let gateway = gateway::start(&settings, built.dependencies(audit.clone()))
            .await
            .unwrap();
        Harness {
            keys,
            issuer,
            connect,
            gateway: Some(gateway),
            audit,
            credentials: o.credentials,
            client: http_client(),
            dir,
            settings,
            built,
        }
    }

    /// Starts another gateway on the same settings, stand-ins and
    /// credentials (a replica of a fleet), with its own audit sink.
    pub async fn replica(&self) -> Replica {
        let audit = Arc::new(AuditSink::Memory(Default::default()));
        let gateway = gateway::start(&self.settings, self.built.dependencies(audit.clone()))
            .await
            .unwrap();
        Replica { gateway, audit }
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

    /// Standard claims for a caller of this harness's issuer.
    pub fn claims(&self, sub: &str, groups: &str, user: &str) -> Value {
        claims(&self.issuer.issuer(), sub, groups, user)
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

    /// A valid token of a supervisor whose Connect user id is `user-1`.
    pub fn supervisor_token(&self) -> String {
        self.keys.ed.mint(&self.claims("sup-1", "supervisors", "user-1"))
    }

    pub fn lead_token(&self) -> String {
        self.keys.ed.mint(&self.claims("lead-1", "leads", "lead-user-1"))
    }

    /// Sends any request to the API listener and reads the answer (bounded).
    pub async fn send(&self, request: Request<Full<Bytes>>) -> Answer {
        send(&self.client, request).await
    }

    /// POSTs a JSON body to /contact/monitor with an optional bearer token.
    pub async fn monitor(&self, token: Option<&str>, body: &str) -> Answer {
        self.send(json_post(&self.url("/contact/monitor"), token, body)).await
    }

    /// Starts `n` monitor requests with the same token and body at once; the
    /// future collects their answers.
    pub fn monitor_many(self: &Arc<Self>, n: usize, token: &str, body: &'static str) -> Joined<Answer> {
        join_all((0..n).map(move |_| {
            let (h, token) = (self.clone(), token.to_owned());
            async move { h.monitor(Some(&token), body).await }
        }))
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
        audit_lines(&self.audit)
    }

    /// Asserts the gateway answered its `i`th audited request at `deadline`
    /// by its own clock (from the request's arrival to its answer): not
    /// before, and at most [`DEADLINE_SLACK`] after.
    pub fn assert_answered_at_deadline(&self, i: usize, deadline: Duration) {
        let line = &self.audit_lines()[i];
        let took = Duration::from_secs_f64(line["duration_ms"].as_f64().expect("duration_ms") / 1000.0);
        assert!(
            took >= deadline && took < deadline + DEADLINE_SLACK,
            "answered after {took:?}, the deadline being {deadline:?}: {line}"
        );
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
pub async fn raw_exchange<B: AsRef<[u8]>>(addr: SocketAddr, pieces: &[(B, Duration)], within: Duration) -> RawAnswer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = std::time::Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.split();
    let mut received = Vec::new();
    let exchange = async {
        let send = async {
            for (bytes, pause) in pieces {
                if writer.write_all(bytes.as_ref()).await.is_err() {
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
pub fn tls_fixture(name: &str) -> PathBuf {
    PathBuf::from(format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR")))
}

/// The test server certificate (localhost, 127.0.0.1), optionally requiring
/// client certificates signed by `client_ca`.
pub fn tls_server_config(client_ca: Option<&str>) -> Arc<rustls::ServerConfig> {
    gateway::server_config(&tls_files(client_ca)).unwrap()
}

/// The test certificate files (localhost, 127.0.0.1), optionally with a client CA.
pub fn tls_files(client_ca: Option<&str>) -> TlsFiles {
    TlsFiles {
        cert_file: tls_fixture("server.pem"),
        key_file: tls_fixture("server.key"),
        client_ca_file: client_ca.map(tls_fixture),
    }
}

/// The test CA, for clients that must trust the test server certificate.
pub fn test_ca() -> Vec<rustls::pki_types::CertificateDer<'static>> {
    gateway::read_certs(&tls_fixture("ca.pem")).unwrap()
}
