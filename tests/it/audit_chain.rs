//! The tamper-evident audit (docs/operations.md, "A tamper-evident audit"):
//! with `[audit] chain = true` a real gateway links every line to the one
//! before it, across a restart, and `verify-audit` (the real binary) says
//! whether a file's chain holds, naming the first line that breaks it.

use crate::support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::SharedCredentialsProvider;
use connect_monitor_gateway::test_util::{start, Dependencies, RunningGateway};
use support::{join_all, Harness, Options, BODY};

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

fn verify_audit(file: &Path) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(["verify-audit", file.to_str().unwrap()])
        .output()
        .expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lowercase hex SHA-256 of `line`, computed here rather than by the
/// gateway: the format is checked against the rule, not against itself.
fn sha256_hex(line: &str) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, line.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `n` lines chained by the rule: the first's `prev` 64 zeros, each next
/// one's the hash of the line before it.
fn chain_of(n: usize) -> Vec<String> {
    let mut prev = "0".repeat(64);
    (0..n)
        .map(|i| {
            let line = serde_json::json!({"request_id": format!("r{i}"), "subject": "secret-subject", "prev": prev})
                .to_string();
            prev = sha256_hex(&line);
            line
        })
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

/// A gateway on the harness's settings whose audit is what its
/// configuration says (the harness's own keeps lines in memory).
async fn gateway_with_configured_audit(h: &Harness) -> RunningGateway {
    let deps = Dependencies {
        credentials: Some(SharedCredentialsProvider::new(support::test_credentials(None))),
        audit: None,
        egress: Some(Default::default()),
        ..Default::default()
    };
    start(&h.settings, deps).await.unwrap()
}

async fn post(h: &Harness, gateway: &RunningGateway, path: &str, token: Option<&str>) -> u16 {
    let mut req =
        http::Request::post(format!("http://{}{path}", gateway.api_addr)).header("content-type", "application/json");
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::from_static(BODY.as_bytes())))
        .unwrap();
    h.send(req).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_with_chain_true_writes_a_chain_verify_audit_accepts_across_a_restart() {
    let h = Arc::new(
        Harness::with(Options {
            config: "[audit]\nfile = \"{DIR}/audit.log\"\nchain = true\n",
            ..Options::default()
        })
        .await,
    );
    assert!(h.settings.audit_chain);
    let audit = h.dir.path().join("audit.log");
    let token = h.supervisor_token();
    for _ in 0..2 {
        let gateway = Arc::new(gateway_with_configured_audit(&h).await);
        // Allowed, refused and dry runs, many at once: lines in chain order
        // whatever order their requests finish in.
        let answers = join_all((0..24).map(|i| {
            let (h, gateway, token) = (h.clone(), gateway.clone(), token.clone());
            async move {
                match i % 3 {
                    0 => post(&h, &gateway, "/contact/monitor", Some(&token)).await,
                    1 => post(&h, &gateway, "/contact/monitor", None).await,
                    _ => post(&h, &gateway, "/contact/monitor/check", Some(&token)).await,
                }
            }
        }))
        .await;
        assert_eq!(answers.iter().filter(|s| **s == 200).count(), 16, "{answers:?}");
        assert_eq!(answers.iter().filter(|s| **s == 401).count(), 8, "{answers:?}");
        Arc::into_inner(gateway)
            .expect("no request holds the gateway")
            .shutdown(Duration::from_secs(5))
            .await;
    }
    let text = std::fs::read_to_string(&audit).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["prev"], "0".repeat(64), "a new file's chain starts at zeros");
    let (code, stdout, stderr) = verify_audit(&audit);
    assert_eq!(
        (code, stdout.trim()),
        (0, "verify-audit: 48 lines, chain holds"),
        "{stderr}"
    );
}

#[test]
fn verify_audit_exits_0_when_the_chain_holds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    write_lines(&file, &chain_of(5));
    let (code, stdout, stderr) = verify_audit(&file);
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (0, "verify-audit: 5 lines, chain holds\n", "")
    );
}

#[test]
fn verify_audit_exits_1_naming_the_first_broken_line_and_never_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    // What verify-audit says, and what was done to the chain's lines.
    type Tampering = (&'static str, fn(&mut Vec<String>));
    let cases: [Tampering; 6] = [
        ("line 4: prev does not match line 3", |l| {
            l[2] = l[2].replace("\"r2\"", "\"forged\"")
        }),
        ("line 3: prev does not match line 2", |l| {
            l.remove(2);
        }),
        ("line 3: prev does not match line 2", |l| l.swap(2, 3)),
        ("line 1: prev is not the zeros a chain starts with", |l| {
            l.remove(0);
        }),
        ("line 2 is not JSON", |l| l[1].truncate(30)),
        ("line 5 has no prev", |l| {
            l[4] = "{\"request_id\":\"secret-subject\"}".into()
        }),
    ];
    for (said, tamper) in cases {
        let mut lines = chain_of(5);
        tamper(&mut lines);
        write_lines(&file, &lines);
        let (code, stdout, stderr) = verify_audit(&file);
        assert_eq!(
            (code, stdout.trim()),
            (1, format!("verify-audit: {said}").as_str()),
            "{stderr}"
        );
        assert!(!format!("{stdout}{stderr}").contains("secret-subject"));
    }
}

#[test]
fn verify_audit_exits_2_for_a_file_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-audit.log");
    let (code, stdout, stderr) = verify_audit(&missing);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("verify-audit: cannot read "), "{stderr}");
    let (code, _, stderr) = verify_audit(dir.path());
    assert_eq!(code, 2, "a folder: {stderr}");
}

#[test]
fn check_accepts_chain_on_stdout() {
    let repo = |f: &str| format!("{}/config/{f}", env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for f in ["policy.example.toml", "jwks.example.json"] {
        std::fs::copy(repo(f), dir.path().join(f)).unwrap();
    }
    let text = std::fs::read_to_string(repo("gateway.example.toml"))
        .unwrap()
        .replace("[audit]\n", "[audit]\nchain = true\n");
    assert!(text.contains("chain = true"));
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, text).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config", config.to_str().unwrap()])
        .env_remove("CMG_CONFIG")
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{said}");
}
