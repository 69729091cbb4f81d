//! An in-process Amazon Connect stand-in for demo mode and tests: it checks
//! the SigV4 signature of every request (POSTs and GETs) by recomputing it
//! from what arrived, records what it got, routes each request to its
//! operation, and answers as Connect would (or as a test scripts, per
//! operation): MonitorContact, and the lookups of Connect-aware authorization
//! (DescribeContact, DescribeUser, ListSecurityProfilePermissions page by
//! page, SearchUsers by username, by hierarchy group or of everyone, and
//! GetCurrentUserData, the contacts agents have now) from records a test
//! adds: users, contacts, security profiles, an agent hierarchy, routing
//! profiles and agents' contacts. Like Connect, it can throttle each
//! operation per account and Region (`enforce_quotas`): one budget for
//! everyone who calls it, however many gateways that is.
// The demo uses part of a stand-in; the tests (feature `test-util`) use the rest.
#![cfg_attr(not(feature = "test-util"), allow(dead_code))]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::http::server::{serve, Listening};
use crate::http::tls::{ReloadableTls, TlsFiles};

/// How far a signature's `x-amz-date` may be from now, as AWS allows.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

/// The most permissions Connect puts in one page.
const DEFAULT_PERMISSIONS_PAGE_SIZE: usize = 500;

/// The Region in the ARNs the stand-in makes, unless a test sets another.
const DEFAULT_REGION: &str = "eu-west-2";

/// The account in the ARNs the stand-in makes.
const ACCOUNT: &str = "123456789012";

/// How many levels Connect's agent hierarchy has at most.
const MAX_HIERARCHY_LEVELS: usize = 5;

/// The most results a page of SearchUsers or GetCurrentUserData holds, and
/// how many it holds unless `MaxResults` asks for fewer.
const MAX_RESULTS: usize = 100;

/// The members of GetCurrentUserData's `HierarchyPath`, top first.
const LEVEL_NAMES: [&str; MAX_HIERARCHY_LEVELS] = ["LevelOne", "LevelTwo", "LevelThree", "LevelFour", "LevelFive"];

/// The states GetCurrentUserData's `ContactFilter` may name.
const CONTACT_STATES: &[&str] = &[
    "INCOMING",
    "PENDING",
    "CONNECTING",
    "CONNECTED",
    "CONNECTED_ONHOLD",
    "MISSED",
    "ERROR",
    "ENDED",
    "REJECTED",
];

/// The Connect operations the stand-in knows by their routes (docs/connect.md).
const ROUTES: &[(&str, &str, &str)] = &[
    ("POST", "/contact/monitor", "MonitorContact"),
    ("POST", "/search-users", "SearchUsers"),
    ("GET", "/contacts/", "DescribeContact"),
    ("GET", "/users/", "DescribeUser"),
    (
        "GET",
        "/security-profiles-permissions/",
        "ListSecurityProfilePermissions",
    ),
    ("GET", "/user-hierarchy-groups/", "DescribeUserHierarchyGroup"),
    ("POST", "/metrics/userdata/", "GetCurrentUserData"),
];

/// The operation a request is for, and its path labels, percent-decoded.
fn route(method: &str, path: &str) -> (&'static str, Vec<String>) {
    for (m, prefix, operation) in ROUTES {
        if *m != method {
            continue;
        }
        if path == *prefix {
            return (operation, Vec::new());
        }
        if let Some(rest) = path.strip_prefix(prefix).filter(|_| prefix.ends_with('/')) {
            return (operation, rest.split('/').map(percent_decode).collect());
        }
    }
    ("Unknown", Vec::new())
}

/// A query's parameters, names and values percent-decoded. A character that
/// should have been percent-encoded is refused, not guessed at: Connect might
/// read a raw `+` as a space, so a client that sends one is wrong even when
/// its signature verifies.
fn query_params(path_and_query: &str) -> Result<Vec<(String, String)>, String> {
    let Some((_, query)) = path_and_query.split_once('?') else {
        return Ok(Vec::new());
    };
    let encoded = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%');
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match [name, value].iter().flat_map(|p| p.chars()).find(|c| !encoded(*c)) {
                Some(c) => Err(format!("{c:?} is not percent-encoded in the query parameter {name:?}")),
                None => Ok((percent_decode(name), percent_decode(value))),
            }
        })
        .collect()
}

/// `%2F` → `/`; anything malformed is kept as it came.
/// Decodes `%XX` escapes (a malformed escape stays as it is).
pub fn percent_decode(label: &str) -> String {
    let bytes = label.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The operation its route names (`Unknown` for none).
    pub operation: &'static str,
    /// The path labels after the operation's route, percent-decoded.
    pub labels: Vec<String>,
    pub method: String,
    /// The path and query, as sent.
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `None` when the signature verified; else what was wrong.
    pub signature_problem: Option<String>,
    /// The access key the request claims to be signed with.
    pub access_key: Option<String>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A scripted answer for the next request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer as Connect does when the operation succeeds (or, for a
    /// lookup, with its not-found when no record was added).
    Success,
    /// Answer this status, headers and body.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Wait, then give the inner reply.
    Delayed(Duration, Box<Reply>),
    /// Close the connection without answering.
    Drop,
}

impl Reply {
    /// What Connect answers a call over the account's quota for its
    /// operation: 429, `ThrottlingException`, "Rate exceeded".
    pub fn throttled() -> Reply {
        Reply::Raw {
            status: 429,
            headers: vec![("x-amzn-errortype".into(), "ThrottlingException".into())],
            body: json!({"__type": "ThrottlingException", "message": "Rate exceeded"}).to_string(),
        }
    }

    /// A Connect error, its type in `X-Amzn-ErrorType`.
    pub fn error(status: u16, error_type: &str) -> Reply {
        Reply::Raw {
            status,
            headers: vec![(
                "x-amzn-errortype".into(),
                format!("{error_type}:http://internal.amazon.com/coral/"),
            )],
            body: json!({"Message": "stand-in error"}).to_string(),
        }
    }
}

/// How early a call may arrive before its token and still pass. Connect
/// counts calls as they arrive, a gateway as it sends them; between the two,
/// on loopback and a loaded machine, the gap varies by a few milliseconds
/// from call to call. The average rate is enforced all the same: a call let
/// in early leaves the bucket that much below empty.
const ARRIVAL_TOLERANCE: Duration = Duration::from_millis(20);

/// One operation's quota: a token bucket that starts full, holds at most
/// `burst` calls and refills at `rate` calls a second.
#[derive(Debug)]
struct Quota {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl Quota {
    fn new(rate: f64, burst: u32) -> Quota {
        assert!(
            rate.is_finite() && rate > 0.0,
            "a quota's rate is a positive number of calls a second"
        );
        assert!(burst >= 1, "a quota's burst is at least one call");
        Quota {
            rate,
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled_at: Instant::now(),
        }
    }

    /// Takes one call from the bucket; `false` when it is empty.
    fn admit(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.refilled_at = now;
        if self.tokens >= 1.0 - self.rate * ARRIVAL_TOLERANCE.as_secs_f64() {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Where the next page of a search starts: what a `NextToken` the
/// stand-in gave stands for.
#[derive(Debug)]
struct PageToken {
    operation: &'static str,
    /// The search it continues (its parsed criteria, `{:?}`): a token is
    /// good for that search only, as Connect's are.
    search: String,
    offset: usize,
}

/// A contact an agent has.
#[derive(Debug, Clone)]
struct AgentContact {
    agent: String,
    /// As GetCurrentUserData lists it: one entry of its `Contacts`.
    contact: Value,
    /// Whether GetCurrentUserData lists it still (DescribeContact answers
    /// it either way).
    listed: bool,
}

/// The quotas enforced, and the calls each one refused.
#[derive(Debug, Default)]
struct Quotas {
    by_operation: HashMap<&'static str, Quota>,
    throttled: HashMap<&'static str, usize>,
}

struct State {
    /// Every set of credentials whose signatures are accepted.
    credentials: Mutex<Vec<Credentials>>,
    received: Mutex<Vec<Received>>,
    /// Replies for any operation, in order.
    script: Mutex<VecDeque<Reply>>,
    /// Replies for one operation, taken before the shared script.
    scripts: Mutex<HashMap<&'static str, VecDeque<Reply>>>,
    /// DescribeUser's records, by user id; SearchUsers searches them too.
    users: Mutex<HashMap<String, Value>>,
    /// DescribeContact's records, by contact id.
    contacts: Mutex<HashMap<String, Value>>,
    /// ListSecurityProfilePermissions' records, by security profile id.
    security_profiles: Mutex<HashMap<String, Vec<String>>>,
    /// The agent hierarchy: each group's parent, by group id.
    hierarchy_groups: Mutex<HashMap<String, Option<String>>>,
    /// Each routing profile's queues, by routing profile id.
    routing_profiles: Mutex<HashMap<String, Vec<String>>>,
    /// Agents' contacts, in the order added: GetCurrentUserData lists them,
    /// DescribeContact answers them.
    agent_contacts: Mutex<Vec<AgentContact>>,
    /// The Region the ARNs the stand-in makes name.
    region: Mutex<String>,
    /// The `NextToken`s given for pages of users (SearchUsers,
    /// GetCurrentUserData), by token.
    page_tokens: Mutex<HashMap<String, PageToken>>,
    /// How many permissions a page holds at most.
    permissions_page_size: Mutex<usize>,
    /// Given when the script is empty.
    default_reply: Mutex<Reply>,
    /// Connect's per-operation quotas of the one account and Region the
    /// stand-in is; none unless a test enforces them.
    quotas: Mutex<Quotas>,
}

/// The running stand-in; stops when dropped.
pub struct ConnectStandIn {
    pub addr: SocketAddr,
    tls: bool,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for ConnectStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectStandIn {
    /// Starts on an ephemeral loopback port, accepting signatures made with `credentials`.
    pub async fn start(credentials: Credentials) -> std::io::Result<ConnectStandIn> {
        Self::start_with(credentials, None).await
    }

    /// Like [`start`](Self::start), serving HTTPS with these certificate files.
    pub async fn start_tls(credentials: Credentials, files: TlsFiles) -> std::io::Result<ConnectStandIn> {
        let tls = ReloadableTls::new(files).map_err(std::io::Error::other)?;
        Self::start_with(credentials, Some(Arc::new(tls))).await
    }

    async fn start_with(credentials: Credentials, tls: Option<Arc<ReloadableTls>>) -> std::io::Result<ConnectStandIn> {
        let tls_given = tls.is_some();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            credentials: Mutex::new(vec![credentials]),
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            scripts: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            contacts: Mutex::new(HashMap::new()),
            security_profiles: Mutex::new(HashMap::new()),
            hierarchy_groups: Mutex::new(HashMap::new()),
            routing_profiles: Mutex::new(HashMap::new()),
            agent_contacts: Mutex::new(Vec::new()),
            region: Mutex::new(DEFAULT_REGION.to_owned()),
            page_tokens: Mutex::new(HashMap::new()),
            permissions_page_size: Mutex::new(DEFAULT_PERMISSIONS_PAGE_SIZE),
            default_reply: Mutex::new(Reply::Success),
            quotas: Mutex::new(Quotas::default()),
        });
        let s = state.clone();
        let listening = Listening {
            tls,
            ..Listening::plain(Duration::from_secs(30))
        };
        let task = tokio::spawn(serve(listener, listening, std::future::pending(), move |req| {
            answer(s.clone(), req)
        }));
        Ok(ConnectStandIn {
            addr,
            tls: tls_given,
            state,
            task,
        })
    }

    /// The endpoint URL to configure the gateway with (`https://localhost:…`
    /// when serving TLS, the name the test certificates carry).
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}", self.addr.port())
        } else {
            format!("http://{}", self.addr)
        }
    }

    /// Queues replies for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().expect("script lock").extend(replies);
    }

    /// Queues replies for the next requests to one operation (e.g. `DescribeUser`).
    pub fn script_for(&self, operation: &'static str, replies: impl IntoIterator<Item = Reply>) {
        let mut scripts = self.state.scripts.lock().expect("scripts lock");
        scripts.entry(operation).or_default().extend(replies);
    }

    /// Adds a user DescribeUser answers with (its `Id` member is the key),
    /// SearchUsers finds by its `Username` member, by its `HierarchyGroupId`
    /// member, or with everyone, and GetCurrentUserData finds by its id, its
    /// `HierarchyGroupId` and its `RoutingProfileId`.
    pub fn add_user(&self, user: Value) {
        let id = user["Id"].as_str().unwrap_or_default().to_owned();
        self.state.users.lock().expect("users lock").insert(id, user);
    }

    /// Adds a contact DescribeContact answers with: DescribeContact's
    /// `Contact` object, its `Id` member the key. It is answered as added,
    /// even when an agent's contact has the same id.
    pub fn add_contact(&self, contact: Value) {
        let id = contact["Id"].as_str().unwrap_or_default().to_owned();
        self.state.contacts.lock().expect("contacts lock").insert(id, contact);
    }

    /// Adds a security profile ListSecurityProfilePermissions lists, in this order.
    pub fn add_security_profile(&self, id: &str, permissions: &[&str]) {
        let permissions = permissions.iter().map(|p| p.to_string()).collect();
        self.state
            .security_profiles
            .lock()
            .expect("profiles lock")
            .insert(id.to_owned(), permissions);
    }

    /// Adds a group to the agent hierarchy, under `parent` (a group added
    /// before) or at the top. A group's path is its ancestors, then itself:
    /// five levels at most, as in Connect. A user record is in a group by
    /// its `HierarchyGroupId` member.
    ///
    /// Panics on a parent not added yet, on a sixth level, and on a group
    /// added again under another parent (Connect moves no group).
    pub fn add_hierarchy_group(&self, id: &str, parent: Option<&str>) {
        let mut groups = self.state.hierarchy_groups.lock().expect("groups lock");
        if let Some(parent) = parent {
            assert!(
                groups.contains_key(parent),
                "hierarchy group {parent:?} must be added before its child {id:?}"
            );
            assert!(
                hierarchy_path(&groups, parent).len() < MAX_HIERARCHY_LEVELS,
                "hierarchy group {id:?} would be a level below the fifth"
            );
        }
        let parent = parent.map(str::to_owned);
        if let Some(before) = groups.get(id) {
            assert_eq!(
                before, &parent,
                "hierarchy group {id:?} added again under another parent"
            );
        }
        groups.insert(id.to_owned(), parent);
    }

    /// Adds a routing profile with these queues. A user record has one by
    /// its `RoutingProfileId` member.
    pub fn add_routing_profile(&self, id: &str, queues: &[&str]) {
        let queues = queues.iter().map(|q| q.to_string()).collect();
        self.state
            .routing_profiles
            .lock()
            .expect("routing profiles lock")
            .insert(id.to_owned(), queues);
    }

    /// Gives an agent (a user id) a contact: one entry of GetCurrentUserData's
    /// `Contacts` (`ContactId`, `Channel`, `InitiationMethod`,
    /// `AgentContactState`, `StateStartTimestamp`, and optionally
    /// `ConnectedToAgentTimestamp` and `Queue`), which GetCurrentUserData
    /// lists as given, after the agent's contacts added before.
    /// DescribeContact answers it with its agent and the agent's hierarchy
    /// groups as they are when it answers (from the agent's user record and
    /// the hierarchy). A contact id given again replaces the contact before,
    /// and comes last.
    ///
    /// Panics on a contact without a `ContactId`.
    pub fn add_agent_contact(&self, agent_id: &str, contact: Value) {
        let id = contact["ContactId"]
            .as_str()
            .expect("an agent's contact has a ContactId")
            .to_owned();
        let mut contacts = self.state.agent_contacts.lock().expect("agent contacts lock");
        contacts.retain(|c| c.contact["ContactId"] != id.as_str());
        contacts.push(AgentContact {
            agent: agent_id.to_owned(),
            contact,
            listed: true,
        });
    }

    /// Takes an agent's contact out of GetCurrentUserData's answers, as
    /// when the agent is done with it; DescribeContact answers it still, as
    /// Connect answers an ended contact.
    ///
    /// Panics on a contact not added with
    /// [`add_agent_contact`](Self::add_agent_contact).
    pub fn remove_agent_contact(&self, contact_id: &str) {
        let mut contacts = self.state.agent_contacts.lock().expect("agent contacts lock");
        let added = contacts
            .iter_mut()
            .find(|c| c.contact["ContactId"] == contact_id)
            .unwrap_or_else(|| panic!("no agent has the contact {contact_id:?}"));
        added.listed = false;
    }

    /// Sets an agent's contact's `AgentContactState`; its timestamps stay
    /// as they were added.
    ///
    /// Panics on a contact not added with
    /// [`add_agent_contact`](Self::add_agent_contact).
    pub fn set_agent_contact_state(&self, contact_id: &str, state: &str) {
        let mut contacts = self.state.agent_contacts.lock().expect("agent contacts lock");
        let added = contacts
            .iter_mut()
            .find(|c| c.contact["ContactId"] == contact_id)
            .unwrap_or_else(|| panic!("no agent has the contact {contact_id:?}"));
        added.contact["AgentContactState"] = json!(state);
    }

    /// The Region the ARNs the stand-in makes name (`eu-west-2` unless set):
    /// those of users, hierarchy groups and routing profiles.
    pub fn set_region(&self, region: &str) {
        *self.state.region.lock().expect("region lock") = region.to_owned();
    }

    /// How many permissions a page holds at most (500, as Connect, unless
    /// set; the request's `maxResults` may ask for fewer).
    pub fn set_permissions_page_size(&self, n: usize) {
        *self.state.permissions_page_size.lock().expect("page size lock") = n.max(1);
    }

    /// How many requests to one operation arrived, whatever their outcome:
    /// those a quota refused count too (see [`throttled`](Self::throttled)).
    pub fn calls(&self, operation: &str) -> usize {
        let received = self.state.received.lock().expect("received lock");
        received.iter().filter(|r| r.operation == operation).count()
    }

    /// Throttles each named operation as Connect does per account and
    /// Region: `(operation, calls a second, burst)`, the operation named as
    /// [`calls`](Self::calls) names it. One bucket per operation for the
    /// whole stand-in, so every gateway pointed at it shares it; each starts
    /// full, and quotas set before for other operations stay.
    ///
    /// A call that arrives over its quota is answered as
    /// [`Reply::throttled`] and not performed. A bad signature is refused
    /// before any quota; a scripted reply (`script`, `script_for`) is given
    /// regardless of quotas and takes nothing from them; the default reply
    /// (`set_default`) is subject to them.
    pub fn enforce_quotas(&self, quotas: &[(&'static str, f64, u32)]) {
        let mut enforced = self.state.quotas.lock().expect("quotas lock");
        for &(operation, rate, burst) in quotas {
            enforced.by_operation.insert(operation, Quota::new(rate, burst));
        }
    }

    /// Connect's default quotas: MonitorContact, DescribeUser,
    /// ListSecurityProfilePermissions, SearchUsers and GetCurrentUserData 2
    /// calls a second with a burst of 5; DescribeContact 10 a second with a
    /// burst of 15.
    pub fn connect_default_quotas(&self) {
        self.enforce_quotas(&[
            ("MonitorContact", 2.0, 5),
            ("DescribeUser", 2.0, 5),
            ("ListSecurityProfilePermissions", 2.0, 5),
            ("SearchUsers", 2.0, 5),
            ("GetCurrentUserData", 2.0, 5),
            ("DescribeContact", 10.0, 15),
        ]);
    }

    /// How many requests to one operation its quota refused.
    pub fn throttled(&self, operation: &str) -> usize {
        let quotas = self.state.quotas.lock().expect("quotas lock");
        quotas.throttled.get(operation).copied().unwrap_or(0)
    }

    /// How many requests any quota refused.
    pub fn throttled_total(&self) -> usize {
        self.state.quotas.lock().expect("quotas lock").throttled.values().sum()
    }

    /// The reply once the script runs out.
    pub fn set_default(&self, reply: Reply) {
        *self.state.default_reply.lock().expect("default lock") = reply;
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received lock").clone()
    }

    /// Accepts signatures made with these credentials too (a role's, say).
    pub fn accept(&self, credentials: Credentials) {
        self.state
            .credentials
            .lock()
            .expect("credentials lock")
            .push(credentials);
    }

    /// Requests whose signature did not verify.
    pub fn bad_signatures(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter_map(|r| r.signature_problem)
            .collect()
    }
}

async fn answer(state: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let access_key = credential_scope(&parts.headers).ok().map(|s| s.access_key);
    let known = state.credentials.lock().expect("credentials lock").clone();
    // Verified with the credentials of the access key it names (an unknown
    // key fails as such against the first).
    let credentials = known
        .iter()
        .find(|c| Some(c.access_key_id()) == access_key.as_deref())
        .unwrap_or(&known[0]);
    let signature_problem = verify_sigv4(
        parts.method.as_str(),
        &path,
        &parts.headers,
        &body,
        credentials,
        SystemTime::now(),
    )
    .err();
    let (operation, labels) = route(parts.method.as_str(), parts.uri.path());
    let received = Received {
        operation,
        labels,
        method: parts.method.to_string(),
        path,
        headers: parts.headers,
        body,
        signature_problem: signature_problem.clone(),
        access_key,
    };
    state.received.lock().expect("received lock").push(received.clone());
    if let Some(problem) = signature_problem {
        tracing::warn!(%problem, "stand-in refused a bad signature");
        return Ok(raw(
            403,
            &[("x-amzn-errortype", "InvalidSignatureException")],
            r#"{"Message":"signature mismatch"}"#,
        ));
    }
    let for_operation = state
        .scripts
        .lock()
        .expect("scripts lock")
        .get_mut(operation)
        .and_then(VecDeque::pop_front);
    let next = for_operation.or_else(|| state.script.lock().expect("script lock").pop_front());
    let mut reply = match next {
        Some(scripted) => scripted,
        None if !admitted(&state, operation) => Reply::throttled(),
        None => state.default_reply.lock().expect("default lock").clone(),
    };
    loop {
        match reply {
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::Drop => return Err(std::io::Error::other("scripted connection drop")),
            Reply::Raw { status, headers, body } => {
                let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                return Ok(raw(status, &headers, &body));
            }
            Reply::Success => return Ok(success(&state, &received)),
        }
    }
}

/// Whether the operation's quota, if any, has room for one more call now;
/// a refusal is counted.
fn admitted(state: &State, operation: &'static str) -> bool {
    let mut quotas = state.quotas.lock().expect("quotas lock");
    let Some(quota) = quotas.by_operation.get_mut(operation) else {
        return true;
    };
    if quota.admit(Instant::now()) {
        return true;
    }
    *quotas.throttled.entry(operation).or_default() += 1;
    false
}

/// What Connect answers when the operation succeeds.
fn success(state: &State, received: &Received) -> Response<Full<Bytes>> {
    match received.operation {
        "MonitorContact" => monitor_success(received),
        "DescribeContact" => {
            let contact = resource_id(received).and_then(|id| {
                let added = state.contacts.lock().expect("contacts lock").get(id).cloned();
                added.or_else(|| agent_contact_record(state, &received.labels[0], id))
            });
            match contact {
                Some(contact) => raw(200, &[], &json!({"Contact": contact}).to_string()),
                None => error_answer(404, "ResourceNotFoundException", "no such contact"),
            }
        }
        "DescribeUser" => {
            let user = resource_id(received).and_then(|id| state.users.lock().expect("users lock").get(id).cloned());
            match user {
                Some(user) => raw(200, &[], &json!({"User": user}).to_string()),
                None => error_answer(404, "ResourceNotFoundException", "no such user"),
            }
        }
        "ListSecurityProfilePermissions" => permissions_page(state, received),
        "SearchUsers" => search_users(state, received),
        "GetCurrentUserData" => current_user_data(state, received),
        _ => raw(
            400,
            &[("x-amzn-errortype", "InvalidRequestException")],
            r#"{"Message":"the stand-in does not model this operation"}"#,
        ),
    }
}

/// A group's path, top first: its ancestors, then itself. A group never
/// added is a top-level group of its own.
fn hierarchy_path(groups: &HashMap<String, Option<String>>, group: &str) -> Vec<String> {
    let mut path = vec![group.to_owned()];
    // `add_hierarchy_group` keeps the hierarchy acyclic and five deep; the
    // bound keeps this loop finite regardless.
    while path.len() < MAX_HIERARCHY_LEVELS {
        match groups.get(path.last().expect("a path is never empty")) {
            Some(Some(parent)) => path.push(parent.clone()),
            _ => break,
        }
    }
    path.reverse();
    path
}

/// The ARN of an instance's resource of this `kind` (`agent-group`, …).
fn arn(state: &State, instance: &str, kind: &str, id: &str) -> String {
    let region = state.region.lock().expect("region lock").clone();
    format!("arn:aws:connect:{region}:{ACCOUNT}:instance/{instance}/{kind}/{id}")
}

/// The path of the group a user record is in (empty when in none).
fn user_hierarchy_path(state: &State, user: &Value) -> Vec<String> {
    let Some(group) = user["HierarchyGroupId"].as_str() else {
        return Vec::new();
    };
    hierarchy_path(&state.hierarchy_groups.lock().expect("groups lock"), group)
}

/// DescribeContact's `Contact` for an agent's contact, with the agent's
/// groups as they are now.
fn agent_contact_record(state: &State, instance: &str, id: &str) -> Option<Value> {
    let AgentContact { agent, contact, .. } = {
        let contacts = state.agent_contacts.lock().expect("agent contacts lock");
        contacts.iter().find(|c| c.contact["ContactId"] == id)?.clone()
    };
    let user = state.users.lock().expect("users lock").get(&agent).cloned();
    let mut record = json!({ "Id": id });
    for member in ["Channel", "InitiationMethod"] {
        if let Some(value) = contact.get(member) {
            record[member] = value.clone();
        }
    }
    if let Some(queue) = contact["Queue"].get("Id") {
        record["QueueInfo"] = json!({ "Id": queue });
    }
    let levels: serde_json::Map<String, Value> = user_hierarchy_path(state, &user.unwrap_or(Value::Null))
        .iter()
        .enumerate()
        .map(|(i, group)| {
            let arn = arn(state, instance, "agent-group", group);
            (format!("Level{}", i + 1), json!({ "Arn": arn }))
        })
        .collect();
    record["AgentInfo"] = json!({"Id": agent, "HierarchyGroups": levels});
    Some(record)
}

/// The id a lookup's path names after the instance id; `None` unless the
/// path is exactly `/{InstanceId}/{Id}` (an unencoded `/` in an id is not).
fn resource_id(received: &Received) -> Option<&str> {
    match received.labels.as_slice() {
        [_instance, id] => Some(id.as_str()),
        _ => None,
    }
}

/// An error answer as Connect gives it: the type in `X-Amzn-ErrorType`.
fn error_answer(status: u16, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    raw(
        status,
        &[("x-amzn-errortype", error_type)],
        &json!({ "Message": message }).to_string(),
    )
}

/// The opaque token of the page that starts at `offset`: it holds characters
/// a client must percent-encode in a query, as Connect's tokens do.
fn permissions_token(offset: usize) -> String {
    format!("page/{offset}+x=")
}

fn permissions_token_offset(token: &str) -> Option<usize> {
    token.strip_prefix("page/")?.strip_suffix("+x=")?.parse().ok()
}

/// One page of a security profile's permissions, from `nextToken` on.
fn permissions_page(state: &State, received: &Received) -> Response<Full<Bytes>> {
    let permissions = resource_id(received).and_then(|id| {
        let profiles = state.security_profiles.lock().expect("profiles lock");
        profiles.get(id).cloned()
    });
    let Some(permissions) = permissions else {
        return error_answer(404, "ResourceNotFoundException", "no such security profile");
    };
    let params = match query_params(&received.path) {
        Ok(params) => params,
        Err(problem) => return error_answer(400, "InvalidParameterException", &problem),
    };
    let param = |name: &str| params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let page_size = *state.permissions_page_size.lock().expect("page size lock");
    let page_size = match param("maxResults").map(str::parse::<usize>) {
        None => page_size,
        Some(Ok(n)) if (1..=1000).contains(&n) => page_size.min(n),
        Some(_) => return error_answer(400, "InvalidParameterException", "maxResults must be 1..1000"),
    };
    let start = match param("nextToken").map(permissions_token_offset) {
        None => 0,
        Some(Some(offset)) if offset < permissions.len() => offset,
        Some(_) => {
            return error_answer(
                400,
                "InvalidParameterException",
                "nextToken is not one this stand-in gave",
            )
        }
    };
    let end = permissions.len().min(start + page_size);
    let mut page = json!({ "Permissions": permissions[start..end] });
    if end < permissions.len() {
        page["NextToken"] = json!(permissions_token(end));
    }
    raw(200, &[], &page.to_string())
}

/// SearchUsers over the added users: an `EXACT` search on `Username` (one
/// page, as many users as `MaxResults` allows), a search by hierarchy group,
/// or none at all (both paged); anything else is refused, not half-answered.
fn search_users(state: &State, received: &Received) -> Response<Full<Bytes>> {
    let body = received.json();
    let condition = &body["SearchCriteria"]["StringCondition"];
    if body["InstanceId"].as_str().is_none_or(str::is_empty) {
        return error_answer(400, "InvalidParameterException", "InstanceId is required");
    }
    if body.get("SearchCriteria").is_none() || body["SearchCriteria"].get("HierarchyGroupCondition").is_some() {
        return search_users_paged(state, &body);
    }
    if condition["FieldName"] != "Username" || condition["ComparisonType"] != "EXACT" {
        return error_answer(
            400,
            "InvalidRequestException",
            "the stand-in models only an EXACT search on Username, a HierarchyGroupCondition, or no SearchCriteria",
        );
    }
    let Some(username) = condition["Value"].as_str() else {
        return error_answer(400, "InvalidParameterException", "StringCondition.Value is required");
    };
    let max_results = match body.get("MaxResults").map(Value::as_u64) {
        None => 100,
        Some(Some(n)) if (1..=100).contains(&n) => n as usize,
        Some(_) => return error_answer(400, "InvalidParameterException", "MaxResults must be 1..100"),
    };
    let mut users: Vec<Value> = {
        let records = state.users.lock().expect("users lock");
        records
            .values()
            .filter(|u| u["Username"].as_str() == Some(username))
            .map(|u| json!({"Id": u["Id"], "Username": u["Username"]}))
            .collect()
    };
    // By id, so a test sees the same answer every time.
    users.sort_by(|a, b| a["Id"].as_str().cmp(&b["Id"].as_str()));
    let total = users.len();
    users.truncate(max_results);
    raw(
        200,
        &[],
        &json!({"Users": users, "ApproximateTotalCount": total}).to_string(),
    )
}

/// A SearchUsers the stand-in pages through.
#[derive(Debug)]
enum UserSearch {
    /// No `SearchCriteria`: every user.
    Everyone,
    /// A `HierarchyGroupCondition`: the users of `group`, and with
    /// `with_child_groups` those of the groups below it too.
    InGroup { group: String, with_child_groups: bool },
}

/// The search a SearchUsers body without a `StringCondition` asks for.
fn user_search(body: &Value) -> Result<UserSearch, String> {
    if body.get("SearchFilter").is_some() {
        return Err("the stand-in models no SearchFilter".into());
    }
    let Some(criteria) = body.get("SearchCriteria") else {
        return Ok(UserSearch::Everyone);
    };
    let condition = match criteria.as_object() {
        Some(members) if members.len() == 1 => &criteria["HierarchyGroupCondition"],
        _ => return Err("SearchCriteria must hold a HierarchyGroupCondition and nothing else".into()),
    };
    let known = |member: &String| matches!(member.as_str(), "Value" | "HierarchyGroupMatchType");
    match condition.as_object().map(|c| c.keys().find(|m| !known(m))) {
        None => return Err("HierarchyGroupCondition must be an object".into()),
        Some(Some(member)) => return Err(format!("unknown member {member:?} of HierarchyGroupCondition")),
        Some(None) => {}
    }
    let Some(group) = condition["Value"].as_str().filter(|g| !g.is_empty()) else {
        return Err("HierarchyGroupCondition.Value must be a hierarchy group id".into());
    };
    let with_child_groups = match condition["HierarchyGroupMatchType"].as_str() {
        Some("EXACT") => false,
        Some("WITH_CHILD_GROUPS") => true,
        _ => return Err("HierarchyGroupCondition.HierarchyGroupMatchType must be EXACT or WITH_CHILD_GROUPS".into()),
    };
    Ok(UserSearch::InGroup {
        group: group.to_owned(),
        with_child_groups,
    })
}

/// SearchUsers by hierarchy group or of everyone: a page of users sorted
/// by id, and the token of the next page.
fn search_users_paged(state: &State, body: &Value) -> Response<Full<Bytes>> {
    let search = match user_search(body) {
        Ok(search) => search,
        Err(problem) => return error_answer(400, "InvalidParameterException", &problem),
    };
    let groups = state.hierarchy_groups.lock().expect("groups lock").clone();
    let found = |user: &Value| match (&search, user["HierarchyGroupId"].as_str()) {
        (UserSearch::Everyone, _) => true,
        (UserSearch::InGroup { .. }, None) => false,
        (
            UserSearch::InGroup {
                group,
                with_child_groups,
            },
            Some(in_group),
        ) => in_group == group || (*with_child_groups && hierarchy_path(&groups, in_group).contains(group)),
    };
    let users: Vec<Value> = {
        let records = state.users.lock().expect("users lock");
        records.values().filter(|u| found(u)).cloned().collect()
    };
    let (users, next, total) = match page(state, "SearchUsers", &format!("{search:?}"), body, users) {
        Ok(page) => page,
        Err(problem) => return error_answer(400, "InvalidParameterException", &problem),
    };
    let users: Vec<Value> = users.iter().map(user_summary).collect();
    let mut answer = json!({"Users": users, "ApproximateTotalCount": total});
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    raw(200, &[], &answer.to_string())
}

/// A user as SearchUsers lists it.
fn user_summary(user: &Value) -> Value {
    let mut summary = json!({
        "Id": user["Id"],
        "SecurityProfileIds": user.get("SecurityProfileIds").cloned().unwrap_or_else(|| json!([])),
    });
    for member in ["Username", "HierarchyGroupId"] {
        if let Some(value) = user.get(member) {
            summary[member] = value.clone();
        }
    }
    summary
}

/// The page of `users` a request asks for by its `MaxResults` (1..100,
/// 100 unless given) and `NextToken`, the users sorted by id; with the
/// token of the page after it, if any, and how many users there are in all.
/// `Err` says what is wrong with the request.
fn page(
    state: &State,
    operation: &'static str,
    search: &str,
    body: &Value,
    mut users: Vec<Value>,
) -> Result<(Vec<Value>, Option<String>, usize), String> {
    let max_results = match body.get("MaxResults").map(Value::as_u64) {
        None => MAX_RESULTS,
        Some(Some(n)) if (1..=MAX_RESULTS as u64).contains(&n) => n as usize,
        Some(_) => return Err(format!("MaxResults must be 1..{MAX_RESULTS}")),
    };
    // By id, so a test sees the same pages every time.
    users.sort_by(|a, b| a["Id"].as_str().cmp(&b["Id"].as_str()));
    let total = users.len();
    let mut tokens = state.page_tokens.lock().expect("page tokens lock");
    let start = match body.get("NextToken") {
        None => 0,
        Some(token) => match token.as_str().and_then(|t| tokens.get(t)) {
            Some(given) if given.operation == operation && given.search == search => given.offset.min(total),
            _ => return Err("NextToken is not one this stand-in gave for this search".into()),
        },
    };
    let end = total.min(start + max_results);
    // Opaque, and with characters a client must not mangle, as Connect's.
    let next = (end < total).then(|| {
        let token = format!("{operation}/{}+{end}=", tokens.len());
        let given = PageToken {
            operation,
            search: search.to_owned(),
            offset: end,
        };
        tokens.insert(token.clone(), given);
        token
    });
    users.truncate(end);
    Ok((users.split_off(start), next, total))
}

/// The one filter of users a GetCurrentUserData request has.
#[derive(Debug)]
enum UserDataFilter {
    /// These users.
    Agents(Vec<String>),
    /// The users whose routing profile has one of these queues.
    Queues(Vec<String>),
    /// The users with one of these routing profiles.
    RoutingProfiles(Vec<String>),
    /// The users of this hierarchy group itself, not those of the groups
    /// below it: whether Connect counts those too is not something a client
    /// may rely on, and with the narrower reading here whatever relies on
    /// the wider one fails against the stand-in.
    UserHierarchyGroup(String),
}

/// A GetCurrentUserData request's `Filters`.
#[derive(Debug)]
struct UserDataQuery {
    users: UserDataFilter,
    /// The states of the contacts listed, when `ContactFilter` names any.
    contact_states: Option<Vec<String>>,
}

/// What a GetCurrentUserData body asks for; `Err` says what is wrong with it.
fn user_data_query(body: &Value) -> Result<UserDataQuery, String> {
    let Some(members) = body.as_object() else {
        return Err("the body must be a JSON object".into());
    };
    let known = |member: &String| matches!(member.as_str(), "Filters" | "MaxResults" | "NextToken");
    if let Some(member) = members.keys().find(|m| !known(m)) {
        return Err(format!("unknown member {member:?}"));
    }
    let Some(filters) = body.get("Filters").and_then(Value::as_object) else {
        return Err("Filters is required, an object".into());
    };
    let mut users = None;
    let mut contact_states = None;
    for (name, value) in filters {
        let filter = match name.as_str() {
            "Agents" => UserDataFilter::Agents(id_list(name, value, 100)?),
            "Queues" => UserDataFilter::Queues(id_list(name, value, 100)?),
            "RoutingProfiles" => UserDataFilter::RoutingProfiles(id_list(name, value, 100)?),
            "UserHierarchyGroups" => {
                let mut group = id_list(name, value, 1)?;
                UserDataFilter::UserHierarchyGroup(group.remove(0))
            }
            "ContactFilter" => {
                contact_states = contact_filter(value)?;
                continue;
            }
            other => return Err(format!("unknown member {other:?} of Filters")),
        };
        if users.replace(filter).is_some() {
            return Err("Filters may hold only one of Agents, Queues, RoutingProfiles and UserHierarchyGroups".into());
        }
    }
    let Some(users) = users else {
        return Err("Filters must hold one of Agents, Queues, RoutingProfiles and UserHierarchyGroups".into());
    };
    Ok(UserDataQuery { users, contact_states })
}

/// A filter's list of ids: 1 to `max` non-empty strings.
fn id_list(name: &str, value: &Value, max: usize) -> Result<Vec<String>, String> {
    let ids: Option<Vec<String>> = value.as_array().and_then(|ids| {
        ids.iter()
            .map(|id| id.as_str().filter(|id| !id.is_empty()).map(str::to_owned))
            .collect()
    });
    match ids {
        Some(ids) if (1..=max).contains(&ids.len()) => Ok(ids),
        _ if max == 1 => Err(format!("Filters.{name} must be a list of one id")),
        _ => Err(format!("Filters.{name} must be a list of 1..{max} ids")),
    }
}

/// The states a `ContactFilter` keeps: `None` when it names none.
fn contact_filter(value: &Value) -> Result<Option<Vec<String>>, String> {
    let Some(members) = value.as_object() else {
        return Err("Filters.ContactFilter must be an object".into());
    };
    if let Some(member) = members.keys().find(|m| *m != "ContactStates") {
        return Err(format!("unknown member {member:?} of Filters.ContactFilter"));
    }
    let Some(states) = members.get("ContactStates") else {
        return Ok(None);
    };
    let Some(states) = states
        .as_array()
        .filter(|s| (1..=CONTACT_STATES.len()).contains(&s.len()))
    else {
        return Err("Filters.ContactFilter.ContactStates must be a list of 1..9 contact states".into());
    };
    let mut kept: Vec<String> = Vec::new();
    for state in states {
        let Some(state) = state.as_str().filter(|s| CONTACT_STATES.contains(s)) else {
            return Err(format!("{state} is not a contact state (one of {CONTACT_STATES:?})"));
        };
        if kept.iter().any(|k| k == state) {
            return Err(format!("the contact state {state} is named twice"));
        }
        kept.push(state.to_owned());
    }
    Ok(Some(kept))
}

/// GetCurrentUserData over the added users: those its filter finds, sorted
/// by id, a page at a time; each with its contacts, as many as the contact
/// filter keeps.
fn current_user_data(state: &State, received: &Received) -> Response<Full<Bytes>> {
    let instance = match received.labels.as_slice() {
        [instance] if !instance.is_empty() => instance.as_str(),
        _ => {
            return error_answer(
                400,
                "InvalidRequestException",
                "the path is /metrics/userdata/{InstanceId}",
            )
        }
    };
    let body = received.json();
    let query = match user_data_query(&body) {
        Ok(query) => query,
        Err(problem) => return error_answer(400, "InvalidParameterException", &problem),
    };
    let profiles = state.routing_profiles.lock().expect("routing profiles lock").clone();
    let found = |user: &Value| {
        let member = |name: &str| user[name].as_str();
        let named = |ids: &[String], id: Option<&str>| id.is_some_and(|id| ids.iter().any(|i| i == id));
        match &query.users {
            UserDataFilter::Agents(ids) => named(ids, member("Id")),
            UserDataFilter::RoutingProfiles(ids) => named(ids, member("RoutingProfileId")),
            UserDataFilter::Queues(ids) => member("RoutingProfileId")
                .and_then(|profile| profiles.get(profile))
                .is_some_and(|queues| queues.iter().any(|q| named(ids, Some(q)))),
            UserDataFilter::UserHierarchyGroup(group) => member("HierarchyGroupId") == Some(group.as_str()),
        }
    };
    let users: Vec<Value> = {
        let records = state.users.lock().expect("users lock");
        records.values().filter(|u| found(u)).cloned().collect()
    };
    let search = format!("{instance} {query:?}");
    let (users, next, total) = match page(state, "GetCurrentUserData", &search, &body, users) {
        Ok(page) => page,
        Err(problem) => return error_answer(400, "InvalidParameterException", &problem),
    };
    let states = query.contact_states.as_deref();
    let list: Vec<Value> = users.iter().map(|u| user_data(state, instance, u, states)).collect();
    let mut answer = json!({"UserDataList": list, "ApproximateTotalCount": total});
    if let Some(next) = next {
        answer["NextToken"] = json!(next);
    }
    raw(200, &[], &answer.to_string())
}

/// One user's entry of GetCurrentUserData's `UserDataList`: the user, its
/// hierarchy path and routing profile when it has them, and its contacts
/// in these states (all of them when `None`).
fn user_data(state: &State, instance: &str, user: &Value, contact_states: Option<&[String]>) -> Value {
    let id = user["Id"].as_str().unwrap_or_default();
    let mut data = json!({"User": {"Id": id, "Arn": arn(state, instance, "agent", id)}});
    // Id and Arn only: Connect's HierarchyGroupSummaryReference has no Name.
    let path: serde_json::Map<String, Value> = user_hierarchy_path(state, user)
        .iter()
        .zip(LEVEL_NAMES)
        .map(|(group, level)| {
            let arn = arn(state, instance, "agent-group", group);
            (level.to_owned(), json!({"Id": group, "Arn": arn}))
        })
        .collect();
    if !path.is_empty() {
        data["HierarchyPath"] = Value::Object(path);
    }
    if let Some(profile) = user["RoutingProfileId"].as_str() {
        let arn = arn(state, instance, "routing-profile", profile);
        data["RoutingProfile"] = json!({"Id": profile, "Arn": arn});
    }
    let in_state = |contact: &Value| {
        contact_states.is_none_or(|states| states.iter().any(|s| contact["AgentContactState"] == s.as_str()))
    };
    let contacts: Vec<Value> = {
        let contacts = state.agent_contacts.lock().expect("agent contacts lock");
        contacts
            .iter()
            .filter(|c| c.listed && c.agent == id && in_state(&c.contact))
            .map(|c| c.contact.clone())
            .collect()
    };
    data["Contacts"] = json!(contacts);
    data
}

fn raw(status: u16, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_owned())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        "x-amzn-requestid",
        http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ASCII"),
    );
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::try_from(*k), http::HeaderValue::from_str(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

fn monitor_success(received: &Received) -> Response<Full<Bytes>> {
    let body = received.json();
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if received.method != "POST" || received.path != "/contact/monitor" || text("ContactId").is_empty() {
        return raw(
            400,
            &[("x-amzn-errortype", "InvalidRequestException")],
            r#"{"Message":"bad request"}"#,
        );
    }
    let region = credential_scope(&received.headers)
        .map(|s| s.region)
        .unwrap_or_default();
    let arn = format!(
        "arn:aws:connect:{region}:123456789012:instance/{}/contact/{}",
        text("InstanceId"),
        text("ContactId")
    );
    raw(
        200,
        &[],
        &json!({"ContactId": text("ContactId"), "ContactArn": arn}).to_string(),
    )
}

struct Scope {
    access_key: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
}

fn credential_scope(headers: &HeaderMap) -> Result<Scope, String> {
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .ok_or("no authorization header")?
        .to_str()
        .map_err(|_| "authorization is not ASCII")?;
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("authorization is not AWS4-HMAC-SHA256")?;
    let mut credential = None;
    let mut signed = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        }
    }
    let credential: Vec<&str> = credential.ok_or("no Credential")?.split('/').collect();
    if credential.len() != 5 || credential[4] != "aws4_request" {
        return Err("malformed credential scope".into());
    }
    Ok(Scope {
        access_key: credential[0].to_owned(),
        region: credential[2].to_owned(),
        service: credential[3].to_owned(),
        signed_headers: signed
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
    })
}

/// Recomputes a request's SigV4 signature from the method, path and query,
/// the headers it names as signed, and the body; `Ok` only when it matches exactly.
pub(crate) fn verify_sigv4(
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
    now: SystemTime,
) -> Result<(), String> {
    verify_sigv4_for("connect", method, path, headers, body, credentials, now)
}

/// [`verify_sigv4`] for a request to `service` (`sts` for a stand-in STS).
pub fn verify_sigv4_for(
    service: &str,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
    now: SystemTime,
) -> Result<(), String> {
    let scope = credential_scope(headers)?;
    if scope.access_key != credentials.access_key_id() {
        return Err("unknown access key".into());
    }
    if scope.service != service {
        return Err(format!("signed for service {:?}, not {service}", scope.service));
    }
    let header = |name: &str| -> Result<&str, String> {
        let mut values = headers.get_all(name).iter();
        let v = values.next().ok_or(format!("signed header {name} missing"))?;
        if values.next().is_some() {
            return Err(format!("signed header {name} sent twice"));
        }
        v.to_str().map_err(|_| format!("header {name} is not ASCII"))
    };
    // A body travels with its content type, signed; a GET has neither.
    let required: &[&str] = if body.is_empty() {
        &["host", "x-amz-date"]
    } else {
        &["host", "x-amz-date", "content-type"]
    };
    for required in required {
        if !scope.signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let amz_date = header("x-amz-date")?;
    let time = parse_amz_date(amz_date).ok_or("x-amz-date is malformed")?;
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_CLOCK_SKEW {
        return Err("x-amz-date too far from now".into());
    }
    let session_token = match scope.signed_headers.iter().any(|h| h == "x-amz-security-token") {
        true => {
            let token = header("x-amz-security-token")?;
            if Some(token) != credentials.session_token() {
                return Err("wrong session token".into());
            }
            Some(token.to_owned())
        }
        false if credentials.session_token().is_some() => return Err("session token not signed".into()),
        false => None,
    };
    // The signer adds x-amz-date and the token itself; give it the rest.
    let mut signed = Vec::new();
    for name in &scope.signed_headers {
        if name != "x-amz-date" && name != "x-amz-security-token" {
            signed.push((name.as_str(), header(name)?));
        }
    }
    let identity = Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        session_token,
        None,
        "connect-standin",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&scope.region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let signable =
        SignableRequest::new(method, path, signed.into_iter(), SignableBody::Bytes(body)).map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params).map_err(|e| e.to_string())?.into_parts();
    let expected = instructions
        .headers()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.to_owned())
        .ok_or("signer produced no authorization")?;
    if header("authorization")? != expected {
        return Err("signature mismatch".into());
    }
    Ok(())
}

/// `20261124T021959Z` → a time.
fn parse_amz_date(text: &str) -> Option<SystemTime> {
    if text.len() != 16 || &text[8..9] != "T" || !text.ends_with('Z') {
        return None;
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    humantime::parse_rfc3339(&rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::endpoint::{parse_endpoint, Route};
    use crate::connect::signing::signed_request;

    fn signed(creds: &Credentials) -> http::Request<Bytes> {
        let route = Route {
            region: "us-east-1".into(),
            endpoint: parse_endpoint("http://127.0.0.1:1").unwrap(),
            role_arn: None,
        };
        let body = Some(Bytes::from_static(b"{\"a\":1}"));
        signed_request(
            &route,
            &http::Method::POST,
            "/contact/monitor",
            body,
            creds,
            SystemTime::now(),
        )
        .unwrap()
    }

    fn check(req: &http::Request<Bytes>, creds: &Credentials) -> Result<(), String> {
        verify_sigv4(
            "POST",
            req.uri().path(),
            req.headers(),
            req.body(),
            creds,
            SystemTime::now(),
        )
    }

    /// Calls the stand-in's MonitorContact as the gateway would, signed;
    /// returns the status, the error type header and the body.
    async fn monitor_contact(connect: &ConnectStandIn, creds: &Credentials) -> (u16, String, Value) {
        let body = json!({"InstanceId": "inst-1", "ContactId": "contact-1", "UserId": "user-1"});
        call(connect, creds, http::Method::POST, "/contact/monitor", Some(body)).await
    }

    /// Sends a request to the stand-in as the gateway would, signed: a POST
    /// with its JSON body, a GET without; returns the status, the error type
    /// header and the body.
    async fn call(
        connect: &ConnectStandIn,
        creds: &Credentials,
        method: http::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, String, Value) {
        let route = Route {
            region: "eu-west-2".into(),
            endpoint: parse_endpoint(&connect.url()).unwrap(),
            role_arn: None,
        };
        let body = body.map(|b| Bytes::from(b.to_string()));
        let req = signed_request(&route, &method, path, body, creds, SystemTime::now()).unwrap();
        let (parts, body) = req.into_parts();
        let client = crate::http::client::build();
        let response = tokio::time::timeout(
            Duration::from_secs(20),
            client.request(Request::from_parts(parts, Full::new(body))),
        )
        .await
        .expect("the stand-in answered within 20 s")
        .expect("the stand-in answered");
        let status = response.status().as_u16();
        let error_type = response
            .headers()
            .get("x-amzn-errortype")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, error_type, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    async fn quota_standin(creds: &Credentials, rate: f64, burst: u32) -> ConnectStandIn {
        let connect = ConnectStandIn::start(creds.clone()).await.unwrap();
        connect.enforce_quotas(&[("MonitorContact", rate, burst)]);
        connect
    }

    // A rate this low refills nothing while 20 calls are made, however
    // loaded the machine: exactly the burst passes.
    #[tokio::test]
    async fn a_quota_lets_its_burst_through_at_once_and_refuses_the_rest_unperformed() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let connect = Arc::new(quota_standin(&creds, 0.05, 5).await);
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let (connect, creds) = (connect.clone(), creds.clone());
                tokio::spawn(async move { monitor_contact(&connect, &creds).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let passed = answers.iter().filter(|(status, ..)| *status == 200).count();
        assert_eq!(passed, 5, "{answers:?}");
        for (status, error_type, body) in answers.iter().filter(|(status, ..)| *status != 200) {
            assert_eq!(*status, 429);
            assert_eq!(error_type, "ThrottlingException");
            assert_eq!(
                body,
                &json!({"__type": "ThrottlingException", "message": "Rate exceeded"})
            );
        }
        assert_eq!(connect.calls("MonitorContact"), 20, "every call received counts");
        assert_eq!(connect.throttled("MonitorContact"), 15);
        assert_eq!(connect.throttled("DescribeUser"), 0);
        assert_eq!(connect.throttled_total(), 15);
        assert_eq!(connect.bad_signatures(), Vec::<String>::new());
    }

    // Bounds only from below (a call cannot pass before its token exists)
    // and a generous deadline: nothing here depends on the machine's pace
    // (a stall between two calls may let the second pass at once; the bound
    // still holds).
    #[tokio::test]
    async fn a_drained_quota_refills_at_its_rate() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let connect = quota_standin(&creds, 0.5, 1).await;
        let drained_from = Instant::now();
        assert_eq!(monitor_contact(&connect, &creds).await.0, 200, "the burst");
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut refused = 0;
        loop {
            match monitor_contact(&connect, &creds).await.0 {
                200 => break,
                429 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
            assert!(Instant::now() < deadline, "the quota did not refill within 15 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            drained_from.elapsed() >= Duration::from_millis(1900),
            "a token came back after {:?}, at 0.5 calls/s it takes 2 s",
            drained_from.elapsed()
        );
        assert_eq!(connect.throttled("MonitorContact"), refused);
    }

    #[tokio::test]
    async fn scripted_replies_bypass_quotas_and_take_nothing_from_them() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let connect = quota_standin(&creds, 0.05, 1).await;
        connect.script_for(
            "MonitorContact",
            [Reply::Success, Reply::error(500, "InternalServiceException")],
        );
        assert_eq!(monitor_contact(&connect, &creds).await.0, 200);
        assert_eq!(monitor_contact(&connect, &creds).await.0, 500);
        assert_eq!(
            monitor_contact(&connect, &creds).await.0,
            200,
            "the burst is still whole"
        );
        assert_eq!(monitor_contact(&connect, &creds).await.0, 429);
        assert_eq!((connect.calls("MonitorContact"), connect.throttled_total()), (4, 1));
    }

    #[tokio::test]
    async fn without_quotas_nothing_is_throttled() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let connect = ConnectStandIn::start(creds.clone()).await.unwrap();
        for _ in 0..10 {
            assert_eq!(monitor_contact(&connect, &creds).await.0, 200);
        }
        assert_eq!(connect.throttled_total(), 0);
    }

    #[test]
    fn a_good_signature_verifies() {
        let creds = Credentials::new("AKID", "secret", Some("tok".into()), None, "t");
        assert_eq!(check(&signed(&creds), &creds), Ok(()));
    }

    #[test]
    fn a_changed_body_or_header_fails() {
        let creds = Credentials::new("AKID", "secret", None, None, "t");
        let req = signed(&creds);
        let (mut parts, _) = req.clone().into_parts();
        let tampered = verify_sigv4(
            "POST",
            "/contact/monitor",
            &parts.headers,
            b"{\"a\":2}",
            &creds,
            SystemTime::now(),
        );
        assert_eq!(tampered, Err("signature mismatch".into()));
        parts.headers.insert("host", "evil:1".parse().unwrap());
        assert!(verify_sigv4(
            "POST",
            "/contact/monitor",
            &parts.headers,
            req.body(),
            &creds,
            SystemTime::now()
        )
        .is_err());
        let other = Credentials::new("AKID", "other-secret", None, None, "t");
        assert_eq!(check(&req, &other), Err("signature mismatch".into()));
    }

    #[test]
    fn a_get_is_verified_over_its_path_and_fails_on_another() {
        let creds = Credentials::new("AKID", "secret", Some("tok".into()), None, "t");
        let route = Route {
            region: "us-east-1".into(),
            endpoint: parse_endpoint("http://127.0.0.1:1").unwrap(),
            role_arn: None,
        };
        let path = "/users/inst/a%20b%2Fc";
        let req = signed_request(&route, &http::Method::GET, path, None, &creds, SystemTime::now()).unwrap();
        let verify =
            |method: &str, path: &str| verify_sigv4(method, path, req.headers(), b"", &creds, SystemTime::now());
        assert_eq!(verify("GET", path), Ok(()));
        assert_eq!(verify("GET", "/users/inst/a%20b%2Fd"), Err("signature mismatch".into()));
        assert_eq!(verify("POST", path), Err("signature mismatch".into()));
    }

    #[test]
    fn routes_name_the_operation_and_decode_its_labels() {
        assert_eq!(
            route("GET", "/users/inst-1/a%20b%2Fc"),
            ("DescribeUser", vec!["inst-1".to_string(), "a b/c".to_string()])
        );
        assert_eq!(route("POST", "/contact/monitor").0, "MonitorContact");
        assert_eq!(route("GET", "/contact/monitor").0, "Unknown");
        assert_eq!(
            route("GET", "/security-profiles-permissions/inst-1/sp%3A1"),
            (
                "ListSecurityProfilePermissions",
                vec!["inst-1".to_string(), "sp:1".to_string()]
            )
        );
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        assert_eq!(
            query_params("/p/i/s?maxResults=2&nextToken=page%2F2%2Bx%3D"),
            Ok(vec![
                ("maxResults".to_string(), "2".to_string()),
                ("nextToken".to_string(), "page/2+x=".to_string()),
            ])
        );
        assert_eq!(permissions_token_offset("page/2+x="), Some(2));
        assert_eq!(permissions_token_offset(&permissions_token(40)), Some(40));
        assert_eq!(query_params("/p/i/s"), Ok(Vec::new()));
        assert_eq!(
            query_params("/p/i/s?flag"),
            Ok(vec![("flag".to_string(), String::new())])
        );
    }

    #[test]
    fn a_query_value_sent_without_its_encoding_is_refused() {
        for raw_token in ["page/2", "page%2F2+x", "page%2F2%2Bx="] {
            let path = format!("/p/i/s?nextToken={raw_token}");
            assert!(query_params(&path).is_err(), "{path}");
        }
    }

    fn test_credentials() -> Credentials {
        Credentials::new("AKID", "secret", None, None, "t")
    }

    async fn standin() -> ConnectStandIn {
        ConnectStandIn::start(test_credentials()).await.unwrap()
    }

    async fn search_users(connect: &ConnectStandIn, body: Value) -> (u16, String, Value) {
        call(
            connect,
            &test_credentials(),
            http::Method::POST,
            "/search-users",
            Some(body),
        )
        .await
    }

    /// The `Id` members of the objects in an answer's list `list`.
    fn ids<'a>(answer: &'a Value, list: &str) -> Vec<&'a str> {
        let items = answer[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list} in {answer}"));
        items.iter().map(|item| item["Id"].as_str().unwrap()).collect()
    }

    /// A site with two teams, the first with a sub-team; a user in each
    /// group, and one in none.
    fn hierarchy(connect: &ConnectStandIn) {
        connect.add_hierarchy_group("g-site", None);
        connect.add_hierarchy_group("g-team-a", Some("g-site"));
        connect.add_hierarchy_group("g-team-a1", Some("g-team-a"));
        connect.add_hierarchy_group("g-team-b", Some("g-site"));
        for (user, group) in [
            ("u-site", Some("g-site")),
            ("u-a", Some("g-team-a")),
            ("u-a1", Some("g-team-a1")),
            ("u-b", Some("g-team-b")),
            ("u-none", None),
        ] {
            let mut record =
                json!({"Id": user, "Username": format!("{user}@example.com"), "SecurityProfileIds": ["sp-1"]});
            if let Some(group) = group {
                record["HierarchyGroupId"] = json!(group);
            }
            connect.add_user(record);
        }
    }

    fn in_group(group: &str, match_type: &str) -> Value {
        json!({"InstanceId": "inst-1", "SearchCriteria": {"HierarchyGroupCondition": {
            "Value": group, "HierarchyGroupMatchType": match_type}}})
    }

    #[tokio::test]
    async fn a_hierarchy_search_with_child_groups_finds_the_subtree_and_not_the_sibling() {
        let connect = standin().await;
        hierarchy(&connect);
        let (status, _, answer) = search_users(&connect, in_group("g-team-a", "WITH_CHILD_GROUPS")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ids(&answer, "Users"), ["u-a", "u-a1"]);
        assert_eq!(answer["ApproximateTotalCount"], 2);
        assert_eq!(answer.get("NextToken"), None);
        assert_eq!(
            answer["Users"][0],
            json!({"Id": "u-a", "Username": "u-a@example.com", "HierarchyGroupId": "g-team-a",
                   "SecurityProfileIds": ["sp-1"]})
        );
        let (_, _, whole_site) = search_users(&connect, in_group("g-site", "WITH_CHILD_GROUPS")).await;
        assert_eq!(ids(&whole_site, "Users"), ["u-a", "u-a1", "u-b", "u-site"]);
        assert_eq!(connect.bad_signatures(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn an_exact_hierarchy_search_finds_only_the_groups_members() {
        let connect = standin().await;
        hierarchy(&connect);
        let (status, _, answer) = search_users(&connect, in_group("g-team-a", "EXACT")).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(ids(&answer, "Users"), ["u-a"]);
        let (_, _, nobody) = search_users(&connect, in_group("g-unknown", "EXACT")).await;
        assert_eq!(nobody, json!({"Users": [], "ApproximateTotalCount": 0}));
    }

    #[tokio::test]
    async fn no_criteria_lists_every_user_page_by_page() {
        let connect = standin().await;
        for i in 0..250 {
            connect.add_user(json!({"Id": format!("u-{i:03}"), "Username": format!("user{i}")}));
        }
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut body = json!({"InstanceId": "inst-1"});
        loop {
            let (status, _, answer) = search_users(&connect, body.clone()).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["ApproximateTotalCount"], 250);
            sizes.push(answer["Users"].as_array().unwrap().len());
            seen.extend(ids(&answer, "Users").into_iter().map(str::to_owned));
            let Some(token) = answer.get("NextToken") else { break };
            let token = token.as_str().unwrap();
            assert!(
                token.contains('/') && token.contains('+') && token.contains('='),
                "{token}"
            );
            body["NextToken"] = json!(token);
        }
        assert_eq!(sizes, [100, 100, 50]);
        let every: Vec<String> = (0..250).map(|i| format!("u-{i:03}")).collect();
        assert_eq!(seen, every, "each user once, by id");
        assert_eq!(
            search_users(&connect, json!({"InstanceId": "inst-1", "MaxResults": 7}))
                .await
                .2["Users"]
                .as_array()
                .unwrap()
                .len(),
            7
        );
        assert_eq!(connect.calls("SearchUsers"), 4);
    }

    #[tokio::test]
    async fn a_next_token_is_good_only_for_the_search_that_gave_it() {
        let connect = standin().await;
        hierarchy(&connect);
        let (_, _, first) = search_users(&connect, json!({"InstanceId": "inst-1", "MaxResults": 2})).await;
        let token = first["NextToken"].as_str().unwrap().to_owned();
        let mut elsewhere = in_group("g-site", "WITH_CHILD_GROUPS");
        elsewhere["NextToken"] = json!(token);
        let made_up = json!({"InstanceId": "inst-1", "NextToken": "SearchUsers/9+2="});
        for body in [elsewhere, made_up] {
            let (status, error_type, answer) = search_users(&connect, body).await;
            assert_eq!((status, error_type.as_str()), (400, "InvalidParameterException"));
            assert!(answer["Message"].as_str().unwrap().contains("NextToken"), "{answer}");
        }
        let (status, _, second) = search_users(
            &connect,
            json!({"InstanceId": "inst-1", "MaxResults": 2, "NextToken": token}),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(ids(&second, "Users"), ["u-b", "u-none"]);
    }

    #[tokio::test]
    async fn a_search_the_stand_in_does_not_model_is_refused() {
        let connect = standin().await;
        hierarchy(&connect);
        let group = |condition: Value| json!({"InstanceId": "inst-1", "SearchCriteria": {"HierarchyGroupCondition": condition}});
        for body in [
            json!({"InstanceId": "inst-1", "SearchCriteria": {}}),
            json!({"InstanceId": "inst-1", "SearchCriteria": {
                "HierarchyGroupCondition": {"Value": "g-site", "HierarchyGroupMatchType": "EXACT"},
                "StringCondition": {"FieldName": "Username", "Value": "u-a@example.com", "ComparisonType": "EXACT"}}}),
            group(json!({"Value": "g-site", "HierarchyGroupMatchType": "WITH_PARENT_GROUPS"})),
            group(json!({"Value": "g-site"})),
            group(json!({"HierarchyGroupMatchType": "EXACT"})),
            group(json!({"Value": "g-site", "HierarchyGroupMatchType": "EXACT", "Depth": 1})),
            json!({"InstanceId": "inst-1", "MaxResults": 0}),
            json!({"InstanceId": "inst-1", "MaxResults": 101}),
            json!({"InstanceId": "inst-1", "SearchFilter": {"TagFilter": {}}}),
            json!({"SearchCriteria": {"HierarchyGroupCondition": {"Value": "g-site", "HierarchyGroupMatchType": "EXACT"}}}),
            json!({"InstanceId": "inst-1", "SearchCriteria": {"StringCondition": {
                "FieldName": "Username", "Value": "u-a", "ComparisonType": "CONTAINS"}}}),
        ] {
            let (status, error_type, answer) = search_users(&connect, body.clone()).await;
            assert_eq!(status, 400, "{body} → {answer}");
            assert!(error_type.ends_with("Exception"), "{error_type}");
            assert!(answer["Message"].is_string(), "{answer}");
        }
    }

    #[tokio::test]
    async fn the_exact_username_search_answers_one_page_without_a_token() {
        let connect = standin().await;
        hierarchy(&connect);
        let body = json!({"InstanceId": "inst-1", "MaxResults": 2, "SearchCriteria": {"StringCondition": {
            "FieldName": "Username", "Value": "u-a@example.com", "ComparisonType": "EXACT"}}});
        let (status, _, answer) = search_users(&connect, body).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer,
            json!({"Users": [{"Id": "u-a", "Username": "u-a@example.com"}], "ApproximateTotalCount": 1})
        );
    }

    async fn describe_contact(connect: &ConnectStandIn, id: &str) -> (u16, String, Value) {
        let path = format!("/contacts/inst-1/{id}");
        call(connect, &test_credentials(), http::Method::GET, &path, None).await
    }

    fn voice_contact(id: &str, state: &str) -> Value {
        json!({"ContactId": id, "Channel": "VOICE", "InitiationMethod": "INBOUND",
               "AgentContactState": state, "StateStartTimestamp": 1_767_225_600,
               "ConnectedToAgentTimestamp": 1_767_225_600,
               "Queue": {"Id": "q-1", "Arn": "arn:aws:connect:eu-west-2:123456789012:instance/inst-1/queue/q-1"}})
    }

    fn group_arn(region: &str, group: &str) -> String {
        format!("arn:aws:connect:{region}:123456789012:instance/inst-1/agent-group/{group}")
    }

    #[tokio::test]
    async fn describe_contact_of_an_agents_contact_carries_its_agent_and_groups() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.add_agent_contact("u-a1", voice_contact("c-1", "CONNECTED"));
        let (status, _, answer) = describe_contact(&connect, "c-1").await;
        assert_eq!(status, 200, "{answer}");
        let arn = |group| group_arn("eu-west-2", group);
        assert_eq!(
            answer,
            json!({"Contact": {"Id": "c-1", "Channel": "VOICE", "InitiationMethod": "INBOUND",
                "QueueInfo": {"Id": "q-1"},
                "AgentInfo": {"Id": "u-a1", "HierarchyGroups": {
                    "Level1": {"Arn": arn("g-site")},
                    "Level2": {"Arn": arn("g-team-a")},
                    "Level3": {"Arn": arn("g-team-a1")}}}}})
        );
        connect.set_agent_contact_state("c-1", "ENDED");
        assert_eq!(
            describe_contact(&connect, "c-1").await.2,
            answer,
            "an ended contact has its agent still"
        );
        assert_eq!(connect.bad_signatures(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn describe_contact_names_the_agents_groups_as_they_are_when_it_answers() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.set_region("us-east-1");
        connect.add_agent_contact("u-a", voice_contact("c-1", "CONNECTED"));
        connect.add_user(json!({"Id": "u-a", "HierarchyGroupId": "g-team-b"}));
        let groups = &describe_contact(&connect, "c-1").await.2["Contact"]["AgentInfo"]["HierarchyGroups"];
        assert_eq!(
            groups,
            &json!({"Level1": {"Arn": group_arn("us-east-1", "g-site")},
                    "Level2": {"Arn": group_arn("us-east-1", "g-team-b")}})
        );
    }

    #[tokio::test]
    async fn an_agent_in_no_group_has_no_hierarchy_levels() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.add_agent_contact("u-none", voice_contact("c-1", "CONNECTED"));
        let chat = json!({"ContactId": "c-2", "Channel": "CHAT", "InitiationMethod": "INBOUND",
                          "AgentContactState": "INCOMING", "StateStartTimestamp": 1_767_225_600});
        connect.add_agent_contact("u-not-a-user", chat);
        let (_, _, in_no_group) = describe_contact(&connect, "c-1").await;
        assert_eq!(
            in_no_group["Contact"]["AgentInfo"],
            json!({"Id": "u-none", "HierarchyGroups": {}})
        );
        let (status, _, unknown_agent) = describe_contact(&connect, "c-2").await;
        assert_eq!(status, 200);
        assert_eq!(
            unknown_agent,
            json!({"Contact": {"Id": "c-2", "Channel": "CHAT", "InitiationMethod": "INBOUND",
                               "AgentInfo": {"Id": "u-not-a-user", "HierarchyGroups": {}}}}),
            "no queue, no QueueInfo"
        );
        assert_eq!(describe_contact(&connect, "c-3").await.0, 404);
    }

    #[tokio::test]
    async fn an_added_contact_record_wins_over_an_agents_contact() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.add_agent_contact("u-a", voice_contact("c-1", "CONNECTED"));
        let record = json!({"Id": "c-1", "Channel": "VOICE", "QueueInfo": {"Id": "q-9"}});
        connect.add_contact(record.clone());
        assert_eq!(describe_contact(&connect, "c-1").await.2, json!({ "Contact": record }));
    }

    #[tokio::test]
    async fn a_five_level_hierarchy_gives_five_levels() {
        let connect = standin().await;
        let levels = ["g-1", "g-2", "g-3", "g-4", "g-5"];
        for (i, group) in levels.iter().enumerate() {
            connect.add_hierarchy_group(group, i.checked_sub(1).map(|above| levels[above]));
        }
        connect.add_user(json!({"Id": "u-deep", "HierarchyGroupId": "g-5"}));
        connect.add_agent_contact("u-deep", voice_contact("c-1", "CONNECTED"));
        let groups = &describe_contact(&connect, "c-1").await.2["Contact"]["AgentInfo"]["HierarchyGroups"];
        let expected: serde_json::Map<String, Value> = levels
            .iter()
            .enumerate()
            .map(|(i, g)| (format!("Level{}", i + 1), json!({"Arn": group_arn("eu-west-2", g)})))
            .collect();
        assert_eq!(groups, &Value::Object(expected));
    }

    #[tokio::test]
    #[should_panic(expected = "below the fifth")]
    async fn a_hierarchy_has_five_levels_at_most() {
        let connect = standin().await;
        let levels = ["g-1", "g-2", "g-3", "g-4", "g-5", "g-6"];
        for (i, group) in levels.iter().enumerate() {
            connect.add_hierarchy_group(group, i.checked_sub(1).map(|above| levels[above]));
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be added before")]
    async fn a_hierarchy_group_comes_after_its_parent() {
        standin().await.add_hierarchy_group("g-team", Some("g-site"));
    }

    async fn current_user_data(connect: &ConnectStandIn, body: Value) -> (u16, String, Value) {
        let creds = test_credentials();
        call(
            connect,
            &creds,
            http::Method::POST,
            "/metrics/userdata/inst-1",
            Some(body),
        )
        .await
    }

    fn agents(ids: &[&str]) -> Value {
        json!({"Filters": {"Agents": ids}})
    }

    /// The contact ids of each user of a GetCurrentUserData answer, by user id.
    fn contacts_by_user(answer: &Value) -> Vec<(String, Vec<String>)> {
        let list = answer["UserDataList"].as_array().unwrap_or_else(|| panic!("{answer}"));
        list.iter()
            .map(|data| {
                let contacts = data["Contacts"].as_array().unwrap();
                let ids = contacts.iter().map(|c| c["ContactId"].as_str().unwrap().to_owned());
                (data["User"]["Id"].as_str().unwrap().to_owned(), ids.collect())
            })
            .collect()
    }

    #[test]
    fn get_current_user_data_has_its_route() {
        assert_eq!(
            route("POST", "/metrics/userdata/inst%2D1"),
            ("GetCurrentUserData", vec!["inst-1".to_string()])
        );
        assert_eq!(route("GET", "/metrics/userdata/inst-1").0, "Unknown");
    }

    #[tokio::test]
    async fn get_current_user_data_by_agents_returns_their_contacts_with_the_hierarchy_path() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.add_routing_profile("rp-1", &["q-1"]);
        connect.add_user(json!({"Id": "u-a1", "Username": "u-a1@example.com",
                                "HierarchyGroupId": "g-team-a1", "RoutingProfileId": "rp-1"}));
        connect.add_agent_contact("u-a1", voice_contact("c-1", "CONNECTED"));
        let chat = json!({"ContactId": "c-2", "Channel": "CHAT", "InitiationMethod": "INBOUND",
                          "AgentContactState": "INCOMING", "StateStartTimestamp": 1_767_225_700});
        connect.add_agent_contact("u-a1", chat.clone());
        connect.add_agent_contact("u-b", voice_contact("c-3", "CONNECTED"));
        let (status, _, answer) = current_user_data(&connect, agents(&["u-none", "u-a1", "u-unknown"])).await;
        assert_eq!(status, 200, "{answer}");
        let arn = |kind: &str, id: &str| format!("arn:aws:connect:eu-west-2:123456789012:instance/inst-1/{kind}/{id}");
        let group = |id: &str| json!({"Id": id, "Arn": arn("agent-group", id)});
        assert_eq!(
            answer,
            json!({"UserDataList": [
                {"User": {"Id": "u-a1", "Arn": arn("agent", "u-a1")},
                 "HierarchyPath": {"LevelOne": group("g-site"), "LevelTwo": group("g-team-a"),
                                   "LevelThree": group("g-team-a1")},
                 "RoutingProfile": {"Id": "rp-1", "Arn": arn("routing-profile", "rp-1")},
                 "Contacts": [voice_contact("c-1", "CONNECTED"), chat]},
                {"User": {"Id": "u-none", "Arn": arn("agent", "u-none")}, "Contacts": []}],
             "ApproximateTotalCount": 2})
        );
        assert_eq!(connect.calls("GetCurrentUserData"), 1);
        assert_eq!(connect.bad_signatures(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn the_contact_state_filter_leaves_out_incoming_and_ended() {
        let connect = standin().await;
        hierarchy(&connect);
        for (id, state) in [
            ("c-1", "CONNECTED"),
            ("c-2", "INCOMING"),
            ("c-3", "CONNECTED_ONHOLD"),
            ("c-4", "ENDED"),
        ] {
            connect.add_agent_contact("u-a", voice_contact(id, state));
        }
        let mut on_call = agents(&["u-a"]);
        on_call["Filters"]["ContactFilter"] = json!({"ContactStates": ["CONNECTED_ONHOLD", "CONNECTED"]});
        let (status, _, answer) = current_user_data(&connect, on_call.clone()).await;
        assert_eq!(status, 200, "{answer}");
        let expected = |ids: &[&str]| vec![("u-a".to_string(), ids.iter().map(|c| c.to_string()).collect())];
        assert_eq!(
            contacts_by_user(&answer),
            expected(&["c-1", "c-3"]),
            "in the order added"
        );
        connect.set_agent_contact_state("c-1", "ENDED");
        connect.set_agent_contact_state("c-2", "CONNECTED");
        let (_, _, later) = current_user_data(&connect, on_call).await;
        assert_eq!(contacts_by_user(&later), expected(&["c-2", "c-3"]));
        assert_eq!(
            later["UserDataList"][0]["Contacts"][0]["AgentContactState"],
            "CONNECTED"
        );
        let (_, _, unfiltered) = current_user_data(&connect, agents(&["u-a"])).await;
        assert_eq!(contacts_by_user(&unfiltered), expected(&["c-1", "c-2", "c-3", "c-4"]));
    }

    #[tokio::test]
    async fn a_removed_contact_leaves_get_current_user_data_and_describe_contact_still_answers_it() {
        let connect = standin().await;
        hierarchy(&connect);
        connect.add_agent_contact("u-a", voice_contact("c-1", "CONNECTED"));
        connect.add_agent_contact("u-a", voice_contact("c-2", "CONNECTED"));
        let described = describe_contact(&connect, "c-1").await.2;
        connect.remove_agent_contact("c-1");
        let (_, _, answer) = current_user_data(&connect, agents(&["u-a"])).await;
        assert_eq!(
            contacts_by_user(&answer),
            [("u-a".to_string(), vec!["c-2".to_string()])]
        );
        assert_eq!(describe_contact(&connect, "c-1").await, (200, String::new(), described));
        connect.add_agent_contact("u-b", voice_contact("c-2", "CONNECTED"));
        let (_, _, transferred) = current_user_data(&connect, agents(&["u-a", "u-b"])).await;
        assert_eq!(
            contacts_by_user(&transferred),
            [
                ("u-a".to_string(), vec![]),
                ("u-b".to_string(), vec!["c-2".to_string()])
            ],
            "a contact id given again replaces the contact before"
        );
    }

    #[tokio::test]
    async fn user_hierarchy_groups_returns_only_the_groups_own_members() {
        let connect = standin().await;
        hierarchy(&connect);
        for (group, member) in [("g-team-a", "u-a"), ("g-site", "u-site")] {
            let body = json!({"Filters": {"UserHierarchyGroups": [group]}});
            let (status, _, answer) = current_user_data(&connect, body).await;
            assert_eq!(status, 200, "{answer}");
            let found: Vec<String> = contacts_by_user(&answer).into_iter().map(|(user, _)| user).collect();
            assert_eq!(found, [member], "not the members of the groups below {group}");
        }
    }

    #[tokio::test]
    async fn queues_and_routing_profiles_find_the_users_of_their_routing_profiles() {
        let connect = standin().await;
        connect.add_routing_profile("rp-1", &["q-1", "q-2"]);
        connect.add_routing_profile("rp-2", &["q-3"]);
        connect.add_user(json!({"Id": "u-1", "RoutingProfileId": "rp-1"}));
        connect.add_user(json!({"Id": "u-2", "RoutingProfileId": "rp-2"}));
        connect.add_user(json!({"Id": "u-3", "RoutingProfileId": "rp-unknown"}));
        connect.add_user(json!({"Id": "u-4"}));
        let users =
            |answer: &Value| -> Vec<String> { contacts_by_user(answer).into_iter().map(|(user, _)| user).collect() };
        for (filters, expected) in [
            (json!({"Queues": ["q-2"]}), vec!["u-1"]),
            (json!({"Queues": ["q-3", "q-1"]}), vec!["u-1", "u-2"]),
            (json!({"Queues": ["q-9"]}), vec![]),
            (json!({"RoutingProfiles": ["rp-2"]}), vec!["u-2"]),
            (json!({"RoutingProfiles": ["rp-2", "rp-unknown"]}), vec!["u-2", "u-3"]),
        ] {
            let (status, _, answer) = current_user_data(&connect, json!({ "Filters": filters })).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(users(&answer), expected, "{filters}");
        }
    }

    #[tokio::test]
    async fn get_current_user_data_pages_by_max_results_with_its_own_tokens() {
        let connect = standin().await;
        connect.add_routing_profile("rp-1", &["q-1"]);
        for i in 0..250 {
            connect.add_user(json!({"Id": format!("u-{i:03}"), "RoutingProfileId": "rp-1"}));
        }
        let mut body = json!({"Filters": {"Queues": ["q-1"]}});
        let (mut sizes, mut seen) = (Vec::new(), Vec::new());
        loop {
            let (status, _, answer) = current_user_data(&connect, body.clone()).await;
            assert_eq!(status, 200, "{answer}");
            assert_eq!(answer["ApproximateTotalCount"], 250);
            let page = contacts_by_user(&answer);
            sizes.push(page.len());
            seen.extend(page.into_iter().map(|(user, _)| user));
            let Some(token) = answer.get("NextToken") else { break };
            assert!(token.as_str().unwrap().contains(['/', '+', '=']), "{token}");
            body["NextToken"] = token.clone();
        }
        assert_eq!(sizes, [100, 100, 50]);
        assert_eq!(seen, (0..250).map(|i| format!("u-{i:03}")).collect::<Vec<_>>());
        body["MaxResults"] = json!(30);
        body.as_object_mut().unwrap().remove("NextToken");
        let (_, _, first) = current_user_data(&connect, body.clone()).await;
        assert_eq!(contacts_by_user(&first).len(), 30);
        let other_search = json!({"Filters": {"RoutingProfiles": ["rp-1"]}, "NextToken": first["NextToken"]});
        assert_eq!(current_user_data(&connect, other_search).await.0, 400);
        let (_, _, users) = search_users(&connect, json!({"InstanceId": "inst-1", "MaxResults": 1})).await;
        body["NextToken"] = users["NextToken"].clone();
        assert_eq!(current_user_data(&connect, body).await.0, 400, "a SearchUsers token");
    }

    #[tokio::test]
    async fn two_filters_or_none_are_refused() {
        let connect = standin().await;
        hierarchy(&connect);
        let hundred_and_one: Vec<String> = (0..=100).map(|i| format!("u-{i}")).collect();
        let states =
            |states: Value| json!({"Filters": {"Agents": ["u-a"], "ContactFilter": {"ContactStates": states}}});
        for body in [
            json!({"Filters": {}}),
            json!({"Filters": {"ContactFilter": {"ContactStates": ["CONNECTED"]}}}),
            json!({"Filters": {"Agents": ["u-a"], "Queues": ["q-1"]}}),
            json!({"Filters": {"RoutingProfiles": ["rp-1"], "UserHierarchyGroups": ["g-site"]}}),
            json!({}),
            json!({"Filters": {"Agents": []}}),
            json!({"Filters": {"Agents": hundred_and_one}}),
            json!({"Filters": {"Agents": [""]}}),
            json!({"Filters": {"Agents": "u-a"}}),
            json!({"Filters": {"UserHierarchyGroups": ["g-site", "g-team-a"]}}),
            json!({"Filters": {"Agents": ["u-a"], "Channels": ["VOICE"]}}),
            json!({"Filters": {"Agents": ["u-a"]}, "InstanceId": "inst-1"}),
            json!({"Filters": {"Agents": ["u-a"], "ContactFilter": {"States": ["CONNECTED"]}}}),
            states(json!([])),
            states(json!(["ON_CALL"])),
            states(json!(["CONNECTED", "CONNECTED"])),
            states(json!(CONTACT_STATES
                .iter()
                .chain(["CONNECTED"].iter())
                .collect::<Vec<_>>())),
            json!({"Filters": {"Agents": ["u-a"]}, "MaxResults": 0}),
            json!({"Filters": {"Agents": ["u-a"]}, "MaxResults": 101}),
            json!({"Filters": {"Agents": ["u-a"]}, "MaxResults": "10"}),
            json!({"Filters": {"Agents": ["u-a"]}, "NextToken": "GetCurrentUserData/0+1="}),
        ] {
            let (status, error_type, answer) = current_user_data(&connect, body.clone()).await;
            assert_eq!(
                (status, error_type.as_str()),
                (400, "InvalidParameterException"),
                "{body}"
            );
            assert!(answer["Message"].is_string(), "{answer}");
        }
        let every_state = states(json!(CONTACT_STATES));
        assert_eq!(current_user_data(&connect, every_state).await.0, 200);
        let creds = test_credentials();
        let no_instance = call(
            &connect,
            &creds,
            http::Method::POST,
            "/metrics/userdata/",
            Some(agents(&["u-a"])),
        );
        assert_eq!(no_instance.await.0, 400);
    }

    #[tokio::test]
    async fn the_get_current_user_data_quota_throttles_under_connect_default_quotas() {
        let connect = Arc::new(standin().await);
        connect.connect_default_quotas();
        // 40 calls at once: at 2 a second after a burst of 5, some are
        // refused unless the calls took over 17 s.
        let calls: Vec<_> = (0..40)
            .map(|_| {
                let connect = connect.clone();
                tokio::spawn(async move { current_user_data(&connect, agents(&["u-a"])).await })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.unwrap());
        }
        let passed = answers.iter().filter(|(status, ..)| *status == 200).count();
        assert!(passed >= 5, "the burst passes: {answers:?}");
        for (status, error_type, _) in answers.iter().filter(|(status, ..)| *status != 200) {
            assert_eq!((*status, error_type.as_str()), (429, "ThrottlingException"));
        }
        assert_eq!(connect.throttled("GetCurrentUserData"), 40 - passed);
        assert!(connect.throttled("GetCurrentUserData") > 0);
        assert_eq!(connect.calls("GetCurrentUserData"), 40);
        assert_eq!(connect.throttled_total(), 40 - passed, "no other operation's budget");
    }
}
