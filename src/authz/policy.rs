//! The grants of the policy file (CONTRACT §4): loaded and checked, then
//! evaluated deny-by-default, every deny with a named reason.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::check::{parse_toml, Problem, Problems};
use crate::connect::monitor_request::{Capability, MonitorRequest};

/// Why a request was denied; the wire names are part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    NoGrant,
    InstanceNotAllowed,
    CapabilityNotAllowed,
    UserNotAllowed,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::NoGrant => "no_grant",
            DenyReason::InstanceNotAllowed => "instance_not_allowed",
            DenyReason::CapabilityNotAllowed => "capability_not_allowed",
            DenyReason::UserNotAllowed => "user_not_allowed",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of evaluating the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { grant: String },
    Deny(DenyReason),
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
pub enum AsUser {
    /// Only the caller's own user id (its `user_id_claim`).
    SelfOnly,
    Any,
    Listed(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantFile {
    name: String,
    #[serde(default)]
    claims: BTreeMap<String, ClaimRule>,
    instances: Vec<String>,
    capabilities: Vec<String>,
    as_user: AsUserRaw,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    grant: Vec<GrantFile>,
}

/// A grant, checked.
#[derive(Debug, Clone)]
pub struct Grant {
    pub name: String,
    claims: Vec<(String, ClaimRule)>,
    instances: Vec<String>,
    capabilities: Vec<Capability>,
    as_user: AsUser,
}

/// The loaded policy: an ordered list of grants.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub grants: Vec<Grant>,
}

impl Policy {
    pub fn load(path: &Path) -> Result<Policy, Problems> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Problems(vec![Problem::new(&file, "(file)", format!("cannot read policy: {e}"))]))?;
        Self::from_toml(&text, &file)
    }

    pub fn from_toml(text: &str, file: &str) -> Result<Policy, Problems> {
        let mut problems = Vec::new();
        let Some(parsed) = parse_toml::<PolicyFile>(text, file, &mut problems) else {
            return Err(Problems(problems));
        };
        let mut grants = Vec::new();
        for (i, g) in parsed.grant.into_iter().enumerate() {
            let at = |k: &str| format!("grant[{i}].{k}");
            let mut bad = |k: &str, why: String| problems.push(Problem::new(file, at(k), why));
            if g.name.trim().is_empty() {
                bad("name", "must not be empty".into());
            }
            if grants.iter().any(|o: &Grant| o.name == g.name) {
                bad("name", format!("{:?} is used by an earlier grant", g.name));
            }
            for (key, rule) in &g.claims {
                if key.is_empty() || key.split('.').any(str::is_empty) {
                    bad("claims", format!("{key:?} is not a claim name or dotted path"));
                }
                if matches!(rule, ClaimRule::AnyOf(v) if v.is_empty()) {
                    bad("claims", format!("{key:?} lists no value, so it could never hold"));
                }
            }
            if g.instances.is_empty() || g.instances.iter().any(String::is_empty) {
                bad("instances", "list instance ids, or [\"*\"] for every instance".into());
            }
            let mut capabilities = Vec::new();
            if g.capabilities.is_empty() {
                bad("capabilities", "list SILENT_MONITOR and/or BARGE".into());
            }
            for c in &g.capabilities {
                match Capability::parse(c) {
                    Some(c) => capabilities.push(c),
                    None => bad("capabilities", format!("{c:?} is not SILENT_MONITOR or BARGE")),
                }
            }
            let as_user = match g.as_user {
                AsUserRaw::Keyword(k) if k == "self" => AsUser::SelfOnly,
                AsUserRaw::Keyword(k) if k == "any" => AsUser::Any,
                AsUserRaw::Keyword(k) => {
                    bad(
                        "as_user",
                        format!("{k:?} is not \"self\", \"any\" or a list of user ids"),
                    );
                    AsUser::SelfOnly
                }
                AsUserRaw::Users(list) => {
                    if list.is_empty() || list.iter().any(String::is_empty) {
                        bad(
                            "as_user",
                            "a list of user ids must hold at least one non-empty id".into(),
                        );
                    }
                    AsUser::Listed(list)
                }
            };
            grants.push(Grant {
                name: g.name,
                claims: g.claims.into_iter().collect(),
                instances: g.instances,
                capabilities,
                as_user,
            });
        }
        if problems.is_empty() {
            Ok(Policy { grants })
        } else {
            Err(Problems(problems))
        }
    }

    /// Decides a request. Deny by default; when grants match the caller but
    /// refuse the request, the reason is the check that got furthest, so the
    /// caller learns the most useful thing (e.g. "user_not_allowed").
    pub fn evaluate(&self, claims: &Value, request: &MonitorRequest, user_id_claim: &str) -> Decision {
        let mut best = DenyReason::NoGrant;
        for grant in &self.grants {
            match grant.check(claims, request, user_id_claim) {
                Ok(()) => {
                    return Decision::Allow {
                        grant: grant.name.clone(),
                    }
                }
                Err(reason) => {
                    if rank(reason) > rank(best) {
                        best = reason;
                    }
                }
            }
        }
        Decision::Deny(best)
    }
}

fn rank(reason: DenyReason) -> u8 {
    match reason {
        DenyReason::NoGrant => 0,
        DenyReason::InstanceNotAllowed => 1,
        DenyReason::CapabilityNotAllowed => 2,
        DenyReason::UserNotAllowed => 3,
    }
}

/// Finds a claim by its exact name first (names like `https://x/groups` hold
/// dots), then by walking a dotted path through nested objects.
pub fn find_claim<'a>(claims: &'a Value, key: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(key) {
        return Some(v);
    }
    key.split('.').try_fold(claims, |v, part| v.get(part))
}

impl Grant {
    fn check(&self, claims: &Value, request: &MonitorRequest, user_id_claim: &str) -> Result<(), DenyReason> {
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
        let user_ok = match &self.as_user {
            AsUser::Any => true,
            AsUser::SelfOnly => {
                find_claim(claims, user_id_claim).and_then(Value::as_str) == Some(request.user_id.as_str())
            }
            AsUser::Listed(users) => users.contains(&request.user_id),
        };
        if !user_ok {
            return Err(DenyReason::UserNotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
