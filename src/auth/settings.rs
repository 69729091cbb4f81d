//! `[auth]`: the section as written and its check, every issuer named by index.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::issuer::{is_safe_key_url, parse_algorithm, Issuer, KeySource};
use super::jwks;
use crate::check::{secs, Check, HumanDuration};

/// `[auth]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSection {
    #[serde(default = "default_leeway")]
    leeway: HumanDuration,
    #[serde(default)]
    issuers: Vec<IssuerSection>,
}

fn default_leeway() -> HumanDuration {
    secs(60)
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            leeway: default_leeway(),
            issuers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerSection {
    issuer: String,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Vec<String>,
    #[serde(default)]
    jwks_url: Option<String>,
    #[serde(default)]
    jwks_file: Option<PathBuf>,
    #[serde(default)]
    discovery: bool,
    #[serde(default = "default_audience_claim")]
    audience_claim: String,
    #[serde(default = "default_jwks_refresh")]
    jwks_refresh: HumanDuration,
}

fn default_audience_claim() -> String {
    "aud".into()
}

fn default_jwks_refresh() -> HumanDuration {
    secs(600)
}

/// `[auth]`, checked.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    pub issuers: Vec<Issuer>,
}

impl AuthSection {
    pub(crate) fn check(self, c: &mut Check) -> AuthSettings {
        if self.issuers.is_empty() {
            c.bad("auth.issuers", "at least one [[auth.issuers]] is required");
        }
        let mut issuers = Vec::new();
        for (i, iss) in self.issuers.iter().enumerate() {
            let at = |k: &str| format!("auth.issuers[{i}].{k}");
            if iss.issuer.is_empty() {
                c.bad(at("issuer"), "must not be empty");
            }
            if self.issuers[..i].iter().any(|o| o.issuer == iss.issuer) {
                c.bad(at("issuer"), format!("{:?} is listed twice", iss.issuer));
            }
            if iss.audiences.is_empty() || iss.audiences.iter().any(String::is_empty) {
                c.bad(at("audiences"), "list at least one non-empty audience");
            }
            if iss.algorithms.is_empty() {
                c.bad(at("algorithms"), "list at least one algorithm");
            }
            let mut algorithms = Vec::new();
            for name in &iss.algorithms {
                match parse_algorithm(name) {
                    Some(a) => algorithms.push(a),
                    None => c.bad(
                        at("algorithms"),
                        format!(
                            "{name:?} is not supported; use RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
                        ),
                    ),
                }
            }
            if iss.audience_claim.is_empty() {
                c.bad(at("audience_claim"), "must name a claim, e.g. \"aud\" or \"client_id\"");
            }
            let keys = match (&iss.jwks_url, &iss.jwks_file, iss.discovery) {
                (Some(url), None, false) => {
                    if !(url.starts_with("https://") || url.starts_with("http://")) || url.parse::<http::Uri>().is_err()
                    {
                        c.bad(at("jwks_url"), format!("{url:?} is not an http(s) URL"));
                    }
                    Some(KeySource::Url(url.clone()))
                }
                (None, Some(f), false) => {
                    let resolved = c.resolve(f);
                    if let Err(e) = jwks::load_file(&resolved) {
                        c.bad(at("jwks_file"), format!("{}: {e}", resolved.display()));
                    }
                    Some(KeySource::File(resolved))
                }
                (None, None, true) => {
                    // The discovery document lives under the issuer, so the
                    // issuer must be a URL we may fetch from.
                    if !is_safe_key_url(&iss.issuer) {
                        c.bad(
                            at("discovery"),
                            "needs an issuer that is an https URL (http only on loopback)",
                        );
                    }
                    Some(KeySource::Discovery)
                }
                _ => {
                    c.bad(
                        at("jwks_url"),
                        "set exactly one of jwks_url, jwks_file and discovery = true",
                    );
                    None
                }
            };
            if iss.jwks_refresh.0 < Duration::from_secs(1) {
                c.bad(at("jwks_refresh"), "must be at least 1s");
            }
            if let Some(keys) = keys {
                issuers.push(Issuer {
                    issuer: iss.issuer.clone(),
                    audiences: iss.audiences.clone(),
                    audience_claim: iss.audience_claim.clone(),
                    algorithms,
                    keys,
                    jwks_refresh: iss.jwks_refresh.0,
                });
            }
        }
        AuthSettings {
            leeway: self.leeway.0,
            issuers,
        }
    }
}
