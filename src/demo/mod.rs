//! Demo mode (README.md, "The demo"): the gateway on an embedded config, with an
//! in-process issuer and a SigV4-checking Connect stand-in holding a small
//! live directory (a hierarchy, agents, the contacts on their panels), and a
//! dashboard page on an origin of its own; no AWS needed. Everything here,
//! the stand-ins and the demo's published keys included, exists only with the
//! default-on `demo` feature; the test suite uses the stand-ins, and starts
//! the whole demo (`RunningDemo`) for the dashboard's browser test.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::gateway::build::{self, Dependencies, RunningGateway};
use crate::http::client::HttpClient;
use crate::http::server::shutdown_signal;
use crate::telemetry::audit::AuditSink;
use connect_standin::ConnectStandIn;
use issuer_standin::{jwks_of, IssuerStandIn, SigningKey};

pub(crate) mod connect_standin;
mod dashboard;
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

/// The demo's hierarchy: a site with two teams, one with a sub-group.
const GROUPS: &[(&str, Option<&str>)] = &[
    ("site-london", None),
    ("team-north", Some("site-london")),
    ("team-north-nights", Some("team-north")),
    ("team-south", Some("site-london")),
];

/// The demo's agents and their groups.
const AGENTS: &[(&str, &str)] = &[
    ("dave-connect-agent", "team-north"),
    ("grace-connect-agent", "team-north-nights"),
    ("heidi-connect-agent", "team-north"),
    ("erin-connect-agent", "team-south"),
    ("ivan-connect-agent", "team-south"),
];

/// A contact on an agent's panel, as GetCurrentUserData reports it.
struct LiveContact {
    agent: &'static str,
    id: &'static str,
    channel: &'static str,
    initiation: &'static str,
    state: &'static str,
    /// Seconds before the demo started that the agent was connected; `None`
    /// for a contact not yet accepted.
    connected: Option<u64>,
    /// Seconds before the demo started that the contact entered `state`.
    state_start: u64,
    queue: &'static str,
}

/// What the agents' panels show: live calls and chats in both teams, a chat
/// still ringing (`INCOMING`) and one that has ended; neither of those two
/// may ever be listed.
const LIVE: &[LiveContact] = &[
    LiveContact {
        agent: "dave-connect-agent",
        id: CALL_IN_TEAM,
        channel: "VOICE",
        initiation: "INBOUND",
        state: "CONNECTED",
        connected: Some(7 * 60),
        state_start: 7 * 60,
        queue: "demo-queue-support",
    },
    LiveContact {
        agent: "erin-connect-agent",
        id: CALL_OUT_OF_TEAM,
        channel: "VOICE",
        initiation: "INBOUND",
        state: "CONNECTED",
        connected: Some(6 * 60),
        state_start: 6 * 60,
        queue: "demo-queue-support",
    },
    LiveContact {
        agent: "grace-connect-agent",
        id: "demo-contact-0004",
        channel: "CHAT",
        initiation: "API",
        state: "CONNECTED",
        connected: Some(4 * 60),
        state_start: 4 * 60,
        queue: "demo-queue-chat",
    },
    LiveContact {
        agent: "heidi-connect-agent",
        id: "demo-contact-0005",
        channel: "VOICE",
        initiation: "OUTBOUND",
        state: "CONNECTED_ONHOLD",
        connected: Some(3 * 60),
        state_start: 60,
        queue: "demo-queue-outbound",
    },
    LiveContact {
        agent: "grace-connect-agent",
        id: "demo-contact-0006",
        channel: "CHAT",
        initiation: "API",
        state: "INCOMING",
        connected: None,
        state_start: 10,
        queue: "demo-queue-chat",
    },
    LiveContact {
        agent: "dave-connect-agent",
        id: "demo-contact-0007",
        channel: "CHAT",
        initiation: "API",
        state: "ENDED",
        connected: Some(9 * 60),
        state_start: 60,
        queue: "demo-queue-chat",
    },
    LiveContact {
        agent: "ivan-connect-agent",
        id: "demo-contact-0008",
        channel: "CHAT",
        initiation: "API",
        state: "CONNECTED",
        connected: Some(2 * 60),
        state_start: 2 * 60,
        queue: "demo-queue-chat",
    },
];

/// Carol's team's live contacts (her group and its sub-group), oldest first.
const TEAM_LIVE: &[&str] = &[CALL_IN_TEAM, "demo-contact-0004", "demo-contact-0005"];
/// Every live contact of the instance, oldest first.
const ALL_LIVE: &[&str] = &[
    CALL_IN_TEAM,
    CALL_OUT_OF_TEAM,
    "demo-contact-0004",
    "demo-contact-0005",
    "demo-contact-0008",
];
const TEAM_LEADS_GRANT: &str = "demo team leads: their own agents' calls";
const LEADS_GRANT: &str = "demo leads";

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

/// One sample listing and the contacts it must get, in order.
struct Listing {
    what: &'static str,
    token: String,
    contacts: &'static [&'static str],
    /// What each listed contact must allow, and by which grant.
    capabilities: &'static [&'static str],
    grant: &'static str,
    /// Whether it may call Connect at all.
    asks_connect: bool,
}

fn queue_arn(queue: &str) -> String {
    format!("arn:aws:connect:us-east-1:123456789012:instance/{DEMO_INSTANCE}/queue/{queue}")
}

/// Epoch seconds `ago` seconds before `now`, fractional as Connect writes them.
fn epoch_seconds(now: Duration, ago: u64) -> f64 {
    (now.as_millis() as f64 - (ago * 1000) as f64 + 417.0) / 1000.0
}

/// Gives the stand-in the demo's directory: the hierarchy, the lead with her
/// security profile, the agents, and what is on their panels (which
/// DescribeContact answers from too).
fn prime(connect: &ConnectStandIn) {
    connect.set_region("us-east-1");
    for (group, parent) in GROUPS {
        connect.add_hierarchy_group(group, *parent);
    }
    connect.add_user(json!({"Id": LEAD_USER, "Username": "carol@demo.example",
                            "HierarchyGroupId": LEAD_GROUP, "SecurityProfileIds": [LEAD_PROFILE]}));
    connect.add_security_profile(LEAD_PROFILE, &["BasicAgentAccess", "ManagerListenIn"]);
    connect.add_security_profile("sp-agent", &["BasicAgentAccess"]);
    for (agent, group) in AGENTS {
        let name = agent.split('-').next().unwrap_or(agent);
        connect.add_user(json!({"Id": agent, "Username": format!("{name}@demo.example"),
                                "HierarchyGroupId": group, "SecurityProfileIds": ["sp-agent"]}));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    for c in LIVE {
        let mut contact = json!({
            "ContactId": c.id, "Channel": c.channel, "InitiationMethod": c.initiation,
            "AgentContactState": c.state, "StateStartTimestamp": epoch_seconds(now, c.state_start),
            "Queue": {"Id": c.queue, "Arn": queue_arn(c.queue)},
        });
        if let Some(connected) = c.connected {
            contact["ConnectedToAgentTimestamp"] = json!(epoch_seconds(now, connected));
        }
        connect.add_agent_contact(c.agent, contact);
    }
}

/// A demo caller's token, valid for an hour from now.
fn token(key: &SigningKey, issuer: &str, sub: &str, groups: &str, user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    key.mint(&json!({
        "iss": issuer, "aud": "connect-monitor-gateway", "sub": sub,
        "iat": now, "exp": now + 3600,
        "groups": [groups], "connect_user_id": user,
    }))
}

fn samples(key: &SigningKey, issuer: &str) -> Vec<Sample> {
    let token = |sub: &str, groups: &str, user: &str| token(key, issuer, sub, groups, user);
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

fn listings(key: &SigningKey, issuer: &str) -> Vec<Listing> {
    vec![
        Listing {
            what: "carol lists her team's live contacts (listen-in only, by her security profile)",
            token: token(key, issuer, "carol", "team-leads", LEAD_USER),
            contacts: TEAM_LIVE,
            capabilities: &["SILENT_MONITOR"],
            grant: TEAM_LEADS_GRANT,
            asks_connect: true,
        },
        Listing {
            what: "lena, a lead, lists every live contact of the instance (listen and barge, by her claims)",
            token: token(key, issuer, "lena", "leads", "lena-connect-user"),
            contacts: ALL_LIVE,
            capabilities: &["SILENT_MONITOR", "BARGE"],
            grant: LEADS_GRANT,
            asks_connect: true,
        },
        Listing {
            what: "mallory, whom no grant names, gets an empty list and costs no Connect call",
            token: token(key, issuer, "mallory", "agents", "mallory-connect-user"),
            contacts: &[],
            capabilities: &[],
            grant: "",
            asks_connect: false,
        },
    ]
}

fn listing_url(addr: SocketAddr) -> String {
    format!("http://{addr}/contacts/monitorable?instance_id={DEMO_INSTANCE}")
}

fn listing_curl(addr: SocketAddr, listing: &Listing) -> String {
    format!(
        "curl -sS -w '\\nHTTP %{{http_code}}\\n' '{}' \\\n  -H 'Authorization: Bearer {}'",
        listing_url(addr),
        listing.token
    )
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
async fn listener(preferred: &str) -> std::io::Result<TcpListener> {
    match TcpListener::bind(preferred).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind("127.0.0.1:0").await,
    }
}

/// Where the demo listens, and where its audit goes.
#[derive(Clone, Copy, PartialEq)]
enum Ports {
    /// The API on 127.0.0.1:8080, admin on 9901 and the dashboard on 8081,
    /// each when free; the audit on stdout.
    Preferred,
    /// Free loopback ports; the audit in a file of its own (`--once`, tests).
    Free,
}

/// A folder of its own for each demo started in this process.
fn private_dir() -> PathBuf {
    static STARTED: AtomicUsize = AtomicUsize::new(0);
    let pid = std::process::id();
    let name = match STARTED.fetch_add(1, Ordering::Relaxed) {
        0 => format!("connect-monitor-gateway-demo-{pid}"),
        n => format!("connect-monitor-gateway-demo-{pid}-{n}"),
    };
    std::env::temp_dir().join(name)
}

/// The demo's pieces, running on loopback ports: the issuer, the Connect
/// stand-in with its directory, the gateway on the embedded config, and the
/// dashboard page on an origin of its own.
pub struct RunningDemo {
    key: SigningKey,
    issuer: IssuerStandIn,
    connect: ConnectStandIn,
    /// Taken by [`stop`](Self::stop).
    gateway: Option<RunningGateway>,
    api_addr: SocketAddr,
    admin_addr: SocketAddr,
    dashboard_addr: SocketAddr,
    dashboard: JoinHandle<()>,
    dir: PathBuf,
    config_path: PathBuf,
    /// The audit file; `None` when the audit goes to stdout.
    audit_file: Option<PathBuf>,
}

impl Drop for RunningDemo {
    fn drop(&mut self) {
        self.dashboard.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RunningDemo {
    async fn start(ports: Ports) -> Result<RunningDemo, String> {
        let key = SigningKey::from_pem(DEMO_ISSUER_KEY, Algorithm::EdDSA, "demo-2026").map_err(|e| e.to_string())?;
        let issuer = IssuerStandIn::start(jwks_of(&[&key]))
            .await
            .map_err(|e| e.to_string())?;
        let connect = ConnectStandIn::start(demo_credentials())
            .await
            .map_err(|e| e.to_string())?;
        prime(&connect);
        let bind = |preferred: &'static str| async move {
            let bound = match ports {
                Ports::Preferred => listener(preferred).await,
                Ports::Free => TcpListener::bind("127.0.0.1:0").await,
            };
            let bound = bound.map_err(|e| e.to_string())?;
            let addr = bound.local_addr().map_err(|e| e.to_string())?;
            Ok::<_, String>((bound, addr))
        };
        let (api, api_addr) = bind("127.0.0.1:8080").await?;
        let (admin, admin_addr) = bind("127.0.0.1:9901").await?;
        let (page, dashboard_addr) = bind("127.0.0.1:8081").await?;

        // The embedded config, written to a private folder so `check` and `explain` can be tried on it.
        let dir = private_dir();
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let config_text = DEMO_CONFIG
            .replace("{ISSUER}", &issuer.issuer())
            .replace("{JWKS_URL}", &issuer.jwks_url())
            .replace("{CONNECT_URL}", &connect.url())
            .replace("{LISTEN}", &api_addr.to_string())
            .replace("{ADMIN}", &admin_addr.to_string())
            + &format!(
                "\n# The dashboard page's own origin.\n[cors]\nallowed_origins = [\"http://{dashboard_addr}\"]\n"
            );
        let config_path: PathBuf = dir.join("gateway.toml");
        std::fs::write(&config_path, &config_text).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("policy.toml"), DEMO_POLICY).map_err(|e| e.to_string())?;
        let settings = Settings::load(&config_path).await.map_err(|e| e.to_string())?;

        // A self-check counts the audit lines it caused, in a file of its own.
        let audit_file = (ports == Ports::Free).then(|| dir.join("audit.log"));
        let audit = match &audit_file {
            Some(file) => AuditSink::open(&file.display().to_string()),
            None => AuditSink::open("-"),
        };
        let deps = Dependencies {
            credentials: Some(SharedCredentialsProvider::new(demo_credentials())),
            audit: Some(Arc::new(audit.map_err(|e| e.to_string())?)),
            ..Dependencies::default()
        };
        let gateway = build::start_on(&settings, deps, api, Some(admin))
            .await
            .map_err(|e| e.to_string())?;

        let (page_key, page_issuer) = (key.clone(), issuer.issuer());
        let dashboard = dashboard::start(
            page,
            dashboard::Page {
                gateway: format!("http://{api_addr}"),
                instance_id: DEMO_INSTANCE.to_owned(),
                user_id: LEAD_USER.to_owned(),
                caller: format!("carol (team-leads), Connect user {LEAD_USER}"),
                token: Box::new(move || token(&page_key, &page_issuer, "carol", "team-leads", LEAD_USER)),
            },
        );
        Ok(RunningDemo {
            key,
            issuer,
            connect,
            gateway: Some(gateway),
            api_addr,
            admin_addr,
            dashboard_addr,
            dashboard,
            dir,
            config_path,
            audit_file,
        })
    }

    /// Starts the demo as `demo --once` does: free ports, the audit in a file.
    #[cfg(feature = "test-util")]
    pub async fn start_on_free_ports() -> Result<RunningDemo, String> {
        Self::start(Ports::Free).await
    }

    /// The dashboard page's URL.
    pub fn dashboard_url(&self) -> String {
        format!("http://{}/", self.dashboard_addr)
    }

    /// The gateway's API, as the page calls it.
    #[cfg(feature = "test-util")]
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.api_addr)
    }

    /// The Connect stand-in, with the demo's directory.
    #[cfg(feature = "test-util")]
    pub fn connect(&self) -> &ConnectStandIn {
        &self.connect
    }

    /// Stops the gateway (letting requests in flight finish), then the rest.
    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown(Duration::from_secs(2)).await;
        }
    }

    /// Sends the samples and the listings, prints each outcome and returns
    /// whether every one got its expected answer.
    async fn self_check(&self) -> bool {
        let issuer = self.issuer.issuer();
        let (samples, listings) = (samples(&self.key, &issuer), listings(&self.key, &issuer));
        let client = crate::http::client::build();
        let mut ok = send_samples(&client, self.api_addr, &samples).await;
        for listing in &listings {
            ok &= self.send_listing(&client, listing).await;
        }
        let connect = &self.connect;
        let signatures_ok = connect.bad_signatures().is_empty();
        let monitored = connect.calls("MonitorContact");
        let allowed = samples.iter().filter(|s| s.status == 200).count();
        let lookups: Vec<String> = [
            "DescribeContact",
            "DescribeUser",
            "ListSecurityProfilePermissions",
            "SearchUsers",
            "GetCurrentUserData",
        ]
        .iter()
        .map(|op| format!("{op} {}", connect.calls(op)))
        .collect();
        let audited = self
            .audit_file
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .map_or(0, |text| text.lines().count());
        let requests = samples.len() + listings.len();
        println!(
            "Connect stand-in: {monitored} MonitorContact call(s) for {allowed} allowed request(s); \
             lookups: {} (later ones from the cache); every SigV4 signature {}",
            lookups.join(", "),
            if signatures_ok { "verified" } else { "NOT verified" }
        );
        println!("audit: {audited} record(s) for {requests} request(s)");
        ok && signatures_ok && monitored == allowed && audited == requests
    }

    /// Sends one listing and checks it lists exactly the contacts it must, in
    /// order, each with its capabilities and grant.
    async fn send_listing(&self, client: &HttpClient, listing: &Listing) -> bool {
        let before = self.connect.received().len();
        let request = http::Request::get(listing_url(self.api_addr))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", listing.token))
            .body(Full::new(Bytes::new()))
            .expect("a well-formed request");
        let (status, body) = exchange(client, request).await;
        let connect_calls = self.connect.received().len() - before;
        let data = &body["data"];
        let got: Vec<&Value> = data["contacts"]
            .as_array()
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        let listed_as_expected = got.len() == listing.contacts.len()
            && got.iter().zip(listing.contacts).all(|(contact, id)| {
                contact["contact_id"] == *id
                    && contact["capabilities"] == json!(listing.capabilities)
                    && contact["grant"] == listing.grant
            });
        let ok = status == 200
            && data["instance_id"] == DEMO_INSTANCE
            && data["complete"] == true
            && listed_as_expected
            && (listing.asks_connect || connect_calls == 0);
        let detail = if status != 200 {
            body["error"]["message"].as_str().unwrap_or("").to_owned()
        } else if got.is_empty() {
            format!("no contacts; {connect_calls} Connect call(s)")
        } else {
            let listed: Vec<String> = got
                .iter()
                .map(|c| format!("{} {}", c["contact_id"].as_str().unwrap_or("?"), c["capabilities"]))
                .collect();
            listed.join(", ")
        };
        println!(
            "[{}] {}: {status} {detail}",
            if ok { "listing ok" } else { "listing UNEXPECTED" },
            listing.what
        );
        ok
    }

    /// Prints where everything is and the commands to try, then serves until Ctrl-C.
    async fn print_and_serve(&self) {
        let (api_addr, admin_addr) = (self.api_addr, self.admin_addr);
        let issuer = self.issuer.issuer();
        println!("connect-monitor-gateway demo");
        println!("  API       http://{api_addr}/contact/monitor  /contact/monitor/check  /contacts/monitorable");
        println!("  admin     http://{admin_addr}/healthz  /readyz  /metrics");
        println!(
            "  dashboard {} (carol's live contacts; served from another origin, so it reads the API through CORS)",
            self.dashboard_url()
        );
        println!("  config    {}", self.config_path.display());
        println!("  issuer    {issuer} (in-process, EdDSA)");
        println!(
            "  Connect   {} (in-process stand-in; checks every SigV4 signature)",
            self.connect.url()
        );
        println!(
            "  Connect records: {LEAD_USER} (carol, team-leads) leads {LEAD_GROUP} (with its sub-group \
             team-north-nights), profile {LEAD_PROFILE} (ManagerListenIn, no ManagerBargeIn); \
             live contacts {} in her team, {CALL_OUT_OF_TEAM} and demo-contact-0008 in team-south; \
             demo-contact-0006 still ringing and demo-contact-0007 ended",
            TEAM_LIVE.join(", ")
        );
        println!();
        for sample in samples(&self.key, &issuer) {
            println!("# {} -> expect {}", sample.what, sample.status);
            println!("{}\n", curl(api_addr, &sample));
        }
        for listing in listings(&self.key, &issuer) {
            let expect = if listing.contacts.is_empty() {
                "200, no contacts".to_owned()
            } else {
                format!("200, {}", listing.contacts.join(", "))
            };
            println!("# {} -> expect {expect}", listing.what);
            println!("{}\n", listing_curl(api_addr, &listing));
        }
        println!("Audit records follow as JSON lines. Ctrl-C to stop.");
        shutdown_signal().await;
    }
}

/// Runs the demo. With `once`, sends the samples and the listings, prints
/// each outcome and returns whether every one got its expected answer.
pub(crate) async fn run(once: bool) -> Result<bool, String> {
    let demo = RunningDemo::start(if once { Ports::Free } else { Ports::Preferred }).await?;
    let outcome = if once {
        demo.self_check().await
    } else {
        demo.print_and_serve().await;
        true
    };
    demo.stop().await;
    Ok(outcome)
}

/// Sends one request; its status and JSON body (0 and null when no answer
/// came within 10 s).
async fn exchange(client: &HttpClient, request: http::Request<Full<Bytes>>) -> (u16, Value) {
    match tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
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
    }
}

async fn send_samples(client: &HttpClient, addr: SocketAddr, samples: &[Sample]) -> bool {
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
        let (status, body) = exchange(client, request).await;
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
        for listing in listings(&key, "http://127.0.0.1:1") {
            let command = listing_curl(addr, &listing);
            assert!(
                command.starts_with(&format!(
                    "curl -sS -w '\\nHTTP %{{http_code}}\\n' 'http://127.0.0.1:8080/contacts/monitorable?instance_id={DEMO_INSTANCE}'"
                )),
                "{command}"
            );
            assert!(command.contains("-H 'Authorization: Bearer ey"), "{command}");
        }
    }

    #[test]
    fn the_expected_lists_are_the_directorys_live_contacts_oldest_first() {
        let live = |c: &&LiveContact| matches!(c.state, "CONNECTED" | "CONNECTED_ONHOLD");
        fn under_lead(group: &str) -> bool {
            let parent = GROUPS.iter().find(|(g, _)| *g == group).and_then(|(_, p)| *p);
            group == LEAD_GROUP || parent.is_some_and(under_lead)
        }
        let in_team = |c: &&LiveContact| {
            AGENTS
                .iter()
                .any(|(agent, group)| *agent == c.agent && under_lead(group))
        };
        let oldest_first = |contacts: Vec<&LiveContact>| {
            let mut contacts = contacts;
            contacts.sort_by_key(|c| std::cmp::Reverse(c.connected.unwrap_or(c.state_start)));
            contacts.iter().map(|c| c.id).collect::<Vec<_>>()
        };
        assert_eq!(oldest_first(LIVE.iter().filter(live).collect()), ALL_LIVE);
        assert_eq!(
            oldest_first(LIVE.iter().filter(live).filter(in_team).collect()),
            TEAM_LIVE
        );
        assert!(
            LIVE.iter().any(|c| !live(&c) && in_team(&c)),
            "a contact in carol's team that must not be listed"
        );
    }
}
