//! Authorization: the one decision on whether this caller may put this user's
//! Contact Control Panel on this contact. Owns the instance allow-list, the
//! caller's user id claim, the grants and their reload. The gateway and
//! `explain` both call [`Authorizer::decide`], so they cannot disagree.

pub(crate) mod cache;
pub(crate) mod facts;
pub(crate) mod given_facts;
pub(crate) mod listing;
pub(crate) mod live_facts;
pub(crate) mod policy;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use crate::auth::token::Identity;
use crate::check::{Check, Problems};
use crate::connect::client::ConnectFailure;
use crate::connect::describe_contact::ContactFacts;
use crate::connect::describe_user::ConnectUser;
use crate::connect::endpoint::{Route, Router};
use crate::connect::monitor_request::MonitorRequest;
use crate::connect::settings::ConnectSettings;
use facts::{all, FactError, FactSource};
use policy::{find_claim, DenyReason, Grant, Needs, Policy, SupervisorFacts};

/// `[policy]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySection {
    #[serde(default = "default_policy_file")]
    file: PathBuf,
    #[serde(default = "default_user_id_claim")]
    user_id_claim: String,
    /// Instead of `user_id_claim`: a claim holding the caller's Connect
    /// username, resolved to its user id with SearchUsers.
    #[serde(default)]
    user_name_claim: Option<String>,
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
            user_name_claim: None,
        }
    }
}

/// `[policy]`, checked, with the policy file loaded.
#[derive(Debug, Clone)]
pub(crate) struct AuthzSettings {
    pub(crate) policy_file: PathBuf,
    /// Who the caller is in Connect (for `as_user = "self"`).
    pub(crate) caller: CallerClaim,
    pub(crate) policy: Policy,
}

/// The claim that says who the caller is in Connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallerClaim {
    /// The claim holds the caller's Connect user id.
    UserId(String),
    /// The claim holds the caller's Connect username (an SSO login).
    UserName(String),
}

impl PolicySection {
    /// `None` when the policy file does not load (its problems are recorded).
    pub(crate) fn check(self, c: &mut Check) -> Option<AuthzSettings> {
        if self.user_id_claim.is_empty() {
            c.bad("policy.user_id_claim", "must not be empty");
        }
        let caller = match self.user_name_claim {
            Some(name) if name.is_empty() => {
                c.bad(
                    "policy.user_name_claim",
                    "must not be empty; leave it out to use user_id_claim",
                );
                CallerClaim::UserName(name)
            }
            Some(name) => CallerClaim::UserName(name),
            None => CallerClaim::UserId(self.user_id_claim),
        };
        let policy_file = c.resolve(&self.file);
        match Policy::load(&policy_file) {
            Ok(policy) => Some(AuthzSettings {
                policy_file,
                caller,
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
pub(crate) struct Permit {
    /// The grant that allowed it (for the audit).
    pub(crate) grant: String,
    /// Where its call to Connect goes.
    pub(crate) route: Route,
}

/// Why a request may not go ahead.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("denied by policy: {0}")]
    Denied(DenyReason),
    /// The instance is allowed but no region is known for it: the gateway's
    /// configuration is at fault, not the caller.
    #[error("no region is configured for this instance")]
    NoRegion,
    /// A fact a grant needed could not be looked up: fail closed.
    #[error("a lookup failed: {0}")]
    LookupFailed(ConnectFailure),
    /// A fact a grant needed was not given (explain without facts).
    #[error("{0}")]
    FactsMissing(String),
    /// The caller's user id or username claim holds a control character.
    #[error("the token's claim {0} must not contain control characters")]
    ControlCharacterInClaim(String),
}

impl PartialEq for Refusal {
    /// Equal by kind and reason (a lookup failure by its operation).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Refusal::Denied(a), Refusal::Denied(b)) => a == b,
            (Refusal::NoRegion, Refusal::NoRegion) => true,
            (Refusal::LookupFailed(a), Refusal::LookupFailed(b)) => a.operation == b.operation,
            (Refusal::FactsMissing(a), Refusal::FactsMissing(b)) => a == b,
            (Refusal::ControlCharacterInClaim(a), Refusal::ControlCharacterInClaim(b)) => a == b,
            _ => false,
        }
    }
}

impl From<FactError> for Refusal {
    fn from(e: FactError) -> Self {
        match e {
            FactError::Lookup(failure) => Refusal::LookupFailed(failure),
            FactError::Missing(what) => Refusal::FactsMissing(what),
        }
    }
}

/// The authorization seam.
pub(crate) struct Authorizer {
    /// `None`: every instance (no `[[connect.instances]]`).
    allowed_instances: Option<HashSet<String>>,
    router: Router,
    caller: CallerClaim,
    policy: RwLock<Arc<Policy>>,
    policy_file: PathBuf,
}

impl Authorizer {
    pub(crate) fn new(authz: &AuthzSettings, connect: &ConnectSettings) -> Self {
        Authorizer {
            allowed_instances: (!connect.instances.is_empty())
                .then(|| connect.instances.iter().map(|i| i.id.clone()).collect()),
            router: connect.router(),
            caller: authz.caller.clone(),
            policy: RwLock::new(Arc::new(authz.policy.clone())),
            policy_file: authz.policy_file.clone(),
        }
    }

    /// Decides a request: the instance allow-list, then the instance's route,
    /// then the grants in order. A grant's static checks come first; Connect
    /// is asked only for what a grant that passed them needs, each fact at
    /// most once, independent facts at the same time. Any lookup failure
    /// ends the decision (fail closed).
    pub(crate) async fn decide(
        &self,
        identity: &Identity,
        request: &MonitorRequest,
        facts: &impl FactSource,
    ) -> Result<Permit, Refusal> {
        if let Some(allowed) = &self.allowed_instances {
            if !allowed.contains(&request.instance_id) {
                return Err(Refusal::Denied(DenyReason::InstanceNotAllowed));
            }
        }
        let route = self.router.route(&request.instance_id).map_err(|_| Refusal::NoRegion)?;
        let policy = self.policy.read().expect("policy lock").clone();
        let mut known = Known::default();
        let mut best = DenyReason::NoGrant;
        // Grants that need nothing from Connect first, whatever their place in
        // the file: when one of them allows, no lookup is made at all. Then
        // the others, each in file order.
        let claims_only = policy.grants.iter().filter(|g| !self.needs_facts(g));
        let needing_facts = policy.grants.iter().filter(|g| self.needs_facts(g));
        for grant in claims_only.chain(needing_facts) {
            match self
                .grant_allows(grant, identity, request, &route, facts, &mut known)
                .await?
            {
                Ok(()) => {
                    return Ok(Permit {
                        grant: grant.name.clone(),
                        route,
                    })
                }
                Err(reason) if reason.rank() > best.rank() => best = reason,
                Err(_) => {}
            }
        }
        Err(Refusal::Denied(best))
    }

    /// One grant's verdict (inner result), or a fact that could not be had (outer).
    async fn grant_allows(
        &self,
        grant: &Grant,
        identity: &Identity,
        request: &MonitorRequest,
        route: &Route,
        facts: &impl FactSource,
        known: &mut Known,
    ) -> Result<Result<(), DenyReason>, Refusal> {
        if let Err(reason) = grant.admits(&identity.claims, request) {
            return Ok(Err(reason));
        }
        let caller = match grant.needs_caller() {
            true => self.caller_id(identity, request, route, facts, known).await?,
            false => None,
        };
        if let Err(reason) = grant.user_allowed(request, caller.as_deref()) {
            return Ok(Err(reason));
        }
        let needs = grant.needs();
        if needs.any() {
            // Boxed: only Connect-aware grants pay for the lookups' futures.
            Box::pin(known.fetch(needs, request, route, facts)).await?;
        }
        Ok(grant.facts_allow(request, known.contact.as_ref(), known.supervisor().as_ref()))
    }

    /// Whether deciding this grant may need a fact from Connect: the
    /// contact, the supervisor or its permissions, or the caller's own user
    /// id when only its username is known (SearchUsers).
    fn needs_facts(&self, grant: &Grant) -> bool {
        grant.needs().any() || (grant.needs_caller() && matches!(self.caller, CallerClaim::UserName(_)))
    }

    /// The caller's Connect user id: from its claim, or its username claim
    /// resolved with SearchUsers (once per decision). A missing claim or an
    /// unknown username is no id at all.
    async fn caller_id(
        &self,
        identity: &Identity,
        request: &MonitorRequest,
        route: &Route,
        facts: &impl FactSource,
        known: &mut Known,
    ) -> Result<Option<String>, Refusal> {
        // The value is compared with UserId, or sent to Connect: one holding a
        // control character is refused, as it would be in the body.
        let claim = |name: &str| match find_claim(&identity.claims, name).and_then(|v| v.as_str()) {
            Some(value) if value.chars().any(char::is_control) => {
                Err(Refusal::ControlCharacterInClaim(name.to_owned()))
            }
            value => Ok(value.map(str::to_owned)),
        };
        match &self.caller {
            CallerClaim::UserId(name) => claim(name),
            CallerClaim::UserName(name) => {
                if known.caller.is_none() {
                    let id = match claim(name)?.filter(|u| !u.is_empty()) {
                        Some(username) => {
                            Box::pin(facts.user_id_by_username(route, &request.instance_id, &username)).await?
                        }
                        None => None,
                    };
                    known.caller = Some(id);
                }
                Ok(known.caller.clone().flatten())
            }
        }
    }

    /// Re-reads the policy file. A policy that does not load is refused and
    /// the one in force stays: a bad edit never opens or closes the gate.
    /// The number of grants now in force, or the problems of the refused file.
    pub(crate) fn reload(&self) -> Result<usize, Problems> {
        let policy = Policy::load(&self.policy_file)?;
        let grants = policy.grants.len();
        *self.policy.write().expect("policy lock") = Arc::new(policy);
        Ok(grants)
    }

    pub(crate) fn policy_file(&self) -> &Path {
        &self.policy_file
    }

    /// Where calls for allowed instances go, for the log at start.
    pub(crate) fn router(&self) -> &Router {
        &self.router
    }
}

/// The facts one decision has looked up so far, so no fact is asked twice.
#[derive(Default)]
struct Known {
    caller: Option<Option<String>>,
    contact: Option<ContactFacts>,
    user: Option<ConnectUser>,
    permissions: Option<BTreeSet<String>>,
}

impl Known {
    /// What the grant checks see of the supervisor.
    fn supervisor(&self) -> Option<SupervisorFacts> {
        self.user.as_ref().map(|user| SupervisorFacts {
            hierarchy_group_id: user.hierarchy_group_id.clone(),
            permissions: self.permissions.clone().unwrap_or_default(),
        })
    }

    /// Looks up what `needs` asks for and is not known yet: the contact and
    /// the supervisor at once, then each of the supervisor's profiles at once.
    async fn fetch(
        &mut self,
        needs: Needs,
        request: &MonitorRequest,
        route: &Route,
        facts: &impl FactSource,
    ) -> Result<(), Refusal> {
        let instance = request.instance_id.as_str();
        let want_contact = needs.contact && self.contact.is_none();
        let want_user = (needs.supervisor || needs.permissions) && self.user.is_none();
        let (contact, user) = tokio::join!(
            async {
                match want_contact {
                    true => facts.contact(route, instance, &request.contact_id).await.map(Some),
                    false => Ok(None),
                }
            },
            async {
                match want_user {
                    true => facts.user(route, instance, &request.user_id).await.map(Some),
                    false => Ok(None),
                }
            },
        );
        if let Some(contact) = contact? {
            self.contact = Some(contact);
        }
        if let Some(user) = user? {
            self.user = Some(user);
        }
        if let (true, None, Some(user)) = (needs.permissions, &self.permissions, &self.user) {
            let lookups = user
                .security_profile_ids
                .iter()
                .map(|p| {
                    Box::pin(facts.permissions(route, instance, p))
                        as std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<String>, FactError>> + Send>>
                })
                .collect();
            let mut permissions = BTreeSet::new();
            for listed in all(lookups).await {
                permissions.extend(listed?);
            }
            self.permissions = Some(permissions);
        }
        Ok(())
    }
}
