//! `[shared]`: the server the fleet shares budgets and facts on, as written
//! and checked, with its password and integrity key from the environment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::check::{Check, HumanDuration};

/// The environment variable holding the server's password when the URL has none.
pub(crate) const PASSWORD_VAR: &str = "CMG_SHARED_PASSWORD";
/// The environment variable holding the key every stored fact is sealed with.
pub(crate) const KEY_VAR: &str = "CMG_SHARED_KEY";
/// The shortest integrity key accepted.
const MIN_KEY_CHARS: usize = 32;

/// `[shared]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SharedSection {
    url: String,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default = "default_key_prefix")]
    key_prefix: String,
    #[serde(default = "default_command_timeout")]
    command_timeout: HumanDuration,
    #[serde(default = "default_fallback_replicas")]
    fallback_replicas: u32,
}

fn default_key_prefix() -> String {
    "cmg:".to_owned()
}
fn default_command_timeout() -> HumanDuration {
    HumanDuration(Duration::from_millis(100))
}
fn default_fallback_replicas() -> u32 {
    1
}

/// `[shared]`, checked: where the server is and how to reach it.
#[derive(Clone)]
pub(crate) struct SharedSettings {
    /// `redis://` or `rediss://`, as written (it may hold a password: never logged).
    pub(crate) url: String,
    /// The CA that signs a `rediss://` server's certificate, when not a public one.
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) key_prefix: String,
    pub(crate) command_timeout: Duration,
    /// While the server cannot be reached, each replica takes this part of
    /// every budget.
    pub(crate) fallback_replicas: u32,
    /// `CMG_SHARED_PASSWORD`, used when the URL names none.
    pub(crate) password: Option<String>,
    /// `CMG_SHARED_KEY`: seals every stored fact (HMAC-SHA256).
    pub(crate) integrity_key: Option<String>,
}

/// Never prints the password, the key or a password inside the URL.
impl fmt::Debug for SharedSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSettings")
            .field("server", &self.server())
            .field("ca_file", &self.ca_file)
            .field("key_prefix", &self.key_prefix)
            .field("command_timeout", &self.command_timeout)
            .field("fallback_replicas", &self.fallback_replicas)
            .field("password", &self.password.as_ref().map(|_| "<set>"))
            .field("integrity_key", &self.integrity_key.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl SharedSettings {
    /// What an operator should know of this setup (`check` prints it, `serve` logs it).
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.integrity_key.is_none() {
            warnings.push(format!(
                "[shared] without {KEY_VAR}: whoever can write to the server can forge the facts grants decide on (docs/security.md)"
            ));
        }
        if self.fallback_replicas == 1 {
            warnings.push(
                "shared.fallback_replicas is 1: while the server is away every replica takes whole budgets; set it to the number of replicas".to_owned(),
            );
        }
        warnings
    }

    /// The server as a log line may name it: scheme, host and port, no credentials.
    pub(crate) fn server(&self) -> String {
        let (scheme, rest) = self.url.split_once("://").unwrap_or(("redis", &self.url));
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let host = host.split('/').next().unwrap_or(host);
        format!("{scheme}://{host}")
    }
}

impl SharedSection {
    pub(crate) fn check(self, c: &mut Check<'_>) -> SharedSettings {
        let tls = self.url.starts_with("rediss://");
        if !(tls || self.url.starts_with("redis://")) {
            c.bad("shared.url", "must start with redis:// or rediss://");
        } else if redis::Client::open(self.url.as_str()).is_err() {
            // The URL may hold a password: name the rule, not the text.
            c.bad(
                "shared.url",
                "is not a Redis URL (redis://[user:password@]host[:port][/db])",
            );
        }
        if self.ca_file.is_some() && !tls {
            c.bad("shared.ca_file", "only applies to a rediss:// url");
        }
        let ca_file = self.ca_file.map(|f| c.resolve(&f));
        if let Some(file) = &ca_file {
            if let Err(e) = std::fs::read(file) {
                c.bad("shared.ca_file", format!("cannot read {}: {e}", file.display()));
            }
        }
        if self.key_prefix.chars().any(|ch| ch.is_control() || ch == ' ') || self.key_prefix.len() > 64 {
            c.bad(
                "shared.key_prefix",
                "must be at most 64 characters, without spaces or control characters",
            );
        }
        let command_timeout = self.command_timeout.0;
        if command_timeout.is_zero() || command_timeout > Duration::from_secs(5) {
            c.bad("shared.command_timeout", "must be longer than 0s and at most 5s");
        }
        if self.fallback_replicas == 0 {
            c.bad("shared.fallback_replicas", "must be at least 1");
        }
        let integrity_key = c.env.get(KEY_VAR).map(str::to_owned);
        if integrity_key
            .as_ref()
            .is_some_and(|k| k.chars().count() < MIN_KEY_CHARS)
        {
            c.bad(KEY_VAR, format!("must be at least {MIN_KEY_CHARS} characters"));
        }
        SharedSettings {
            url: self.url,
            ca_file,
            key_prefix: self.key_prefix,
            command_timeout,
            fallback_replicas: self.fallback_replicas,
            password: c.env.get(PASSWORD_VAR).filter(|p| !p.is_empty()).map(str::to_owned),
            integrity_key,
        }
    }
}
