//! Gateway configuration: the TOML file of CONTRACT §3, parsed completely and
//! checked before anything starts, every problem reported by file and key.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::{Deserialize, Deserializer};

use crate::policy::Policy;

/// One thing wrong with the configuration, named so an operator can find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    pub key: String,
    pub why: String,
}

impl Problem {
    pub fn new(file: impl fmt::Display, key: impl Into<String>, why: impl Into<String>) -> Self {
        Problem {
            file: file.to_string(),
            key: key.into(),
            why: why.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.why)
    }
}

/// Every problem found while loading; loading never stops at the first one.
#[derive(Debug, Clone)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A duration written as `"250ms"`, `"5s"` or `"10m"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumanDuration)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration {text:?}: {e}")))
    }
}

fn secs(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_secs(n))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub admin_listen: Option<SocketAddr>,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: HumanDuration,
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: HumanDuration,
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// `[server.tls]`: serve the API over TLS; mutual TLS with `client_ca_file`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_max_body_bytes() -> u64 {
    8192
}
fn default_header_read_timeout() -> HumanDuration {
    secs(5)
}
fn default_request_timeout() -> HumanDuration {
    secs(10)
}
fn default_shutdown_grace() -> HumanDuration {
    secs(20)
}
fn default_max_in_flight() -> usize {
    256
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            admin_listen: None,
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            request_timeout: default_request_timeout(),
            shutdown_grace: default_shutdown_grace(),
            max_in_flight: default_max_in_flight(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
}

fn default_leeway() -> HumanDuration {
    secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
}

fn default_jwks_refresh() -> HumanDuration {
    secs(600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectConfig {
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub use_fips: bool,
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout: HumanDuration,
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Optional local limit on MonitorContact calls per second (Connect's
    /// default quota is 2/s, burst 5); callers queue within their deadline.
    #[serde(default)]
    pub max_rate: Option<f64>,
    #[serde(default)]
    pub burst: Option<u32>,
    #[serde(default)]
    pub instances: Vec<InstanceConfig>,
}

fn default_attempt_timeout() -> HumanDuration {
    secs(3)
}
fn default_max_attempts() -> u32 {
    3
}

impl Default for ConnectConfig {
    fn default() -> Self {
        ConnectConfig {
            region: None,
            endpoint: None,
            use_fips: false,
            attempt_timeout: default_attempt_timeout(),
            max_attempts: default_max_attempts(),
            max_rate: None,
            burst: None,
            instances: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub id: String,
    #[serde(default)]
    pub region: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_policy_file")]
    pub file: PathBuf,
    #[serde(default = "default_user_id_claim")]
    pub user_id_claim: String,
}

fn default_policy_file() -> PathBuf {
    PathBuf::from("policy.toml")
}
fn default_user_id_claim() -> String {
    "connect_user_id".to_string()
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            file: default_policy_file(),
            user_id_claim: default_user_id_claim(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    #[serde(default = "default_audit_file")]
    pub file: String,
}

fn default_audit_file() -> String {
    "-".to_string()
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: default_audit_file(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default = "default_cors_max_age")]
    pub max_age: HumanDuration,
}

fn default_cors_max_age() -> HumanDuration {
    secs(600)
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig {
            allowed_origins: Vec::new(),
            max_age: default_cors_max_age(),
        }
    }
}

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub server: ServerConfig,
    pub auth: AuthConfig,
    #[serde(default)]
    pub connect: ConnectConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub cors: CorsConfig,
}

/// Where an issuer's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Url(String),
    File(PathBuf),
}

/// An issuer, checked and ready to use.
#[derive(Debug, Clone)]
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub keys: KeySource,
    pub jwks_refresh: Duration,
}

/// The whole configuration, checked, with paths resolved and the policy loaded.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: PathBuf,
    pub server: ServerConfig,
    /// `[server.tls]` with paths resolved, when the API is served over TLS.
    pub tls: Option<crate::tls::TlsFiles>,
    pub leeway: Duration,
    pub issuers: Vec<Issuer>,
    pub connect: ConnectConfig,
    pub policy_file: PathBuf,
    pub user_id_claim: String,
    pub policy: Policy,
    pub audit_file: String,
    pub cors: CorsConfig,
}

/// The algorithms an issuer may list. Only asymmetric ones: a JWKS is public, so
/// an HMAC "key" from it would let anyone forge tokens.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The config file to use: `--config`, else `$CMG_CONFIG`, else `config/gateway.toml`.
pub fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("CMG_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/gateway.toml"))
}

impl Settings {
    /// Reads and checks the config file and the policy it names.
    pub fn load(path: &Path) -> Result<Settings, Problems> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems(vec![Problem::new(&file, "(file)", format!("cannot read: {e}"))]))?;
        Self::from_toml(&text, path)
    }

    /// Checks a config given as text; `path` names it and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Settings, Problems> {
        let file = path.display().to_string();
        let parsed: FileConfig = toml::from_str(text).map_err(|e| {
            Problems(vec![Problem::new(
                &file,
                toml_error_key(text, &e),
                e.message().trim().to_string(),
            )])
        })?;
        let base = path.parent().unwrap_or_else(|| Path::new("")).to_path_buf();
        let mut problems = Vec::new();
        let settings = Self::check(parsed, path, &base, &mut problems);
        if problems.is_empty() {
            Ok(settings.expect("checked settings"))
        } else {
            Err(Problems(problems))
        }
    }

    fn check(cfg: FileConfig, path: &Path, base: &Path, problems: &mut Vec<Problem>) -> Option<Settings> {
        let file = path.display().to_string();
        let mut bad = |key: &str, why: String| problems.push(Problem::new(&file, key, why));

        let s = &cfg.server;
        if s.max_body_bytes == 0 {
            bad("server.max_body_bytes", "must be at least 1".into());
        }
        if s.max_in_flight == 0 {
            bad("server.max_in_flight", "must be at least 1".into());
        }
        for (key, d) in [
            ("server.header_read_timeout", s.header_read_timeout),
            ("server.request_timeout", s.request_timeout),
        ] {
            if d.0.is_zero() {
                bad(key, "must be longer than 0s".into());
            }
        }
        let tls = s.tls.as_ref().map(|t| crate::tls::TlsFiles {
            cert_file: base.join(&t.cert_file),
            key_file: base.join(&t.key_file),
            client_ca_file: t.client_ca_file.as_ref().map(|c| base.join(c)),
        });
        if let Some(files) = &tls {
            if let Err(e) = crate::tls::server_config(files) {
                bad("server.tls", e);
            }
        }
        if cfg.auth.issuers.is_empty() {
            bad("auth.issuers", "at least one [[auth.issuers]] is required".into());
        }
        let mut issuers = Vec::new();
        for (i, iss) in cfg.auth.issuers.iter().enumerate() {
            let at = |k: &str| format!("auth.issuers[{i}].{k}");
            if iss.issuer.is_empty() {
                bad(&at("issuer"), "must not be empty".into());
            }
            if cfg.auth.issuers[..i].iter().any(|o| o.issuer == iss.issuer) {
                bad(&at("issuer"), format!("{:?} is listed twice", iss.issuer));
            }
            if iss.audiences.is_empty() || iss.audiences.iter().any(String::is_empty) {
                bad(&at("audiences"), "list at least one non-empty audience".into());
            }
            let mut algorithms = Vec::new();
            if iss.algorithms.is_empty() {
                bad(&at("algorithms"), "list at least one algorithm".into());
            }
            for name in &iss.algorithms {
                match parse_algorithm(name) {
                    Some(a) => algorithms.push(a),
                    None => bad(
                        &at("algorithms"),
                        format!(
                            "{name:?} is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                        ),
                    ),
                }
            }
            let keys = match (&iss.jwks_url, &iss.jwks_file) {
                (Some(url), None) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) || url.parse::<http::Uri>().is_err()
                    {
                        bad(&at("jwks_url"), format!("{url:?} is not an http(s) URL"));
                    }
                    Some(KeySource::Url(url.clone()))
                }
                (None, Some(f)) => {
                    let resolved = base.join(f);
                    if let Err(e) = crate::jwks::load_file(&resolved) {
                        bad(&at("jwks_file"), format!("{}: {e}", resolved.display()));
                    }
                    Some(KeySource::File(resolved))
                }
                _ => {
                    bad(&at("jwks_url"), "set exactly one of jwks_url and jwks_file".into());
                    None
                }
            };
            if iss.jwks_refresh.0 < Duration::from_secs(1) {
                bad(&at("jwks_refresh"), "must be at least 1s".into());
            }
            if let Some(keys) = keys {
                issuers.push(Issuer {
                    issuer: iss.issuer.clone(),
                    audiences: iss.audiences.clone(),
                    algorithms,
                    keys,
                    jwks_refresh: iss.jwks_refresh.0,
                });
            }
        }

        let c = &cfg.connect;
        if c.max_attempts == 0 || c.max_attempts > 10 {
            bad("connect.max_attempts", "must be between 1 and 10".into());
        }
        if c.attempt_timeout.0.is_zero() {
            bad("connect.attempt_timeout", "must be longer than 0s".into());
        }
        if let Some(rate) = c.max_rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
                bad(
                    "connect.max_rate",
                    format!("{rate} is not a rate between 0 and 10000 per second"),
                );
            }
        }
        match (c.burst, c.max_rate) {
            (Some(0), _) => bad("connect.burst", "must be at least 1".into()),
            (Some(_), None) => bad("connect.burst", "only applies with connect.max_rate".into()),
            _ => {}
        }
        if let Some(region) = &c.region {
            if !valid_region(region) {
                bad("connect.region", format!("{region:?} is not a region name"));
            }
        }
        if let Some(endpoint) = &c.endpoint {
            if crate::endpoint::parse_endpoint(endpoint).is_err() {
                bad(
                    "connect.endpoint",
                    format!("{endpoint:?} is not an http(s) URL with a host"),
                );
            }
        }
        let default_region_known = default_region(c, |k| std::env::var(k).ok()).is_some();
        for (i, inst) in c.instances.iter().enumerate() {
            if inst.id.is_empty() || inst.id.chars().count() > 100 {
                bad(
                    &format!("connect.instances[{i}].id"),
                    "must be 1 to 100 characters".into(),
                );
            }
            if c.instances[..i].iter().any(|o| o.id == inst.id) {
                bad(
                    &format!("connect.instances[{i}].id"),
                    format!("{:?} is listed twice", inst.id),
                );
            }
            match &inst.region {
                Some(r) if !valid_region(r) => bad(
                    &format!("connect.instances[{i}].region"),
                    format!("{r:?} is not a region name"),
                ),
                None if !default_region_known => bad(
                    &format!("connect.instances[{i}].region"),
                    "no region here, in connect.region or in AWS_REGION".into(),
                ),
                _ => {}
            }
        }
        if c.instances.is_empty() && !default_region_known {
            bad(
                "connect.region",
                "set connect.region (or AWS_REGION, or a region per instance)".into(),
            );
        }

        if cfg.policy.user_id_claim.is_empty() {
            bad("policy.user_id_claim", "must not be empty".into());
        }
        if cfg.audit.file.is_empty() {
            bad("audit.file", "use \"-\" for stdout or a file path".into());
        }
        for (i, origin) in cfg.cors.allowed_origins.iter().enumerate() {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                bad(
                    &format!("cors.allowed_origins[{i}]"),
                    format!("{origin:?} is not an origin like \"https://dashboard.example.com\""),
                );
            }
        }

        let policy_file = base.join(&cfg.policy.file);
        let policy = match Policy::load(&policy_file) {
            Ok(p) => Some(p),
            Err(errs) => {
                problems.extend(errs.0);
                None
            }
        };
        let audit_file = if cfg.audit.file == "-" {
            cfg.audit.file.clone()
        } else {
            base.join(&cfg.audit.file).display().to_string()
        };
        Some(Settings {
            config_file: path.to_path_buf(),
            server: cfg.server,
            tls,
            leeway: cfg.auth.leeway.0,
            issuers,
            connect: cfg.connect,
            policy_file,
            user_id_claim: cfg.policy.user_id_claim,
            policy: policy?,
            audit_file,
            cors: cfg.cors,
        })
    }

    /// The default region: `connect.region`, else `AWS_REGION` (read through `env`).
    pub fn default_region(&self, env: impl Fn(&str) -> Option<String>) -> Option<String> {
        default_region(&self.connect, env)
    }
}

/// `connect.region`, else a non-empty `AWS_REGION`: the one place this rule lives.
fn default_region(connect: &ConnectConfig, env: impl Fn(&str) -> Option<String>) -> Option<String> {
    connect
        .region
        .clone()
        .or_else(|| env("AWS_REGION").filter(|r| !r.is_empty()))
}

/// `us-east-1`, `eu-west-2`, `us-gov-west-1`: lower-case words and digits joined by dashes.
fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region.split('-').count() >= 3
        && region
            .split('-')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// Names the key a TOML error is about, as `line N, column M` plus the text there.
pub fn toml_error_key(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return "(toml)".to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let table = before
        .lines()
        .rev()
        .find_map(|l| {
            let l = l.trim();
            (l.starts_with('[') && l.ends_with(']')).then(|| l.trim_matches(|c| c == '[' || c == ']').to_string())
        })
        .unwrap_or_default();
    let line_text = text[before.rfind('\n').map_or(0, |i| i + 1)..]
        .lines()
        .next()
        .unwrap_or("")
        .trim();
    if line_text.starts_with('[') {
        // The error is about a table header itself (e.g. a table given twice).
        let header = line_text.trim_matches(|c| c == '[' || c == ']').trim();
        return format!("line {line}, column {column}: {header}");
    }
    // The key is on the error's line, before the `=`, whether the error
    // points at the key (unknown field) or at its value (bad duration).
    let key = line_text
        .split('=')
        .next()
        .unwrap_or(line_text)
        .trim()
        .trim_matches('"');
    let key = if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    };
    format!("line {line}, column {column}: {key}")
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = Settings::load(&cfg).unwrap_err().to_string();
        assert!(err.contains("server.lisen"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn valid_config_loads_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "policy.toml", POLICY);
        write(dir.path(), "jwks.json", JWKS);
        let cfg = write(dir.path(), "g.toml", &base_config());
        let s = Settings::load(&cfg).unwrap();
        assert_eq!(s.server.max_body_bytes, 8192);
        assert_eq!(s.server.request_timeout.0, Duration::from_secs(10));
        assert_eq!(s.issuers[0].algorithms, vec![Algorithm::EdDSA]);
        assert_eq!(s.policy_file, dir.path().join("policy.toml"));
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
        let err = Settings::load(&cfg).unwrap_err();
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
        let err = Settings::load(&cfg).unwrap_err().to_string();
        assert!(
            err.contains("request_timeout") && err.contains("invalid duration"),
            "{err}"
        );
    }
}
