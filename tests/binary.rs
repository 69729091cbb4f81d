//! The real binary: `check`, `explain`, `--version`, `demo --once`, and
//! `serve` against in-process stand-ins with every log line captured at
//! `RUST_LOG=trace`, none of which may hold a token or a secret.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use connect_monitor_gateway::demo::connect_standin::{ConnectStandIn, Reply};
use connect_monitor_gateway::demo::issuer_standin::IssuerStandIn;
use support::{Keys, Options, ACCESS_KEY, BODY, SECRET_KEY, SESSION_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CMG_CONFIG")
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_the_example_configs() {
    let (code, stdout, stderr) = run(&["check", "--config", &repo("config/gateway.example.toml")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn check_names_an_unknown_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["policy.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{f}")), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(repo("config/gateway.example.toml"))
        .unwrap()
        .replace("max_in_flight = 256", "max_in_flight = 256\nmax_inflight = 3");
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, stderr) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("server.max_inflight"), "{stderr}");
    assert!(stderr.contains("unknown field `max_inflight`"), "{stderr}");
}

#[test]
fn check_reports_every_problem_by_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("policy.toml"),
        "[[grant]]\nname = \"x\"\ninstances = [\"*\"]\ncapabilities = [\"WHISPER\"]\nas_user = \"self\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("g.toml"),
        "[auth]\n[[auth.issuers]]\nissuer = \"https://i\"\naudiences = []\nalgorithms = [\"none\"]\njwks_file = \"nope.json\"\n[connect]\nregion = \"us-east-1\"\n[policy]\nfile = \"policy.toml\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["check", "--config", dir.path().join("g.toml").to_str().unwrap()]);
    assert_eq!(code, 2);
    for key in [
        "auth.issuers[0].audiences",
        "auth.issuers[0].algorithms",
        "auth.issuers[0].jwks_file",
        "grant[0].capabilities",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
}

#[test]
fn serve_refuses_an_invalid_config_with_exit_2() {
    let (code, _, stderr) = run(&["serve", "--config", "/nonexistent/gateway.toml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/gateway.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[test]
fn explain_prints_the_decision_with_exit_codes() {
    let cfg = repo("config/gateway.example.toml");
    let claims = r#"{"groups":["supervisors-team-a"],"connect_user_id":"u1"}"#;
    let allow = r#"{"InstanceId":"11111111-2222-3333-4444-555555555555","ContactId":"c","UserId":"u1"}"#;
    let (code, stdout, _) = run(&["explain", "--config", &cfg, "--claims", claims, "--request", allow]);
    assert_eq!(
        (code, stdout.trim()),
        (0, r#"{"decision":"allow","grant":"team-a supervisors"}"#)
    );
    let deny = r#"{"InstanceId":"11111111-2222-3333-4444-555555555555","ContactId":"c","UserId":"u2"}"#;
    let (code, stdout, _) = run(&["explain", "--config", &cfg, "--claims", claims, "--request", deny]);
    assert_eq!(
        (code, stdout.trim()),
        (1, r#"{"decision":"deny","reason":"user_not_allowed"}"#)
    );
    let unlisted = r#"{"InstanceId":"not-listed","ContactId":"c","UserId":"u1"}"#;
    let (code, stdout, _) = run(&["explain", "--config", &cfg, "--claims", claims, "--request", unlisted]);
    assert_eq!(
        (code, stdout.trim()),
        (1, r#"{"decision":"deny","reason":"instance_not_allowed"}"#)
    );
    let (code, _, stderr) = run(&["explain", "--config", &cfg, "--claims", "[]", "--request", allow]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = run(&[
        "explain",
        "--config",
        &cfg,
        "--claims",
        claims,
        "--request",
        "{\"x\":1}",
    ]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn version_names_the_binary() {
    let (code, stdout, _) = run(&["--version"]);
    assert_eq!(
        (code, stdout.trim()),
        (
            0,
            format!("connect-monitor-gateway {}", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
}

#[test]
fn demo_once_gets_every_expected_answer() {
    let (code, stdout, stderr) = run(&["demo", "--once"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(stdout.matches("[ok]").count(), 4, "{stdout}");
    assert!(stdout.contains("every SigV4 signature verified"), "{stdout}");
}

/// Runs `serve` with captured stderr/stdout; returns the child and its output.
struct Served {
    child: std::process::Child,
    output: Arc<Mutex<String>>,
    api: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config: &Path) -> Served {
    #[allow(clippy::zombie_processes)] // reaped by Served's Drop
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_CONNECT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve starts");
    let output = Arc::new(Mutex::new(String::new()));
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut o = output.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        });
    }
    // Owned by `Served` from here, so the child is reaped whatever happens.
    let mut served = Served {
        child,
        output,
        api: String::new(),
        admin: String::new(),
    };
    // The addresses come from the start-up log line (ports are ephemeral).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = served.output.lock().unwrap().clone();
        if let Some(line) = text.lines().find(|l| l.contains("connect-monitor-gateway serving")) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            served.api = v["fields"]["listen"].as_str().unwrap().to_owned();
            served.admin = v["fields"]["admin"].as_str().unwrap().to_owned();
            return served;
        }
        assert!(Instant::now() < deadline, "serve did not start:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_reaches_logs_audit_or_metrics_at_trace() {
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    connect.script([Reply::error(429, "ThrottlingException")]);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), support::POLICY).unwrap();
    let audit = dir.path().join("audit.log");
    let text = support::config_text(&issuer, &connect, &Options::default())
        + &format!("\n[audit]\nfile = \"{}\"\n", audit.display());
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).unwrap();
    let served = serve(&cfg);

    let client = connect_monitor_gateway::http::client::build();
    let claims = serde_json::json!({
        "iss": issuer.issuer(), "aud": support::AUDIENCE, "sub": "sup-1", "exp": support::now() + 600,
        "groups": ["supervisors"], "connect_user_id": "user-1"
    });
    let token = keys.ed.mint(&claims);
    let forged = keys.foreign.mint(&claims);
    let mut statuses = Vec::new();
    for (tok, body) in [
        (&token, BODY),                                                          // throttled, then 200
        (&token, r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"other"}"#), // 403
        (&forged, BODY),                                                         // 401
        (&token, "{"),                                                           // 400
    ] {
        let req = http::Request::post(format!("http://{}/contact/monitor", served.api))
            .header("authorization", format!("Bearer {tok}"))
            .header("content-type", "application/json")
            .header("cookie", "session=cookie-secret-value")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let r = tokio::time::timeout(Duration::from_secs(20), client.request(req))
            .await
            .unwrap()
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [200, 403, 401, 400]);
    let metrics_req = http::Request::get(format!("http://{}/metrics", served.admin))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let metrics = {
        use http_body_util::BodyExt;
        let r = client.request(metrics_req).await.unwrap();
        String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    };
    assert!(metrics.contains("cmg_requests_total"), "{metrics}");

    // Every signature Connect received, to look for in the output.
    let signatures: Vec<String> = connect
        .received()
        .iter()
        .map(|r| {
            let auth = r.headers["authorization"].to_str().unwrap();
            auth.rsplit("Signature=").next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(signatures.len(), 2);
    connect_monitor_gateway::demo::connect_standin::ConnectStandIn::bad_signatures(&connect)
        .is_empty()
        .then_some(())
        .expect("signatures verified");

    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert_eq!(audit_text.lines().count(), 4, "{audit_text}");
    let logs = served.output.lock().unwrap().clone();
    assert!(logs.lines().count() > 20, "trace logging was on: {logs}");
    let secrets = [
        ("the bearer token", token.as_str()),
        ("the forged token", forged.as_str()),
        ("the token's signature", token.rsplit('.').next().unwrap()),
        ("the AWS secret key", SECRET_KEY),
        ("the AWS session token", SESSION_TOKEN),
        ("the cookie", "cookie-secret-value"),
    ];
    for (what, secret) in secrets {
        for (place, text) in [("logs", &logs), ("audit", &audit_text), ("metrics", &metrics)] {
            assert!(!text.contains(secret), "{what} found in {place}");
        }
    }
    for sig in &signatures {
        for (place, text) in [("logs", &logs), ("audit", &audit_text), ("metrics", &metrics)] {
            assert!(!text.contains(sig.as_str()), "a SigV4 signature found in {place}");
        }
    }
}

fn signal(served: &Served, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// A served gateway with an audit file, against stand-ins answering after `delay`.
async fn served_with_audit(
    delay: Duration,
) -> (
    Served,
    ConnectStandIn,
    IssuerStandIn,
    Keys,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    connect.set_default(Reply::Delayed(delay, Box::new(Reply::Success)));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), support::POLICY).unwrap();
    let audit = dir.path().join("audit.log");
    let text = support::config_text(
        &issuer,
        &connect,
        &Options {
            server_extra: "shutdown_grace = \"5s\"".into(),
            ..Options::default()
        },
    ) + &format!("\n[audit]\nfile = \"{}\"\n", audit.display());
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).unwrap();
    let served = serve(&cfg);
    (served, connect, issuer, keys, dir, audit)
}

fn token_for(keys: &Keys, issuer: &IssuerStandIn) -> String {
    keys.ed.mint(&serde_json::json!({
        "iss": issuer.issuer(), "aud": support::AUDIENCE, "sub": "sup-1", "exp": support::now() + 600,
        "groups": ["supervisors"], "connect_user_id": "user-1"
    }))
}

async fn post_to(client: &connect_monitor_gateway::http::client::HttpClient, api: &str, token: &str) -> u16 {
    let req = http::Request::post(format!("http://{api}/contact/monitor"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(20), client.request(req)).await {
        Ok(Ok(r)) => r.status().as_u16(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_twenty_in_flight_requests_finish_and_exits_0() {
    let (mut served, connect, issuer, keys, _dir, audit) = served_with_audit(Duration::from_secs(1)).await;
    let client = connect_monitor_gateway::http::client::build();
    let token = token_for(&keys, &issuer);
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let (client, api, token) = (client.clone(), served.api.clone(), token.clone());
            tokio::spawn(async move { post_to(&client, &api, &token).await })
        })
        .collect();
    // All twenty have reached Connect (and wait there for 1 s) before the signal.
    tokio::time::timeout(Duration::from_secs(10), async {
        while connect.received().len() < 20 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("20 requests in flight");
    let signalled = Instant::now();
    signal(&served, "TERM");
    // While draining (the requests wait 1 s at Connect), readiness says no as
    // soon as the signal is handled.
    let mut ready_status = 0;
    while signalled.elapsed() < Duration::from_millis(800) {
        let readyz = http::Request::get(format!("http://{}/readyz", served.admin))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        ready_status = client.request(readyz).await.map(|r| r.status().as_u16()).unwrap_or(0);
        if ready_status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready_status, 503, "/readyz during the drain");
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    assert_eq!(statuses, vec![200; 20]);
    let exit = loop {
        if let Some(status) = served.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "exited within shutdown_grace"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(exit.code(), Some(0));
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.ends_with('\n'), "no cut line");
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 20);
    assert!(lines.iter().all(|l| l["status"] == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_audit_file_after_rotation() {
    let (served, _connect, issuer, keys, dir, audit) = served_with_audit(Duration::ZERO).await;
    let client = connect_monitor_gateway::http::client::build();
    let token = token_for(&keys, &issuer);
    assert_eq!(post_to(&client, &served.api, &token).await, 200);
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    signal(&served, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !served.output.lock().unwrap().contains("SIGHUP") {
        assert!(Instant::now() < deadline, "SIGHUP was handled");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(post_to(&client, &served.api, &token).await, 200);
    assert_eq!(std::fs::read_to_string(&rotated).unwrap().lines().count(), 1);
    assert_eq!(
        std::fs::read_to_string(&audit).unwrap().lines().count(),
        1,
        "the new file gets new lines"
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_and_slow_connections_are_cut_off_with_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("policy.toml"), support::POLICY).unwrap();
    let text = support::config_text(
        &issuer,
        &connect,
        &Options {
            server_extra: "header_read_timeout = \"2s\"".into(),
            ..Options::default()
        },
    ) + "\n[audit]\nfile = \"audit.log\"\n";
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).unwrap();
    let served = serve(&cfg);
    let pid = served.child.id();
    let before = rss_kib(pid);

    // 2000 connections: half send nothing, half dribble an unfinished request head.
    let mut conns = Vec::new();
    for i in 0..2000 {
        let mut s = tokio::net::TcpStream::connect(&served.api).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\n")
                .await
                .unwrap();
        }
        conns.push((Instant::now(), s));
    }
    let during = rss_kib(pid);
    // Every one is closed by the gateway about header_read_timeout after it was opened.
    let mut slowest = Duration::ZERO;
    let closed = tokio::time::timeout(Duration::from_secs(15), async {
        for (opened, mut s) in conns {
            let mut buf = [0u8; 512];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            slowest = slowest.max(opened.elapsed());
        }
    })
    .await;
    assert!(closed.is_ok(), "some connections were still open after 15 s");
    assert!(
        slowest < Duration::from_secs(2 + 2),
        "a connection lived {slowest:?} (header_read_timeout 2 s)"
    );
    let after = rss_kib(pid);
    println!("RSS: before {before} KiB, with 2000 connections {during} KiB, after {after} KiB");
    assert!(
        during < before + 64 * 1024,
        "2000 idle connections cost {} KiB",
        during - before
    );
    // And it still serves.
    let client = connect_monitor_gateway::http::client::build();
    assert_eq!(post_to(&client, &served.api, &token_for(&keys, &issuer)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_file_has_no_half_line_when_the_process_is_killed() {
    let (mut served, _connect, issuer, keys, _dir, audit) = served_with_audit(Duration::from_millis(20)).await;
    let client = connect_monitor_gateway::http::client::build();
    let token = token_for(&keys, &issuer);
    // Keep 16 callers busy, then SIGKILL the gateway in the middle of it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (client, api, token, stop) = (client.clone(), served.api.clone(), token.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if post_to(&client, &api, &token).await == 0 {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::timeout(Duration::from_secs(10), async {
        while std::fs::read_to_string(&audit).map(|t| t.lines().count()).unwrap_or(0) < 200 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("200 audited requests");
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for c in callers {
        let _ = c.await;
    }
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.ends_with('\n'), "the file ends with a whole line");
    for line in text.lines() {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("half line {line:?}: {e}"));
        assert!(record["request_id"].is_string());
    }
}
