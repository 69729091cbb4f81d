//! The real binary: `check`, `explain`, `--version`, `demo --once`, and
//! `serve` against in-process stand-ins with every log line captured (at
//! `RUST_LOG=trace`, none of which may hold a token or a secret).

use crate::support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use connect_monitor_gateway::test_util::HttpClient;
use connect_monitor_gateway::test_util::IssuerStandIn;
use connect_monitor_gateway::test_util::{ConnectStandIn, Reply};
use support::{join_all, wait_until, Keys, Options, ACCESS_KEY, BODY, SECRET_KEY, SESSION_TOKEN};

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    run_with_env(args, &[])
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("CMG_CONFIG")
        .envs(env.iter().copied())
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
fn check_reports_four_mistakes_in_one_section_and_beyond_at_once() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["policy.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(&format!("config/{f}")), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(repo("config/gateway.example.toml"))
        .unwrap()
        .replace("listen = \"127.0.0.1:8080\"", "listen = \"localhost-8080\"")
        .replace("request_timeout = \"10s\"", "request_timeout = \"ten seconds\"")
        .replace("algorithms = [\"EdDSA\"]", "algorithms = [\"HS256\"]")
        .replace("max_attempts = 3", "max_attempts = 0");
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(&cfg, text).unwrap();
    let (code, _, stderr) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    for key in [
        "server.listen",
        "server.request_timeout",
        "auth.issuers[1].algorithms",
        "connect.max_attempts",
    ] {
        assert!(stderr.contains(key), "{key} missing from:\n{stderr}");
    }
}

#[test]
fn an_invalid_aws_region_is_refused_by_check_and_serve_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo("config/jwks.example.json"), dir.path().join("jwks.json")).unwrap();
    std::fs::write(dir.path().join("policy.toml"), "").unwrap();
    let cfg = dir.path().join("gateway.toml");
    std::fs::write(
        &cfg,
        "[[auth.issuers]]\nissuer = \"https://i\"\naudiences = [\"a\"]\nalgorithms = [\"EdDSA\"]\njwks_file = \"jwks.json\"\n",
    )
    .unwrap();
    for command in ["check", "serve"] {
        let (code, _, stderr) = run_with_env(
            &[command, "--config", cfg.to_str().unwrap()],
            &[("AWS_REGION", "us east 1")],
        );
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(
            stderr.contains("AWS_REGION: \"us east 1\" is not a region name"),
            "{command}: {stderr}"
        );
    }
    let (code, _, stderr) = run_with_env(
        &["check", "--config", cfg.to_str().unwrap()],
        &[("AWS_REGION", "eu-west-2")],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn check_says_when_aws_profile_names_a_profile_no_shared_file_defines() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["policy.example.toml", "jwks.example.json", "gateway.example.toml"] {
        std::fs::copy(repo(&format!("config/{f}")), dir.path().join(f)).unwrap();
    }
    let cfg = dir.path().join("gateway.example.toml");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let env = [
        ("HOME", home.to_str().unwrap()),
        ("AWS_PROFILE", "connect-monitor"),
        ("AWS_CONFIG_FILE", ""),
        ("AWS_SHARED_CREDENTIALS_FILE", ""),
    ];
    let (code, stdout, stderr) = run_with_env(&["check", "--config", cfg.to_str().unwrap()], &env);
    assert_eq!(
        code, 0,
        "a warning, not a problem: credentials may come from elsewhere\n{stderr}"
    );
    assert!(stdout.contains(": ok ("), "{stdout}");
    assert!(
        stderr.contains("warning: AWS_PROFILE names profile `connect-monitor`, but neither "),
        "{stderr}"
    );
    assert!(stderr.contains("profile `connect-monitor` was not defined"), "{stderr}");
    // Once a shared file exists, the AWS SDK's own chain names what is missing.
    std::fs::create_dir(home.join(".aws")).unwrap();
    std::fs::write(home.join(".aws/config"), "[profile other]\nregion = eu-west-2\n").unwrap();
    let (code, _, stderr) = run_with_env(&["check", "--config", cfg.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");
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

/// A config naming `policy.toml` beside it, written with `policy` as its text.
fn config_with_policy(dir: &Path, policy: &str) -> PathBuf {
    std::fs::write(dir.join("policy.toml"), policy).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        std::fs::read_to_string(repo("config/jwks.example.json")).unwrap(),
    )
    .unwrap();
    let cfg = dir.join("g.toml");
    std::fs::write(
        &cfg,
        "[[auth.issuers]]\nissuer = \"https://i\"\naudiences = [\"a\"]\nalgorithms = [\"RS256\"]\njwks_file = \"jwks.json\"\n[connect]\nregion = \"us-east-1\"\n[policy]\nfile = \"policy.toml\"\n",
    )
    .unwrap();
    cfg
}

#[test]
fn check_names_the_line_and_column_of_a_policy_problem() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "[[grant]]\nname = \"team-a\"\ninstances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\"]\nas_user = \"self\"\n\n[[grant]]\nname = \"leads\"\ninstances = [\"*\"]\ncapabilities = [\"SILENT_MONITOR\", \"WHISPER\"]\nas_user = \"me\"\n";
    let cfg = config_with_policy(dir.path(), policy);
    let (code, stdout, stderr) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}{stderr}");
    let file = dir.path().join("policy.toml").display().to_string();
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            format!("{file}: line 10, column 35: grant[1].capabilities: \"WHISPER\" is not SILENT_MONITOR or BARGE"),
            format!(
                "{file}: line 11, column 11: grant[1].as_user: \"me\" is not \"self\", \"any\" or a list of user ids"
            ),
        ]
    );
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
    assert_eq!(stdout.matches("[ok]").count(), 7, "{stdout}");
    for reason in ["agent_out_of_scope", "connect_permission_missing"] {
        assert!(
            stdout.contains(reason),
            "the Connect-aware cases show {reason}: {stdout}"
        );
    }
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

impl Served {
    fn logs(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Waits (bounded) for the process to exit.
    async fn exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut exit = None;
        wait_until(limit, "the gateway exited", || {
            exit = self.child.try_wait().unwrap();
            exit.is_some()
        })
        .await;
        exit.unwrap()
    }
}

fn serve(config: &Path, rust_log: &str) -> Served {
    serve_with_env(config, rust_log, &[])
}

/// [`serve`] with more environment variables. When they name `AWS_PROFILE`,
/// the credentials come from that profile: no static keys in the environment.
fn serve_with_env(config: &Path, rust_log: &str, env: &[(&str, &str)]) -> Served {
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", rust_log)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_CONNECT");
    if env.iter().any(|(k, _)| *k == "AWS_PROFILE") {
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
            command.env_remove(key);
        }
    } else {
        command
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_SESSION_TOKEN", SESSION_TOKEN);
    }
    #[allow(clippy::zombie_processes)] // reaped by Served's Drop
    let mut child = command
        .envs(env.iter().copied())
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
        let text = served.logs();
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

/// The stand-ins, and the real binary serving them on `config` (see
/// `support::Options::config`) with its audit in a file.
struct Stack {
    served: Served,
    connect: ConnectStandIn,
    issuer: IssuerStandIn,
    keys: Keys,
    dir: tempfile::TempDir,
    audit: PathBuf,
    client: HttpClient,
}

impl Stack {
    async fn start(config: &str, rust_log: &str) -> Stack {
        let keys = Keys::load();
        let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
        let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let audit = dir.path().join("audit.log");
        // Appended as text: a Stack's config has no [audit] table of its own
        // (TOML refuses a table defined twice).
        let options = Options {
            config: &format!("{config}\n[audit]\nfile = \"{{DIR}}/audit.log\"\n"),
            ..Options::default()
        };
        let config = support::write_config(dir.path(), &issuer, &connect, &options);
        Stack {
            served: serve(&config, rust_log),
            connect,
            issuer,
            keys,
            dir,
            audit,
            client: connect_monitor_gateway::test_util::http_client(),
        }
    }

    /// The supervisor's claims, for a token of any key.
    fn claims(&self) -> serde_json::Value {
        support::claims(&self.issuer.issuer(), "sup-1", "supervisors", "user-1")
    }

    /// The supervisor, with a valid token.
    fn caller(&self) -> Caller {
        Caller::supervisor(self.client.clone(), &self.served.api, &self.keys, &self.issuer)
    }

    fn audit_lines(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("half line {l:?}: {e}")))
            .collect()
    }

    async fn admin(&self, path: &str) -> (u16, String) {
        use http_body_util::BodyExt;
        let req = http::Request::get(format!("http://{}{path}", self.served.admin))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let Ok(Ok(r)) = tokio::time::timeout(Duration::from_secs(10), self.client.request(req)).await else {
            return (0, String::new());
        };
        let status = r.status().as_u16();
        let body = r.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.served.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// One caller of the served API: a client, the address and a token.
#[derive(Clone)]
struct Caller {
    client: HttpClient,
    api: String,
    token: String,
}

impl Caller {
    /// The supervisor of `issuer`, with a valid token, calling `api`.
    fn supervisor(client: HttpClient, api: &str, keys: &Keys, issuer: &IssuerStandIn) -> Caller {
        Caller {
            client,
            api: api.to_owned(),
            token: keys
                .ed
                .mint(&support::claims(&issuer.issuer(), "sup-1", "supervisors", "user-1")),
        }
    }

    /// POSTs `body` to /contact/monitor (with a cookie); 0 when no answer came.
    async fn post(&self, body: &str) -> u16 {
        let req = http::Request::post(format!("http://{}/contact/monitor", self.api))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .header("cookie", "session=cookie-secret-value")
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        match tokio::time::timeout(Duration::from_secs(20), self.client.request(req)).await {
            Ok(Ok(r)) => r.status().as_u16(),
            _ => 0,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_or_secret_reaches_logs_audit_or_metrics_at_trace() {
    let stack = Stack::start("", "trace").await;
    stack.connect.script([Reply::error(429, "ThrottlingException")]);
    let caller = stack.caller();
    let forger = Caller {
        token: stack.keys.foreign.mint(&stack.claims()),
        ..caller.clone()
    };
    let (token, forged) = (&caller.token, &forger.token);
    let mut statuses = Vec::new();
    for (who, body) in [
        (&caller, BODY),                                                          // throttled, then 200
        (&caller, r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"other"}"#), // 403
        (&forger, BODY),                                                          // 401
        (&caller, "{"),                                                           // 400
    ] {
        statuses.push(who.post(body).await);
    }
    assert_eq!(statuses, [200, 403, 401, 400]);
    let (_, metrics) = stack.admin("/metrics").await;
    assert!(metrics.contains("cmg_requests_total"), "{metrics}");

    // Every signature Connect received, to look for in the output.
    let signatures: Vec<String> = stack
        .connect
        .received()
        .iter()
        .map(|r| {
            let auth = r.headers["authorization"].to_str().unwrap();
            auth.rsplit("Signature=").next().unwrap().to_owned()
        })
        .collect();
    assert_eq!(signatures.len(), 2);
    assert!(stack.connect.bad_signatures().is_empty(), "signatures verified");

    let audit_text = std::fs::read_to_string(&stack.audit).unwrap();
    assert_eq!(audit_text.lines().count(), 4, "{audit_text}");
    let logs = stack.served.logs();
    assert!(logs.lines().count() > 20, "trace logging was on: {logs}");
    let secrets = [
        ("the bearer token", token.as_str()),
        ("the forged token", forged.as_str()),
        ("the token's signature", token.rsplit('.').next().unwrap()),
        ("the AWS secret key", SECRET_KEY),
        ("the AWS session token", SESSION_TOKEN),
        ("the cookie", "cookie-secret-value"),
    ];
    let signatures = signatures.iter().map(|sig| ("a SigV4 signature", sig.as_str()));
    for (what, secret) in secrets.into_iter().chain(signatures) {
        for (place, text) in [("logs", &logs), ("audit", &audit_text), ("metrics", &metrics)] {
            assert!(!text.contains(secret), "{what} found in {place}");
        }
    }
}

/// A served gateway with a 5 s shutdown grace, Connect answering after `delay`.
async fn draining_stack(delay: Duration) -> Stack {
    let stack = Stack::start("[server]\nshutdown_grace = \"5s\"", "info").await;
    stack
        .connect
        .set_default(Reply::Delayed(delay, Box::new(Reply::Success)));
    stack
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_twenty_in_flight_requests_finish_and_exits_0() {
    let mut stack = draining_stack(Duration::from_secs(2)).await;
    let finished = Arc::new(AtomicBool::new(false));
    let requests = join_all((0..20).map(|_| {
        let (caller, finished) = (stack.caller(), finished.clone());
        async move {
            let status = caller.post(BODY).await;
            finished.store(true, Ordering::SeqCst);
            status
        }
    }));
    // All twenty have reached Connect (and wait there for 2 s) before the signal.
    wait_until(Duration::from_secs(10), "20 requests in flight", || {
        stack.connect.received().len() == 20
    })
    .await;
    stack.signal("TERM");
    // While draining, readiness says no: seen before any request has finished.
    let mut ready_status = 0;
    while !finished.load(Ordering::SeqCst) {
        ready_status = stack.admin("/readyz").await.0;
        if ready_status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready_status, 503, "/readyz during the drain");
    assert_eq!(requests.await, vec![200; 20]);
    let exit = stack.served.exit(Duration::from_secs(20)).await;
    assert_eq!(exit.code(), Some(0));
    let logs = stack.served.logs();
    assert!(logs.contains("draining in-flight requests"), "{logs}");
    assert!(
        !logs.contains("shutdown grace ran out"),
        "drained within shutdown_grace: {logs}"
    );
    let text = std::fs::read_to_string(&stack.audit).unwrap();
    assert!(text.ends_with('\n'), "no cut line");
    let lines = stack.audit_lines();
    assert_eq!(lines.len(), 20);
    assert!(lines.iter().all(|l| l["status"] == 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_audit_file_after_rotation() {
    let stack = draining_stack(Duration::ZERO).await;
    let caller = stack.caller();
    assert_eq!(caller.post(BODY).await, 200);
    let rotated = stack.dir.path().join("audit.log.1");
    std::fs::rename(&stack.audit, &rotated).unwrap();
    stack.signal("HUP");
    wait_until(Duration::from_secs(10), "SIGHUP was handled", || {
        stack.served.logs().contains("SIGHUP")
    })
    .await;
    assert_eq!(caller.post(BODY).await, 200);
    assert_eq!(std::fs::read_to_string(&rotated).unwrap().lines().count(), 1);
    assert_eq!(stack.audit_lines().len(), 1, "the new file gets new lines");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_policy_reload_logs_the_line_and_column_of_each_problem() {
    let stack = Stack::start("", "info").await;
    let policy = stack.dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        "[[grant]]\nname = \"x\"\ninstances = []\ncapabilities = [\"BARGE\"]\nas_user = \"any\"\n",
    )
    .unwrap();
    stack.signal("HUP");
    let refused = || {
        stack
            .served
            .logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|l| l["fields"]["message"] == "new policy refused; the previous policy stays in force")
    };
    wait_until(Duration::from_secs(10), "the reload was refused", || {
        refused().is_some()
    })
    .await;
    assert_eq!(
        refused().unwrap()["fields"]["problems"],
        format!(
            "{}: line 3, column 13: grant[0].instances: list instance ids, or [\"*\"] for every instance",
            policy.display()
        )
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

/// How long the gateway held each connection it closed, by the peer's port:
/// the `lived_ms` of its debug "connection closed" lines, timed from its own accept.
fn connection_lifetimes(logs: &str) -> HashMap<u16, Duration> {
    logs.lines()
        .filter(|l| l.contains("\"connection closed"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["target"] == "connect_monitor_gateway::http::server")
        .filter_map(|v| {
            let fields = &v["fields"];
            let port = u16::try_from(fields["peer_port"].as_u64()?).ok()?;
            Some((port, Duration::from_millis(fields["lived_ms"].as_u64()?)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_and_slow_connections_are_cut_off_with_bounded_memory() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let header_read_timeout = Duration::from_secs(2);
    let stack = Stack::start(
        "[server]\nheader_read_timeout = \"2s\"",
        "info,connect_monitor_gateway::http::server=debug",
    )
    .await;
    let pid = stack.served.child.id();
    let before = rss_kib(pid);

    // 2000 connections: half send nothing, half dribble an unfinished request head.
    let mut conns = Vec::new();
    for i in 0..2000 {
        let mut s = tokio::net::TcpStream::connect(&stack.served.api).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /contact/monitor HTTP/1.1\r\nHost: gw\r\n")
                .await
                .unwrap();
        }
        conns.push(s);
    }
    let during = rss_kib(pid);
    let ports: Vec<u16> = conns.iter().map(|s| s.local_addr().unwrap().port()).collect();
    // Every one is closed by the gateway (bounded overall, not per connection).
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        for mut s in conns {
            let mut buf = [0u8; 512];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "some connections were still open after 30 s");
    // ...about header_read_timeout after the gateway accepted it, by its own clock.
    let mut lifetimes = HashMap::new();
    wait_until(Duration::from_secs(10), "a closing line for every connection", || {
        lifetimes = connection_lifetimes(&stack.served.logs());
        ports.iter().all(|p| lifetimes.contains_key(p))
    })
    .await;
    let limit = header_read_timeout + Duration::from_millis(1500);
    let slowest = ports.iter().map(|p| lifetimes[p]).max().unwrap();
    assert!(
        slowest <= limit,
        "the gateway held a connection {slowest:?} (header_read_timeout {header_read_timeout:?})"
    );
    println!("the gateway held the longest-lived connection {slowest:?}");
    let after = rss_kib(pid);
    println!("RSS: before {before} KiB, with 2000 connections {during} KiB, after {after} KiB");
    assert!(
        during < before + 64 * 1024,
        "2000 idle connections cost {} KiB",
        during - before
    );
    // And it still serves.
    assert_eq!(stack.caller().post(BODY).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_file_has_no_half_line_when_the_process_is_killed() {
    let mut stack = draining_stack(Duration::from_millis(20)).await;
    // Keep 16 callers busy, then SIGKILL the gateway in the middle of it.
    let stop = Arc::new(AtomicBool::new(false));
    let callers = join_all((0..16).map(|_| {
        let (caller, stop) = (stack.caller(), stop.clone());
        async move {
            // Until told to stop, or the gateway is gone.
            while !stop.load(Ordering::SeqCst) && caller.post(BODY).await != 0 {}
        }
    }));
    wait_until(Duration::from_secs(30), "200 audited requests", || {
        std::fs::read_to_string(&stack.audit)
            .map(|t| t.lines().count())
            .unwrap_or(0)
            >= 200
    })
    .await;
    stack.served.child.kill().unwrap();
    stack.served.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    callers.await;
    let text = std::fs::read_to_string(&stack.audit).unwrap();
    assert!(text.ends_with('\n'), "the file ends with a whole line");
    for record in stack.audit_lines() {
        assert!(record["request_id"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_names_the_request_in_the_audit_and_its_log_lines() {
    // Refusals are logged at debug (the audit records every one).
    let stack = Stack::start("", "debug").await;
    let caller = stack.caller();
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let post = |traceparent: Option<&str>, body: &str| {
        let mut req = http::Request::post(format!("http://{}/contact/monitor", caller.api))
            .header("authorization", format!("Bearer {}", caller.token))
            .header("content-type", "application/json");
        if let Some(t) = traceparent {
            req = req.header("traceparent", t);
        }
        let req = req
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let client = caller.client.clone();
        async move {
            let r = tokio::time::timeout(Duration::from_secs(20), client.request(req))
                .await
                .unwrap()
                .unwrap();
            r.status().as_u16()
        }
    };
    let traced = format!("00-{TRACE}-00f067aa0ba902b7-01");
    assert_eq!(post(Some(&traced), BODY).await, 200);
    let refused = r#"{"InstanceId":"inst-1","ContactId":"c","UserId":"other"}"#;
    assert_eq!(post(Some(&traced), refused).await, 403);
    assert_eq!(post(None, BODY).await, 200);
    assert_eq!(post(Some("00-not-a-trace-01"), BODY).await, 200);

    let lines = stack.audit_lines();
    let trace_ids: Vec<&serde_json::Value> = lines.iter().map(|l| &l["trace_id"]).collect();
    assert_eq!(
        trace_ids,
        [
            &serde_json::json!(TRACE),
            &serde_json::json!(TRACE),
            &serde_json::Value::Null,
            &serde_json::Value::Null
        ],
        "trace_id from a valid traceparent, else null"
    );
    // The refusal's log line carries the trace in its span, beside the request id.
    // It reaches this test through the child's stderr pipe: wait for it (bounded).
    support::wait_until(Duration::from_secs(10), "the refusal's log line", || {
        stack.served.logs().contains("request refused")
    })
    .await;
    let logs = stack.served.logs();
    let refusal = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["fields"]["message"] == "request refused")
        .unwrap_or_else(|| panic!("no refusal logged:\n{logs}"));
    assert_eq!(refusal["span"]["trace_id"], TRACE, "{refusal}");
    assert_eq!(refusal["fields"]["trace_id"], TRACE, "{refusal}");
    assert_eq!(refusal["span"]["request_id"], lines[1]["request_id"], "{refusal}");
    assert!(!logs.contains("not-a-trace"), "caller bytes never reach a log");
}

#[test]
fn check_without_a_config_says_how_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("check")
        .current_dir(dir.path())
        .env_remove("CMG_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for hint in [
        "no --config, no CMG_CONFIG, and no config/gateway.toml",
        "cp config/gateway.example.toml config/gateway.toml",
        "connect-monitor-gateway check --config config/gateway.toml",
        "connect-monitor-gateway demo",
    ] {
        assert!(stderr.contains(hint), "{hint:?} missing from:\n{stderr}");
    }
    // A file named explicitly still gets the plain answer naming it.
    let (code, _, stderr) = run(&["check", "--config", "/nonexistent/gateway.toml"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("/nonexistent/gateway.toml") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_assumes_an_instances_role_at_the_sts_endpoint_aws_endpoint_url_sts_names() {
    use support::sts_standin::StsStandIn;
    let sts = StsStandIn::start(support::test_credentials(None), Duration::from_secs(3600)).await;
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(support::test_credentials(None)).await.unwrap();
    connect.accept(StsStandIn::issued(1));
    let dir = tempfile::tempdir().unwrap();
    let role = "arn:aws:iam::222233334444:role/connect-monitor";
    let options = Options {
        config: &format!(
            r#"
            [[connect.instances]]
            id = "inst-1"
            region = "eu-west-1"
            role_arn = "{role}"
            [audit]
            file = "{{DIR}}/audit.log"
            "#
        ),
        ..Options::default()
    };
    let config = support::write_config(dir.path(), &issuer, &connect, &options);
    let served = serve_with_env(&config, "info", &[("AWS_ENDPOINT_URL_STS", &sts.url())]);
    let caller = Caller::supervisor(
        connect_monitor_gateway::test_util::http_client(),
        &served.api,
        &keys,
        &issuer,
    );
    assert_eq!(caller.post(BODY).await, 200, "{}", served.logs());
    let calls = sts.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].signature_problem, None);
    assert_eq!(calls[0].param("RoleArn"), Some(role));
    let received = connect.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].signature_problem, None);
    assert_eq!(
        received[0].access_key.as_deref(),
        Some(StsStandIn::issued(1).access_key_id())
    );
}

/// An IAM Identity Center (SSO) portal that answers GetRoleCredentials for one
/// access token; records the requests it got.
async fn sso_portal(
    access_token: &'static str,
    role: aws_credential_types::Credentials,
) -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use connect_monitor_gateway::test_util::{serve, Listening};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let task = tokio::spawn(serve(
        listener,
        Listening::plain(Duration::from_secs(30)),
        std::future::pending(),
        move |req: http::Request<hyper::body::Incoming>| {
            let (log, role) = (log.clone(), role.clone());
            async move {
                let path = req.uri().path_and_query().map_or("", |p| p.as_str()).to_owned();
                let bearer = req
                    .headers()
                    .get("x-amz-sso_bearer_token")
                    .and_then(|v| v.to_str().ok());
                log.lock().unwrap().push(path.clone());
                let (status, body) = if bearer == Some(access_token) && path.starts_with("/federation/credentials") {
                    let expiration = SystemTime::now() + Duration::from_secs(3600);
                    let ms = expiration.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
                    (
                        200,
                        serde_json::json!({"roleCredentials": {
                            "accessKeyId": role.access_key_id(),
                            "secretAccessKey": role.secret_access_key(),
                            "sessionToken": role.session_token(),
                            "expiration": ms,
                        }}),
                    )
                } else {
                    (
                        401,
                        serde_json::json!({"message": "Session token not found or invalid"}),
                    )
                };
                let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body.to_string())));
                *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                Ok::<_, std::convert::Infallible>(r)
            }
        },
    ));
    (url, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_signs_with_the_credentials_of_the_sso_profile_aws_profile_names() {
    let role = aws_credential_types::Credentials::new(
        "ASIASSOPROFILE00001",
        "sso-secret-key-abcdefghijklmnopqrstuvwxyz",
        Some("sso-session-token".into()),
        None,
        "test",
    );
    let (portal, seen, _portal) = sso_portal("cached-sso-access-token", role.clone()).await;
    let keys = Keys::load();
    let issuer = IssuerStandIn::start(keys.published()).await.unwrap();
    let connect = ConnectStandIn::start(role.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // What `aws configure sso` and `aws sso login` leave behind: a profile
    // naming the start URL, account and role, and the cached access token.
    let start_url = "https://corp.awsapps.com/start";
    let aws_config = dir.path().join("aws-config");
    std::fs::write(
        &aws_config,
        format!(
            "[profile connect-monitor]\nsso_start_url = {start_url}\nsso_region = us-east-1\n\
             sso_account_id = 111122223333\nsso_role_name = ConnectMonitor\nregion = eu-west-2\n"
        ),
    )
    .unwrap();
    let cache = dir.path().join(".aws/sso/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, start_url.as_bytes());
    let name: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let expires = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
    std::fs::write(
        cache.join(format!("{name}.json")),
        format!(r#"{{"accessToken":"cached-sso-access-token","expiresAt":"{expires}","region":"us-east-1","startUrl":"{start_url}"}}"#),
    )
    .unwrap();
    let options = Options {
        config: r#"
            [audit]
            file = "{DIR}/audit.log"
        "#,
        ..Options::default()
    };
    let config = support::write_config(dir.path(), &issuer, &connect, &options);
    let home = dir.path().to_str().unwrap();
    let served = serve_with_env(
        &config,
        "info",
        &[
            ("AWS_PROFILE", "connect-monitor"),
            ("AWS_CONFIG_FILE", aws_config.to_str().unwrap()),
            ("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("none").to_str().unwrap()),
            ("HOME", home),
            ("AWS_ENDPOINT_URL_SSO", &portal),
        ],
    );
    let caller = Caller::supervisor(
        connect_monitor_gateway::test_util::http_client(),
        &served.api,
        &keys,
        &issuer,
    );
    assert_eq!(caller.post(BODY).await, 200, "{}", served.logs());
    let received = connect.received();
    assert_eq!(received[0].signature_problem, None);
    assert_eq!(received[0].access_key.as_deref(), Some("ASIASSOPROFILE00001"));
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "credentials fetched once: {asked:?}");
    assert!(
        asked[0].contains("account_id=111122223333") && asked[0].contains("role_name=ConnectMonitor"),
        "{asked:?}"
    );
}

/// The threads of a process whose name starts with `prefix`.
fn threads_named(pid: u32, prefix: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_worker_threads_sizes_the_runtime_not_the_nodes_cores() {
    // The default is two workers, whatever the machine has.
    let stack = Stack::start("", "info").await;
    assert_eq!(threads_named(stack.served.child.id(), "cmg-worker"), 2);
    let stack = Stack::start("[server]\nworker_threads = 1", "info").await;
    assert_eq!(threads_named(stack.served.child.id(), "cmg-worker"), 1);
    assert_eq!(stack.caller().post(BODY).await, 200);
}
