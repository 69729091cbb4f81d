//! The configuration file as a whole (docs/configuration.md): read, parsed and checked
//! completely before anything starts, every problem reported by file and key.
//! Each section is defined and checked by the module that uses it; this one
//! only puts them together, with the environment read once, here.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::settings::{AuthSection, AuthSettings};
use crate::authz::{AuthzSettings, PolicySection};
use crate::check::{parse_toml, Check, Environment, Problem, Problems};
use crate::connect::settings::{ConnectSection, ConnectSettings};
use crate::http::cors::{Cors, CorsSection};
use crate::http::{ServerSection, ServerSettings};
use crate::shared::settings::{SharedSection, SharedSettings};
use crate::telemetry::audit::AuditSection;
use crate::telemetry::traces::{TelemetrySection, TraceSettings};

/// The configuration file as written: one section per owner.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    connect: ConnectSection,
    #[serde(default)]
    policy: PolicySection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    cors: CorsSection,
    #[serde(default)]
    shared: Option<SharedSection>,
    #[serde(default)]
    telemetry: TelemetrySection,
}

/// The whole configuration, checked and resolved: paths, durations,
/// defaults and the environment, with the policy loaded.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_file: PathBuf,
    pub server: ServerSettings,
    pub auth: AuthSettings,
    pub connect: ConnectSettings,
    pub(crate) authz: AuthzSettings,
    /// `-` (stdout) or the audit file's path.
    pub audit_file: String,
    /// Every audit line names the hash of the one before it (`[audit] chain`).
    pub audit_chain: bool,
    pub(crate) cors: Cors,
    /// `[shared]`: the server the fleet shares budgets and facts on.
    pub(crate) shared: Option<SharedSettings>,
    /// `[telemetry]`: where traces go, when anywhere.
    pub(crate) traces: Option<TraceSettings>,
    /// The environment as it was at load.
    pub(crate) env: Environment,
}

/// What tests read of loaded settings beyond their public fields.
#[cfg(feature = "test-util")]
impl Settings {
    /// The policy file, resolved against the config file's folder.
    pub fn policy_file(&self) -> &Path {
        &self.authz.policy_file
    }

    /// Whether `[cors]` lets a browser on `origin` call the API.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let mut headers = http::HeaderMap::new();
        match origin.parse() {
            Ok(value) => headers.insert(http::header::ORIGIN, value),
            Err(_) => return false,
        };
        self.cors.allowed_origin(&headers).is_some()
    }
}

/// The config file to use: `--config`, else `$CMG_CONFIG`, else `config/gateway.toml`.
pub(crate) fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("CMG_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("config/gateway.toml"))
}

impl Settings {
    /// Reads and checks the config file and the policy it names, with the
    /// process environment.
    pub async fn load(path: &Path) -> Result<Settings, Problems> {
        Self::load_with(path, Environment::process()).await
    }

    /// Like [`load`](Self::load), with the environment given.
    pub async fn load_with(path: &Path, env: Environment) -> Result<Settings, Problems> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Problems(vec![Problem::new(
                path.display(),
                "(file)",
                format!("cannot read: {e}"),
            )])
        })?;
        Self::from_toml(&text, path, env).await
    }

    /// Checks a config given as text; `path` names it and anchors relative paths.
    pub async fn from_toml(text: &str, path: &Path, env: Environment) -> Result<Settings, Problems> {
        let mut c = Check::new(path, &env);
        // Parse problems and the sections' own problems are reported together.
        let parsed = parse_toml::<FileConfig>(text, &c.file, &mut c.problems);
        let settings = match parsed {
            None => None,
            Some(file) => {
                let server = file.server.check(&mut c);
                let auth = file.auth.check(&mut c);
                let connect = file.connect.check(&mut c).await;
                let cors = file.cors.check(&mut c);
                let (audit_file, audit_chain) = file.audit.check(&mut c);
                let shared = file.shared.map(|s| s.check(&mut c));
                let traces = file.telemetry.check(&mut c);
                file.policy.check(&mut c).map(|authz| Settings {
                    config_file: path.to_path_buf(),
                    server,
                    auth,
                    connect,
                    authz,
                    audit_file,
                    audit_chain,
                    cors,
                    shared,
                    traces,
                    env: env.clone(),
                })
            }
        };
        match settings {
            Some(s) if c.problems.is_empty() => Ok(s),
            _ => Err(Problems(c.problems)),
        }
    }
}

#[cfg(test)]
mod tests;
