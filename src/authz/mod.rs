//! Authorization: the one decision on whether this caller may put this user's
//! Contact Control Panel on this contact. Owns the instance allow-list, the
//! caller's user id claim, the grants and their reload. The gateway and
//! `explain` both call [`Authorizer::decide`], so they cannot disagree.

pub mod policy;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::auth::token::Identity;
use crate::check::{Check, Problems};
use crate::connect::endpoint::{Route, Router};
use crate::connect::monitor_request::MonitorRequest;
use crate::connect::settings::ConnectSettings;
use policy::{Decision, DenyReason, Policy};

/// `[policy]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    #[serde(default = "default_policy_file")]
    file: PathBuf,
    #[serde(default = "default_user_id_claim")]
    user_id_claim: String,
}

fn default_policy_file() -> PathBuf {
    PathBuf::from("policy.toml")
}
fn default_user_id_claim() -> String {
    "connect_user_id".to_string()
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            file: default_policy_file(),
            user_id_claim: default_user_id_claim(),
        }
    }
}

/// `[policy]`, checked, with the policy file loaded.
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    pub policy_file: PathBuf,
    /// The claim holding the caller's Connect user id (for `as_user = "self"`).
    pub user_id_claim: String,
    pub policy: Policy,
}

impl PolicySection {
    /// `None` when the policy file does not load (its problems are recorded).
    pub fn check(self, c: &mut Check) -> Option<AuthzSettings> {
        if self.user_id_claim.is_empty() {
            c.bad("policy.user_id_claim", "must not be empty");
        }
        let policy_file = c.resolve(&self.file);
        match Policy::load(&policy_file) {
            Ok(policy) => Some(AuthzSettings {
                policy_file,
                user_id_claim: self.user_id_claim,
                policy,
            }),
            Err(problems) => {
                c.problems.extend(problems.0);
                None
            }
        }
    }
}

/// What an allowed request may go ahead with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The grant that allowed it (for the audit).
    pub grant: String,
    /// Where its call to Connect goes.
    pub route: Route,
}

/// Why a request may not go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("denied by policy: {0}")]
    Denied(DenyReason),
    /// The instance is allowed but no region is known for it: the gateway's
    /// configuration is at fault, not the caller.
    #[error("no region is configured for this instance")]
    NoRegion,
}

/// The authorization seam.
pub struct Authorizer {
    /// `None`: every instance (no `[[connect.instances]]`).
    allowed_instances: Option<HashSet<String>>,
    router: Router,
    user_id_claim: String,
    policy: RwLock<Arc<Policy>>,
    policy_file: PathBuf,
}

impl Authorizer {
    pub fn new(authz: &AuthzSettings, connect: &ConnectSettings) -> Self {
        Authorizer {
            allowed_instances: (!connect.instances.is_empty())
                .then(|| connect.instances.iter().map(|i| i.id.clone()).collect()),
            router: connect.router(),
            user_id_claim: authz.user_id_claim.clone(),
            policy: RwLock::new(Arc::new(authz.policy.clone())),
            policy_file: authz.policy_file.clone(),
        }
    }

    /// Decides a request: the instance allow-list, then the instance's route,
    /// then the grants. Async because later sources of facts (Connect's own
    /// records, CONTRACT §9) are looked up here.
    pub async fn decide(&self, identity: &Identity, request: &MonitorRequest) -> Result<Permit, Refusal> {
        if let Some(allowed) = &self.allowed_instances {
            if !allowed.contains(&request.instance_id) {
                return Err(Refusal::Denied(DenyReason::InstanceNotAllowed));
            }
        }
        let route = self.router.route(&request.instance_id).map_err(|_| Refusal::NoRegion)?;
        let policy = self.policy.read().expect("policy lock").clone();
        match policy.evaluate(&identity.claims, request, &self.user_id_claim) {
            Decision::Allow { grant } => Ok(Permit { grant, route }),
            Decision::Deny(reason) => Err(Refusal::Denied(reason)),
        }
    }

    /// Re-reads the policy file. A policy that does not load is refused and
    /// the one in force stays: a bad edit never opens or closes the gate.
    /// The number of grants now in force, or the problems of the refused file.
    pub fn reload(&self) -> Result<usize, Problems> {
        let policy = Policy::load(&self.policy_file)?;
        let grants = policy.grants.len();
        *self.policy.write().expect("policy lock") = Arc::new(policy);
        Ok(grants)
    }

    pub fn policy_file(&self) -> &Path {
        &self.policy_file
    }

    /// Where calls for allowed instances go, for the log at start.
    pub fn router(&self) -> &Router {
        &self.router
    }
}
