//! Soak: the gateway binary under minutes of mixed traffic against in-process
//! stand-ins (an issuer, and a Connect that checks SigV4 and answers after
//! 5 ms); prints the gateway's RssAnon and RssFile at start, every minute and
//! at the end, answers by status, and checks the audit has one line per
//! request, every request got an answer and Connect refused no signature.
//! Run with `benches/soak.sh` (not in CI).
//!
//! Options: `--seconds N` (default 600), `--workers N` (concurrent requests,
//! default 8), `--binary PATH` (default `target/dist/connect-monitor-gateway`).
//! Exit status 0 when every check held, 1 otherwise.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use connect_monitor_gateway::test_util::{jwks_of, IssuerStandIn, SigningKey};
use connect_monitor_gateway::test_util::{ConnectStandIn, Reply};
use http_body_util::Full;
use jsonwebtoken::Algorithm;
use serde_json::json;

const ACCESS_KEY: &str = "AKIASOAKGATEWAY00001";
const SECRET_KEY: &str = "soak-secret-key";
const SESSION_TOKEN: &str = "soak-session-token";

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A `kB` field of /proc/<pid>/status, in KiB (0 when unreadable).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The gateway's resident memory: RssAnon (its own: heap, stacks, written
/// data) and RssFile (pages of the binary and libraries mapped in).
fn rss(pid: u32) -> String {
    format!(
        "RssAnon {} KiB + RssFile {} KiB",
        status_kib(pid, "RssAnon"),
        status_kib(pid, "RssFile")
    )
}

#[tokio::main]
async fn main() {
    let seconds = arg("--seconds", 600);
    let workers = arg("--workers", 8);
    let binary = std::env::args()
        .skip_while(|a| a != "--binary")
        .nth(1)
        .unwrap_or_else(|| "target/dist/connect-monitor-gateway".into());

    let key_pem = std::fs::read("tests/fixtures/ed25519.pem").expect("run from the repository root");
    let key = SigningKey::from_pem(&key_pem, Algorithm::EdDSA, "soak-1").unwrap();
    let issuer = IssuerStandIn::start(jwks_of(&[&key])).await.unwrap();
    let creds = aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN.into()), None, "s");
    let connect = Arc::new(ConnectStandIn::start(creds).await.unwrap());
    connect.set_default(Reply::Delayed(Duration::from_millis(5), Box::new(Reply::Success)));

    let dir = std::env::temp_dir().join(format!("cmg-soak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("policy.toml"),
        "[[grant]]\nname = \"sup\"\nclaims = { groups = \"supervisors\" }\ninstances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\"]\nas_user = \"self\"\n",
    )
    .unwrap();
    let audit = dir.join("audit.log");
    std::fs::write(
        dir.join("gateway.toml"),
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\nmax_in_flight = 1024\n\
             [[auth.issuers]]\nissuer = \"{}\"\naudiences = [\"cmg\"]\nalgorithms = [\"EdDSA\"]\njwks_url = \"{}\"\njwks_refresh = \"30s\"\n\
             [connect]\nmax_rate = 1000000.0\nburst = 1000000\nregion = \"us-east-1\"\nendpoint = \"{}\"\n[policy]\nfile = \"policy.toml\"\n[audit]\nfile = \"{}\"\n",
            issuer.issuer(),
            issuer.jwks_url(),
            connect.url(),
            audit.display()
        ),
    )
    .unwrap();

    let mut child = Command::new(&binary)
        .args(["serve", "--config", dir.join("gateway.toml").to_str().unwrap()])
        .env("RUST_LOG", "warn,connect_monitor_gateway::gateway=info")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway binary (benches/soak.sh builds it)");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("connect-monitor-gateway serving") {
                    let _ = tx.send(line.clone());
                }
                log.lock().unwrap().push(line);
            }
        });
    }
    let started_line = rx.recv_timeout(Duration::from_secs(20)).expect("gateway started");
    let v: serde_json::Value = serde_json::from_str(&started_line).unwrap();
    let api = v["fields"]["listen"].as_str().unwrap().to_owned();

    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = |user: &str| {
        json!({"iss": issuer.issuer(), "aud": "cmg", "sub": user, "exp": now + seconds + 3600,
               "groups": ["supervisors"], "connect_user_id": user})
    };
    let good = Arc::new(key.mint(&claims("u1")));
    let forged = {
        let mut t = key.mint(&claims("u2"));
        t.truncate(t.len() - 4);
        t.push_str("AAAA");
        Arc::new(t)
    };
    let client = connect_monitor_gateway::test_util::http_client();
    let counts = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let rss_start = {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss(pid)
    };
    println!("soak: {seconds} s, {workers} workers, gateway {binary} pid {pid}; at start {rss_start}");

    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, api, good, forged, counts, sent, connect) = (
            client.clone(),
            api.clone(),
            good.clone(),
            forged.clone(),
            counts.clone(),
            sent.clone(),
            connect.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i: u64 = w;
            while Instant::now() < deadline {
                i += workers;
                // The mix: mostly allowed; some denied, forged, invalid, throttled once.
                let (token, body) = match i % 20 {
                    0 => (good.as_str(), r#"{"InstanceId":"i","ContactId":"c","UserId":"other"}"#),
                    1 => (forged.as_str(), r#"{"InstanceId":"i","ContactId":"c","UserId":"u1"}"#),
                    2 => (good.as_str(), r#"{"InstanceId":"i","ContactId":"c"}"#),
                    3 => {
                        connect.script([Reply::error(429, "ThrottlingException")]);
                        (good.as_str(), r#"{"InstanceId":"i","ContactId":"c","UserId":"u1"}"#)
                    }
                    _ => (good.as_str(), r#"{"InstanceId":"i","ContactId":"c","UserId":"u1"}"#),
                };
                let req = http::Request::post(format!("http://{api}/contact/monitor"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                let status = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
                    Ok(Ok(r)) => {
                        let status = r.status().as_u16();
                        let _ = http_body_util::BodyExt::collect(r.into_body()).await;
                        status
                    }
                    _ => 0,
                };
                sent.fetch_add(1, Ordering::Relaxed);
                *counts.lock().unwrap().entry(status).or_default() += 1;
            }
        }));
    }
    let soak_started = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(60).min(deadline.saturating_duration_since(Instant::now()))).await;
        println!(
            "  t+{:>3} s: {} requests, {}",
            soak_started.elapsed().as_secs(),
            sent.load(Ordering::Relaxed),
            rss(pid)
        );
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rss_end = rss(pid);
    let total = sent.load(Ordering::Relaxed);
    let audit_lines = std::fs::read_to_string(&audit).map(|t| t.lines().count()).unwrap_or(0) as u64;
    let errors_logged = log.lock().unwrap().iter().filter(|l| l.contains("\"ERROR\"")).count();
    let counts = counts.lock().unwrap().clone();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let exit = child.wait().unwrap();
    println!(
        "requests: {total} in {seconds} s ({:.0}/s)",
        total as f64 / seconds as f64
    );
    println!("answers by status: {counts:?} (0 = no answer)");
    println!("memory: at start {rss_start}; at end {rss_end}");
    println!("audit lines: {audit_lines} (requests {total}); ERROR log lines: {errors_logged}");
    println!(
        "bad signatures at the Connect stand-in: {}",
        connect.bad_signatures().len()
    );
    println!("gateway exit after SIGTERM: {:?}", exit.code());
    let _ = std::fs::remove_dir_all(&dir);
    let ok = audit_lines == total && !counts.contains_key(&0) && connect.bad_signatures().is_empty();
    println!("soak: {}", if ok { "OK" } else { "PROBLEMS" });
    std::process::exit(if ok { 0 } else { 1 });
}
