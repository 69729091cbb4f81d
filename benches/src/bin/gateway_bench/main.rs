//! Benchmark driver (not a test): the gateway's cost per request against its
//! own stack's limit, in one run. Run it with `benches/gateway.sh`, which
//! installs wrk and nginx when missing, builds the gateway with the `dist`
//! profile (what ships) and this package's binaries, and starts this driver.
//!
//! Configurations, measured in alternating short rounds (the order rotates
//! every round, so the machine's noise is spread over all of them):
//!
//! | tag | what | expected |
//! |---|---|---|
//! | a  | the upstream alone: nginx answering MonitorContact's 200 JSON | 200 |
//! | b  | a bare pass-through (`benches/src/bin/bench_passthrough.rs`: hyper 1 server, hyper-util pooled client, tokio) in front of it | 200 |
//! | c  | the gateway, one RS256 token reused | 200 |
//! | d  | the gateway, a fresh RS256 token per request (pre-minted, never reused) | 200 |
//! | e1 | the gateway, a forged token (the issuer's `kid`, another RSA key) | 401 |
//! | e2 | the gateway, a valid token the policy denies (`user_not_allowed`) | 403 |
//! | f  | the gateway, a Connect-aware grant (`agents = "my_hierarchy"`, `connect_permissions = true`), caches warm | 200 |
//! | c0, d0, f0 | with `--baseline PATH`: another gateway binary (an older build), as c, d and f, same config file | 200 |
//!
//! Each round runs every configuration twice: at saturation (wrk, 32
//! connections, a Lua script choosing each request's token) and at a fixed
//! ~1000 requests/s, paced by this driver on an open-loop schedule (wrk
//! cannot hold a rate; latency is measured from each request's scheduled
//! send time, so a stall delays and counts every request behind it). The
//! server under test's CPU is utime + stime from `/proc/<pid>/stat`; its
//! memory is RssAnon (its own heap, stacks and written data) and RssFile
//! (pages of the binary and libraries mapped in) from `/proc/<pid>/status`,
//! idle, sampled every 100 ms during the rounds, and at the end. With a
//! baseline, c0 runs beside c (and d0 beside d, f0 beside f), which goes
//! first alternating by round, and an "against the baseline" block gives the
//! ratios new/baseline.
//!
//! Why nginx upstream: it is a separate C process answering from static
//! `return 200` locations, about a tenth of the CPU per request of a hyper
//! stand-in, with no tokio scheduler of its own to add noise; the less of
//! the two cores the upstream takes, the more the figures are the server's
//! under test. It routes by path, so the Connect-aware grant's lookups
//! (DescribeContact, DescribeUser, ListSecurityProfilePermissions) are
//! answered as Connect would. It does not check SigV4 signatures (the test
//! suite's stand-in does).
//!
//! Why wrk at saturation: it is cheaper per request than anything we could
//! write in the same time; a fresh token per request is a Lua `request()`
//! that returns one of the requests pre-formatted at `init` from a token
//! file (split among wrk's threads, so no token goes out twice), so the
//! per-request cost is a table lookup, and every configuration goes through
//! the same script.
//!
//! Options: `--rounds N` `--seconds S` (saturation, whole seconds: wrk's
//! unit) `--paced-seconds S` `--rate R` `--connections N` `--threads N`
//! `--quick` `--baseline PATH` `--profile CONFIG` `--profile-seconds S`
//! `--profiler perf|callgrind` `--binary PATH` `--passthrough PATH`
//! `--nginx PATH` `--wrk PATH` `--pid-file PATH` (every child's pid, for the
//! script's trap) `--keep` (the work dir stays) `--shared URL` (the gateway
//! under test, not the baseline, keeps its budgets and facts on that Redis:
//! `[shared] url`) `--otlp-endpoint URL` (the gateway under test, not the
//! baseline, exports a span per request there: `[telemetry] otlp_endpoint`;
//! a port nobody listens on measures a collector that is down).
//! Exit status: 0 whatever the figures; 1 when a request got an unexpected
//! status (named in the output); 2 when the benchmark could not run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};

const ISSUER: &str = "https://issuer.bench.example";
const AUDIENCE: &str = "connect-monitor-gateway";
const KID: &str = "rsa-1";
const INSTANCE: &str = "bench-instance";
const ACCESS_KEY: &str = "AKIABENCHGATEWAY0001";
const SECRET_KEY: &str = "gateway-bench-secret-key";
const SESSION_TOKEN: &str = "gateway-bench-session-token";

// ---------------------------------------------------------------------------
// Configurations

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Upstream,
    PassThrough,
    Gateway,
    /// The `--baseline` binary: another build of the gateway, same config.
    Baseline,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Token {
    Supervisor,
    Fresh,
    Forged,
    Lead,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BodyKind {
    Supervisor,
    Deny,
    Lead,
}

#[derive(Clone, Copy, Debug)]
struct Config {
    key: &'static str,
    tag: &'static str,
    label: &'static str,
    server: Server,
    token: Token,
    body: BodyKind,
    status: u16,
    /// The gateway's `cmg_requests_total` code every request must get.
    code: Option<&'static str>,
}

const CONFIGS: [Config; 10] = [
    Config {
        key: "upstream",
        tag: "a",
        label: "upstream alone (nginx)",
        server: Server::Upstream,
        token: Token::Supervisor,
        body: BodyKind::Supervisor,
        status: 200,
        code: None,
    },
    Config {
        key: "passthrough",
        tag: "b",
        label: "bare pass-through",
        server: Server::PassThrough,
        token: Token::Supervisor,
        body: BodyKind::Supervisor,
        status: 200,
        code: None,
    },
    Config {
        key: "one-token",
        tag: "c",
        label: "gateway, one token",
        server: Server::Gateway,
        token: Token::Supervisor,
        body: BodyKind::Supervisor,
        status: 200,
        code: Some("OK"),
    },
    Config {
        key: "fresh-token",
        tag: "d",
        label: "gateway, fresh token",
        server: Server::Gateway,
        token: Token::Fresh,
        body: BodyKind::Supervisor,
        status: 200,
        code: Some("OK"),
    },
    Config {
        key: "forged",
        tag: "e1",
        label: "gateway, forged -> 401",
        server: Server::Gateway,
        token: Token::Forged,
        body: BodyKind::Supervisor,
        status: 401,
        code: Some("UNAUTHENTICATED"),
    },
    Config {
        key: "deny",
        tag: "e2",
        label: "gateway, deny -> 403",
        server: Server::Gateway,
        token: Token::Supervisor,
        body: BodyKind::Deny,
        status: 403,
        code: Some("FORBIDDEN"),
    },
    Config {
        key: "connect-aware",
        tag: "f",
        label: "gateway, Connect-aware",
        server: Server::Gateway,
        token: Token::Lead,
        body: BodyKind::Lead,
        status: 200,
        code: Some("OK"),
    },
    // With `--baseline` only: the other binary as (c), (d) and (f).
    Config {
        key: "baseline-one-token",
        tag: "c0",
        label: "baseline, one token",
        server: Server::Baseline,
        token: Token::Supervisor,
        body: BodyKind::Supervisor,
        status: 200,
        code: Some("OK"),
    },
    Config {
        key: "baseline-fresh-token",
        tag: "d0",
        label: "baseline, fresh token",
        server: Server::Baseline,
        token: Token::Fresh,
        body: BodyKind::Supervisor,
        status: 200,
        code: Some("OK"),
    },
    Config {
        key: "baseline-connect-aware",
        tag: "f0",
        label: "baseline, Connect-aware",
        server: Server::Baseline,
        token: Token::Lead,
        body: BodyKind::Lead,
        status: 200,
        code: Some("OK"),
    },
];

const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E1: usize = 4;
const F: usize = 6;
/// The configurations measured without `--baseline`.
const WITHOUT_BASELINE: usize = 7;
const C0: usize = 7;
const D0: usize = 8;
const F0: usize = 9;
/// Each gateway configuration and its baseline counterpart.
const PAIRS: [(usize, usize); 3] = [(C, C0), (D, D0), (F, F0)];

impl Config {
    fn is_gateway(&self) -> bool {
        matches!(self.server, Server::Gateway | Server::Baseline)
    }
}

fn find_config(name: &str) -> Option<usize> {
    let name = name.to_ascii_lowercase();
    let name = match name.as_str() {
        "e" => "e1",
        other => other,
    };
    CONFIGS[..WITHOUT_BASELINE]
        .iter()
        .position(|c| c.key == name || c.tag == name)
}

fn body_of(kind: BodyKind) -> String {
    let user = match kind {
        BodyKind::Supervisor => "sup-1",
        BodyKind::Deny => "sup-2",
        BodyKind::Lead => "lead-1",
    };
    json!({"InstanceId": INSTANCE, "ContactId": "contact-1", "UserId": user,
           "AllowedMonitorCapabilities": ["SILENT_MONITOR"]})
    .to_string()
}

const POLICY: &str = r#"# Written by benches/src/bin/gateway_bench/main.rs
[[grant]]
name = "bench supervisors"
claims = { groups = "supervisors" }
instances = ["*"]
capabilities = ["SILENT_MONITOR", "BARGE"]
as_user = "self"

[[grant]]
name = "bench team leads"
claims = { groups = "team-leads" }
instances = ["*"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"
connect_permissions = true
agents = "my_hierarchy"
"#;

// ---------------------------------------------------------------------------
// Options

struct Options {
    rounds: usize,
    seconds: u64,
    paced_seconds: f64,
    warmup_seconds: u64,
    ready_starts: usize,
    rate: f64,
    connections: usize,
    threads: usize,
    paced_connections: usize,
    profile: Option<usize>,
    profile_seconds: u64,
    profiler: Option<String>,
    profile_out: PathBuf,
    binary: PathBuf,
    /// `--baseline PATH`: another gateway binary, measured as (c0), (d0), (f0).
    baseline: Option<PathBuf>,
    /// `--shared URL`: the gateway under test uses this Redis (`[shared]`).
    shared: Option<String>,
    /// `--otlp-endpoint URL`: the gateway under test exports traces there.
    otlp_endpoint: Option<String>,
    passthrough: PathBuf,
    nginx: String,
    wrk: String,
    pid_file: Option<PathBuf>,
    keep: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: gateway_bench [--rounds N] [--seconds S] [--quick] [--paced-seconds S] [--rate R]\n\
         \x20                    [--connections N] [--threads N] [--baseline PATH]\n\
         \x20                    [--profile CONFIG] [--profile-seconds S] [--profiler perf|callgrind]\n\
         \x20                    [--binary PATH] [--passthrough PATH] [--nginx PATH] [--wrk PATH]\n\
         \x20                    [--pid-file PATH] [--keep] [--shared redis://HOST:PORT/DB]\n\
         \x20                    [--otlp-endpoint http://HOST:PORT]\n\
         CONFIG: {}",
        CONFIGS[..WITHOUT_BASELINE]
            .iter()
            .map(|c| format!("{} ({})", c.key, c.tag))
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::process::exit(2)
}

fn parse_options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut o = Options {
        rounds: if quick { 2 } else { 5 },
        seconds: if quick { 2 } else { 5 },
        paced_seconds: if quick { 2.0 } else { 5.0 },
        warmup_seconds: 1,
        ready_starts: if quick { 3 } else { 7 },
        rate: 1000.0,
        connections: 32,
        threads: 2,
        paced_connections: 16,
        profile: None,
        profile_seconds: 10,
        profiler: None,
        profile_out: PathBuf::from("target/bench-profile"),
        binary: PathBuf::from("target/dist/connect-monitor-gateway"),
        baseline: None,
        shared: None,
        otlp_endpoint: None,
        passthrough: PathBuf::from("target/dist/bench_passthrough"),
        nginx: "nginx".into(),
        wrk: "wrk".into(),
        pid_file: None,
        keep: false,
    };
    let mut paced_given = false;
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || -> String {
            i += 1;
            args.get(i).cloned().unwrap_or_else(|| {
                eprintln!("{flag} needs a value");
                usage()
            })
        };
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> T {
            v.parse().unwrap_or_else(|_| {
                eprintln!("{flag}: cannot read {v:?}");
                usage()
            })
        }
        match flag {
            "--quick" | "--keep" => {
                if flag == "--keep" {
                    o.keep = true;
                }
            }
            "--rounds" => o.rounds = num::<usize>(flag, value()).max(1),
            "--seconds" => o.seconds = num::<u64>(flag, value()).max(1),
            "--paced-seconds" => {
                o.paced_seconds = num::<f64>(flag, value()).max(0.5);
                paced_given = true;
            }
            "--rate" => o.rate = num::<f64>(flag, value()).max(1.0),
            "--connections" => o.connections = num::<usize>(flag, value()).max(1),
            "--threads" => o.threads = num::<usize>(flag, value()).max(1),
            "--ready-starts" => o.ready_starts = num::<usize>(flag, value()).max(1),
            "--profile" => {
                let v = value();
                o.profile = Some(find_config(&v).unwrap_or_else(|| {
                    eprintln!("--profile: no configuration {v:?}");
                    usage()
                }))
            }
            "--profile-seconds" => o.profile_seconds = num::<u64>(flag, value()).max(1),
            "--profiler" => o.profiler = Some(value()),
            "--profile-out" => o.profile_out = PathBuf::from(value()),
            "--binary" => o.binary = PathBuf::from(value()),
            "--baseline" => o.baseline = Some(PathBuf::from(value())),
            "--shared" => o.shared = Some(value()),
            "--otlp-endpoint" => o.otlp_endpoint = Some(value()),
            "--passthrough" => o.passthrough = PathBuf::from(value()),
            "--nginx" => o.nginx = value(),
            "--wrk" => o.wrk = value(),
            "--pid-file" => o.pid_file = Some(PathBuf::from(value())),
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown option {other:?}");
                usage()
            }
        }
        i += 1;
    }
    if !paced_given && args.iter().any(|a| a == "--seconds") {
        o.paced_seconds = o.seconds as f64;
    }
    if o.profile.is_some() && o.baseline.is_some() {
        eprintln!("--baseline measures side by side; --profile records one configuration: give one of them");
        usage()
    }
    o
}

// ---------------------------------------------------------------------------
// Processes: every child is registered (and listed in the pid file) until it
// is reaped, so a signal or a fatal error can stop them all, by pid.

static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static PID_FILE: OnceLock<PathBuf> = OnceLock::new();
static WORK_DIR: OnceLock<(PathBuf, bool)> = OnceLock::new();

fn write_pid_file(pids: &[u32]) {
    if let Some(path) = PID_FILE.get() {
        let text: String = pids.iter().map(|p| format!("{p}\n")).collect();
        let _ = fs::write(path, text);
    }
}

fn register(pid: u32) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.push(pid);
    write_pid_file(&live);
}

fn unregister(pid: u32) {
    let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
    live.retain(|&p| p != pid);
    write_pid_file(&live);
}

/// Kills every registered child (SIGKILL, by pid) and removes the work dir.
fn kill_all() {
    let live = LIVE.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for pid in live {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    if let Some((dir, keep)) = WORK_DIR.get() {
        if !keep {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

fn fatal(message: impl std::fmt::Display) -> ! {
    eprintln!("gateway bench: {message}");
    kill_all();
    std::process::exit(2)
}

/// SIGINT, SIGTERM or SIGHUP: stop every child, then exit 130.
fn watch_signals() {
    std::thread::spawn(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a signal runtime");
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
            let mut hup = signal(SignalKind::hangup()).expect("SIGHUP handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        });
        eprintln!("\ngateway bench: interrupted; stopping every process it started");
        kill_all();
        std::process::exit(130);
    });
}

/// A child process, killed and reaped when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn spawn(name: &str, mut command: Command) -> Result<Proc, String> {
        let child = command.spawn().map_err(|e| format!("{name}: cannot start: {e}"))?;
        register(child.id());
        Ok(Proc { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status text)` once it has exited.
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            Ok(None) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    /// Waits for it to exit by itself, up to `limit`.
    fn wait_for(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        unregister(self.child.id());
    }
}

fn signal_pid(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

// ---------------------------------------------------------------------------
// /proc

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime in clock ticks (fields 14 and 15 of /proc/<pid>/stat; the
/// command name, in parentheses, may hold spaces).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(close) = stat.rfind(')') else { return 0 };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

/// Resident memory by kind, in KiB: RssAnon (the process's own memory:
/// heap, stacks, written data) and RssFile (pages of the binary and the
/// libraries mapped in, shared with the page cache).
#[derive(Clone, Copy, Default)]
struct RssSplit {
    anon: Option<u64>,
    file: Option<u64>,
}

impl RssSplit {
    /// RssAnon + RssFile.
    fn total(&self) -> Option<u64> {
        Some(self.anon? + self.file?)
    }
}

fn rss_split(pid: u32) -> RssSplit {
    RssSplit {
        anon: status_kib(pid, "RssAnon"),
        file: status_kib(pid, "RssFile"),
    }
}

/// Samples the RSS split of `pids` every 100 ms on a thread of its own,
/// keeping for each the sample with the largest RssAnon + RssFile (the
/// kernel keeps only the total's peak, VmHWM).
struct RssWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<RssSplit>>,
}

impl RssWatch {
    fn start(pids: Vec<u32>) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = vec![RssSplit::default(); pids.len()];
            loop {
                for (peak, &pid) in peaks.iter_mut().zip(&pids) {
                    let now = rss_split(pid);
                    if now.total() > peak.total() {
                        *peak = now;
                    }
                }
                if flag.load(Ordering::Relaxed) {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssWatch { stop, thread }
    }

    /// Stops sampling; the peak sample of each pid, in `start`'s order.
    fn finish(self) -> Vec<RssSplit> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the RSS sampling thread")
    }
}

/// A number field of /proc/<pid>/status (`kB` ones such as RssAnon and
/// VmHWM are in KiB).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The machine's CPU ticks from /proc/stat: (user + nice + system, steal,
/// all). Interrupt time is left out: the loopback traffic's softirqs land there.
fn machine_ticks() -> (u64, u64, u64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    (get(0) + get(1) + get(2), get(7), (0..8).map(get).sum())
}

/// CPU ticks of the benchmark itself: this driver, its reaped children
/// (every wrk run) and the live servers in `pids`.
fn own_ticks(pids: &[u32]) -> u64 {
    let stat = fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rfind(')').map_or("", |i| &stat[i + 2..]);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|f| f.parse::<i64>().ok())
            .unwrap_or(0)
            .max(0) as u64
    };
    field(14) + field(15) + field(16) + field(17) + pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>()
}

/// A snapshot of the machine's and the benchmark's CPU time, to tell how
/// much of the machine something else took meanwhile.
struct Noise {
    machine: (u64, u64, u64),
    own: u64,
}

impl Noise {
    fn now(pids: &[u32]) -> Noise {
        Noise {
            machine: machine_ticks(),
            own: own_ticks(pids),
        }
    }

    /// Since the snapshot: (percent of the machine's CPU time used by
    /// processes outside the benchmark, percent stolen by the hypervisor).
    fn since(&self, pids: &[u32]) -> (f64, f64) {
        let (m, own) = (machine_ticks(), own_ticks(pids));
        let total = m.2.saturating_sub(self.machine.2).max(1) as f64;
        let busy = m.0.saturating_sub(self.machine.0);
        let others = busy.saturating_sub(own.saturating_sub(self.own)) as f64;
        let steal = m.1.saturating_sub(self.machine.1) as f64;
        (others * 100.0 / total, steal * 100.0 / total)
    }
}

fn threads_of(pid: u32) -> Option<u64> {
    status_kib(pid, "Threads")
}

// ---------------------------------------------------------------------------
// A small blocking HTTP/1.1 client (keep-alive, Content-Length bodies).

struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            stream: None,
            buf: Vec::with_capacity(4096),
        }
    }

    fn connect(&mut self) -> Result<(), String> {
        if self.stream.is_none() {
            let stream =
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).map_err(|e| format!("connect: {e}"))?;
            let _ = stream.set_nodelay(true);
            let _ = stream.set_read_timeout(Some(Duration::from_secs(15)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(15)));
            self.stream = Some(stream);
        }
        Ok(())
    }

    /// Sends one request and reads its answer: (status, body).
    fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), String> {
        self.connect()?;
        let stream = self.stream.as_mut().expect("connected");
        if let Err(e) = stream.write_all(request) {
            self.stream = None;
            return Err(format!("write: {e}"));
        }
        match read_response(stream, &mut self.buf) {
            Ok((status, body, close)) => {
                if close {
                    self.stream = None;
                }
                Ok((status, body))
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, Vec<u8>, bool), String> {
    buf.clear();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before an answer".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no status line".to_string())?;
    let (mut length, mut close) = (None, false);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse::<usize>().ok();
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(format!(
                    "an answer with transfer-encoding {value} (not read by this client)"
                ));
            }
        }
    }
    let length = length.ok_or_else(|| format!("HTTP {status} without content-length"))?;
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed in the body".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, buf[head_end..head_end + length].to_vec(), close))
}

fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut conn = Conn::new(addr);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.exchange(request.as_bytes())
        .map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
}

fn post_request(addr: SocketAddr, token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST /contact/monitor HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------
// Tokens: RS256, minted with aws-lc-rs directly (the key parsed once).

struct Signer {
    key: RsaKeyPair,
    kid: String,
}

impl Signer {
    fn mint(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, self.kid));
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let input = format!("{header}.{payload}");
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut signature,
            )
            .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// The issuer's RSA modulus, big-endian (tests/fixtures/rsa.jwks.json).
fn issuer_modulus() -> Vec<u8> {
    let text = fs::read_to_string("tests/fixtures/rsa.jwks.json").unwrap_or_else(|e| fatal(e));
    let jwks: Value = serde_json::from_str(&text).unwrap_or_else(|e| fatal(format!("rsa.jwks.json: {e}")));
    jwks["keys"][0]["n"]
        .as_str()
        .and_then(|n| URL_SAFE_NO_PAD.decode(n).ok())
        .unwrap_or_else(|| fatal("tests/fixtures/rsa.jwks.json: no modulus"))
}

fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64.trim()).expect("a PEM body")
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn supervisor_claims(jti: &str) -> Value {
    let now = now_secs();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "supervisor-1", "iat": now, "exp": now + 4 * 3600,
           "groups": ["supervisors"], "connect_user_id": "sup-1",
           "email": "supervisor-1@bench.example", "jti": jti})
}

fn lead_claims() -> Value {
    let now = now_secs();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "lead-1", "iat": now, "exp": now + 4 * 3600,
           "groups": ["team-leads"], "connect_user_id": "lead-1",
           "email": "lead-1@bench.example", "jti": "bench-lead"})
}

/// Distinct tokens, minted on demand on every core, handed out once each.
struct Pool {
    signer: Signer,
    tokens: Vec<String>,
    next: usize,
    minted: usize,
    mint_seconds: f64,
}

impl Pool {
    fn ensure(&mut self, n: usize) {
        let have = self.tokens.len() - self.next;
        if have >= n {
            return;
        }
        let want = n - have;
        let started = Instant::now();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let base = self.minted;
        let signer = &self.signer;
        let batches: Vec<Vec<String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    s.spawn(move || {
                        (w..want)
                            .step_by(workers)
                            .map(|i| signer.mint(&supervisor_claims(&format!("bench-{}", base + i))))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a minting thread"))
                .collect()
        });
        self.tokens.drain(..self.next);
        self.next = 0;
        for batch in batches {
            self.tokens.extend(batch);
        }
        self.minted += want;
        let took = started.elapsed().as_secs_f64();
        self.mint_seconds += took;
        if want < 100 {
            return;
        }
        println!(
            "  (minted {want} fresh RS256 tokens in {took:.1} s, {:.0}/s; {} minted in all)",
            want as f64 / took.max(1e-9),
            self.minted
        );
    }

    /// `n` tokens never handed out before.
    fn take(&mut self, n: usize) -> Vec<String> {
        self.ensure(n);
        let out = self.tokens[self.next..self.next + n].to_vec();
        self.next += n;
        out
    }
}

// ---------------------------------------------------------------------------
// wrk

const WRK_SCRIPT: &str = r#"-- Written by benches/src/bin/gateway_bench/main.rs.
-- args: <tokens file> <body file> <threads>. The tokens are split into one
-- segment per pair of threads; in a segment one thread takes the tokens from
-- the front and the other from the back, so a token goes out twice only once
-- the pair together has sent more requests than the segment holds, however
-- the load splits between the two. Every request is pre-formatted at init,
-- so request() only picks the next one.
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[2], "rb"))
  local body = f:read("*a")
  f:close()
  local nthreads = tonumber(args[3])
  local tokens = {}
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = line end
  end
  local nseg = math.ceil(nthreads / 2)
  seg = math.floor(id / 2)
  local size = math.floor(#tokens / nseg)
  local lo, hi = 1, #tokens
  if size > 0 then
    lo = seg * size + 1
    if seg < nseg - 1 then hi = (seg + 1) * size end
  end
  reqs = {}
  for i = lo, hi do
    reqs[#reqs + 1] = wrk.format("POST", nil,
      {["Authorization"] = "Bearer " .. tokens[i], ["Content-Type"] = "application/json"}, body)
  end
  n = #reqs
  step = (id % 2 == 0) and 1 or -1
  idx = (step == 1) and 0 or (n + 1)
  sent = 0
end

function request()
  idx = idx + step
  if idx > n then idx = 1 elseif idx < 1 then idx = n end
  sent = sent + 1
  return reqs[idx]
end

function done(summary, latency, requests)
  -- reused: requests beyond what their segment's tokens could carry once each
  local sent_by_seg, size_of_seg = {}, {}
  for _, t in ipairs(threads) do
    local s = t:get("seg")
    sent_by_seg[s] = (sent_by_seg[s] or 0) + (t:get("sent") or 0)
    size_of_seg[s] = t:get("n") or 0
  end
  local w = 0
  for s, total in pairs(sent_by_seg) do
    if total > size_of_seg[s] then w = w + total - size_of_seg[s] end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%.0f duration_us=%.0f p50=%.0f p99=%.0f p999=%.0f connect=%.0f read=%.0f write=%.0f timeout=%.0f status=%.0f reused=%.0f\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), e.connect, e.read, e.write, e.timeout, e.status, w))
end
"#;

#[derive(Debug, Default, Clone)]
struct WrkResult {
    requests: u64,
    seconds: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    socket_errors: [u64; 4],
    status_errors: u64,
    /// Requests that carried a token already sent in the run.
    reused: u64,
}

struct Wrk {
    binary: String,
    script: PathBuf,
    dir: PathBuf,
}

impl Wrk {
    fn spawn(
        &mut self,
        addr: SocketAddr,
        tokens: &[String],
        body_file: &Path,
        seconds: u64,
        connections: usize,
        threads: usize,
    ) -> Result<Proc, String> {
        let tokens_file = self.dir.join("wrk-tokens.txt");
        let mut text = String::with_capacity(tokens.iter().map(|t| t.len() + 1).sum());
        for t in tokens {
            text.push_str(t);
            text.push('\n');
        }
        fs::write(&tokens_file, text).map_err(|e| format!("tokens file: {e}"))?;
        let stderr = File::create(self.dir.join("wrk-stderr.txt")).map_err(|e| e.to_string())?;
        let mut command = Command::new(&self.binary);
        command
            .arg(format!("-t{}", threads.min(connections)))
            .arg(format!("-c{connections}"))
            .arg(format!("-d{seconds}s"))
            .arg("--timeout")
            .arg("10s")
            .arg("-s")
            .arg(&self.script)
            .arg(format!("http://{addr}/contact/monitor"))
            .arg("--")
            .arg(&tokens_file)
            .arg(body_file)
            .arg(threads.min(connections).to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        Proc::spawn("wrk", command)
    }

    fn finish(&self, mut proc: Proc) -> Result<WrkResult, String> {
        let mut out = String::new();
        if let Some(mut stdout) = proc.child.stdout.take() {
            let _ = stdout.read_to_string(&mut out);
        }
        let status = proc.child.wait().map_err(|e| e.to_string())?;
        drop(proc);
        let line = out.lines().find(|l| l.starts_with("BENCH_RESULT ")).ok_or_else(|| {
            let err = fs::read_to_string(self.dir.join("wrk-stderr.txt")).unwrap_or_default();
            format!("wrk ({status}) printed no result:\n{out}\n{err}")
        })?;
        let mut fields = BTreeMap::new();
        for pair in line.split_whitespace().skip(1) {
            if let Some((k, v)) = pair.split_once('=') {
                fields.insert(k.to_owned(), v.parse::<f64>().unwrap_or(0.0));
            }
        }
        let f = |k: &str| fields.get(k).copied().unwrap_or(0.0);
        Ok(WrkResult {
            requests: f("requests") as u64,
            seconds: f("duration_us") / 1e6,
            p50: f("p50"),
            p99: f("p99"),
            p999: f("p999"),
            socket_errors: [
                f("connect") as u64,
                f("read") as u64,
                f("write") as u64,
                f("timeout") as u64,
            ],
            status_errors: f("status") as u64,
            reused: f("reused") as u64,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run(
        &mut self,
        addr: SocketAddr,
        tokens: &[String],
        body_file: &Path,
        seconds: u64,
        connections: usize,
        threads: usize,
    ) -> Result<WrkResult, String> {
        let proc = self.spawn(addr, tokens, body_file, seconds, connections, threads)?;
        self.finish(proc)
    }
}

// ---------------------------------------------------------------------------
// Open-loop paced load

#[derive(Default)]
struct Paced {
    /// From the scheduled send time to the end of the answer, µs.
    latencies: Vec<u32>,
    /// From the scheduled send time to the actual send, µs.
    lags: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    errors: BTreeMap<String, u64>,
    wall: f64,
}

/// Sends `requests.len()`-cycling requests at `rate`/s on a fixed schedule
/// (request i at t0 + i/rate) from `connections` threads, each with one
/// keep-alive connection; a thread takes the next slot when it is free, so a
/// slow answer delays the slots behind it and their latency counts it.
fn paced(addr: SocketAddr, requests: &[Vec<u8>], rate: f64, seconds: f64, connections: usize) -> Paced {
    let total = (rate * seconds).round() as usize;
    let period = 1e9 / rate;
    let next = AtomicUsize::new(0);
    let ready = Barrier::new(connections + 1);
    let go = Barrier::new(connections + 1);
    let start: OnceLock<Instant> = OnceLock::new();
    let results: Vec<Paced> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..connections)
            .map(|_| {
                let (next, ready, go, start) = (&next, &ready, &go, &start);
                s.spawn(move || {
                    let mut conn = Conn::new(addr);
                    let _ = conn.connect();
                    let mut out = Paced::default();
                    ready.wait();
                    go.wait();
                    let t0 = *start.get().expect("a start time");
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= total {
                            break;
                        }
                        let scheduled = t0 + Duration::from_nanos((i as f64 * period) as u64);
                        let now = Instant::now();
                        if scheduled > now {
                            std::thread::sleep(scheduled - now);
                        }
                        let sent = Instant::now();
                        let answer = conn.exchange(&requests[i % requests.len()]);
                        let done = Instant::now();
                        out.latencies.push(done.duration_since(scheduled).as_micros() as u32);
                        out.lags
                            .push(sent.saturating_duration_since(scheduled).as_micros() as u32);
                        match answer {
                            Ok((status, _)) => *out.statuses.entry(status).or_default() += 1,
                            Err(e) => *out.errors.entry(e).or_default() += 1,
                        }
                    }
                    out
                })
            })
            .collect();
        ready.wait();
        let _ = start.set(Instant::now() + Duration::from_millis(10));
        go.wait();
        handles.into_iter().map(|h| h.join().expect("a paced thread")).collect()
    });
    let t0 = *start.get().expect("a start time");
    let mut all = Paced {
        wall: t0.elapsed().as_secs_f64(),
        ..Paced::default()
    };
    for r in results {
        all.latencies.extend(r.latencies);
        all.lags.extend(r.lags);
        for (k, v) in r.statuses {
            *all.statuses.entry(k).or_default() += v;
        }
        for (k, v) in r.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    all
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

// ---------------------------------------------------------------------------
// The servers

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| fatal(format!("no free loopback port: {e}")))
}

/// `[connect.quotas]` and MonitorContact's entry far above any benchmark's pace.
const UNLIMITED_BUDGETS: &str = "[connect.quotas]\n\
     MonitorContact = { rate = 1000000.0, burst = 1000000 }\n\
     DescribeContact = { rate = 1000000.0, burst = 1000000 }\n\
     DescribeUser = { rate = 1000000.0, burst = 1000000 }\n\
     ListSecurityProfilePermissions = { rate = 1000000.0, burst = 1000000 }\n\
     SearchUsers = { rate = 1000000.0, burst = 1000000 }\n\n";

fn nginx_config(dir: &Path, port: u16) -> String {
    let group = |g: &str| format!("arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE}/agent-group/{g}");
    let monitor = json!({"ContactArn": format!("arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE}/contact/contact-1"),
                         "ContactId": "contact-1"});
    let contact = json!({"Contact": {"Id": "contact-1", "Channel": "VOICE", "QueueInfo": {"Id": "q-1"},
        "AgentInfo": {"Id": "agent-1", "HierarchyGroups": {"Level1": {"Arn": group("g-site")}, "Level2": {"Arn": group("g-team")}}}}});
    let user = json!({"User": {"Id": "lead-1", "Username": "lead-1@bench.example", "HierarchyGroupId": "g-team",
                               "SecurityProfileIds": ["sp-lead"]}});
    let permissions = json!({"Permissions": ["BasicAgentAccess", "ManagerListenIn"]});
    let d = dir.display();
    format!(
        r#"# Written by benches/src/bin/gateway_bench/main.rs: Amazon Connect's answers, by path.
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/nginx-body;
  proxy_temp_path {d}/nginx-proxy;
  fastcgi_temp_path {d}/nginx-fastcgi;
  uwsgi_temp_path {d}/nginx-uwsgi;
  scgi_temp_path {d}/nginx-scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port};
    add_header x-amzn-RequestId bench-request-id always;
    location = /contact/monitor {{ return 200 '{monitor}'; }}
    location /contacts/ {{ return 200 '{contact}'; }}
    location /users/ {{ return 200 '{user}'; }}
    location /security-profiles-permissions/ {{ return 200 '{permissions}'; }}
    location / {{ return 404 '{{"__type":"ResourceNotFoundException","Message":"no such route"}}'; }}
  }}
}}
"#
    )
}

/// nginx on a free loopback port (nginx cannot bind port 0 and say which it
/// got, so: a port the kernel just handed out, retried if taken meanwhile).
fn start_nginx(nginx: &str, dir: &Path) -> (Proc, SocketAddr) {
    for attempt in 1..=5 {
        let port = free_port();
        let conf = dir.join("nginx.conf");
        fs::write(&conf, nginx_config(dir, port)).unwrap_or_else(|e| fatal(e));
        let mut command = Command::new(nginx);
        command
            .arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("nginx-error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = Proc::spawn("nginx", command).unwrap_or_else(|e| fatal(e));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = proc.exited() {
                let log = fs::read_to_string(dir.join("nginx-error.log")).unwrap_or_default();
                if log.contains("Address already in use") && attempt < 5 {
                    break;
                }
                fatal(format!("nginx exited ({status}): {log}"));
            }
            if let Ok((200, _)) = Conn::new(addr).exchange(&post_request(addr, "x", "{}")) {
                return (proc, addr);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    fatal("nginx did not start (ports taken?)")
}

fn start_passthrough(binary: &Path, upstream: SocketAddr) -> (Proc, SocketAddr) {
    let mut command = Command::new(binary);
    command
        .arg("--upstream")
        .arg(format!("http://{upstream}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut proc = Proc::spawn("pass-through", command).unwrap_or_else(|e| {
        fatal(format!(
            "{e} (build it: cargo build -p cmg-bench --profile dist --bins)"
        ))
    });
    let stdout = proc.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| fatal("the pass-through did not start"));
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| fatal(format!("the pass-through said {line:?}")));
    (proc, addr)
}

struct GatewayFiles {
    config: PathBuf,
    ready_config: PathBuf,
    /// The same, for a `--baseline` binary built before `[connect.quotas]`.
    baseline_config: PathBuf,
    baseline_ready_config: PathBuf,
    audit: PathBuf,
}

fn write_gateway_files(dir: &Path, upstream: SocketAddr, shared: Option<&str>) -> GatewayFiles {
    let jwks = fs::read_to_string("tests/fixtures/rsa.jwks.json").unwrap_or_else(|e| {
        fatal(format!(
            "tests/fixtures/rsa.jwks.json: {e} (run from the repository root)"
        ))
    });
    fs::write(dir.join("jwks.json"), jwks).unwrap_or_else(|e| fatal(e));
    fs::write(dir.join("policy.toml"), POLICY).unwrap_or_else(|e| fatal(e));
    // The gateway's budgets far above the benchmark's pace (it measures the
    // gateway, not Connect's quotas); an older baseline build knows no budgets.
    let config = |audit: &Path, budgets: bool| {
        let quotas = match (budgets, shared) {
            (false, _) => String::new(),
            (true, None) => UNLIMITED_BUDGETS.to_string(),
            (true, Some(url)) => format!("{UNLIMITED_BUDGETS}[shared]\nurl = {url:?}\n\n"),
        };
        format!(
            "# Written by benches/src/bin/gateway_bench/main.rs\n\
             [server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [[auth.issuers]]\nissuer = \"{ISSUER}\"\naudiences = [\"{AUDIENCE}\"]\nalgorithms = [\"RS256\"]\n\
             jwks_file = {:?}\n\n\
             [connect]\nregion = \"us-east-1\"\nendpoint = \"http://{upstream}\"\n\n\
             [connect.lookups]\nttl = \"1h\"\n\n{quotas}\
             [policy]\nfile = {:?}\nuser_id_claim = \"connect_user_id\"\n\n\
             [audit]\nfile = {:?}\n",
            dir.join("jwks.json").display().to_string(),
            dir.join("policy.toml").display().to_string(),
            audit.display().to_string(),
        )
    };
    let audit = dir.join("audit.log");
    let files = GatewayFiles {
        config: dir.join("gateway.toml"),
        ready_config: dir.join("gateway-ready.toml"),
        baseline_config: dir.join("baseline.toml"),
        baseline_ready_config: dir.join("baseline-ready.toml"),
        audit: audit.clone(),
    };
    fs::write(&files.config, config(&audit, true)).unwrap_or_else(|e| fatal(e));
    fs::write(&files.ready_config, config(&dir.join("audit-ready.log"), true)).unwrap_or_else(|e| fatal(e));
    fs::write(&files.baseline_config, config(&audit, false)).unwrap_or_else(|e| fatal(e));
    fs::write(
        &files.baseline_ready_config,
        config(&dir.join("audit-ready.log"), false),
    )
    .unwrap_or_else(|e| fatal(e));
    files
}

/// A baseline built with Connect budgets would hold MonitorContact to
/// Connect's 2 calls a second: when its `check` takes the gateway's config
/// (budgets far above the benchmark's pace), it runs on that config too.
/// An older build, which knows no budgets, keeps the config without them.
fn give_the_baseline_budgets_it_knows(baseline: &Path, files: &GatewayFiles) {
    let accepted = Command::new(baseline)
        .args(["check", "--config"])
        .arg(&files.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if accepted {
        for (from, to) in [
            (&files.config, &files.baseline_config),
            (&files.ready_config, &files.baseline_ready_config),
        ] {
            fs::copy(from, to).unwrap_or_else(|e| fatal(e));
        }
    }
    println!(
        "  baseline config: {}",
        if accepted {
            "the gateway's, budgets included"
        } else {
            "without budgets (the baseline knows none)"
        }
    );
}

/// The gateway's command: its static credentials in the environment, the
/// metadata service off, `RUST_LOG=info` (its default), stderr to `log`.
fn gateway_command(binary: &Path, config: &Path, log: &Path, wrapper: &[String]) -> Command {
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap_or_else(|e| fatal(format!("{}: {e}", log.display())));
    command
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_CONNECT")
        .env_remove("CMG_CONFIG")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("https_proxy")
        .env_remove("http_proxy")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    command
}

/// The api and admin addresses from the gateway's `serving` log line.
fn serving_line(log: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("connect-monitor-gateway serving"))?;
    let v: Value = serde_json::from_str(line).ok()?;
    let api = v["fields"]["listen"].as_str()?.parse().ok()?;
    let admin = v["fields"]["admin"].as_str()?.parse().ok()?;
    Some((api, admin))
}

struct Gateway {
    proc: Proc,
    api: SocketAddr,
    admin: SocketAddr,
    log: PathBuf,
    /// From spawn to the first `/readyz` 200.
    ready_after: Duration,
}

/// Starts the gateway and waits, polling every 200 µs, for its serving line
/// and then for `/readyz` to answer 200, within `limit`.
fn start_gateway(
    binary: &Path,
    config: &Path,
    log: &Path,
    wrapper: &[String],
    limit: Duration,
) -> Result<Gateway, String> {
    let _ = fs::remove_file(log);
    let command = gateway_command(binary, config, log, wrapper);
    let started = Instant::now();
    let mut proc = Proc::spawn("gateway", command)?;
    let deadline = started + limit;
    let mut addrs = None;
    loop {
        if Instant::now() > deadline {
            let text = fs::read_to_string(log).unwrap_or_default();
            return Err(format!("the gateway was not ready within {limit:?}; its log:\n{text}"));
        }
        if addrs.is_none() {
            addrs = serving_line(log);
        }
        if let Some((api, admin)) = addrs {
            if let Ok((200, _)) = http_get(admin, "/readyz") {
                return Ok(Gateway {
                    ready_after: started.elapsed(),
                    proc,
                    api,
                    admin,
                    log: log.to_owned(),
                });
            }
        }
        if let Some(status) = proc.exited() {
            let text = fs::read_to_string(log).unwrap_or_default();
            return Err(format!("the gateway exited ({status}); its log:\n{text}"));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[derive(Default, Clone)]
struct Metrics {
    requests: BTreeMap<String, u64>,
    lookups: BTreeMap<String, u64>,
    in_flight: f64,
    /// `cmg_request_duration_seconds` buckets: upper bound in µs -> count at or below.
    duration_buckets: BTreeMap<u64, u64>,
}

fn scrape(admin: SocketAddr) -> Metrics {
    let mut m = Metrics::default();
    let Ok((200, text)) = http_get(admin, "/metrics") else {
        return m;
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if let Some(rest) = name.strip_prefix("cmg_requests_total{code=\"") {
            m.requests.insert(rest.trim_end_matches("\"}").to_owned(), value as u64);
        } else if let Some(rest) = name.strip_prefix("cmg_connect_lookups_total{") {
            m.lookups.insert(rest.trim_end_matches('}').to_owned(), value as u64);
        } else if name == "cmg_in_flight" {
            m.in_flight = value;
        } else if let Some(rest) = name.strip_prefix("cmg_request_duration_seconds_bucket{le=\"") {
            if let Ok(le) = rest.trim_end_matches("\"}").parse::<f64>() {
                m.duration_buckets.insert((le * 1e6).round() as u64, value as u64);
            }
        }
    }
    m
}

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

// ---------------------------------------------------------------------------
// The run

/// One saturation run: requests, seconds, CPU seconds, p50/p99/p99.9 µs.
type SatRound = (u64, f64, f64, f64, f64, f64);

#[derive(Default)]
struct Stats {
    /// Per round: requests, seconds, CPU seconds, p50/p99/p99.9 µs.
    sat: Vec<SatRound>,
    paced_latencies: Vec<u32>,
    /// Per round: p50/p99/p99.9 µs.
    paced_rounds: Vec<(f64, f64, f64)>,
    paced_lags: Vec<u32>,
    paced_rates: Vec<f64>,
    /// The gateway's own time per paced request (its histogram, from the
    /// handler's start to the audit line written): bucket bound in µs -> count.
    paced_server: BTreeMap<u64, u64>,
    unexpected: BTreeMap<String, u64>,
    reused_tokens: u64,
    /// What the gateway wrote to its log (stderr) during this configuration's runs.
    log_lines: u64,
    log_bytes: u64,
}

impl Stats {
    fn rate(&self) -> f64 {
        median(&self.sat.iter().map(|r| r.0 as f64 / r.1).collect::<Vec<_>>())
    }

    fn rate_spread(&self) -> (f64, f64) {
        let rates: Vec<f64> = self.sat.iter().map(|r| r.0 as f64 / r.1).collect();
        (
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
        )
    }

    /// CPU seconds per 1000 requests over all rounds.
    fn cpu_per_1000(&self) -> f64 {
        let (n, cpu) = self.sat.iter().fold((0u64, 0.0), |(n, c), r| (n + r.0, c + r.2));
        cpu * 1000.0 / n.max(1) as f64
    }

    fn sat_percentiles(&self) -> (f64, f64, f64) {
        let m = |f: fn(&SatRound) -> f64| median(&self.sat.iter().map(f).collect::<Vec<_>>());
        (m(|r| r.3), m(|r| r.4), m(|r| r.5))
    }

    /// Median of the rounds' percentiles: a burst of noise from outside
    /// (another process taking the cores) moves one round, not the figure.
    fn paced_percentiles(&self) -> (f64, f64, f64) {
        let m = |f: fn(&(f64, f64, f64)) -> f64| median(&self.paced_rounds.iter().map(f).collect::<Vec<_>>());
        (m(|r| r.0), m(|r| r.1), m(|r| r.2))
    }

    /// Percentiles of all paced requests of all rounds together.
    fn paced_pooled(&self) -> (f64, f64, f64) {
        let mut v = self.paced_latencies.clone();
        v.sort_unstable();
        (percentile(&v, 50.0), percentile(&v, 99.0), percentile(&v, 99.9))
    }

    fn problem(&mut self, what: String, n: u64) {
        *self.unexpected.entry(what).or_default() += n;
    }
}

struct Bench {
    opts: Options,
    dir: PathBuf,
    ticks: f64,
    wrk: Wrk,
    upstream: (Proc, SocketAddr),
    passthrough: Option<(Proc, SocketAddr)>,
    gateway: Option<Gateway>,
    /// The `--baseline` binary's gateway, with the same config file (and so
    /// the same audit file, which only the gateway under load writes to).
    baseline: Option<Gateway>,
    /// The configurations measured, in slots: one configuration, or a
    /// gateway configuration and its baseline counterpart, run one after the
    /// other. The slots' order rotates every round; a pair's alternates.
    slots: Vec<Vec<usize>>,
    audit: PathBuf,
    audit_offset: u64,
    fixed: BTreeMap<&'static str, String>,
    pool: Pool,
    bodies: Vec<PathBuf>,
    stats: Vec<Stats>,
    log_warnings: u64,
    /// The fastest saturation rates seen (fresh token, one token), which
    /// size the fresh-token batches.
    fastest: (f64, f64),
    first_warnings: Vec<String>,
}

/// The processes a benchmark measures.
struct Servers {
    upstream: (Proc, SocketAddr),
    passthrough: Option<(Proc, SocketAddr)>,
    gateway: Option<Gateway>,
    baseline: Option<Gateway>,
}

impl Bench {
    /// A benchmark over these servers, with wrk's script and the request bodies written.
    fn new(
        opts: Options,
        dir: &Path,
        ticks: f64,
        servers: Servers,
        audit: PathBuf,
        fixed: BTreeMap<&'static str, String>,
        signer: Signer,
    ) -> Bench {
        let script = dir.join("bench.lua");
        fs::write(&script, WRK_SCRIPT).unwrap_or_else(|e| fatal(e));
        let mut slots: Vec<Vec<usize>> = (0..WITHOUT_BASELINE).map(|i| vec![i]).collect();
        if opts.baseline.is_some() {
            for (new, old) in PAIRS {
                slots[new].push(old);
            }
        }
        Bench {
            wrk: Wrk {
                binary: opts.wrk.clone(),
                script,
                dir: dir.to_path_buf(),
            },
            bodies: write_bodies(dir),
            dir: dir.to_path_buf(),
            ticks,
            upstream: servers.upstream,
            passthrough: servers.passthrough,
            gateway: servers.gateway,
            baseline: servers.baseline,
            slots,
            audit,
            audit_offset: 0,
            fixed,
            pool: Pool {
                signer,
                tokens: Vec::new(),
                next: 0,
                minted: 0,
                mint_seconds: 0.0,
            },
            stats: (0..CONFIGS.len()).map(|_| Stats::default()).collect(),
            log_warnings: 0,
            fastest: (0.0, 0.0),
            first_warnings: Vec::new(),
            opts,
        }
    }

    /// Every configuration measured, each gateway one followed by its
    /// baseline counterpart (the order of the tables).
    fn shown(&self) -> Vec<usize> {
        self.slots.iter().flatten().copied().collect()
    }

    /// The gateway process a configuration measures, if any.
    fn gateway_of(&self, cfg: &Config) -> Option<&Gateway> {
        match cfg.server {
            Server::Gateway => self.gateway.as_ref(),
            Server::Baseline => self.baseline.as_ref(),
            Server::Upstream | Server::PassThrough => None,
        }
    }

    fn target(&self, cfg: &Config) -> (SocketAddr, u32) {
        match cfg.server {
            Server::Upstream => (self.upstream.1, self.upstream.0.pid()),
            Server::PassThrough => {
                let (p, a) = self.passthrough.as_ref().expect("the pass-through");
                (*a, p.pid())
            }
            Server::Gateway | Server::Baseline => {
                let g = self.gateway_of(cfg).expect("the gateway");
                (g.api, g.proc.pid())
            }
        }
    }

    fn fixed_token(&self, token: Token) -> String {
        let key = match token {
            Token::Supervisor | Token::Fresh => "supervisor",
            Token::Forged => "forged",
            Token::Lead => "lead",
        };
        self.fixed[key].clone()
    }

    fn body_file(&self, cfg: &Config) -> PathBuf {
        self.bodies[cfg.body as usize].clone()
    }

    /// Waits for the gateway's in-flight requests to finish, then checks
    /// every answer since `before` had the configuration's code and that the
    /// audit has one line for each. Returns the metrics it checked against.
    fn check_gateway(&mut self, i: usize, before: &Metrics) -> Option<Metrics> {
        let g = self.gateway_of(&CONFIGS[i])?;
        let (admin, g) = (g.admin, g.log.clone());
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut after = scrape(admin);
        while after.in_flight > 0.0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            after = scrape(admin);
        }
        let cfg = CONFIGS[i];
        let codes = delta(&after.requests, &before.requests);
        let answered: u64 = codes.values().sum();
        for (code, n) in &codes {
            if Some(code.as_str()) != cfg.code {
                self.stats[i].problem(format!("gateway answered {code}"), *n);
            }
        }
        // The audit: one line per answer. Counted from where the last check
        // stopped, then emptied so a long run does not fill the disk.
        if let Ok(mut f) = File::open(&self.audit) {
            let _ = f.seek(SeekFrom::Start(self.audit_offset));
            let mut rest = Vec::new();
            let _ = f.read_to_end(&mut rest);
            let lines = rest.iter().filter(|&&b| b == b'\n').count() as u64;
            if lines != answered {
                println!("  ! audit: {lines} new lines for {answered} answers ({})", cfg.label);
            }
            let _ = OpenOptions::new()
                .write(true)
                .open(&self.audit)
                .and_then(|f| f.set_len(0));
            self.audit_offset = 0;
        }
        // The gateway's own log (stderr): what it wrote during the run, and
        // any warning, then emptied too (it is opened for appending).
        if let Ok(text) = fs::read(&g) {
            let lines = text.iter().filter(|&&b| b == b'\n').count() as u64;
            self.stats[i].log_lines += lines;
            self.stats[i].log_bytes += text.len() as u64;
            for line in String::from_utf8_lossy(&text).lines() {
                if line.contains("\"level\":\"WARN\"") || line.contains("\"level\":\"ERROR\"") {
                    self.log_warnings += 1;
                    if self.first_warnings.len() < 5 {
                        self.first_warnings.push(line.to_owned());
                    }
                }
            }
            let _ = OpenOptions::new().write(true).open(&g).and_then(|f| f.set_len(0));
        }
        Some(after)
    }

    fn tokens_for_saturation(&mut self, i: usize, seconds: u64) -> Vec<String> {
        let cfg = CONFIGS[i];
        if cfg.token != Token::Fresh {
            return vec![self.fixed_token(cfg.token)];
        }
        // Enough for the fastest fresh-token rate seen so far (warm-up
        // included) with a margin, and for nine tenths of the fastest
        // one-token rate, an upper bound of it: a round slowed by noise
        // outside must not leave the next, calmer one short of tokens.
        let (fresh, one) = self.fastest;
        let guess = if fresh > 0.0 {
            (fresh * 1.2).max(one * 0.9)
        } else {
            one.max(3000.0) * 1.5
        };
        self.pool.take((guess * seconds as f64) as usize + 1000)
    }

    /// One saturation run; returns (requests, seconds, CPU s, p50, p99, p99.9).
    fn saturate(&mut self, i: usize, seconds: u64) -> SatRound {
        let cfg = CONFIGS[i];
        let tokens = self.tokens_for_saturation(i, seconds);
        let (addr, pid) = self.target(&cfg);
        let body = self.body_file(&cfg);
        let before = self.gateway_of(&cfg).map(|g| scrape(g.admin));
        let cpu0 = cpu_ticks(pid);
        let (conns, threads) = (self.opts.connections, self.opts.threads);
        let result = self
            .wrk
            .run(addr, &tokens, &body, seconds, conns, threads)
            .unwrap_or_else(|e| fatal(e));
        let cpu = (cpu_ticks(pid) - cpu0) as f64 / self.ticks;
        if let Some(before) = before {
            self.check_gateway(i, &before);
        } else if result.status_errors > 0 {
            self.stats[i].problem("non-2xx answer (wrk)".into(), result.status_errors);
        }
        let [c, r, w, t] = result.socket_errors;
        if c + r + w + t > 0 {
            self.stats[i].problem(
                format!("socket errors (wrk): connect {c}, read {r}, write {w}, timeout {t}"),
                c + r + w + t,
            );
        }
        let rate = result.requests as f64 / result.seconds.max(1e-9);
        if cfg.token == Token::Fresh {
            self.stats[i].reused_tokens += result.reused;
            self.fastest.0 = self.fastest.0.max(rate);
        } else if i == C || i == C0 {
            self.fastest.1 = self.fastest.1.max(rate);
        }
        (
            result.requests,
            result.seconds,
            cpu,
            result.p50,
            result.p99,
            result.p999,
        )
    }

    fn pace(&mut self, i: usize, seconds: f64) -> Paced {
        let cfg = CONFIGS[i];
        let (addr, _) = self.target(&cfg);
        let body = body_of(cfg.body);
        let total = (self.opts.rate * seconds).round() as usize;
        let requests: Vec<Vec<u8>> = if cfg.token == Token::Fresh {
            self.pool
                .take(total)
                .iter()
                .map(|t| post_request(addr, t, &body))
                .collect()
        } else {
            vec![post_request(addr, &self.fixed_token(cfg.token), &body)]
        };
        let before = self.gateway_of(&cfg).map(|g| scrape(g.admin));
        let result = paced(addr, &requests, self.opts.rate, seconds, self.opts.paced_connections);
        if let Some(before) = before {
            if let Some(after) = self.check_gateway(i, &before) {
                for (le, n) in &after.duration_buckets {
                    let was = before.duration_buckets.get(le).copied().unwrap_or(0);
                    *self.stats[i].paced_server.entry(*le).or_default() += n.saturating_sub(was);
                }
            }
        }
        for (status, n) in &result.statuses {
            if *status != cfg.status {
                self.stats[i].problem(format!("HTTP {status} (paced)"), *n);
            }
        }
        for (error, n) in &result.errors {
            self.stats[i].problem(format!("no answer (paced): {error}"), *n);
        }
        result
    }
}

fn ms(us: f64) -> String {
    if us.is_finite() {
        format!("{:.2}", us / 1000.0)
    } else {
        "-".into()
    }
}

fn ms3(us: f64) -> String {
    if us.is_finite() {
        format!("{:.3}", us / 1000.0)
    } else {
        "-".into()
    }
}

fn mb(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

fn setup(opts: &Options) -> (PathBuf, f64, Signer, Signer, BTreeMap<&'static str, String>) {
    if !Path::new("tests/fixtures/rsa.pem").exists() {
        fatal("run from the repository root (tests/fixtures/rsa.pem not found)");
    }
    let dir = std::env::temp_dir().join(format!("cmg-gateway-bench-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap_or_else(|e| fatal(format!("{}: {e}", dir.display())));
    let _ = WORK_DIR.set((dir.clone(), opts.keep));
    if let Some(p) = &opts.pid_file {
        let _ = PID_FILE.set(p.clone());
    }
    watch_signals();
    let pem = fs::read_to_string("tests/fixtures/rsa.pem").unwrap_or_else(|e| fatal(e));
    let issuer = Signer {
        key: RsaKeyPair::from_pkcs8(&pem_der(&pem)).unwrap_or_else(|e| fatal(format!("tests/fixtures/rsa.pem: {e}"))),
        kid: KID.into(),
    };
    // The forger knows the issuer's key id, not its key. Its signature must be
    // below the issuer's modulus: one above is refused before any RSA work,
    // which would make (e1) cheaper in one run than in the next.
    let modulus = issuer_modulus();
    let (forger, forged) = loop {
        let forger = Signer {
            key: aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .unwrap_or_else(|e| fatal(format!("generating an RSA key: {e}"))),
            kid: KID.into(),
        };
        let forged = forger.mint(&supervisor_claims("bench-forged"));
        let signature = forged.rsplit('.').next().and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        if signature.is_some_and(|s| s.len() == modulus.len() && s < modulus) {
            break (forger, forged);
        }
    };
    let mut fixed = BTreeMap::new();
    fixed.insert("supervisor", issuer.mint(&supervisor_claims("bench-one")));
    fixed.insert("forged", forged);
    fixed.insert("lead", issuer.mint(&lead_claims()));
    (dir, clock_ticks(), issuer, forger, fixed)
}

fn write_bodies(dir: &Path) -> Vec<PathBuf> {
    [BodyKind::Supervisor, BodyKind::Deny, BodyKind::Lead]
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let path = dir.join(format!("body-{i}.json"));
            fs::write(&path, body_of(*kind)).unwrap_or_else(|e| fatal(e));
            path
        })
        .collect()
}

/// Sends one request of each configuration and checks its status; the
/// Connect-aware one fills the caches.
fn sanity(bench: &mut Bench, configs: &[usize]) {
    for &i in configs {
        let cfg = CONFIGS[i];
        let (addr, _) = bench.target(&cfg);
        let token = if cfg.token == Token::Fresh {
            bench.pool.take(1).remove(0)
        } else {
            bench.fixed_token(cfg.token)
        };
        match Conn::new(addr).exchange(&post_request(addr, &token, &body_of(cfg.body))) {
            Ok((status, _)) if status == cfg.status => {}
            Ok((status, body)) => fatal(format!(
                "{} ({}): expected HTTP {}, got {status}: {}",
                cfg.label,
                cfg.tag,
                cfg.status,
                String::from_utf8_lossy(&body)
            )),
            Err(e) => fatal(format!("{} ({}): {e}", cfg.label, cfg.tag)),
        }
    }
}

/// What one gateway binary (the one under test, or the baseline) showed
/// outside the rounds' table.
struct GatewayFacts {
    binary: PathBuf,
    /// Exec-to-ready of each start, ms.
    ready_ms: Vec<f64>,
    /// Threads, idle.
    threads: Option<u64>,
    /// `cmg_connect_lookups_total` after the sanity requests and at the end.
    lookups_warm: BTreeMap<String, u64>,
    lookups_end: BTreeMap<String, u64>,
}

/// The memory table: one row per process, in `names`' order (the gateway
/// first, then the baseline when there is one, the pass-through, nginx).
struct Memory {
    names: Vec<&'static str>,
    idle: Vec<RssSplit>,
    /// The 100 ms sample with the largest RssAnon + RssFile over the warm-up
    /// and the rounds.
    peak: Vec<RssSplit>,
    /// The kernel's peak of the whole RSS (RssAnon + RssFile + RssShmem).
    hwm: Vec<Option<u64>>,
    end: Vec<RssSplit>,
}

fn main() {
    let opts = parse_options();
    if let Some(i) = opts.profile {
        profile(opts, i);
        return;
    }
    let (dir, ticks, issuer, _forger, fixed) = setup(&opts);
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let wrk_version = Command::new(&opts.wrk)
        .arg("-v")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_default();
    println!(
        "gateway bench: {} rounds; each round, each of {} configurations: {} s at saturation \
         (wrk -t{} -c{}) then {} s at {:.0} req/s (open loop, {} connections, latency from the scheduled send)",
        opts.rounds,
        if opts.baseline.is_some() {
            CONFIGS.len()
        } else {
            WITHOUT_BASELINE
        },
        opts.seconds,
        opts.threads,
        opts.connections,
        opts.paced_seconds,
        opts.rate,
        opts.paced_connections
    );
    println!(
        "  {cpus} CPU(s), CPU time from /proc/<pid>/stat at {ticks} ticks/s; {}; upstream: nginx (1 process); gateway: {}",
        if wrk_version.is_empty() { "wrk ?".into() } else { wrk_version },
        opts.binary.display()
    );
    if let Some(baseline) = &opts.baseline {
        println!(
            "  baseline: {} as (c0), (d0), (f0), the same config file, each run beside (c), (d), (f)",
            baseline.display()
        );
    }

    println!("  load average at start: {}", loadavg());
    let upstream = start_nginx(&opts.nginx, &dir);
    let passthrough = start_passthrough(&opts.passthrough, upstream.1);
    let files = write_gateway_files(&dir, upstream.1, opts.shared.as_deref());
    if let Some(baseline) = &opts.baseline {
        give_the_baseline_budgets_it_knows(baseline, &files);
    }
    if let Some(endpoint) = &opts.otlp_endpoint {
        // The gateway under test only: the baseline runs without traces.
        for config in [&files.config, &files.ready_config] {
            let mut text = fs::read_to_string(config).unwrap_or_else(|e| fatal(e));
            text.push_str(&format!("\n[telemetry]\notlp_endpoint = {endpoint:?}\n"));
            fs::write(config, text).unwrap_or_else(|e| fatal(e));
        }
        println!("  the gateway under test exports a span per request to {endpoint}; the baseline does not");
    }
    let servers = Servers {
        upstream,
        passthrough: Some(passthrough),
        gateway: None,
        baseline: None,
    };
    let mut bench = Bench::new(opts, &dir, ticks, servers, files.audit.clone(), fixed, issuer);

    // Exec-to-ready, with the machine otherwise idle; the baseline's starts
    // alternate with the gateway's.
    let binaries: Vec<PathBuf> = std::iter::once(bench.opts.binary.clone())
        .chain(bench.opts.baseline.clone())
        .collect();
    let mut ready_ms = vec![Vec::new(); binaries.len()];
    for k in 0..bench.opts.ready_starts {
        for (b, binary) in binaries.iter().enumerate() {
            let log = bench.dir.join(format!("ready-{b}-{k}.log"));
            let config = if b == 0 {
                &files.ready_config
            } else {
                &files.baseline_ready_config
            };
            let g = start_gateway(binary, config, &log, &[], Duration::from_secs(20)).unwrap_or_else(|e| fatal(e));
            ready_ms[b].push(g.ready_after.as_secs_f64() * 1000.0);
            drop(g);
        }
    }

    let gateways: Vec<Gateway> = binaries
        .iter()
        .zip([("gateway.log", &files.config), ("baseline.log", &files.baseline_config)])
        .map(|(binary, (log, config))| {
            start_gateway(binary, config, &bench.dir.join(log), &[], Duration::from_secs(20))
                .unwrap_or_else(|e| fatal(e))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut names = vec!["gateway"];
    if gateways.len() > 1 {
        names.push("baseline gateway");
    }
    names.extend(["bare pass-through", "nginx upstream"]);
    let mut pids: Vec<u32> = gateways.iter().map(|g| g.proc.pid()).collect();
    pids.push(bench.passthrough.as_ref().expect("pass-through").0.pid());
    pids.push(bench.upstream.0.pid());
    let idle: Vec<RssSplit> = pids.iter().map(|&p| rss_split(p)).collect();
    let threads: Vec<Option<u64>> = gateways.iter().map(|g| threads_of(g.proc.pid())).collect();
    let mut gateways = gateways.into_iter();
    bench.gateway = gateways.next();
    bench.baseline = gateways.next();
    let lookups = |bench: &Bench| -> Vec<BTreeMap<String, u64>> {
        [bench.gateway.as_ref(), bench.baseline.as_ref()]
            .into_iter()
            .flatten()
            .map(|g| scrape(g.admin).lookups)
            .collect()
    };

    let shown = bench.shown();
    sanity(&mut bench, &shown);
    // The audit is checked run by run from here: start it empty.
    let _ = OpenOptions::new()
        .write(true)
        .open(&bench.audit)
        .and_then(|f| f.set_len(0));
    let lookups_warm = lookups(&bench);
    let watch = RssWatch::start(pids.clone());

    // Warm-up: every configuration once, unmeasured (connections, pools,
    // allocators, the Connect-aware caches); the fresh-token rate seen here
    // sizes the token batches.
    println!("warm-up ({} s each) ...", bench.opts.warmup_seconds);
    let sizing = [C, D, C0, D0];
    for &i in &shown {
        let r = bench.saturate(i, bench.opts.warmup_seconds);
        if sizing.contains(&i) {
            bench.stats[i].sat.push(r);
        }
    }
    for s in &mut bench.stats {
        s.sat.clear();
        s.unexpected.clear();
        s.reused_tokens = 0;
        s.log_lines = 0;
        s.log_bytes = 0;
    }

    println!();
    println!(
        "{:>5}  {:<3} {:<24} {:>9} {:>11} {:>8} {:>8} {:>8} | {:>9} {:>8} {:>8} {:>8}",
        "round",
        "",
        "configuration",
        "req/s",
        "CPU s/1000",
        "p50 ms",
        "p99 ms",
        "p99.9",
        "paced r/s",
        "p50 ms",
        "p99 ms",
        "p99.9"
    );
    let n = bench.slots.len();
    let whole_run = Noise::now(&pids);
    for round in 0..bench.opts.rounds {
        let this_round = Noise::now(&pids);
        for k in 0..n {
            // A pair (gateway, baseline) runs back to back, which first
            // alternating by round.
            let mut slot = bench.slots[(k + round) % n].clone();
            if round % 2 == 1 {
                slot.reverse();
            }
            for i in slot {
                let cfg = CONFIGS[i];
                let sat = bench.saturate(i, bench.opts.seconds);
                bench.stats[i].sat.push(sat);
                std::thread::sleep(Duration::from_millis(200));
                let paced_seconds = bench.opts.paced_seconds;
                let p = bench.pace(i, paced_seconds);
                let mut lat = p.latencies.clone();
                lat.sort_unstable();
                let achieved = p.latencies.len() as f64 / p.wall;
                let s = &mut bench.stats[i];
                s.paced_latencies.extend(&p.latencies);
                s.paced_lags.extend(&p.lags);
                s.paced_rates.push(achieved);
                s.paced_rounds
                    .push((percentile(&lat, 50.0), percentile(&lat, 99.0), percentile(&lat, 99.9)));
                println!(
                    "{:>5}  {:<3} {:<24} {:>9.0} {:>11.4} {:>8} {:>8} {:>8} | {:>9.0} {:>8} {:>8} {:>8}",
                    round + 1,
                    cfg.tag,
                    cfg.label,
                    sat.0 as f64 / sat.1,
                    sat.2 * 1000.0 / sat.0.max(1) as f64,
                    ms(sat.3),
                    ms(sat.4),
                    ms(sat.5),
                    achieved,
                    ms3(percentile(&lat, 50.0)),
                    ms3(percentile(&lat, 99.0)),
                    ms3(percentile(&lat, 99.9)),
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let (others, steal) = this_round.since(&pids);
        println!(
            "       (round {}: processes outside the benchmark used {others:.1}% of the machine's CPU time, steal {steal:.1}%)",
            round + 1
        );
    }
    let noise = whole_run.since(&pids);

    println!(
        "  load average at the end: {}; over all rounds, processes outside the benchmark used {:.1}% of the machine's \
         CPU time, steal {:.1}% (noise in every figure)",
        loadavg(),
        noise.0,
        noise.1
    );
    let memory = Memory {
        names,
        idle,
        peak: watch.finish(),
        hwm: pids.iter().map(|&p| status_kib(p, "VmHWM")).collect(),
        end: pids.iter().map(|&p| rss_split(p)).collect(),
    };
    let lookups_end = lookups(&bench);
    let facts: Vec<GatewayFacts> = binaries
        .into_iter()
        .enumerate()
        .map(|(b, binary)| GatewayFacts {
            binary,
            ready_ms: ready_ms[b].clone(),
            threads: threads[b],
            lookups_warm: lookups_warm.get(b).cloned().unwrap_or_default(),
            lookups_end: lookups_end.get(b).cloned().unwrap_or_default(),
        })
        .collect();
    report(&bench, &facts, &memory);

    let mut failed = false;
    for &i in &shown {
        for (what, count) in &bench.stats[i].unexpected {
            if !failed {
                println!();
                println!("UNEXPECTED ANSWERS:");
            }
            failed = true;
            println!(
                "  {} ({}), expected HTTP {}: {what}: {count}",
                CONFIGS[i].label, CONFIGS[i].tag, CONFIGS[i].status
            );
        }
    }
    if !failed {
        println!();
        println!("every request got its expected status (200, 401 forged, 403 deny)");
    }
    if bench.log_warnings > 0 {
        println!(
            "the gateway logged {} warning/error line(s) during the runs; the first:",
            bench.log_warnings
        );
        for w in &bench.first_warnings {
            println!("  {w}");
        }
    }
    if bench.opts.keep {
        println!("work dir kept (--keep): {}", bench.dir.display());
    }
    drop(bench);
    kill_all();
    std::process::exit(if failed { 1 } else { 0 });
}

/// A size in KiB as MB with one decimal, no unit (for tables).
fn mb_n(kib: Option<u64>) -> String {
    kib.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// "a RssAnon + f RssFile", in MB.
fn split_text(split: &RssSplit) -> String {
    format!("{} RssAnon + {} RssFile", mb(split.anon), mb(split.file))
}

/// `new / old` as "1.02x", with a "!" when it is more than 10% worse
/// (`higher_is_better`: requests/s; otherwise CPU, memory, time).
fn ratio_text(new: f64, old: f64, higher_is_better: bool) -> String {
    let r = new / old;
    let worse = if higher_is_better { r < 0.9 } else { r > 1.1 };
    format!("{r:.2}x{}", if worse { "!" } else { "" })
}

fn report(bench: &Bench, gateways: &[GatewayFacts], memory: &Memory) {
    let st = &bench.stats;
    let o = &bench.opts;
    let shown = bench.shown();
    println!();
    println!(
        "RESULTS ({} rounds; req/s and latency percentiles: median of the rounds'; CPU s/1000: all rounds' CPU over all their requests)",
        o.rounds
    );
    println!(
        "{:<3} {:<24} {:>9} {:>15} {:>11} | {:>26} | {:>28}",
        "",
        "",
        "",
        "",
        "",
        "saturation (wrk -c32), ms",
        format!("~{:.0} req/s (open loop), ms", o.rate)
    );
    println!(
        "{:<3} {:<24} {:>9} {:>15} {:>11} | {:>8} {:>8} {:>8} | {:>9} {:>8} {:>9}",
        "", "configuration", "req/s", "(min-max)", "CPU s/1000", "p50", "p99", "p99.9", "p50", "p99", "p99.9"
    );
    for &i in &shown {
        let (cfg, s) = (&CONFIGS[i], &st[i]);
        let (lo, hi) = s.rate_spread();
        let (p50, p99, p999) = s.sat_percentiles();
        let (q50, q99, q999) = s.paced_percentiles();
        println!(
            "{:<3} {:<24} {:>9.0} {:>15} {:>11.4} | {:>8} {:>8} {:>8} | {:>9} {:>8} {:>9}",
            cfg.tag,
            cfg.label,
            s.rate(),
            format!("{lo:.0}-{hi:.0}"),
            s.cpu_per_1000(),
            ms(p50),
            ms(p99),
            ms(p999),
            ms3(q50),
            ms3(q99),
            ms3(q999),
        );
    }
    println!(
        "paced p99 / p99.9 over all rounds' requests pooled, ms: {}",
        shown
            .iter()
            .map(|&i| {
                let (_, p99, p999) = st[i].paced_pooled();
                format!("{} {}/{}", CONFIGS[i].tag, ms3(p99), ms3(p999))
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    // What the gateway itself spent (its histogram), apart from the time its
    // requests waited to be scheduled: a tail here is the gateway's own.
    let own: Vec<String> = shown
        .iter()
        .filter_map(|&i| {
            let s = &st[i];
            let total = s.paced_server.values().copied().max().filter(|&n| n > 0)?;
            let bound = |p: f64| {
                s.paced_server
                    .iter()
                    .find(|(_, &n)| n as f64 >= p * total as f64)
                    .map_or("?".to_owned(), |(&le, _)| {
                        if le == u64::MAX {
                            "inf".to_owned()
                        } else {
                            ms3(le as f64)
                        }
                    })
            };
            Some(format!("{} <={}/<={}", CONFIGS[i].tag, bound(0.5), bound(0.99)))
        })
        .collect();
    if !own.is_empty() {
        println!(
            "gateway's own time at ~{:.0} req/s (its histogram: handler start to audit line written), p50/p99 bucket bound, ms: {}",
            o.rate,
            own.join(", ")
        );
    }
    let mut lags: Vec<u32> = st.iter().flat_map(|s| s.paced_lags.iter().copied()).collect();
    lags.sort_unstable();
    let rates: Vec<f64> = st.iter().flat_map(|s| s.paced_rates.iter().copied()).collect();
    println!(
        "paced load: achieved {:.0}-{:.0} req/s; the driver's own send lag behind schedule (in every paced figure): p50 {} ms, p99 {} ms",
        rates.iter().copied().fold(f64::INFINITY, f64::min),
        rates.iter().copied().fold(0.0, f64::max),
        ms3(percentile(&lags, 50.0)),
        ms3(percentile(&lags, 99.0)),
    );
    let reused: Vec<String> = [D, D0]
        .iter()
        .filter(|&&i| st[i].reused_tokens > 0)
        .map(|&i| format!("({}) {}", CONFIGS[i].tag, st[i].reused_tokens))
        .collect();
    if !reused.is_empty() {
        println!(
            "! fresh-token runs ran out of pre-minted tokens: about this many requests reused one: {}",
            reused.join(", ")
        );
    } else {
        println!(
            "fresh tokens: every request of (d){} carried a token never sent before ({} minted in {:.0} s)",
            if gateways.len() > 1 { " and (d0)" } else { "" },
            bench.pool.minted,
            bench.pool.mint_seconds
        );
    }

    println!();
    println!(
        "{:<20} | {:>17} | {:>17} | {:>8} | {:>17}",
        "memory, MB", "idle", "peak (sampled)", "VmHWM", "at end"
    );
    println!(
        "{:<20} | {:>8} {:>8} | {:>8} {:>8} | {:>8} | {:>8} {:>8}",
        "", "RssAnon", "RssFile", "RssAnon", "RssFile", "", "RssAnon", "RssFile"
    );
    for (k, name) in memory.names.iter().enumerate() {
        println!(
            "{:<20} | {:>8} {:>8} | {:>8} {:>8} | {:>8} | {:>8} {:>8}",
            name,
            mb_n(memory.idle[k].anon),
            mb_n(memory.idle[k].file),
            mb_n(memory.peak[k].anon),
            mb_n(memory.peak[k].file),
            mb_n(memory.hwm[k]),
            mb_n(memory.end[k].anon),
            mb_n(memory.end[k].file),
        );
    }
    println!(
        "  (from /proc/<pid>/status. RssAnon: the process's own memory, heap, stacks and written data; RssFile: pages of \
         its binary and libraries mapped in, shared with the page cache. peak: the 100 ms sample with the largest \
         RssAnon + RssFile over the warm-up and the rounds; VmHWM: the kernel's peak of the whole RSS)"
    );
    let threads: Vec<String> = gateways
        .iter()
        .zip(["gateway", "baseline"])
        .filter_map(|(g, name)| g.threads.map(|t| format!("{name} {t}")))
        .collect();
    if !threads.is_empty() {
        println!("threads (idle): {}", threads.join(", "));
    }
    for (g, name) in gateways.iter().zip(["gateway", "baseline"]) {
        let mut sorted = g.ready_ms.clone();
        sorted.sort_by(f64::total_cmp);
        println!(
            "{name} exec-to-ready (spawn to /readyz 200): median {:.1} ms of {} starts ({})",
            median(&g.ready_ms),
            g.ready_ms.len(),
            sorted.iter().map(|m| format!("{m:.1}")).collect::<Vec<_>>().join(" ")
        );
    }
    println!(
        "gateway log (stderr, RUST_LOG=info) per request at saturation: {}",
        shown
            .iter()
            .map(|&i| (&CONFIGS[i], &st[i]))
            .filter(|(c, _)| c.is_gateway())
            .map(|(c, s)| {
                let n = s.sat.iter().map(|r| r.0).sum::<u64>() as f64 + s.paced_latencies.len() as f64;
                format!(
                    "{} {:.2} lines ({:.0} B)",
                    c.tag,
                    s.log_lines as f64 / n.max(1.0),
                    s.log_bytes as f64 / n.max(1.0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (g, tag) in gateways.iter().zip(["f", "f0"]) {
        let new_lookups = delta(&g.lookups_end, &g.lookups_warm);
        let hits: u64 = new_lookups
            .iter()
            .filter(|(k, _)| k.contains("cache_hit"))
            .map(|(_, v)| v)
            .sum();
        let calls: Vec<String> = new_lookups
            .iter()
            .filter(|(k, _)| !k.contains("cache_hit"))
            .map(|(k, v)| format!("{} {v}", k.replace('"', "")))
            .collect();
        println!(
            "Connect-aware ({tag}) after its first request: {hits} facts from the caches; lookups sent to Connect: {}",
            if calls.is_empty() {
                "none".to_string()
            } else {
                calls.join(", ")
            }
        );
    }

    let pt_rate = st[B].rate();
    let pt_cpu = st[B].cpu_per_1000();
    let up_p99 = st[A].paced_percentiles().1;
    println!();
    println!(
        "RATIOS against the bare pass-through (b); p99 added over the upstream alone (a) at ~{:.0} req/s",
        o.rate
    );
    println!(
        "{:<3} {:<24} {:>11} {:>18} {:>22}",
        "", "configuration", "req/s ratio", "CPU/request ratio", "p99 added @1000/s, ms"
    );
    for &i in shown.iter().filter(|&&i| i != A) {
        let (cfg, s) = (&CONFIGS[i], &st[i]);
        println!(
            "{:<3} {:<24} {:>10.2}x {:>17.2}x {:>22}",
            cfg.tag,
            cfg.label,
            s.rate() / pt_rate,
            s.cpu_per_1000() / pt_cpu,
            format!("{:+.3}", (s.paced_percentiles().1 - up_p99) / 1000.0)
        );
    }

    if let [new, old] = gateways {
        println!();
        println!(
            "AGAINST THE BASELINE (new/baseline; new {}, baseline {}; same config, same rounds)",
            new.binary.display(),
            old.binary.display()
        );
        println!(
            "{:<3} {:<16} {:>15} {:>11} {:>21} {:>11}",
            "", "configuration", "req/s new/base", "(rounds)", "CPU/request new/base", "(rounds)"
        );
        for (n, b) in PAIRS {
            let (sn, sb) = (&st[n], &st[b]);
            let per_round = |f: fn(&SatRound) -> f64| {
                let r: Vec<f64> = sn.sat.iter().zip(&sb.sat).map(|(x, y)| f(x) / f(y)).collect();
                format!(
                    "{:.2}-{:.2}",
                    r.iter().copied().fold(f64::INFINITY, f64::min),
                    r.iter().copied().fold(0.0, f64::max)
                )
            };
            println!(
                "{:<3} {:<16} {:>15} {:>11} {:>21} {:>11}",
                CONFIGS[n].tag,
                CONFIGS[n].label.trim_start_matches("gateway, "),
                ratio_text(sn.rate(), sb.rate(), true),
                per_round(|r| r.0 as f64 / r.1),
                ratio_text(sn.cpu_per_1000(), sb.cpu_per_1000(), false),
                per_round(|r| r.2 / r.0.max(1) as f64),
            );
        }
        println!(
            "{:<20} {:>13} {:>13} {:>14} {:>14}",
            "", "idle RssAnon", "idle RssFile", "peak (VmHWM)", "exec-to-ready"
        );
        let (ready_new, ready_old) = (median(&new.ready_ms), median(&old.ready_ms));
        for (k, (name, ready)) in [("new", ready_new), ("baseline", ready_old)].into_iter().enumerate() {
            println!(
                "{:<20} {:>13} {:>13} {:>14} {:>14}",
                name,
                mb(memory.idle[k].anon),
                mb(memory.idle[k].file),
                mb(memory.hwm[k]),
                format!("{ready:.1} ms")
            );
        }
        let kib_ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => ratio_text(a as f64, b as f64, false),
            _ => "-".into(),
        };
        println!(
            "{:<20} {:>13} {:>13} {:>14} {:>14}",
            "new/baseline",
            kib_ratio(memory.idle[0].anon, memory.idle[1].anon),
            kib_ratio(memory.idle[0].file, memory.idle[1].file),
            kib_ratio(memory.hwm[0], memory.hwm[1]),
            ratio_text(ready_new, ready_old, false)
        );
        println!(
            "  (req/s: ratio of the medians of the rounds; CPU: of all rounds' CPU over their requests; (rounds): \
             the lowest and highest ratio of one round's pair; ! marks a figure more than 10% worse than the baseline's)"
        );
    }

    println!();
    println!("TARGETS (information only, the exit status does not depend on them)");
    let line = |ok: bool, text: String| println!("  [{}] {text}", if ok { "PASS" } else { "FAIL" });
    let r_c = st[C].rate() / pt_rate;
    line(
        r_c >= 0.6,
        format!("gateway one token req/s >= 0.60x pass-through: {r_c:.2}x"),
    );
    let r_d = st[D].rate() / pt_rate;
    line(
        r_d >= 0.45,
        format!("gateway fresh token req/s >= 0.45x pass-through: {r_d:.2}x"),
    );
    let cpu_c = st[C].cpu_per_1000() / pt_cpu;
    line(
        cpu_c <= 2.5,
        format!(
            "gateway CPU per request <= 2.5x pass-through's: {cpu_c:.2}x (fresh token: {:.2}x)",
            st[D].cpu_per_1000() / pt_cpu
        ),
    );
    let added = (st[C].paced_percentiles().1 - up_p99) / 1000.0;
    line(
        added <= 0.5,
        format!(
            "gateway p99 added over the upstream alone at ~{:.0} req/s <= 0.5 ms: {added:+.3} ms (pass-through: {:+.3} ms)",
            o.rate,
            (st[B].paced_percentiles().1 - up_p99) / 1000.0
        ),
    );
    // The memory a sidecar's limit is about is its own (RssAnon); RssFile is the
    // binary's clean code pages, shared and reclaimable, shown beside it.
    let mb_of = |kib: Option<u64>| kib.map_or(f64::NAN, |k| k as f64 / 1024.0);
    let idle_mb = mb_of(memory.idle[0].anon);
    line(
        idle_mb <= 8.0,
        format!(
            "gateway RssAnon idle <= 8 MB: {idle_mb:.1} MB ({})",
            split_text(&memory.idle[0])
        ),
    );
    let peak_mb = mb_of(memory.peak[0].anon);
    line(
        peak_mb <= 16.0,
        format!(
            "gateway RssAnon peak (largest sample) <= 16 MB: {peak_mb:.1} MB ({}; VmHWM {:.1} MB)",
            split_text(&memory.peak[0]),
            mb_of(memory.hwm[0])
        ),
    );
    let ready = median(&gateways[0].ready_ms);
    line(ready <= 20.0, format!("gateway exec-to-ready <= 20 ms: {ready:.1} ms"));
    let (forged, success) = (st[E1].cpu_per_1000(), st[C].cpu_per_1000());
    line(
        forged < success,
        format!(
            "forged-token path cheaper in CPU per request than the success path: {forged:.4} vs {success:.4} CPU s/1000 ({:.2}x)",
            forged / success
        ),
    );
}

// ---------------------------------------------------------------------------
// --profile

fn perf_event() -> &'static str {
    let out = Command::new("perf")
        .args(["stat", "-e", "instructions", "true"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if text.contains("not supported") || text.contains("not counted") {
                "cpu-clock"
            } else {
                "cycles"
            }
        }
        _ => "cpu-clock",
    }
}

/// Whether `perf record` works here; `Err(why)` when it does not.
fn perf_usable(event: &str, dir: &Path) -> Result<(), String> {
    let paranoid = fs::read_to_string("/proc/sys/kernel/perf_event_paranoid").unwrap_or_default();
    let out = Command::new("perf")
        .args(["record", "-e", event, "-F", "999", "-g", "-o"])
        .arg(dir.join("perf-check.data"))
        .args(["--", "true"])
        .output()
        .map_err(|e| format!("perf: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "perf record failed (kernel.perf_event_paranoid = {}): {}",
            paranoid.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn profile(opts: Options, i: usize) {
    let cfg = CONFIGS[i];
    let (dir, ticks, issuer, _forger, fixed) = setup(&opts);
    let _ = fs::create_dir_all(&opts.profile_out);
    let event = perf_event();
    let use_callgrind = match opts.profiler.as_deref() {
        Some("callgrind") => true,
        Some("perf") | None => match perf_usable(event, &dir) {
            Ok(()) => false,
            Err(why) => {
                println!("perf cannot run here: {why}");
                println!("falling back to valgrind --tool=callgrind on a shorter, lighter run");
                true
            }
        },
        Some(other) => fatal(format!("--profiler: {other:?} is neither perf nor callgrind")),
    };
    if use_callgrind && cfg.server != Server::Gateway {
        fatal("the callgrind fallback profiles the gateway only");
    }
    let upstream = start_nginx(&opts.nginx, &dir);
    let passthrough = (cfg.server == Server::PassThrough).then(|| start_passthrough(&opts.passthrough, upstream.1));
    let files = write_gateway_files(&dir, upstream.1, opts.shared.as_deref());
    let callgrind_out = opts.profile_out.join(format!("callgrind-{}.out", cfg.key));
    let wrapper: Vec<String> = if use_callgrind {
        vec![
            "valgrind".into(),
            "--tool=callgrind".into(),
            format!("--callgrind-out-file={}", callgrind_out.display()),
        ]
    } else {
        Vec::new()
    };
    let gateway = (cfg.server == Server::Gateway).then(|| {
        start_gateway(
            &opts.binary,
            &files.config,
            &dir.join("gateway.log"),
            &wrapper,
            Duration::from_secs(if use_callgrind { 180 } else { 20 }),
        )
        .unwrap_or_else(|e| fatal(e))
    });
    let servers = Servers {
        upstream,
        passthrough,
        gateway,
        baseline: None,
    };
    let mut bench = Bench::new(opts, &dir, ticks, servers, files.audit.clone(), fixed, issuer);
    sanity(&mut bench, &[i]);
    let (addr, pid) = bench.target(&cfg);
    let seconds = bench.opts.profile_seconds;
    println!(
        "profiling {} ({}), pid {pid}, {}",
        cfg.label,
        cfg.tag,
        if use_callgrind {
            "valgrind --tool=callgrind".to_string()
        } else {
            format!("perf record -e {event} -F 999 -g")
        }
    );

    if use_callgrind {
        // Under valgrind the gateway is ~50x slower: a few connections.
        let tokens = if cfg.token == Token::Fresh {
            bench.pool.take(3000 * seconds as usize)
        } else {
            vec![bench.fixed_token(cfg.token)]
        };
        let body = bench.body_file(&cfg);
        let r = bench
            .wrk
            .run(addr, &tokens, &body, seconds, 4, 1)
            .unwrap_or_else(|e| fatal(e));
        println!("load: {} requests in {:.1} s under callgrind", r.requests, r.seconds);
        if let Some(g) = bench.gateway.as_mut() {
            signal_pid(g.proc.pid(), "TERM");
            if g.proc.wait_for(Duration::from_secs(60)).is_none() {
                println!("the gateway did not exit within 60 s of SIGTERM");
            }
        }
        let out = Command::new("callgrind_annotate")
            .arg(&callgrind_out)
            .output()
            .unwrap_or_else(|e| fatal(format!("callgrind_annotate: {e}")));
        let text = String::from_utf8_lossy(&out.stdout);
        println!("callgrind_annotate {} (top entries):", callgrind_out.display());
        for l in text.lines().take(60) {
            println!("{l}");
        }
    } else {
        let warm = bench.tokens_for_saturation(i, 2);
        let body = bench.body_file(&cfg);
        let w = bench
            .wrk
            .run(addr, &warm, &body, 2, bench.opts.connections, bench.opts.threads)
            .unwrap_or_else(|e| fatal(e));
        let rate = w.requests as f64 / w.seconds;
        println!("warm-up: {rate:.0} req/s");
        // wrk runs 2 s longer than perf records: the profile is all under load.
        let tokens = if cfg.token == Token::Fresh {
            bench.pool.take((rate * 1.3 * (seconds + 3) as f64) as usize + 1000)
        } else {
            vec![bench.fixed_token(cfg.token)]
        };
        let cpu0 = cpu_ticks(pid);
        let load = bench
            .wrk
            .spawn(
                addr,
                &tokens,
                &body,
                seconds + 2,
                bench.opts.connections,
                bench.opts.threads,
            )
            .unwrap_or_else(|e| fatal(e));
        std::thread::sleep(Duration::from_millis(1000));
        let data = bench.opts.profile_out.join(format!("perf-{}.data", cfg.key));
        let mut command = Command::new("perf");
        command
            .args(["record", "-e", event, "-F", "999", "-g", "-p", &pid.to_string(), "-o"])
            .arg(&data)
            .arg("--")
            .arg("sleep")
            .arg(seconds.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let perf = Proc::spawn("perf", command).unwrap_or_else(|e| fatal(e));
        let output = {
            let mut p = perf;
            let mut err = String::new();
            if let Some(mut e) = p.child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let status = p.child.wait().map(|s| s.to_string()).unwrap_or_default();
            (status, err)
        };
        let r = bench.wrk.finish(load).unwrap_or_else(|e| fatal(e));
        let cpu = (cpu_ticks(pid) - cpu0) as f64 / ticks;
        println!(
            "load: {:.0} req/s, {:.4} CPU s/1000 requests during the profiled run; perf: {} {}",
            r.requests as f64 / r.seconds,
            cpu * 1000.0 / r.requests.max(1) as f64,
            output.0,
            output
                .1
                .lines()
                .filter(|l| l.contains("samples"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let report = |extra: &[&str]| {
            Command::new("perf")
                .arg("report")
                .arg("-i")
                .arg(&data)
                .args(["--no-children", "--stdio"])
                .args(extra)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_else(|e| fatal(format!("perf report: {e}")))
        };
        let flat = report(&["-g", "none", "--percent-limit", "0.5"]);
        let by_dso = report(&["-g", "none", "--sort", "dso", "--percent-limit", "1"]);
        let full = report(&["--percent-limit", "1"]);
        let full_path = bench.opts.profile_out.join(format!("perf-{}.txt", cfg.key));
        let _ = fs::write(&full_path, &full);
        println!();
        let entries = |text: &str, limit: usize| {
            text.lines()
                .filter(|l| {
                    !l.trim().is_empty() && (!l.starts_with('#') || l.contains("Overhead") || l.contains("Samples"))
                })
                .take(limit)
                .map(|l| l.trim_end().to_owned())
                .collect::<Vec<_>>()
        };
        println!("perf report --no-children --stdio -g none --sort dso (where the time goes):");
        for l in entries(&by_dso, 12) {
            println!("{l}");
        }
        println!();
        println!(
            "perf report --no-children --stdio -g none --percent-limit 0.5 (top entries; the full report, \
             --percent-limit 1 with call graphs, is in {}):",
            full_path.display()
        );
        for l in entries(&flat, 45) {
            println!("{l}");
        }
    }
    for s in &bench.stats {
        for (what, n) in &s.unexpected {
            println!("! unexpected: {what}: {n}");
        }
    }
    drop(bench);
    kill_all();
}
