//! Every gateway configuration shipped under config/ (and config/demo/)
//! passes the real binary's `check`, which validates a configuration, its
//! policy file and key files without fetching anything.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_connect-monitor-gateway");

/// The demo's configuration is a template: these placeholders are filled in
/// when the demo starts (src/demo/mod.rs), here with loopback values.
const DEMO_PLACEHOLDERS: [(&str, &str); 5] = [
    ("{ISSUER}", "http://127.0.0.1:9"),
    ("{JWKS_URL}", "http://127.0.0.1:9/.well-known/jwks.json"),
    ("{CONNECT_URL}", "http://127.0.0.1:9"),
    ("{LISTEN}", "127.0.0.1:0"),
    ("{ADMIN}", "127.0.0.1:0"),
];

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Whether a TOML file is a gateway configuration (not a policy): it has an
/// `[auth]` or `[[auth.issuers]]` table.
fn is_gateway_config(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .any(|l| l == "[auth]" || l == "[[auth.issuers]]")
}

fn is_policy_file_name(name: &str) -> bool {
    name.ends_with(".policy.toml") || name.starts_with("policy")
}

/// The gateway configurations in `dir`, by file name.
fn gateway_configs(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .filter(|p| !is_policy_file_name(&p.file_name().unwrap().to_string_lossy()))
        .filter(|p| is_gateway_config(&std::fs::read_to_string(p).unwrap()))
        .collect();
    found.sort();
    found
}

/// A template's copy with its placeholders filled in, next to copies of its
/// folder's other files (the policy it names); `None` for a plain file.
fn filled_in(config: &Path, into: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(config).unwrap();
    if !DEMO_PLACEHOLDERS.iter().any(|(p, _)| text.contains(p)) {
        return None;
    }
    for entry in std::fs::read_dir(config.parent().unwrap()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, into.join(path.file_name().unwrap())).unwrap();
        }
    }
    let filled = DEMO_PLACEHOLDERS
        .iter()
        .fold(text, |text, (placeholder, value)| text.replace(placeholder, value));
    let copy = into.join(config.file_name().unwrap());
    std::fs::write(&copy, filled).unwrap();
    Some(copy)
}

fn check(config: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .env_remove("CMG_CONFIG")
        .output()
        .expect("the binary runs");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), output)
}

#[test]
fn every_example_config_under_config_passes_check() {
    let configs: Vec<PathBuf> = ["config", "config/demo"]
        .iter()
        .flat_map(|dir| gateway_configs(&repo(dir)))
        .collect();
    let names: Vec<String> = configs
        .iter()
        .map(|p| p.strip_prefix(repo("")).unwrap().display().to_string())
        .collect();
    for expected in [
        "config/gateway.example.toml",
        "config/okta.toml",
        "config/entra.toml",
        "config/keycloak.toml",
        "config/cognito.toml",
        "config/auth0.toml",
        "config/demo/gateway.toml",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not found among {names:?}"
        );
    }

    let mut failures = Vec::new();
    for (config, name) in configs.iter().zip(&names) {
        let dir = tempfile::tempdir().unwrap();
        let checked = filled_in(config, dir.path()).unwrap_or_else(|| config.clone());
        let (code, output) = check(&checked);
        if code != 0 || !output.contains(": ok (") {
            failures.push(format!("{name}: exit {code}\n{output}"));
        }
    }
    assert!(failures.is_empty(), "check failed:\n{}", failures.join("\n"));
}

#[test]
fn gateway_configs_are_told_from_policies() {
    assert!(is_gateway_config("[server]\n[auth]\nleeway = \"60s\"\n"));
    assert!(is_gateway_config("[[auth.issuers]]\nissuer = \"x\"\n"));
    assert!(!is_gateway_config("[[grant]]\nname = \"g\"\n"));
    assert!(is_policy_file_name("okta.policy.toml"));
    assert!(is_policy_file_name("policy.example.toml"));
    assert!(!is_policy_file_name("okta.toml"));
}
