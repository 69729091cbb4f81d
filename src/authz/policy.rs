//! The grants of the policy file (docs/policy.md): loaded and checked, and
//! their rules as pure functions — the static checks on claims and request,
//! and the checks on facts read from Connect. Deciding in which order to ask
//! and what to look up is `authz::Authorizer::decide`'s job.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::check::{parse_toml, position, Problem, Problems};
use crate::connect::describe_contact::ContactFacts;
use crate::connect::monitor_request::{Capability, MonitorRequest};

/// Why a request was denied; the wire names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DenyReason {
    NoGrant,
    InstanceNotAllowed,
    CapabilityNotAllowed,
    UserNotAllowed,
    /// The supervisor's own Connect security profiles do not grant the capability.
    ConnectPermissionMissing,
    /// The contact's agent is not one this grant covers (or it has no agent yet).
    AgentOutOfScope,
}

impl DenyReason {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DenyReason::NoGrant => "no_grant",
            DenyReason::InstanceNotAllowed => "instance_not_allowed",
            DenyReason::CapabilityNotAllowed => "capability_not_allowed",
            DenyReason::UserNotAllowed => "user_not_allowed",
            DenyReason::ConnectPermissionMissing => "connect_permission_missing",
            DenyReason::AgentOutOfScope => "agent_out_of_scope",
        }
    }

    /// How far a refused grant got: when several grants refuse, the caller
    /// hears the reason of the one that got furthest.
    pub(crate) fn rank(self) -> u8 {
        match self {
            DenyReason::NoGrant => 0,
            DenyReason::InstanceNotAllowed => 1,
            DenyReason::CapabilityNotAllowed => 2,
            DenyReason::UserNotAllowed => 3,
            DenyReason::ConnectPermissionMissing => 4,
            DenyReason::AgentOutOfScope => 5,
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A value a claim may be required to hold: string, integer or boolean.
#[derive(Debug, Clone, PartialEq)]
enum ClaimValue {
    Text(String),
    Integer(i64),
    Flag(bool),
}

impl ClaimValue {
    fn matches(&self, claim: &Value) -> bool {
        match (self, claim) {
            (ClaimValue::Text(want), Value::String(got)) => want == got,
            (ClaimValue::Integer(want), Value::Number(got)) => got.as_i64() == Some(*want),
            (ClaimValue::Flag(want), Value::Bool(got)) => want == got,
            _ => false,
        }
    }
}

/// One value, or a list meaning "any of them".
#[derive(Debug, Clone, PartialEq)]
enum ClaimRule {
    One(ClaimValue),
    AnyOf(Vec<ClaimValue>),
}

impl ClaimValue {
    fn from_toml(value: toml::Value) -> Option<ClaimValue> {
        match value {
            toml::Value::String(s) => Some(ClaimValue::Text(s)),
            toml::Value::Integer(i) => Some(ClaimValue::Integer(i)),
            toml::Value::Boolean(b) => Some(ClaimValue::Flag(b)),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for ClaimRule {
    /// By hand, so a wrong value is named in the policy's words, not serde's.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let rule = match toml::Value::deserialize(d)? {
            toml::Value::Array(items) => items
                .into_iter()
                .map(ClaimValue::from_toml)
                .collect::<Option<Vec<_>>>()
                .map(ClaimRule::AnyOf),
            one => ClaimValue::from_toml(one).map(ClaimRule::One),
        };
        rule.ok_or_else(|| {
            serde::de::Error::custom("a claim rule is a string, an integer, a boolean, or a list of them")
        })
    }
}

impl ClaimRule {
    /// A claim holds the rule when it equals a wanted value, or is an array holding one.
    fn holds(&self, claim: &Value) -> bool {
        let wanted: &[ClaimValue] = match self {
            ClaimRule::One(v) => std::slice::from_ref(v),
            ClaimRule::AnyOf(vs) => vs,
        };
        let candidates: &[Value] = match claim {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        candidates.iter().any(|c| wanted.iter().any(|w| w.matches(c)))
    }
}

#[derive(Debug, Clone, PartialEq)]
enum AsUserRaw {
    Keyword(String),
    Users(Vec<String>),
}

impl<'de> Deserialize<'de> for AsUserRaw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = match toml::Value::deserialize(d)? {
            toml::Value::String(k) => Some(AsUserRaw::Keyword(k)),
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .map(AsUserRaw::Users),
            _ => None,
        };
        raw.ok_or_else(|| serde::de::Error::custom("as_user is \"self\", \"any\" or a list of user ids"))
    }
}

/// Whose Contact Control Panel a grant lets the caller put into monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AsUser {
    /// Only the caller's own user id (its `user_id_claim`).
    SelfOnly,
    Any,
    Listed(Vec<String>),
}

/// A grant as written. Every value a check may refuse keeps its span, so the
/// problem names the line and column of what to fix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    name: Spanned<String>,
    #[serde(default)]
    claims: BTreeMap<Spanned<String>, Spanned<ClaimRule>>,
    instances: Spanned<Vec<Spanned<String>>>,
    capabilities: Spanned<Vec<Spanned<String>>>,
    as_user: Spanned<AsUserRaw>,
    #[serde(default)]
    connect_permissions: bool,
    #[serde(default)]
    agents: Option<Spanned<toml::Value>>,
}

/// Whose calls a grant covers, by Connect's record of the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AgentScope {
    /// The agent is in the subtree of the supervisor's own hierarchy group.
    MyHierarchy,
    /// Every list given must hold; a list means any of its members.
    Listed {
        hierarchy_groups: Option<Vec<String>>,
        users: Option<Vec<String>>,
        queues: Option<Vec<String>>,
    },
}

const AGENTS_FORM: &str = "is \"my_hierarchy\" or a table of hierarchy_groups, users and/or queues, each a list of ids";

impl AgentScope {
    /// Reads `agents`, naming what is wrong in the policy's own words.
    fn parse(value: toml::Value) -> Result<AgentScope, String> {
        let table = match value {
            toml::Value::String(k) if k == "my_hierarchy" => return Ok(AgentScope::MyHierarchy),
            toml::Value::Table(t) => t,
            _ => return Err(AGENTS_FORM.to_string()),
        };
        if table.is_empty() {
            return Err(format!("lists nothing; it {AGENTS_FORM}"));
        }
        let mut lists: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (key, value) in table {
            if !["hierarchy_groups", "users", "queues"].contains(&key.as_str()) {
                return Err(format!("{key:?} is not hierarchy_groups, users or queues"));
            }
            let ids = value
                .as_array()
                .and_then(|items| {
                    items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| format!("{key} is a list of ids"))?;
            if ids.is_empty() || ids.iter().any(String::is_empty) {
                return Err(format!("{key} must list at least one non-empty id"));
            }
            lists.insert(key, ids);
        }
        Ok(AgentScope::Listed {
            hierarchy_groups: lists.remove("hierarchy_groups"),
            users: lists.remove("users"),
            queues: lists.remove("queues"),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    grant: Vec<GrantFile>,
}

/// A grant, checked.
#[derive(Debug, Clone)]
pub(crate) struct Grant {
    pub(crate) name: String,
    claims: Vec<(String, ClaimRule)>,
    instances: Vec<String>,
    capabilities: Vec<Capability>,
    as_user: AsUser,
    /// The supervisor's Connect security profiles must grant the capabilities.
    connect_permissions: bool,
    agents: Option<AgentScope>,
}

/// Which facts from Connect a grant needs, beyond the claims and the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Needs {
    /// DescribeContact: the contact's agent, its groups and queue.
    pub(crate) contact: bool,
    /// DescribeUser of the monitoring user: its hierarchy group and profiles.
    pub(crate) supervisor: bool,
    /// ListSecurityProfilePermissions of each of the supervisor's profiles.
    pub(crate) permissions: bool,
}

impl Needs {
    pub(crate) fn any(self) -> bool {
        self.contact || self.supervisor || self.permissions
    }
}

/// What Connect says of the user whose panel would monitor (`UserId`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SupervisorFacts {
    pub(crate) hierarchy_group_id: Option<String>,
    /// Every permission of every one of its security profiles.
    pub(crate) permissions: BTreeSet<String>,
}

/// Whose live contacts a grant could allow anything on, for a listing to
/// ask Connect about (docs/policy.md, "What a listing asks Connect").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Coverage {
    /// No contact at all: the supervisor cannot even listen in.
    Nobody,
    /// Every agent of the instance.
    Everyone,
    /// Only these agents.
    Agents(Vec<String>),
    /// Only the agents of these groups and the groups below them.
    Subtrees(Vec<String>),
    /// Only contacts on these queues (asked for by queue).
    Queues(Vec<String>),
}

/// Connect's permission names (docs/connect.md, "Lookups"): barge needs both.
const LISTEN_IN: &str = "ManagerListenIn";
const BARGE_IN: &str = "ManagerBargeIn";

/// The loaded policy: an ordered list of grants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Policy {
    pub(crate) grants: Vec<Grant>,
}

impl Policy {
    pub(crate) fn load(path: &Path) -> Result<Policy, Problems> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems(vec![Problem::new(&file, "(file)", format!("cannot read policy: {e}"))]))?;
        Self::from_toml(&text, &file)
    }

    pub(crate) fn from_toml(text: &str, file: &str) -> Result<Policy, Problems> {
        let mut problems = Vec::new();
        let Some(parsed) = parse_toml::<PolicyFile>(text, file, &mut problems) else {
            return Err(Problems(problems));
        };
        let mut grants = Vec::new();
        for (i, g) in parsed.grant.into_iter().enumerate() {
            // `span` is where the refused value starts in `text`: the problem
            // reads `line L, column C: grant[i].key`, as parse errors do.
            let mut bad = |span: std::ops::Range<usize>, k: &str, why: String| {
                let key = format!("{}: grant[{i}].{k}", position(text, span.start));
                problems.push(Problem::new(file, key, why));
            };
            let name = g.name.get_ref();
            if name.trim().is_empty() {
                bad(g.name.span(), "name", "must not be empty".into());
            }
            if grants.iter().any(|o: &Grant| o.name == *name) {
                bad(g.name.span(), "name", format!("{name:?} is used by an earlier grant"));
            }
            for (key, rule) in &g.claims {
                let k = key.get_ref();
                if k.is_empty() || k.split('.').any(str::is_empty) {
                    bad(
                        key.span(),
                        "claims",
                        format!("{k:?} is not a claim name or dotted path"),
                    );
                }
                if matches!(rule.get_ref(), ClaimRule::AnyOf(v) if v.is_empty()) {
                    bad(
                        rule.span(),
                        "claims",
                        format!("{k:?} lists no value, so it could never hold"),
                    );
                }
            }
            let instances = g.instances.get_ref();
            // At the empty id when there is one, else at the (empty) list.
            let empty_id = instances.iter().find(|i| i.get_ref().is_empty());
            if instances.is_empty() || empty_id.is_some() {
                let span = empty_id.map_or(g.instances.span(), Spanned::span);
                bad(
                    span,
                    "instances",
                    "list instance ids, or [\"*\"] for every instance".into(),
                );
            }
            let mut capabilities = Vec::new();
            if g.capabilities.get_ref().is_empty() {
                bad(
                    g.capabilities.span(),
                    "capabilities",
                    "list SILENT_MONITOR and/or BARGE".into(),
                );
            }
            for c in g.capabilities.get_ref() {
                match Capability::parse(c.get_ref()) {
                    Some(parsed) => capabilities.push(parsed),
                    None => bad(
                        c.span(),
                        "capabilities",
                        format!("{:?} is not SILENT_MONITOR or BARGE", c.get_ref()),
                    ),
                }
            }
            let as_user_at = g.as_user.span();
            let as_user = match g.as_user.into_inner() {
                AsUserRaw::Keyword(k) if k == "self" => AsUser::SelfOnly,
                AsUserRaw::Keyword(k) if k == "any" => AsUser::Any,
                AsUserRaw::Keyword(k) => {
                    bad(
                        as_user_at,
                        "as_user",
                        format!("{k:?} is not \"self\", \"any\" or a list of user ids"),
                    );
                    AsUser::SelfOnly
                }
                AsUserRaw::Users(list) => {
                    // Named at the list, not at an empty id in it: the items
                    // are read through `toml::Value`, which keeps no spans.
                    if list.is_empty() || list.iter().any(String::is_empty) {
                        bad(
                            as_user_at,
                            "as_user",
                            "a list of user ids must hold at least one non-empty id".into(),
                        );
                    }
                    AsUser::Listed(list)
                }
            };
            let agents = match g.agents {
                None => None,
                Some(value) => {
                    let at = value.span();
                    match AgentScope::parse(value.into_inner()) {
                        Ok(scope) => Some(scope),
                        Err(why) => {
                            bad(at, "agents", why);
                            None
                        }
                    }
                }
            };
            grants.push(Grant {
                name: g.name.into_inner(),
                claims: g
                    .claims
                    .into_iter()
                    .map(|(k, v)| (k.into_inner(), v.into_inner()))
                    .collect(),
                instances: g.instances.into_inner().into_iter().map(Spanned::into_inner).collect(),
                capabilities,
                as_user,
                connect_permissions: g.connect_permissions,
                agents,
            });
        }
        if problems.is_empty() {
            Ok(Policy { grants })
        } else {
            Err(Problems(problems))
        }
    }
}

/// Finds a claim by its exact name first (names like `https://x/groups` hold
/// dots), then by walking a dotted path through nested objects.
pub(crate) fn find_claim<'a>(claims: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(key) {
        return Some(v);
    }
    key.split('.').try_fold(claims, |v, part| v.get(part))
}

impl Grant {
    /// The checks on the claims and the request alone, in the order whose
    /// depth ranks a deny: claims, instance, capabilities. `as_user` is
    /// [`Grant::user_allowed`], since `"self"` may need the caller's user id
    /// looked up first.
    pub(crate) fn admits(&self, claims: &Value, request: &MonitorRequest) -> Result<(), DenyReason> {
        let claims_hold = self
            .claims
            .iter()
            .all(|(key, rule)| find_claim(claims, key).is_some_and(|v| rule.holds(v)));
        if !claims_hold {
            return Err(DenyReason::NoGrant);
        }
        if !self.instances.iter().any(|i| i == "*" || *i == request.instance_id) {
            return Err(DenyReason::InstanceNotAllowed);
        }
        if !request.capabilities.iter().all(|c| self.capabilities.contains(c)) {
            return Err(DenyReason::CapabilityNotAllowed);
        }
        Ok(())
    }

    /// Whether `as_user = "self"` needs the caller's Connect user id.
    pub(crate) fn needs_caller(&self) -> bool {
        self.as_user == AsUser::SelfOnly
    }

    /// `as_user`: whose panel may be put on the call. `caller` is the
    /// caller's own Connect user id, when known.
    pub(crate) fn user_allowed(&self, request: &MonitorRequest, caller: Option<&str>) -> Result<(), DenyReason> {
        let allowed = match &self.as_user {
            AsUser::Any => true,
            AsUser::SelfOnly => caller == Some(request.user_id.as_str()),
            AsUser::Listed(users) => users.contains(&request.user_id),
        };
        allowed.then_some(()).ok_or(DenyReason::UserNotAllowed)
    }

    /// The facts from Connect this grant needs once its static checks pass.
    pub(crate) fn needs(&self) -> Needs {
        Needs {
            contact: self.agents.is_some(),
            supervisor: self.connect_permissions || self.agents == Some(AgentScope::MyHierarchy),
            permissions: self.connect_permissions,
        }
    }

    /// Whose live contacts this grant could allow any capability on, given
    /// what Connect says of the supervisor (when the grant needs it): the
    /// narrowest set a listing can ask Connect for. `decide` still judges
    /// every contact; this only spares asking about contacts it would refuse.
    pub(crate) fn coverage(&self, supervisor: Option<&SupervisorFacts>) -> Coverage {
        // Every capability needs ManagerListenIn (barge needs it too).
        if self.connect_permissions && !supervisor.is_some_and(|s| s.permissions.contains(LISTEN_IN)) {
            return Coverage::Nobody;
        }
        match &self.agents {
            None => Coverage::Everyone,
            Some(AgentScope::MyHierarchy) => match supervisor.and_then(|s| s.hierarchy_group_id.clone()) {
                Some(group) => Coverage::Subtrees(vec![group]),
                None => Coverage::Nobody,
            },
            Some(AgentScope::Listed {
                hierarchy_groups,
                users,
                queues,
            }) => match (users, queues, hierarchy_groups) {
                (Some(users), _, _) => Coverage::Agents(users.clone()),
                (None, Some(queues), _) => Coverage::Queues(queues.clone()),
                (None, None, Some(groups)) => Coverage::Subtrees(groups.clone()),
                (None, None, None) => Coverage::Nobody,
            },
        }
    }

    /// The checks on Connect's facts: the supervisor's permissions first,
    /// then whose call it is. Facts the grant does not need may be `None`.
    pub(crate) fn facts_allow(
        &self,
        request: &MonitorRequest,
        contact: Option<&ContactFacts>,
        supervisor: Option<&SupervisorFacts>,
    ) -> Result<(), DenyReason> {
        if self.connect_permissions {
            let held = |p: &str| supervisor.is_some_and(|s| s.permissions.contains(p));
            let granted = request.capabilities.iter().all(|c| match c {
                Capability::SilentMonitor => held(LISTEN_IN),
                Capability::Barge => held(LISTEN_IN) && held(BARGE_IN),
            });
            if !granted {
                return Err(DenyReason::ConnectPermissionMissing);
            }
        }
        let Some(scope) = &self.agents else {
            return Ok(());
        };
        // A contact no agent has accepted yet is nobody's call to watch.
        let Some(contact) = contact.filter(|c| c.agent_id.is_some()) else {
            return Err(DenyReason::AgentOutOfScope);
        };
        let in_scope = match scope {
            AgentScope::MyHierarchy => supervisor
                .and_then(|s| s.hierarchy_group_id.as_ref())
                .is_some_and(|group| contact.agent_groups.contains(group)),
            AgentScope::Listed {
                hierarchy_groups,
                users,
                queues,
            } => {
                let holds = |list: &Option<Vec<String>>, values: &[&String]| {
                    list.as_ref().is_none_or(|l| values.iter().any(|v| l.contains(v)))
                };
                let groups: Vec<&String> = contact.agent_groups.iter().collect();
                holds(hierarchy_groups, &groups)
                    && holds(users, &contact.agent_id.iter().collect::<Vec<_>>())
                    && holds(queues, &contact.queue_id.iter().collect::<Vec<_>>())
            }
        };
        in_scope.then_some(()).ok_or(DenyReason::AgentOutOfScope)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
