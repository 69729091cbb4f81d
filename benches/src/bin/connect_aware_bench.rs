//! Benchmark (not a test): the gateway's CPU cost of a Connect-aware grant.
//! Two gateways (the same binary) run side by side against in-process
//! stand-ins (an issuer, and a Connect that checks SigV4), one
//! with a claims-only grant (A), one with `agents = "my_hierarchy"` and
//! `connect_permissions = true` (B, lookups cached for an hour, warmed by the
//! first request). Short rounds alternate between them (A B, then B A, …);
//! each round's CPU is the gateway process's utime + stime from
//! `/proc/<pid>/stat`. Run with `benches/connect_aware.sh`.
//!
//! Options: `--rounds N` (per gateway, default 10), `--requests N` (per round,
//! default 2000), `--concurrency N` (default 8), `--binary PATH` (default
//! `target/dist/connect-monitor-gateway`). Exit status 0 when every request
//! got a 200, no signature was refused, the audit has a line per request and
//! B made no lookup after warm-up; 1 otherwise.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use bytes::Bytes;
use connect_monitor_gateway::test_util::ConnectStandIn;
use connect_monitor_gateway::test_util::HttpClient;
use connect_monitor_gateway::test_util::{jwks_of, IssuerStandIn, SigningKey};
use http_body_util::{BodyExt, Full};
use jsonwebtoken::Algorithm;
use serde_json::json;

const KEY_ID: &str = "AKIABENCHGATEWAY0001";
const SECRET: &str = "connect-aware-bench-secret";
const TOKEN: &str = "connect-aware-bench-session";
const INSTANCE: &str = "bench-instance";
const LEAD: &str = "lead-1";
/// The lookups a Connect-aware grant makes, and the call itself.
const OPERATIONS: [&str; 4] = [
    "DescribeContact",
    "DescribeUser",
    "ListSecurityProfilePermissions",
    "MonitorContact",
];

/// The value after `name`, or `default`.
fn option<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)) {
        Some(v) => v.parse().unwrap_or_else(|_| panic!("{name}: cannot read {v:?}")),
        None => default,
    }
}

/// Clock ticks per second, as `/proc/<pid>/stat` counts CPU time.
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in clock ticks. The fields after the command
/// name (which is in parentheses and may hold spaces): state is the 3rd
/// field, utime the 14th, stime the 15th.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the gateway's /proc stat");
    let after_name = &stat[stat.rfind(')').expect("a command name") + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields[n - 3].parse::<u64>().expect("a tick count");
    field(14) + field(15)
}

/// The Connect records grant B reads: the lead in `g-team`, allowed to
/// listen in, and a call of an agent in her team.
fn prime(connect: &ConnectStandIn) {
    connect.add_user(json!({"Id": LEAD, "Username": "lead@bench.example",
                            "HierarchyGroupId": "g-team", "SecurityProfileIds": ["sp-lead"]}));
    connect.add_security_profile("sp-lead", &["BasicAgentAccess", "ManagerListenIn"]);
    let group =
        |g: &str| json!({"Arn": format!("arn:aws:connect:us-east-1:123456789012:instance/{INSTANCE}/agent-group/{g}")});
    connect.add_contact(json!({
        "Id": "contact-1", "Channel": "VOICE", "QueueInfo": {"Id": "q-1"},
        "AgentInfo": {"Id": "agent-1", "HierarchyGroups": {"Level1": group("g-site"), "Level2": group("g-team")}},
    }));
}

/// One gateway under test: its process and the stand-in it calls.
struct Gateway {
    label: &'static str,
    child: Child,
    api: String,
    connect: ConnectStandIn,
    dir: PathBuf,
    /// Per round: (requests, CPU seconds, wall seconds).
    rounds: Vec<(u64, f64, f64)>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Gateway {
    /// Writes its config and policy (the grant's extra rules in `rules`) and
    /// starts the binary; returns once it says it is serving.
    async fn start(label: &'static str, rules: &str, binary: &str, issuer: &IssuerStandIn) -> Gateway {
        let creds = Credentials::new(KEY_ID, SECRET, Some(TOKEN.into()), None, "bench");
        let connect = ConnectStandIn::start(creds).await.expect("the Connect stand-in");
        prime(&connect);
        let dir = std::env::temp_dir().join(format!("cmg-connect-aware-{}-{label}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let policy = format!(
            "[[grant]]\nname = \"{label}\"\nclaims = {{ groups = \"team-leads\" }}\ninstances = [\"*\"]\n\
             capabilities = [\"SILENT_MONITOR\"]\nas_user = \"self\"\n{rules}\n"
        );
        std::fs::write(dir.join("policy.toml"), policy).expect("the policy");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\n\
             [[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"bench\"]\nalgorithms = [\"EdDSA\"]\njwks_url = \"{}\"\n\n\
             [connect]\nmax_rate = 1000000.0\nburst = 1000000\nregion = \"us-east-1\"\nendpoint = \"{}\"\n\n[connect.lookups]\nttl = \"1h\"\n\n\
             [connect.quotas]\nDescribeContact = {{ rate = 1000000.0, burst = 1000000 }}\nDescribeUser = {{ rate = 1000000.0, burst = 1000000 }}\nListSecurityProfilePermissions = {{ rate = 1000000.0, burst = 1000000 }}\n\n\
             [policy]\nfile = \"policy.toml\"\nuser_id_claim = \"connect_user_id\"\n\n[audit]\nfile = \"{}\"\n",
            issuer.issuer(),
            issuer.jwks_url(),
            connect.url(),
            dir.join("audit.log").display()
        );
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config).expect("the config");
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn,connect_monitor_gateway::gateway=info")
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_SESSION_TOKEN", TOKEN)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{binary}: {e} (benches/connect_aware.sh builds it)"));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            // Read to the end, so the gateway never blocks on a full pipe.
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("connect-monitor-gateway serving") {
                    let _ = tx.send(line);
                }
            }
        });
        let serving = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("gateway {label} did not start"));
        let serving: serde_json::Value = serde_json::from_str(&serving).expect("a JSON log line");
        let api = serving["fields"]["listen"]
            .as_str()
            .expect("its listen address")
            .to_owned();
        Gateway {
            label,
            child,
            api,
            connect,
            dir,
            rounds: Vec::new(),
        }
    }

    fn calls(&self) -> String {
        let counts: Vec<String> = OPERATIONS
            .iter()
            .map(|op| format!("{op} {}", self.connect.calls(op)))
            .collect();
        counts.join(", ")
    }

    /// How many lookups (every operation but MonitorContact) it got.
    fn lookups(&self) -> Vec<usize> {
        OPERATIONS[..3].iter().map(|op| self.connect.calls(op)).collect()
    }

    fn audit_lines(&self) -> usize {
        std::fs::read_to_string(self.dir.join("audit.log")).map_or(0, |t| t.lines().count())
    }

    fn total(&self) -> (u64, f64, f64) {
        self.rounds
            .iter()
            .fold((0, 0.0, 0.0), |(n, c, w), r| (n + r.0, c + r.1, w + r.2))
    }
}

/// Sends `n` requests, `concurrency` at a time; returns how many got a 200.
async fn drive(client: &HttpClient, api: &str, token: &Arc<String>, n: u64, concurrency: u64) -> u64 {
    let next = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let body = Bytes::from(
        json!({"InstanceId": INSTANCE, "ContactId": "contact-1", "UserId": LEAD,
               "AllowedMonitorCapabilities": ["SILENT_MONITOR"]})
        .to_string(),
    );
    let url = format!("http://{api}/contact/monitor");
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, token, next, ok, body, url) = (
            client.clone(),
            token.clone(),
            next.clone(),
            ok.clone(),
            body.clone(),
            url.clone(),
        );
        workers.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n {
                let request = http::Request::post(url.as_str())
                    .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(Full::new(body.clone()))
                    .expect("a well-formed request");
                if let Ok(Ok(response)) = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await {
                    let status = response.status();
                    let _ = response.into_body().collect().await;
                    if status == http::StatusCode::OK {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    ok.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let rounds: usize = option("--rounds", 10).max(1);
    let requests: u64 = option("--requests", 2000);
    let concurrency: u64 = option("--concurrency", 8);
    let binary: String = option("--binary", "target/dist/connect-monitor-gateway".to_owned());
    let ticks = clock_ticks();

    let pem = std::fs::read("tests/fixtures/ed25519.pem").expect("run from the repository root");
    let key = SigningKey::from_pem(&pem, Algorithm::EdDSA, "bench-1").expect("the test key");
    let issuer = IssuerStandIn::start(jwks_of(&[&key]))
        .await
        .expect("the issuer stand-in");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let token = Arc::new(key.mint(&json!({
        "iss": issuer.issuer(), "aud": "bench", "sub": "lead", "iat": now, "exp": now + 3600,
        "groups": ["team-leads"], "connect_user_id": LEAD,
    })));
    let client = connect_monitor_gateway::test_util::http_client();

    let mut gateways = [
        Gateway::start("A claims-only", "", &binary, &issuer).await,
        Gateway::start(
            "B connect-aware",
            "agents = \"my_hierarchy\"\nconnect_permissions = true",
            &binary,
            &issuer,
        )
        .await,
    ];
    // Warm-up: one request alone (it fills B's caches), then a round's worth
    // unmeasured (connections, allocator, branch predictors).
    let mut failures = 0;
    for g in &gateways {
        failures += 1 - drive(&client, &g.api, &token, 1, 1).await;
        failures += requests / 4 - drive(&client, &g.api, &token, requests / 4, concurrency).await;
    }
    let (after_warm_up, lookups_at_warm_up) = (gateways[1].calls(), gateways[1].lookups());
    println!(
        "connect_aware bench: {rounds} rounds x {requests} requests per gateway, {concurrency} concurrent, \
         {} CPU(s), CPU from /proc/<pid>/stat at {ticks} ticks/s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "{:>5}  {:<16} {:>8} {:>8} {:>12} {:>9}",
        "round", "grant", "requests", "CPU s", "CPU s/1000", "req/s"
    );
    for round in 0..rounds {
        // A then B, then B then A: neither always goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let g = &mut gateways[i];
            let pid = g.child.id();
            let (cpu_before, started) = (cpu_ticks(pid), Instant::now());
            let ok = drive(&client, &g.api, &token, requests, concurrency).await;
            let (wall, cpu) = (
                started.elapsed().as_secs_f64(),
                (cpu_ticks(pid) - cpu_before) as f64 / ticks,
            );
            failures += requests - ok;
            g.rounds.push((requests, cpu, wall));
            println!(
                "{:>5}  {:<16} {:>8} {:>8.2} {:>12.4} {:>9.0}",
                round + 1,
                g.label,
                requests,
                cpu,
                cpu * 1000.0 / requests as f64,
                requests as f64 / wall
            );
        }
    }

    println!();
    println!(
        "{:<16} {:>8} {:>8} {:>12} {:>9}",
        "total", "requests", "CPU s", "CPU s/1000", "req/s"
    );
    let mut per_thousand = [0.0; 2];
    for (i, g) in gateways.iter().enumerate() {
        let (n, cpu, wall) = g.total();
        per_thousand[i] = cpu * 1000.0 / n as f64;
        println!(
            "{:<16} {:>8} {:>8.2} {:>12.4} {:>9.0}",
            g.label,
            n,
            cpu,
            per_thousand[i],
            n as f64 / wall
        );
    }
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|r| gateways[1].rounds[r].1 / gateways[0].rounds[r].1.max(f64::EPSILON))
        .collect();
    let by_round: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "ratio B/A, CPU per request: {:.2} overall, {:.2} median of rounds (by round: {})",
        per_thousand[1] / per_thousand[0].max(f64::EPSILON),
        ratios[rounds / 2],
        by_round.join(" ")
    );
    println!();
    println!("Connect stand-in calls for B, after warm-up:  {after_warm_up}");
    println!(
        "Connect stand-in calls for B, after all rounds: {}",
        gateways[1].calls()
    );

    let sent = 1 + requests / 4 + rounds as u64 * requests;
    let audited: Vec<usize> = gateways.iter().map(Gateway::audit_lines).collect();
    let bad_signatures: usize = gateways.iter().map(|g| g.connect.bad_signatures().len()).sum();
    let lookups_after_warm_up = gateways[1].lookups() != lookups_at_warm_up;
    println!(
        "non-200 answers: {failures}; audit lines A {} B {} (sent {sent} each); bad signatures: {bad_signatures}",
        audited[0], audited[1]
    );
    let ok =
        failures == 0 && bad_signatures == 0 && audited.iter().all(|&a| a as u64 == sent) && !lookups_after_warm_up;
    println!("connect_aware bench: {}", if ok { "OK" } else { "PROBLEMS" });
    drop(gateways);
    std::process::exit(if ok { 0 } else { 1 });
}
