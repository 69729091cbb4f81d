//! Benchmark (not a test): a fleet of gateway replicas sharing one Connect
//! account's quotas. Each mode is two runs, one after the other, the same
//! traffic in each:
//!
//!   A  without `[shared]`: every replica keeps its own budget per Connect
//!      operation (each believes it has the whole quota) and its own caches
//!   B  with `[shared]`: the budgets and the looked-up facts live on a Redis
//!      the driver starts itself (an ephemeral loopback port, no persistence)
//!
//! In each run: `--replicas` gateway processes (the binary as shipped, each
//! its own config file and ports), one issuer stand-in, and one Connect
//! stand-in that enforces Connect's default account-wide quotas (429
//! `ThrottlingException` beyond them). The policy has one Connect-aware grant
//! (`agents = "my_hierarchy"`): a contact is allowed when its agent is in the
//! supervisor's hierarchy group or below it. `--dashboards` supervisors, each
//! in one of `--teams` hierarchy groups (under one site group) of `--agents`
//! agents. Every agent is always on a contact (GetCurrentUserData's record of
//! it, which DescribeContact answers too) that lasts 20 to 60 s; then it is
//! taken out and the agent's next contact, a new id, takes its place. Each
//! request goes to a random replica (a load balancer's spread; `--sticky`
//! sends dashboard i's to replica i % replicas).
//!
//! `--mode checks` (the default): each dashboard dry-runs
//! (`POST /contact/monitor/check`) every live contact of its team, as the
//! driver knows them, every `--period` seconds; every check needs the contact
//! (DescribeContact: its agent and the agent's groups) and the supervisor
//! (DescribeUser: her own group).
//!
//! `--mode listing`: each dashboard lists the contacts it may monitor
//! (`GET /contacts/monitorable`) every `--period` seconds, and once a second
//! dry-runs one contact of its last listing, picked at random, with the
//! capabilities listed for it. A listing asks Connect for the supervisor's
//! group, the group's agents (SearchUsers) and their contacts
//! (GetCurrentUserData, reused for `--live-ttl`), and the contacts it learns
//! spare the checks that follow their DescribeContact.
//!
//! `--mode both`: checks, then listing, in one execution.
//!
//! Printed per run and side by side: answers by request and status, the share
//! that were decisions (a check answered 200 or 403, a listing answered 200; a
//! 429, 502 or 504 is not one), Connect calls per operation per second and
//! throttled calls (as the stand-in counted them), Connect calls per 1,000
//! decisions, why the non-decisions were refused (the audit lines' `reason`),
//! the replicas' CPU and, for B, Redis's command count. For listings,
//! completeness: of the contacts of the dashboard's team that were live (by
//! the driver's own record) for longer than `--live-ttl` + 1 s when the
//! listing was sent, the share the listing named (a listing may be as old as
//! `live_ttl`, so a younger contact may rightly be missing), and how many of
//! those it missed had ended by the time its answer came (a listing that
//! waited, for a budget say, is answered from younger data). With `--mode
//! both`, a line comparing the modes' Connect calls per 1,000 decisions.
//! Figures, not assertions: the exit status is 1 only when the stand-in
//! refused a SigV4 signature (or the run could not happen), 0 otherwise.
//!
//! Options: `--mode checks|listing|both`, `--seconds S` (per run, default
//! 40), `--replicas N` (4), `--dashboards N` (30), `--teams N` (6),
//! `--agents N` (per team, 10), `--period S` (2), `--ttl DURATION` (the
//! lookup cache's, "5m"), `--live-ttl DURATION` (`[connect.lookups]
//! live_ttl`, "5s"; in ms, s, m or h), `--share X` (`[connect.quotas]
//! share`, 0.9: a margin for the milliseconds by which calls sent on the
//! budget's schedule arrive closer together), `--seed N` (default from the
//! clock, printed), `--sticky`, `--binary PATH`
//! (`target/dist/connect-monitor-gateway`), `--redis-server PATH`
//! (`/usr/bin/redis-server`), `--pid-file PATH` (every child's pid, one a
//! line, for benches/fleet.sh to stop them on a signal). Linux only (/proc).
//! Run with `benches/fleet.sh`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::test_util::{jwks_of, ConnectStandIn, HttpClient, IssuerStandIn, SigningKey};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

const KEY_ID: &str = "AKIABENCHFLEET000001";
const SECRET: &str = "fleet-bench-secret";
const TOKEN: &str = "fleet-bench-session";
const INSTANCE: &str = "bench-instance";
/// Seals the facts on the shared server, as a fleet's replicas would (the
/// same key on every replica); unused without `[shared]`.
const SHARED_KEY: &str = "fleet-bench-shared-key-0123456789abcdef";
const SITE_GROUP: &str = "g-site";
/// The Connect operations a replica may call, in the order printed.
const OPERATIONS: [&str; 6] = [
    "DescribeContact",
    "DescribeUser",
    "ListSecurityProfilePermissions",
    "SearchUsers",
    "GetCurrentUserData",
    "MonitorContact",
];
/// How long the driver waits for one answer: longer than the gateway's own
/// request_timeout (10 s), so the gateway answers first.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the contacts are looked at for one that ended.
const CHURN_TICK: Duration = Duration::from_millis(100);
/// A contact's length, in seconds: uniformly in this range.
const CONTACT_SECONDS: (f64, f64) = (20.0, 60.0);
/// In listing mode, how often a dashboard dry-runs one contact it listed.
const LISTED_CHECK_EVERY: Duration = Duration::from_secs(1);
/// The capabilities a check asks for in checks mode: what the supervisors'
/// security profile allows.
const CHECKED_CAPABILITIES: &[&str] = &["SILENT_MONITOR"];

// ---------------------------------------------------------------------------
// Options

/// What the dashboards do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Dry-run every live contact of the team, as the driver knows them.
    Checks,
    /// List, and dry-run one listed contact at a time.
    Listing,
    /// Checks, then listing.
    Both,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Checks => "checks",
            Mode::Listing => "listing",
            Mode::Both => "both",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = ();

    fn from_str(s: &str) -> Result<Mode, ()> {
        match s {
            "checks" => Ok(Mode::Checks),
            "listing" => Ok(Mode::Listing),
            "both" => Ok(Mode::Both),
            _ => Err(()),
        }
    }
}

/// A duration as the gateway's config writes it, one number and one unit
/// (`500ms`, `5s`, `2m`, `1h`); `None` for anything else.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

struct Options {
    mode: Mode,
    seconds: f64,
    replicas: usize,
    dashboards: usize,
    teams: usize,
    agents: usize,
    period: f64,
    ttl: String,
    live_ttl: String,
    share: f64,
    seed: u64,
    sticky: bool,
    binary: String,
    redis_server: String,
    pid_file: Option<PathBuf>,
}

/// The value after `name`, or `default`.
fn option<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    match args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) {
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| fatal(format!("{name}: cannot read {v:?}"))),
        None => default,
    }
}

impl Options {
    fn parse() -> Options {
        let args: Vec<String> = std::env::args().collect();
        let clock_seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let o = Options {
            mode: option(&args, "--mode", Mode::Checks),
            seconds: option(&args, "--seconds", 40.0),
            replicas: option(&args, "--replicas", 4),
            dashboards: option(&args, "--dashboards", 30),
            teams: option(&args, "--teams", 6),
            agents: option(&args, "--agents", 10),
            period: option(&args, "--period", 2.0),
            ttl: option(&args, "--ttl", "5m".to_owned()),
            live_ttl: option(&args, "--live-ttl", "5s".to_owned()),
            share: option(&args, "--share", 0.9),
            seed: option(&args, "--seed", clock_seed),
            sticky: args.iter().any(|a| a == "--sticky"),
            binary: option(&args, "--binary", "target/dist/connect-monitor-gateway".to_owned()),
            redis_server: option(&args, "--redis-server", "/usr/bin/redis-server".to_owned()),
            pid_file: args
                .iter()
                .position(|a| a == "--pid-file")
                .and_then(|i| args.get(i + 1))
                .map(PathBuf::from),
        };
        if o.replicas == 0 || o.dashboards == 0 || o.teams == 0 || o.agents == 0 {
            fatal("--replicas, --dashboards, --teams and --agents must be at least 1");
        }
        if o.seconds <= 0.0 || o.period <= 0.0 {
            fatal("--seconds and --period must be above 0");
        }
        if parse_duration(&o.live_ttl).is_none() {
            fatal(format!("--live-ttl: cannot read {:?} (e.g. 5s, 500ms)", o.live_ttl));
        }
        o
    }

    /// How long a contact must have been live for a listing to be expected
    /// to name it: a listing may use an answer as old as `live_ttl`, and the
    /// second more covers the answer's own way to the replica.
    fn listed_after(&self) -> Duration {
        parse_duration(&self.live_ttl).unwrap_or_default() + Duration::from_secs(1)
    }
}

fn fatal(message: impl std::fmt::Display) -> ! {
    eprintln!("fleet bench: {message}");
    kill_all();
    std::process::exit(2);
}

// ---------------------------------------------------------------------------
// Child processes: each is listed in the pid file while it lives, so that
// benches/fleet.sh can stop them by pid if the driver itself is killed.

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PID_FILE: OnceLock<PathBuf> = OnceLock::new();

fn write_pid_file(live: &[u32]) {
    if let Some(path) = PID_FILE.get() {
        let text: String = live.iter().map(|p| format!("{p}\n")).collect();
        let _ = std::fs::write(path, text);
    }
}

fn kill_all() {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in live {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A child process, killed and reaped when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(what: &str, mut command: Command) -> Proc {
        let child = command
            .spawn()
            .unwrap_or_else(|e| fatal(format!("cannot start {what}: {e}")));
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.push(child.id());
        write_pid_file(&live);
        Proc { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|&p| p != self.child.id());
        write_pid_file(&live);
    }
}

/// utime + stime of a process, in seconds (0 once it is gone). The fields
/// after the command name (in parentheses, maybe with spaces): utime is the
/// 14th field, stime the 15th.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (field(14) + field(15)) as f64 / ticks_per_second
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

// ---------------------------------------------------------------------------
// Randomness: SplitMix64, seeded from --seed, so a run can be repeated.

struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize
    }

    fn seconds_between(&mut self, (low, high): (f64, f64)) -> Duration {
        Duration::from_secs_f64(low + (high - low) * self.unit())
    }
}

// ---------------------------------------------------------------------------
// The fleet's people: supervisors and agents by team, and Connect's records
// of them.

fn team_group(team: usize) -> String {
    format!("g-team-{team}")
}

fn supervisor_id(dashboard: usize) -> String {
    format!("sup-{dashboard}")
}

fn agent_id(team: usize, agent: usize) -> String {
    format!("agent-{team}-{agent}")
}

/// Dashboard i belongs to team i % teams.
fn team_of(dashboard: usize, opts: &Options) -> usize {
    dashboard % opts.teams
}

fn epoch_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The directory's people: the site's hierarchy group with a group per team
/// under it; every supervisor in her team's group (DescribeUser), and the
/// agents in theirs (SearchUsers by group finds them, GetCurrentUserData
/// answers for them, DescribeContact names their groups).
fn add_people(connect: &ConnectStandIn, opts: &Options) {
    connect.set_region("us-east-1");
    connect.add_hierarchy_group(SITE_GROUP, None);
    for team in 0..opts.teams {
        connect.add_hierarchy_group(&team_group(team), Some(SITE_GROUP));
    }
    for d in 0..opts.dashboards {
        let id = supervisor_id(d);
        connect.add_user(json!({"Id": id, "Username": format!("{id}@bench.example"),
                                "HierarchyGroupId": team_group(team_of(d, opts)),
                                "SecurityProfileIds": ["sp-supervisor"]}));
    }
    for team in 0..opts.teams {
        for a in 0..opts.agents {
            let id = agent_id(team, a);
            connect.add_user(json!({"Id": id, "Username": format!("{id}@bench.example"),
                                    "HierarchyGroupId": team_group(team),
                                    "SecurityProfileIds": ["sp-agent"]}));
        }
    }
    connect.add_security_profile("sp-supervisor", &["BasicAgentAccess", "ManagerListenIn"]);
    connect.add_security_profile("sp-agent", &["BasicAgentAccess"]);
}

/// GetCurrentUserData's record of an inbound call an agent of `team` took
/// at `since` (epoch seconds).
fn agent_contact(id: &str, team: usize, since: f64) -> Value {
    let queue = format!("q-{team}");
    json!({
        "ContactId": id, "Channel": "VOICE", "InitiationMethod": "INBOUND",
        "AgentContactState": "CONNECTED", "StateStartTimestamp": since, "ConnectedToAgentTimestamp": since,
        "Queue": {"Id": queue, "Arn": format!("arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE}/queue/{queue}")},
    })
}

// ---------------------------------------------------------------------------
// Contacts: every agent is always on one; when it ends a new one (a new id)
// takes its place, in Connect first and then in the driver's record.

/// An agent's contact as the driver records it.
#[derive(Clone)]
struct LiveContact {
    id: String,
    /// When it was put in the directory: Connect's answers may name it from
    /// then on.
    since: Instant,
}

struct Contacts {
    /// The live contact of each agent, by team.
    live: Mutex<Vec<Vec<LiveContact>>>,
}

impl Contacts {
    fn of_team(&self, team: usize) -> Vec<LiveContact> {
        self.live.lock().expect("contacts lock")[team].clone()
    }
}

/// Starts every agent on a contact already under way, and returns the live
/// set and, per agent, when its contact ends.
fn first_contacts(connect: &ConnectStandIn, opts: &Options, rng: &mut Rng) -> (Arc<Contacts>, Vec<Vec<Instant>>) {
    let (now, epoch) = (Instant::now(), epoch_seconds());
    let mut live = vec![Vec::new(); opts.teams];
    let mut ends = vec![Vec::new(); opts.teams];
    for team in 0..opts.teams {
        for agent in 0..opts.agents {
            let id = format!("c-{team}-{agent}-0");
            // Calls under way at the start are part-way through.
            let (length, left) = (rng.seconds_between(CONTACT_SECONDS), rng.unit());
            let taken = epoch - length.as_secs_f64() * (1.0 - left);
            connect.add_agent_contact(&agent_id(team, agent), agent_contact(&id, team, taken));
            live[team].push(LiveContact { id, since: now });
            ends[team].push(now + length.mul_f64(left));
        }
    }
    (Arc::new(Contacts { live: Mutex::new(live) }), ends)
}

/// Replaces each contact that ended with the agent's next one, until `stop`;
/// returns how many new contacts appeared.
async fn churn(
    connect: Arc<ConnectStandIn>,
    contacts: Arc<Contacts>,
    mut ends: Vec<Vec<Instant>>,
    mut rng: Rng,
    stop: Instant,
) -> usize {
    let mut created = 0;
    while Instant::now() < stop {
        tokio::time::sleep(CHURN_TICK).await;
        let now = Instant::now();
        for (team, team_ends) in ends.iter_mut().enumerate() {
            for (agent, end) in team_ends.iter_mut().enumerate() {
                if *end > now {
                    continue;
                }
                created += 1;
                let ended = contacts.live.lock().expect("contacts lock")[team][agent].id.clone();
                connect.remove_agent_contact(&ended);
                let id = format!("c-{team}-{agent}-{created}");
                connect.add_agent_contact(&agent_id(team, agent), agent_contact(&id, team, epoch_seconds()));
                contacts.live.lock().expect("contacts lock")[team][agent] = LiveContact {
                    id,
                    since: Instant::now(),
                };
                *end = now + rng.seconds_between(CONTACT_SECONDS);
            }
        }
    }
    created
}

// ---------------------------------------------------------------------------
// Redis, for run B: a server of its own on a free loopback port.

struct Redis {
    port: u16,
    _proc: Proc,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fatal(format!("no free loopback port: {e}")))
}

/// One command in Redis's inline form; the reply as text (a status, an
/// integer or a bulk string).
fn redis_command(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head)?;
    let rest = head.get(1..).unwrap_or_default().trim_end().to_owned();
    match head.as_bytes().first() {
        Some(b'+' | b':') => Ok(rest),
        Some(b'$') => {
            let len: usize = rest.parse().map_err(std::io::Error::other)?;
            let mut body = vec![0; len + 2];
            reader.read_exact(&mut body)?;
            Ok(String::from_utf8_lossy(&body[..len]).into_owned())
        }
        _ => Err(std::io::Error::other(format!("redis answered {head:?}"))),
    }
}

fn start_redis(binary: &str, dir: &Path) -> Redis {
    // redis-server cannot bind port 0 and say which it got: a port the kernel
    // just handed out, tried again if another process took it meanwhile.
    for _attempt in 0..5 {
        let port = free_port();
        let log = dir.join(format!("redis-{port}.log"));
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("redis-server", command);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && proc.exited().is_none() {
            if redis_command(port, "PING").is_ok_and(|r| r == "PONG") {
                return Redis { port, _proc: proc };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if !text.contains("Address already in use") {
            fatal(format!("redis-server did not start: {}", text.trim()));
        }
    }
    fatal("redis-server did not start (ports taken?)")
}

/// The commands the server ran most, with their counts, from `INFO
/// commandstats` (`cmdstat_get:calls=12,usec=…`).
fn redis_top_commands(port: u16, n: usize) -> Vec<(String, u64)> {
    let info = redis_command(port, "INFO commandstats").unwrap_or_default();
    let mut commands: Vec<(String, u64)> = info
        .lines()
        .filter_map(|l| {
            let (name, stats) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect();
    commands.sort_by_key(|c| std::cmp::Reverse(c.1));
    commands.truncate(n);
    commands
}

/// A field of `INFO <section>`, e.g. `total_commands_processed`.
fn redis_info(port: u16, section: &str, field: &str) -> Option<u64> {
    let info = redis_command(port, &format!("INFO {section}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().parse().ok())
}

// ---------------------------------------------------------------------------
// The gateway replicas

struct Replica {
    api: String,
    audit: PathBuf,
    proc: Proc,
}

const POLICY: &str = "\
[[grant]]
name = \"team leads: their own agents' calls\"
claims = { groups = \"team-leads\" }
instances = [\"*\"]
capabilities = [\"SILENT_MONITOR\"]
as_user = \"self\"
agents = \"my_hierarchy\"
";

/// A replica's config: the same for every replica of a run but for its
/// audit file; `[shared]` only when a Redis port is given.
fn gateway_config(
    issuer: &IssuerStandIn,
    connect_url: &str,
    (ttl, live_ttl, share): (&str, &str, f64),
    audit: &Path,
    redis: Option<u16>,
) -> String {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
         [[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"bench\"]\nalgorithms = [\"EdDSA\"]\njwks_url = \"{}\"\n\n\
         [connect]\nregion = \"us-east-1\"\nendpoint = \"{connect_url}\"\n\n\
         [connect.lookups]\nttl = \"{ttl}\"\nlive_ttl = \"{live_ttl}\"\n\n\
         [connect.quotas]\nshare = {share}\n\n\
         [policy]\nfile = \"policy.toml\"\nuser_id_claim = \"connect_user_id\"\n\n\
         [audit]\nfile = \"{}\"\n",
        issuer.issuer(),
        issuer.jwks_url(),
        audit.display()
    );
    if let Some(port) = redis {
        config.push_str(&format!(
            "\n[shared]\nurl = \"redis://127.0.0.1:{port}/0\"\nkey_prefix = \"cmg:\"\n\
             command_timeout = \"100ms\"\nfallback_replicas = 4\n"
        ));
    }
    config
}

/// Starts one replica and waits for its "serving" log line, which names the
/// address it bound.
fn start_replica(binary: &str, dir: &Path, index: usize, config: &str) -> Replica {
    let config_path = dir.join(format!("gateway-{index}.toml"));
    std::fs::write(&config_path, config).unwrap_or_else(|e| fatal(format!("{}: {e}", config_path.display())));
    let mut command = Command::new(binary);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .env("RUST_LOG", "warn,connect_monitor_gateway::gateway=info")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("CMG_SHARED_KEY", SHARED_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut proc = Proc::spawn(binary, command);
    let stderr = proc.child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Read to the end, so the gateway never blocks on a full pipe; the
        // lines before it serves explain a failed start.
        let mut early = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("connect-monitor-gateway serving") {
                let _ = tx.send(Ok(line));
            } else if early.len() < 20 {
                early.push(line);
            }
        }
        let _ = tx.send(Err(early.join("\n")));
    });
    let serving = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(line)) => line,
        Ok(Err(log)) => fatal(format!("replica {index} exited before serving:\n{log}")),
        Err(_) => fatal(format!("replica {index} did not start within 30 s")),
    };
    let serving: Value = serde_json::from_str(&serving).unwrap_or_else(|e| fatal(format!("its log line: {e}")));
    let api = serving["fields"]["listen"]
        .as_str()
        .unwrap_or_else(|| fatal("its serving line names no listen address"))
        .to_owned();
    Replica {
        api,
        audit: dir.join(format!("audit-{index}.log")),
        proc,
    }
}

/// The request and `reason` of every audit line whose status was not a
/// decision.
fn refusal_reasons(replicas: &[Replica]) -> BTreeMap<String, u64> {
    let mut reasons = BTreeMap::new();
    for r in replicas {
        let text = std::fs::read_to_string(&r.audit).unwrap_or_default();
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let status = entry["status"].as_u64().unwrap_or(0);
            let request = match entry["listing"] == true {
                true => Request::Listing,
                false => Request::Check,
            };
            if !request.is_decision(status) {
                let reason = entry["reason"].as_str().unwrap_or("?");
                let key = format!("{} {status} {reason}", request.name());
                *reasons.entry(key).or_default() += 1;
            }
        }
    }
    reasons
}

// ---------------------------------------------------------------------------
// The dashboards

/// What a dashboard asks a replica.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Request {
    Check,
    Listing,
}

impl Request {
    fn name(self) -> &'static str {
        match self {
            Request::Check => "check",
            Request::Listing => "listing",
        }
    }

    /// A check is decided when allowed or refused; a listing when answered.
    fn is_decision(self, status: u64) -> bool {
        match self {
            Request::Check => status == 200 || status == 403,
            Request::Listing => status == 200,
        }
    }
}

/// The decision share is also given by window of this many seconds of the
/// run (by when a request was sent): cold caches show in the first ones.
const WINDOW_SECONDS: u64 = 10;

#[derive(Clone, Default)]
struct Answers {
    /// By request and status ("none" for no answer within ANSWER_TIMEOUT).
    by_status: BTreeMap<(Request, String), u64>,
    /// By window: (decisions, answers).
    by_window: BTreeMap<u64, (u64, u64)>,
    completeness: Completeness,
}

/// How completely the listings answered 200 named the contacts the driver
/// knew to be live, and old enough to be in any answer the gateway may use.
#[derive(Clone, Default)]
struct Completeness {
    listings: u64,
    /// Of them, those the gateway marked `complete: false`.
    marked_incomplete: u64,
    /// Of them, those that left out a contact expected.
    short: u64,
    /// Contacts expected, summed over the listings.
    expected: u64,
    /// Of them, those the listings named.
    named: u64,
    /// Of those not named, those that had ended by the time the answer
    /// came: a listing that waited (for a budget, say) may rightly leave
    /// them out, its answer being younger than the request.
    missed_ended_by_answer: u64,
    /// Contacts listed, summed over the listings.
    listed: u64,
    /// Of them, those the team no longer had live when the listing was sent
    /// (an answer up to `live_ttl` old names contacts ended since).
    listed_not_live: u64,
}

impl Completeness {
    fn share(&self) -> f64 {
        match self.expected {
            0 => 1.0,
            n => self.named as f64 / n as f64,
        }
    }
}

type Tally = Arc<Mutex<Answers>>;

fn record(tally: &Tally, request: Request, window: u64, status: Option<u16>) {
    let mut answers = tally.lock().expect("tally lock");
    let key = status.map_or("none".to_owned(), |s| s.to_string());
    *answers.by_status.entry((request, key)).or_default() += 1;
    let (decisions, all) = answers.by_window.entry(window).or_default();
    *decisions += u64::from(status.is_some_and(|s| request.is_decision(s.into())));
    *all += 1;
}

/// How dashboards poll: every `period`, until `stop`; each request on a
/// random replica unless `sticky`.
#[derive(Clone, Copy)]
struct Pace {
    period: Duration,
    sticky: bool,
    started: Instant,
    stop: Instant,
    /// How long a contact must have been live for a listing to name it.
    listed_after: Duration,
}

impl Pace {
    fn window(&self) -> u64 {
        self.started.elapsed().as_secs() / WINDOW_SECONDS
    }

    fn replica(&self, dashboard: usize, replicas: usize, rng: &mut Rng) -> usize {
        match self.sticky {
            true => dashboard % replicas,
            false => rng.below(replicas),
        }
    }
}

/// Moves `next` past now: a tick whose request is still out is skipped, as
/// a dashboard that polls would skip it.
fn next_tick(next: &mut Instant, every: Duration) {
    while *next <= Instant::now() {
        *next += every;
    }
}

struct Dashboard {
    index: usize,
    team: usize,
    token: Arc<String>,
}

/// What a dashboard needs to reach the fleet.
#[derive(Clone)]
struct Fleet {
    apis: Arc<Vec<String>>,
    client: HttpClient,
}

impl Fleet {
    /// One request; the status and body, or `None` when no answer came.
    async fn send(&self, request: http::Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
        let response = tokio::time::timeout(ANSWER_TIMEOUT, self.client.request(request))
            .await
            .ok()?
            .ok()?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Some((status, body))
    }

    /// One dry run: the status, or `None` when no answer came.
    async fn check(
        &self,
        replica: usize,
        token: &str,
        contact: &str,
        user: &str,
        capabilities: &[&str],
    ) -> Option<u16> {
        let body = json!({"InstanceId": INSTANCE, "ContactId": contact, "UserId": user,
                          "AllowedMonitorCapabilities": capabilities});
        let request = http::Request::post(format!("http://{}/contact/monitor/check", self.apis[replica]))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a well-formed request");
        self.send(request).await.map(|(status, _)| status)
    }

    /// One listing: the status and, answered 200, the body's `data`.
    async fn list(&self, replica: usize, token: &str) -> Option<(u16, Option<Value>)> {
        let request = http::Request::get(format!(
            "http://{}/contacts/monitorable?instance_id={INSTANCE}",
            self.apis[replica]
        ))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .expect("a well-formed request");
        let (status, body) = self.send(request).await?;
        let data = (status == 200)
            .then(|| serde_json::from_slice::<Value>(&body).ok())
            .flatten()
            .map(|mut answer| answer["data"].take());
        Some((status, data))
    }
}

/// Checks mode: every `period`, dry-runs every live contact of the team at
/// once, each on a replica of its own choosing. Starts at a random point of
/// its first period: dashboards do not poll in step.
async fn run_checking_dashboard(
    dashboard: Dashboard,
    fleet: Fleet,
    contacts: Arc<Contacts>,
    mut rng: Rng,
    pace: Pace,
    tally: Tally,
) {
    let user = Arc::new(supervisor_id(dashboard.index));
    let mut next = Instant::now() + pace.period.mul_f64(rng.unit());
    while next < pace.stop {
        tokio::time::sleep_until(next.into()).await;
        let window = pace.window();
        let mut checks = tokio::task::JoinSet::new();
        for contact in contacts.of_team(dashboard.team) {
            let replica = pace.replica(dashboard.index, fleet.apis.len(), &mut rng);
            let (fleet, token, user, tally) = (fleet.clone(), dashboard.token.clone(), user.clone(), tally.clone());
            checks.spawn(async move {
                let status = fleet
                    .check(replica, &token, &contact.id, &user, CHECKED_CAPABILITIES)
                    .await;
                record(&tally, Request::Check, window, status);
            });
        }
        while checks.join_next().await.is_some() {}
        next_tick(&mut next, pace.period);
    }
}

/// A contact of a dashboard's last listing, with the capabilities listed.
type Listed = (String, Vec<String>);

/// Listing mode: lists every `period` and, meanwhile, dry-runs one contact
/// of the last listing every LISTED_CHECK_EVERY.
async fn run_listing_dashboard(
    dashboard: Dashboard,
    fleet: Fleet,
    contacts: Arc<Contacts>,
    mut rng: Rng,
    pace: Pace,
    tally: Tally,
) {
    let last: Mutex<Vec<Listed>> = Mutex::new(Vec::new());
    let lists = list_periodically(&dashboard, &fleet, &contacts, Rng(rng.next_u64()), pace, &tally, &last);
    let checks = check_listed(&dashboard, &fleet, Rng(rng.next_u64()), pace, &tally, &last);
    tokio::join!(lists, checks);
}

/// Lists every `period`, from a random point of the first; each listing
/// answered 200 is held against the driver's record of the team's contacts
/// as it was when the listing was sent.
async fn list_periodically(
    dashboard: &Dashboard,
    fleet: &Fleet,
    contacts: &Contacts,
    mut rng: Rng,
    pace: Pace,
    tally: &Tally,
    last: &Mutex<Vec<Listed>>,
) {
    let mut next = Instant::now() + pace.period.mul_f64(rng.unit());
    while next < pace.stop {
        tokio::time::sleep_until(next.into()).await;
        let window = pace.window();
        let live = contacts.of_team(dashboard.team);
        let sent = Instant::now();
        let replica = pace.replica(dashboard.index, fleet.apis.len(), &mut rng);
        let answer = fleet.list(replica, &dashboard.token).await;
        let live_at_answer = contacts.of_team(dashboard.team);
        record(
            tally,
            Request::Listing,
            window,
            answer.as_ref().map(|(status, _)| *status),
        );
        if let Some((200, Some(data))) = answer {
            let listed = listed_contacts(&data);
            let mut answers = tally.lock().expect("tally lock");
            let c = &mut answers.completeness;
            c.listings += 1;
            c.marked_incomplete += u64::from(data["complete"] != true);
            let is_listed = |id: &str| listed.iter().any(|(l, _)| l == id);
            let expected: Vec<&LiveContact> = live
                .iter()
                .filter(|l| sent.saturating_duration_since(l.since) > pace.listed_after)
                .collect();
            let named = expected.iter().filter(|l| is_listed(&l.id)).count();
            let ended_since = expected
                .iter()
                .filter(|l| !is_listed(&l.id) && !live_at_answer.iter().any(|a| a.id == l.id))
                .count();
            c.missed_ended_by_answer += ended_since as u64;
            c.expected += expected.len() as u64;
            c.named += named as u64;
            c.short += u64::from(named < expected.len());
            c.listed += listed.len() as u64;
            c.listed_not_live += listed
                .iter()
                .filter(|(id, _)| !live.iter().any(|l| &l.id == id))
                .count() as u64;
            drop(answers);
            *last.lock().expect("listed lock") = listed;
        }
        next_tick(&mut next, pace.period);
    }
}

/// A listing's contacts and their capabilities, as listed.
fn listed_contacts(data: &Value) -> Vec<Listed> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    data["contacts"]
        .as_array()
        .map(|contacts| {
            contacts
                .iter()
                .filter_map(|c| Some((c["contact_id"].as_str()?.to_owned(), strings(&c["capabilities"]))))
                .collect()
        })
        .unwrap_or_default()
}

/// Every LISTED_CHECK_EVERY, from a random point of the first, dry-runs a
/// contact of the last listing picked at random, with the capabilities
/// listed for it; nothing while there is no listing yet.
async fn check_listed(
    dashboard: &Dashboard,
    fleet: &Fleet,
    mut rng: Rng,
    pace: Pace,
    tally: &Tally,
    last: &Mutex<Vec<Listed>>,
) {
    let user = supervisor_id(dashboard.index);
    let mut next = Instant::now() + LISTED_CHECK_EVERY.mul_f64(rng.unit());
    while next < pace.stop {
        tokio::time::sleep_until(next.into()).await;
        let picked = {
            let last = last.lock().expect("listed lock");
            (!last.is_empty()).then(|| last[rng.below(last.len())].clone())
        };
        if let Some((contact, capabilities)) = picked {
            let window = pace.window();
            let replica = pace.replica(dashboard.index, fleet.apis.len(), &mut rng);
            let capabilities: Vec<&str> = capabilities.iter().map(String::as_str).collect();
            let status = fleet
                .check(replica, &dashboard.token, &contact, &user, &capabilities)
                .await;
            record(tally, Request::Check, window, status);
        }
        next_tick(&mut next, LISTED_CHECK_EVERY);
    }
}

/// A token for each dashboard's supervisor.
fn mint_tokens(key: &SigningKey, issuer: &IssuerStandIn, opts: &Options) -> Vec<Arc<String>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let lifetime = 3600 + 4 * opts.seconds as u64;
    (0..opts.dashboards)
        .map(|d| {
            Arc::new(key.mint(&json!({
                "iss": issuer.issuer(), "aud": "bench", "sub": format!("dashboard-{d}"),
                "iat": now, "exp": now + lifetime,
                "groups": ["team-leads"], "connect_user_id": supervisor_id(d),
            })))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A run

struct RunResult {
    label: &'static str,
    mode: Mode,
    seconds: f64,
    /// How long a contact had to be live for a listing to be expected to
    /// name it.
    listed_after: Duration,
    answers: Answers,
    /// Per operation: calls Connect got, and how many of them it throttled.
    calls: Vec<(&'static str, usize, usize)>,
    throttled_total: usize,
    bad_signatures: Vec<String>,
    refusals: BTreeMap<String, u64>,
    contacts_created: usize,
    replica_cpu: f64,
    redis_commands: Option<u64>,
    redis_keys: Option<u64>,
    redis_top: Vec<(String, u64)>,
}

impl RunResult {
    fn answered(&self) -> u64 {
        self.answers.by_status.values().sum()
    }

    fn decisions(&self) -> u64 {
        self.answers
            .by_status
            .iter()
            .filter(|((request, status), _)| status.parse().is_ok_and(|s| request.is_decision(s)))
            .map(|(_, n)| n)
            .sum()
    }

    /// Answers to one kind of request, by status.
    fn answers_to(&self, request: Request) -> BTreeMap<&str, u64> {
        self.answers
            .by_status
            .iter()
            .filter(|((r, _), _)| *r == request)
            .map(|((_, status), n)| (status.as_str(), *n))
            .collect()
    }

    fn decision_share(&self) -> f64 {
        self.decisions() as f64 / self.answered().max(1) as f64
    }

    fn connect_calls(&self) -> usize {
        self.calls.iter().map(|(_, n, _)| n).sum()
    }

    fn calls_per_1000_decisions(&self) -> f64 {
        self.connect_calls() as f64 * 1000.0 / self.decisions().max(1) as f64
    }
}

/// What every run shares: the issuer, the tokens, the client, the options.
struct Bench {
    opts: Options,
    issuer: IssuerStandIn,
    tokens: Vec<Arc<String>>,
    client: HttpClient,
    dir: PathBuf,
    ticks_per_second: f64,
}

async fn start_connect() -> Arc<ConnectStandIn> {
    let creds = Credentials::new(KEY_ID, SECRET, Some(TOKEN.into()), None, "bench");
    let connect = ConnectStandIn::start(creds)
        .await
        .unwrap_or_else(|e| fatal(format!("the Connect stand-in: {e}")));
    connect.connect_default_quotas();
    Arc::new(connect)
}

/// Drives the dashboards as `mode` says until `stop`; returns their answers.
async fn drive(
    bench: &Bench,
    mode: Mode,
    apis: Arc<Vec<String>>,
    contacts: &Arc<Contacts>,
    rng: &mut Rng,
    (started, stop): (Instant, Instant),
) -> Answers {
    let opts = &bench.opts;
    let tally: Tally = Arc::default();
    let pace = Pace {
        period: Duration::from_secs_f64(opts.period),
        sticky: opts.sticky,
        started,
        stop,
        listed_after: opts.listed_after(),
    };
    let fleet = Fleet {
        apis,
        client: bench.client.clone(),
    };
    let mut dashboards = tokio::task::JoinSet::new();
    for (index, token) in bench.tokens.iter().enumerate() {
        let dashboard = Dashboard {
            index,
            team: team_of(index, opts),
            token: token.clone(),
        };
        let (fleet, contacts, rng, tally) = (fleet.clone(), contacts.clone(), Rng(rng.next_u64()), tally.clone());
        match mode {
            Mode::Listing => dashboards.spawn(run_listing_dashboard(dashboard, fleet, contacts, rng, pace, tally)),
            _ => dashboards.spawn(run_checking_dashboard(dashboard, fleet, contacts, rng, pace, tally)),
        };
    }
    while dashboards.join_next().await.is_some() {}
    let answers = tally.lock().expect("tally lock").clone();
    answers
}

/// One run: a fresh Connect stand-in (fresh quotas and counts), Redis when
/// `shared`, the replicas, then the contacts' churn and the dashboards (as
/// `mode` says, checks or listing) for `--seconds`; the figures once every
/// request has its answer.
async fn run(bench: &Bench, mode: Mode, label: &'static str, shared: bool, seed: u64) -> RunResult {
    let opts = &bench.opts;
    let mut rng = Rng(seed);
    let dir = bench
        .dir
        .join(format!("{}-{}", mode.name(), if shared { "shared" } else { "local" }));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fatal(format!("{}: {e}", dir.display())));
    std::fs::write(dir.join("policy.toml"), POLICY).unwrap_or_else(|e| fatal(e));

    // Phase 1: Connect, with its records and quotas; Redis for a shared run.
    let connect = start_connect().await;
    add_people(&connect, opts);
    let redis = shared.then(|| start_redis(&opts.redis_server, &dir));

    // Phase 2: the replicas.
    let replicas: Vec<Replica> = (0..opts.replicas)
        .map(|i| {
            let audit = dir.join(format!("audit-{i}.log"));
            let config = gateway_config(
                &bench.issuer,
                &connect.url(),
                (&opts.ttl, &opts.live_ttl, opts.share),
                &audit,
                redis.as_ref().map(|r| r.port),
            );
            start_replica(&opts.binary, &dir, i, &config)
        })
        .collect();
    let apis = Arc::new(replicas.iter().map(|r| r.api.clone()).collect::<Vec<_>>());
    let cpu_at_start: f64 = replicas
        .iter()
        .map(|r| cpu_seconds(r.proc.pid(), bench.ticks_per_second))
        .sum();

    // Phase 3: the traffic. Contacts churn while the dashboards poll.
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(opts.seconds);
    let (contacts, ends) = first_contacts(&connect, opts, &mut rng);
    let churning = tokio::spawn(churn(
        connect.clone(),
        contacts.clone(),
        ends,
        Rng(rng.next_u64()),
        stop,
    ));
    let answers = drive(bench, mode, apis, &contacts, &mut rng, (started, stop)).await;
    let contacts_created = churning.await.unwrap_or(0);
    let seconds = started.elapsed().as_secs_f64();

    // Phase 4: the figures, then everything stops (dropped).
    let replica_cpu = replicas
        .iter()
        .map(|r| cpu_seconds(r.proc.pid(), bench.ticks_per_second))
        .sum::<f64>()
        - cpu_at_start;
    let calls = OPERATIONS
        .iter()
        .map(|&op| (op, connect.calls(op), connect.throttled(op)))
        .collect();
    RunResult {
        label,
        mode,
        seconds,
        listed_after: opts.listed_after(),
        answers,
        calls,
        throttled_total: connect.throttled_total(),
        bad_signatures: connect.bad_signatures(),
        refusals: refusal_reasons(&replicas),
        contacts_created,
        replica_cpu,
        redis_commands: redis
            .as_ref()
            .and_then(|r| redis_info(r.port, "stats", "total_commands_processed")),
        redis_keys: redis
            .as_ref()
            .and_then(|r| redis_command(r.port, "DBSIZE").ok()?.parse().ok()),
        redis_top: redis.as_ref().map_or(Vec::new(), |r| redis_top_commands(r.port, 5)),
    }
}

// ---------------------------------------------------------------------------
// The report

/// `0-10 s`: the part of the run a window covers.
fn window_name(window: u64) -> String {
    format!("{}-{} s", window * WINDOW_SECONDS, (window + 1) * WINDOW_SECONDS)
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

/// The requests a mode sends, in the order printed.
fn requests_of(mode: Mode) -> &'static [Request] {
    match mode {
        Mode::Listing => &[Request::Listing, Request::Check],
        _ => &[Request::Check],
    }
}

fn answers_text(answers: &BTreeMap<&str, u64>) -> String {
    let parts: Vec<String> = answers.iter().map(|(status, n)| format!("{status}: {n}")).collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// What counts as a decision in a mode, for the headings.
fn decided_as(mode: Mode) -> &'static str {
    match mode {
        Mode::Listing => "listings 200, checks 200/403",
        _ => "200/403",
    }
}

fn print_run(r: &RunResult) {
    println!("run {}, {} ({:.1} s)", r.mode.name(), r.label, r.seconds);
    for &request in requests_of(r.mode) {
        let answers = r.answers_to(request);
        let heading = format!("{}s answered", request.name());
        println!(
            "  {heading:<20} {}  ({})",
            answers.values().sum::<u64>(),
            answers_text(&answers)
        );
    }
    println!(
        "  decisions ({})  {} of {} = {}",
        decided_as(r.mode),
        r.decisions(),
        r.answered(),
        percent(r.decision_share())
    );
    let windows: Vec<String> = r
        .answers
        .by_window
        .iter()
        .map(|(w, &(decisions, all))| format!("{} {decisions}/{all}", window_name(*w)))
        .collect();
    println!("  decisions by when sent: {}", windows.join(", "));
    println!(
        "  Connect calls        {:<32} {:>8} {:>8} {:>10}",
        "operation", "calls", "calls/s", "throttled"
    );
    for (op, calls, throttled) in &r.calls {
        println!(
            "                       {:<32} {:>8} {:>8.2} {:>10}",
            op,
            calls,
            *calls as f64 / r.seconds,
            throttled
        );
    }
    println!(
        "                       {:<32} {:>8} {:>8.2} {:>10}",
        "all",
        r.connect_calls(),
        r.connect_calls() as f64 / r.seconds,
        r.throttled_total
    );
    println!(
        "  Connect calls per 1,000 decisions  {:.1}",
        r.calls_per_1000_decisions()
    );
    if r.refusals.is_empty() {
        println!("  non-decisions by audit status and reason: none");
    } else {
        let parts: Vec<String> = r.refusals.iter().map(|(k, n)| format!("{k}: {n}")).collect();
        println!("  non-decisions by audit status and reason: {}", parts.join(", "));
    }
    if r.mode == Mode::Listing {
        let c = &r.answers.completeness;
        println!(
            "  listing completeness {} of {} contacts live over {} s = {} ({} of {} listings short; {} marked incomplete)",
            c.named,
            c.expected,
            r.listed_after.as_secs_f64(),
            percent(c.share()),
            c.short,
            c.listings,
            c.marked_incomplete
        );
        println!(
            "  missed contacts      {}, of which {} had ended by the time the answer came",
            c.expected - c.named,
            c.missed_ended_by_answer
        );
        println!(
            "  listed contacts      {} in all; {} no longer live when the listing was sent",
            c.listed, c.listed_not_live
        );
    }
    println!(
        "  new contacts {}; replicas' CPU {:.2} s; bad signatures {}",
        r.contacts_created,
        r.replica_cpu,
        r.bad_signatures.len()
    );
    if let (Some(commands), Some(keys)) = (r.redis_commands, r.redis_keys) {
        let top: Vec<String> = r.redis_top.iter().map(|(c, n)| format!("{c} {n}")).collect();
        println!(
            "  Redis: {commands} commands ({:.0}/s; most: {}), {keys} keys at the end",
            commands as f64 / r.seconds,
            top.join(", ")
        );
    }
    println!();
}

fn print_side_by_side(a: &RunResult, b: &RunResult) {
    let row = |name: &str, x: String, y: String| println!("{name:<38} {x:>18} {y:>18}");
    row(
        &format!("mode {}", a.mode.name()),
        a.label.to_owned(),
        b.label.to_owned(),
    );
    for &request in requests_of(a.mode) {
        let (x, y) = (a.answers_to(request), b.answers_to(request));
        let total = |answers: &BTreeMap<&str, u64>| answers.values().sum::<u64>().to_string();
        row(&format!("{}s answered", request.name()), total(&x), total(&y));
        let statuses: std::collections::BTreeSet<&&str> = x.keys().chain(y.keys()).collect();
        for status in statuses {
            let n = |answers: &BTreeMap<&str, u64>| answers.get(*status).copied().unwrap_or(0).to_string();
            row(&format!("  answered {status}"), n(&x), n(&y));
        }
    }
    row(
        &format!("decisions ({})", decided_as(a.mode)),
        percent(a.decision_share()),
        percent(b.decision_share()),
    );
    let windows: std::collections::BTreeSet<&u64> =
        a.answers.by_window.keys().chain(b.answers.by_window.keys()).collect();
    for window in windows {
        let share = |r: &RunResult| {
            let (decisions, all) = r.answers.by_window.get(window).copied().unwrap_or((0, 0));
            percent(decisions as f64 / all.max(1) as f64)
        };
        row(
            &format!("  of those sent at {}", window_name(*window)),
            share(a),
            share(b),
        );
    }
    for (i, (op, _, _)) in a.calls.iter().enumerate() {
        let rate = |r: &RunResult| format!("{:.2}", r.calls[i].1 as f64 / r.seconds);
        row(&format!("Connect {op}/s"), rate(a), rate(b));
    }
    row(
        "Connect calls throttled",
        a.throttled_total.to_string(),
        b.throttled_total.to_string(),
    );
    row(
        "Connect calls per 1,000 decisions",
        format!("{:.1}", a.calls_per_1000_decisions()),
        format!("{:.1}", b.calls_per_1000_decisions()),
    );
    if a.mode == Mode::Listing {
        row(
            "listing completeness",
            percent(a.answers.completeness.share()),
            percent(b.answers.completeness.share()),
        );
    }
    row(
        "replicas' CPU s",
        format!("{:.2}", a.replica_cpu),
        format!("{:.2}", b.replica_cpu),
    );
    // The runs answer different numbers of checks: CPU per answer compares them.
    let per_1000 = |r: &RunResult| format!("{:.3}", r.replica_cpu * 1000.0 / r.answered().max(1) as f64);
    row("replicas' CPU s per 1,000 answers", per_1000(a), per_1000(b));
}

/// On SIGINT or SIGTERM: the children stopped, the work dir removed, exit 130.
fn watch_signals(dir: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        kill_all();
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(130);
    });
}

#[tokio::main]
async fn main() {
    let opts = Options::parse();
    if let Some(path) = &opts.pid_file {
        let _ = PID_FILE.set(path.clone());
    }
    let pem = std::fs::read("tests/fixtures/ed25519.pem").unwrap_or_else(|e| {
        fatal(format!(
            "tests/fixtures/ed25519.pem: {e} (run from the repository root)"
        ))
    });
    let key = SigningKey::from_pem(&pem, Algorithm::EdDSA, "fleet-1").unwrap_or_else(|e| fatal(e));
    let issuer = IssuerStandIn::start(jwks_of(&[&key]))
        .await
        .unwrap_or_else(|e| fatal(format!("the issuer stand-in: {e}")));
    let dir = std::env::temp_dir().join(format!("cmg-fleet-bench-{}", std::process::id()));
    watch_signals(dir.clone());
    let bench = Bench {
        tokens: mint_tokens(&key, &issuer, &opts),
        issuer,
        client: connect_monitor_gateway::test_util::http_client(),
        dir,
        ticks_per_second: clock_ticks(),
        opts,
    };
    let o = &bench.opts;
    let traffic = match o.mode {
        Mode::Checks => format!("each checking every live contact of its team every {} s", o.period),
        Mode::Listing => format!(
            "each listing every {} s and checking one listed contact every {} s",
            o.period,
            LISTED_CHECK_EVERY.as_secs_f64()
        ),
        Mode::Both => format!(
            "each checking every live contact of its team every {} s (checks), then listing every {} s \
             and checking one listed contact every {} s (listing)",
            o.period,
            o.period,
            LISTED_CHECK_EVERY.as_secs_f64()
        ),
    };
    println!(
        "fleet bench: {} replicas; {} dashboards in {} teams of {} agents, {traffic}, on {}; contacts last \
         20-60 s; lookups cached {}, live contacts {}; {} s per run; seed {}",
        o.replicas,
        o.dashboards,
        o.teams,
        o.agents,
        if o.sticky {
            "one replica each"
        } else {
            "a random replica"
        },
        o.ttl,
        o.live_ttl,
        o.seconds,
        o.seed
    );
    println!(
        "Connect stand-in: default quotas, account-wide (DescribeContact 10/s burst 15, the others, \
         GetCurrentUserData too, 2/s burst 5)"
    );
    println!("the gateways' budgets: [connect.quotas] share = {} of those", o.share);
    println!();

    let modes: &[Mode] = match o.mode {
        Mode::Both => &[Mode::Checks, Mode::Listing],
        Mode::Checks => &[Mode::Checks],
        Mode::Listing => &[Mode::Listing],
    };
    let mut results = Vec::new();
    for &mode in modes {
        // The same seed for every run: the same contacts, the same traffic.
        let local = run(&bench, mode, "without [shared]", false, o.seed).await;
        print_run(&local);
        let shared = run(&bench, mode, "with [shared]", true, o.seed).await;
        print_run(&shared);
        print_side_by_side(&local, &shared);
        println!();
        results.push((local, shared));
    }
    let _ = std::fs::remove_dir_all(&bench.dir);
    if let [(checks_a, checks_b), (listing_a, listing_b)] = results.as_slice() {
        let compared = |listing: &RunResult, checks: &RunResult| {
            let (l, c) = (listing.calls_per_1000_decisions(), checks.calls_per_1000_decisions());
            format!("{l:.1} against {c:.1} ({:.2}x)", l / c.max(f64::MIN_POSITIVE))
        };
        println!(
            "Connect calls per 1,000 decisions, listing against checks: without [shared] {}; with [shared] {}",
            compared(listing_a, checks_a),
            compared(listing_b, checks_b)
        );
    }

    let bad: Vec<&String> = results
        .iter()
        .flat_map(|(a, b)| a.bad_signatures.iter().chain(&b.bad_signatures))
        .collect();
    if !bad.is_empty() {
        println!();
        println!(
            "fleet bench: the Connect stand-in refused {} signature(s), e.g. {}",
            bad.len(),
            bad[0]
        );
        std::process::exit(1);
    }
}
