//! Loading the whole file: every problem named, sections resolved.

use super::*;
use std::time::Duration;

use jsonwebtoken::Algorithm;

/// Loads with no environment at all, so the machine's variables never leak in.
/// Loads as the gateway does (its region chain may read the shared AWS
/// files, which is async), from a plain test.
fn load_with(path: &Path, env: Environment) -> Result<Settings, Problems> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(Settings::load_with(path, env))
}

fn load(path: &Path) -> Result<Settings, Problems> {
    load_with(path, Environment::default())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const POLICY: &str = r#"
[[grant]]
name = "all"
claims = { groups = "sup" }
instances = ["*"]
capabilities = ["SILENT_MONITOR"]
as_user = "self"
"#;

const JWKS: &str =
    r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1"}]}"#;

fn base_config() -> String {
    r#"
[auth]
[[auth.issuers]]
issuer = "https://idp.test"
audiences = ["cmg"]
algorithms = ["EdDSA"]
jwks_file = "jwks.json"

[connect]
region = "us-east-1"

[policy]
file = "policy.toml"
"#
    .to_string()
}

#[test]
fn unknown_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let cfg = write(
        dir.path(),
        "g.toml",
        &format!("[server]\nlisen = \"x\"\n{}", base_config()),
    );
    let err = load(&cfg).unwrap_err().to_string();
    assert!(err.contains("server.lisen"), "{err}");
    assert!(err.contains("unknown field"), "{err}");
}

#[test]
fn valid_config_loads_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let cfg = write(dir.path(), "g.toml", &base_config());
    let s = load(&cfg).unwrap();
    assert_eq!(s.server.max_body_bytes, 8192);
    assert_eq!(s.server.request_timeout, Duration::from_secs(10));
    assert_eq!(s.auth.issuers[0].algorithms, vec![Algorithm::EdDSA]);
    assert_eq!(s.authz.policy_file, dir.path().join("policy.toml"));
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    let text = base_config()
        .replace("[\"EdDSA\"]", "[\"HS256\"]")
        .replace("jwks_file = \"jwks.json\"", "jwks_file = \"missing.json\"")
        .replace("region = \"us-east-1\"", "region = \"us-east-1\"\nmax_attempts = 0");
    let cfg = write(dir.path(), "g.toml", &text);
    let err = load(&cfg).unwrap_err();
    let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"auth.issuers[0].algorithms"), "{keys:?}");
    assert!(keys.contains(&"auth.issuers[0].jwks_file"), "{keys:?}");
    assert!(keys.contains(&"connect.max_attempts"), "{keys:?}");
}

#[test]
fn bad_duration_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let cfg = write(
        dir.path(),
        "g.toml",
        &format!("[server]\nrequest_timeout = \"soon\"\n{}", base_config()),
    );
    let err = load(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("request_timeout") && err.contains("invalid duration"),
        "{err}"
    );
}

#[test]
fn four_mistakes_in_one_file_are_all_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let text = format!(
        "[server]\nlisten = \"not an address\"\nrequest_timeout = \"soon\"\n{}",
        base_config()
            .replace("[\"EdDSA\"]", "[\"HS256\"]")
            .replace("region = \"us-east-1\"", "region = \"us-east-1\"\nmax_attempts = 0")
    );
    let cfg = write(dir.path(), "g.toml", &text);
    let err = load(&cfg).unwrap_err();
    let text = err.to_string();
    for key in [
        "server.listen",
        "server.request_timeout",
        "auth.issuers[0].algorithms",
        "connect.max_attempts",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
    assert_eq!(err.0.len(), 4, "{text}");
}

#[test]
fn an_empty_file_asks_for_an_issuer_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    let cfg = write(dir.path(), "g.toml", "");
    let text = load(&cfg).unwrap_err().to_string();
    assert!(
        text.contains("auth.issuers: at least one [[auth.issuers]] is required"),
        "{text}"
    );
    assert!(!text.contains(": :"), "{text}");
}

#[test]
fn an_invalid_aws_region_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let cfg = write(
        dir.path(),
        "g.toml",
        &base_config().replace("region = \"us-east-1\"", ""),
    );
    let env = Environment::from_lookup(|k| (k == "AWS_REGION").then(|| "us east 1".to_string()));
    let text = load_with(&cfg, env).unwrap_err().to_string();
    assert!(
        text.contains("AWS_REGION: \"us east 1\" is not a region name"),
        "{text}"
    );
    let env = Environment::from_lookup(|k| (k == "AWS_REGION").then(|| "eu-west-2".to_string()));
    let s = load_with(&cfg, env).unwrap();
    assert_eq!(s.connect.default_region.as_deref(), Some("eu-west-2"));
}

#[test]
fn endpoint_precedence_config_then_service_env_then_global_env() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let both = |k: &str| match k {
        "AWS_ENDPOINT_URL_CONNECT" => Some("http://127.0.0.1:4000".to_string()),
        "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:5000".to_string()),
        _ => None,
    };
    let host = |text: &str, env: Environment| {
        let cfg = write(dir.path(), "g.toml", text);
        let s = load_with(&cfg, env).unwrap();
        let (source, endpoint) = s.connect.endpoint_override.unwrap();
        (source, endpoint.host())
    };
    let configured = base_config().replace(
        "region = \"us-east-1\"",
        "region = \"us-east-1\"\nendpoint = \"https://vpce.example:8443\"",
    );
    assert_eq!(
        host(&configured, Environment::from_lookup(both)),
        ("connect.endpoint", "vpce.example:8443".to_string())
    );
    assert_eq!(
        host(&base_config(), Environment::from_lookup(both)),
        ("AWS_ENDPOINT_URL_CONNECT", "127.0.0.1:4000".to_string())
    );
    let only_global = |k: &str| (k == "AWS_ENDPOINT_URL").then(|| "http://127.0.0.1:5000".to_string());
    assert_eq!(
        host(&base_config(), Environment::from_lookup(only_global)),
        ("AWS_ENDPOINT_URL", "127.0.0.1:5000".to_string())
    );
    let broken = |k: &str| (k == "AWS_ENDPOINT_URL_CONNECT").then(|| "ftp://x".to_string());
    let cfg = write(dir.path(), "g.toml", &base_config());
    let text = load_with(&cfg, Environment::from_lookup(broken))
        .unwrap_err()
        .to_string();
    assert!(text.contains("AWS_ENDPOINT_URL_CONNECT"), "{text}");
}

#[test]
fn the_region_chain_is_aws_region_then_aws_default_region_then_the_profiles_region() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    // A shared config file as `aws configure` and `aws configure sso` write it.
    let aws_config = write(
        dir.path(),
        "aws-config",
        r#"
[default]
region = eu-central-1

[profile ops]
region = ap-southeast-2

[profile connect-sso]
sso_session = corp
sso_account_id = 111122223333
sso_role_name = ConnectMonitor
region = ca-central-1

[sso-session corp]
sso_start_url = https://corp.awsapps.com/start
sso_region = us-east-1

[profile broken]
region = not a region
"#,
    );
    let cfg = write(
        dir.path(),
        "g.toml",
        &base_config().replace("region = \"us-east-1\"", ""),
    );
    let home = dir.path().display().to_string();
    let file = aws_config.display().to_string();
    let region = |vars: &[(&str, &str)]| {
        let mut all: Vec<(String, String)> = vec![
            ("AWS_CONFIG_FILE".into(), file.clone()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), format!("{home}/none")),
            ("HOME".into(), home.clone()),
        ];
        all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let env = Environment::from_lookup(|k| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()));
        load_with(&cfg, env).map(|s| s.connect.default_region.unwrap())
    };
    let both = [("AWS_REGION", "eu-west-2"), ("AWS_DEFAULT_REGION", "us-west-2")];
    assert_eq!(region(&both).unwrap(), "eu-west-2");
    assert_eq!(region(&both[1..]).unwrap(), "us-west-2");
    assert_eq!(region(&[]).unwrap(), "eu-central-1", "the default profile");
    assert_eq!(region(&[("AWS_PROFILE", "ops")]).unwrap(), "ap-southeast-2");
    assert_eq!(
        region(&[("AWS_PROFILE", "connect-sso")]).unwrap(),
        "ca-central-1",
        "an SSO profile's region"
    );
    let text = region(&[("AWS_PROFILE", "broken")]).unwrap_err().to_string();
    assert!(
        text.contains("the region of AWS profile \"broken\": \"not a region\" is not a region name"),
        "{text}"
    );
    // No region anywhere: the problem says every place one may be given.
    let text = region(&[("AWS_PROFILE", "nowhere")]).unwrap_err().to_string();
    assert!(text.contains("AWS_DEFAULT_REGION"), "{text}");
}

#[test]
fn role_arn_and_external_id_are_checked_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let with_instances = |instances: &str| {
        let cfg = write(dir.path(), "g.toml", &format!("{}\n{instances}", base_config()));
        load(&cfg)
    };
    let good = with_instances(
        r#"
[[connect.instances]]
id = "inst-a"
role_arn = "arn:aws:iam::222233334444:role/ops/connect-monitor"
external_id = "contact-center-7"

[[connect.instances]]
id = "inst-b"
region = "eu-west-2"
role_arn = "arn:aws:iam::222233334444:role/ops/connect-monitor"
external_id = "contact-center-7"
"#,
    )
    .unwrap();
    let role = good.connect.instances[0].role.clone().unwrap();
    assert_eq!(role.arn, "arn:aws:iam::222233334444:role/ops/connect-monitor");
    assert_eq!(role.external_id.as_deref(), Some("contact-center-7"));
    assert_eq!(
        good.connect.roles().len(),
        1,
        "one role serving two instances is assumed once"
    );
    let text = with_instances(
        r#"
[[connect.instances]]
id = "inst-a"
role_arn = "arn:aws:iam::2222:role/x"

[[connect.instances]]
id = "inst-b"
external_id = "orphan"

[[connect.instances]]
id = "inst-c"
role_arn = "arn:aws:iam::222233334444:user/someone"

[[connect.instances]]
id = "inst-d"
role_arn = "arn:aws:iam::222233334444:role/x"
external_id = "x"
"#,
    )
    .unwrap_err()
    .to_string();
    for key in [
        "connect.instances[0].role_arn",
        "connect.instances[1].external_id: only applies with role_arn",
        "connect.instances[2].role_arn",
        "connect.instances[3].external_id",
    ] {
        assert!(text.contains(key), "{key} missing from:\n{text}");
    }
}

/// The problems of a config made of the base and `extra` (with `env`), by key.
fn problems_with(extra: &str, env: &[(&str, &str)]) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let cfg = write(dir.path(), "g.toml", &format!("{}{extra}", base_config()));
    let env = Environment::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()));
    match load_with(&cfg, env) {
        Ok(_) => Vec::new(),
        Err(problems) => problems.0.into_iter().map(|p| (p.key, p.why)).collect(),
    }
}

#[test]
fn shared_and_quotas_are_checked_by_key() {
    let extra = r#"
[connect.quotas]
share = 1.5
DescribeContact = { rate = 0.0, burst = 0 }

[shared]
url = "memcached://cache:11211"
ca_file = "ca.pem"
command_timeout = "0s"
fallback_replicas = 0
"#;
    let problems = problems_with(extra, &[("CMG_SHARED_KEY", "too short")]);
    let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
    for key in [
        "connect.quotas.share",
        "connect.quotas.DescribeContact.rate",
        "connect.quotas.DescribeContact.burst",
        "shared.url",
        "shared.ca_file",
        "shared.command_timeout",
        "shared.fallback_replicas",
        "CMG_SHARED_KEY",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    // The key's value is a secret: its problem never shows it.
    assert!(
        problems.iter().all(|(_, why)| !why.contains("too short")),
        "{problems:?}"
    );
}

#[test]
fn an_unknown_operation_in_connect_quotas_is_named() {
    let problems = problems_with("\n[connect.quotas]\nDescribeQueue = { rate = 1.0, burst = 1 }\n", &[]);
    assert!(
        problems.iter().any(|(k, _)| k.contains("DescribeQueue")),
        "{problems:?}"
    );
}

#[test]
fn a_password_in_the_shared_url_never_reaches_a_problem() {
    let problems = problems_with("\n[shared]\nurl = \"redis://:hunter2@[bad\"\n", &[]);
    assert!(!problems.is_empty());
    assert!(problems.iter().all(|(_, why)| !why.contains("hunter2")), "{problems:?}");
}

#[test]
fn budgets_default_to_connects_quotas_times_share_and_max_rate_is_monitor_contacts_entry() {
    use crate::connect::operation::{Operation, Quota};
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let text = base_config().replace(
        "region = \"us-east-1\"",
        "region = \"us-east-1\"\nmax_rate = 4.0\nburst = 8",
    ) + "\n[connect.quotas]\nshare = 0.5\nSearchUsers = { rate = 6.0, burst = 3 }\n";
    let settings = load(&write(dir.path(), "g.toml", &text)).unwrap();
    let q = &settings.connect.quotas;
    assert_eq!(q.budget(Operation::DescribeContact), Quota { rate: 5.0, burst: 7 });
    assert_eq!(q.budget(Operation::DescribeUser), Quota { rate: 1.0, burst: 2 });
    assert_eq!(q.budget(Operation::MonitorContact), Quota { rate: 2.0, burst: 4 });
    // Rounded down, but never below one call.
    assert_eq!(q.budget(Operation::SearchUsers), Quota { rate: 3.0, burst: 1 });
}

#[test]
fn the_shared_password_and_key_come_from_the_environment_and_are_never_printed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let text = base_config() + "\n[shared]\nurl = \"redis://cache:6379/0\"\n";
    let env = Environment::from_lookup(|k| match k {
        "CMG_SHARED_PASSWORD" => Some("pw-hunter2".into()),
        "CMG_SHARED_KEY" => Some("k".repeat(40)),
        _ => None,
    });
    let settings = load_with(&write(dir.path(), "g.toml", &text), env).unwrap();
    let shared = settings.shared.as_ref().expect("[shared]");
    assert_eq!(shared.password.as_deref(), Some("pw-hunter2"));
    assert!(shared.integrity_key.is_some());
    let printed = format!("{settings:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains(&"k".repeat(40)),
        "{printed}"
    );
}

#[test]
fn shared_without_an_integrity_key_or_with_one_fallback_replica_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "policy.toml", POLICY);
    write(dir.path(), "jwks.json", JWKS);
    let text = base_config() + "\n[shared]\nurl = \"redis://cache:6379/0\"\n";
    let settings = load(&write(dir.path(), "g.toml", &text)).unwrap();
    let warnings = settings.shared.as_ref().unwrap().warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("CMG_SHARED_KEY") && w.contains("forge")),
        "{warnings:?}"
    );
    assert!(warnings.iter().any(|w| w.contains("fallback_replicas")), "{warnings:?}");

    let text = text + "fallback_replicas = 4\n";
    let env = Environment::from_lookup(|k| (k == "CMG_SHARED_KEY").then(|| "k".repeat(32)));
    let settings = load_with(&write(dir.path(), "g.toml", &text), env).unwrap();
    assert!(settings.shared.as_ref().unwrap().warnings().is_empty());
}
